"""In-context pair sampling: from a source to a training ``Episode``, with an explicit generator.

One episode (SegGPT §3.1, Painter's data pipeline):

1. **Context.** Semantic: pick a record and a class in it, then another record containing that
   class (the source's class index). Instance: two differently augmented views of one record.
2. **Augmentation.** Each side gets a random resized crop to the pair size (H/2, W), a flip and
   colour jitter (image only); crops are retried so the chosen class/instance stays visible.
3. **Colouring.** A random subset of the labels visible in the prompt (always including the
   chosen one) gets random distinct colours, far from black; one mapping serves both pairs, and
   every other pixel is black.
4. **Mixed context** (probability ``mix_context_prob``): several such pairs, coloured with one
   mapping, are stitched into a grid, cropped at random and resized back to the pair size.
5. **Masking** of the target canvas's patch grid (``masking.sample_patch_mask``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from data_mixtures.episode_coloring import colorize, random_palette, shuffled_seggpt_palette
from data_mixtures.masking import MaskingConfig, sample_patch_mask
from data_mixtures.records import IGNORE_LABEL, Episode, SegRecord, SegType, present_labels
from data_mixtures.sources.base import RecordSource
from data_mixtures.transforms import (
    Box,
    ColorJitter,
    HorizontalFlip,
    PairAugment,
    RandomResizedCrop,
    crop_resize_record,
    random_resized_crop_box,
    resize_image,
    resize_labels,
)
from painter.errors import ConfigError, DatasetError

__all__ = ["MaskingConfig", "SamplingConfig", "augmented_view", "draw_record", "sample_episode"]

_CROP_TRIES = 4  # random crops tried before falling back to the whole image


def _check_range(name: str, bounds: tuple[float, float], low: float, high: float) -> None:
    if len(bounds) != 2 or not low <= bounds[0] <= bounds[1] <= high:
        raise ConfigError(f"{name} must be (low, high) with {low} <= low <= high <= {high}")


@dataclass(frozen=True)
class SamplingConfig:
    """How episodes are built.

    Attributes:
        canvas_size: (H, W) of the stacked canvas; each pair side is (H/2, W).
        patch_size: patch size of the model; H/2 and W must be multiples of it.
        crop_scale, crop_ratio: RandomResizedCrop area fraction and w/h aspect (semantic pairs).
        instance_crop_scale: crop area fraction for the two views of an instance episode.
        hflip_prob: probability of a horizontal flip of each side.
        jitter: colour jitter strengths (brightness, contrast, saturation, hue).
        jitter_prob: probability that a side is colour-jittered.
        colored_range: inclusive range of how many labels get a colour per sample (at least
            the chosen one; at most what the prompt shows).
        min_color_distance: least RGB distance between two colours of one episode.
        min_color_brightness: least RGB distance of a colour from black.
        palette_color_prob: probability that an episode is coloured with the colours inference
            paints with (``seggpt_palette``, in a random order) instead of random colours. SegGPT
            colours every episode at random; a small model learns *where* the target is much
            sooner when part of its episodes need no colour to be copied from the prompt.
        mix_context_prob: probability of a mixed-context episode.
        mix_grids: (rows, cols) layouts of mixed-context episodes, one picked at random.
        mix_crop_scale: area fraction of the crop taken from the stitched grid.
        min_region_pixels: a label counts as present with at least this many pixels.
        max_tries: attempts at finding a usable record / context before giving up.
    """

    canvas_size: tuple[int, int] = (896, 448)
    patch_size: int = 16
    crop_scale: tuple[float, float] = (0.3, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    instance_crop_scale: tuple[float, float] = (0.5, 1.0)
    hflip_prob: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1)
    jitter_prob: float = 0.8
    colored_range: tuple[int, int] = (1, 8)
    min_color_distance: float = 60.0
    min_color_brightness: float = 100.0
    palette_color_prob: float = 0.0
    mix_context_prob: float = 0.25
    mix_grids: tuple[tuple[int, int], ...] = ((1, 2), (2, 1), (2, 2))
    mix_crop_scale: tuple[float, float] = (0.3, 1.0)
    min_region_pixels: int = 16
    max_tries: int = 20

    def __post_init__(self) -> None:
        height, width = self.canvas_size
        p = self.patch_size
        if p < 1 or height < 2 * p or width < p or height % (2 * p) or width % p:
            raise ConfigError(
                f"canvas {height}x{width} must split into two halves of whole {p}-pixel patches "
                f"(H a multiple of {2 * p}, W a multiple of {p})"
            )
        _check_range("crop_scale", self.crop_scale, 1e-6, 1.0)
        _check_range("instance_crop_scale", self.instance_crop_scale, 1e-6, 1.0)
        _check_range("mix_crop_scale", self.mix_crop_scale, 1e-6, 1.0)
        _check_range("crop_ratio", self.crop_ratio, 1e-3, 1e3)
        _check_range("colored_range", self.colored_range, 1, 10_000)
        for name in ("hflip_prob", "jitter_prob", "mix_context_prob", "palette_color_prob"):
            _check_range(name, (getattr(self, name),) * 2, 0.0, 1.0)
        if len(self.jitter) != 4:
            raise ConfigError("jitter is (brightness, contrast, saturation, hue)")
        ColorJitter(*self.jitter, p=self.jitter_prob)  # validates the strengths
        if not self.mix_grids or any(len(g) != 2 or min(g) < 1 for g in self.mix_grids):
            raise ConfigError(f"mix_grids must be (rows, cols) pairs >= 1, got {self.mix_grids}")
        if self.min_region_pixels < 1 or self.max_tries < 1:
            raise ConfigError("min_region_pixels and max_tries must be >= 1")
        if self.min_color_distance < 0 or not 0 <= self.min_color_brightness < 255 * 3**0.5:
            raise ConfigError("min_color_distance must be >= 0, min_color_brightness in [0, 441)")

    @property
    def pair_size(self) -> tuple[int, int]:
        """(h, w) pixels of one side (prompt or query) of the canvas."""
        return self.canvas_size[0] // 2, self.canvas_size[1]

    @property
    def grid_size(self) -> tuple[int, int]:
        """(h, w) patch grid of the whole canvas."""
        return self.canvas_size[0] // self.patch_size, self.canvas_size[1] // self.patch_size

    def augment(self, seg_type: SegType) -> PairAugment:
        scale = self.crop_scale if seg_type is SegType.SEMANTIC else self.instance_crop_scale
        return PairAugment(
            crop=RandomResizedCrop(self.pair_size, scale=scale, ratio=self.crop_ratio),
            flip=HorizontalFlip(self.hflip_prob),
            jitter=ColorJitter(*self.jitter, p=self.jitter_prob),
        )


@dataclass(frozen=True, eq=False)
class _Pair:
    """A prompt and a query side, both at pair size, with their label keys."""

    prompt: SegRecord
    query: SegRecord
    anchor: int  # the label the pair was built around (present on both sides)
    candidates: tuple[int, ...]  # labels visible in the prompt


def draw_record(
    source: RecordSource,
    seg_type: SegType,
    generator: np.random.Generator,
    *,
    min_pixels: int,
    max_tries: int,
) -> tuple[int, SegRecord]:
    """A random readable record of ``source`` with at least one label of ``seg_type``."""
    for _ in range(max_tries):
        index = int(generator.integers(len(source)))
        record = source.get(index)
        if record is None:
            continue
        labels = record.labels(seg_type)
        if labels is None:
            raise DatasetError(f"{source.name}: record {index} has no {seg_type.name} labels")
        if present_labels(labels, min_pixels=min_pixels):
            return index, record
    raise DatasetError(
        f"{source.name}: no record with {seg_type.name} labels found in {max_tries} tries "
        f"({source.num_skipped} unreadable so far)"
    )


def augmented_view(
    record: SegRecord,
    required: int,
    seg_type: SegType,
    config: SamplingConfig,
    generator: np.random.Generator,
) -> SegRecord:
    """An augmented view in which label ``required`` is still visible (whole image as fallback)."""
    augment = config.augment(seg_type)
    for _ in range(_CROP_TRIES):
        view = augment(record, generator)
        labels = view.labels(seg_type)
        if np.count_nonzero(labels == required) >= min(config.min_region_pixels, labels.size):
            return view
    whole = augment.flip(
        crop_resize_record(record, (0, 0, *record.size), config.pair_size), generator
    )
    return whole if augment.jitter is None else augment.jitter(whole, generator)


def _semantic_pair(
    source: RecordSource, config: SamplingConfig, generator: np.random.Generator
) -> _Pair:
    min_pixels = config.min_region_pixels
    query_index, query = draw_record(
        source, SegType.SEMANTIC, generator, min_pixels=min_pixels, max_tries=config.max_tries
    )
    classes = query.classes(min_pixels=min_pixels)
    anchor = classes[int(generator.integers(len(classes)))]
    prompt = query  # fallback: two views of the query record itself
    for _ in range(config.max_tries):
        index = source.sample_with_class(anchor, generator, exclude=query_index)
        if index is None:
            break
        record = source.get(index)
        if record is not None and anchor in record.classes(min_pixels=min_pixels):
            prompt = record
            break
    prompt_view = augmented_view(prompt, anchor, SegType.SEMANTIC, config, generator)
    query_view = augmented_view(query, anchor, SegType.SEMANTIC, config, generator)
    return _Pair(prompt_view, query_view, anchor, prompt_view.classes())


def _instance_pair(
    source: RecordSource, config: SamplingConfig, generator: np.random.Generator
) -> _Pair:
    _, record = draw_record(
        source,
        SegType.INSTANCE,
        generator,
        min_pixels=config.min_region_pixels,
        max_tries=config.max_tries,
    )
    ids = record.instances(min_pixels=config.min_region_pixels)
    anchor = ids[int(generator.integers(len(ids)))]
    prompt = augmented_view(record, anchor, SegType.INSTANCE, config, generator)
    query = augmented_view(record, anchor, SegType.INSTANCE, config, generator)
    return _Pair(prompt, query, anchor, prompt.instances())


def _select(
    pair_anchors: set[int],
    candidates: set[int],
    config: SamplingConfig,
    generator: np.random.Generator,
) -> list[int]:
    """The anchors plus a random number of other candidates (sorted)."""
    low, high = config.colored_range
    count = int(generator.integers(low, high, endpoint=True))
    extras = sorted(candidates - pair_anchors)
    count = min(max(count - len(pair_anchors), 0), len(extras))
    chosen = generator.choice(len(extras), size=count, replace=False) if count else []
    return sorted(pair_anchors | {extras[k] for k in chosen})


def _key_maps(
    pairs: list[_Pair], seg_type: SegType, config: SamplingConfig, generator: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per pair (prompt, query) key maps, (h, w) int64: coloured keys > 0, black 0, ignore -1.

    Semantic keys are class ids shared by all pairs (one selection over their union); instance
    keys are renumbered per pair so that instances of different pairs never share a colour.
    """
    maps = []
    if seg_type is SegType.SEMANTIC:
        candidates = set().union(*(p.candidates for p in pairs))
        selected = np.asarray(_select({p.anchor for p in pairs}, candidates, config, generator))
        for pair in pairs:
            sides = [pair.prompt.semantic, pair.query.semantic]
            maps.append(tuple(np.where(np.isin(s, selected) | (s < 0), s, 0) for s in sides))
        return maps
    next_key = 1
    for pair in pairs:
        selected = _select({pair.anchor}, set(pair.candidates), config, generator)
        lookup = {old: next_key + k for k, old in enumerate(selected)}
        next_key += len(selected)
        sides = []
        for ids in (pair.prompt.instance, pair.query.instance):
            keys = np.where(ids < 0, IGNORE_LABEL, 0)
            for old, new in lookup.items():
                keys[ids == old] = new
            sides.append(keys)
        maps.append(tuple(sides))
    return maps


