"""Ensembles over several prompts: feature ensemble (averaged attention outputs of the query
half, as the original SegGPT computes it) and spatial ensemble (prompts tiled into one grid)."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence

import numpy as np
import torch

from painter.backbone import AttnHook
from painter.model import HookFactory


class EnsembleMode(str, enum.Enum):
    """How several prompts are combined for one query."""

    FEATURE = "feature"
    SPATIAL = "spatial"


def average_query_half(attn: torch.Tensor, *, streams: int, prompts: int) -> torch.Tensor:
    """Average the query (bottom) half of an attention branch over the prompts of each query.

    Args:
        attn: (S * Q * P, h, w, C), laid out stream-major, then query, then prompt.
        streams: S, 2 before the stream merge (each stream averaged on its own), 1 after.
        prompts: P prompts per query.
    Returns:
        the same shape; the prompt half is untouched.
    """
    n, h, w, c = attn.shape
    x = attn.reshape(streams, n // (streams * prompts), prompts, h, w, c)  # (S, Q, P, h, w, C)
    top, bottom = x[:, :, :, : h // 2], x[:, :, :, h // 2 :]
    bottom = bottom.mean(dim=2, keepdim=True).expand_as(bottom)
    return torch.cat([top, bottom], dim=3).reshape(n, h, w, c)


def feature_ensemble_hooks(prompts: int) -> HookFactory | None:
    """Hooks reproducing the original SegGPT: per stream before the merge, per query after."""
    if prompts <= 1:
        return None

    def factory(block: int, merged: bool) -> AttnHook:
        streams = 1 if merged else 2
        return lambda attn: average_query_half(attn, streams=streams, prompts=prompts)

    return factory


def grid_side(num_prompts: int) -> int:
    """Side n of the n x n grid that holds ``num_prompts`` tiles."""
    return max(1, math.ceil(math.sqrt(num_prompts)))


def tile_grid(tiles: Sequence[np.ndarray]) -> np.ndarray:
    """Tile equally sized (h, w, ...) arrays into an n x n grid, row-major.

    Cells beyond ``len(tiles)`` repeat the tiles cyclically, so every cell is a real example.
    Returns an (n * h, n * w, ...) array.
    """
    if not tiles:
        raise ValueError("tile_grid needs at least one tile")
    n = grid_side(len(tiles))
    cells = [tiles[i % len(tiles)] for i in range(n * n)]
    rows = [np.concatenate(cells[r * n : (r + 1) * n], axis=1) for r in range(n)]
    return np.concatenate(rows, axis=0)
