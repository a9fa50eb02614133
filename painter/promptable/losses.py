"""Training losses of the promptable model and simulated interactive prompting.

Loss (SAM recipe): 20 x focal + 1 x dice on the mask logits, plus the mean squared error between
the IoU head's prediction and the IoU the predicted mask really has. With several candidate masks
only the candidate with the lowest mask loss gets gradient.

Simulation: the first prompt is a foreground point inside the target or its box with noise;
later prompts are points in the error region of the previous prediction (foreground where it
missed, background where it spilled over).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, *, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """(N, H, W) logits and {0, 1} targets -> (N,) focal loss, mean over pixels."""
    prob = logits.sigmoid()
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_true = prob * targets + (1 - prob) * (1 - targets)  # probability given to the right class
    loss = bce * (1 - p_true) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss.flatten(1).mean(dim=1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, *, smooth: float = 1.0) -> torch.Tensor:
    """(N, H, W) logits and {0, 1} targets -> (N,) 1 - soft Dice."""
    prob = logits.sigmoid().flatten(1)
    targets = targets.flatten(1)
    overlap = 2 * (prob * targets).sum(dim=1)
    return 1 - (overlap + smooth) / (prob.sum(dim=1) + targets.sum(dim=1) + smooth)


def box_projection_loss(
    logits: torch.Tensor, boxes: torch.Tensor, input_size: int, *, smooth: float = 1.0
) -> torch.Tensor:
    """How well masks fill their boxes (the box-tightness term of weak box supervision, as in
    BoxInst): the mask's largest probability along each column must be 1 inside the box's x
    extent and 0 outside, likewise along rows; scored by soft Dice on both projections.

    Args:
        logits: (N, H, W) mask logits covering the (input_size x input_size) model input.
        boxes: (N, 4) x0, y0, x1, y1 inclusive, in input pixels.
    Returns:
        (N,) mean of the column and row Dice losses.
    """
    prob = logits.sigmoid()
    scale = logits.shape[-1] / input_size  # logit cells per input pixel
    losses = []
    for dim, lo, hi in ((1, 0, 2), (2, 1, 3)):  # over rows onto x, then over columns onto y
        projected = prob.amax(dim=dim)  # (N, W), then (N, H)
        cells = torch.arange(projected.shape[1], device=logits.device, dtype=prob.dtype)
        start = boxes[:, lo : lo + 1] * scale  # (N, 1)
        stop = (boxes[:, hi : hi + 1] + 1) * scale
        inside = ((cells + 1 > start) & (cells < stop)).to(prob.dtype)  # (N, W) or (N, H)
        overlap = 2 * (projected * inside).sum(dim=1)
        losses.append(1 - (overlap + smooth) / (projected.sum(1) + inside.sum(1) + smooth))
    return (losses[0] + losses[1]) / 2


def mask_iou(logits: torch.Tensor, targets: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """(N, H, W) logits and {0, 1} targets -> (N,) IoU of the thresholded mask (1 if both
    are empty)."""
    pred = (logits > threshold).flatten(1)
    truth = targets.flatten(1) > 0.5
    inter = (pred & truth).sum(dim=1).float()
    union = (pred | truth).sum(dim=1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


@dataclass
class PromptableLoss:
    """Loss terms, each a scalar tensor; ``best`` is (P,) the candidate that got gradient."""

    total: torch.Tensor
    focal: torch.Tensor
    dice: torch.Tensor
    iou: torch.Tensor
    best: torch.Tensor


def promptable_loss(
    logits: torch.Tensor,
    iou_pred: torch.Tensor,
    targets: torch.Tensor,
    *,
    focal_weight: float = 20.0,
    dice_weight: float = 1.0,
    iou_weight: float = 1.0,
    supervise_all_iou: bool = False,
) -> PromptableLoss:
    """SAM's loss for P prompt rows with K candidates each.

    Args:
        logits: (P, K, h, w) mask logits; upsampled (bilinear) when ``targets`` is larger.
        iou_pred: (P, K) predicted IoUs.
        targets: (P, H, W) {0, 1} ground-truth masks.
        supervise_all_iou: train the IoU head on every candidate, not just the best one.
    """
    rows, candidates = logits.shape[:2]
    if logits.shape[-2:] != targets.shape[-2:]:
        logits = F.interpolate(logits, targets.shape[-2:], mode="bilinear", align_corners=False)
    flat_logits = logits.flatten(0, 1)  # (P*K, H, W)
    flat_targets = targets.float()[:, None].expand(-1, candidates, -1, -1).flatten(0, 1)
    focal = sigmoid_focal_loss(flat_logits, flat_targets).view(rows, candidates)  # (P, K)
    dice = dice_loss(flat_logits, flat_targets).view(rows, candidates)  # (P, K)
    true_iou = mask_iou(flat_logits.detach(), flat_targets).view(rows, candidates)  # (P, K)
    mask_loss = focal_weight * focal + dice_weight * dice  # (P, K)
    best = mask_loss.detach().argmin(dim=1)  # (P,)
    pick = best[:, None]
    iou_err = (iou_pred - true_iou) ** 2  # (P, K)
    iou_term = iou_err.mean(dim=1) if supervise_all_iou else iou_err.gather(1, pick)[:, 0]
    focal_best = focal.gather(1, pick)[:, 0].mean()
    dice_best = dice.gather(1, pick)[:, 0].mean()
    iou_loss = iou_term.mean()
    total = focal_weight * focal_best + dice_weight * dice_best + iou_weight * iou_loss
    return PromptableLoss(total, focal_best, dice_best, iou_loss, best)


# -- simulated interaction ------------------------------------------------------------------------
@dataclass
class SimulatedPrompt:
    """Prompts for one object, in pixels: points (N, 2) x, y, labels (N,), box (4,) or None."""

    points: torch.Tensor
    labels: torch.Tensor
    box: torch.Tensor | None = None


def _random_pixel(region: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(H, W) bool with at least one True -> (2,) float x, y of a uniformly chosen pixel."""
    ys, xs = torch.nonzero(region, as_tuple=True)
    pick = int(torch.randint(len(xs), (1,), generator=generator))
    return torch.stack([xs[pick], ys[pick]]).float()