def _stitch(tiles: list[np.ndarray], cols: int) -> np.ndarray:
    """rows*cols arrays of one shape (h, w, ...) -> (rows*h, cols*w, ...) grid, row-major."""
    rows = len(tiles) // cols
    return np.concatenate(
        [np.concatenate(tiles[r * cols : (r + 1) * cols], axis=1) for r in range(rows)], axis=0
    )


@dataclass(frozen=True, eq=False)
class _Side:
    """One half of the canvas: image (h, w, 3) uint8, target (h, w, 3) uint8, valid (h, w)."""

    image: np.ndarray
    target: np.ndarray
    valid: np.ndarray


def _render_side(
    images: list[np.ndarray],
    key_maps: list[np.ndarray],
    colors: Mapping[int, np.ndarray],
    cols: int,
) -> _Side:
    """Colour the key maps and stitch images, targets and loss weights into one grid."""
    return _Side(
        image=_stitch(images, cols),
        target=_stitch([colorize(keys, colors) for keys in key_maps], cols),
        valid=_stitch([(keys != IGNORE_LABEL).astype(np.float32) for keys in key_maps], cols),
    )


def _crop_side(side: _Side, box: Box, size: tuple[int, int]) -> _Side:
    """Crop ``box`` from a stitched side and resize it (bicubic image, nearest target/valid)."""
    return _Side(
        image=resize_image(side.image, size, box),
        target=resize_labels(side.target, size, box),
        valid=resize_labels(side.valid, size, box),
    )


