"""DAVIS 2017 semi-supervised scores: region similarity J, contour accuracy F, J&F (pure numpy).

Definitions of the DAVIS toolkit (shared/reference/sam_and_peers.md §2.4):

* J: IoU of the object's predicted and true masks; 1 when both are empty.
* F: both masks reduced to one-pixel boundaries; a boundary pixel counts as matched when the
  other boundary lies within a disk of radius ``ceil(0.008 * image diagonal)`` pixels.
  Precision = matched share of the predicted boundary, recall = matched share of the true one,
  F = 2PR / (P + R). An empty boundary gives precision (or recall) 1 against an empty one and
  0 against a non-empty one.
* Objects are the ids of the first ground-truth frame. The first frame (given) and the last
  frame are not scored. Each object's J and F are averaged over its frames; a sequence's and the
  dataset's J and F are means over objects, and J&F = (J + F) / 2.
* Pixels labelled ``void_value`` (255) in the ground truth count for neither side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from painter.errors import InputMismatchError, missing_dependency

try:
    import cv2
except ImportError as _err:
    raise missing_dependency("opencv-python-headless", "video", "DAVIS contour scores") from _err

BOUNDARY_TOLERANCE = 0.008  # fraction of the image diagonal
VOID = 255


def region_similarity(pred: np.ndarray, truth: np.ndarray, void: np.ndarray | None = None) -> float:
    """J of one object in one frame: (H, W) bool masks; ``void`` pixels are left out."""
    if void is not None:
        pred, truth = pred & ~void, truth & ~void
    union = np.count_nonzero(pred | truth)
    return 1.0 if union == 0 else np.count_nonzero(pred & truth) / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary of an (H, W) bool mask (the DAVIS ``seg2bmap`` rule).

    A pixel is on the boundary when it differs from its right, lower or lower-right neighbour;
    past the image edge a pixel's neighbour is itself. For an s x s square this marks 4s pixels:
    the column left of it and the row above it (outside), its own right column and bottom row.
    """
    m = mask.astype(bool)
    padded = np.pad(m, ((0, 1), (0, 1)), mode="edge")  # (H + 1, W + 1)
    right, below, diagonal = padded[:-1, 1:], padded[1:, :-1], padded[1:, 1:]
    return (m != right) | (m != below) | (m != diagonal)


def tolerance_disk(size: tuple[int, int], bound_th: float = BOUNDARY_TOLERANCE) -> np.ndarray:
    """The matching disk for an (H, W) image: radius ceil(bound_th * diagonal) (or bound_th
    pixels when it is >= 1), as a (2r + 1, 2r + 1) uint8 structuring element."""
    radius = int(bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*size)))
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (yy**2 + xx**2 <= radius**2).astype(np.uint8)


def contour_accuracy(
    pred: np.ndarray,
    truth: np.ndarray,
    void: np.ndarray | None = None,
    *,
    bound_th: float = BOUNDARY_TOLERANCE,
) -> float:
    """F of one object in one frame: (H, W) bool masks; ``void`` pixels are left out."""
    if void is not None:
        pred, truth = pred & ~void, truth & ~void
    pred_edge, truth_edge = boundary_map(pred), boundary_map(truth)
    n_pred, n_truth = np.count_nonzero(pred_edge), np.count_nonzero(truth_edge)
    if n_pred == 0 or n_truth == 0:
        return 1.0 if n_pred == n_truth else 0.0  # P, R = (1, 0) or (0, 1): F = 0
    disk = tolerance_disk(pred.shape, bound_th)
    near_truth = cv2.dilate(truth_edge.astype(np.uint8), disk) > 0
    near_pred = cv2.dilate(pred_edge.astype(np.uint8), disk) > 0
    precision = np.count_nonzero(pred_edge & near_truth) / n_pred
    recall = np.count_nonzero(truth_edge & near_pred) / n_truth
    total = precision + recall
    return 0.0 if total == 0 else 2 * precision * recall / total


@dataclass(frozen=True)
class ObjectScore:
    """One object's scores over the scored frames of its sequence (all 0..1)."""

    object_id: int
    j: float
    f: float
    j_recall: float  # share of frames with J > 0.5
    f_recall: float

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2


