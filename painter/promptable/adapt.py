"""Label-free adaptation of the promptable model to a new image domain (WeSAM-style).

Three branches share one prompt set per image (``multimask=False``):

* **anchor**: a frozen copy of the source model, on the weakly augmented view;
* **teacher**: the adapted model itself (same weights, not an EMA) on the weak view;
* **student**: the adapted model on the strongly augmented view.

Only low-rank (LoRA) updates of the q and v parts of every encoder block's fused qkv
projection are trained. Loss per image, over its P prompt rows:

    20 * focal(s, t) + dice(s, t) + mse(iou_s, IoU(s, t))     t = teacher mask > 0 (pseudo-label)
    + (dice(s, a) + dice(teacher, a)) / 2                     a = anchor mask > 0
    + InfoNCE between the teacher's and the anchor's per-instance features
    + box_weight * (box(s, B) + box(teacher, B)) / 2         B = the prompt boxes, if any

The instance features are the channel-normalised image embeddings averaged over each branch's
own predicted mask; the InfoNCE pulls the teacher's feature of instance i towards the anchor's
feature of the same instance and away from the others (temperature 0.3).

The last term is not WeSAM's: when the weak labels are boxes, they also supervise. ``box`` is
:func:`box_projection_loss`, which asks each mask to fill its box's rows and columns and nothing
outside them. WeSAM's self-training alone only makes the model agree with itself across views;
the box term adds what the weak label knows. ``box_weight=0`` (the adapter's default) is WeSAM.

Making the views (the same flips for both, colour/blur/solarise only on the strong one) and
mapping the prompts through them is the data side's job.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from painter.errors import ConfigError
from painter.promptable.losses import (
    box_projection_loss,
    dice_loss,
    mask_iou,
    sigmoid_focal_loss,
)
from painter.promptable.model import PromptableSegmenter
from painter.promptable.predictor import PromptTensors


class LoRAQKV(nn.Module):
    """A fused qkv Linear (C -> 3C) plus trainable rank-r updates of its q and v rows.

    ``out = qkv(x) + scale * [B_q A_q x, 0, B_v A_v x]``; A starts Kaiming-uniform and B at zero,
    so the wrapped layer starts out equal to the original.
    """

    def __init__(self, qkv: nn.Linear, rank: int, scale: float = 1.0) -> None:
        super().__init__()
        dim = qkv.in_features
        self.qkv = qkv
        self.scale = scale
        self.lora_a = nn.ParameterList(
            nn.Parameter(torch.empty(rank, dim, device=qkv.weight.device)) for _ in range(2)
        )
        self.lora_b = nn.ParameterList(
            nn.Parameter(torch.zeros(dim, rank, device=qkv.weight.device)) for _ in range(2)
        )
        for a in self.lora_a:
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))

    def delta_weight(self) -> torch.Tensor:
        """(3C, C) update of the fused weight: q rows, no k update, v rows."""
        q, v = (b @ a for a, b in zip(self.lora_a, self.lora_b))  # (C, C) each
        return self.scale * torch.cat([q, torch.zeros_like(q), v])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., C) -> (..., 3C)."""
        out = self.qkv(x)
        q = F.linear(F.linear(x, self.lora_a[0]), self.lora_b[0])  # (..., C)
        v = F.linear(F.linear(x, self.lora_a[1]), self.lora_b[1])  # (..., C)
        return out + self.scale * torch.cat([q, torch.zeros_like(q), v], dim=-1)


def add_lora(
    model: PromptableSegmenter, *, rank: int = 4, scale: float = 1.0
) -> list[nn.Parameter]:
    """Freeze ``model`` and wrap every encoder block's qkv in :class:`LoRAQKV`.

    Returns the trainable parameters (2 x 2 x C x rank per block).
    """
    model.requires_grad_(False)
    params: list[nn.Parameter] = []
    for block in model.image_encoder.backbone.blocks:
        if isinstance(block.attn.qkv, LoRAQKV):
            raise ValueError("the model already has LoRA layers; merge_lora first")
        block.attn.qkv = LoRAQKV(block.attn.qkv, rank, scale)
        params.extend(block.attn.qkv.lora_a)
        params.extend(block.attn.qkv.lora_b)
    return params


def merge_lora(model: PromptableSegmenter) -> PromptableSegmenter:
    """Fold the LoRA updates into the qkv weights and unwrap them, in place: the model then has
    its original keys again (saveable as an official or native checkpoint)."""
    for block in model.image_encoder.backbone.blocks:
        wrapped = block.attn.qkv
        if isinstance(wrapped, LoRAQKV):
            with torch.no_grad():
                wrapped.qkv.weight += wrapped.delta_weight()
            block.attn.qkv = wrapped.qkv
    return model


@dataclass
class WeSAMLoss:
    """Loss terms of one adaptation step, scalar tensors."""

    total: torch.Tensor
    focal: torch.Tensor
    dice: torch.Tensor
    iou: torch.Tensor
    anchor: torch.Tensor
    contrast: torch.Tensor
    box: torch.Tensor


@dataclass
class BranchOutput:
    """One branch's decode: embedding (1, D, h, w), logits (P, 1, 4h, 4w), IoUs (P, 1)."""

    embedding: torch.Tensor
    logits: torch.Tensor
    iou: torch.Tensor


