"""The learning-rate schedule shared by this framework's trainers."""

from __future__ import annotations

import torch
from timm.scheduler import CosineLRScheduler


def warmup_cosine(
    optimizer: torch.optim.Optimizer, *, steps: int, warmup_steps: int, min_lr: float
) -> CosineLRScheduler:
    """timm's cosine decay to ``min_lr`` over ``steps`` optimiser steps, after a linear warm-up
    from ``min_lr`` over the first ``warmup_steps``; advance it with ``step_update(step)``.

    Each parameter group decays from its own ``lr`` (so layer-wise decay keeps its ratios)."""
    return CosineLRScheduler(
        optimizer,
        t_initial=steps,
        lr_min=min_lr,
        warmup_t=warmup_steps,
        warmup_lr_init=min_lr,
        t_in_epochs=False,
    )
