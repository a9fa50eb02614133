"""Adaptation data side: the domain shift, LoRA self-training with box prompts, LoRA files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from painter.errors import CheckpointError, InputMismatchError
from painter.promptable.adapt import merge_lora
from painter.promptable.checkpoint import save_sam
from painter.promptable.model import build_sam_from_config
from seggpt.training.promptable_domain import (
    DomainShift,
    adapt_with_boxes,
    load_lora,
    lora_parameter_count,
    save_lora,
    shifted_objects,
)
from tests.promptable_helpers import small_sam_config
from tools import adapt as adapt_cli


def decode(model, images, boxes):
    with torch.no_grad():
        embedding = model.encode_images(images)
        return model.predict_masks(embedding, boxes=boxes, multimask=False)[0]


def test_domain_shift_is_deterministic_and_changes_colors_not_labels():
    [sample] = shifted_objects(64, "test", 1)
    [again] = shifted_objects(64, "test", 1)
    np.testing.assert_array_equal(sample.image, again.image)
    assert sample.boxes.shape == (len(sample.masks), 4)
    image = np.full((8, 8, 3), 100, dtype=np.uint8)
    shifted = DomainShift(noise_std=0.0, blur_sigma=0.1).apply(image, seed=0)
    assert abs(float(shifted[..., 0].mean()) - 95.0) < 2  # 100 * 1.25 - 30
    assert abs(float(shifted[..., 2].mean()) - 110.0) < 2  # 100 * 0.7 + 40


def test_adaptation_trains_only_lora_and_files_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_sam_from_config(small_sam_config())
    base = {k: v.clone() for k, v in model.state_dict().items()}
    samples = shifted_objects(64, "adapt", 2)
    adapter, losses = adapt_with_boxes(
        model, [s.image for s in samples], [s.boxes for s in samples], steps=4, lr=1e-2
    )
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert lora_parameter_count(model) == 2 * 2 * 2 * 32 * 4  # blocks x (q, v) x (A, B) x C x r
    for name, value in model.state_dict().items():  # the base weights are untouched
        if ".lora_" not in name:
            key = name.replace(".qkv.qkv.", ".qkv.")
            torch.testing.assert_close(value, base[key], rtol=0, atol=0)
    images = torch.randn(1, 3, 64, 64)
    boxes = torch.tensor([[4.0, 4.0, 40.0, 30.0]])
    adapted = decode(model, images, boxes)
    save_lora(model, tmp_path / "lora.safetensors")
    fresh = build_sam_from_config(small_sam_config())
    fresh.load_state_dict(base)
    torch.testing.assert_close(
        decode(load_lora(fresh, tmp_path / "lora.safetensors"), images, boxes), adapted
    )
    merged = decode(merge_lora(model), images, boxes)
    torch.testing.assert_close(merged, adapted, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(adapted, decode(_base(base), images, boxes))


def _base(state):
    model = build_sam_from_config(small_sam_config())
    model.load_state_dict(state)
    return model


def test_lora_file_checks(tmp_path):
    model = build_sam_from_config(small_sam_config())
    with pytest.raises(CheckpointError, match="no LoRA layers"):
        save_lora(model, tmp_path / "x.safetensors")
    save_sam(model, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="not a LoRA file"):
        load_lora(model, tmp_path / "model.safetensors")
    with pytest.raises(InputMismatchError, match="must be 64x64"):
        adapt_with_boxes(model, [np.zeros((32, 32, 3), np.uint8)], [np.zeros((1, 4))], steps=1)


def test_adapt_cli_on_the_synthetic_shift(tmp_path, capsys):
    checkpoint = save_sam(build_sam_from_config(small_sam_config()), tmp_path / "base.safetensors")
    out = tmp_path / "adapted"
    code = adapt_cli.main(
        [
            "--checkpoint",
            str(checkpoint),
            "--synthetic-shift",
            "2",
            "--steps",
            "2",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert (out / "lora.safetensors").is_file() and (out / "adapted.safetensors").is_file()
    assert json.loads((out / "losses.json").read_text())["trained"] == 1024
    assert "2 steps" in capsys.readouterr().out
    assert (
        adapt_cli.main(
            ["--checkpoint", str(checkpoint), "--images", str(tmp_path), "--out", str(out)]
        )
        == 2
    )
