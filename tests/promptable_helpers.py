"""Shared helpers of the promptable-model tests (their fixtures are in conftest.py)."""

from __future__ import annotations

import numpy as np
import torch

HEIGHT, WIDTH = 90, 140  # resized to 165 x 256 inside the 256 x 256 input


def scene(height: int = HEIGHT, width: int = WIDTH, seed: int = 0) -> np.ndarray:
    """A noisy background with a bright rectangle and a dark disc."""
    rng = np.random.default_rng(seed)
    image = rng.integers(90, 140, (height, width, 3)).astype(np.uint8)
    image[10:40, 15:60] = (230, 40, 40)
    yy, xx = np.mgrid[:height, :width]
    image[(yy - 60) ** 2 + (xx - 100) ** 2 < 15**2] = (20, 20, 160)
    return image


def small_sam_config():
    """A 64-px promptable config small enough to train in a test."""
    from painter.promptable.config import SamConfig, sam_encoder

    return SamConfig(
        encoder=sam_encoder(32, 2, 2, (1,), image_size=64, window=4, patch=8),
        image_size=64,
        prompt_embed_dim=32,
        decoder_depth=1,
        decoder_heads=2,
        decoder_mlp_dim=64,
        iou_head_hidden_dim=32,
    )


def rel_diff(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest absolute difference relative to the reference's largest magnitude."""
    return float((ours - ref).abs().max() / ref.abs().max())
