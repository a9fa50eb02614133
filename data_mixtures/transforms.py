"""Paired augmentations: the same geometry for an image and its label maps, driven by a generator.

Images are resized bicubic, label maps nearest (labels stay exact); colour jitter touches the
image only. Every random draw comes from the ``np.random.Generator`` passed in.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from data_mixtures.records import SegRecord
from painter.errors import ConfigError

Box = tuple[int, int, int, int]  # (top, left, height, width) in pixels


def _check_range(name: str, bounds: tuple[float, float], low: float, high: float) -> None:
    if len(bounds) != 2 or not low <= bounds[0] <= bounds[1] <= high:
        raise ConfigError(f"{name} must be (low, high) with {low} <= low <= high <= {high}")


def resize_image(image: np.ndarray, size: tuple[int, int], box: Box | None = None) -> np.ndarray:
    """Bicubic resize of (H, W, 3) uint8 (optionally of a crop ``box``) to ``size`` (h, w)."""
    pil = Image.fromarray(image)
    crop = None if box is None else (box[1], box[0], box[1] + box[3], box[0] + box[2])
    return np.asarray(pil.resize((size[1], size[0]), Image.BICUBIC, box=crop))


def resize_labels(labels: np.ndarray, size: tuple[int, int], box: Box | None = None) -> np.ndarray:
    """Nearest resize of (H, W) labels (or (H, W, C) colours) to ``size`` (h, w); exact values."""
    top, left, height, width = box if box is not None else (0, 0, *labels.shape[:2])
    rows = top + ((np.arange(size[0]) + 0.5) * height / size[0]).astype(np.int64)  # (h,)
    cols = left + ((np.arange(size[1]) + 0.5) * width / size[1]).astype(np.int64)  # (w,)
    return labels[rows[:, None], cols[None, :]]  # (h, w, ...)


def crop_resize_record(record: SegRecord, box: Box, size: tuple[int, int]) -> SegRecord:
    """Crop ``box`` from the image and both label maps, resized to ``size`` (h, w)."""
    return dataclasses.replace(
        record,
        image=resize_image(record.image, size, box),
        semantic=None if record.semantic is None else resize_labels(record.semantic, size, box),
        instance=None if record.instance is None else resize_labels(record.instance, size, box),
    )


def flip_record(record: SegRecord) -> SegRecord:
    """Mirror the image and both label maps left-right."""

    def flip(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.ascontiguousarray(a[:, ::-1])

    return dataclasses.replace(
        record,
        image=flip(record.image),
        semantic=flip(record.semantic),
        instance=flip(record.instance),
    )


def random_resized_crop_box(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: np.random.Generator,
) -> Box:
    """A box covering ``scale`` of the area with width/height aspect in ``ratio``.

    Ten tries at a random area and log-uniform aspect; then the largest centred box whose aspect
    is clamped into ``ratio``.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * generator.uniform(*scale)
        aspect = math.exp(generator.uniform(*log_ratio))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(generator.integers(0, height - h, endpoint=True))
            left = int(generator.integers(0, width - w, endpoint=True))
            return top, left, h, w
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, max(1, round(width / ratio[0]))
    elif aspect > ratio[1]:
        h, w = height, max(1, round(height * ratio[1]))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


