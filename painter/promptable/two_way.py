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

    In the decoder one side of every cross-attention is a handful of prompt tokens and the
    other is the whole image grid (thousands of tokens). Projecting the grid to queries, keys
    or values costs ``grid * dim * inner`` per projection; when the short side has fewer rows
    than a head has channels, the same attention is cheaper with the products re-associated so
    that each projection weight meets the short side and the grid only meets ``heads * short``
    vectors (see ``_few_queries`` and ``_few_keys``). ``forward`` picks the cheaper order; all
    three compute the same function.

    Args:
        dim: width of queries, keys, values and output.
        heads: attention heads.
        downsample_rate: the projections map to ``dim / downsample_rate``.
    """

    def __init__(self, dim: int, heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        inner = dim // downsample_rate
        self.heads = heads
        self.head_dim = inner // heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, n, inner = x.shape
        return x.reshape(batch, n, self.heads, inner // self.heads).transpose(1, 2)  # (B, H, N, d)

    def _per_head(self, proj: nn.Linear) -> torch.Tensor:
        """An input projection's weight as (H, d, D): head h's rows."""
        return proj.weight.view(self.heads, self.head_dim, proj.weight.shape[1])

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q (B, Nq, D), k and v (B, Nk, D) -> (B, Nq, D)."""
        n_q, n_k = q.shape[1], k.shape[1]
        if n_q < self.head_dim and n_q < n_k:
            return self._few_queries(q, k, v)
        if n_k < self.head_dim and n_k < n_q:
            return self._few_keys(q, k, v)
        return self._standard(q, k, v)

    def _standard(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Project q, k and v, then scaled dot-product attention per head."""
        q, k, v = (
            self._split(self.q_proj(q)),
            self._split(self.k_proj(k)),
            self._split(self.v_proj(v)),
        )
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, Nq, d)
        batch, heads, n_q, head_dim = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(batch, n_q, heads * head_dim))

    def _few_queries(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention for Nq < d queries over many keys, without projecting the keys or values.

        Head h's logits are Q_h (k W_h + b_h)^T: the bias adds the same number to every key
        of a query, which softmax ignores, so they equal (Q_h W_h) k^T. Its output is
        A_h (v V_h^T + c_h) = (A_h v) V_h^T + c_h, since each row of A_h sums to one. The
        keys and values are met by H * Nq vectors of width D instead of a D x inner weight.
        """
        batch, n_q, dim = q.shape
        heads, head_dim = self.heads, self.head_dim
        queries = self._split(self.q_proj(q)) * head_dim**-0.5  # (B, H, Nq, d)
        reach = queries @ self._per_head(self.k_proj)  # (B, H, Nq, D)
        logits = reach.reshape(batch, heads * n_q, dim) @ k.transpose(1, 2)  # (B, H*Nq, Nk)
        mixed = (logits.softmax(dim=-1) @ v).view(batch, heads, n_q, dim)  # (B, H, Nq, D)
        bias = self.v_proj.bias.view(heads, 1, head_dim)
        out = mixed @ self._per_head(self.v_proj).transpose(1, 2) + bias  # (B, H, Nq, d)
        return self.out_proj(out.transpose(1, 2).reshape(batch, n_q, heads * head_dim))

    def _few_keys(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention of many queries over Nk < d keys, without projecting the queries or
        the output.

        Head h's logits are (q W_h^T + b_h) K_h^T = q (K_h W_h)^T + b_h K_h^T, and the output
        projection of A_h V_h is A_h (V_h O_h^T) with O_h head h's columns of the output
        weight, so the queries meet H * Nk vectors of width D instead of a D x inner weight.
        """
        batch, n_q, dim = q.shape
        n_k = k.shape[1]
        heads, head_dim = self.heads, self.head_dim
        keys = self._split(self.k_proj(k)) * head_dim**-0.5  # (B, H, Nk, d)
        values = self._split(self.v_proj(v))  # (B, H, Nk, d)
        reach = (keys @ self._per_head(self.q_proj)).reshape(batch, heads * n_k, dim)
        offset = (keys @ self.q_proj.bias.view(heads, head_dim, 1)).reshape(batch, -1, 1)
        # keys-major logits (B, H*Nk, Nq): softmax over a short last axis is slow on CPU
        logits = torch.baddbmm(offset, reach, q.transpose(1, 2))
        attn = logits.view(batch, heads, n_k, n_q).softmax(dim=2).view(batch, heads * n_k, n_q)
        out_weight = self.out_proj.weight.view(dim, heads, head_dim).permute(1, 2, 0)  # H,d,D
        spread = (values @ out_weight).reshape(batch, heads * n_k, dim)  # (B, H*Nk, D)
        bias = self.out_proj.bias.expand(batch, 1, dim)
        return torch.baddbmm(bias, attn.transpose(1, 2), spread)  # (B, Nq, D)


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
