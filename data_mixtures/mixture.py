"""A weighted mixture of sources as data, and a resumable, shardable training dataset over it.

Item ``k`` of a ``MixtureDataset`` is a pure function of ``(seed, k)``:

* which entry it comes from is read from a *source schedule* built once with
  ``datasets.interleave_datasets(probabilities=weights, seed=seed)`` over one small index dataset
  per entry (position ``k`` reads schedule row ``k % len(schedule)``);
* everything else is drawn from ``np.random.default_rng(np.random.SeedSequence([seed, k]))``.

So a trainer can resume at any position and give rank ``r`` of ``n`` the positions
``start + r, start + r + n, ...`` (``shard_positions``) without generating earlier items.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch.utils.data

from data_mixtures.masking import MaskingConfig

if TYPE_CHECKING:
    from data_mixtures.synthetic import SyntheticConfig
from data_mixtures.records import Episode, SegType
from data_mixtures.sampling import SamplingConfig, sample_episode
from data_mixtures.sources.base import RecordSource
from painter.errors import ConfigError, DatasetError, missing_dependency

logger = logging.getLogger(__name__)

StoppingStrategy = Literal["first_exhausted", "all_exhausted"]


@dataclass(frozen=True, eq=False)
class MixtureEntry:
    """One component of a mixture.

    Attributes:
        name: unique name, used in logs and as ``Episode.source``.
        weight: relative sampling weight (> 0; weights are normalised over the mixture).
        source: where records come from.
        seg_type: which labels of the source the episodes use.
    """

    name: str
    weight: float
    source: RecordSource
    seg_type: SegType = SegType.SEMANTIC

    def __post_init__(self) -> None:
        object.__setattr__(self, "seg_type", SegType(self.seg_type))  # accept 0 / 1 too
        if not self.name:
            raise ConfigError("a mixture entry needs a name")
        if not (isinstance(self.weight, (int, float)) and math.isfinite(self.weight)):
            raise ConfigError(f"mixture entry {self.name!r}: weight must be a finite number")
        if self.weight <= 0:
            raise ConfigError(
                f"mixture entry {self.name!r} has weight {self.weight}; weights must be > 0 "
                "(drop the entry instead of giving it weight 0)"
            )
        if self.seg_type not in self.source.seg_types:
            offered = sorted(t.name for t in self.source.seg_types)
            raise ConfigError(
                f"mixture entry {self.name!r}: source {self.source.name!r} has no "
                f"{self.seg_type.name} labels (it has {offered})"
            )


def mixture_probabilities(entries: Sequence[MixtureEntry]) -> np.ndarray:
    """Validate a mixture and return its normalised weights, (E,) float64 summing to 1."""
    if not entries:
        raise ConfigError("the mixture is empty: give at least one MixtureEntry")
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"mixture entry names must be unique; repeated: {duplicates}")
    for entry in entries:
        if len(entry.source) == 0:
            raise DatasetError(
                f"mixture entry {entry.name!r}: source {entry.source.name!r} is empty"
            )
    weights = np.asarray([e.weight for e in entries], dtype=np.float64)
    return weights / weights.sum()


def source_schedule(
    probabilities: Sequence[float],
    *,
    seed: int,
    rows_per_entry: int = 4096,
    stopping_strategy: StoppingStrategy = "first_exhausted",
) -> np.ndarray:
    """Entry index of each schedule position, via ``datasets.interleave_datasets``.

    Each entry contributes an index dataset of ``rows_per_entry`` rows; they are interleaved with
    the given probabilities and seed. With ``first_exhausted`` the schedule ends when the
    most-weighted entry runs out (about ``rows_per_entry / max(p)`` positions).

    Returns:
        (M,) int64 entry indices.
    """
    if rows_per_entry < 1:
        raise ConfigError(f"rows_per_entry must be >= 1, got {rows_per_entry}")
    try:
        import datasets
    except ImportError as err:
        raise missing_dependency("datasets", "train", "training mixtures") from err
    parts = [
        datasets.Dataset.from_dict({"entry": np.full(rows_per_entry, i, dtype=np.int64)})
        for i in range(len(probabilities))
    ]
    interleaved = datasets.interleave_datasets(
        parts,
        probabilities=[float(p) for p in probabilities],
        seed=seed,
        stopping_strategy=stopping_strategy,
    )
    return np.asarray(interleaved["entry"], dtype=np.int64)


def shard_positions(start: int, stop: int, *, rank: int, world_size: int) -> range:
    """The data positions of ``rank`` in ``[start, stop)``: every ``world_size``-th one."""
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} is outside world size {world_size}")
    return range(start + rank, stop, world_size)


class MixtureDataset(torch.utils.data.Dataset):
    """Map-style dataset of training ``Episode``s drawn from a weighted mixture.

    Args:
        entries: the mixture.
        sampling: how episodes are built (canvas size, augmentation, colouring, mixing).
        masking: how the target patches are hidden.
        seed: the data seed; item k depends only on (seed, k) and the configuration.
        length: how many positions the dataset has (``__len__``).
        rows_per_entry, stopping_strategy: see ``source_schedule``.
    """

    def __init__(
        self,
        entries: Sequence[MixtureEntry],
        *,
        sampling: SamplingConfig | None = None,
        masking: MaskingConfig | None = None,
        seed: int = 0,
        length: int = 1_000_000,
        rows_per_entry: int = 4096,
        stopping_strategy: StoppingStrategy = "first_exhausted",
    ) -> None:
        self.entries = tuple(entries)
        self.probabilities = mixture_probabilities(self.entries)
        if length < 1:
            raise ConfigError(f"length must be >= 1, got {length}")
        self.sampling = sampling or SamplingConfig()
        self.masking = masking or MaskingConfig()
        self.seed = seed
        self.length = length
        self.schedule = source_schedule(
            self.probabilities,
            seed=seed,
            rows_per_entry=rows_per_entry,
            stopping_strategy=stopping_strategy,
        )
        logger.info(
            "mixture (seed %d, schedule of %d): %s",
            seed,
            len(self.schedule),
            ", ".join(
                f"{e.name}={p:.3f} ({e.seg_type.name.lower()}, {len(e.source)} records)"
                for e, p in zip(self.entries, self.probabilities, strict=True)
            ),
        )

    def __len__(self) -> int:
        return self.length

    def entry_index(self, position: int) -> int:
        """Which entry position ``position`` draws from."""
        return int(self.schedule[position % len(self.schedule)])

    def generator(self, position: int) -> np.random.Generator:
        """The generator of position ``position``: ``SeedSequence([seed, position])``."""
        return np.random.default_rng(np.random.SeedSequence([self.seed, position]))

    def __getitem__(self, position: int) -> Episode:
        position = int(position)
        if not 0 <= position < self.length:
            raise IndexError(f"position {position} outside [0, {self.length})")
        entry = self.entries[self.entry_index(position)]
        return sample_episode(
            entry.source,
            entry.seg_type,
            self.generator(position),
            sampling=self.sampling,
            masking=self.masking,
            name=entry.name,
        )

    @property
    def num_skipped(self) -> dict[str, int]:
        """Unreadable records skipped so far per entry (in this process)."""
        return {e.name: e.source.num_skipped for e in self.entries}


def default_entries(
    canvas_size: tuple[int, int] = (896, 448),
    *,
    seed: int = 0,
    num_synthetic: int = 10_000,
    synthetic: SyntheticConfig | None = None,
) -> list[MixtureEntry]:
    """The bundled mixture: synthetic semantic 0.5, synthetic instance 0.3, photo regions 0.2.

    Synthetic images are drawn at the pair size (H/2, W) with ``synthetic`` (default: the
    source's defaults, ``num_synthetic`` records); photos are scaled to at most that size.
    """
    from data_mixtures.sources.photos import PhotoSource
    from data_mixtures.synthetic import SyntheticConfig, SyntheticSource

    pair_size = (canvas_size[0] // 2, canvas_size[1])
    if synthetic is None:
        synthetic = SyntheticConfig(image_size=pair_size, num_records=num_synthetic)
    synthetic = SyntheticSource(synthetic, seed=seed)
    photos = PhotoSource(max_side=max(pair_size))
    return [
        MixtureEntry("synthetic-semantic", 0.5, synthetic, SegType.SEMANTIC),
        MixtureEntry("synthetic-instance", 0.3, synthetic, SegType.INSTANCE),
        MixtureEntry("photo-regions", 0.2, photos, SegType.INSTANCE),
    ]


def default_mixture(
    canvas_size: tuple[int, int] = (896, 448),
    patch_size: int = 16,
    seed: int = 0,
    *,
    length: int = 1_000_000,
    num_synthetic: int = 10_000,
    masking: MaskingConfig | None = None,
) -> MixtureDataset:
    """The bundled training mixture (see ``default_entries``) as a ``MixtureDataset``.

    Needs no download: synthetic data is procedural and the photos ship with scikit-image.
    """
    sampling = SamplingConfig(canvas_size=canvas_size, patch_size=patch_size)
    return MixtureDataset(
        default_entries(canvas_size, seed=seed, num_synthetic=num_synthetic),
        sampling=sampling,
        masking=masking,
        seed=seed,
        length=length,
    )