def noisy_box(
    target: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    noise: float = 0.1,
    max_shift: float = 20.0,
) -> torch.Tensor:
    """(H, W) bool -> (4,) x0, y0, x1, y1: the target's box, each coordinate moved by Gaussian
    noise with std ``noise`` x the box side (at most ``max_shift`` px), clipped to the image."""
    ys, xs = torch.nonzero(target, as_tuple=True)
    box = torch.stack([xs.min(), ys.min(), xs.max(), ys.max()]).float()
    sides = torch.stack([box[2] - box[0], box[3] - box[1]]).repeat(2)  # (4,) w, h, w, h
    shift = torch.randn(4, generator=generator) * noise * sides
    box = box + shift.clamp(-max_shift, max_shift)
    height, width = target.shape
    box[0::2] = box[0::2].clamp(0, width - 1)
    box[1::2] = box[1::2].clamp(0, height - 1)
    lo, hi = torch.minimum(box[:2], box[2:]), torch.maximum(box[:2], box[2:])
    return torch.cat([lo, hi])


def first_prompt(
    target: torch.Tensor, *, generator: torch.Generator | None = None, box_prob: float = 0.5
) -> SimulatedPrompt:
    """A foreground point inside ``target`` (H, W) bool, or (with ``box_prob``) a noisy box."""
    if not target.any():
        raise ValueError("the target mask is empty; nothing to prompt")
    if float(torch.rand(1, generator=generator)) < box_prob:
        return SimulatedPrompt(
            torch.zeros(0, 2),
            torch.zeros(0, dtype=torch.int64),
            noisy_box(target, generator=generator),
        )
    point = _random_pixel(target, generator)
    return SimulatedPrompt(point[None], torch.ones(1, dtype=torch.int64))


def correction_point(
    prediction: torch.Tensor, target: torch.Tensor, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, int] | None:
    """A point drawn uniformly from the error region of ``prediction`` against ``target`` (both
    (H, W) bool): label 1 where the prediction missed the target, 0 where it spilled over.
    None when the prediction is already exact."""
    error = prediction ^ target
    if not error.any():
        return None
    point = _random_pixel(error, generator)
    label = int(target[int(point[1]), int(point[0])])
    return point, label


def add_correction(
    prompt: SimulatedPrompt,
    prediction: torch.Tensor,
    target: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
) -> SimulatedPrompt:
    """``prompt`` plus one correction point (unchanged when the prediction is exact)."""
    found = correction_point(prediction, target, generator=generator)
    if found is None:
        return prompt
    point, label = found
    return SimulatedPrompt(
        torch.cat([prompt.points, point[None]]),
        torch.cat([prompt.labels, torch.tensor([label])]),
        prompt.box,
    )
