"""A Label Studio ML backend that labels tasks from examples, over plain HTTP.

Label Studio calls an ML backend at these routes (JSON in, JSON out):

* ``GET /health`` (and ``GET /``): ``{"status": "UP", "model_class": ...}``;
* ``POST /setup`` with the project's ``schema`` (its labelling config), ``hostname`` and
  ``access_token``: ``{"model_version": ...}``;
* ``POST /predict`` with ``tasks``, ``label_config`` and ``project``: ``{"results": [...]}``, one
  prediction (``model_version``, ``score``, ``result``: brush labels) per task, in order;
* ``POST /webhook``: acknowledged (this backend does not train).

The project's config must have a ``BrushLabels`` tag over an ``Image`` tag whose labels include
every class name of the :class:`~seggpt.labelling.labeller.Labeller` (the config
``tools.label`` writes does). A request the backend cannot serve (a config without those labels,
an image it cannot read) gets HTTP 400 and ``{"error": <type>, "message": <what to fix>}``;
the server keeps running.
"""

from __future__ import annotations

import json
import logging
import threading
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from painter.errors import InputMismatchError, PainterError
from seggpt.labelling import labelstudio
from seggpt.labelling.labeller import Labeller
from seggpt.labelling.task_images import TaskImages

logger = logging.getLogger(__name__)

MODEL_CLASS = "SegGPTLabeller"


@dataclass(frozen=True)
class BrushTarget:
    """Where a project's config puts brush labels.

    Attributes:
        from_name: the ``BrushLabels`` tag's name.
        to_name: the ``Image`` tag's name.
        data_key: the task data field holding the image (the ``Image`` tag's ``$value``).
        labels: the label values the ``BrushLabels`` tag offers.
    """

    from_name: str
    to_name: str
    data_key: str
    labels: tuple[str, ...]


def brush_target(label_config: str) -> BrushTarget:
    """The first ``BrushLabels`` tag of a labelling config (XML) and the image it labels."""
    if not isinstance(label_config, str) or not label_config.strip():
        raise InputMismatchError("the request holds no labelling config (label_config/schema)")
    try:
        root = ET.fromstring(label_config)
    except ET.ParseError as err:
        raise InputMismatchError(f"the project's labelling config is not valid XML: {err}") from err
    brush = next(root.iter("BrushLabels"), None)
    if brush is None:
        raise InputMismatchError(
            "the project's labelling config has no BrushLabels tag; use the config that "
            "tools.label writes (label_studio_config.xml)"
        )
    to_name = brush.get("toName", "")
    image = next((t for t in root.iter("Image") if t.get("name") == to_name), None)
    if image is None or not image.get("value", "").startswith("$"):
        raise InputMismatchError(
            f"the BrushLabels tag labels {to_name!r}, which is no Image tag with a $field value"
        )
    labels = tuple(label.get("value", "") for label in brush.iter("Label"))
    return BrushTarget(brush.get("name", ""), to_name, image.get("value")[1:], labels)


def check_labels(target: BrushTarget, class_names: Mapping[int, str]) -> None:
    """Refuse a project whose config lacks a label for one of the model's classes."""
    missing = [name for name in class_names.values() if name not in target.labels]
    if missing:
        raise InputMismatchError(
            f"the model labels {missing} but the project's BrushLabels {target.from_name!r} "
            f"offers only {list(target.labels)}; add <Label value=...> tags with those names to "
            "the project's labelling config, or name the classes as the project does "
            "(--class-names)"
        )


