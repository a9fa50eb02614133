"""Pre- and post-processing of the promptable model, as pure functions.

The model sees a square input of ``image_size`` pixels: the image resized so that its longest
side is ``image_size``, normalised, and zero-padded at the bottom and right. Prompt coordinates
follow the resize; the decoder's low-resolution logits are mapped back by upscaling to the padded
square, cropping the padding off and resizing to the original image.

Sizes are (height, width) tuples throughout; coordinates are (x, y).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

Size = tuple[int, int]


def resized_size(size: Size, longest: int) -> Size:
    """(H, W) scaled so that the longer side is ``longest``, each side rounded to nearest."""
    height, width = size
    scale = longest / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def resize_longest_side(image: np.ndarray, longest: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w, 3) uint8 with max(h, w) == ``longest``, bilinear."""
    height, width = resized_size(image.shape[:2], longest)
    if (height, width) == image.shape[:2]:
        return image
    resized = Image.fromarray(image).resize((width, height), resample=Image.BILINEAR)
    return np.asarray(resized)


def normalize_and_pad(
    images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, image_size: int
) -> torch.Tensor:
    """(B, 3, h, w) pixels on the 0..255 scale -> (B, 3, S, S) normalised, zero-padded at the
    bottom and right. ``mean`` and ``std`` are (3,)."""
    height, width = images.shape[-2:]
    if max(height, width) > image_size:
        raise ValueError(f"image of {height}x{width} does not fit the {image_size} input")
    normalised = (images - mean[:, None, None]) / std[:, None, None]
    return F.pad(normalised, (0, image_size - width, 0, image_size - height))


def image_to_input_coords(coords: torch.Tensor, original: Size, resized: Size) -> torch.Tensor:
    """(..., 2) x, y in original-image pixels -> the same points in resized-input pixels."""
    scale = coords.new_tensor([resized[1] / original[1], resized[0] / original[0]])
    return coords * scale


def image_to_input_boxes(boxes: torch.Tensor, original: Size, resized: Size) -> torch.Tensor:
    """(..., 4) x0, y0, x1, y1 in original-image pixels -> resized-input pixels."""
    corners = boxes.reshape(*boxes.shape[:-1], 2, 2)  # (..., 2, 2)
    return image_to_input_coords(corners, original, resized).reshape(boxes.shape)


def upscale_logits(
    low_res: torch.Tensor, *, input_size: Size, original_size: Size, image_size: int
) -> torch.Tensor:
    """(P, K, 4h, 4w) logits -> (P, K, H, W) at the original image size (bilinear).

    The same as resizing to the padded ``image_size`` square, dropping the padding and resizing
    to ``original_size``, but the first resize only computes the rows and columns the image
    covers, and the second is skipped when the sizes already agree.
    """
    low_h, low_w = low_res.shape[-2:]
    scale_h, scale_w = image_size / low_h, image_size / low_w
    # output pixel y reads input rows floor/ceil((y + 0.5) / scale - 0.5): keep one row more
    keep_h = min(low_h, math.ceil(input_size[0] / scale_h) + 1)
    keep_w = min(low_w, math.ceil(input_size[1] / scale_w) + 1)
    covered = F.interpolate(
        low_res[..., :keep_h, :keep_w],
        scale_factor=(scale_h, scale_w),
        mode="bilinear",
        align_corners=False,
        recompute_scale_factor=False,  # map coordinates with the full square's scale
    )
    cropped = covered[..., : input_size[0], : input_size[1]]  # drop the padding
    if tuple(cropped.shape[-2:]) == tuple(original_size):
        return cropped  # bilinear at scale 1 is the identity
    return F.interpolate(cropped, original_size, mode="bilinear", align_corners=False)


def mask_to_box(mask: np.ndarray) -> np.ndarray | None:
    """(H, W) bool -> [x0, y0, x1, y1] of the foreground (inclusive indices); None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=np.float32)


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool -> (N, 4) x0, y0, x1, y1 (inclusive indices); empty masks give zeros."""
    if masks.numel() == 0:
        return masks.new_zeros((masks.shape[0], 4), dtype=torch.float32)
    height, width = masks.shape[-2:]
    cols = masks.any(dim=1)  # (N, W)
    rows = masks.any(dim=2)  # (N, H)
    col_idx = torch.arange(width, device=masks.device)
    row_idx = torch.arange(height, device=masks.device)
    x1 = torch.where(cols, col_idx, -1).amax(dim=1)
    y1 = torch.where(rows, row_idx, -1).amax(dim=1)
    x0 = torch.where(cols, col_idx, width).amin(dim=1)
    y0 = torch.where(rows, row_idx, height).amin(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).float()  # (N, 4)
    empty = ~cols.any(dim=1)
    return torch.where(empty[:, None], torch.zeros_like(boxes), boxes)


def pad_point_rows(rows: Sequence[np.ndarray], labels: Sequence[np.ndarray], pad_label: int):
    """Ragged rows of points (N_i, 2) and labels (N_i,) -> (P, N, 2) and (P, N) arrays, the short
    rows filled with (0, 0) points labelled ``pad_label``."""
    longest = max(len(r) for r in rows)
    points = np.zeros((len(rows), longest, 2), dtype=np.float32)
    padded = np.full((len(rows), longest), pad_label, dtype=np.int64)
    for i, (row, row_labels) in enumerate(zip(rows, labels)):
        points[i, : len(row)] = row
        padded[i, : len(row)] = row_labels
    return points, padded
