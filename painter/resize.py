"""Resizing of uint8 images and label maps with pinned filters (PIL's defaults changed over
versions, so the filter is always named)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_image(image: np.ndarray, size: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    """Resize (H, W, 3) uint8 to ``size`` = (h, w): bicubic, or nearest for colour masks."""
    if image.shape[:2] == tuple(size):
        return image
    resample = Image.NEAREST if nearest else Image.BICUBIC
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), resample=resample))


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W) integer label map to ``size`` = (h, w) with nearest neighbour."""
    if labels.shape[:2] == tuple(size):
        return labels
    rows = (np.arange(size[0]) + 0.5) * labels.shape[0] / size[0]
    cols = (np.arange(size[1]) + 0.5) * labels.shape[1] / size[1]
    return labels[rows.astype(np.int64)[:, None], cols.astype(np.int64)[None, :]]
