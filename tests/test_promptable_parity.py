"""Numerical parity of the promptable model with transformers' SamModel and Meta's SAM code.

Both references are built at a small config with every tensor random (relative-position tables,
tokens, norms and the Fourier matrix included), saved in their own format and loaded with
build_sam; the same prompts then have to give the same low-resolution logits and IoUs.
"""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.references import random_hf_sam
from painter.promptable import build_sam
from tests.promptable_helpers import rel_diff

transformers = pytest.importorskip("transformers")

RTOL = 1e-4
IMAGE = 192  # 12 x 12 tokens; window 5 pads them to 15 x 15
GRID = IMAGE // 16
HF_CONFIG = dict(
    vision_config=dict(
        hidden_size=96,
        num_hidden_layers=3,
        num_attention_heads=3,
        image_size=IMAGE,
        window_size=5,
        global_attn_indexes=[1],
        output_channels=64,
        num_pos_feats=32,
    ),
    prompt_encoder_config=dict(hidden_size=64, image_size=IMAGE, mask_input_channels=16),
    mask_decoder_config=dict(
        hidden_size=64, mlp_dim=128, num_attention_heads=4, iou_head_hidden_dim=64
    ),
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def hf_pair(tmp_path_factory):
    """(transformers model, our model loaded from its save_pretrained folder, folder)."""
    hf = random_hf_sam(1, **HF_CONFIG)
    folder = tmp_path_factory.mktemp("hf_sam")
    hf.save_pretrained(folder)
    return hf, build_sam(checkpoint=folder), folder


def _inputs(seed: int = 2) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x0y0 = torch.rand(2, 2, generator=gen) * IMAGE / 2
    return {
        "pixels": torch.randn(2, 3, IMAGE, IMAGE, generator=gen),
        "points": torch.rand(2, 3, 2, generator=gen) * IMAGE,
        "labels": torch.tensor([[1, 0, 1], [1, 1, 0]]),
        "boxes": torch.cat([x0y0, x0y0 + IMAGE / 3], dim=1),
        "masks": 4 * torch.randn(2, 1, 4 * GRID, 4 * GRID, generator=gen),
    }


CASES = {
    "points": ("points",),
    "box": ("boxes",),
    "points_box_mask": ("points", "boxes", "masks"),
}


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_transformers_sam(hf_pair, case, multimask):
    hf, ours, _ = hf_pair
    data = _inputs()
    use = CASES[case]
    with torch.no_grad():
        ref = hf(
            pixel_values=data["pixels"],
            input_points=data["points"][:, None] if "points" in use else None,
            input_labels=data["labels"][:, None] if "points" in use else None,
            input_boxes=data["boxes"][:, None] if "boxes" in use else None,
            input_masks=data["masks"] if "masks" in use else None,
            multimask_output=multimask,
        )
        logits, iou = ours(
            data["pixels"],
            points=data["points"] if "points" in use else None,
            labels=data["labels"] if "points" in use else None,
            boxes=data["boxes"] if "boxes" in use else None,
            mask_inputs=data["masks"] if "masks" in use else None,
            multimask=multimask,
        )
    ref_logits, ref_iou = ref.pred_masks[:, 0], ref.iou_scores[:, 0]  # (B, K, 4h, 4w), (B, K)
    assert logits.shape == ref_logits.shape == (2, 3 if multimask else 1, 4 * GRID, 4 * GRID)
    assert rel_diff(logits, ref_logits) <= RTOL
    assert rel_diff(iou, ref_iou) <= RTOL


def test_image_embedding_matches_transformers(hf_pair):
    hf, ours, _ = hf_pair
    pixels = _inputs()["pixels"]
    with torch.no_grad():
        ref = hf.get_image_embeddings(pixels)
        emb = ours.encode_images(pixels)
    assert emb.shape == ref.shape == (2, 64, GRID, GRID)
    assert rel_diff(emb, ref) <= RTOL


def test_config_comes_from_config_json(hf_pair):
    _, ours, folder = hf_pair
    config = ours.config
    assert (config.encoder.embed_dim, config.encoder.depth, config.encoder.num_heads) == (96, 3, 3)
    assert config.encoder.window_size == 5 and config.encoder.global_attn_blocks == (1,)
    assert (config.image_size, config.prompt_embed_dim, config.decoder_heads) == (IMAGE, 64, 4)
    assert config.decoder_norm_eps == 1e-6  # transformers' two-way LayerNorms
    assert config.name == "sam"  # no registered variant has this architecture
    assert json.loads((folder / "config.json").read_text())["model_type"] == "sam"


# -- Meta's code (the meta_pair fixture: conftest.py) ---------------------------------------------
@pytest.mark.parametrize("multimask", [True, False])
def test_matches_meta_sam(meta_pair, multimask):
    sam, ours, _ = meta_pair
    data = _inputs(seed=4)
    pixels = data["pixels"][:1]
    with torch.no_grad():
        ref_emb = sam.image_encoder(pixels)
        sparse, dense = sam.prompt_encoder(
            points=(data["points"], data["labels"]), boxes=data["boxes"], masks=data["masks"]
        )
        ref_logits, ref_iou = sam.mask_decoder(
            image_embeddings=ref_emb,
            image_pe=sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )
        emb = ours.encode_images(pixels)
        logits, iou = ours.predict_masks(  # two prompt rows against one shared embedding
            emb,
            points=data["points"],
            labels=data["labels"],
            boxes=data["boxes"],
            mask_inputs=data["masks"],
            multimask=multimask,
        )
    assert rel_diff(emb, ref_emb) <= RTOL
    assert logits.shape == ref_logits.shape
    assert rel_diff(logits, ref_logits) <= RTOL
    assert rel_diff(iou, ref_iou) <= RTOL


def test_meta_points_only_get_the_padding_point(meta_pair):
    sam, ours, _ = meta_pair
    data = _inputs(seed=5)
    with torch.no_grad():
        ref_sparse, _ = sam.prompt_encoder(
            points=(data["points"], data["labels"]), boxes=None, masks=None
        )
        sparse, _ = ours.prompt_encoder(points=data["points"], labels=data["labels"])
    assert sparse.shape == ref_sparse.shape == (2, 4, 64)
    assert rel_diff(sparse, ref_sparse) <= RTOL
