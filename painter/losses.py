"""Losses as functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from painter.ops import patch_mask_to_pixels


def hidden_pixel_weights(
    patch_mask: torch.Tensor,
    patch_size: int,
    like: torch.Tensor,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-pixel weights (B, H, W) of the masked losses: 1 on the pixels of hidden patches, 0
    elsewhere, times ``valid`` when given; in ``like``'s dtype, at its (H, W).

    Args:
        patch_mask: (B, h * w), True where the patch was hidden from the model.
        like: (B, C, H, W) the prediction the weights are for.
        valid: optional (B, H, W) per-pixel weights.
    """
    grid = (like.shape[-2] // patch_size, like.shape[-1] // patch_size)
    weight = patch_mask_to_pixels(patch_mask, patch_size, grid).to(like.dtype)  # (B, H, W)
    if valid is not None:
        weight = weight * valid.to(like.dtype)
    return weight


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
    weight = hidden_pixel_weights(patch_mask, patch_size, pred, valid)  # (B, H, W)
    per_pixel = F.smooth_l1_loss(pred, target, reduction="none", beta=beta).mean(dim=1)  # (B, H, W)
    return (per_pixel * weight).sum() / (weight.sum() + eps)


def masked_intensity_bce(
    logits: torch.Tensor,
    target: torch.Tensor,
    patch_mask: torch.Tensor,
    *,
    patch_size: int,
    valid: torch.Tensor | None = None,
    eps: float = 1e-2,
) -> torch.Tensor:
    """Per-channel binary cross-entropy of painted intensities over the pixels of hidden patches
    (the loss of ``paint_activation="sigmoid"`` models).

    Args:
        logits: (B, 3, H, W) decoder logits; the painted intensity is their sigmoid.
        target: (B, 3, H, W) true canvas, intensities in [0, 1] (soft targets: a colour channel at
            level 170 is the target 170 / 255).
        patch_mask: (B, h * w), True where the patch was hidden from the model.
        valid: optional (B, H, W) per-pixel weights.
    Returns:
        scalar: weighted mean over hidden pixels of the per-pixel mean over channels (0 when
        nothing is hidden).
    """
    weight = hidden_pixel_weights(patch_mask, patch_size, logits, valid)  # (B, H, W)
    per_pixel = F.binary_cross_entropy_with_logits(
        logits, target.clamp(0.0, 1.0), reduction="none"
    ).mean(dim=1)  # (B, H, W)
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
    colored = (target.amax(dim=1) > 0.05).to(target.dtype)  # (B, H, W)
    weights = 1.0 + (weight - 1.0) * colored
    return weights if valid is None else valid.to(target.dtype) * weights


_CODE_SCALE = 64.0  # normalised colours -> integer codes (9 bits a channel) to find distinct ones
_CODE_OFFSET = 256


def masked_palette_cross_entropy(
    pred: torch.Tensor,
    target: torch.Tensor,
    patch_mask: torch.Tensor,
    *,
    patch_size: int,
    valid: torch.Tensor | None = None,
    temperature: float = 0.5,
    max_colors: int = 32,
    eps: float = 1e-2,
) -> torch.Tensor:
    """Cross-entropy of each hidden pixel's nearest-colour decision over its canvas's palette.

    The palette of a canvas is the set of distinct colours of its target (black and the
    episode's random in-context colours). A painted pixel ``p`` scores colour ``c`` with
    ``-||p - c||^2 / temperature``; the loss is the cross-entropy of the true colour under a
    softmax of those scores, i.e. it trains exactly the nearest-colour decoding that turns a
    painting into a mask, and unlike a regression loss it does not reward a dim compromise
    between black and an uncertain colour.

    Args:
        pred, target: (B, 3, H, W) in the same (normalised) space.
        patch_mask: (B, h * w), True where the patch was hidden from the model.
        valid: optional (B, H, W) per-pixel weights.
        temperature: scale of the squared distances (normalised units).
        max_colours: canvases with more distinct colours than this use the first ones (pixels
            of the others get no loss).
    Returns:
        scalar: weighted mean over hidden pixels (0 when nothing is hidden).
    """
    batch = pred.shape[0]
    weight = hidden_pixel_weights(patch_mask, patch_size, pred, valid)  # (B, H, W)
    # Colours as integer codes, one sorted unique over the whole batch. Distinct 8-bit colours
    # lie >= 1 / 255 / 0.229 apart in the normalised space, so x64 rounding keeps them apart.
    levels = (target.detach() * _CODE_SCALE).round().long() + _CODE_OFFSET  # (B, 3, H, W)
    codes = (levels[:, 0] << 18) | (levels[:, 1] << 9) | levels[:, 2]  # (B, H, W)
    sample = torch.arange(batch, device=pred.device).view(batch, 1, 1)
    codes = (codes | (sample << 27)).flatten(1)  # (B, HW)
    uniq, inverse = torch.unique(codes, return_inverse=True)  # (U,), (B, HW)
    owner = uniq >> 27  # (U,) sample of each colour
    counts = torch.bincount(owner, minlength=batch)  # (B,)
    rank = torch.arange(uniq.numel(), device=pred.device) - (counts.cumsum(0) - counts)[owner]
    size = int(min(max_colors, int(counts.max())))
    kept = rank < size
    flat_inverse = inverse.flatten()  # (B*HW,)
    first = torch.full((uniq.numel(),), flat_inverse.numel(), device=pred.device)
    first = first.scatter_reduce(
        0, flat_inverse, torch.arange(flat_inverse.numel(), device=pred.device), "amin"
    )  # (U,) one pixel of each colour, whose exact value becomes the palette entry
    values = target.detach().flatten(2).transpose(1, 2).reshape(-1, 3)[first]  # (U, 3)
    palettes = torch.zeros(batch, size, 3, dtype=pred.dtype, device=pred.device)
    palettes[owner[kept], rank[kept]] = values[kept].to(pred.dtype)
    present = torch.zeros(batch, size, dtype=torch.bool, device=pred.device)
    present[owner[kept], rank[kept]] = True
    labels = torch.where(kept, rank, -1)[inverse]  # (B, HW)
    flat = pred.flatten(2).transpose(1, 2)  # (B, HW, 3)
    distances = (
        flat.square().sum(-1, keepdim=True)
        - 2 * flat @ palettes.transpose(1, 2)
        + palettes.square().sum(-1)[:, None, :]
    )  # (B, HW, K) squared distances
    scores = (-distances / temperature).masked_fill(~present[:, None, :], float("-inf"))
    known = labels >= 0
    per_pixel = F.cross_entropy(
        scores.transpose(1, 2), labels.clamp(min=0), reduction="none"
    )  # (B, HW)
    weight = weight.flatten(1) * known.to(pred.dtype)  # (B, HW)
    return (per_pixel * weight).sum() / (weight.sum() + eps)


def masked_soft_dice(
    intensities: torch.Tensor,
    target: torch.Tensor,
    patch_mask: torch.Tensor,
    *,
    patch_size: int,
    valid: torch.Tensor | None = None,
    smooth: float = 1.0,
) -> torch.Tensor:
    """One minus the soft Dice overlap of painted and true intensities over hidden pixels, per
    canvas and colour channel, averaged.

    Unlike a per-pixel loss, the Dice term scores each canvas's painting as a whole, like the
    IoU a mask is judged by: painting an object the prompt never showed costs as much as
    missing the target, however large either is, and painting black is no safe compromise.

    Args:
        intensities: (B, 3, H, W) painted intensities in [0, 1] (differentiable).
        target: (B, 3, H, W) true intensities in [0, 1].
        patch_mask: (B, h * w), True where the patch was hidden from the model.
        valid: optional (B, H, W) per-pixel weights.
        smooth: added to the overlap and to the total, in pixels; a channel the target leaves
            black scores ``smooth / (painted + smooth)``, so painting it is penalised too.
    Returns:
        scalar in [0, 1] (0 when nothing is hidden).
    """
    weight = hidden_pixel_weights(patch_mask, patch_size, intensities, valid)[:, None]
    painted = intensities * weight
    truth = target.clamp(0.0, 1.0) * weight
    overlap = (painted * truth).sum(dim=(2, 3))  # (B, 3)
    total = painted.sum(dim=(2, 3)) + truth.sum(dim=(2, 3))
    dice = (2 * overlap + smooth) / (total + smooth)
    return 1.0 - dice.mean()
