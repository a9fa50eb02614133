"""In-context segmentation metrics: class-pooled mIoU and FB-IoU over episodes, with
prompt-ignoring baselines so a number can be read against what needs no prompt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from seggpt.predictor import SegGPTPredictor

IGNORE = -1


@dataclass
class IoUAccumulator:
    """Pools intersection and union per class over many episodes.

    ``miou`` averages the pooled IoU of each foreground class (the few-shot convention);
    ``fb_iou`` averages pooled foreground and background IoU over all episodes.
    """

    intersection: dict[int, float] = field(default_factory=dict)
    union: dict[int, float] = field(default_factory=dict)
    fb: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))  # rows: bg, fg; cols: I, U

    def update(self, pred: np.ndarray, truth: np.ndarray, class_ids: Sequence[int]) -> None:
        """Add one episode: ``pred``/``truth`` (H, W) class-id maps; ``class_ids`` its classes.

        Pixels where ``truth`` is IGNORE do not count.
        """
        valid = truth != IGNORE
        for c in class_ids:
            p, t = (pred == c) & valid, (truth == c) & valid
            self.intersection[c] = self.intersection.get(c, 0.0) + float((p & t).sum())
            self.union[c] = self.union.get(c, 0.0) + float((p | t).sum())
        for row, (p, t) in enumerate([(pred == 0, truth == 0), (pred != 0, truth > 0)]):
            p, t = p & valid, t & valid
            self.fb[row] += [(p & t).sum(), (p | t).sum()]

    @property
    def miou(self) -> float:
        ious = [self.intersection[c] / self.union[c] for c in self.union if self.union[c] > 0]
        return float(np.mean(ious)) if ious else 0.0

    @property
    def fb_iou(self) -> float:
        return float(np.mean(self.fb[:, 0] / np.maximum(self.fb[:, 1], 1)))

    def per_class(self) -> dict[int, float]:
        return {c: self.intersection[c] / self.union[c] for c in self.union if self.union[c] > 0}


@dataclass(frozen=True)
class EvalReport:
    """mIoU / FB-IoU of the model and of prompt-ignoring baselines on the same episodes."""

    miou: float
    fb_iou: float
    episodes: int
    baselines: dict[str, float]

    def to_dict(self) -> dict[str, object]:
        return {
            "miou": self.miou,
            "fb_iou": self.fb_iou,
            "episodes": self.episodes,
            "baselines": dict(self.baselines),
        }


def episode_classes(episode) -> list[int]:
    """Foreground class ids an episode is scored on (those in its prompts or its query)."""
    ids = set(np.unique(episode.query_mask).tolist())
    for mask in episode.prompt_masks:
        ids |= set(np.unique(mask).tolist())
    return sorted(i for i in ids if i > 0)


def _pooled(episode, mask: np.ndarray) -> np.ndarray:
    """Binary episodes mark their class as 1; score it under the source's class id instead, so
    classes are pooled across episodes as the few-shot protocols do."""
    mask = np.asarray(mask).astype(np.int64, copy=False)  # class ids overflow a uint8 mask
    if getattr(episode, "binary", False) and getattr(episode, "class_ids", ()):
        return np.where(mask == 1, episode.class_ids[0], mask)
    return mask


def evaluate(
    predictor: SegGPTPredictor,
    episodes: Sequence,
    *,
    shots: int | None = None,
    ensemble: str = "feature",
    baselines: bool = True,
    progress: bool = False,
) -> EvalReport:
    """Score ``predictor`` on evaluation episodes (objects with ``prompt_images``,
    ``prompt_masks``, ``query_image``, ``query_mask``).

    Args:
        shots: use only the first ``shots`` prompts of each episode (None = all).
        baselines: also score "all foreground" (every pixel is the episode's class), "wrong
            prompt" (the model given the prompts of the next episode) and, when every episode
            knows its query's objects (``query_objects``), "all objects" (every object is the
            episode's class); none of them uses the right prompt.
    """
    model_acc, full_acc, wrong_acc = IoUAccumulator(), IoUAccumulator(), IoUAccumulator()
    objects_acc = IoUAccumulator()
    know_objects = all(getattr(ep, "query_objects", None) is not None for ep in episodes)
    n = len(episodes)
    for i, ep in enumerate(episodes):
        k = shots or len(ep.prompt_images)
        truth = _pooled(ep, ep.query_mask)
        classes = np.unique(_pooled(ep, np.array(episode_classes(ep)))).tolist()
        [pred] = predictor.predict(
            ep.prompt_images[:k], ep.prompt_masks[:k], [ep.query_image], ensemble=ensemble
        )
        model_acc.update(_pooled(ep, pred.mask), truth, classes)
        if baselines:
            full_acc.update(np.full_like(truth, classes[0]), truth, classes)
            if know_objects:
                objects_acc.update(np.where(ep.query_objects, classes[0], 0), truth, classes)
            other = episodes[(i + 1) % n]
            [wrong] = predictor.predict(
                other.prompt_images[:k],
                other.prompt_masks[:k],
                [ep.query_image],
                ensemble=ensemble,
            )
            # Whatever the wrong prompt marks counts as a guess of this episode's class.
            wrong_acc.update(np.where(wrong.mask > 0, classes[0], 0), truth, classes)
        if progress:
            print(f"\reval {i + 1}/{n}", end="", flush=True)
    found = {"all_foreground": full_acc.miou, "wrong_prompt": wrong_acc.miou} if baselines else {}
    if baselines and know_objects:
        found["all_objects"] = objects_acc.miou
    return EvalReport(model_acc.miou, model_acc.fb_iou, n, found)
