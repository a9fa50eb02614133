"""Deterministic held-out evaluation episodes: k prompt images with masks, one query.

Episode ``i`` depends only on ``(seed, i)`` and the source, so a list of any length is a prefix
of a longer one. Pass a source that training never sees (another split, or a synthetic source
with a different seed).
"""

from __future__ import annotations

import numpy as np

from data_mixtures.records import IGNORE_LABEL, EvalEpisode, SegType
from data_mixtures.sampling import SamplingConfig, augmented_view, draw_record
from data_mixtures.sources.base import RecordSource
from painter.errors import ConfigError, DatasetError


def _keep(mask: np.ndarray, class_ids: list[int], *, binary: bool, keep_ignore: bool) -> np.ndarray:
    """Restrict a class map to ``class_ids`` (others 0); binary: the one class becomes 1."""
    kept = np.where(np.isin(mask, class_ids), mask, 0)
    if binary:
        kept = (kept > 0).astype(np.int64)
    if keep_ignore:
        kept = np.where(mask == IGNORE_LABEL, IGNORE_LABEL, kept)
    return kept


def _episode(
    source: RecordSource,
    generator: np.random.Generator,
    *,
    shots: int,
    binary: bool,
    min_pixels: int,
    max_tries: int,
) -> EvalEpisode | None:
    query_index, query = draw_record(
        source, SegType.SEMANTIC, generator, min_pixels=min_pixels, max_tries=max_tries
    )
    classes = query.classes(min_pixels=min_pixels)
    anchor = classes[int(generator.integers(len(classes)))]
    prompts, used = [], {query_index}
    for _ in range(max_tries):
        if len(prompts) == shots:
            break
        index = source.sample_with_class(anchor, generator, exclude=query_index)
        if index is None:
            return None
        if index in used:
            continue
        record = source.get(index)
        if record is not None and anchor in record.classes(min_pixels=min_pixels):
            prompts.append(record)
            used.add(index)
    if len(prompts) < shots:
        return None
    if binary:
        class_ids = [anchor]
    else:
        shown = set().union(*(p.classes(min_pixels=min_pixels) for p in prompts))
        class_ids = sorted(shown & set(classes))
    return EvalEpisode(
        prompt_images=[p.image for p in prompts],
        prompt_masks=[
            _keep(p.semantic, class_ids, binary=binary, keep_ignore=False) for p in prompts
        ],
        query_image=query.image,
        query_mask=_keep(query.semantic, class_ids, binary=binary, keep_ignore=True),
        class_ids=tuple(class_ids),
        binary=binary,
        source=source.name,
        query_objects=None if query.instance is None else query.instance > 0,
    )


def build_eval_episodes(
    source: RecordSource,
    *,
    num_episodes: int,
    shots: int = 1,
    seed: int = 0,
    binary: bool = True,
    min_pixels: int = 16,
    max_tries: int = 50,
) -> list[EvalEpisode]:
    """Semantic evaluation episodes from ``source``.

    Each episode picks a query record and one of its classes, then ``shots`` other records
    containing that class as prompts. ``binary``: masks are 0/1 for that class. Otherwise masks
    keep the class ids shown by the prompts and present in the query (others 0). Query masks keep
    ``IGNORE_LABEL`` on unlabeled pixels; prompt masks have none.

    Raises:
        DatasetError: a class with enough other records cannot be found in ``max_tries`` tries.
    """
    if num_episodes < 0 or shots < 1:
        raise ConfigError(f"need num_episodes >= 0 and shots >= 1, got {num_episodes}, {shots}")
    if SegType.SEMANTIC not in source.seg_types:
        raise ConfigError(f"source {source.name} has no semantic labels to evaluate on")
    episodes = []
    for number in range(num_episodes):
        generator = np.random.default_rng(np.random.SeedSequence([seed, number]))
        for _ in range(max_tries):
            episode = _episode(
                source,
                generator,
                shots=shots,
                binary=binary,
                min_pixels=min_pixels,
                max_tries=max_tries,
            )
            if episode is not None:
                episodes.append(episode)
                break
        else:
            raise DatasetError(
                f"{source.name}: no class with {shots} other records found for episode {number} "
                f"in {max_tries} tries"
            )
    return episodes


