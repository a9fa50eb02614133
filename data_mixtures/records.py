"""Typed containers for the data side: records from sources, training episodes, eval episodes.

Label conventions, shared by every source:

- ``semantic`` is an ``(H, W) int64`` class-index map: ``0`` is background, ``1..K`` are classes
  (``class_names[k]`` names class ``k`` when names are known) and ``IGNORE_LABEL`` (-1) marks
  pixels that carry no label (they get zero loss weight).
- ``instance`` is an ``(H, W) int64`` instance-id map: ``0`` is "no instance", each positive id is
  one object, ``IGNORE_LABEL`` marks unlabeled pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from painter.config import SegType  # one enum for data and models (type-token index)
from painter.errors import InvalidImageError, InvalidMaskError

IGNORE_LABEL = -1
_BINCOUNT_LIMIT = 1 << 20


def _check_label_map(name: str, labels: np.ndarray | None, shape: tuple[int, int]) -> None:
    if labels is None:
        return
    if not isinstance(labels, np.ndarray) or labels.dtype != np.int64:
        raise InvalidMaskError(f"{name} must be an int64 numpy array, got {type(labels)}")
    if labels.shape != shape:
        raise InvalidMaskError(f"{name} has shape {labels.shape}, the image is {shape}")


def present_labels(labels: np.ndarray, *, min_pixels: int = 1) -> tuple[int, ...]:
    """Positive label values covering at least ``min_pixels`` pixels of ``labels`` (H, W)."""
    positive = labels[labels > 0]  # (M,)
    if positive.size == 0:
        return ()
    if positive.max() < _BINCOUNT_LIMIT:  # counting beats sorting for the usual small ids
        counts = np.bincount(positive)
        return tuple(int(v) for v in np.flatnonzero(counts >= min_pixels))
    values, counts = np.unique(positive, return_counts=True)
    return tuple(int(v) for v in values[counts >= min_pixels])


@dataclass(frozen=True, eq=False)
class SegRecord:
    """One labelled image from a source.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        semantic: (H, W) int64 class ids or None (see the module docstring).
        instance: (H, W) int64 instance ids or None.
        class_names: names indexed by class id (``class_names[0]`` is the background), or ``()``.
        source: name of the source that produced the record.
        key: a stable identifier inside the source (file stem, row number, ...).
    """

    image: np.ndarray
    semantic: np.ndarray | None = None
    instance: np.ndarray | None = None
    class_names: tuple[str, ...] = ()
    source: str = ""
    key: str = ""

    def __post_init__(self) -> None:
        image = self.image
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise InvalidImageError(f"record image must be a uint8 numpy array, got {type(image)}")
        if image.ndim != 3 or image.shape[2] != 3:
            raise InvalidImageError(f"record image must be (H, W, 3), got {image.shape}")
        _check_label_map("semantic", self.semantic, image.shape[:2])
        _check_label_map("instance", self.instance, image.shape[:2])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return self.image.shape[0], self.image.shape[1]

    def labels(self, seg_type: SegType) -> np.ndarray | None:
        """The label map that ``seg_type`` reads: semantic classes or instance ids."""
        return self.semantic if seg_type is SegType.SEMANTIC else self.instance

    def classes(self, *, min_pixels: int = 1) -> tuple[int, ...]:
        """Class ids present in the semantic map (background and ignore excluded)."""
        return () if self.semantic is None else present_labels(self.semantic, min_pixels=min_pixels)

    def instances(self, *, min_pixels: int = 1) -> tuple[int, ...]:
        """Instance ids present in the instance map."""
        return () if self.instance is None else present_labels(self.instance, min_pixels=min_pixels)


@dataclass(frozen=True, eq=False)
class Episode:
    """One training sample: a prompt pair stacked over a query pair.

    Attributes:
        image: (3, H, W) float32 in [0, 1]; prompt image in rows ``[0, H/2)``, query below.
        target: (3, H, W) float32 in [0, 1]; the coloured masks stitched the same way.
        patch_mask: (h*w,) bool over the target's patch grid, row-major; True = hidden.
        valid: (H, W) float32 per-pixel loss weights (0 on unlabeled pixels).
        seg_type: what a colour means in ``target``.
        source: name of the mixture entry the episode came from.
    """

    image: torch.Tensor
    target: torch.Tensor
    patch_mask: torch.Tensor
    valid: torch.Tensor
    seg_type: SegType
    source: str = ""


@dataclass(frozen=True, eq=False)
class EpisodeBatch:
    """A batch of episodes with stacked tensors.

    Attributes:
        image: (B, 3, H, W) float32 in [0, 1].
        target: (B, 3, H, W) float32 in [0, 1].
        patch_mask: (B, h*w) bool, True = hidden.
        valid: (B, H, W) float32.
        seg_type: (B,) int64 ``SegType`` values (type-token indices).
        sources: the source name of each episode.
    """

    image: torch.Tensor
    target: torch.Tensor
    patch_mask: torch.Tensor
    valid: torch.Tensor
    seg_type: torch.Tensor
    sources: tuple[str, ...] = ()

    def __len__(self) -> int:
        return self.image.shape[0]

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> EpisodeBatch:
        """The same batch with every tensor on ``device``."""

        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, non_blocking=non_blocking)

        return EpisodeBatch(
            image=move(self.image),
            target=move(self.target),
            patch_mask=move(self.patch_mask),
            valid=move(self.valid),
            seg_type=move(self.seg_type),
            sources=self.sources,
        )

    def pin_memory(self) -> EpisodeBatch:
        """Page-locked copy; called by ``DataLoader(pin_memory=True)``."""
        return EpisodeBatch(
            image=self.image.pin_memory(),
            target=self.target.pin_memory(),
            patch_mask=self.patch_mask.pin_memory(),
            valid=self.valid.pin_memory(),
            seg_type=self.seg_type.pin_memory(),
            sources=self.sources,
        )


def collate_episodes(episodes: list[Episode]) -> EpisodeBatch:
    """Stack episodes of one canvas size into an ``EpisodeBatch`` (use as ``collate_fn``)."""
    if not episodes:
        raise ValueError("collate_episodes needs at least one episode")
    return EpisodeBatch(
        image=torch.stack([e.image for e in episodes]),  # (B, 3, H, W)
        target=torch.stack([e.target for e in episodes]),  # (B, 3, H, W)
        patch_mask=torch.stack([e.patch_mask for e in episodes]),  # (B, h*w)
        valid=torch.stack([e.valid for e in episodes]),  # (B, H, W)
        seg_type=torch.tensor([int(e.seg_type) for e in episodes], dtype=torch.int64),  # (B,)
        sources=tuple(e.source for e in episodes),
    )


@dataclass(frozen=True, eq=False)
class EvalEpisode:
    """One held-out evaluation episode with raw arrays (no resizing, no colouring).

    Attributes:
        prompt_images: k images, each (H_i, W_i, 3) uint8.
        prompt_masks: k class-index maps, each (H_i, W_i) int64 (0/1 when ``binary``).
        query_image: (H, W, 3) uint8.
        query_mask: (H, W) int64 ground truth, same class ids as the prompts; ``IGNORE_LABEL``
            marks unlabeled pixels.
        class_ids: the source's class ids the episode is about (one when ``binary``).
        binary: True when masks are 0/1 for the single class in ``class_ids``.
        source: name of the source.
        query_objects: optional (H, W) bool, every object in the query (targets and
            distractors alike), for the prompt-ignoring "all objects" baseline.
    """

    prompt_images: list[np.ndarray]
    prompt_masks: list[np.ndarray]
    query_image: np.ndarray
    query_mask: np.ndarray
    class_ids: tuple[int, ...]
    binary: bool
    source: str = ""
    query_objects: np.ndarray | None = None
