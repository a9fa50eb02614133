"""Plain ViT image encoder: patch embedding, learned absolute position embedding, blocks with
global or windowed attention and decomposed relative position, layer taps, gradient checkpointing.

Nothing here knows about prompts, streams or masks; the painter models and the promptable head
compose it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, resample_abs_pos_embed, trunc_normal_
from timm.models.vision_transformer_sam import get_rel_pos, window_partition, window_unpartition
from torch import nn
from torch.utils.checkpoint import checkpoint

from painter.attention import chunked_rel_pos_attention, shared_rows_attention
from painter.config import ViTConfig

AttnHook = Callable[[torch.Tensor], torch.Tensor]


class PatchEmbed(nn.Module):
    """Non-overlapping patches to tokens: (B, 3, H, W) -> (B, h, w, C)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # (B, C, h, w) -> (B, h, w, C)


class Attention(nn.Module):
    """Multi-head self-attention with decomposed relative position (MViTv2 / ViTDet style)."""

    def __init__(self, config: ViTConfig, rel_pos_size: tuple[int, int]) -> None:
        super().__init__()
        dim = config.embed_dim
        self.num_heads = config.num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=config.qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = config.use_rel_pos
        if self.use_rel_pos:
            head_dim = config.head_dim
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * rel_pos_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * rel_pos_size[1] - 1, head_dim))

    def project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, N, C) -> q, k, v, each (B, heads, N, head_dim)."""
        batch, n, dim = x.shape
        qkv = self.qkv(x).reshape(batch, n, 3, self.num_heads, dim // self.num_heads)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, heads, N, d)
        return qkv[0], qkv[1], qkv[2]

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        key_grid: tuple[int, int],
        query_rows: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Scaled dot-product attention of grid-shaped queries over a grid of keys.

        Args:
            q: (B, heads, Nq, d) queries covering rows ``query_rows`` = (start, stop) of the grid.
            k, v: (B, heads, h * w, d) keys and values over the whole ``key_grid`` = (h, w).
            query_rows: which grid rows the queries sit on; None means all rows.
        Returns:
            (B, Nq, heads * d) attention output before the output projection.
        """
        batch, heads, n_q, head_dim = q.shape
        grid_h = key_grid[0]
        if not self.use_rel_pos:
            out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, Nq, d)
            return out.transpose(1, 2).reshape(batch, n_q, heads * head_dim)
        bias_h, bias_w = self.rel_pos_terms(q, key_grid, query_rows or (0, grid_h))
        if q.device.type == "cpu" and not (torch.is_grad_enabled() and q.requires_grad):
            out = chunked_rel_pos_attention(q, k, v, bias_h, bias_w)  # (B, heads, Nq, d)
        else:
            bias = bias_h[..., :, None] + bias_w[..., None, :]  # (B, heads, hq, w, h, w)
            bias = bias.reshape(batch, heads, n_q, k.shape[2])
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B, heads, Nq, d)
        return out.transpose(1, 2).reshape(batch, n_q, heads * head_dim)

    def rel_pos_terms(
        self, q: torch.Tensor, key_grid: tuple[int, int], query_rows: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The two terms of the decomposed relative-position bias of queries ``q`` (B, heads,
        hq * w, d) on rows ``query_rows`` of ``key_grid`` = (h, w): the row term
        (B, heads, hq, w, h) and the column term (B, heads, hq, w, w)."""
        batch, heads, _, head_dim = q.shape
        grid_h, grid_w = key_grid
        row0, row1 = query_rows
        rel_h = get_rel_pos(grid_h, grid_h, self.rel_pos_h)[row0:row1]  # (hq, h, d)
        rel_w = get_rel_pos(grid_w, grid_w, self.rel_pos_w)  # (w, w, d)
        r_q = q.reshape(batch * heads, row1 - row0, grid_w, head_dim)  # (B*heads, hq, w, d)
        bias_h = torch.einsum("bhwc,hkc->bhwk", r_q, rel_h.to(q.dtype))  # (B*heads, hq, w, h)
        bias_w = torch.einsum("bhwc,wkc->bhwk", r_q, rel_w.to(q.dtype))  # (B*heads, hq, w, w)
        return (
            bias_h.reshape(batch, heads, row1 - row0, grid_w, grid_h),
            bias_w.reshape(batch, heads, row1 - row0, grid_w, grid_w),
        )

    def attend_shared_rows(
        self,
        q: torch.Tensor,
        k_shared: torch.Tensor,
        v_shared: torch.Tensor,
        k_own: torch.Tensor,
        v_own: torch.Tensor,
        *,
        key_grid: tuple[int, int],
    ) -> torch.Tensor:
        """Attention of the bottom rows that P canvases share, averaged over the canvases.

        Canvas p's keys are its own top rows followed by the shared bottom rows, which are also
        where the queries sit. The queries' scores against the shared rows are the same in every
        canvas, so they are computed once (:func:`shared_rows_attention`). Equals running
        :meth:`attend` on each canvas and averaging, up to rounding. Inference only.

        Args:
            q: (B, heads, Nq, d) queries on the bottom ``hq`` rows of ``key_grid`` = (h, w).
            k_shared, v_shared: (B, heads, Nq, d) keys and values of those rows.
            k_own, v_own: (B * P, heads, (h - hq) * w, d) each canvas's top rows, canvas-major
                within each of the B.
        Returns:
            (B, Nq, heads * d): the mean over the P canvases, before the output projection.
        """
        batch, heads, n_q, head_dim = q.shape
        grid_h, grid_w = key_grid
        split = grid_h - n_q // grid_w
        terms = self.rel_pos_terms(q, key_grid, (split, grid_h)) if self.use_rel_pos else None
        out = shared_rows_attention(q, k_shared, v_shared, k_own, v_own, terms, grid_w=grid_w)
        return out.transpose(1, 2).reshape(batch, n_q, heads * head_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, h, w, C) -> (B, h, w, C), output projection included."""
        batch, grid_h, grid_w, dim = x.shape
        q, k, v = self.project_qkv(x.reshape(batch, grid_h * grid_w, dim))
        out = self.attend(q, k, v, key_grid=(grid_h, grid_w))
        return self.proj(out).reshape(batch, grid_h, grid_w, dim)


MLP_CHUNK_TOKENS = 1024
"""Tokens per piece in :meth:`Block.mlp_residual` (a 16 MiB fp32 hidden layer at ViT-L)."""


class Block(nn.Module):
    """Pre-norm transformer block on (B, h, w, C) tokens, global or windowed."""

    def __init__(self, config: ViTConfig, index: int, drop_path: float) -> None:
        super().__init__()
        dim = config.embed_dim
        self.window_size = 0 if config.is_global(index) else config.window_size
        rel_size = (self.window_size,) * 2 if self.window_size else config.rel_pos_grid
        self.norm1 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.attn = Attention(config, rel_size)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio), act_layer=nn.GELU)

    def forward(self, x: torch.Tensor, attn_hook: AttnHook | None = None) -> torch.Tensor:
        """(B, h, w, C) -> (B, h, w, C).

        ``attn_hook`` sees the attention branch (after the output projection, before the residual
        add) as (B, h, w, C) and returns a tensor of the same shape; SegGPT's feature ensemble
        uses it.
        """
        shortcut = x
        x = self.norm1(x)
        if self.window_size:
            grid = x.shape[1:3]
            x, pad_hw = window_partition(x, self.window_size)  # (B * windows, ws, ws, C)
            x = self.attn(x)
            x = window_unpartition(x, self.window_size, grid, pad_hw)  # (B, h, w, C)
        else:
            x = self.attn(x)
        if attn_hook is not None:
            x = attn_hook(x)
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def mlp_residual(self, x: torch.Tensor) -> torch.Tensor:
        """``x + mlp(norm2(x))`` for inference, :data:`MLP_CHUNK_TOKENS` tokens at a time.

        Tokens do not mix in the MLP, so the pieces give the same result; they keep the hidden
        layer (4 x C per token) small, where one large block would be mapped fresh from the
        operating system and page-faulted in on every forward. (..., C) -> (..., C).
        """
        flat = x.reshape(-1, x.shape[-1])  # (tokens, C)
        if flat.shape[0] <= MLP_CHUNK_TOKENS:
            return x + self.mlp(self.norm2(x))
        out = torch.empty_like(flat)
        for start in range(0, flat.shape[0], MLP_CHUNK_TOKENS):
            piece = flat[start : start + MLP_CHUNK_TOKENS]
            out[start : start + MLP_CHUNK_TOKENS] = piece + self.mlp(self.norm2(piece))
        return out.view(x.shape)


