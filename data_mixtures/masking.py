"""Painter's masking of the target canvas: BEiT-style blocks, or the whole query half."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from painter.errors import ConfigError


@dataclass(frozen=True)
class MaskingConfig:
    """Which target patches are hidden from the model.

    Attributes:
        mask_ratio: fraction of the canvas's patches hidden in block mode (exact, rounded).
        min_block_patches: smallest block, in patches.
        max_block_patches: largest block; None = half of the hidden patch count (Painter: 392
            of 784 on the 56x28 grid).
        min_aspect: smallest block height/width ratio; the largest is ``max_aspect``.
        max_aspect: None = ``1 / min_aspect`` (0.3 .. 3.33).
        half_mask_prob: probability of hiding exactly the query half instead (inference-like).
    """

    mask_ratio: float = 0.5
    min_block_patches: int = 16
    max_block_patches: int | None = None
    min_aspect: float = 0.3
    max_aspect: float | None = None
    half_mask_prob: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"mask_ratio must lie in (0, 1), got {self.mask_ratio}")
        if self.min_block_patches < 1:
            raise ConfigError(f"min_block_patches must be >= 1, got {self.min_block_patches}")
        if self.max_block_patches is not None and self.max_block_patches < self.min_block_patches:
            raise ConfigError("max_block_patches must be >= min_block_patches")
        if not 0.0 < self.min_aspect <= (self.max_aspect or 1.0 / self.min_aspect):
            raise ConfigError("aspect range must satisfy 0 < min_aspect <= max_aspect")
        if not 0.0 <= self.half_mask_prob <= 1.0:
            raise ConfigError(f"half_mask_prob must lie in [0, 1], got {self.half_mask_prob}")


def half_mask(grid: tuple[int, int]) -> np.ndarray:
    """(h*w,) bool hiding the bottom half of an (h, w) patch grid (the query's target)."""
    height, width = grid
    mask = np.zeros((height, width), dtype=bool)
    mask[height // 2 :] = True
    return mask.reshape(-1)  # (h*w,) row-major


def block_mask(
    grid: tuple[int, int], config: MaskingConfig, generator: np.random.Generator
) -> np.ndarray:
    """BEiT-style block masking with exactly ``round(mask_ratio * h * w)`` hidden patches.

    Rectangular blocks of random area (``min_block_patches`` .. ``max_block_patches``) and
    aspect (log-uniform) are placed at random, each adding only as many new patches as remain
    in the budget; when no block fits any more, random single patches fill up the exact count.

    Returns:
        (h*w,) bool, row-major, True = hidden.
    """
    height, width = grid
    total = round(config.mask_ratio * height * width)
    largest = config.max_block_patches or max(config.min_block_patches, total // 2)
    max_aspect = config.max_aspect or 1.0 / config.min_aspect
    log_aspect = (math.log(config.min_aspect), math.log(max_aspect))
    mask = np.zeros((height, width), dtype=bool)
    count = 0
    while count < total:
        budget = min(total - count, largest)
        added = 0
        for _ in range(10):
            if budget < config.min_block_patches:
                break
            area = generator.uniform(config.min_block_patches, budget)
            aspect = math.exp(generator.uniform(*log_aspect))
            h = round(math.sqrt(area * aspect))
            w = round(math.sqrt(area / aspect))
            if not (0 < h < height and 0 < w < width):
                continue
            top = int(generator.integers(0, height - h, endpoint=True))
            left = int(generator.integers(0, width - w, endpoint=True))
            block = mask[top : top + h, left : left + w]
            new = h * w - int(block.sum())
            if 0 < new <= budget:
                block[...] = True
                added = new
                break
        if added == 0:
            break
        count += added
    if count < total:  # top up with single patches so the ratio is exact
        free = np.flatnonzero(~mask.reshape(-1))
        mask.reshape(-1)[generator.choice(free, size=total - count, replace=False)] = True
    return mask.reshape(-1)  # (h*w,) row-major


def sample_patch_mask(
    grid: tuple[int, int], config: MaskingConfig, generator: np.random.Generator
) -> np.ndarray:
    """The query half with probability ``half_mask_prob``, else ``block_mask``; (h*w,) bool."""
    if generator.random() < config.half_mask_prob:
        return half_mask(grid)
    return block_mask(grid, config, generator)
