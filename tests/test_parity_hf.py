"""Numerical parity with transformers' SegGptForImageSegmentation at random weights."""

from __future__ import annotations

import pytest
import torch

from benchmarks.references import random_hf_seggpt
from painter.checkpoint import save_official
from painter.config import SegType
from painter.formats import CheckpointFormat, convert_keys
from painter.ops import query_half_mask
from seggpt.loading import load_model

SMALL = dict(
    hidden_size=192,
    num_hidden_layers=12,
    num_attention_heads=3,
    mlp_dim=768,
    intermediate_hidden_state_indices=[2, 5, 8, 11],
    merge_index=2,
    image_size=[128, 64],
    pretrain_image_size=64,
    decoder_hidden_size=32,
)
OTHER = dict(
    hidden_size=96,
    num_hidden_layers=6,
    num_attention_heads=2,
    mlp_dim=256,
    intermediate_hidden_state_indices=[3, 5],
    merge_index=1,
    image_size=[192, 96],
    patch_size=16,
    pretrain_image_size=224,
    decoder_hidden_size=16,
)


def _inputs(hf_config, seed=0):
    gen = torch.Generator().manual_seed(seed)
    h, w = hf_config["image_size"]
    return [torch.randn(1, 3, h // 2, w, generator=gen) for _ in range(3)]


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("hf_config", [SMALL, OTHER], ids=["192x12", "96x6"])
@pytest.mark.parametrize("seg_type", [SegType.SEMANTIC, SegType.INSTANCE])
def test_hf_directory_parity(tmp_path, hf_config, seg_type):
    hf = random_hf_seggpt(**hf_config)
    hf.save_pretrained(tmp_path / "hf")
    ours, report = load_model(tmp_path / "hf", return_report=True)
    assert report.format is CheckpointFormat.HF and not report.missing and not report.unexpected
    query, prompt, mask = _inputs(hf_config)
    with torch.no_grad():
        ref = hf(
            pixel_values=query,
            prompt_pixel_values=prompt,
            prompt_masks=mask,
            embedding_type=seg_type.name.lower(),
        ).pred_masks
        canvas_img = torch.cat([prompt, query], dim=2)
        canvas_tgt = torch.cat([mask, mask], dim=2)
        out = ours(canvas_img, canvas_tgt, query_half_mask(1, ours.config.grid), seg_type=seg_type)
        fast = ours.paint_queries(prompt[:, None], mask[:, None], query, seg_type=seg_type)
    assert _rel(out, ref) <= 1e-4
    half = ref.shape[-2] // 2
    assert _rel(fast, ref[..., half:, :]) <= 1e-4


def test_official_format_parity(tmp_path):
    """HF keys renamed to BAAI's names, saved as an official .pth, load and agree."""
    hf = random_hf_seggpt(**SMALL)
    native = convert_keys(hf.state_dict(), CheckpointFormat.HF, CheckpointFormat.NATIVE)
    save_official(native, tmp_path / "seggpt_small.pth")
    raw = torch.load(tmp_path / "seggpt_small.pth", weights_only=True)
    assert "blocks.0.attn.rel_pos_h" in raw["model"] and "segment_token_x" in raw["model"]
    ours = load_model(tmp_path / "seggpt_small.pth")
    assert ours.config.tap_blocks == (2, 5, 8, 11) and ours.config.vit.num_heads == 3
    query, prompt, mask = _inputs(SMALL, seed=3)
    with torch.no_grad():
        ref = hf(pixel_values=query, prompt_pixel_values=prompt, prompt_masks=mask).pred_masks
        fast = ours.paint_queries(prompt[:, None], mask[:, None], query)
    assert _rel(fast, ref[..., ref.shape[-2] // 2 :, :]) <= 1e-4
