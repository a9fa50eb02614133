"""Folder, instance, COCO, HF and photo sources: pairing, errors, decoding, skipping."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
from PIL import Image

from data_mixtures.records import IGNORE_LABEL, SegType
from data_mixtures.sources import (
    CocoSource,
    HFSource,
    InstanceFolderSource,
    PhotoSource,
    SemanticFolderSource,
    UnreadableRecordWarning,
)
from painter.errors import DatasetError
from painter.masks import (
    decode_rle_string,
    decode_segmentation,
    encode_rle_string,
    mask_to_rle,
    polygons_to_mask,
    rle_to_mask,
)


def _image(seed: int, size=(12, 16)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def _semantic(seed: int, size=(12, 16)) -> np.ndarray:
    mask = np.zeros(size, dtype=np.uint8)
    mask[2:6, 3:9] = 1 + seed % 3
    mask[8:, :4] = 4
    mask[0, 0] = 255
    return mask


@pytest.fixture
def semantic_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for k in range(3):
        Image.fromarray(_image(k)).save(tmp_path / "images" / f"im{k}.png")
        Image.fromarray(_semantic(k)).save(tmp_path / "masks" / f"im{k}.png")
    (tmp_path / "classes.txt").write_text("background\na\nb\nc\nd\n")
    return tmp_path


def test_semantic_folder_reads_lazily_with_classes(semantic_folder):
    source = SemanticFolderSource(semantic_folder)
    assert len(source) == 3 and source.seg_types == {SegType.SEMANTIC}
    record = source[1]
    np.testing.assert_array_equal(record.image, _image(1))
    expected = _semantic(1).astype(np.int64)
    expected[0, 0] = IGNORE_LABEL
    np.testing.assert_array_equal(record.semantic, expected)
    assert record.class_names == ("background", "a", "b", "c", "d") and record.key == "im1"
    assert record.classes() == (2, 4)
    index = source.class_index()
    assert index[4].tolist() == [0, 1, 2] and index[1].tolist() == [0]


def test_unpaired_files_raise_naming_examples(semantic_folder):
    Image.fromarray(_image(9)).save(semantic_folder / "images" / "lonely.png")
    Image.fromarray(_semantic(9)).save(semantic_folder / "masks" / "orphan_mask.png")
    with pytest.raises(DatasetError, match=r"lonely\.png.*orphan_mask\.png"):
        SemanticFolderSource(semantic_folder)


def test_missing_folder_raises(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        SemanticFolderSource(tmp_path)


def test_mask_size_mismatch_names_the_file(semantic_folder):
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(semantic_folder / "masks" / "im2.png")
    source = SemanticFolderSource(semantic_folder)
    with pytest.raises(DatasetError, match=r"im2\.png"):
        source[2]


def test_unreadable_file_skipped_with_warning_and_count(semantic_folder):
    (semantic_folder / "images" / "im1.png").write_bytes(b"not a png at all")
    source = SemanticFolderSource(semantic_folder)
    with pytest.warns(UnreadableRecordWarning, match="im1"):
        records = list(source)
    assert [r.key for r in records] == ["im0", "im2"]
    assert source.num_skipped == 1 and list(source.skipped) == [1]
    with pytest.warns(UnreadableRecordWarning):  # a different file warns again
        (semantic_folder / "images" / "im2.png").write_bytes(b"")
        assert source.get(2) is None
    assert source.num_skipped == 2
    assert source.get(1) is None and source.num_skipped == 2  # counted once per record


def test_instance_folder_with_grey_and_color_ids(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "instances").mkdir()
    ids = np.zeros((10, 10), np.uint16)
    ids[1:4, 1:4], ids[5:9, 5:9] = 300, 7  # 16-bit ids
    Image.fromarray(_image(0, (10, 10))).save(tmp_path / "images" / "a.png")
    Image.fromarray(ids).save(tmp_path / "instances" / "a.png")
    colors = np.zeros((10, 10, 3), np.uint8)
    colors[0:2] = (200, 10, 10)
    colors[5:] = (10, 10, 200)
    Image.fromarray(_image(1, (10, 10))).save(tmp_path / "images" / "b.png")
    Image.fromarray(colors).save(tmp_path / "instances" / "b.png")
    source = InstanceFolderSource(tmp_path)
    assert source[0].instances() == (7, 300) and source[0].semantic is None
    instance = source[1].instance
    assert set(np.unique(instance)) == {0, 1, 2}
    assert np.unique(instance[0:2]).size == 1 and np.unique(instance[5:]).size == 1
    assert instance[0, 0] != instance[9, 9] and (instance[2:5] == 0).all()


def test_polygon_fill_against_hand_made_masks():
    rectangle = polygons_to_mask([[2, 1, 6, 1, 6, 4, 2, 4]], 6, 8)
    expected = np.zeros((6, 8), bool)
    expected[1:4, 2:6] = True
    np.testing.assert_array_equal(rectangle, expected)
    triangle = polygons_to_mask([[1, 1, 4, 1, 1, 4]], 6, 6)
    expected = np.zeros((6, 6), bool)
    expected[1, 1:3] = expected[2, 1] = True
    np.testing.assert_array_equal(triangle, expected)
    two_parts = polygons_to_mask([[0, 0, 2, 0, 2, 2, 0, 2], [4, 4, 6, 4, 6, 6, 4, 6]], 6, 6)
    assert two_parts.sum() == 8 and two_parts[0, 0] and two_parts[5, 5]


def test_rle_decoding_against_hand_made_masks():
    expected = np.zeros((4, 5), bool)
    expected[1:3, 2:4] = True
    # column-major runs: 9 zeros, 2 ones, 2 zeros, 2 ones, 5 zeros
    uncompressed = {"size": [4, 5], "counts": [9, 2, 2, 2, 5]}
    np.testing.assert_array_equal(rle_to_mask(uncompressed), expected)
    # compressed: '9','2','2', then 2-2=0 -> '0', then 5-2=3 -> '3'
    np.testing.assert_array_equal(rle_to_mask({"size": [4, 5], "counts": "92203"}), expected)
    assert mask_to_rle(expected)["counts"] == "92203"
    assert decode_rle_string("1232") == [1, 2, 3, 4]
    assert encode_rle_string([1, 5, 1, 2]) == "151M"  # 2 - 5 = -3 -> 'M' (sign bit set)
    assert decode_rle_string("151M") == [1, 5, 1, 2]
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = rng.random((7, 9)) < 0.4
        np.testing.assert_array_equal(rle_to_mask(mask_to_rle(mask)), mask)


def test_pycocotools_agrees_when_installed():
    pytest.importorskip("pycocotools")
    rng = np.random.default_rng(1)
    mask = rng.random((13, 7)) < 0.5
    for rle in (mask_to_rle(mask), mask_to_rle(mask, compressed=False)):
        np.testing.assert_array_equal(decode_segmentation(rle, 13, 7, use_pycocotools=True), mask)
    polygon = [[3.2, 2.0, 20.5, 4.1, 15.0, 18.7, 4.4, 12.0]]
    ours = decode_segmentation(polygon, 24, 24)
    theirs = decode_segmentation(polygon, 24, 24, use_pycocotools=True)
    assert (ours & theirs).sum() / (ours | theirs).sum() > 0.85


@pytest.mark.parametrize("use_pycocotools", [False, True])
def test_coco_source_polygons_rle_and_crowd(tmp_path, use_pycocotools):
    if use_pycocotools:
        pytest.importorskip("pycocotools")
    Image.fromarray(_image(0, (8, 10))).save(tmp_path / "a.png")
    square = np.zeros((8, 10), bool)
    square[4:8, 5:9] = True
    crowd = np.zeros((8, 10), bool)
    crowd[0:2, 0:2] = True
    coco = {
        "images": [
            {"id": 1, "file_name": "a.png", "height": 8, "width": 10},
            {"id": 2, "file_name": "none.png", "height": 8, "width": 10},
        ],
        "categories": [{"id": 18, "name": "dog"}, {"id": 3, "name": "car"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 3,
                "area": 12,
                "iscrowd": 0,
                "segmentation": [[1, 1, 5, 1, 5, 4, 1, 4]],
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 18,
                "area": 16,
                "iscrowd": 0,
                "segmentation": mask_to_rle(square),
            },
            {
                "id": 3,
                "image_id": 1,
                "category_id": 18,
                "area": 4,
                "iscrowd": 1,
                "segmentation": mask_to_rle(crowd, compressed=False),
            },
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco))
    source = CocoSource(path, tmp_path, use_pycocotools=use_pycocotools)
    assert len(source) == 1  # the image without annotations is dropped
    assert source.class_names == ("background", "car", "dog")
    record = source[0]
    car = np.zeros((8, 10), bool)
    car[1:4, 1:5] = True
    # drawn by decreasing area: square (dog), car, then the crowd region (dog) on top
    expected_semantic = np.where(crowd, 2, np.where(car, 1, np.where(square, 2, 0)))
    np.testing.assert_array_equal(record.semantic, expected_semantic)
    assert source.record_classes(0) == (1, 2)
    visible_car = car & ~crowd
    assert np.unique(record.instance[visible_car]).size == 1
    assert np.unique(record.instance[square]).size == 1
    assert record.instance[visible_car][0] != record.instance[square][0] > 0
    assert (record.instance[~(car | square | crowd)] == 0).all()
    assert (record.instance[crowd] == IGNORE_LABEL).all()


def _hf_rows(n=4):
    images = [Image.fromarray(_image(k)) for k in range(n)]
    masks = [Image.fromarray(_semantic(k)) for k in range(n)]
    features = datasets.Features({"pixels": datasets.Image(), "labels": datasets.Image()})
    return datasets.Dataset.from_dict({"pixels": images, "labels": masks}, features=features)


def test_hf_source_from_dict_and_load_from_disk(tmp_path):
    dataset = _hf_rows()
    source = HFSource(dataset, image_column="pixels", mask_column="labels", name="toy")
    record = source[2]
    np.testing.assert_array_equal(record.image, _image(2))
    assert record.semantic[0, 0] == IGNORE_LABEL and record.classes() == (3, 4)
    assert source.record_classes(2) == (3, 4)
    dataset.save_to_disk(str(tmp_path / "saved"))
    reloaded = HFSource(tmp_path / "saved", image_column="pixels", mask_column="labels")
    np.testing.assert_array_equal(reloaded[2].semantic, record.semantic)
    raw = datasets.Dataset.from_dict(
        {"image": [_image(0)], "mask": [_semantic(0).astype(np.int64)], "inst": [_semantic(1)]}
    )
    both = HFSource(raw, instance_column="inst")
    assert both.seg_types == {SegType.SEMANTIC, SegType.INSTANCE}
    assert both[0].instances() == (2, 4, 255)  # instance ids are taken as they are


def test_hf_source_errors():
    with pytest.raises(DatasetError, match="not in the dataset"):
        HFSource(_hf_rows(), image_column="pixels", mask_column="nope")
    with pytest.raises(DatasetError, match="mask_column"):
        HFSource(_hf_rows(), image_column="pixels", mask_column=None)


def test_hf_unreadable_row_is_skipped():
    features = datasets.Features({"image": datasets.Image(decode=False), "mask": datasets.Image()})
    rows = {
        "image": [{"bytes": b"garbage", "path": None}, Image.fromarray(_image(1))],
        "mask": [Image.fromarray(_semantic(0)), Image.fromarray(_semantic(1))],
    }
    source = HFSource(datasets.Dataset.from_dict(rows, features=features))
    with pytest.warns(UnreadableRecordWarning):
        assert source.get(0) is None
    assert source.get(1) is not None and source.num_skipped == 1


def test_photo_source_pseudo_regions():
    photos = [_image(0, (40, 60)), np.tile(np.linspace(0, 255, 60, dtype=np.uint8), (40, 1))]
    source = PhotoSource(photos, granularities=(50.0, 400.0), max_side=30)
    assert len(source) == 4 and source.seg_types == {SegType.INSTANCE}
    record = source[1]
    assert record.image.shape == (20, 30, 3) and record.semantic is None
    assert record.instance.shape == (20, 30) and len(record.instances()) >= 1
    assert source[1] is record  # cached


def test_photo_source_default_skimage_photos():
    source = PhotoSource(granularities=(300.0,), max_side=48)
    assert len(source) >= 5  # scikit-image ships these photos in its wheel
    record = source[0]
    assert max(record.image.shape[:2]) == 48 and len(record.instances()) >= 2
