"""The promptable model behind a server: typed clicks and boxes in, candidate masks out.

:func:`parse_clicks` and :func:`parse_box` read prompts typed as text (``"x,y,label; ..."``,
``"x0,y0,x1,y1"``); :class:`PromptableRunner` holds a :class:`PromptablePredictor` behind a lock
(the predictor keeps the current image) for requests from several threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from painter.errors import InputMismatchError
from painter.io import ImageSource, load_image, overlay
from painter.promptable.predictor import PromptablePredictor
from painter.promptable.refine import refine_mask


def parse_clicks(text: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Points typed as ``x,y[,label]`` separated by ``;`` -> (N, 2) float and (N,) int labels
    (label 1 when omitted); (None, None) for an empty string."""
    rows = [part.strip() for part in (text or "").split(";") if part.strip()]
    if not rows:
        return None, None
    points, labels = [], []
    for row in rows:
        values = row.split(",")
        try:
            numbers = [float(v) for v in values]
        except ValueError:
            numbers = []
        if len(numbers) not in (2, 3):
            raise InputMismatchError(f"point {row!r} must be x,y or x,y,label (label 1 or 0)")
        points.append(numbers[:2])
        labels.append(int(numbers[2]) if len(numbers) == 3 else 1)
    return np.asarray(points, dtype=np.float32), np.asarray(labels, dtype=np.int64)


def parse_box(text: str) -> np.ndarray | None:
    """``x0,y0,x1,y1`` -> (4,) float; None for an empty string."""
    if not (text or "").strip():
        return None
    try:
        box = np.asarray([float(v) for v in text.split(",")], dtype=np.float32)
    except ValueError:
        box = np.zeros(0)
    if box.shape != (4,):
        raise InputMismatchError(f"box {text!r} must be x0,y0,x1,y1 in pixels")
    return box


@dataclass
class PromptedMasks:
    """Candidate masks for one prompted object, best first."""

    masks: list[np.ndarray]  # (H, W) bool each
    scores: list[float]  # predicted IoU of each mask
    overlays: list[np.ndarray]  # (H, W, 3) uint8 each


class PromptableRunner:
    """The promptable model behind a lock (its predictor holds the current image)."""

    def __init__(self, predictor: PromptablePredictor) -> None:
        self.predictor = predictor
        self.lock = threading.Lock()

    def segment(
        self, image: ImageSource, points_text: str = "", box_text: str = ""
    ) -> PromptedMasks:
        """Candidates for the object given by clicked points and/or a box, best score first."""
        rgb = load_image(image)
        points, labels = parse_clicks(points_text)
        box = parse_box(box_text)
        if points is None and box is None:
            raise InputMismatchError("click at least one point on the object, or draw a box")
        multimask = box is None and len(points) == 1  # one click is ambiguous
        with self.lock:
            self.predictor.set_image(rgb)
            result = self.predictor.predict(
                points=points, labels=labels, box=box, multimask=multimask
            )
        order = np.argsort(-result.scores[0])
        masks = [result.masks[0, k] for k in order]
        colors = np.array([[0, 0, 0], [30, 144, 255]], dtype=np.uint8)
        return PromptedMasks(
            masks=masks,
            scores=[float(result.scores[0, k]) for k in order],
            overlays=[overlay(rgb, m.astype(np.int64), colors) for m in masks],
        )

    def refine(self, image: ImageSource, mask: np.ndarray) -> np.ndarray:
        """An in-context class mask refined per connected component (same ids)."""
        with self.lock:
            return refine_mask(self.predictor, image, mask)
