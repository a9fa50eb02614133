"""Losses as functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from painter.ops import patch_mask_to_pixels


def masked_smooth_l1(
    pred: torch.Tensor,
    target: torch.Tensor,
    patch_mask: torch.Tensor,
    *,
    patch_size: int,
    valid: torch.Tensor | None = None,
    beta: float = 0.01,
    eps: float = 1e-2,
) -> torch.Tensor:
    """Smooth-L1 over the pixels of hidden patches, as Painter trains.

    Args:
        pred, target: (B, 3, H, W) in the same (normalised) space.
        patch_mask: (B, h * w), True where the patch was hidden from the model.
        valid: optional (B, H, W) per-pixel weights (e.g. 0 for ignored pixels).
    Returns:
        scalar: sum of per-pixel losses (mean over channels) times mask and valid, divided by
        (sum of mask * valid + eps). The eps keeps a batch with nothing masked at 0, not NaN.
    """
    grid = (pred.shape[-2] // patch_size, pred.shape[-1] // patch_size)
    weight = patch_mask_to_pixels(patch_mask, patch_size, grid).to(pred.dtype)  # (B, H, W)
    if valid is not None:
        weight = weight * valid.to(pred.dtype)
    per_pixel = F.smooth_l1_loss(pred, target, reduction="none", beta=beta).mean(dim=1)  # (B, H, W)
    return (per_pixel * weight).sum() / (weight.sum() + eps)


def foreground_weights(
    target: torch.Tensor, weight: float, valid: torch.Tensor | None = None
) -> torch.Tensor | None:
    """Per-pixel loss weights (B, H, W): ``weight`` on coloured target pixels, 1 on black ones,
    times ``valid``; keeps small objects from being painted away. None when there is nothing to
    weight (``weight`` 1 and no ``valid``).

    ``target`` is a (B, 3, H, W) canvas in the normalised space, where black is well below 0 in
    every channel and any palette colour is above 0.05 in at least one.
    """
    if weight == 1.0:
        return valid
    coloured = (target.amax(dim=1) > 0.05).to(target.dtype)  # (B, H, W)
    weights = 1.0 + (weight - 1.0) * coloured
    return weights if valid is None else valid.to(target.dtype) * weights