@dataclass(frozen=True)
class SequenceScore:
    """The scores of one sequence's objects; ``frames`` is how many frames were scored."""

    name: str
    objects: tuple[ObjectScore, ...]
    frames: int

    @property
    def j(self) -> float:
        return float(np.mean([o.j for o in self.objects]))

    @property
    def f(self) -> float:
        return float(np.mean([o.f for o in self.objects]))

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2


def score_sequence(
    predicted: Sequence[np.ndarray],
    truth: Sequence[np.ndarray],
    *,
    name: str = "",
    void_value: int | None = VOID,
    bound_th: float = BOUNDARY_TOLERANCE,
) -> SequenceScore:
    """Score one sequence: T predicted and T true (H, W) object-id maps (T >= 3)."""
    if len(predicted) != len(truth):
        raise InputMismatchError(
            f"{name or 'sequence'}: {len(predicted)} predicted frames for {len(truth)} annotated"
        )
    if len(truth) < 3:
        raise InputMismatchError(
            f"{name or 'sequence'} has {len(truth)} frames; DAVIS scoring skips the first and "
            "last, so it needs at least 3"
        )
    first = np.asarray(truth[0])
    object_ids = [int(i) for i in np.unique(first) if i > 0 and i != void_value]
    if not object_ids:
        raise InputMismatchError(f"{name or 'sequence'}: the first annotated frame has no object")
    per_object: dict[int, list[tuple[float, float]]] = {i: [] for i in object_ids}
    for t in range(1, len(truth) - 1):
        gt, pr = np.asarray(truth[t]), np.asarray(predicted[t])
        if gt.shape != pr.shape:
            raise InputMismatchError(
                f"{name or 'sequence'} frame {t}: prediction {pr.shape} and truth {gt.shape} differ"
            )
        void = (gt == void_value) if void_value is not None else None
        for i in object_ids:
            p, g = pr == i, gt == i
            per_object[i].append(
                (region_similarity(p, g, void), contour_accuracy(p, g, void, bound_th=bound_th))
            )
    objects = []
    for i, values in per_object.items():
        js, fs = np.array(values).T  # (frames,) each
        recall_j, recall_f = float((js > 0.5).mean()), float((fs > 0.5).mean())
        objects.append(ObjectScore(i, float(js.mean()), float(fs.mean()), recall_j, recall_f))
    return SequenceScore(name, tuple(objects), len(truth) - 2)


@dataclass(frozen=True)
class VOSReport:
    """Scores of several sequences; the global means are over all objects, as DAVIS reports."""

    sequences: tuple[SequenceScore, ...]

    def _objects(self) -> list[ObjectScore]:
        return [o for s in self.sequences for o in s.objects]

    @property
    def j(self) -> float:
        return float(np.mean([o.j for o in self._objects()]))

    @property
    def f(self) -> float:
        return float(np.mean([o.f for o in self._objects()]))

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2

    def to_dict(self) -> dict[str, object]:
        objects = self._objects()
        return {
            "global": {
                "J&F": self.jf,
                "J": self.j,
                "F": self.f,
                "J_recall": float(np.mean([o.j_recall for o in objects])),
                "F_recall": float(np.mean([o.f_recall for o in objects])),
                "objects": len(objects),
            },
            "sequences": {
                s.name: {
                    "J&F": s.jf,
                    "J": s.j,
                    "F": s.f,
                    "frames_scored": s.frames,
                    "objects": {str(o.object_id): {"J": o.j, "F": o.f} for o in s.objects},
                }
                for s in self.sequences
            },
        }

    def table(self) -> str:
        """Per-sequence and global J&F, J and F in percent."""
        width = max([len("sequence")] + [len(s.name) for s in self.sequences])
        lines = [f"{'sequence':<{width}}  {'J&F':>6}  {'J':>6}  {'F':>6}  objects"]
        for s in self.sequences:
            lines.append(
                f"{s.name:<{width}}  {100 * s.jf:6.2f}  {100 * s.j:6.2f}  {100 * s.f:6.2f}  "
                f"{len(s.objects):>7}"
            )
        lines.append(
            f"{'global':<{width}}  {100 * self.jf:6.2f}  {100 * self.j:6.2f}  {100 * self.f:6.2f}  "
            f"{len(self._objects()):>7}"
        )
        return "\n".join(lines)
