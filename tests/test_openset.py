"""Open-set procedural data: held-out families, group structure, look modes, photo splits."""

from __future__ import annotations

import numpy as np
import pytest

from data_mixtures.openset import OpenSetSource
from data_mixtures.openset_config import LookMode, OpenSetConfig, check_disjoint, held_out_config
from data_mixtures.procedural import (
    HELD_OUT_BACKGROUNDS,
    HELD_OUT_SHAPES,
    HELD_OUT_TEXTURES,
    TRAIN_BACKGROUNDS,
    TRAIN_SHAPES,
    TRAIN_TEXTURES,
    BackgroundFamily,
    ShapeFamily,
    TextureFamily,
)
from data_mixtures.sources.photos import (
    RESERVED_FOLDERS,
    PhotoSplit,
    installed_photos,
    photo_group,
    photo_split,
)
from painter.errors import ConfigError, DatasetError
from seggpt.evaluation.heldout import EvalSetsConfig, build_eval_sets

SMALL = dict(image_size=(64, 64), num_groups=50)


def test_held_out_families_are_disjoint_from_the_training_space():
    """No shape, texture or background family is both drawn in training and held out; every
    family is on one side or the other."""
    assert not set(TRAIN_SHAPES) & set(HELD_OUT_SHAPES)
    assert not set(TRAIN_TEXTURES) & set(HELD_OUT_TEXTURES)
    assert not set(TRAIN_BACKGROUNDS) & set(HELD_OUT_BACKGROUNDS)
    assert set(TRAIN_SHAPES) | set(HELD_OUT_SHAPES) == set(ShapeFamily)
    assert set(TRAIN_TEXTURES) | set(HELD_OUT_TEXTURES) == set(TextureFamily)
    assert set(TRAIN_BACKGROUNDS) | set(HELD_OUT_BACKGROUNDS) == set(BackgroundFamily)
    check_disjoint(OpenSetConfig(), held_out_config())  # the defaults pass


def test_a_held_out_family_that_is_also_trained_on_is_refused():
    leaky = held_out_config(shapes=(ShapeFamily.HEART, ShapeFamily.STAR))
    with pytest.raises(ConfigError, match="star"):
        check_disjoint(OpenSetConfig(), leaky)
    with pytest.raises(ConfigError, match="heart"):
        build_eval_sets(
            EvalSetsConfig(
                num_episodes=1,
                names=("same-look",),
                train_config=OpenSetConfig(shapes=(*TRAIN_SHAPES, ShapeFamily.HEART)),
            )
        )


def test_records_are_pure_functions_of_seed_and_index():
    source = OpenSetSource(OpenSetConfig(**SMALL), seed=3)
    again = OpenSetSource(OpenSetConfig(**SMALL), seed=3)
    other = OpenSetSource(OpenSetConfig(**SMALL), seed=4)
    assert np.array_equal(source[7].image, again[7].image)
    assert np.array_equal(source[7].semantic, again[7].semantic)
    assert not np.array_equal(source[7].image, other[7].image)


def _class_color(record, class_id):
    return record.image[record.semantic == class_id].reshape(-1, 3).astype(float).mean(axis=0)


@pytest.mark.parametrize("look", list(LookMode))
def test_groups_share_categories_and_the_look_mode_decides_the_colors(look):
    config = OpenSetConfig(
        image_size=(96, 96),
        num_groups=40,
        group_size=3,
        categories_per_group=(1, 1),
        instances_per_category=(1, 1),
        distractors_per_image=(0, 0),
        object_size=(0.25, 0.3),
        noise_std=(0.0, 0.0),
    )
    source = OpenSetSource(config, seed=0, look=look)
    gaps = []
    for group in range(20):
        a, b = source[3 * group], source[3 * group + 1]
        [class_id] = source.record_classes(3 * group)
        assert a.classes() == b.classes() == (class_id,)
        assert source.sample_with_class(class_id, np.random.default_rng(0), exclude=3 * group) in (
            3 * group + 1,
            3 * group + 2,
        )
        gaps.append(np.abs(_class_color(a, class_id) - _class_color(b, class_id)).mean())
    if look is LookMode.SAME_LOOK:  # the same colours (textures sampled at other offsets)
        assert np.median(gaps) < 25, gaps
    else:  # colours drawn anew for every image
        assert np.median(gaps) > 30, gaps


