"""Paired transforms: same geometry for image and labels, image-only jitter, explicit generator."""

from __future__ import annotations

import numpy as np
import pytest

from data_mixtures.records import SegRecord
from data_mixtures.transforms import (
    ColorJitter,
    HorizontalFlip,
    PairAugment,
    RandomResizedCrop,
    random_resized_crop_box,
    resize_labels,
)
from painter.errors import ConfigError


@pytest.fixture
def record() -> SegRecord:
    rng = np.random.default_rng(0)
    semantic = np.repeat(np.arange(6, dtype=np.int64), 8)[None, :].repeat(30, axis=0)  # (30, 48)
    instance = (np.arange(30, dtype=np.int64) // 10)[:, None].repeat(48, axis=1) + 1
    image = rng.integers(0, 256, (30, 48, 3), dtype=np.uint8)
    return SegRecord(image=image, semantic=semantic, instance=instance)


def test_crop_box_respects_scale_ratio_and_bounds():
    rng = np.random.default_rng(1)
    for _ in range(200):
        top, left, h, w = random_resized_crop_box(60, 90, (0.3, 1.0), (0.75, 1.333), rng)
        assert top >= 0 and top + h <= 60 and left >= 0 and left + w <= 90
        assert 0.25 <= h * w / (60 * 90) <= 1.0
        assert 0.7 <= w / h <= 1.4


def test_random_resized_crop_keeps_labels_exact_and_aligned(record):
    crop = RandomResizedCrop((20, 20), scale=(0.2, 0.6))
    out = crop(record, np.random.default_rng(3))
    assert out.image.shape == (20, 20, 3) and out.semantic.shape == (20, 20)
    assert out.semantic.dtype == np.int64 and set(np.unique(out.semantic)) <= set(range(6))
    assert set(np.unique(out.instance)) <= {1, 2, 3}
    # columns keep one semantic label, rows one instance label: the geometry is shared
    assert all(np.unique(out.semantic[:, j]).size == 1 for j in range(20))
    assert all(np.unique(out.instance[i]).size == 1 for i in range(20))
    again = crop(record, np.random.default_rng(3))
    np.testing.assert_array_equal(out.image, again.image)
    np.testing.assert_array_equal(out.semantic, again.semantic)


def test_nearest_resize_exact():
    labels = np.arange(16).reshape(4, 4)
    np.testing.assert_array_equal(resize_labels(labels, (8, 8))[::2, ::2], labels)
    np.testing.assert_array_equal(
        resize_labels(labels, (4, 4), box=(1, 1, 2, 2))[::2, ::2], labels[1:3, 1:3]
    )


def test_flip_moves_image_and_labels_together(record):
    out = HorizontalFlip(p=1.0)(record, np.random.default_rng(0))
    np.testing.assert_array_equal(out.image, record.image[:, ::-1])
    np.testing.assert_array_equal(out.semantic, record.semantic[:, ::-1])
    np.testing.assert_array_equal(out.instance, record.instance[:, ::-1])
    same = HorizontalFlip(p=0.0)(record, np.random.default_rng(0))
    np.testing.assert_array_equal(same.image, record.image)


def test_color_jitter_changes_image_only_and_is_seeded(record):
    jitter = ColorJitter(p=1.0)
    out = jitter(record, np.random.default_rng(5))
    assert out.image.dtype == np.uint8 and not np.array_equal(out.image, record.image)
    assert out.semantic is record.semantic and out.instance is record.instance
    np.testing.assert_array_equal(out.image, jitter(record, np.random.default_rng(5)).image)
    assert not np.array_equal(out.image, jitter(record, np.random.default_rng(6)).image)
    untouched = ColorJitter(p=0.0)(record, np.random.default_rng(5))
    np.testing.assert_array_equal(untouched.image, record.image)
    brighter = ColorJitter(brightness=0.5, contrast=0, saturation=0, hue=0, p=1.0)
    factors = [
        brighter.apply(np.full((2, 2, 3), 100, np.uint8), np.random.default_rng(s))[0, 0, 0]
        for s in range(50)
    ]
    assert 50 <= min(factors) < 90 and 110 < max(factors) <= 150


def test_pair_augment_and_validation(record):
    out = PairAugment(RandomResizedCrop((16, 24)))(record, np.random.default_rng(0))
    assert out.image.shape == (16, 24, 3) and out.instance.shape == (16, 24)
    with pytest.raises(ConfigError):
        RandomResizedCrop((16, 16), scale=(0.5, 0.2))
    with pytest.raises(ConfigError):
        ColorJitter(hue=0.7)
    with pytest.raises(ConfigError):
        HorizontalFlip(p=1.5)
