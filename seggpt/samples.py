"""Bundled sample episodes, made deterministically on the fly: held-out synthetic shapes
(one-shot binary, few-shot, multi-class) and a real photo from scikit-image whose pseudo-mask
regions must be found in a flipped, cropped view. Used by the demo, the app and the docs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_mixtures.evaluation import build_eval_episodes
from data_mixtures.sources.photos import PhotoSource, load_skimage_photos
from data_mixtures.synthetic import SyntheticConfig, SyntheticSource
from data_mixtures.transforms import crop_resize_record, flip_record


@dataclass
class Sample:
    name: str
    prompt_images: list[np.ndarray]
    prompt_masks: list[np.ndarray]
    query_image: np.ndarray
    query_mask: np.ndarray


def synthetic_samples(size: tuple[int, int], seed: int = 7) -> list[Sample]:
    """Held-out episodes of the demo mixture's synthetic images (the demo model's training data
    uses other generator seeds)."""
    from seggpt.training_data import DEMO_SYNTHETIC

    config = SyntheticConfig(image_size=size, num_records=1000, **DEMO_SYNTHETIC)
    source = SyntheticSource(config, seed=seed, name="demo-synthetic")
    one = build_eval_episodes(source, num_episodes=2, shots=1, seed=seed)
    few = build_eval_episodes(source, num_episodes=1, shots=4, seed=seed + 1)
    multi = build_eval_episodes(source, num_episodes=1, shots=1, seed=seed + 2, binary=False)
    named = [
        ("synthetic_1shot_a", one[0]),
        ("synthetic_1shot_b", one[1]),
        ("synthetic_4shot", few[0]),
        ("synthetic_multiclass", multi[0]),
    ]
    return [
        Sample(n, e.prompt_images, e.prompt_masks, e.query_image, e.query_mask) for n, e in named
    ]


def photo_sample(max_side: int, objects: int = 3) -> Sample:
    """A real photo (scikit-image's coins) with its largest pseudo-mask regions that do not touch
    the border (objects, not background) as classes; the query is a flipped, cropped view."""
    [(_, coins)] = load_skimage_photos(("coins",))
    source = PhotoSource([coins], max_side=max_side, granularities=(500.0,), name="demo-photo")
    record = source[0]
    regions = record.instance
    border = set(
        np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))
    )
    ids, counts = np.unique(regions[regions > 0], return_counts=True)
    inner = [(c, i) for i, c in zip(ids, counts) if i not in border]  # objects, not background
    keep = [i for _, i in sorted(inner, reverse=True)[:objects]]
    labels = np.zeros_like(record.instance)
    for new, old in enumerate(keep, start=1):
        labels[record.instance == old] = new
    record = type(record)(image=record.image, semantic=labels, source=record.source)
    h, w = record.size
    view = crop_resize_record(
        flip_record(record), (h // 10, w // 10, h - h // 10, w - w // 10), (h, w)
    )
    return Sample("photo_coins", [record.image], [labels], view.image, view.semantic)


#: Classes of the bundled fixed-class task (the "easy" synthetic categories) that in-context
#: tuning is shown on: benchmarks/bench_tuning.py and the app's Tuned-prompt tab.
FIXED_CLASS_NAMES = ("background", "circle/solid-noise", "square/stripes", "triangle/checker")
#: Generator seeds of its splits.
FIXED_CLASS_SEEDS = {"train": 101, "held_out": 202}


def fixed_class_split(
    size: tuple[int, int], split: str, count: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``count`` images and (H, W) class-id masks of the fixed-class task's ``split``."""
    from seggpt.training_data import EASY_SYNTHETIC

    seed = FIXED_CLASS_SEEDS[split]
    source = SyntheticSource(
        SyntheticConfig(image_size=size, num_records=max(count, 1), **EASY_SYNTHETIC),
        seed=seed,
        name=f"fixed-class-{split}",
    )
    records = [source[i] for i in range(count)]
    return [r.image for r in records], [r.semantic for r in records]


def bundled_samples(half_size: tuple[int, int]) -> list[Sample]:
    """Every bundled sample, sized for a model whose prompt/query half is ``half_size``."""
    return synthetic_samples(half_size) + [photo_sample(max(half_size) * 2)]
