"""Checkpoints: reading, strict loading, saving and converting every format of both families,
and the errors that say what is wrong with a file (SegGPT/Painter: native safetensors, BAAI's
official .pth, transformers folders; promptable: native, Meta's .pth, transformers folders)."""

from __future__ import annotations

import json

import huggingface_hub.constants
import pytest
import torch
from safetensors.torch import load_file

import seggpt.loading
from painter.checkpoint import CheckpointFormat, read_checkpoint, save_hf, save_official
from painter.config import SegType
from painter.errors import CheckpointError
from painter.ops import query_half_mask
from painter.promptable import build_sam, read_sam_checkpoint, save_sam, save_sam_official
from seggpt import load_model
from tools import convert_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


class NotATensor:
    """Pickled into a checkpoint; weights_only loading must refuse it."""


# -- SegGPT/Painter: loading and its errors --------------------------------------------------------
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


# -- SegGPT/Painter: converting (tools.convert_checkpoint) -----------------------------------------
def _outputs(model: torch.nn.Module, seed: int = 0) -> torch.Tensor:
    """(1, 3, H, W) painted canvas of ``model`` for a seeded random prompt/query pair."""
    gen = torch.Generator().manual_seed(seed)
    height, width = model.config.canvas_size
    images, targets = (torch.randn(1, 3, height, width, generator=gen) for _ in range(2))
    with torch.no_grad():
        return model(images, targets, query_half_mask(1, model.config.grid), seg_type=SegType(0))


def test_convert_round_trip_native_official_hf_native(tmp_path, tiny_checkpoint, capsys):
    steps = [("official", "m.pth"), ("hf", "hf_dir"), ("native", "back.safetensors")]
    src = tiny_checkpoint
    for fmt, name in steps:
        assert convert_checkpoint.main([str(src), str(tmp_path / name), "--to", fmt]) == 0
        src = tmp_path / name
    assert read_checkpoint(tmp_path / "m.pth").format is CheckpointFormat.OFFICIAL
    before, after = load_file(tiny_checkpoint), load_file(tmp_path / "back.safetensors")
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    original, converted = load_model(tiny_checkpoint), load_model(tmp_path / "back.safetensors")
    assert original.config == converted.config
    assert torch.equal(_outputs(original), _outputs(converted))
    assert "wrote" in capsys.readouterr().out


def test_converted_hf_dir_loads_in_transformers_and_agrees(tmp_path, tiny_checkpoint):
    transformers = pytest.importorskip("transformers")
    assert convert_checkpoint.main([str(tiny_checkpoint), str(tmp_path / "hf"), "--to", "hf"]) == 0
    hf, info = transformers.SegGptForImageSegmentation.from_pretrained(
        tmp_path / "hf", output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    ours = load_model(tiny_checkpoint)
    gen = torch.Generator().manual_seed(1)
    height, width = ours.config.half_size
    query, prompt, mask = (torch.randn(1, 3, height, width, generator=gen) for _ in range(3))
    with torch.no_grad():
        ref = hf.eval()(
            pixel_values=query,
            prompt_pixel_values=prompt,
            prompt_masks=mask,
            embedding_type="instance",
        ).pred_masks
        out = ours(
            torch.cat([prompt, query], dim=2),
            torch.cat([mask, mask], dim=2),
            query_half_mask(1, ours.config.grid),
            seg_type=SegType.INSTANCE,
        )
    assert ((out - ref).abs().max() / ref.abs().max()).item() <= 1e-4


@pytest.mark.parametrize(
    ("fmt", "name", "word"),
    [
        ("native", "m.pth", "safetensors"),
        ("official", "m.safetensors", ".pth"),
        ("hf", "f.txt", "folder"),
    ],
)
def test_convert_refuses_destinations_read_back_as_another_format(
    tmp_path, tiny_checkpoint, error_line, fmt, name, word
):
    (tmp_path / "f.txt").write_text("a file")
    assert convert_checkpoint.main([str(tiny_checkpoint), str(tmp_path / name), "--to", fmt]) == 2
    assert word in error_line()


def test_convert_of_a_missing_source_exits_2(tmp_path, error_line):
    missing = str(tmp_path / "nothing.pth")
    assert (
        convert_checkpoint.main([missing, str(tmp_path / "o.safetensors"), "--to", "native"]) == 2
    )
    assert "does not exist" in error_line()


# -- promptable ------------------------------------------------------------------------------------
def test_seggpt_checkpoint_is_refused_with_a_pointer(tiny_checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match="seggpt.load_model"):
        build_sam(checkpoint=tiny_checkpoint)
    folder = tmp_path / "hf_seggpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "seggpt"}))
    with pytest.raises(CheckpointError, match="seggpt.load_model"):
        build_sam(checkpoint=folder)
    with pytest.raises(CheckpointError, match="does not exist"):
        build_sam(checkpoint=tmp_path / "missing.pth")


def test_official_file_of_a_variant_loads_under_its_name(sam_tiny, tmp_path):
    path = save_sam_official(sam_tiny, tmp_path / "tiny.pth")
    raw = read_sam_checkpoint(path)
    assert raw.config.name == "sam_tiny" and raw.format.value == "official"
    loaded = build_sam("sam_tiny", checkpoint=path)
    assert all(torch.equal(a, b) for a, b in zip(loaded.parameters(), sam_tiny.parameters()))


def test_sam_checkpoint_is_refused_by_seggpt(sam_tiny, tmp_path):
    path = save_sam(sam_tiny, tmp_path / "tiny_sam.safetensors")
    with pytest.raises(CheckpointError, match="build_sam"):
        load_model(path)


def test_official_and_native_round_trip(meta_pair, tmp_path):
    _, ours, _ = meta_pair
    official = save_sam_official(ours, tmp_path / "again.pth")
    native = save_sam(ours, tmp_path / "again.safetensors")
    reference = ours.state_dict()
    for path in (official, native):
        state = build_sam(checkpoint=path).state_dict()
        assert state.keys() == reference.keys()
        assert all(torch.equal(state[k], reference[k]) for k in reference)
    raw = read_sam_checkpoint(official)
    assert raw.config.decoder_heads == 8 and raw.config.encoder.global_attn_blocks == (1,)


def test_variant_must_match_the_checkpoint(meta_pair):
    _, _, path = meta_pair
    with pytest.raises(CheckpointError, match="does not hold a sam_tiny"):
        build_sam("sam_tiny", checkpoint=path)


def test_damaged_checkpoint_is_refused(meta_pair, tmp_path):
    sam, _, _ = meta_pair
    state = sam.state_dict()
    state.pop("mask_decoder.iou_token.weight")
    state["mask_decoder.extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "damaged.pth")
    with pytest.raises(CheckpointError, match="1 missing .*1 unexpected"):
        build_sam(checkpoint=tmp_path / "damaged.pth")
