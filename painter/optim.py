"""The optimiser block shared by this framework's trainers: its config fields, AdamW (with
optional layer-wise lr decay) and the warm-up + cosine learning-rate schedule."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler

from painter.errors import ConfigError


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a linear warm-up and cosine decay; the base of every training config.

    Attributes:
        steps: optimiser steps of the run (the length of the schedule); 0 trains nothing (a
            run that only reads its ``init`` as its model, evaluates and exports it).
        lr: peak learning rate (absolute), reached after ``warmup_steps``; cosine to ``min_lr``.
        min_lr: the schedule's floor (and the warm-up's start).
        warmup_steps: linear warm-up steps.
        weight_decay: AdamW's decoupled weight decay.
        betas: AdamW's betas.
        layer_decay: layer-wise lr decay (1.0 = none); needs a model with ``group_matcher``.
    """

    steps: int = 1000
    lr: float = 3e-4
    min_lr: float = 1e-6
    warmup_steps: int = 100
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    layer_decay: float = 1.0

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 0, "steps must be >= 0"),
            (self.lr > 0 and 0 <= self.min_lr <= self.lr, "need 0 <= min_lr <= lr and lr > 0"),
            (
                0 <= self.warmup_steps < max(self.steps, 1),
                "warmup_steps must be in [0, steps) (0 when steps is 0)",
            ),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas in [0, 1)"),
            (0 < self.layer_decay <= 1, "layer_decay must be in (0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


def build_optimizer(
    model: torch.nn.Module, config: OptimConfig, *, filter_bias_and_norm: bool = True
) -> tuple[torch.optim.Optimizer, CosineLRScheduler]:
    """AdamW over ``model``'s parameters and its schedule (advance it with ``step_update``).

    ``filter_bias_and_norm`` exempts biases, norms and the model's ``no_weight_decay()`` names
    from weight decay (timm's rule); with ``layer_decay`` < 1 each block's group gets its own lr.
    """
    optimizer = create_optimizer_v2(
        model,
        opt="adamw",
        lr=config.lr,
        weight_decay=config.weight_decay,
        layer_decay=config.layer_decay if config.layer_decay < 1 else None,
        betas=config.betas,
        filter_bias_and_bn=filter_bias_and_norm,
    )
    schedule = warmup_cosine(
        optimizer, steps=config.steps, warmup_steps=config.warmup_steps, min_lr=config.min_lr
    )
    return optimizer, schedule


def warmup_cosine(
    optimizer: torch.optim.Optimizer, *, steps: int, warmup_steps: int, min_lr: float
) -> CosineLRScheduler:
    """timm's cosine decay to ``min_lr`` over ``steps`` optimiser steps, after a linear warm-up
    from ``min_lr`` over the first ``warmup_steps``; advance it with ``step_update(step)``.

    Each parameter group decays from its own ``lr`` (so layer-wise decay keeps its ratios)."""
    return CosineLRScheduler(
        optimizer,
        t_initial=max(steps, 1),
        lr_min=min_lr,
        warmup_t=warmup_steps,
        warmup_lr_init=min_lr,
        t_in_epochs=False,
    )
