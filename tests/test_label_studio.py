"""Against a real Label Studio server: import ``tools.label`` output, connect the ML backend.

Label Studio's pins clash with this project's, so it lives in its own virtual environment:
``$LABEL_STUDIO_VENV`` or ``~/.cache/painter-seggpt/label-studio-venv``, created and filled
with pip on first use (minutes; needs the package index). The server runs on 127.0.0.1 with a
free port, SQLite in a temporary folder, an admin user and API token made at start, and local
files served from the temporary folder. Run with ``pytest -m slow tests/test_label_studio.py``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from painter.io import load_image, load_mask, save_image, save_index_mask
from seggpt.labelling import labelstudio
from seggpt.labelling.inputs import load_examples
from seggpt.labelling.labeller import Labeller
from seggpt.loading import load_model
from seggpt.predictor import SegGPTPredictor
from seggpt.samples import FIXED_CLASS_NAMES, fixed_class_split

pytestmark = pytest.mark.slow

#: What the test installs: the Label Studio it was written against (sentry-sdk 3 breaks its
#: settings module: "Unknown option 'send_default_pii'").
REQUIREMENTS = ["label-studio>=1.23,<1.24", "sentry-sdk<3"]
TOKEN = "painter-seggpt-test-token"
SIZE = (128, 128)
PHOTOS = "photos"


def _venv() -> Path:
    default = Path.home() / ".cache" / "painter-seggpt" / "label-studio-venv"
    return Path(os.environ.get("LABEL_STUDIO_VENV", default))


def _label_studio_command() -> Path:
    """The ``label-studio`` program, installing it into its own venv when missing."""
    venv = _venv()
    program = venv / "bin" / "label-studio"
    if not program.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, *REQUIREMENTS], check=True, timeout=1800)
    return program


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url} exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return
        except OSError:
            time.sleep(1)
    pytest.fail(f"{url} did not answer /health in {seconds:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _start(command: list[str], env: dict, log: Path, url: str, seconds: float):
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_until_up(url, process, log, seconds)
    except BaseException:
        _stop(process)
        raise
    return process


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """``photos/`` (6 held-out images), ``examples/`` (2 pairs + classes.txt)."""
    root = tmp_path_factory.mktemp("label_studio")
    (root / PHOTOS).mkdir()
    for sub in ("images", "masks"):
        (root / "examples" / sub).mkdir(parents=True)
    images, masks = fixed_class_split(SIZE, "train", 2)
    for i, (image, mask) in enumerate(zip(images, masks)):
        save_image(root / "examples" / "images" / f"ex{i}.png", image)
        save_index_mask(root / "examples" / "masks" / f"ex{i}.png", mask)
    (root / "examples" / "classes.txt").write_text("\n".join(FIXED_CLASS_NAMES) + "\n")
    for i, image in enumerate(fixed_class_split(SIZE, "held_out", 6)[0]):
        save_image(root / PHOTOS / f"q{i}.png", image)
    return root


@pytest.fixture(scope="module")
def label_studio(workdir):
    """A running Label Studio (its URL); local files served from ``workdir``."""
    program = _label_studio_command()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "HOST"}
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(workdir / "ls_data"),
        LOCAL_FILES_SERVING_ENABLED="true",
        LOCAL_FILES_DOCUMENT_ROOT=str(workdir),
        # the backend listens on 127.0.0.1, which Label Studio refuses to call by default
        ML_BLOCK_LOCAL_IP="false",
        SSRF_PROTECTION_ENABLED="false",
        LATEST_VERSION_CHECK="false",
    )
    command = [
        str(program), "start", "--no-browser", "--internal-host", "127.0.0.1",
        "--port", str(port), "--username", "admin@example.com", "--password", "admin-pass",
        "--user-token", TOKEN, "--enable-legacy-api-token",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    process = _start(command, env, workdir / "label_studio.log", url, 900)
    yield url
    _stop(process)


def _api(url: str, path: str, body: object | None = None, method: str | None = None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"}
    request = urllib.request.Request(url + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:
        pytest.fail(f"{method or 'GET/POST'} {path}: HTTP {err.code}: {err.read()[:2000]!r}")


@pytest.fixture(scope="module")
def labelled(workdir) -> Path:
    """``tools.label`` output for ``photos/``, tasks pointing at ``?d=photos/<file>``."""
    from tools.label import main

    out = workdir / "labels"
    argv = [str(workdir / PHOTOS), "--examples", str(workdir / "examples"), "--out", str(out)]
    argv += ["--device", "cpu", "--workers", "0", "--quiet"]
    assert main(argv) == 0  # the default prefix: /data/local-files/?d=<the images' folder>/
    return out


@pytest.fixture(scope="module")
def project(label_studio, labelled, workdir) -> int:
    """A project with ``tools.label``'s config, a local storage over ``photos/`` (what lets
    Label Studio serve those files) and the tasks with their predictions imported."""
    config = (labelled / "label_studio_config.xml").read_text()
    project = _api(
        label_studio, "/api/projects", {"title": "seggpt labels", "label_config": config}
    )
    storage = {"project": project["id"], "path": str(workdir / PHOTOS), "title": PHOTOS}
    _api(label_studio, "/api/storages/localfiles", storage)
    tasks = json.loads((labelled / "label_studio_tasks.json").read_text())
    imported = _api(label_studio, f"/api/projects/{project['id']}/import", tasks)
    assert (imported["task_count"], imported["prediction_count"]) == (6, 6)
    return project["id"]


def _class_ids() -> dict[str, int]:
    return {name: i for i, name in enumerate(FIXED_CLASS_NAMES) if i}


def _predictions(url: str, task_id: int) -> list[dict]:
    return _api(url, f"/api/predictions?task={task_id}")


def test_imported_predictions_decode_to_the_written_masks(label_studio, project, labelled):
    listing = _api(label_studio, f"/api/tasks?project={project}&page_size=100&fields=all")
    assert len(listing["tasks"]) == 6
    nonempty = 0
    for task in listing["tasks"]:
        [prediction] = _predictions(label_studio, task["id"])
        assert prediction["model_version"] == labelstudio.MODEL_VERSION
        key = task["meta"]["key"]
        written = load_mask(labelled / "masks" / f"{key}_mask.png")
        decoded = labelstudio.decode_results(prediction["result"], _class_ids())
        decoded = np.zeros_like(written) if decoded is None else decoded
        np.testing.assert_array_equal(decoded, written, err_msg=key)
        nonempty += int(written.any())
    assert nonempty >= 3


@pytest.fixture(scope="module")
def backend(label_studio, workdir):
    """``tools.label_studio_backend`` on a free port, fetching images from Label Studio."""
    port = _free_port()
    command = [
        sys.executable, "-m", "tools.label_studio_backend", "--examples", str(workdir / "examples"),
        "--port", str(port), "--device", "cpu", "--dtype", "float32",
        "--label-studio-url", label_studio, "--api-key", TOKEN,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    url = f"http://127.0.0.1:{port}"
    process = _start(command, env, workdir / "backend.log", url, 300)
    yield url
    _stop(process)


def test_label_studio_gets_predictions_from_the_backend(label_studio, project, backend, workdir):
    connected = _api(label_studio, "/api/ml", {"url": backend, "project": project, "title": "seg"})
    assert connected["readable_state"] == "Connected", connected
    assert connected["model_version"].startswith(labelstudio.MODEL_VERSION + "-")
    task = {"data": {"image": f"/data/local-files/?d={PHOTOS}/q3.png"}}
    _api(label_studio, f"/api/projects/{project}/import", [task])
    listing = _api(label_studio, f"/api/tasks?project={project}&page_size=100&fields=all")
    [new] = [t for t in listing["tasks"] if not t["meta"]]
    action = "/api/dm/actions?id=retrieve_tasks_predictions&project=" + str(project)
    _api(label_studio, action, {"selectedItems": {"all": False, "included": [new["id"]]}})
    [prediction] = _predictions(label_studio, new["id"])
    assert prediction["model_version"] == connected["model_version"]

    examples = load_examples(folder=workdir / "examples")
    predictor = SegGPTPredictor(load_model("demo"), device="cpu", dtype="float32")
    labeller = Labeller.from_examples(
        predictor, examples.images, examples.masks, class_names=examples.class_names
    )
    [expected] = labeller.label([load_image(workdir / PHOTOS / "q3.png")])
    decoded = labelstudio.decode_results(prediction["result"], _class_ids())
    assert expected.mask.any() and decoded is not None
    np.testing.assert_array_equal(decoded, expected.mask)
    assert prediction["score"] == pytest.approx(expected.score)
