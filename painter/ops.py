"""Pure tensor helpers: (de)normalisation, patchify/unpatchify for any H, W, canvas stitching,
and patch masks."""

from __future__ import annotations

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _stats(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (3, 1, 1)  # broadcasts over (..., 3, H, W)
    mean = torch.tensor(IMAGENET_MEAN, dtype=like.dtype, device=like.device).view(shape)
    std = torch.tensor(IMAGENET_STD, dtype=like.dtype, device=like.device).view(shape)
    return mean, std


def normalize(x: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) in [0, 1] -> ImageNet-normalised."""
    mean, std = _stats(x)
    return (x - mean) / std


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize`: (..., 3, H, W) -> values around [0, 1] (not clipped)."""
    mean, std = _stats(x)
    return x * std + mean


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, h * w, p * p * C), patch pixels ordered (p, q, c)."""
    b, c, height, width = images.shape
    p = patch_size
    h, w = height // p, width // p
    x = images.reshape(b, c, h, p, w, p)  # (B, C, h, p, w, q)
    x = torch.einsum("bchpwq->bhwpqc", x)
    return x.reshape(b, h * w, p * p * c)


def unpatchify(patches: torch.Tensor, patch_size: int, grid: tuple[int, int]) -> torch.Tensor:
    """(B, h * w, p * p * C) -> (B, C, H, W); inverse of :func:`patchify`."""
    b = patches.shape[0]
    p = patch_size
    h, w = grid
    c = patches.shape[-1] // (p * p)
    x = patches.reshape(b, h, w, p, p, c)  # (B, h, w, p, q, C)
    x = torch.einsum("bhwpqc->bchpwq", x)
    return x.reshape(b, c, h * p, w * p)


def patch_mask_to_pixels(
    patch_mask: torch.Tensor, patch_size: int, grid: tuple[int, int]
) -> torch.Tensor:
    """(B, h * w) bool/float patch mask -> (B, H, W) float pixel mask."""
    b = patch_mask.shape[0]
    m = patch_mask.to(torch.float32).reshape(b, grid[0], grid[1])  # (B, h, w)
    return m.repeat_interleave(patch_size, dim=1).repeat_interleave(patch_size, dim=2)


def query_half_mask(
    batch: int, grid: tuple[int, int], device: torch.device | None = None
) -> torch.Tensor:
    """The inference mask: every patch of the bottom (query) half hidden. (B, h * w) bool."""
    h, w = grid
    mask = torch.zeros(batch, h, w, dtype=torch.bool, device=device)
    mask[:, h // 2 :] = True
    return mask.reshape(batch, h * w)


def stitch(top: torch.Tensor, bottom: torch.Tensor) -> torch.Tensor:
    """Prompt above query: (B, C, H/2, W) x 2 -> (B, C, H, W)."""
    return torch.cat([top, bottom], dim=-2)