class ViTBackbone(nn.Module):
    """Patch embedding + absolute position embedding + blocks. Returns grid-shaped tokens."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config.patch_size, config.in_chans, config.embed_dim)
        grid_h, grid_w = config.pos_embed_grid
        n_pos = config.pos_embed_prefix + grid_h * grid_w
        self.pos_embed = nn.Parameter(torch.zeros(1, n_pos, config.embed_dim))
        steps = max(config.depth - 1, 1)  # linear 0 .. rate; plain floats so meta init works
        rates = [config.drop_path_rate * i / steps for i in range(config.depth)]
        self.blocks = nn.ModuleList(Block(config, i, rates[i]) for i in range(config.depth))
        self.grad_checkpointing = False
        trunc_normal_(self.pos_embed, std=0.02)
        self.apply(_init_weights)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def position_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """The absolute position embedding resized to ``grid`` = (h, w): (1, h, w, C)."""
        cfg = self.config
        pos = self.pos_embed
        if tuple(grid) != tuple(cfg.pos_embed_grid):
            pos = resample_abs_pos_embed(
                pos,
                new_size=list(grid),
                old_size=list(cfg.pos_embed_grid),
                num_prefix_tokens=cfg.pos_embed_prefix,
                interpolation="bicubic",
                antialias=False,
            )
        pos = pos[:, cfg.pos_embed_prefix :]  # drop the non-patch slots
        return pos.reshape(1, grid[0], grid[1], cfg.embed_dim)  # (1, h, w, C)

    def run_block(
        self, index: int, x: torch.Tensor, attn_hook: AttnHook | None = None
    ) -> torch.Tensor:
        """Run block ``index`` on (B, h, w, C), with activation checkpointing when enabled."""
        block = self.blocks[index]
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, x, attn_hook, use_reentrant=False)
        return block(x, attn_hook)

    def forward(
        self, images: torch.Tensor, *, taps: Sequence[int] = ()
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encode images.

        Args:
            images: (B, 3, H, W).
            taps: block indices whose outputs are returned as well.
        Returns:
            the last block's output (B, h, w, C) and the tapped outputs, each (B, h, w, C).
        """
        x = self.patch_embed(images)  # (B, h, w, C)
        x = x + self.position_embedding(x.shape[1:3])
        tapped = []
        for i in range(len(self.blocks)):
            x = self.run_block(i, x)
            if i in taps:
                tapped.append(x)
        return x, tapped


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
