"""The objects the promptable model trains and is scored on: images at the model's square input
size with their instance masks, drawn from ``data_mixtures`` records (the procedural synthetic
source and photo pseudo-masks), as a stream for training and as fixed lists for evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from data_mixtures.records import SegRecord
from data_mixtures.sources.base import RecordSource
from painter.errors import ConfigError, DatasetError, missing_dependency
from painter.promptable.transforms import resize_longest_side
from painter.resize import resize_labels

try:
    from scipy import ndimage
except ImportError as _err:
    raise missing_dependency("scipy", "train", "promptable training") from _err

#: Object spacing of the promptable demo's synthetic images (see PromptableTrainConfig).
DEMO_SPACING = 0.85


@dataclass
class ObjectSample:
    """One image at the model's input size with its objects: (S, S, 3) uint8 and (N, S, S)
    bool masks (zero-padded at the bottom/right when the image is not square)."""

    image: np.ndarray
    masks: np.ndarray


def object_sample(record: SegRecord, side: int, min_pixels: int) -> ObjectSample | None:
    """Resize ``record`` so its longer side is ``side``, pad it square and split its instance
    map into one mask per connected object of at least ``min_pixels`` pixels."""
    if record.instance is None:
        raise DatasetError(f"{record.source}: promptable training needs instance labels")
    image = resize_longest_side(record.image, side)
    height, width = image.shape[:2]
    ids = np.asarray(resize_labels(record.instance, (height, width)), dtype=np.int64)  # (h, w)
    masks = []
    for object_id in np.unique(ids[ids > 0]):
        parts, count = ndimage.label(ids == object_id)
        for part in range(1, count + 1):
            mask = parts == part
            if mask.sum() >= min_pixels:
                masks.append(mask)
    if not masks:
        return None
    padded = np.zeros((side, side, 3), dtype=np.uint8)
    padded[:height, :width] = image
    stacked = np.zeros((len(masks), side, side), dtype=bool)
    stacked[:, :height, :width] = np.stack(masks)
    return ObjectSample(padded, stacked)


def demo_sources(
    side: int, seed: int, spacing: float = DEMO_SPACING
) -> tuple[RecordSource, RecordSource, RecordSource]:
    """Training synthetic images, photo regions and held-out synthetic images at ``side``."""
    from data_mixtures.sources.photos import PhotoSource
    from data_mixtures.synthetic import SyntheticConfig, SyntheticSource

    synthetic = SyntheticConfig(image_size=(side, side), num_records=100_000, spacing=spacing)
    return (
        SyntheticSource(synthetic, seed=seed, name="promptable-synthetic"),
        PhotoSource(max_side=side),
        SyntheticSource(synthetic, seed=seed + 10_000, name="promptable-held-out"),
    )


#: Size the open-set images are drawn at (then resized to the model's input side).
OPENSET_SIDE = 256


def openset_sources(
    seed: int, held_out_seed: int | None = None
) -> tuple[RecordSource, RecordSource]:
    """Open-set same-look images of the training shape/texture families (for training) and of
    the held-out families (never trained on; seed ``held_out_seed``, by default ``seed`` +
    10000), drawn at :data:`OPENSET_SIDE`."""
    from data_mixtures.openset import OpenSetSource
    from data_mixtures.openset_config import LookMode, OpenSetConfig, held_out_config

    size = (OPENSET_SIDE, OPENSET_SIDE)
    look = LookMode.SAME_LOOK
    return (
        OpenSetSource(OpenSetConfig(image_size=size), seed=seed, look=look, name="openset"),
        OpenSetSource(
            held_out_config(image_size=size),
            seed=seed + 10_000 if held_out_seed is None else held_out_seed,
            look=look,
            name="held-out-families",
        ),
    )


class ObjectStream:
    """Deterministic object samples: sample ``k`` depends only on (seed, k)."""

    def __init__(
        self,
        sources: Sequence[RecordSource],
        weights: Sequence[float],
        side: int,
        min_pixels: int,
        seed: int,
    ) -> None:
        if not sources or len(sources) != len(weights) or min(weights) < 0 or sum(weights) <= 0:
            raise ConfigError("need sources with non-negative weights that sum above 0")
        self.sources = list(sources)
        self.probs = np.asarray(weights, dtype=np.float64) / sum(weights)
        self.side, self.min_pixels, self.seed = side, min_pixels, seed

    def __getitem__(self, k: int) -> ObjectSample:
        rng = np.random.default_rng([self.seed, k])
        for _ in range(20):
            source = self.sources[int(rng.choice(len(self.sources), p=self.probs))]
            record = source.get(int(rng.integers(len(source))))
            if record is None:
                continue
            sample = object_sample(record, self.side, self.min_pixels)
            if sample is not None:
                if rng.random() < 0.5:  # horizontal flip, image and masks together
                    sample = ObjectSample(sample.image[:, ::-1].copy(), sample.masks[:, :, ::-1])
                return sample
        raise DatasetError(f"no object of >= {self.min_pixels} pixels in 20 draws (sample {k})")


def centre_point(mask: np.ndarray) -> np.ndarray:
    """(2,) x, y of the object pixel farthest from its border (a click a person would make)."""
    distance = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), mask.shape)
    return np.array([x, y], dtype=np.float32)


def object_samples(
    source: RecordSource, count: int, side: int, *, start: int = 0, min_pixels: int = 64
) -> list[ObjectSample]:
    """The object samples of records ``start``, ``start + 1``, ... of ``source`` (records with
    no object large enough are skipped) until ``count`` are found."""
    samples, index = [], start
    while len(samples) < count and index < len(source):
        sample = object_sample(source[index], side, min_pixels)
        if sample is not None:
            samples.append(sample)
        index += 1
    if not samples:
        raise DatasetError(f"{source.name}: no object of >= {min_pixels} pixels to evaluate on")
    return samples
