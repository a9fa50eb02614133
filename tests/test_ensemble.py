"""Feature ensemble: the original formula, the shared-query fast path, and HF's deviation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.references import random_hf_seggpt
from painter.ops import denormalize, normalize, query_half_mask
from seggpt.ensemble import average_query_half, tile_grid
from seggpt.loading import build_model, load_model
from tests.test_parity_hf import SMALL, _rel


def _episode(config, queries, prompts, seed=0):
    gen = torch.Generator().manual_seed(seed)
    h, w = config.half_size
    prompt_images = torch.randn(queries, prompts, 3, h, w, generator=gen)
    prompt_targets = torch.randn(queries, prompts, 3, h, w, generator=gen)
    query_images = torch.randn(queries, 3, h, w, generator=gen)
    return prompt_images, prompt_targets, query_images


def _canvases(prompt_images, prompt_targets, query_images):
    q, p = prompt_images.shape[:2]
    images = torch.cat([prompt_images, query_images[:, None].expand_as(prompt_images)], dim=-2)
    targets = torch.cat([prompt_targets, prompt_targets], dim=-2)
    return images.flatten(0, 1), targets.flatten(0, 1)  # (Q * P, 3, H, W)


def naive_original(model, images, targets, prompts):
    """The original SegGPT block loop written out by hand (one query, P prompts)."""
    cfg = model.config
    x, y = model.embed(images, targets, query_half_mask(images.shape[0], cfg.grid))
    h = torch.cat([x, y])
    rows = h.shape[1] // 2
    taps = []
    for i, blk in enumerate(model.backbone.blocks):
        a = blk.attn(blk.norm1(h))
        if i <= cfg.merge_block:  # per stream: image rows 0..P-1, target rows P..2P-1
            for s in range(2):
                part = a[s * prompts : (s + 1) * prompts, rows:]
                a[s * prompts : (s + 1) * prompts, rows:] = part.mean(0, keepdim=True)
        else:
            a[:, rows:] = a[:, rows:].mean(0, keepdim=True)
        h = h + a
        h = h + blk.mlp(blk.norm2(h))
        if i == cfg.merge_block:
            h = (h[:prompts] + h[prompts:]) / 2
        if i in cfg.tap_blocks:
            taps.append(model.norm(h))
    return model.decoder(torch.cat(taps, -1))


def test_forward_and_fast_path_match_the_original_formula():
    model = build_model("seggpt_test").eval()
    pi, pt, qi = _episode(model.config, 1, 4)
    images, targets = _canvases(pi, pt, qi)
    with torch.no_grad():
        ref = naive_original(model, images, targets, prompts=4)
        out = model(images, targets, query_half_mask(4, model.config.grid), prompts_per_query=4)
        fast = model.paint_queries(pi, pt, qi)
    half = ref.shape[-2] // 2
    assert _rel(out, ref) < 1e-5
    assert _rel(fast[0], ref[0, :, half:]) < 1e-5
    # The ensemble really mixes prompts: one prompt alone paints something else.
    with torch.no_grad():
        single = model.paint_queries(pi[:, :1], pt[:, :1], qi)
    assert _rel(single, fast) > 1e-2


def test_batched_queries_equal_one_by_one():
    model = build_model("seggpt_test").eval()
    pi, pt, qi = _episode(model.config, 3, 2, seed=1)
    with torch.no_grad():
        batched = model.paint_queries(pi, pt, qi)
        alone = torch.cat(
            [model.paint_queries(pi[i : i + 1], pt[i : i + 1], qi[i : i + 1]) for i in range(3)]
        )
    assert _rel(batched, alone) < 1e-5


@pytest.mark.parametrize("expanded", [True, False])
def test_queries_sharing_their_prompts_run_the_target_stream_once(monkeypatch, expanded):
    """One prompt set for every query (a prepared prompt over a batch, as an expanded view or as
    equal copies): the pre-merge target stream, which never sees a query image, runs once for
    all queries, and the output equals painting each query alone."""
    model = build_model("seggpt_test").eval()
    pi, pt, qi = _episode(model.config, 1, 2, seed=3)
    _, _, qi = _episode(model.config, 4, 2, seed=4)
    pi, pt = pi.expand(4, -1, -1, -1, -1), pt.expand(4, -1, -1, -1, -1)
    if not expanded:
        pi, pt = pi.clone(), pt.clone()
    calls = []
    block = type(model)._shared_query_block

    def counted(self, index, prompt_tok, query_tok, *args, **kwargs):
        calls.append((index, prompt_tok.shape[:2], query_tok.shape[:2]))
        return block(self, index, prompt_tok, query_tok, *args, **kwargs)

    monkeypatch.setattr(type(model), "_shared_query_block", counted)
    with torch.no_grad():
        batched = model.paint_queries(pi, pt, qi)
        shared_calls = list(calls)
        alone = torch.cat([model.paint_queries(pi[:1], pt[:1], qi[i : i + 1]) for i in range(4)])
    assert _rel(batched, alone) < 1e-5
    merge = model.config.merge_block
    once = [c for c in shared_calls if c[1:] == ((1, 2), (1, 1))]  # target stream, one query
    assert [c[0] for c in once] == list(range(merge + 1))
    assert all(c[1] == (1, 8) for c in shared_calls if c not in once)  # image stream, 4 x 2
    # queries whose prompt targets differ take the general path: both streams together
    calls.clear()
    other = pt.clone()
    other[1] += 1.0
    with torch.no_grad():
        model.paint_queries(pi, other, qi)
    assert calls[0][1] == (2, 8)


def test_hf_ensemble_mixes_streams_at_the_merge_block(tmp_path):
    """HF averages image- and target-stream query halves together at block merge_index; the
    original averages each stream alone there. Reproducing HF's rule in our hooks gives HF's
    output; our default (the original) differs."""
    hf = random_hf_seggpt(**SMALL)
    hf.save_pretrained(tmp_path)
    ours = load_model(tmp_path)
    pi, pt, qi = _episode(ours.config, 1, 3, seed=2)
    images, targets = _canvases(pi, pt, qi)
    merge = ours.config.merge_block

    def hf_rule(block, merged):
        if block < merge:
            return lambda a: average_query_half(a, streams=2, prompts=3)
        return lambda a: average_query_half(a, streams=1, prompts=a.shape[0])

    mask = query_half_mask(3, ours.config.grid)
    with torch.no_grad():
        ref = hf(
            pixel_values=qi.expand(3, -1, -1, -1),
            prompt_pixel_values=pi[0],
            prompt_masks=pt[0],
            feature_ensemble=True,
        ).pred_masks
        as_hf = super(type(ours), ours).forward(images, targets, mask, hooks=hf_rule)
        original = ours(images, targets, mask, prompts_per_query=3)
    assert _rel(as_hf, ref) <= 1e-4
    assert _rel(original, ref) > 1e-3


def test_tile_grid_fills_every_cell():
    tiles = [np.full((2, 3), i) for i in range(3)]
    grid = tile_grid(tiles)
    assert grid.shape == (4, 6)
    assert [grid[0, 0], grid[0, 3], grid[2, 0], grid[2, 3]] == [0, 1, 2, 0]


@pytest.mark.parametrize(
    "extension",
    [
        {"decoder_guide": 4},
        {"decoder_linear": True},
        {"paint_activation": "sigmoid"},
        {"decoder_match": 8, "paint_activation": "sigmoid"},
        {"decoder_match": 8, "match_colour_bins": 2, "paint_activation": "sigmoid"},
        {
            "decoder_match": 8,
            "match_colour_bins": 2,
            "match_sink": 0.3,
            "paint_activation": "sigmoid",
        },
        {
            "decoder_match": 8,
            "match_sink": 0.3,
            "match_gate": (20.0, 0.5),
            "paint_activation": "sigmoid",
        },
    ],
    ids=["guided", "linear", "sigmoid", "match", "match-colour", "match-sink", "match-gate"],
)
def test_decoder_extensions_fast_path_matches_forward(tmp_path, extension):
    """With the image-guided decoder (decoder_guide > 0), the linear painting path
    (decoder_linear) or the match head (decoder_match; with 3 prompts it reads their joint
    memory) both inference paths give the same painting, and native and official
    checkpoints round-trip the extra layers (the transformers export refuses them)."""
    import dataclasses

    from painter.checkpoint import CheckpointError, save_native, save_official
    from painter.formats import config_to_hf
    from painter.registry import get_config

    config = dataclasses.replace(get_config("seggpt_test"), **extension)
    model = build_model(config).eval()
    pi, pt, qi = _episode(config, 2, 3, seed=3)
    images, targets = _canvases(pi, pt, qi)
    with torch.no_grad():
        out = model(images, targets, query_half_mask(6, config.grid), prompts_per_query=3)
        fast = model.paint_queries(pi, pt, qi)
        half = out.shape[-2] // 2
        assert _rel(fast, out[::3, :, half:]) < 1e-5
    save_native(model, tmp_path / "extended.safetensors")
    save_official(model.state_dict(), tmp_path / "extended.pth", config=config)
    for name in ("extended.safetensors", "extended.pth"):
        again = load_model(tmp_path / name).eval()
        assert all(getattr(again.config, k) == v for k, v in extension.items())
        with torch.no_grad():
            assert _rel(again.paint_queries(pi, pt, qi), fast) < 1e-6
    with pytest.raises(CheckpointError, match="image-guided or linear decoder path, no match head"):
        config_to_hf(config)
    if "paint_activation" in extension:  # the canvas is the sigmoid of the raw output
        with torch.no_grad():
            raw = model(images, targets, query_half_mask(6, config.grid), raw=True)
            painted = model(images, targets, query_half_mask(6, config.grid))
        assert _rel(painted, normalize(torch.sigmoid(raw))) < 1e-6
        assert (denormalize(painted) >= 0).all() and (denormalize(painted) <= 1).all()
        return
    # The extra layers reach the output.
    extra = model.decoder.guide[0] if "decoder_guide" in extension else model.decoder.linear_paint
    with torch.no_grad():
        extra.weight.zero_()
        assert _rel(model.paint_queries(pi, pt, qi), fast) > 1e-3
