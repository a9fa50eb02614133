"""Mixtures: validation, weights, resumable and shardable item positions, the default mixture."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from data_mixtures.masking import MaskingConfig
from data_mixtures.mixture import (
    MixtureDataset,
    MixtureEntry,
    default_mixture,
    mixture_probabilities,
    shard_positions,
    source_schedule,
)
from data_mixtures.records import EpisodeBatch, SegType, collate_episodes
from data_mixtures.sampling import SamplingConfig
from data_mixtures.sources.photos import PhotoSource
from data_mixtures.synthetic import SyntheticConfig, SyntheticSource
from painter.errors import ConfigError, DatasetError

SAMPLING = SamplingConfig(canvas_size=(64, 32), patch_size=8)
MASKING = MaskingConfig(min_block_patches=2)


@pytest.fixture(scope="module")
def synthetic() -> SyntheticSource:
    return SyntheticSource(SyntheticConfig(image_size=(32, 32), num_records=100), seed=0)


def _entries(synthetic, weights=(3.0, 1.0)) -> list[MixtureEntry]:
    return [
        MixtureEntry("sem", weights[0], synthetic, SegType.SEMANTIC),
        MixtureEntry("inst", weights[1], synthetic, SegType.INSTANCE),
    ]


def _dataset(synthetic, seed=0, **kwargs) -> MixtureDataset:
    return MixtureDataset(
        _entries(synthetic), sampling=SAMPLING, masking=MASKING, seed=seed, length=1000, **kwargs
    )


def test_invalid_mixtures_raise_clear_errors(synthetic):
    with pytest.raises(ConfigError, match="empty"):
        MixtureDataset([], sampling=SAMPLING)
    with pytest.raises(ConfigError, match="weight 0"):
        MixtureEntry("zero", 0.0, synthetic)
    with pytest.raises(ConfigError, match="weight -1"):
        MixtureEntry("negative", -1, synthetic)
    with pytest.raises(ConfigError, match="finite"):
        MixtureEntry("nan", float("nan"), synthetic)
    with pytest.raises(ConfigError, match="unique"):
        mixture_probabilities([MixtureEntry("a", 1, synthetic), MixtureEntry("a", 2, synthetic)])
    photos = PhotoSource([np.zeros((16, 16, 3), np.uint8)], max_side=16)
    with pytest.raises(ConfigError, match="SEMANTIC"):
        MixtureEntry("photos", 1.0, photos, SegType.SEMANTIC)

    class Empty(SyntheticSource):
        def __len__(self) -> int:
            return 0

    with pytest.raises(DatasetError, match="empty"):
        mixture_probabilities([MixtureEntry("e", 1.0, Empty())])


def test_weights_are_normalised_and_logged(synthetic, caplog):
    with caplog.at_level(logging.INFO, logger="data_mixtures.mixture"):
        dataset = _dataset(synthetic)
    np.testing.assert_allclose(dataset.probabilities, [0.75, 0.25])
    assert "sem=0.750" in caplog.text and "inst=0.250" in caplog.text


def test_schedule_proportions_follow_weights():
    probabilities = [0.6, 0.3, 0.1]
    schedule = source_schedule(probabilities, seed=0, rows_per_entry=3000)
    assert len(schedule) > 4000
    np.testing.assert_allclose(np.bincount(schedule) / len(schedule), probabilities, atol=0.02)
    np.testing.assert_array_equal(
        schedule, source_schedule(probabilities, seed=0, rows_per_entry=3000)
    )
    assert not np.array_equal(schedule, source_schedule(probabilities, seed=1, rows_per_entry=3000))


def test_episode_sources_follow_weights(synthetic):
    dataset = _dataset(synthetic)
    counts = np.bincount([dataset.entry_index(k) for k in range(4000)], minlength=2)
    np.testing.assert_allclose(counts / counts.sum(), [0.75, 0.25], atol=0.03)
    episodes = [dataset[k] for k in range(40)]
    names = [e.source for e in episodes]
    assert names.count("sem") > names.count("inst") > 0
    for episode in episodes:
        expected = SegType.SEMANTIC if episode.source == "sem" else SegType.INSTANCE
        assert episode.seg_type is expected


def test_item_k_is_the_same_computed_first_or_later(synthetic):
    late = _dataset(synthetic)
    for k in range(12):
        late[k]
    late_item = late[57]
    fresh_item = _dataset(synthetic)[57]
    for name in ("image", "target", "patch_mask", "valid"):
        assert torch.equal(getattr(late_item, name), getattr(fresh_item, name))
    assert late_item.seg_type is fresh_item.seg_type
    other_seed = _dataset(synthetic, seed=1)[57]
    assert not torch.equal(other_seed.image, fresh_item.image)
    with pytest.raises(IndexError):
        late[1000]


def test_rank_shards_partition_positions():
    shards = [list(shard_positions(100, 120, rank=r, world_size=4)) for r in range(4)]
    assert sorted(k for shard in shards for k in shard) == list(range(100, 120))
    assert shards[1] == [101, 105, 109, 113, 117]
    with pytest.raises(ConfigError):
        shard_positions(0, 10, rank=4, world_size=4)


def test_dataloader_gives_episode_batches(synthetic):
    dataset = _dataset(synthetic)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, collate_fn=collate_episodes)
    batch = next(iter(loader))
    assert isinstance(batch, EpisodeBatch) and batch.image.shape == (4, 3, 64, 32)
    assert batch.patch_mask.shape == (4, 32) and batch.seg_type.dtype == torch.int64


def test_default_mixture_small_canvas():
    dataset = default_mixture((64, 32), 8, seed=0, length=100, num_synthetic=50)
    assert [e.name for e in dataset.entries] == [
        "synthetic-semantic",
        "synthetic-instance",
        "photo-regions",
    ]
    np.testing.assert_allclose(dataset.probabilities, [0.5, 0.3, 0.2])
    position = next(k for k in range(100) if dataset.entry_index(k) == 2)
    episode = dataset[position]
    assert episode.source == "photo-regions" and episode.seg_type is SegType.INSTANCE
    assert episode.image.shape == (3, 64, 32) and episode.target.max() > 0
    assert episode.patch_mask.sum() == 16 or episode.patch_mask[16:].all()
