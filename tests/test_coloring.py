"""Tests of seggpt.coloring, checked against Hugging Face's SegGptImageProcessor."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from painter.errors import InvalidMaskError
from painter.palette import MAX_CLASSES, MIN_LEVEL_GAP
from seggpt.coloring import (
    MaskKind,
    PromptColoring,
    color_to_index,
    decode_painted,
    index_to_color,
    prepare_prompt_masks,
    seggpt_palette,
)

HF_NUM_LABELS = (1, 2, 7, 20, 150)


@pytest.fixture(scope="module")
def hf_processor():
    transformers = pytest.importorskip("transformers")
    return transformers.SegGptImageProcessor()


def _denormalise(processor, tensor) -> np.ndarray:
    """(3, H, W) normalised tensor -> (H, W, 3) uint8."""
    pixels = tensor.permute(1, 2, 0).numpy().astype(np.float64)  # (H, W, 3)
    pixels = pixels * np.array(processor.image_std) + np.array(processor.image_mean)
    return np.rint(pixels * 255).astype(np.uint8)


@pytest.mark.parametrize("num_labels", HF_NUM_LABELS)
def test_palette_equals_hf(hf_processor, num_labels):
    expected = np.array(hf_processor.get_palette(num_labels), dtype=np.uint8)
    palette = seggpt_palette(num_labels)
    assert palette.dtype == np.uint8 and palette.shape == (num_labels + 1, 3)
    assert (palette == expected).all()


def test_palette_equals_hf_at_float_edges():
    module = pytest.importorskip("transformers.models.seggpt.image_processing_seggpt")
    for num_labels in (0, 26, 27, 63, 64, 124, 125, 1000, MAX_CLASSES):
        expected = np.array(module.build_palette(num_labels), dtype=np.uint8).reshape(-1, 3)
        assert (seggpt_palette(num_labels) == expected).all(), num_labels


def test_palette_values():
    assert seggpt_palette(1).tolist() == [[0, 0, 0], [255, 255, 255]]
    assert seggpt_palette(2).tolist() == [[0, 0, 0], [255, 255, 255], [255, 255, 127]]
    assert seggpt_palette(8)[1:4].tolist() == [[255, 255, 255], [255, 255, 170], [255, 255, 85]]


def test_max_classes_follows_from_the_level_gap():
    assert MAX_CLASSES == 4095
    palette = seggpt_palette(MAX_CLASSES).astype(int)
    assert len(np.unique(palette, axis=0)) == MAX_CLASSES + 1
    levels = np.unique(palette[1:])
    assert np.diff(levels).min() >= MIN_LEVEL_GAP
    with pytest.raises(InvalidMaskError, match="4096 classes, at most 4095"):
        seggpt_palette(MAX_CLASSES + 1)


@pytest.mark.parametrize("num_labels", HF_NUM_LABELS)
def test_index_to_color_equals_hf_prompt_masks(hf_processor, num_labels):
    rng = np.random.default_rng(num_labels)
    index_map = rng.integers(0, num_labels + 1, (448, 448))
    out = hf_processor.preprocess(
        prompt_masks=[index_map], num_labels=num_labels, return_tensors="pt"
    )
    hf_colors = _denormalise(hf_processor, out["prompt_masks"][0])
    assert (index_to_color(index_map, seggpt_palette(num_labels)) == hf_colors).all()


def test_binary_masks_are_white_on_black():
    painted = index_to_color(np.array([[0, 1], [1, 0]]), seggpt_palette(1))
    assert painted[..., 0].tolist() == [[0, 255], [255, 0]]
    assert (painted == painted[..., :1]).all()


@pytest.mark.parametrize("num_labels", (1, 20))
def test_color_to_index_equals_hf_post_processing(hf_processor, num_labels):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(num_labels)
    truth = rng.integers(0, num_labels + 1, (32, 40))
    painted = index_to_color(truth, seggpt_palette(num_labels)) + rng.normal(0, 40, (32, 40, 3))
    mean, std = np.array(hf_processor.image_mean), np.array(hf_processor.image_std)
    normalised = (painted / 255 - mean) / std  # (H, W, 3)
    pred_masks = torch.tensor(np.concatenate([normalised, normalised]), dtype=torch.float32)
    outputs = SimpleNamespace(pred_masks=pred_masks.permute(2, 0, 1)[None])  # (1, 3, 2H, W)
    (hf_ids,) = hf_processor.post_process_semantic_segmentation(outputs, num_labels=num_labels)
    hf_painted = np.clip(pred_masks[32:].double().numpy() * std + mean, 0, 1) * 255
    assert (color_to_index(hf_painted, seggpt_palette(num_labels)) == hf_ids.numpy()).all()


def test_color_round_trip_and_chunking(monkeypatch):
    palette = seggpt_palette(150)
    ids = np.random.default_rng(0).integers(0, 151, (60, 61))
    monkeypatch.setattr("seggpt.coloring._CHUNK_ELEMENTS", 1000)  # many small chunks
    back = color_to_index(index_to_color(ids, palette).astype(np.float32), palette)
    assert back.dtype == np.int64 and (back == ids).all()


def test_index_to_color_rejects_ids_outside_palette():
    with pytest.raises(InvalidMaskError, match="palette has 3 colours"):
        index_to_color(np.array([[0, 3]]), seggpt_palette(2))


def test_prepare_binary_masks():
    masks = [np.array([[0, 255], [0, 0]], np.uint8), np.array([[True, False]])]
    painted, coloring = prepare_prompt_masks(masks)
    assert coloring.kind is MaskKind.BINARY and coloring.num_classes == 1
    assert painted[0][..., 1].tolist() == [[0, 255], [0, 0]]
    assert painted[1].tolist() == [[[255] * 3, [0] * 3]]
    assert coloring.class_values == (0, 1)


def test_prepare_index_masks_keep_ids():
    masks = [np.array([[0, 1], [3, 0]]), np.array([[2, 0]])]
    painted, coloring = prepare_prompt_masks(masks)
    palette = seggpt_palette(3)
    assert coloring.kind is MaskKind.INDEX and coloring.num_classes == 3
    assert (coloring.palette == palette).all() and coloring.class_values == (0, 1, 2, 3)
    assert painted[0][1, 0].tolist() == palette[3].tolist()
    assert painted[1][0, 0].tolist() == palette[2].tolist()


def test_prepare_color_masks_sorts_colors():
    red, green, blue = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    first = np.zeros((2, 2, 3), np.uint8)
    first[0, 0], first[0, 1] = red, blue
    second = np.zeros((1, 3, 3), np.uint8)
    second[0, 2] = green
    painted, coloring = prepare_prompt_masks([first, second])
    assert coloring.kind is MaskKind.COLOR and coloring.num_classes == 3
    assert coloring.class_values == ((0, 0, 0), blue, green, red)
    palette = seggpt_palette(3)
    assert painted[0][0, 0].tolist() == palette[3].tolist()  # red is id 3
    assert painted[0][0, 1].tolist() == palette[1].tolist()  # blue is id 1
    assert painted[1][0, 2].tolist() == palette[2].tolist()
    assert painted[0][1, 1].tolist() == [0, 0, 0]


def test_prepare_errors():
    with pytest.raises(InvalidMaskError, match="prompt mask 1 is empty"):
        prepare_prompt_masks([np.ones((2, 2), int), np.zeros((2, 2), int)])
    with pytest.raises(InvalidMaskError, match="at most 4095"):
        prepare_prompt_masks([np.array([[0, 5000]])])
    codes = np.arange(1, 4097)  # 4096 distinct colours, none black
    many = np.stack([codes // 256, codes % 256, codes % 7], axis=-1).reshape(64, 64, 3)
    with pytest.raises(InvalidMaskError, match="4096 classes, at most 4095"):
        prepare_prompt_masks([many.astype(np.uint8)])
    color = np.zeros((2, 2, 3), np.uint8)
    color[0, 0] = (255, 0, 0)
    with pytest.raises(InvalidMaskError, match=r"prompt masks \[1\] are colour masks"):
        prepare_prompt_masks([np.ones((2, 2), int), color])
    with pytest.raises(InvalidMaskError, match="no prompt masks"):
        prepare_prompt_masks([])


def test_decode_painted_with_noise():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 8, (64, 64))
    truth[0, 0] = 7
    (painted,), coloring = prepare_prompt_masks([truth])
    noisy = painted + rng.normal(0, 10, painted.shape)  # float, may leave 0..255
    assert (decode_painted(noisy, coloring) == truth).all()

    binary = (truth > 3).astype(int)
    (painted,), coloring = prepare_prompt_masks([binary])
    noisy = painted + rng.normal(0, 30, painted.shape)
    assert (decode_painted(noisy, coloring) == binary).all()
    grey = np.full((1, 2, 3), [[128.0], [128.5]])  # mean must be above 128
    assert decode_painted(grey, coloring).tolist() == [[0, 1]]


def test_decode_color_masks_gives_ids_into_class_values():
    color = np.zeros((4, 4, 3), np.uint8)
    color[:2, :2] = (10, 200, 30)
    color[2:, 2:] = (250, 5, 5)
    (painted,), coloring = prepare_prompt_masks([color])
    ids = decode_painted(painted.astype(float) + 5.0, coloring)
    values = np.array(coloring.class_values, dtype=np.uint8)[ids]  # (H, W, 3)
    assert (values == color).all()


def test_prompt_coloring_is_frozen_and_validated():
    coloring = PromptColoring(seggpt_palette(2), 2, (0, 1, 2), MaskKind.INDEX)
    with pytest.raises(dataclasses.FrozenInstanceError):
        coloring.num_classes = 3
    with pytest.raises(ValueError, match="read-only"):
        coloring.palette[0, 0] = 1
    with pytest.raises(InvalidMaskError, match="expected"):
        PromptColoring(seggpt_palette(2), 3, (0, 1, 2, 3), MaskKind.INDEX)


def test_ids_missing_from_the_prompts_never_decode():
    mask = np.zeros((8, 8), np.int64)
    mask[:4] = 3  # ids {0, 3}: the palette spans 0..3, but 1 and 2 are not shown
    _, coloring = prepare_prompt_masks([mask])
    palette = seggpt_palette(3)
    painted = np.zeros((8, 8, 3))
    painted[:, :4] = palette[1]  # the colour of id 1, never shown
    painted[:, 4:] = palette[3]
    decoded = decode_painted(painted, coloring)
    assert set(np.unique(decoded).tolist()) <= {0, 3}
    assert (decoded[:, 4:] == 3).all()
