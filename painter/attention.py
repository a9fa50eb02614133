"""Attention kernels for inference on a CPU, in plain torch: decomposed relative-position
attention without the dense bias, and the feature ensemble's shared query rows computed once.

Each equals the dense-bias ``scaled_dot_product_attention`` it replaces up to rounding
(tests/test_speed_paths.py); :mod:`painter.backbone` chooses when to use them.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

SCORE_CHUNK_ELEMENTS = 1 << 20
"""Attention scores held at once by the chunked attention functions (4 MiB of fp32): small enough
that the bias adds, softmax and casts after each score product find it in the cache (at ViT-L on
2 cores, 1 << 22 made the feature ensemble 8 % and a bf16 canvas 3 % slower)."""

MIN_CHUNK_QUERIES = 128
"""Queries per matrix product at least (whole grid rows) in the chunked attention functions: fewer
make the score products too thin to run near the machine's matrix-product rate."""


def score_chunks(
    groups: int, rows: int, grid_w: int, keys_per_query: int
) -> Iterator[tuple[slice, int, int]]:
    """How the chunked attention functions split their work: (group slice, first row, end row)
    pieces of at least :data:`MIN_CHUNK_QUERIES` queries (whole rows of ``grid_w``) and about
    :data:`SCORE_CHUNK_ELEMENTS` scores, over ``groups`` (batch x heads) and ``rows`` query
    rows."""
    step = min(rows, max(1, -(-MIN_CHUNK_QUERIES // grid_w)))
    per_group = max(1, SCORE_CHUNK_ELEMENTS // (step * grid_w * keys_per_query))
    for g0 in range(0, groups, per_group):
        for r0 in range(0, rows, step):
            yield slice(g0, min(groups, g0 + per_group)), r0, min(rows, r0 + step)


def chunked_rel_pos_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias_h: torch.Tensor,
    bias_w: torch.Tensor,
) -> torch.Tensor:
    """Softmax attention with a decomposed relative-position bias, a chunk at a time.

    The same result as ``scaled_dot_product_attention(q, k, v, attn_mask=bias)`` with the dense
    bias ``bias_h[..., :, None] + bias_w[..., None, :]``, without ever holding that (N x N per
    head) bias: each chunk (:func:`score_chunks`) gets its scores in float32 (whatever the
    inputs' dtype: in bf16 the broadcast adds ran twice as slow as the whole fp32 chunk), adds the
    two bias terms in place by broadcasting, and is soft-maxed and applied to the values. On a CPU
    this runs the attention about twice as fast as the dense-bias kernel. Inference only
    (in-place adds).

    Args:
        q: (B, heads, hq * w, d) queries on ``hq`` grid rows; k, v: (B, heads, h * w, d).
        bias_h: (B, heads, hq, w, h) the row term; bias_w: (B, heads, hq, w, w) the column term.
    Returns:
        (B, heads, hq * w, d).
    """
    batch, heads, rows, grid_w, grid_h = bias_h.shape
    groups, n_k, head_dim = batch * heads, k.shape[2], q.shape[-1]
    scale = head_dim**-0.5
    # (B*heads, ., d) once: views of the fused qkv projection would be copied for every chunk
    queries = q.reshape(groups, rows * grid_w, head_dim)
    keys_t = k.reshape(groups, n_k, head_dim).transpose(1, 2)  # (G, d, N)
    values = v.reshape(groups, n_k, head_dim)
    row_term = bias_h.reshape(groups, rows, grid_w, grid_h, 1)
    col_term = bias_w.reshape(groups, rows, grid_w, 1, grid_w)
    out = torch.empty(groups, rows * grid_w, head_dim, dtype=q.dtype, device=q.device)
    for group, r0, r1 in score_chunks(groups, rows, grid_w, n_k):
        span = slice(r0 * grid_w, r1 * grid_w)
        # float32 before the bias: a broadcast in-place add runs several times slower in bf16
        scores = torch.matmul(queries[group, span] * scale, keys_t[group]).float()  # (g, n, N)
        grid_scores = scores.view(-1, r1 - r0, grid_w, grid_h, grid_w)
        grid_scores.add_(row_term[group, r0:r1]).add_(col_term[group, r0:r1])
        weights = torch.softmax(scores, dim=-1)  # (g, n, N), float32
        out[group, span] = torch.matmul(weights.to(values.dtype), values[group])  # (g, n, d)
    return out.view(batch, heads, rows * grid_w, head_dim)


def shared_rows_attention(
    q: torch.Tensor,
    k_shared: torch.Tensor,
    v_shared: torch.Tensor,
    k_own: torch.Tensor,
    v_own: torch.Tensor,
    bias_terms: tuple[torch.Tensor, torch.Tensor] | None,
    *,
    grid_w: int,
) -> torch.Tensor:
    """The mean over P canvases of softmax attention whose keys split into each canvas's own top
    rows and bottom rows every canvas shares, with the queries on the shared rows.

    Per chunk (:func:`score_chunks`): the scores against the shared keys once, against each
    canvas's own keys per canvas; each part gets its own running maximum, exponentials, sums and
    value products, and the two are joined exactly as one softmax over all keys would be (the
    flash-attention rescaling), in float32.

    Args:
        q: (B, heads, hq * w, d); k_shared, v_shared: (B, heads, hq * w, d).
        k_own, v_own: (B * P, heads, hp * w, d), canvas-major within each of the B.
        bias_terms: None, or the decomposed relative-position bias of ``q`` over the whole
            (hp + hq, w) grid: the row term (B, heads, hq, w, hp + hq) and the column term
            (B, heads, hq, w, w).
    Returns:
        (B, heads, hq * w, d).
    """
    batch, heads, n_q, head_dim = q.shape
    groups, copies, n_own = batch * heads, k_own.shape[0] // batch, k_own.shape[2]
    hq, hp = n_q // grid_w, n_own // grid_w
    scale = head_dim**-0.5

    # (B*P, heads, Np, d) -> (B, heads, P, ., .) -> (G, P, ., .): one copy each
    keys_own_t = k_own.reshape(batch, copies, heads, n_own, head_dim).permute(0, 2, 1, 4, 3)
    keys_own_t = keys_own_t.reshape(groups, copies, head_dim, n_own)  # (G, P, d, Np)
    values_own = v_own.reshape(batch, copies, heads, n_own, head_dim).transpose(1, 2)
    values_own = values_own.reshape(groups, copies, n_own, head_dim)  # (G, P, Np, d)
    queries = q.reshape(groups, n_q, head_dim)
    keys_shared_t = k_shared.reshape(groups, n_q, head_dim).transpose(1, 2)  # (G, d, Nq)
    values_shared = v_shared.reshape(groups, n_q, head_dim)
    if bias_terms is not None:
        row_term = bias_terms[0].reshape(groups, hq, grid_w, hp + hq, 1)
        col_term = bias_terms[1].reshape(groups, hq, grid_w, 1, grid_w)
    out = torch.empty(groups, n_q, head_dim, dtype=q.dtype, device=q.device)

    def softmax_parts(scores: torch.Tensor, values: torch.Tensor):
        """Row maximum, sum of exponentials and exponential-weighted values, in float32."""
        top = scores.amax(dim=-1, keepdim=True)
        weights = scores.sub_(top).exp_()  # in place: the scores are this chunk's own
        total = weights.sum(dim=-1, keepdim=True)
        return top, total, torch.matmul(weights.to(values.dtype), values).float()

    for group, r0, r1 in score_chunks(groups, hq, grid_w, copies * n_own + n_q):
        span = slice(r0 * grid_w, r1 * grid_w)
        chunk = queries[group, span] * scale  # (g, n, d)
        shared = torch.matmul(chunk, keys_shared_t[group]).float()  # (g, n, Nq)
        own = torch.matmul(chunk[:, None], keys_own_t[group]).float()  # (g, P, n, Np)
        if bias_terms is not None:
            rows_h, rows_w = row_term[group, r0:r1], col_term[group, r0:r1]  # (g, n rows, w, ., .)
            grid = shared.view(-1, r1 - r0, grid_w, hq, grid_w)
            grid.add_(rows_h[:, :, :, hp:]).add_(rows_w)
            grid = own.view(-1, copies, r1 - r0, grid_w, hp, grid_w)
            grid.add_(rows_h[:, None, :, :, :hp]).add_(rows_w[:, None])
        top_s, total_s, out_s = softmax_parts(shared, values_shared[group])  # (g, n, 1 | d)
        top_o, total_o, out_o = softmax_parts(own, values_own[group])  # (g, P, n, 1 | d)
        top = torch.maximum(top_o, top_s[:, None])  # (g, P, n, 1)
        rescale_s, rescale_o = (top_s[:, None] - top).exp(), (top_o - top).exp()
        joined = (out_o * rescale_o + out_s[:, None] * rescale_s) / (
            total_o * rescale_o + total_s[:, None] * rescale_s
        )  # (g, P, n, d)
        out[group, span] = joined.mean(dim=1).to(q.dtype)
    return out.view(batch, heads, n_q, head_dim)