@dataclass(frozen=True)
class RandomResizedCrop:
    """Crop a random box and resize it to ``size`` (bicubic image, nearest labels).

    Attributes:
        size: output (h, w).
        scale: range of the crop area as a fraction of the image area.
        ratio: range of the crop's width/height aspect.
    """

    size: tuple[int, int]
    scale: tuple[float, float] = (0.3, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def __post_init__(self) -> None:
        if len(self.size) != 2 or min(self.size) < 1:
            raise ConfigError(f"crop size must be (h, w) >= 1, got {self.size}")
        _check_range("scale", self.scale, 1e-6, 1.0)
        _check_range("ratio", self.ratio, 1e-3, 1e3)

    def box(self, height: int, width: int, generator: np.random.Generator) -> Box:
        return random_resized_crop_box(height, width, self.scale, self.ratio, generator)

    def __call__(self, record: SegRecord, generator: np.random.Generator) -> SegRecord:
        return crop_resize_record(record, self.box(*record.size, generator), self.size)


@dataclass(frozen=True)
class HorizontalFlip:
    """Mirror image and labels together with probability ``p``."""

    p: float = 0.5

    def __post_init__(self) -> None:
        _check_range("flip probability", (self.p, self.p), 0.0, 1.0)

    def __call__(self, record: SegRecord, generator: np.random.Generator) -> SegRecord:
        return flip_record(record) if generator.random() < self.p else record


def _grey(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) float -> (H, W, 1) luma (ITU-R 601)."""
    return (image @ np.array([0.299, 0.587, 0.114]))[..., None]


def _shift_hue(image: np.ndarray, shift: float) -> np.ndarray:
    """Rotate the hue of (H, W, 3) float 0..255 by ``shift`` turns (via PIL's HSV)."""
    hsv = np.asarray(
        Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8)).convert("HSV")
    )
    hsv = hsv.copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int64) + round(shift * 256)) % 256
    pil = Image.frombytes("HSV", (hsv.shape[1], hsv.shape[0]), hsv.tobytes())
    return np.asarray(pil.convert("RGB"), dtype=np.float64)


@dataclass(frozen=True)
class ColorJitter:
    """Random brightness, contrast, saturation and hue, in random order, image only.

    Factors are drawn from ``[max(0, 1 - x), 1 + x]`` for brightness/contrast/saturation and the
    hue shift from ``[-hue, hue]`` turns; the whole jitter happens with probability ``p``.
    """

    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    p: float = 0.8

    def __post_init__(self) -> None:
        if min(self.brightness, self.contrast, self.saturation) < 0 or not 0 <= self.hue <= 0.5:
            raise ConfigError("jitter strengths must be >= 0 and hue in [0, 0.5]")
        _check_range("jitter probability", (self.p, self.p), 0.0, 1.0)

    def apply(self, image: np.ndarray, generator: np.random.Generator) -> np.ndarray:
        """(H, W, 3) uint8 -> jittered (H, W, 3) uint8."""
        if generator.random() >= self.p:
            return image
        out = image.astype(np.float64)
        for op in generator.permutation(4):
            if op == 0 and self.brightness > 0:
                out = out * generator.uniform(max(0.0, 1 - self.brightness), 1 + self.brightness)
            elif op == 1 and self.contrast > 0:
                factor = generator.uniform(max(0.0, 1 - self.contrast), 1 + self.contrast)
                mean = _grey(np.clip(out, 0, 255)).mean()
                out = mean + (out - mean) * factor
            elif op == 2 and self.saturation > 0:
                factor = generator.uniform(max(0.0, 1 - self.saturation), 1 + self.saturation)
                grey = _grey(np.clip(out, 0, 255))
                out = grey + (out - grey) * factor
            elif op == 3 and self.hue > 0:
                out = _shift_hue(out, generator.uniform(-self.hue, self.hue))
            out = np.clip(out, 0, 255)
        return np.rint(out).astype(np.uint8)

    def __call__(self, record: SegRecord, generator: np.random.Generator) -> SegRecord:
        return dataclasses.replace(record, image=self.apply(record.image, generator))


@dataclass(frozen=True)
class PairAugment:
    """Crop, flip and jitter in that order: the per-pair augmentation of Painter/SegGPT."""

    crop: RandomResizedCrop
    flip: HorizontalFlip = HorizontalFlip()
    jitter: ColorJitter | None = ColorJitter()

    def __call__(self, record: SegRecord, generator: np.random.Generator) -> SegRecord:
        record = self.flip(self.crop(record, generator), generator)
        return record if self.jitter is None else self.jitter(record, generator)
