"""Video at the edges: frames from a folder or a video file, overlay GIF/MP4 out.

Frames are read one at a time, so a long video never sits in memory. Video files are decoded with
OpenCV (``opencv-python-headless``).
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from painter.errors import InvalidVideoError, missing_dependency
from painter.io import load_image

logger = logging.getLogger(__name__)

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_CONVERT_HINT = (
    "convert it to MP4 (H.264), e.g. `ffmpeg -i VIDEO -c:v libx264 out.mp4`, or extract its "
    "frames into a folder of images"
)


def _cv2():
    try:
        import cv2
    except ImportError as err:  # or pass a folder of frames, which needs no OpenCV
        raise missing_dependency("opencv-python-headless", "video", "video files") from err
    return cv2


class VideoFrames:
    """The frames of a folder of images (sorted by name, numbers in numeric order) or a video file.

    Iterating yields (H, W, 3) uint8 RGB frames; ``names`` gives each frame's output name (the
    image's stem for a folder, ``00000``, ``00001``, ... for a file). Opening checks that the first
    frame decodes, so a bad input fails before any model work.

    Raises:
        InvalidVideoError: the path is missing, the folder has no images, or the file cannot be
            decoded.
    """

    def __init__(self, source: str | os.PathLike) -> None:
        self.path = Path(source)
        if self.path.is_dir():
            self.files = sorted(
                (p for p in self.path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES),
                key=_frame_order,
            )
            if not self.files:
                raise InvalidVideoError(
                    f"{self.path} holds no frame images ({', '.join(FRAME_SUFFIXES)})"
                )
            self.names = [p.stem for p in self.files]
        elif self.path.is_file():
            self.files = []
            count = self._probe()
            self.names = [f"{i:05d}" for i in range(count)]
        else:
            raise InvalidVideoError(f"{self.path}: no such video file or frame folder")

    def __len__(self) -> int:
        """Frames in the video (for a file, OpenCV's count, which some containers get wrong)."""
        return len(self.names)

    def _probe(self) -> int:
        cv2 = _cv2()
        capture = cv2.VideoCapture(str(self.path))
        try:
            if not capture.isOpened():
                raise InvalidVideoError(
                    f"{self.path}: OpenCV cannot open this video; {_CONVERT_HINT}"
                )
            ok, _ = capture.read()
            if not ok:
                raise InvalidVideoError(
                    f"{self.path}: no frame could be decoded from this video; {_CONVERT_HINT}"
                )
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            capture.release()
        return max(count, 1)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.files:
            for path in self.files:
                yield load_image(path)
            return
        cv2 = _cv2()
        capture = cv2.VideoCapture(str(self.path))
        try:
            while True:
                ok, bgr = capture.read()
                if not ok:
                    break
                yield np.ascontiguousarray(bgr[..., ::-1])  # (H, W, 3) BGR -> RGB
        finally:
            capture.release()

    def name(self, index: int) -> str:
        """The output name of frame ``index`` (beyond the counted frames: its number)."""
        return self.names[index] if index < len(self.names) else f"{index:05d}"


class OverlayFormat(str, enum.Enum):
    """How the overlay video is written."""

    GIF = "gif"
    MP4 = "mp4"
    NONE = "none"


class OverlayWriter:
    """Collects overlay frames into an animated GIF (PIL) or writes them to an MP4 (OpenCV).

    GIF frames are downscaled so their longer side is at most ``max_side`` and kept until
    :meth:`close`; MP4 frames are written as they come, at full size.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fmt: OverlayFormat | str,
        *,
        fps: float = 10.0,
        max_side: int = 480,
    ) -> None:
        self.path = Path(path)
        self.format = OverlayFormat(fmt)
        self.fps = fps
        self.max_side = max_side
        self._frames: list[Image.Image] = []
        self._writer = None

    def add(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        if self.format is OverlayFormat.GIF:
            image = Image.fromarray(frame)
            scale = self.max_side / max(image.size)
            if scale < 1:
                size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                image = image.resize(size, Image.BILINEAR)
            self._frames.append(image)
        elif self.format is OverlayFormat.MP4:
            cv2 = _cv2()
            if self._writer is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                size = (frame.shape[1], frame.shape[0])
                self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, size)
            self._writer.write(np.ascontiguousarray(frame[..., ::-1]))  # RGB -> BGR

    def close(self) -> Path | None:
        """Finish the file; returns its path (None when nothing was written)."""
        if self.format is OverlayFormat.GIF and self._frames:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            first, *rest = self._frames
            duration = max(20, round(1000 / self.fps))
            first.save(self.path, save_all=True, append_images=rest, duration=duration, loop=0)
            self._frames = []
            return self.path
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            return self.path
        return None


def _frame_order(path: Path) -> tuple:
    stem = path.stem
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)
