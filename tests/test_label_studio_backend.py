"""The Label Studio ML backend's routes, served on 127.0.0.1 in a thread (no Label Studio)."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from painter.errors import InputMismatchError
from painter.io import load_image, save_image
from seggpt.labelling import labelstudio
from seggpt.labelling.labeller import Labeller
from seggpt.labelling.ml_backend import BackendServer, LabelStudioBackend, brush_target
from seggpt.labelling.task_images import TaskImages
from seggpt.loading import load_model
from seggpt.predictor import SegGPTPredictor
from seggpt.samples import FIXED_CLASS_NAMES, fixed_class_split
from tools import label_studio_backend

SIZE = (96, 96)
TOKEN = "secret-token"
NAMES = dict(enumerate(FIXED_CLASS_NAMES[1:], start=1))
CONFIG = labelstudio.label_config(list(NAMES.values()))


@pytest.fixture(scope="module")
def labeller(one_thread) -> Labeller:
    images, masks = fixed_class_split(SIZE, "train", 2)
    predictor = SegGPTPredictor(load_model("demo"), device="cpu", dtype="float32")
    return Labeller.from_examples(predictor, images, masks, class_names=NAMES)


@pytest.fixture(scope="module")
def queries(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """Two query images saved as PNGs (and read back, as the backend reads them)."""
    root = tmp_path_factory.mktemp("queries")
    images, _ = fixed_class_split(SIZE, "held_out", 2)
    for i, image in enumerate(images):
        save_image(root / f"q{i}.png", image)
    return root, [load_image(root / f"q{i}.png") for i in range(len(images))]


def _serve(server) -> str:
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


@pytest.fixture
def serve(labeller, queries):
    """Starts a backend with the given image settings; returns its URL."""
    servers = []

    def start(images: TaskImages | None = None) -> str:
        backend = LabelStudioBackend(labeller, images or TaskImages(queries[0]))
        servers.append(BackendServer(backend, port=0))
        return _serve(servers[-1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def label_studio(queries):
    """A stand-in for Label Studio's media route: /data/upload/<file> with the API token."""
    root = queries[0]

    class Media(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.headers.get("Authorization") != f"Token {TOKEN}":
                self.send_error(401, "Unauthorized")
                return
            path = root / Path(self.path).name
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Media)
    yield _serve(server)
    server.shutdown()
    server.server_close()


def _call(url: str, body: object | None = None, *, raw: bytes | None = None):
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def _predict(url: str, images: list[str], config: str = CONFIG, key: str = "image"):
    tasks = [{"id": i + 1, "data": {key: ref}} for i, ref in enumerate(images)]
    return _call(url + "/predict", {"tasks": tasks, "label_config": config, "project": "1.0"})


def _decoded(prediction: dict, labeller: Labeller, shape) -> np.ndarray:
    ids = {name: i for i, name in labeller.class_names.items()}
    mask = labelstudio.decode_results(prediction["result"], ids)
    return np.zeros(shape, dtype=np.int64) if mask is None else mask


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_health_and_setup(serve):
    url = serve()
    for path in ("/", "/health"):
        status, body = _call(url + path)
        assert (status, body["status"], body["model_class"]) == (200, "UP", "SegGPTLabeller")
    assert _call(url + "/setup", {"schema": CONFIG, "project": "1.0"}) == (
        200,
        {"model_version": labelstudio.MODEL_VERSION},
    )
    status, body = _call(url + "/webhook", {"action": "ANNOTATION_CREATED"})
    assert (status, body["action"]) == (200, "ANNOTATION_CREATED")


def test_predict_local_files_matches_labeller(serve, labeller, queries):
    root, images = queries
    status, body = _predict(serve(), ["/data/local-files/?d=q0.png", str(root / "q1.png")])
    assert status == 200 and len(body["results"]) == 2
    expected = labeller.label(images)
    for prediction, labelled, image in zip(body["results"], expected, images):
        assert prediction["model_version"] == labelstudio.MODEL_VERSION
        assert prediction["score"] == labelled.score
        assert len(prediction["result"]) == len(labelled.instances)
        np.testing.assert_array_equal(
            _decoded(prediction, labeller, image.shape[:2]), labelled.mask
        )
    assert expected[0].mask.max() > 0


