"""Episodic few-shot evaluation (PASCAL-5i, COCO-20i, FSS-1000, user folders).

The metrics follow the HSNet protocol (shared/reference/sam_and_peers.md §5):

* mIoU: for each class, intersections and unions are summed over **all** episodes of that class
  before dividing (not an average of per-episode IoUs); then the mean over the fold's classes.
* FB-IoU: the mean of the foreground IoU and the background IoU, each pooled over every episode.
* The benchmark number is the mean of the per-fold numbers.

>>> fold = pascal5i_fold("data/VOC2012", 0)
>>> result = evaluate_fold(SegGPTPredictor(load_model("demo")), fold, shots=1)
>>> result.miou
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from data_mixtures.fewshot_folds import FewShotFold
from painter.errors import ConfigError
from seggpt.ensemble import EnsembleMode
from seggpt.evaluation.metrics import IoUAccumulator

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoldResult:
    """Scores of one fold.

    Attributes:
        name: the fold's name, e.g. "pascal-5i/0".
        miou: mean over the scored classes of the class-pooled IoU, 0..1.
        fb_iou: mean of the pooled foreground and background IoU, 0..1.
        episodes: how many episodes were scored.
        per_class: class id -> pooled IoU (classes that no episode drew are absent).
        class_names: class id -> name, where known.
    """

    name: str
    miou: float
    fb_iou: float
    episodes: int
    per_class: dict[int, float] = field(default_factory=dict)
    class_names: dict[int, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "miou": self.miou,
            "fb_iou": self.fb_iou,
            "episodes": self.episodes,
            "per_class": {str(c): iou for c, iou in sorted(self.per_class.items())},
            "class_names": {str(c): n for c, n in sorted(self.class_names.items())},
        }

    @classmethod
    def from_dict(cls, data: dict) -> FoldResult:
        return cls(
            name=str(data["name"]),
            miou=float(data["miou"]),
            fb_iou=float(data["fb_iou"]),
            episodes=int(data["episodes"]),
            per_class={int(c): float(v) for c, v in data.get("per_class", {}).items()},
            class_names={int(c): str(n) for c, n in data.get("class_names", {}).items()},
        )


@dataclass(frozen=True)
class FewShotReport:
    """Per-fold results of one benchmark run and their mean.

    Attributes:
        benchmark: "pascal-5i", "coco-20i", "fss-1000" or a folder's name.
        shots: support images per episode.
        ensemble: how the supports were combined ("feature" or "spatial").
        folds: one result per fold, in order.
    """

    benchmark: str
    shots: int
    ensemble: str
    folds: tuple[FoldResult, ...]

    @property
    def miou(self) -> float:
        """Mean of the folds' mIoU (the number papers report)."""
        return float(np.mean([f.miou for f in self.folds])) if self.folds else 0.0

    @property
    def fb_iou(self) -> float:
        return float(np.mean([f.fb_iou for f in self.folds])) if self.folds else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "benchmark": self.benchmark,
            "shots": self.shots,
            "ensemble": self.ensemble,
            "folds": [fold.to_dict() for fold in self.folds],
            "mean": {"miou": self.miou, "fb_iou": self.fb_iou},
        }

    def table(self) -> str:
        """A plain-text table: one row per fold and the mean, scores in percent."""
        rows = [(f.name, f.miou, f.fb_iou, str(f.episodes)) for f in self.folds]
        rows.append(("mean", self.miou, self.fb_iou, str(sum(f.episodes for f in self.folds))))
        width = max(len(r[0]) for r in rows + [("fold", 0, 0, "")])
        title = f"{self.benchmark}, {self.shots}-shot, {self.ensemble} ensemble"
        lines = [title, f"{'fold':<{width}}  {'mIoU':>6}  {'FB-IoU':>6}  {'episodes':>8}"]
        for name, miou, fb_iou, episodes in rows:
            lines.append(f"{name:<{width}}  {100 * miou:6.2f}  {100 * fb_iou:6.2f}  {episodes:>8}")
        return "\n".join(lines)


def score_episode(
    accumulator: IoUAccumulator, predicted: np.ndarray, query_mask: np.ndarray, class_id: int
) -> None:
    """Add one binary episode to ``accumulator`` under ``class_id`` (pure bookkeeping).

    Args:
        predicted: (H, W) the prediction; any id > 0 counts as the episode's class.
        query_mask: (H, W) ground truth: 1 foreground, 0 background, IGNORE_LABEL unlabelled.
    """
    if predicted.shape != query_mask.shape:
        raise ConfigError(f"prediction {predicted.shape} and truth {query_mask.shape} differ")
    pred = np.where(predicted > 0, class_id, 0)
    truth = np.where(query_mask == 1, class_id, query_mask)  # IGNORE_LABEL stays
    accumulator.update(pred, truth, [class_id])


def evaluate_fold(
    predictor,
    fold: FewShotFold,
    *,
    shots: int = 1,
    ensemble: EnsembleMode | str = EnsembleMode.FEATURE,
    num_episodes: int | None = None,
    progress: bool = True,
) -> FoldResult:
    """Score ``predictor`` on the episodes of ``fold``.

    Args:
        predictor: a :class:`~seggpt.predictor.SegGPTPredictor` (or anything with its
            ``predict(prompt_images, prompt_masks, query_images, *, ensemble)``).
        shots: support images per episode (1 for 1-shot).
        ensemble: how several supports are combined: "feature" or "spatial".
        num_episodes: score only the first episodes (default: all of the fold).
    """
    ensemble = EnsembleMode(ensemble)
    count = len(fold) if num_episodes is None else min(int(num_episodes), len(fold))
    accumulator = IoUAccumulator()
    for number in tqdm(range(count), desc=fold.name, unit="episode", disable=not progress):
        episode = fold.episode(number, shots=shots)
        [prediction] = predictor.predict(
            episode.prompt_images, episode.prompt_masks, [episode.query_image], ensemble=ensemble
        )
        score_episode(accumulator, prediction.mask, episode.query_mask, episode.class_ids[0])
    per_class = accumulator.per_class()
    unscored = sorted(set(fold.class_ids) - set(per_class))
    if unscored:
        logger.warning(
            "%s: no episode drew classes %s; mIoU averages the others", fold.name, unscored
        )
    return FoldResult(
        name=fold.name,
        miou=float(np.mean(list(per_class.values()))) if per_class else 0.0,
        fb_iou=accumulator.fb_iou,
        episodes=count,
        per_class=per_class,
        class_names={c: fold.class_names[c] for c in per_class if c in fold.class_names},
    )


def evaluate_fewshot(
    predictor,
    folds: Sequence[FewShotFold],
    *,
    benchmark: str,
    shots: int = 1,
    ensemble: EnsembleMode | str = EnsembleMode.FEATURE,
    num_episodes: int | None = None,
    progress: bool = True,
) -> FewShotReport:
    """Score every fold in turn; see :func:`evaluate_fold` for the arguments."""
    results = tuple(
        evaluate_fold(
            predictor,
            fold,
            shots=shots,
            ensemble=ensemble,
            num_episodes=num_episodes,
            progress=progress,
        )
        for fold in folds
    )
    return FewShotReport(benchmark, shots, EnsembleMode(ensemble).value, results)