def two_view_episodes(
    source: RecordSource,
    *,
    num_episodes: int,
    shots: int = 1,
    seed: int = 0,
    view_size: tuple[int, int] = (256, 256),
    region_fraction: tuple[float, float] = (0.02, 0.4),
    max_tries: int = 50,
) -> list[EvalEpisode]:
    """Instance episodes from differently augmented views of one image (SegGPT's instance recipe).

    Episode ``i`` picks a record of ``source`` and one of its instances covering a
    ``region_fraction`` of the image, then ``shots + 1`` random crops/flips/colour-jitters of the
    record at ``view_size`` in which the instance stays visible: the first ``shots`` are the
    prompts, the last the query. Masks are 0/1 for that instance. Every episode has its own class
    id (``i + 1``), so the pooled mIoU is the mean of per-episode IoUs.

    Raises:
        DatasetError: no suitable instance is found in ``max_tries`` tries.
    """
    if num_episodes < 0 or shots < 1:
        raise ConfigError(f"need num_episodes >= 0 and shots >= 1, got {num_episodes}, {shots}")
    if SegType.INSTANCE not in source.seg_types:
        raise ConfigError(f"source {source.name} has no instance labels for two-view episodes")
    height, width = view_size
    config = SamplingConfig(
        canvas_size=(2 * height, width),
        patch_size=1,
        instance_crop_scale=(0.4, 1.0),
        jitter=(0.2, 0.2, 0.1, 0.02),
        min_region_pixels=max(16, int(0.005 * height * width)),
    )
    episodes = []
    for number in range(num_episodes):
        generator = np.random.default_rng(np.random.SeedSequence([seed, number]))
        for _ in range(max_tries):
            _, record = draw_record(
                source, SegType.INSTANCE, generator, min_pixels=16, max_tries=max_tries
            )
            areas = np.bincount(record.instance[record.instance > 0].ravel()) / record.instance.size
            low, high = region_fraction
            ids = [i for i in range(1, areas.size) if low <= areas[i] <= high]
            if ids:
                break
        else:
            raise DatasetError(f"{source.name}: no region of {region_fraction} found")
        anchor = ids[int(generator.integers(len(ids)))]
        views = [
            augmented_view(record, anchor, SegType.INSTANCE, config, generator)
            for _ in range(shots + 1)
        ]
        masks = [(v.instance == anchor).astype(np.int64) for v in views]
        episodes.append(
            EvalEpisode(
                prompt_images=[v.image for v in views[:-1]],
                prompt_masks=masks[:-1],
                query_image=views[-1].image,
                query_mask=masks[-1],
                class_ids=(number + 1,),
                binary=True,
                source=source.name,
            )
        )
    return episodes


def cross_pair_episodes(
    images: list[np.ndarray], masks: list[np.ndarray], *, shots: int = 1, name: str = ""
) -> list[EvalEpisode]:
    """Every ordered pair of labelled images as an episode: query ``j``, first prompt ``i != j``,
    then the other images in order up to ``shots`` prompts (so the same episodes serve one-shot
    and few-shot scoring). Masks are binary (> 0); each episode has its own class id.

    Raises:
        ConfigError: fewer than ``shots + 1`` images, or images and masks that do not pair up.
    """
    if len(images) != len(masks) or len(images) < shots + 1:
        raise ConfigError(
            f"need as many masks as images and at least {shots + 1} of them "
            f"(got {len(images)} images, {len(masks)} masks)"
        )
    for k, (image, mask) in enumerate(zip(images, masks, strict=True)):
        if image.shape[:2] != mask.shape[:2]:
            raise ConfigError(f"image {k} is {image.shape[:2]} but its mask {mask.shape[:2]}")
    binary = [(np.asarray(m) > 0).astype(np.int64) for m in masks]
    episodes = []
    for j in range(len(images)):
        for i in range(len(images)):
            if i == j:
                continue
            rest = [k for k in range(len(images)) if k not in (i, j)]
            order = [i, *rest][:shots]
            episodes.append(
                EvalEpisode(
                    prompt_images=[images[k] for k in order],
                    prompt_masks=[binary[k] for k in order],
                    query_image=images[j],
                    query_mask=binary[j],
                    class_ids=(len(episodes) + 1,),
                    binary=True,
                    source=name,
                )
            )
    return episodes
