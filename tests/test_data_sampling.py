"""Episodes: canvas layout, shared colouring, masking, mixed context, determinism, eval episodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_mixtures.eval_episodes import build_eval_episodes
from data_mixtures.masking import MaskingConfig, block_mask, half_mask, sample_patch_mask
from data_mixtures.records import IGNORE_LABEL, SegRecord, SegType, collate_episodes
from data_mixtures.sampling import SamplingConfig, sample_episode
from data_mixtures.sources.base import RecordSource
from data_mixtures.synthetic import SyntheticConfig, SyntheticSource
from painter.errors import ConfigError

BANDS = 4  # toy records: four vertical bands of 8 pixels


class BandSource(RecordSource):
    """Record i: bands with classes (1 or 2, 3, 4, background); instances 1, 2, 3 by band."""

    seg_types = frozenset({SegType.SEMANTIC, SegType.INSTANCE})

    def __init__(self, n: int = 6) -> None:
        super().__init__("bands")
        self.n = n

    def __len__(self) -> int:
        return self.n

    def load(self, index: int) -> SegRecord:
        band_class = np.array([1 + index % 2, 3, 4, 0])
        semantic = np.repeat(band_class, 8)[None, :].repeat(32, axis=0).astype(np.int64)
        semantic[0] = IGNORE_LABEL
        instance = np.repeat(np.array([1, 2, 3, 0]), 8)[None, :].repeat(32, axis=0).astype(np.int64)
        image = np.random.default_rng(index).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        return SegRecord(image=image, semantic=semantic, instance=instance, source=self.name)


PLAIN = SamplingConfig(
    canvas_size=(64, 32),
    patch_size=8,
    crop_scale=(1.0, 1.0),
    instance_crop_scale=(1.0, 1.0),
    crop_ratio=(1.0, 1.0),
    hflip_prob=0.0,
    jitter_prob=0.0,
    mix_context_prob=0.0,
    min_region_pixels=4,
)
MASKING = MaskingConfig(min_block_patches=2)


def _halves(episode) -> tuple[np.ndarray, np.ndarray]:
    target = (episode.target.permute(1, 2, 0).numpy() * 255).round().astype(np.int64)  # (H, W, 3)
    half = target.shape[0] // 2
    return target[:half], target[half:]


def _band_colors(side: np.ndarray) -> list[tuple[int, ...]]:
    colors = []
    for band in range(BANDS):
        block = side[1:, band * 8 : (band + 1) * 8].reshape(-1, 3)
        assert (block == block[0]).all()  # one colour per band
        colors.append(tuple(block[0]))
    return colors


def test_episode_layout_and_types():
    episode = sample_episode(
        BandSource(), SegType.SEMANTIC, np.random.default_rng(0), sampling=PLAIN, masking=MASKING
    )
    assert episode.image.shape == (3, 64, 32) and episode.image.dtype == torch.float32
    assert episode.target.shape == (3, 64, 32) and 0 <= episode.target.min() <= 1
    assert episode.patch_mask.shape == (8 * 4,) and episode.patch_mask.dtype == torch.bool
    assert episode.valid.shape == (64, 32) and episode.seg_type is SegType.SEMANTIC
    # the ignore row of each half has weight 0 and is black
    assert (episode.valid[0] == 0).all() and (episode.valid[32] == 0).all()
    assert episode.valid[1:32].min() == 1 and (episode.target[:, 0] == 0).all()
    # without augmentation each half is a record's image exactly
    images = [record.image for record in BandSource()]
    for half in (episode.image[:, :32], episode.image[:, 32:]):
        pixels = (half.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        assert any(np.array_equal(pixels, image) for image in images)


def _record_index(half: torch.Tensor, source: RecordSource) -> int:
    pixels = (half.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return next(i for i, r in enumerate(source) if np.array_equal(r.image, pixels))


def test_coloring_is_shared_between_halves_and_distinct():
    source = BandSource()
    colored_counts = []
    for seed in range(30):
        episode = sample_episode(
            source, SegType.SEMANTIC, np.random.default_rng(seed), sampling=PLAIN, masking=MASKING
        )
        prompt, query = (_band_colors(side) for side in _halves(episode))
        black = (0, 0, 0)
        assert prompt[3] == query[3] == black  # background stays black
        for band in (1, 2):  # classes 3 and 4 sit in the same band of every record
            assert prompt[band] == query[band]
        # band 0 holds class 1 or 2 depending on the record: same class <=> same colour
        same_class = (
            _record_index(episode.image[:, :32], source) % 2
            == _record_index(episode.image[:, 32:], source) % 2
        )
        if same_class:
            assert prompt[0] == query[0]
        elif black not in (prompt[0], query[0]):
            assert prompt[0] != query[0]
        # distinct classes get distinct colours, far from black
        prompt_colored = [c for c in prompt if c != black]
        assert len(prompt_colored) == len(set(prompt_colored)) >= 1
        assert {c for c in query if c != black} <= set(prompt)  # query colours come from it
        array = np.array(prompt_colored, dtype=np.float64)
        assert np.linalg.norm(array, axis=1).min() >= PLAIN.min_color_brightness
        distances = np.linalg.norm(array[:, None] - array[None], axis=-1)
        assert (
            distances[~np.eye(len(array), dtype=bool)].min(initial=1e9) >= PLAIN.min_color_distance
        )
        colored_counts.append(len(prompt_colored))
    assert min(colored_counts) == 1 and max(colored_counts) == 3  # random subsets


def test_instance_episode_views_share_one_mapping():
    source = BandSource()
    for seed in range(10):
        episode = sample_episode(
            source, SegType.INSTANCE, np.random.default_rng(seed), sampling=PLAIN, masking=MASKING
        )
        prompt, query = _halves(episode)
        np.testing.assert_array_equal(prompt, query)  # identical views here, one mapping
        colors = [c for c in _band_colors(prompt) if c != (0, 0, 0)]
        assert 1 <= len(colors) == len(set(colors))  # distinct instances, distinct colours
        assert episode.seg_type is SegType.INSTANCE


def test_mixed_context_shares_the_mapping():
    config = SamplingConfig(
        **{
            **PLAIN.__dict__,
            "mix_context_prob": 1.0,
            "mix_grids": ((2, 2),),
            "mix_crop_scale": (1.0, 1.0),
        }
    )
    for seed in range(5):
        episode = sample_episode(
            BandSource(),
            SegType.SEMANTIC,
            np.random.default_rng(seed),
            sampling=config,
            masking=MASKING,
        )
        assert episode.image.shape == (3, 64, 32)
        prompt, query = _halves(episode)
        prompt_colors = {tuple(c) for c in prompt.reshape(-1, 3)}
        query_colors = {tuple(c) for c in query.reshape(-1, 3)}
        assert query_colors <= prompt_colors
        # four tiles of 16x16 with 4-pixel bands: class 3 (2nd band) in every tile, one colour
        class3 = {tuple(prompt[r, c]) for r in (5, 21) for c in (5, 21)}
        assert len(class3) == 1


def test_episodes_are_deterministic_in_the_generator():
    source = SyntheticSource(SyntheticConfig(image_size=(48, 48), num_records=40), seed=0)
    config = SamplingConfig(canvas_size=(96, 48), patch_size=8, mix_context_prob=0.5)
    for seg_type in SegType:
        a, b, c = (
            sample_episode(
                source, seg_type, np.random.default_rng(s), sampling=config, masking=MASKING
            )
            for s in (11, 11, 12)
        )
        for name in ("image", "target", "patch_mask", "valid"):
            assert torch.equal(getattr(a, name), getattr(b, name))
        assert not torch.equal(a.image, c.image)


def test_block_masking_ratio_is_exact_and_blocky():
    rng = np.random.default_rng(0)
    for grid, ratio in (((16, 8), 0.5), ((56, 28), 0.5), ((14, 14), 0.3), ((8, 4), 0.75)):
        config = MaskingConfig(mask_ratio=ratio, min_block_patches=4)
        for _ in range(5):
            mask = block_mask(grid, config, rng)
            assert mask.shape == (grid[0] * grid[1],) and mask.sum() == round(ratio * mask.size)
    mask = block_mask((56, 28), MaskingConfig(), rng).reshape(56, 28)
    padded = np.pad(mask, 1)
    neighbours = padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    assert (mask & neighbours).sum() / mask.sum() > 0.9  # blocks, not scattered patches


def test_half_mask_mode_hides_exactly_the_query_half():
    expected = np.zeros((8, 4), bool)
    expected[4:] = True
    np.testing.assert_array_equal(half_mask((8, 4)), expected.reshape(-1))
    always_half = MaskingConfig(half_mask_prob=1.0)
    episode = sample_episode(
        BandSource(),
        SegType.SEMANTIC,
        np.random.default_rng(0),
        sampling=PLAIN,
        masking=always_half,
    )
    np.testing.assert_array_equal(episode.patch_mask.numpy(), expected.reshape(-1))
    sometimes_half = MaskingConfig(min_block_patches=2, half_mask_prob=0.3)
    rng = np.random.default_rng(0)
    draws = [sample_patch_mask((8, 4), sometimes_half, rng) for _ in range(200)]
    halves = sum(np.array_equal(d, expected.reshape(-1)) for d in draws)
    assert 40 <= halves <= 80  # about 0.3 * 200


def test_collate_stacks_episodes():
    episodes = [
        sample_episode(BandSource(), t, np.random.default_rng(s), sampling=PLAIN, masking=MASKING)
        for s, t in enumerate([SegType.SEMANTIC, SegType.INSTANCE, SegType.SEMANTIC])
    ]
    batch = collate_episodes(episodes)
    assert len(batch) == 3 and batch.image.shape == (3, 3, 64, 32)
    assert batch.target.shape == (3, 3, 64, 32) and batch.valid.shape == (3, 64, 32)
    assert batch.patch_mask.shape == (3, 32) and batch.seg_type.tolist() == [0, 1, 0]
    assert batch.sources == ("bands",) * 3 and batch.to("cpu").image.shape == batch.image.shape


def test_config_validation():
    with pytest.raises(ConfigError, match="patches"):
        SamplingConfig(canvas_size=(100, 64), patch_size=16)
    with pytest.raises(ConfigError):
        SamplingConfig(colored_range=(3, 1))
    with pytest.raises(ConfigError):
        SamplingConfig(mix_grids=((0, 2),))
    with pytest.raises(ConfigError):
        MaskingConfig(mask_ratio=1.0)
    with pytest.raises(ConfigError):
        MaskingConfig(min_aspect=0.0)
    with pytest.raises(ConfigError):
        MaskingConfig(half_mask_prob=-0.1)


def test_eval_episodes_are_deterministic_binary_and_k_shot():
    source = SyntheticSource(SyntheticConfig(image_size=(40, 40), num_records=60), seed=9)
    episodes = build_eval_episodes(source, num_episodes=6, shots=2, seed=1)
    again = build_eval_episodes(source, num_episodes=4, shots=2, seed=1)
    other = build_eval_episodes(source, num_episodes=4, shots=2, seed=2)
    assert len(episodes) == 6
    for a, b in zip(episodes[:4], again, strict=True):  # a shorter list is a prefix
        np.testing.assert_array_equal(a.query_image, b.query_image)
        np.testing.assert_array_equal(a.query_mask, b.query_mask)
        assert a.class_ids == b.class_ids
    assert any(
        not np.array_equal(a.query_image, b.query_image) for a, b in zip(again, other, strict=True)
    )
    for episode in episodes:
        assert episode.binary and len(episode.class_ids) == 1
        assert len(episode.prompt_images) == len(episode.prompt_masks) == 2
        assert episode.query_mask.dtype == np.int64 and (episode.query_mask == 1).sum() >= 16
        for image, mask in zip(episode.prompt_images, episode.prompt_masks, strict=True):
            assert image.shape[:2] == mask.shape and set(np.unique(mask)) <= {0, 1}
            assert mask.sum() >= 16


def test_eval_episodes_multiclass():
    source = SyntheticSource(SyntheticConfig(image_size=(40, 40), num_records=60), seed=9)
    for episode in build_eval_episodes(source, num_episodes=4, shots=1, seed=0, binary=False):
        assert not episode.binary and episode.class_ids
        allowed = {0, *episode.class_ids}
        assert set(np.unique(episode.query_mask)) <= allowed
        assert set(np.unique(episode.prompt_masks[0])) <= allowed
