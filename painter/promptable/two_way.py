"""The two-way transformer: prompt tokens and image tokens attend to each other.

Each block updates the tokens (self-attention, attention to the image, MLP) and then the image
(attention to the tokens). The prompt tokens' original embeddings are re-added as query
positions and the image position encoding as key positions at every attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head attention whose inner width may be smaller than the model width.

    Args:
        dim: width of queries, keys, values and output.
        heads: attention heads.
        downsample_rate: the projections map to ``dim / downsample_rate``.
    """

    def __init__(self, dim: int, heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        inner = dim // downsample_rate
        self.heads = heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, n, inner = x.shape
        return x.reshape(batch, n, self.heads, inner // self.heads).transpose(1, 2)  # (B, H, N, d)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q (B, Nq, D), k and v (B, Nk, D) -> (B, Nq, D)."""
        q, k, v = (
            self._split(self.q_proj(q)),
            self._split(self.k_proj(k)),
            self._split(self.v_proj(v)),
        )
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, Nq, d)
        batch, heads, n_q, head_dim = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(batch, n_q, heads * head_dim))


class TokenMLP(nn.Module):
    """Linear, ReLU, linear on the prompt tokens."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.relu(self.lin1(x)))


class TwoWayBlock(nn.Module):
    """Tokens: self-attention, attention to the image, MLP; image: attention to the tokens.

    ``first`` marks block 0: its self-attention sees the tokens without their positions and
    replaces them (no residual), since the tokens there are the prompt embeddings themselves.
    """

    def __init__(
        self, dim: int, heads: int, mlp_dim: int, downsample_rate: int, eps: float, first: bool
    ) -> None:
        super().__init__()
        self.self_attn = Attention(dim, heads)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.cross_attn_token_to_image = Attention(dim, heads, downsample_rate)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = TokenMLP(dim, mlp_dim)
        self.norm3 = nn.LayerNorm(dim, eps=eps)
        self.norm4 = nn.LayerNorm(dim, eps=eps)
        self.cross_attn_image_to_token = Attention(dim, heads, downsample_rate)
        self.first = first

    def forward(
        self,
        tokens: torch.Tensor,
        image: torch.Tensor,
        token_pos: torch.Tensor,
        image_pos: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens, token_pos (B, N, D); image, image_pos (B, h*w, D) -> updated tokens, image."""
        if self.first:
            tokens = self.self_attn(tokens, tokens, tokens)
        else:
            q = tokens + token_pos
            tokens = tokens + self.self_attn(q, q, tokens)
        tokens = self.norm1(tokens)

        q, k = tokens + token_pos, image + image_pos
        tokens = self.norm2(tokens + self.cross_attn_token_to_image(q, k, image))
        tokens = self.norm3(tokens + self.mlp(tokens))

        q = tokens + token_pos
        image = self.norm4(image + self.cross_attn_image_to_token(k, q, tokens))
        return tokens, image


class TwoWayTransformer(nn.Module):
    """``depth`` two-way blocks, then a final token-to-image attention and LayerNorm."""

    def __init__(
        self,
        depth: int,
        dim: int,
        heads: int,
        mlp_dim: int,
        *,
        downsample_rate: int = 2,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayBlock(dim, heads, mlp_dim, downsample_rate, eps, first=(i == 0))
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(dim, heads, downsample_rate)
        self.norm_final_attn = nn.LayerNorm(dim)  # torch's default eps in both released ports

    def forward(
        self, image: torch.Tensor, image_pos: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the blocks.

        Args:
            image: (B, h*w, D) image tokens (dense prompt already added).
            image_pos: (B or 1, h*w, D) their position encoding.
            tokens: (B, N, D) output tokens followed by the prompt tokens.
        Returns:
            tokens (B, N, D) and image tokens (B, h*w, D).
        """
        queries = tokens
        for layer in self.layers:
            queries, image = layer(queries, image, tokens, image_pos)
        q, k = queries + tokens, image + image_pos
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, image))
        return queries, image