def instance_features(embedding: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """(1, D, h, w) embedding and (P, 1, 4h, 4w) logits -> (P, D) unit-length features: the
    channel-normalised embedding averaged over each instance's predicted mask."""
    unit = F.normalize(embedding, dim=1)  # (1, D, h, w)
    probs = F.interpolate(logits.sigmoid(), embedding.shape[-2:], mode="bilinear")  # (P, 1, h, w)
    weights = (probs > 0.5).to(unit.dtype)
    pooled = (unit * weights).flatten(2).sum(-1) / weights.flatten(2).sum(-1).clamp(min=1.0)
    return F.normalize(pooled, dim=1)  # (P, D)


def instance_contrast(
    teacher: torch.Tensor, anchor: torch.Tensor, temperature: float
) -> torch.Tensor:
    """InfoNCE over instances: (P, D) and (P, D) unit features -> scalar
    -log(sum of matching-pair terms / sum of all terms) of exp(cosine / temperature)."""
    scores = (teacher @ anchor.T / temperature).exp()  # (P, P)
    return -torch.log(scores.diagonal().sum() / scores.sum())


def wesam_loss(
    student: BranchOutput,
    teacher: BranchOutput,
    anchor: BranchOutput,
    *,
    focal_weight: float = 20.0,
    focal_scale: float = 0.8,
    temperature: float = 0.3,
    boxes: torch.Tensor | None = None,
    input_size: int | None = None,
    box_weight: float = 0.0,
) -> WeSAMLoss:
    """The WeSAM loss of one image (see the module docstring).

    ``boxes`` ((P, 4) in pixels of the ``input_size`` square model input) with ``box_weight``
    > 0 adds the box-filling term for the student and the teacher.

    ``anchor`` carries no gradient; ``teacher`` does (through the anchor-dice and contrast
    terms). The focal term scales every pixel by ``focal_scale`` (WeSAM's alpha 0.8) rather than
    weighting the classes.
    """
    s_logits = student.logits[:, 0]  # (P, 4h, 4w)
    pseudo = (teacher.logits[:, 0] > 0).float().detach()  # (P, 4h, 4w)
    anchor_mask = (anchor.logits[:, 0] > 0).float().detach()
    focal = focal_scale * sigmoid_focal_loss(s_logits, pseudo, alpha=-1).mean()
    dice = dice_loss(s_logits, pseudo).mean()
    iou = ((student.iou[:, 0] - mask_iou(s_logits.detach(), pseudo)) ** 2).mean()
    anchor_term = 0.5 * (
        dice_loss(s_logits, anchor_mask).mean()
        + dice_loss(teacher.logits[:, 0], anchor_mask).mean()
    )
    contrast = instance_contrast(
        instance_features(teacher.embedding, teacher.logits),
        instance_features(anchor.embedding, anchor.logits).detach(),
        temperature,
    )
    box = s_logits.new_zeros(())
    if box_weight > 0 and boxes is not None:
        if input_size is None:
            raise ValueError("the box term needs input_size, the side of the model input")
        box = 0.5 * (
            box_projection_loss(s_logits, boxes, input_size).mean()
            + box_projection_loss(teacher.logits[:, 0], boxes, input_size).mean()
        )
    total = focal_weight * focal + dice + iou + anchor_term + contrast + box_weight * box
    return WeSAMLoss(total, focal, dice, iou, anchor_term, contrast, box)


class SelfTrainingAdapter:
    """Adapt a promptable model to unlabelled images of a new domain.

    Args:
        model: the source model; it is frozen and gets LoRA layers (rank ``rank``) in place.
        lr, weight_decay: Adam on the LoRA parameters (WeSAM: 1e-4 and 1e-4).
        box_weight: weight of the box-filling term when the prompts hold boxes (0: WeSAM).

    >>> adapter = SelfTrainingAdapter(build_sam(checkpoint="sam_vit_b_01ec64.pth"))
    >>> for weak, strong, prompts in loader:      # (1, 3, S, S) model inputs, PromptTensors
    ...     losses = adapter.step(weak, strong, prompts)
    >>> save_sam(merge_lora(adapter.model), "adapted.safetensors")
    """

    def __init__(
        self,
        model: PromptableSegmenter,
        *,
        rank: int = 4,
        lr: float = 1e-4,
        weight_decay: float = 1e-4,
        box_weight: float = 0.0,
    ) -> None:
        if box_weight < 0:
            raise ConfigError(f"box_weight must be >= 0, got {box_weight}")
        self.box_weight = box_weight
        self.anchor = copy.deepcopy(model).eval().requires_grad_(False)
        self.model = model
        self.params = add_lora(model, rank=rank)
        self.optimizer = torch.optim.Adam(self.params, lr=lr, weight_decay=weight_decay)

    def _branch(
        self, model: PromptableSegmenter, images: torch.Tensor, prompts: PromptTensors
    ) -> BranchOutput:
        embedding = model.encode_images(images)  # (1, D, h, w)
        logits, iou = model.predict_masks(
            embedding,
            points=prompts.points,
            labels=prompts.labels,
            boxes=prompts.boxes,
            mask_inputs=prompts.mask_inputs,
            multimask=False,
        )
        return BranchOutput(embedding, logits, iou)

    def step(self, weak: torch.Tensor, strong: torch.Tensor, prompts: PromptTensors) -> WeSAMLoss:
        """One update from one image: ``weak`` and ``strong`` are (1, 3, S, S) model inputs of
        the two views, ``prompts`` the P prompt rows in input pixels (valid for both views)."""
        self.model.train()
        with torch.no_grad():
            anchor = self._branch(self.anchor, weak, prompts)
        teacher = self._branch(self.model, weak, prompts)
        student = self._branch(self.model, strong, prompts)
        loss = wesam_loss(
            student,
            teacher,
            anchor,
            boxes=prompts.boxes,
            input_size=self.model.config.image_size,
            box_weight=self.box_weight,
        )
        self.optimizer.zero_grad()
        loss.total.backward()
        self.optimizer.step()
        return WeSAMLoss(*(term.detach() for term in vars(loss).values()))
