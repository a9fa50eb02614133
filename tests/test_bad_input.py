"""Bad and odd inputs to the predictor: typed errors whose messages say what to fix, and
odd-but-valid images that just work (bad checkpoints: test_checkpoint.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from painter.errors import (
    ConfigError,
    InputMismatchError,
    InvalidImageError,
    InvalidMaskError,
)
from seggpt import SegGPTPredictor, load_model
from seggpt.coloring import MAX_CLASSES


def _noise(shape: tuple[int, ...], seed: int = 0, dtype=np.uint8) -> np.ndarray:
    high = np.iinfo(dtype).max + 1
    return np.random.default_rng(seed).integers(0, high, shape, dtype=dtype)


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint) -> SegGPTPredictor:
    return SegGPTPredictor(load_model(tiny_checkpoint), device="cpu", dtype="float32")


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    """A 48x32 prompt image and its binary mask."""
    mask = np.zeros((32, 48), dtype=np.uint8)
    mask[8:24, 10:30] = 1
    return _noise((32, 48, 3)), mask


# -- images and masks ---------------------------------------------------------------------------
def test_truncated_query_file(tmp_path, predictor, pair):
    Image.fromarray(_noise((64, 64, 3))).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InvalidImageError, match="truncated.*re-export"):
        predictor.predict([pair[0]], [pair[1]], [tmp_path / "cut.png"])


def test_file_that_is_not_an_image(tmp_path, predictor, pair):
    (tmp_path / "query.png").write_text("these are not pixels")
    with pytest.raises(InvalidImageError, match="not an image file"):
        predictor.predict([pair[0]], [pair[1]], [tmp_path / "query.png"])


def test_bad_file_in_a_later_batch_raises_when_its_batch_comes_up(tmp_path, predictor, pair):
    # The next batch is loaded in a thread while the model runs; its error still surfaces typed.
    (tmp_path / "bad.png").write_text("these are not pixels")
    queries = [_noise((40, 56, 3), seed=i) for i in range(3)] + [tmp_path / "bad.png"]
    with pytest.raises(InvalidImageError, match="not an image file"):
        predictor.predict([pair[0]], [pair[1]], queries, batch_size=2)


def test_prefetched_batches_keep_their_order(predictor, pair):
    queries = [_noise((40 + 8 * i, 56, 3), seed=i) for i in range(5)]
    together = predictor.predict([pair[0]], [pair[1]], queries, batch_size=2)
    for query, result in zip(queries, together):
        [alone] = predictor.predict([pair[0]], [pair[1]], [query])
        assert result.mask.shape == query.shape[:2]
        np.testing.assert_array_equal(result.mask, alone.mask)
        assert np.abs(result.painted.astype(int) - alone.painted.astype(int)).max() <= 1


def test_prompt_image_and_mask_of_different_sizes(predictor, pair):
    with pytest.raises(InputMismatchError, match="must match"):
        predictor.predict([pair[0]], [pair[1][:20]], [pair[0]])


def test_empty_prompt_mask(predictor, pair):
    with pytest.raises(InvalidMaskError, match="empty.*drop that prompt"):
        predictor.predict([pair[0]], [np.zeros_like(pair[1])], [pair[0]])


def test_more_classes_than_can_be_painted(predictor, pair):
    mask = pair[1].astype(np.int64) * (MAX_CLASSES + 1)
    with pytest.raises(InvalidMaskError, match="merge classes"):
        predictor.predict([pair[0]], [mask], [pair[0]])


def test_three_prompt_images_two_masks(predictor, pair):
    with pytest.raises(InputMismatchError, match="3 prompt images but 2 prompt masks.*one mask"):
        predictor.predict([pair[0]] * 3, [pair[1]] * 2, [pair[0]])


def _grayscale(folder: Path) -> tuple[Path, tuple[int, int]]:
    Image.fromarray(_noise((30, 50))).save(folder / "gray.png")
    return folder / "gray.png", (30, 50)


def _rgba(folder: Path) -> tuple[Path, tuple[int, int]]:
    Image.fromarray(_noise((64, 36, 4)), mode="RGBA").save(folder / "rgba.png")
    return folder / "rgba.png", (64, 36)


def _sixteen_bit(folder: Path) -> tuple[Path, tuple[int, int]]:
    Image.fromarray(_noise((20, 44), dtype=np.uint16)).save(folder / "deep.png")
    with Image.open(folder / "deep.png") as image:
        assert image.mode in ("I;16", "I")
    return folder / "deep.png", (20, 44)


def _palette(folder: Path) -> tuple[Path, tuple[int, int]]:
    image = Image.fromarray(_noise((26, 34, 3))).convert("P", palette=Image.Palette.ADAPTIVE)
    image.save(folder / "palette.png")
    return folder / "palette.png", (26, 34)


def _exif_rotated(folder: Path) -> tuple[Path, tuple[int, int]]:
    """Stored 40 wide and 24 high, tagged "rotate 90 degrees": upright it is 24 wide, 40 high."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_noise((24, 40, 3))).save(folder / "phone.jpg", exif=exif)
    return folder / "phone.jpg", (40, 24)


@pytest.mark.parametrize("write", [_grayscale, _rgba, _sixteen_bit, _palette, _exif_rotated])
def test_odd_but_valid_queries_give_masks_at_their_upright_size(tmp_path, predictor, pair, write):
    path, size = write(tmp_path)
    [result] = predictor.predict([pair[0]], [pair[1]], [path])
    assert result.mask.shape == size and result.painted.shape == (*size, 3)


# -- devices ------------------------------------------------------------------------------------
def test_unknown_device(tiny_checkpoint):
    with pytest.raises(ConfigError, match="unknown device 'gpu'.*cpu"):
        SegGPTPredictor(load_model(tiny_checkpoint), device="gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_asked_for_without_cuda(tiny_checkpoint):
    with pytest.raises(ConfigError, match="CUDA is not available; use cpu"):
        SegGPTPredictor(load_model(tiny_checkpoint), device="cuda")