class LabelStudioBackend:
    """What the routes answer, without the HTTP: a labeller, where task images come from, and
    the servers and tokens ``/setup`` told about.

    Args:
        labeller: labels the task images (its class names are the labels predicted).
        images: where task images are read from.
        model_version: reported to Label Studio and stored with each prediction.
        batch_size: images per model pass.
    """

    def __init__(
        self,
        labeller: Labeller,
        images: TaskImages,
        *,
        model_version: str = labelstudio.MODEL_VERSION,
        batch_size: int = 4,
    ) -> None:
        self.labeller = labeller
        self.images = images
        self.model_version = model_version
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def health(self) -> dict[str, Any]:
        return {"status": "UP", "model_class": MODEL_CLASS, "model_version": self.model_version}

    def setup(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Check the project's config and take Label Studio's address and token (used for
        images on its server when the backend was not given them)."""
        check_labels(brush_target(payload.get("schema", "")), self.labeller.class_names)
        with self._lock:
            self.images = self.images.with_server(
                payload.get("hostname"), payload.get("access_token")
            )
        return {"model_version": self.model_version}

    def predict(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """One prediction per task of ``payload["tasks"]``, in order."""
        tasks = payload.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise InputMismatchError("the request holds no 'tasks' list to predict")
        target = brush_target(payload.get("label_config", ""))
        check_labels(target, self.labeller.class_names)
        images = [self.images.load(_image_ref(task, target.data_key)) for task in tasks]
        with self._lock:
            labelled = self.labeller.label(images, batch_size=self.batch_size)
        results = []
        for n, (task, result) in enumerate(zip(tasks, labelled)):
            masks = [(i.mask, i.class_id, i.score) for i in result.instances]
            results.append(
                labelstudio.prediction(
                    masks,
                    self.labeller.class_names,
                    score=result.score,
                    key=str(task.get("id", n)),
                    model_version=self.model_version,
                    from_name=target.from_name,
                    to_name=target.to_name,
                )
            )
        return {"results": results}

    def webhook(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Acknowledge an event; this backend does not train on annotations."""
        return {"status": "ignored", "action": payload.get("action")}


def _image_ref(task: Any, data_key: str) -> str:
    data = task.get("data") if isinstance(task, Mapping) else None
    if not isinstance(data, Mapping) or data_key not in data:
        raise InputMismatchError(
            f"a task has no data[{data_key!r}], the field the config's Image tag shows"
        )
    return data[data_key]


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the server's ``backend``; errors become JSON answers."""

    server: BackendServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.split("?")[0] in ("/", "/health"):
            self._send(HTTPStatus.OK, self.server.backend.health())
        else:
            self._error(HTTPStatus.NOT_FOUND, "NotFound", f"no GET route {self.path}")

    def do_POST(self) -> None:  # noqa: N802
        backend = self.server.backend
        routes = {"/setup": backend.setup, "/predict": backend.predict, "/webhook": backend.webhook}
        route = routes.get(self.path.split("?")[0])
        if route is None:
            self._error(HTTPStatus.NOT_FOUND, "NotFound", f"no POST route {self.path}")
            return
        try:
            payload = self._payload()
            answer = route(payload)
        except PainterError as err:
            logger.warning("%s %s: %s", self.path, type(err).__name__, err)
            self._error(HTTPStatus.BAD_REQUEST, type(err).__name__, str(err))
            return
        except Exception as err:  # the server must outlive a failed request
            logger.exception("%s failed", self.path)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, type(err).__name__, str(err))
            return
        self._send(HTTPStatus.OK, answer)

    def _payload(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            payload = json.loads(self.rfile.read(length) or b"{}")
        except ValueError as err:
            raise InputMismatchError(f"the request body is not JSON: {err}") from err
        if not isinstance(payload, dict):
            raise InputMismatchError("the request body must be a JSON object")
        return payload

    def _error(self, status: HTTPStatus, kind: str, message: str) -> None:
        self._send(status, {"error": kind, "message": " ".join(message.split())})

    def _send(self, status: HTTPStatus, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        logger.info("%s " + format, self.address_string(), *args)


class BackendServer(ThreadingHTTPServer):
    """A threaded HTTP server answering Label Studio with ``backend`` (port 0: a free one,
    read back from ``server_address``)."""

    daemon_threads = True

    def __init__(
        self, backend: LabelStudioBackend, *, host: str = "127.0.0.1", port: int = 9090
    ) -> None:
        super().__init__((host, port), _Handler)
        self.backend = backend

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"
