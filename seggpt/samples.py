"""Bundled sample episodes, made deterministically on the fly from data no training run draws:
held-out shape/texture/background families (one-shot, few-shot, colour-independent,
multi-class), two augmented views of a held-out photo, and scene-text words (when Debian's
``opencv-doc`` is installed). Used by the demo, the app and the docs."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from data_mixtures.eval_episodes import build_eval_episodes, cross_pair_episodes, two_view_episodes
from data_mixtures.openset import OpenSetSource
from data_mixtures.openset_config import LookMode, held_out_config
from data_mixtures.records import EvalEpisode
from data_mixtures.sources.photos import PhotoSource, PhotoSplit, installed_photos
from painter.errors import DatasetError

logger = logging.getLogger(__name__)

#: Side of the bundled samples' images (large enough to see the result, whatever the model).
SAMPLE_SIZE = (256, 256)


@dataclass
class Sample:
    """One episode: prompts with masks, a query and its true mask; ``query_objects`` marks every
    object in the query (for the "all objects" baseline) where known."""

    name: str
    prompt_images: list[np.ndarray]
    prompt_masks: list[np.ndarray]
    query_image: np.ndarray
    query_mask: np.ndarray
    query_objects: np.ndarray | None = None


def _sample(name: str, episode: EvalEpisode) -> Sample:
    """A sample with class ids renumbered 1..K in order (open-set ids are unique per group)."""
    ids = sorted({int(i) for m in episode.prompt_masks for i in np.unique(m)} - {0})
    lookup = {old: new for new, old in enumerate(ids, start=1)}

    def renumber(mask: np.ndarray) -> np.ndarray:
        out = np.where(mask < 0, mask, 0)
        for old, new in lookup.items():
            out[mask == old] = new
        return out

    return Sample(
        name,
        episode.prompt_images,
        [renumber(m) for m in episode.prompt_masks],
        episode.query_image,
        renumber(episode.query_mask),
        episode.query_objects,
    )


def synthetic_samples(size: tuple[int, int] = SAMPLE_SIZE, seed: int = 7) -> list[Sample]:
    """Episodes of the held-out families: two one-shot, one 4-shot, one colour-independent and
    one multi-class."""
    held_out = held_out_config(image_size=size, group_size=5)
    same = OpenSetSource(held_out, seed=seed, look=LookMode.SAME_LOOK, name="held-out")
    other = OpenSetSource(
        held_out, seed=seed, look=LookMode.COLOR_INDEPENDENT, name="held-out-colour"
    )
    several = OpenSetSource(
        held_out_config(image_size=size, categories_per_group=(2, 3)),
        seed=seed,
        look=LookMode.SAME_LOOK,
        name="held-out-multi",
    )
    one = build_eval_episodes(same, num_episodes=2, shots=1, seed=seed)
    few = build_eval_episodes(same, num_episodes=1, shots=4, seed=seed + 1)
    color = build_eval_episodes(other, num_episodes=1, shots=1, seed=seed + 2)
    multi = build_eval_episodes(several, num_episodes=1, shots=1, seed=seed + 3, binary=False)
    named = [
        ("synthetic_1shot_a", one[0]),
        ("synthetic_1shot_b", one[1]),
        ("synthetic_4shot", few[0]),
        ("synthetic_colour_independent", color[0]),
        ("synthetic_multiclass", multi[0]),
    ]
    return [_sample(n, e) for n, e in named]


def photo_samples(size: tuple[int, int] = SAMPLE_SIZE, seed: int = 7) -> list[Sample]:
    """Two augmented views of a held-out photo (a region of the first must be found in the
    second) and, when opencv-doc is installed, one scene-text word found from another."""
    from seggpt.evaluation.heldout import lettering_words

    samples = []
    try:
        photos = PhotoSource(installed_photos(PhotoSplit.HELD_OUT), max_side=512, name="photos")
        [pair] = two_view_episodes(photos, num_episodes=1, shots=1, seed=seed, view_size=size)
        samples.append(_sample("photo_two_views", pair))
    except DatasetError as error:
        logger.warning("no held-out photo sample: %s", error)
    try:
        images, masks = lettering_words()
        samples.append(_sample("lettering", cross_pair_episodes(images, masks, shots=1)[1]))
    except DatasetError as error:
        logger.warning("no lettering sample: %s", error)
    return samples


#: Seed of the categories of the bundled fixed-class task, and generator seeds of its splits.
FIXED_CLASS_CATEGORY_SEED = 10  # three distinct outlines and textures
FIXED_CLASS_SEEDS = {"train": 101, "held_out": 202}


def fixed_class_source(size: tuple[int, int], split: str) -> OpenSetSource:
    """The bundled fixed-class task: three categories of the held-out families (so no model of
    this framework was trained on them), each with one fixed look, in every image; what
    in-context tuning is shown on (benchmarks/bench_tuning.py and the app's Tuned-prompt tab)."""
    return OpenSetSource(
        held_out_config(image_size=size, categories_per_group=(3, 3), distractors_per_image=(1, 2)),
        seed=FIXED_CLASS_SEEDS[split],
        look=LookMode.SAME_LOOK,
        category_seed=FIXED_CLASS_CATEGORY_SEED,
        name=f"fixed-class-{split}",
    )


#: Class names of the fixed-class task, id 0 first.
FIXED_CLASS_NAMES = ("background", *fixed_class_source((64, 64), "train").category_names())


def fixed_class_split(
    size: tuple[int, int], split: str, count: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``count`` images and (H, W) class-id masks of the fixed-class task's ``split``."""
    source = fixed_class_source(size, split)
    records = [source[i] for i in range(count)]
    return [r.image for r in records], [r.semantic for r in records]


def bundled_samples(size: tuple[int, int] = SAMPLE_SIZE) -> list[Sample]:
    """Every bundled sample, images of ``size`` (photos: views of that size)."""
    return synthetic_samples(size) + photo_samples(size)
