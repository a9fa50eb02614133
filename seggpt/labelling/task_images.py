"""Read the image a Label Studio task points at.

A task's image is one of:

* ``/data/local-files/?d=<path>``: a file under Label Studio's ``LOCAL_FILES_DOCUMENT_ROOT``,
  read from ``document_root`` when it is given, else fetched from Label Studio;
* another path on the Label Studio server (``/data/upload/...``), fetched from
  ``label_studio_url`` with the API token (``Authorization: Token <key>``);
* an ``http(s)://`` URL, fetched (with the token only when it is on ``label_studio_url``);
* a local file path (or ``file://`` URL).

Every failure is an :class:`~painter.errors.InvalidImageError` that says what to fix.
"""

from __future__ import annotations

import io
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from painter.errors import InvalidImageError
from painter.io import load_image

#: Label Studio's URL path of a file under its LOCAL_FILES_DOCUMENT_ROOT.
LOCAL_FILES_PATH = "/data/local-files/"


@dataclass(frozen=True)
class TaskImages:
    """Where task images are read from.

    Attributes:
        document_root: the folder Label Studio serves local files from (its
            ``LOCAL_FILES_DOCUMENT_ROOT``), when this machine sees it.
        label_studio_url: Label Studio's address, e.g. ``http://localhost:8080``.
        api_key: a Label Studio API token, sent to ``label_studio_url`` only.
        timeout: seconds to wait for a download.
    """

    document_root: Path | None = None
    label_studio_url: str | None = None
    api_key: str | None = None
    timeout: float = 30.0

    def with_server(self, url: str | None, api_key: str | None) -> TaskImages:
        """These settings, with the server and token that Label Studio sent in ``/setup``
        filling those not given."""
        return replace(
            self,
            label_studio_url=self.label_studio_url or url or None,
            api_key=self.api_key or api_key or None,
        )

    def load(self, ref: str) -> np.ndarray:
        """(H, W, 3) uint8 RGB of the image that ``ref`` (a task's image value) names."""
        if not isinstance(ref, str) or not ref:
            raise InvalidImageError(f"the task's image is {ref!r}, not a URL or path")
        parsed = urllib.parse.urlparse(ref)
        if parsed.scheme in ("http", "https"):
            return self._download(ref)
        if parsed.scheme == "file":
            return _read_file(Path(urllib.parse.unquote(parsed.path)), ref)
        if parsed.scheme:
            raise InvalidImageError(
                f"task image {ref!r}: {parsed.scheme}:// URLs are not read here; give Label "
                "Studio tasks with local-files, uploaded or http(s) images"
            )
        if ref.startswith(LOCAL_FILES_PATH) and self.document_root is not None:
            return _read_file(self._local_file(parsed), ref)
        if ref.startswith("/") and not Path(ref).is_file():
            return self._download(self._server_url(ref))
        return _read_file(Path(ref), ref)

    def _local_file(self, parsed: urllib.parse.ParseResult) -> Path:
        names = urllib.parse.parse_qs(parsed.query).get("d")
        if not names:
            raise InvalidImageError(f"local-files URL {parsed.geturl()!r} has no ?d=<path>")
        root = self.document_root.resolve()
        path = (root / names[0]).resolve()
        if not path.is_relative_to(root):
            raise InvalidImageError(
                f"local-files path {names[0]!r} leaves the document root {root}; refused"
            )
        return path

    def _server_url(self, path: str) -> str:
        if not self.label_studio_url:
            raise InvalidImageError(
                f"task image {path!r} is no file here, and Label Studio's address is unknown: "
                "start the backend with --label-studio-url (and --api-key), or with "
                "--document-root for local files"
            )
        return self.label_studio_url.rstrip("/") + path

    def _download(self, url: str) -> np.ndarray:
        request = urllib.request.Request(url)
        on_server = self.label_studio_url and url.startswith(self.label_studio_url.rstrip("/"))
        if on_server and self.api_key:
            request.add_header("Authorization", f"Token {self.api_key}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = response.read()
        except urllib.error.HTTPError as err:
            hint = " (check --api-key)" if err.code in (401, 403) else ""
            raise InvalidImageError(
                f"could not fetch {url}: HTTP {err.code} {err.reason}{hint}"
            ) from err
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise InvalidImageError(
                f"could not fetch {url}: {reason}; is the server running at that address?"
            ) from err
        return load_image(_pil(data, url))


def _read_file(path: Path, ref: str) -> np.ndarray:
    if not path.is_file():
        raise InvalidImageError(f"task image {ref!r}: no such file {path}")
    return load_image(path)


def _pil(data: bytes, url: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as err:
        raise InvalidImageError(f"{url} is not an image ({len(data)} bytes): {err}") from err
    return image
