"""Synthetic source: determinism, label consistency, categories defined by shape and texture."""

from __future__ import annotations

import numpy as np
import pytest

from data_mixtures.synthetic import Shape, SyntheticConfig, SyntheticSource, Texture
from painter.errors import ConfigError

SMALL = SyntheticConfig(image_size=(64, 80), num_records=50)


def test_same_seed_same_arrays_different_seed_different():
    a, b, c = (
        SyntheticSource(SMALL, seed=3),
        SyntheticSource(SMALL, seed=3),
        SyntheticSource(SMALL, seed=4),
    )
    for index in (0, 7, 49):
        ra, rb, rc = a[index], b[index], c[index]
        np.testing.assert_array_equal(ra.image, rb.image)
        np.testing.assert_array_equal(ra.semantic, rb.semantic)
        np.testing.assert_array_equal(ra.instance, rb.instance)
        assert not np.array_equal(ra.image, rc.image)
    # a record does not depend on which records were generated before it
    fresh = SyntheticSource(SMALL, seed=3)
    np.testing.assert_array_equal(fresh[49].image, a[49].image)


@pytest.mark.parametrize("size", [(32, 32), (48, 96), (131, 77)])
def test_any_image_size(size):
    record = SyntheticSource(SyntheticConfig(image_size=size, num_records=3))[1]
    assert record.image.shape == (*size, 3) and record.image.dtype == np.uint8
    assert record.semantic.shape == size and record.semantic.dtype == np.int64
    assert record.instance.shape == size and record.instance.dtype == np.int64


def test_instances_lie_inside_one_semantic_class():
    source = SyntheticSource(SMALL, seed=0)
    n_classes = len(SMALL.categories)
    for index in range(20):
        record = source[index]
        inside = record.instance > 0
        assert (record.semantic[inside] > 0).all()
        assert record.semantic.min() >= 0 and record.semantic.max() <= n_classes
        ids = record.instances()
        assert ids == tuple(range(1, len(ids) + 1))  # numbered 1..N, none empty
        for instance_id in ids:
            assert np.unique(record.semantic[record.instance == instance_id]).size == 1


def test_layout_classes_match_drawn_classes_mostly():
    source = SyntheticSource(SMALL, seed=1)
    agree = 0
    for index in range(20):
        drawn = set(source[index].classes())
        listed = set(source.record_classes(index))
        assert drawn <= listed  # occlusion can only remove classes
        agree += drawn == listed
    assert agree >= 15


def test_several_instances_and_distractors_occur():
    source = SyntheticSource(SMALL, seed=2)
    counts = [len(source[i].instances()) for i in range(20)]
    assert max(counts) >= 4 and min(counts) >= 1
    assert not set(SMALL.distractors) & set(SMALL.categories)


def test_distractors_are_drawn_but_labelled_background():
    only = SyntheticConfig(
        image_size=(64, 64),
        categories=((Shape.CIRCLE, Texture.SOLID_NOISE),),
        distractors=((Shape.SQUARE, Texture.STRIPES),),
        categories_per_image=(1, 1),
        instances_per_category=(1, 1),
        distractors_per_image=(0, 0),
        clutter_strokes=(0, 0),
        noise_std=0.0,
    )
    with_distractors = SyntheticConfig(**{**only.__dict__, "distractors_per_image": (3, 3)})
    plain, cluttered = SyntheticSource(only, seed=5), SyntheticSource(with_distractors, seed=5)
    changed_background = 0
    for index in range(5):
        a, b = plain[index], cluttered[index]
        assert set(np.unique(b.semantic)) <= {0, 1} and b.instance.max() <= 1
        background = (a.semantic == 0) & (b.semantic == 0)
        changed_background += int((a.image[background] != b.image[background]).any(axis=-1).sum())
    assert changed_background > 500  # distractor pixels exist, with label 0


def test_category_is_not_a_color():
    """Instances of one category get very different colours; mean colour does not separate."""
    source = SyntheticSource(SyntheticConfig(image_size=(96, 96), num_records=400), seed=0)
    means: dict[int, list[np.ndarray]] = {}
    for index in range(120):
        record = source[index]
        for instance_id in record.instances(min_pixels=30):
            region = record.instance == instance_id
            class_id = int(record.semantic[region][0])
            means.setdefault(class_id, []).append(record.image[region].mean(axis=0))
    spreads = [np.std(np.stack(v), axis=0).mean() for v in means.values() if len(v) >= 4]
    assert len(spreads) >= 5
    assert np.median(spreads) > 35.0  # colours vary a lot within a category
    # a nearest-class-mean classifier on mean colour is close to chance
    centroids = {c: np.mean(v, axis=0) for c, v in means.items()}
    hits = total = 0
    for class_id, values in means.items():
        for value in values:
            guess = min(centroids, key=lambda c: np.linalg.norm(centroids[c] - value))
            hits += guess == class_id
            total += 1
    assert hits / total < 0.3


def test_config_validation():
    with pytest.raises(ConfigError):
        SyntheticConfig(image_size=(8, 8))
    with pytest.raises(ConfigError):
        SyntheticConfig(categories=())
    with pytest.raises(ConfigError):
        SyntheticConfig(distractors=((Shape.CIRCLE, Texture.DOTS),))
    with pytest.raises(ConfigError):
        SyntheticConfig(instances_per_category=(3, 1))


def test_spacing_keeps_objects_apart_and_recognisable():
    """With spacing, centres stay a fraction of the summed radii apart (so occlusion is partial);
    without it, some objects are mostly hidden by later ones."""

    def pairs_and_visible(spacing):
        config = SyntheticConfig(
            image_size=(64, 64),
            categories_per_image=(2, 3),
            instances_per_category=(1, 2),
            object_size=(0.15, 0.24),
            spacing=spacing,
            num_records=60,
        )
        source = SyntheticSource(config, seed=5)
        close, total, slivers = 0, 0, 0
        for i in range(60):
            layout, _ = source._generators(i)
            placed = source._layout(layout)
            for a in range(len(placed)):
                for b in range(a):
                    gap = np.hypot(*np.subtract(placed[a].centre, placed[b].centre))
                    close += gap < 0.85 * (placed[a].radius + placed[b].radius)
                    total += 1
            record = source[i]
            areas = np.bincount(record.instance.ravel())[1:]
            slivers += int(((areas > 0) & (areas < 40)).sum())
        return close / total, slivers

    spaced, spaced_slivers = pairs_and_visible(0.85)
    crowded, crowded_slivers = pairs_and_visible(0.0)
    assert spaced < 0.5 * crowded, (spaced, crowded)
    assert spaced_slivers < 0.5 * crowded_slivers, (spaced_slivers, crowded_slivers)
    with pytest.raises(ConfigError, match="spacing"):
        SyntheticConfig(spacing=-1)
