"""Every speed path equals the plain path it replaces: fp32 to 1e-5 relative, on tiny shapes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from painter import attention, backbone
from painter.attention import chunked_rel_pos_attention
from seggpt.loading import build_model


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


def _dense_reference(q, k, v, bias_h, bias_w):
    """The plain path: the whole (N x N per head) bias, then the fused SDPA kernel."""
    batch, heads, rows, grid_w, grid_h = bias_h.shape
    bias = bias_h[..., :, None] + bias_w[..., None, :]  # (B, heads, hq, w, h, w)
    bias = bias.reshape(batch, heads, rows * grid_w, grid_h * grid_w)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


@pytest.mark.parametrize("chunk_elements", [1, 150, 1 << 22], ids=["row", "some-rows", "all"])
@pytest.mark.parametrize("rows", [(0, 5), (2, 5)], ids=["all-rows", "lower-rows"])
def test_chunked_attention_equals_the_dense_bias_kernel(
    monkeypatch, generator, chunk_elements, rows
):
    monkeypatch.setattr(attention, "SCORE_CHUNK_ELEMENTS", chunk_elements)
    monkeypatch.setattr(attention, "MIN_CHUNK_QUERIES", 1)  # rows split too, on this small grid
    batch, heads, grid_h, grid_w, dim = 2, 3, 5, 4, 8
    hq = rows[1] - rows[0]

    def rand(*shape):
        return torch.randn(*shape, generator=generator)

    q = rand(batch, heads, hq * grid_w, dim)
    # keys and values as the fused qkv projection leaves them: strided views, not contiguous
    kv = rand(batch, grid_h * grid_w, 2, heads, dim).permute(2, 0, 3, 1, 4)
    k, v = kv[0], kv[1]
    bias_h = 3 * rand(batch, heads, hq, grid_w, grid_h)
    bias_w = 3 * rand(batch, heads, hq, grid_w, grid_w)
    out = chunked_rel_pos_attention(q, k, v, bias_h, bias_w)
    ref = _dense_reference(q, k, v, bias_h, bias_w)
    assert out.shape == ref.shape
    assert _rel(out, ref) < 1e-5
    # bf16: rounding only (scores and weights in bf16, the softmax in fp32)
    half = chunked_rel_pos_attention(*(t.bfloat16() for t in (q, k, v, bias_h, bias_w)))
    assert half.dtype == torch.bfloat16 and _rel(half, ref) < 3e-2


@pytest.fixture(scope="module")
def tiny_seggpt():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("seggpt_test").eval()
        for param in model.parameters():  # non-zero rel-pos tables and tokens
            param.data.add_(0.05 * torch.randn_like(param))
    return model


def test_inference_attention_equals_the_training_kernel(tiny_seggpt, monkeypatch, generator):
    """The CPU inference path (chunked) against the grad-enabled path (dense bias + SDPA)."""
    monkeypatch.setattr(attention, "SCORE_CHUNK_ELEMENTS", 64)  # several chunks per block
    monkeypatch.setattr(attention, "MIN_CHUNK_QUERIES", 1)
    images = torch.randn(2, 3, *tiny_seggpt.config.canvas_size, generator=generator)
    with torch.no_grad():
        fast, fast_taps = tiny_seggpt.backbone(images, taps=tiny_seggpt.config.tap_blocks)
    plain, plain_taps = tiny_seggpt.backbone(images, taps=tiny_seggpt.config.tap_blocks)
    assert plain.requires_grad  # the training path really ran
    assert _rel(fast, plain.detach()) < 1e-5
    for a, b in zip(fast_taps, plain_taps):
        assert _rel(a, b.detach()) < 1e-5


@pytest.mark.parametrize("n_p", [1, 3], ids=["one-prompt", "ensemble"])
def test_paint_queries_with_chunked_attention_equals_the_naive_forward(
    tiny_seggpt, monkeypatch, generator, n_p
):
    from painter.ops import query_half_mask, stitch

    monkeypatch.setattr(attention, "SCORE_CHUNK_ELEMENTS", 64)
    monkeypatch.setattr(attention, "MIN_CHUNK_QUERIES", 1)
    monkeypatch.setattr(backbone, "MLP_CHUNK_TOKENS", 5)  # the MLP in pieces too
    cfg = tiny_seggpt.config
    half = (cfg.canvas_size[0] // 2, cfg.canvas_size[1])
    prompts = torch.randn(n_p, 3, *half, generator=generator)
    targets = torch.randn(n_p, 3, *half, generator=generator)
    query = torch.randn(1, 3, *half, generator=generator)
    with torch.no_grad():
        fast = tiny_seggpt.paint_queries(prompts[None], targets[None], query)  # (1, 3, H/2, W)
    images = stitch(prompts, query.expand(n_p, -1, -1, -1))
    mask = query_half_mask(n_p, cfg.grid)
    naive = tiny_seggpt(images, stitch(targets, targets), mask, prompts_per_query=n_p)
    assert naive.requires_grad
    assert _rel(fast, naive.detach()[:1, :, half[0] :]) < 1e-4


@pytest.mark.parametrize("chunk_elements", [1, 40, 1 << 22], ids=["row", "some", "all"])
@pytest.mark.parametrize("rel_pos", [True, False], ids=["rel-pos", "plain"])
def test_shared_rows_attention_equals_each_canvas_averaged(
    monkeypatch, generator, chunk_elements, rel_pos
):
    """The query rows' scores against the shared rows computed once, joined with each canvas's
    own by the running-max softmax, against the dense kernel on every whole canvas."""
    from painter.attention import shared_rows_attention

    monkeypatch.setattr(attention, "SCORE_CHUNK_ELEMENTS", chunk_elements)
    monkeypatch.setattr(attention, "MIN_CHUNK_QUERIES", 1)
    batch, copies, heads, hp, hq, grid_w, dim = 2, 3, 2, 3, 2, 4, 8

    def rand(*shape, spread=1.0):
        return spread * torch.randn(*shape, generator=generator)

    q = rand(batch, heads, hq * grid_w, dim, spread=3.0)  # large scores: the max matters
    k_shared, v_shared = rand(batch, heads, hq * grid_w, dim), rand(batch, heads, hq * grid_w, dim)
    k_own = rand(batch * copies, heads, hp * grid_w, dim)
    v_own = rand(batch * copies, heads, hp * grid_w, dim)
    bias_h = rand(batch, heads, hq, grid_w, hp + hq, spread=3.0)
    bias_w = rand(batch, heads, hq, grid_w, grid_w, spread=3.0)
    terms = (bias_h, bias_w) if rel_pos else None
    out = shared_rows_attention(q, k_shared, v_shared, k_own, v_own, terms, grid_w=grid_w)

    def each(t):  # (B, ...) -> (B * P, ...), canvas-major within each of the B
        return t.repeat_interleave(copies, dim=0)

    keys = torch.cat([k_own, each(k_shared)], dim=2)  # (B*P, heads, N, d)
    values = torch.cat([v_own, each(v_shared)], dim=2)
    if rel_pos:
        ref = _dense_reference(each(q), keys, values, each(bias_h), each(bias_w))
    else:
        ref = F.scaled_dot_product_attention(each(q), keys, values)
    ref = ref.reshape(batch, copies, heads, hq * grid_w, dim).mean(dim=1)
    assert _rel(out, ref) < 1e-5