def sample_episode(
    source: RecordSource,
    seg_type: SegType,
    generator: np.random.Generator,
    *,
    sampling: SamplingConfig,
    masking: MaskingConfig,
    name: str = "",
) -> Episode:
    """Build one training episode from ``source``; all randomness comes from ``generator``.

    Returns:
        ``Episode`` with a (3, H, W) canvas (prompt on top, query below), the coloured target
        stitched the same way, the patch mask over the target's (H/p, W/p) grid and the (H, W)
        loss weights (0 on unlabeled pixels).
    """
    seg_type = SegType(seg_type)
    if seg_type not in source.seg_types:
        raise ConfigError(f"source {source.name} has no {seg_type.name} labels")
    mixed = generator.random() < sampling.mix_context_prob
    rows, cols = (1, 1)
    if mixed:
        rows, cols = sampling.mix_grids[int(generator.integers(len(sampling.mix_grids)))]
    make_pair = _semantic_pair if seg_type is SegType.SEMANTIC else _instance_pair
    pairs = [make_pair(source, sampling, generator) for _ in range(rows * cols)]
    key_maps = _key_maps(pairs, seg_type, sampling, generator)
    keys = sorted({k for maps in key_maps for m in maps for k in present_labels(m)})
    if sampling.palette_color_prob > 0 and generator.random() < sampling.palette_color_prob:
        palette = shuffled_seggpt_palette(len(keys), generator)
    else:
        palette = random_palette(
            len(keys),
            generator,
            min_distance=sampling.min_color_distance,
            min_brightness=sampling.min_color_brightness,
        )
    colors = dict(zip(keys, palette, strict=True))
    prompt = _render_side([p.prompt.image for p in pairs], [m[0] for m in key_maps], colors, cols)
    query = _render_side([p.query.image for p in pairs], [m[1] for m in key_maps], colors, cols)
    if mixed:
        pair_h, pair_w = sampling.pair_size
        aspect = pair_w / pair_h  # crop with the pair's aspect (up to 3/4..4/3 of it)
        box = random_resized_crop_box(
            rows * pair_h,
            cols * pair_w,
            sampling.mix_crop_scale,
            (0.75 * aspect, 4 / 3 * aspect),
            generator,
        )
        prompt, query = (_crop_side(side, box, sampling.pair_size) for side in (prompt, query))
    image = np.concatenate([prompt.image, query.image], axis=0)  # (H, W, 3) uint8
    target = np.concatenate([prompt.target, query.target], axis=0)  # (H, W, 3) uint8
    valid = np.concatenate([prompt.valid, query.valid], axis=0)  # (H, W) float32
    patch_mask = sample_patch_mask(sampling.grid_size, masking, generator)  # (h*w,)
    return Episode(
        image=torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0),  # (3, H, W)
        target=torch.from_numpy(target).permute(2, 0, 1).float().div_(255.0),  # (3, H, W)
        patch_mask=torch.from_numpy(patch_mask),
        valid=torch.from_numpy(np.ascontiguousarray(valid, dtype=np.float32)),
        seg_type=seg_type,
        source=name or source.name,
    )
