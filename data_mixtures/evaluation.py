"""Deterministic held-out evaluation episodes: k prompt images with masks, one query.

Episode ``i`` depends only on ``(seed, i)`` and the source, so a list of any length is a prefix
of a longer one. Pass a source that training never sees (another split, or a synthetic source
with a different seed).
"""

from __future__ import annotations

import numpy as np

from data_mixtures.records import IGNORE_LABEL, EvalEpisode, SegType
from data_mixtures.sampling import draw_record
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
