"""Bad and odd inputs to the predictor and the loader: typed errors whose messages say what to
fix, and odd-but-valid images that just work."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from PIL import Image

import seggpt.loading
from painter.checkpoint import save_hf, save_official
from painter.errors import (
    CheckpointError,
    ConfigError,
    InputMismatchError,
    InvalidImageError,
    InvalidMaskError,
)
from seggpt import SegGPTPredictor, load_model
from seggpt.coloring import MAX_CLASSES


class NotATensor:
    """Pickled into a checkpoint; weights_only loading must refuse it."""


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


# -- checkpoints --------------------------------------------------------------------------------
def test_checkpoint_with_unrelated_keys(tmp_path):
    torch.save(
        {"encoder.weight": torch.zeros(3, 3), "head.bias": torch.zeros(3)}, tmp_path / "x.pt"
    )
    with pytest.raises(CheckpointError, match="not a SegGPT/Painter checkpoint"):
        load_model(tmp_path / "x.pt")


def test_sam_checkpoint(tmp_path):
    state = {"image_encoder.patch_embed.proj.weight": torch.zeros(8, 3, 16, 16)}
    torch.save(state, tmp_path / "sam_vit_b.pth")
    with pytest.raises(CheckpointError, match="SAM checkpoint.*build_sam"):
        load_model(tmp_path / "sam_vit_b.pth")


def test_official_checkpoint_missing_a_key_names_it(tmp_path, tiny_checkpoint):
    model = load_model(tiny_checkpoint)
    save_official(model.state_dict(), tmp_path / "official.pth", config=model.config)
    payload = torch.load(tmp_path / "official.pth", weights_only=True)
    del payload["model"]["blocks.1.norm1.weight"]
    torch.save(payload, tmp_path / "official.pth")
    with pytest.raises(
        CheckpointError, match=r"1 missing \['backbone\.blocks\.1\.norm1\.weight'\]"
    ):
        load_model(tmp_path / "official.pth")


def test_official_checkpoint_whose_shapes_fit_no_model(tmp_path, tiny_checkpoint):
    """Without its config, a 4-block file cannot be inferred: CheckpointError, not ConfigError."""
    save_official(load_model(tiny_checkpoint).state_dict(), tmp_path / "official.pth")
    with pytest.raises(CheckpointError, match="cannot infer the architecture"):
        load_model(tmp_path / "official.pth")


def test_pickled_python_object_is_refused(tmp_path):
    torch.save({"model": NotATensor()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="weights_only.*NotATensor.*re-save"):
        load_model(tmp_path / "evil.pth")


def test_missing_demo_model_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setattr(seggpt.loading, "DEMO_CHECKPOINT", tmp_path / "demo.safetensors")
    with pytest.raises(CheckpointError, match="make demo-model"):
        load_model("demo")


@pytest.mark.parametrize(
    ("hub_id", "files"),
    [("BAAI/SegGPT", "seggpt_vit_large.pth"), ("BAAI/seggpt-vit-large", "config.json, model")],
)
def test_hub_id_offline_names_the_files_to_download(tmp_path, monkeypatch, hub_id, files):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError, match=f"download {files}.*huggingface.co/{hub_id}"):
        load_model(hub_id)


def test_mistyped_local_file_is_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="runs/model.safetensors does not exist"):
        load_model("runs/model.safetensors")


def test_tiny_checkpoint_with_a_large_variant(tiny_checkpoint):
    with pytest.raises(CheckpointError, match="does not hold a seggpt_vit_base model"):
        load_model(tiny_checkpoint, variant="seggpt_vit_base")


@pytest.mark.parametrize(
    ("damage", "word"),
    [("model.safetensors", "not a readable safetensors file"), ("config.json", "not valid JSON")],
)
def test_damaged_transformers_folder(tmp_path, tiny_checkpoint, damage, word):
    model = load_model(tiny_checkpoint)
    save_hf(model.state_dict(), model.config, tmp_path / "hf")
    (tmp_path / "hf" / damage).write_bytes(b"{\x00 damaged")
    with pytest.raises(CheckpointError, match=word):
        load_model(tmp_path / "hf")
