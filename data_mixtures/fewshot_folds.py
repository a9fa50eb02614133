"""Episodic few-shot folds: which query, which class and which support images, episode by episode.

A :class:`FewShotFold` wraps any ``RecordSource`` whose semantic maps hold class ids, plus the
fold's test classes. Episodes come in two orders, as the HSNet evaluation code draws them:

* listed queries (PASCAL-5i, FSS-1000): episode ``n`` takes query ``n mod len(queries)``, a
  fixed (record, class) list, so every listed query is used before any repeats;
* class first (COCO-20i, user folders): episode ``n`` picks a class uniformly, then a query
  record showing it.

The ``shots`` supports are then drawn uniformly from the other records of the class, without
repeats. Episode ``n`` depends only on ``(seed, n)``, the fold and ``shots``; the first support of a
k-shot episode is the support of the same 1-shot episode. Masks are binary for the episode's class
(the query keeps ``IGNORE_LABEL`` on unlabelled pixels), and images are decoded only on access.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from data_mixtures.records import IGNORE_LABEL, EvalEpisode
from data_mixtures.sources.base import RecordSource
from painter.errors import ConfigError, DatasetError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpisodePlan:
    """What one episode uses, as record indices (nothing decoded).

    Attributes:
        query: record index of the query.
        class_id: the class the episode segments (the source's id).
        supports: record indices of the support (prompt) images, distinct, query excluded.
    """

    query: int
    class_id: int
    supports: tuple[int, ...]


class FewShotFold:
    """The episodes of one fold of a few-shot benchmark.

    Args:
        source: records with semantic class-id maps.
        class_ids: the fold's test classes; the fold's mIoU averages over these.
        name: e.g. "pascal-5i/0".
        queries: (record index, class id) pairs cycled through in order, or None to draw the
            class first and then a query (see the module docstring).
        members: class id -> record indices that show the class (support candidates, and query
            candidates when ``queries`` is None); default: ``source.class_index()`` restricted
            to ``class_ids``.
        num_episodes: episodes in the fold; default ``len(queries)`` for listed queries, else
            1000 (the protocol's number for PASCAL-5i and COCO-20i).
        seed: episode ``n`` draws from ``np.random.SeedSequence([seed, n])``.
        class_names: class id -> name, for reports.
    """

    def __init__(
        self,
        source: RecordSource,
        class_ids: Sequence[int],
        *,
        name: str,
        queries: Sequence[tuple[int, int]] | None = None,
        members: Mapping[int, Sequence[int]] | None = None,
        num_episodes: int | None = None,
        seed: int = 0,
        class_names: Mapping[int, str] | None = None,
    ) -> None:
        self.source = source
        self.name = name
        self.seed = seed
        wanted = tuple(int(c) for c in class_ids)
        if not wanted:
            raise ConfigError(f"{name}: a fold needs at least one test class")
        found = source.class_index() if members is None else members
        self.members = {
            c: np.unique(np.asarray(found.get(c, ()), dtype=np.int64)) for c in wanted
        }  # class -> sorted record indices
        usable = tuple(c for c in wanted if self.members[c].size >= 2)
        missing = sorted(set(wanted) - set(usable))
        if missing:
            logger.warning(
                "%s: classes %s have fewer than 2 images and are left out", name, missing
            )
        if not usable:
            raise DatasetError(
                f"{name}: no test class has 2 or more images (a query and a support); "
                f"classes {list(wanted)} in {source.name}"
            )
        self.class_ids = usable
        self.queries = (
            None
            if queries is None
            else tuple((int(i), int(c)) for i, c in queries if int(c) in usable)
        )
        if self.queries is not None and not self.queries:
            raise DatasetError(f"{name}: the query list holds no image of the usable classes")
        default = len(self.queries) if self.queries is not None else 1000
        self.num_episodes = default if num_episodes is None else int(num_episodes)
        if self.num_episodes < 1:
            raise ConfigError(f"{name}: num_episodes must be >= 1, got {self.num_episodes}")
        self.class_names = dict(class_names or {})

    def __len__(self) -> int:
        return self.num_episodes

    def plan(self, number: int, *, shots: int = 1) -> EpisodePlan:
        """Record indices of episode ``number`` (pure: no image is read)."""
        if shots < 1:
            raise ConfigError(f"shots must be >= 1, got {shots}")
        if not 0 <= number < self.num_episodes:
            raise IndexError(f"{self.name}: episode {number} of {self.num_episodes}")
        generator = np.random.default_rng(np.random.SeedSequence([self.seed, number]))
        if self.queries is not None:
            query, class_id = self.queries[number % len(self.queries)]
        else:
            class_id = self.class_ids[int(generator.integers(len(self.class_ids)))]
            candidates = self.members[class_id]
            query = int(candidates[generator.integers(candidates.size)])
        others = self.members[class_id][self.members[class_id] != query]  # (M,)
        if others.size < shots:
            raise DatasetError(
                f"{self.name}: class {self._label(class_id)} has {others.size} image(s) besides "
                f"the query; {shots}-shot needs {shots}. Use fewer shots or add images"
            )
        # A permutation prefix: the k-shot supports extend the 1-shot one.
        supports = others[generator.permutation(others.size)[:shots]]
        return EpisodePlan(query, int(class_id), tuple(int(i) for i in supports))

    def episode(self, number: int, *, shots: int = 1) -> EvalEpisode:
        """Episode ``number`` with decoded images and binary masks for its class."""
        plan = self.plan(number, shots=shots)
        query = self.source[plan.query]
        prompts = [self.source[i] for i in plan.supports]
        c = plan.class_id
        prompt_masks = []
        for index, record in zip(plan.supports, prompts):
            mask = (record.semantic == c).astype(np.int64)  # (H, W) 0/1
            if not mask.any():
                raise DatasetError(
                    f"{self.name}: support record {index} ({record.key}) is listed under class "
                    f"{self._label(c)} but its mask has no pixel of it; fix the split list"
                )
            prompt_masks.append(mask)
        query_mask = np.where(query.semantic == c, 1, 0)
        query_mask = np.where(query.semantic == IGNORE_LABEL, IGNORE_LABEL, query_mask)  # (H, W)
        return EvalEpisode(
            prompt_images=[record.image for record in prompts],
            prompt_masks=prompt_masks,
            query_image=query.image,
            query_mask=query_mask.astype(np.int64),
            class_ids=(c,),
            binary=True,
            source=self.source.name,
        )

    def _label(self, class_id: int) -> str:
        name = self.class_names.get(class_id)
        return f"{class_id} ({name})" if name else str(class_id)
