"""The painter's training objective: the model's masked loss plus the optional terms a training
config adds (foreground weighting, palette cross-entropy, soft Dice)."""

from __future__ import annotations

import torch

from painter.losses import foreground_weights, masked_palette_cross_entropy, masked_soft_dice
from painter.model import PainterModel
from painter.ops import denormalize
from seggpt.training.config import TrainConfig


def training_loss(
    model: PainterModel, config: TrainConfig, pred: torch.Tensor, targets: torch.Tensor, batch
) -> torch.Tensor:
    """The loss of one micro-batch.

    Args:
        model: the unwrapped model (its config decides the loss and the patch size).
        config: ``foreground_weight``, ``palette_weight`` / ``palette_temperature`` and
            ``dice_weight`` are read from it.
        pred: (B, 3, H, W) the model's raw output (``forward(..., raw=True)``).
        targets: (B, 3, H, W) the true target canvases, normalised.
        batch: the collated episodes (their ``target``, ``patch_mask`` and ``valid`` are read).
    Returns:
        scalar: the model's masked loss, with coloured target pixels weighted
        ``foreground_weight`` times; plus the palette cross-entropy of the painted canvas and
        the soft Dice term of its intensities when their weights are > 0.
    """
    weights = foreground_weights(batch.target, config.foreground_weight, batch.valid)
    loss = model.loss(pred, targets, batch.patch_mask, weights)
    patch = model.config.vit.patch_size
    if config.palette_weight <= 0 and config.dice_weight <= 0:
        return loss
    canvas = model.to_canvas(pred).float()  # the painted canvas both extra terms read
    if config.palette_weight > 0:
        loss = loss + config.palette_weight * masked_palette_cross_entropy(
            canvas,
            targets.float(),
            batch.patch_mask,
            patch_size=patch,
            valid=weights,
            temperature=config.palette_temperature,
        )
    if config.dice_weight > 0:  # Dice judges whole canvases: no foreground weighting
        loss = loss + config.dice_weight * masked_soft_dice(
            denormalize(canvas).clamp(0.0, 1.0),
            denormalize(targets.float()),
            batch.patch_mask,
            patch_size=patch,
            valid=batch.valid,
        )
    return loss