def test_class_ids_are_unique_per_group_and_distractors_are_unlabelled():
    config = OpenSetConfig(**SMALL, distractors_per_image=(2, 2), categories_per_group=(1, 2))
    source = OpenSetSource(config, seed=1)
    seen = {}
    for index in range(0, 40, 2):
        record = source[index]
        for class_id in record.classes():
            assert seen.setdefault(class_id, index // 2) == index // 2
        # every object is an instance; labelled categories are a subset of the objects
        assert record.instance.max() > len(record.classes())
        assert np.all(record.instance[record.semantic > 0] > 0)


def test_color_independent_distractors_wear_the_colors_of_another_image():
    """In colour-independent groups some distractor takes the target's colours from another
    image of the group: across many groups, a query's unlabelled pixels come close to the
    prompt's target colour more often than in same-look groups."""
    base = dict(
        image_size=(96, 96),
        num_groups=60,
        categories_per_group=(1, 1),
        instances_per_category=(1, 1),
        distractors_per_image=(3, 3),
        noise_std=(0.0, 0.0),
        strokes=(0, 0),
    )
    hits = {}
    for look in LookMode:
        source = OpenSetSource(OpenSetConfig(**base), seed=2, look=look)
        count = 0
        for group in range(30):
            prompt, query = source[2 * group], source[2 * group + 1]
            [class_id] = prompt.classes()
            color = _class_color(prompt, class_id)
            others = query.image[(query.semantic == 0) & (query.instance > 0)].astype(float)
            count += int(np.any(np.abs(others - color).mean(axis=1) < 12))
        hits[look] = count
    assert hits[LookMode.COLOR_INDEPENDENT] > hits[LookMode.SAME_LOOK] + 3, hits


def test_fixed_categories_use_the_same_classes_everywhere():
    config = held_out_config(image_size=(64, 64), categories_per_group=(3, 3), num_groups=10)
    a = OpenSetSource(config, seed=1, category_seed=5)
    b = OpenSetSource(config, seed=2, category_seed=5)
    assert a.category_names() == b.category_names()
    assert a.record_classes(0) == a.record_classes(13) == (1, 2, 3)
    assert a.sample_with_class(2, np.random.default_rng(0), exclude=4) != 4
    with pytest.raises(ConfigError, match="category_seed"):
        OpenSetSource(config).category_names()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"group_size": 1}, "group_size"),
        ({"image_size": (16, 16)}, "image_size"),
        ({"categories_per_group": (1, 9)}, "categories_per_group"),
        ({"object_size": (0.3, 0.7)}, "object_size"),
        ({"shapes": ()}, "at least one"),
        ({"shapes": ("heart",)}, "ShapeFamily"),
        ({"same_look_prob": 2.0}, "same_look_prob"),
    ],
)
def test_bad_configs_are_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        OpenSetConfig(**change)


def test_photo_splits_keep_scenes_together_and_reserve_the_text_folder(tmp_path):
    assert photo_group("left01.jpg") == photo_group("right07.jpg")
    assert photo_group("aloeL.jpg") == photo_group("aloeR.jpg") == "aloe"
    assert photo_group("graf1.png") == photo_group("graf3.png")
    assert photo_split("left01.jpg") is photo_split("right02.jpg")
    from PIL import Image

    rng = np.random.default_rng(0)
    for folder in ("a", RESERVED_FOLDERS[0]):
        (tmp_path / folder).mkdir()
        for k in range(12):
            pixels = rng.integers(0, 255, (100, 120, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / folder / f"photo{k}_{folder}.png")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "a" / "tiny.png")
    (tmp_path / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    found = installed_photos(PhotoSplit.ALL, folders=[tmp_path])
    assert len(found) == 12 and all(p.parent.name == "a" for p in found)
    train = installed_photos(PhotoSplit.TRAIN, folders=[tmp_path])
    held = installed_photos(PhotoSplit.HELD_OUT, folders=[tmp_path])
    assert sorted(train + held) == sorted(found)
    with pytest.raises(DatasetError, match="no readable"):
        installed_photos(folders=[tmp_path / "missing"])


def test_data_weights_replace_drop_and_check_the_mixture_entries():
    from painter.registry import get_config
    from seggpt.training.config import config_from_dict
    from seggpt.training.data import build_train_dataset

    weights = {"open-set-same-look": 0.7, "open-set-instance": 0.0}
    config = config_from_dict(
        {"model": "seggpt_openset", "data": {"mixture": "openset", "weights": weights}}
    )
    dataset = build_train_dataset(config, get_config("seggpt_openset"))
    got = {e.name: e.weight for e in dataset.entries}
    assert got == {
        "open-set-same-look": 0.7,
        "open-set-colour-independent": 0.15,
        "photo-pairs": 0.35,
    }
    for bad, message in (({"no-such-entry": 1.0}, "lacks"), ({"photo-pairs": -1}, ">= 0")):
        config = config_from_dict(
            {"model": "seggpt_openset", "data": {"mixture": "openset", "weights": bad}}
        )
        with pytest.raises(ConfigError, match=message):
            build_train_dataset(config, get_config("seggpt_openset"))


def test_validation_sets_draw_the_training_distribution_under_their_own_seed(monkeypatch):
    """The sets that choose settings (a gate, a threshold) come from the training families and
    the training photos, are the same on every call, and are not the held-out episodes."""
    from seggpt.evaluation import heldout

    asked = []
    real = heldout.installed_photos
    monkeypatch.setattr(
        heldout, "installed_photos", lambda split, **kw: asked.append(split) or real(split, **kw)
    )
    first = heldout.validation_sets(3, shots=1)
    again = heldout.validation_sets(3, shots=1)
    assert asked == [PhotoSplit.TRAIN, PhotoSplit.TRAIN]
    assert len(first["same-look"]) == 3
    for a, b in zip(first["same-look"], again["same-look"]):
        np.testing.assert_array_equal(a.query_image, b.query_image)
        np.testing.assert_array_equal(a.prompt_masks[0], b.prompt_masks[0])
    held = build_eval_sets(EvalSetsConfig(num_episodes=3, shots=1, names=("same-look",)))
    for a, b in zip(first["same-look"], held["same-look"]):
        assert not np.array_equal(a.query_image, b.query_image)