def test_predict_follows_the_configs_tag_names(serve, labeller, queries):
    config = CONFIG.replace('name="image"', 'name="photo"').replace('"$image"', '"$picture"')
    config = config.replace('toName="image"', 'toName="photo"').replace('"label"', '"paint"')
    status, body = _predict(serve(), ["/data/local-files/?d=q0.png"], config, key="picture")
    assert status == 200
    results = body["results"][0]["result"]
    assert {(r["from_name"], r["to_name"]) for r in results} == {("paint", "photo")}
    np.testing.assert_array_equal(
        _decoded(body["results"][0], labeller, SIZE), labeller.label(queries[1][:1])[0].mask
    )


def test_uploaded_image_fetched_with_the_token(serve, labeller, queries, label_studio):
    url = serve(TaskImages(label_studio_url=label_studio, api_key=TOKEN))
    status, body = _predict(url, ["/data/upload/1/q1.png", f"{label_studio}/data/upload/q0.png"])
    assert status == 200
    expected = labeller.label(queries[1][::-1])
    for prediction, labelled in zip(body["results"], expected):
        np.testing.assert_array_equal(_decoded(prediction, labeller, SIZE), labelled.mask)


def test_setup_supplies_label_studio_address_and_token(serve, labeller, queries, label_studio):
    url = serve(TaskImages())
    status, body = _predict(url, ["/data/upload/1/q0.png"])
    assert status == 400 and "--label-studio-url" in body["message"]
    setup = {"schema": CONFIG, "hostname": label_studio, "access_token": TOKEN}
    assert _call(url + "/setup", setup)[0] == 200
    status, body = _predict(url, ["/data/upload/1/q0.png"])
    assert status == 200
    np.testing.assert_array_equal(
        _decoded(body["results"][0], labeller, SIZE), labeller.label(queries[1][:1])[0].mask
    )


@pytest.mark.parametrize(
    "images, fragment",
    [
        ({"label_studio_url": "http://127.0.0.1:{port}"}, "is the server running"),
        ({"label_studio_url": "{label_studio}", "api_key": "wrong"}, "check --api-key"),
    ],
)
def test_unreachable_or_refused_server_is_a_json_400(serve, label_studio, images, fragment):
    settings = {
        k: v.format(port=_free_port(), label_studio=label_studio) for k, v in images.items()
    }
    url = serve(TaskImages(**settings))
    status, body = _predict(url, ["/data/upload/1/q0.png"])
    assert (status, body["error"]) == (400, "InvalidImageError")
    assert fragment in body["message"]
    assert _call(url + "/health")[0] == 200  # still serving


def test_bad_requests_are_json_errors(serve, queries):
    url = serve()
    cases = [
        (_predict(url, ["/data/local-files/?d=missing.png"]), 400, "InvalidImageError"),
        (_predict(url, ["/data/local-files/?d=../outside.png"]), 400, "InvalidImageError"),
        (_predict(url, ["s3://bucket/q0.png"]), 400, "InvalidImageError"),
        (_predict(url, ["/data/local-files/?d=q0.png"], key="other"), 400, "InputMismatchError"),
        (_call(url + "/predict", {"tasks": []}), 400, "InputMismatchError"),
        (_call(url + "/predict", raw=b"{not json"), 400, "InputMismatchError"),
        (_call(url + "/nowhere", {}), 404, "NotFound"),
    ]
    for (status, body), want_status, want_error in cases:
        assert (status, body["error"]) == (want_status, want_error), body
        assert body["message"]


def test_labels_missing_from_the_project_are_refused(serve):
    url = serve()
    config = labelstudio.label_config([NAMES[1], "cat"])
    for status, body in (
        _call(url + "/setup", {"schema": config}),
        _predict(url, ["/data/local-files/?d=q0.png"], config),
    ):
        assert (status, body["error"]) == (400, "InputMismatchError")
        assert NAMES[2] in body["message"] and "cat" in body["message"]


def test_brush_target_reads_the_config():
    target = brush_target(CONFIG)
    assert (target.from_name, target.to_name, target.data_key) == ("label", "image", "image")
    assert target.labels == tuple(NAMES.values())
    for config in ("<View/>", "<View><BrushLabels", ""):
        with pytest.raises(InputMismatchError):
            brush_target(config)


def test_cli_without_examples_is_one_error_line(error_line):
    assert label_studio_backend.main(["--port", "0"]) == 2
    assert "--example" in error_line()
