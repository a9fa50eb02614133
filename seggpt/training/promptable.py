"""Training and evaluation of the promptable model with simulated interactive prompting.

Each step encodes a batch of images once and decodes several objects per image over a few
rounds, as SAM was trained: round 1 prompts every object with one foreground point (multimask,
the gradient going to the best candidate) or a noisy box; every later round adds one point drawn
from the error region of the previous prediction (foreground where it missed, background where
it spilled over) and feeds the previous low-resolution logits back as the mask prompt. The loss
of each round is SAM's (focal : dice = 20 : 1 plus MSE on the IoU head); rounds are averaged.

Objects come from ``data_mixtures`` records with instance labels (the procedural synthetic source
and the photo pseudo-masks), drawn at the model's square input size.

    python -m tools.train_promptable --config configs/demo_promptable.yaml --out runs/sam_demo
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from painter.checkpoint import atomic_write
from painter.config import require
from painter.errors import ConfigError
from painter.optim import OptimConfig, build_optimizer
from painter.promptable.config import SamConfig, get_sam_config
from painter.promptable.loading import build_sam
from painter.promptable.losses import (
    add_correction,
    first_prompt,
    mask_iou,
    promptable_loss,
)
from painter.promptable.model import PromptableSegmenter, build_sam_from_config
from painter.promptable.prompt_encoder import PADDING_LABEL
from painter.promptable.transforms import mask_to_box
from seggpt.training.promptable_data import (
    DEMO_SPACING,
    ObjectSample,
    ObjectStream,
    centre_point,
    demo_sources,
    object_samples,
    openset_sources,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromptableTrainConfig(OptimConfig):
    """How the promptable model is trained (the optimiser fields are ``OptimConfig``'s; here
    AdamW without layer decay, weight decay on every parameter).

    Attributes:
        model: registered promptable variant (``painter.promptable.config``).
        batch_size: images per optimiser step.
        objects_per_image: prompt rows decoded per image (fewer when an image has fewer).
        rounds: interactive rounds per object (1 = the first prompt only).
        box_prob: probability that an image's first prompts are noisy boxes, not points.
        min_object_pixels: smaller objects are never prompted.
        photo_weight: fraction of images drawn from the photo pseudo-masks.
        openset_weight: fraction of images drawn from open-set images of the training
            shape/texture families (``data_mixtures.openset`` at 256 px); the rest are synthetic.
        init: a promptable checkpoint to start from (a path or "demo"), its architecture
            ``model``'s; None trains from scratch.
        synthetic_spacing: ``SyntheticConfig.spacing`` of the synthetic images (training and
            held-out): 0.85 keeps occlusion partial, so that every prompted object is
            recognisable and its box is its extent, not the box of a visible sliver.
        seed: data and initialisation seed.
        eval_images: images of each held-out set scored at the end: the synthetic generator
            with another seed, and open-set images of the held-out families (never trained on).
    """

    model: str = "sam_demo"
    steps: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-5
    batch_size: int = 8
    objects_per_image: int = 4
    rounds: int = 3
    box_prob: float = 0.5
    min_object_pixels: int = 64
    photo_weight: float = 0.2
    openset_weight: float = 0.0
    init: str | None = None
    synthetic_spacing: float = DEMO_SPACING
    seed: int = 0
    eval_images: int = 48

    def __post_init__(self) -> None:
        super().__post_init__()
        checks = [
            (self.batch_size > 0, "batch_size must be positive"),
            (self.objects_per_image > 0 and self.rounds > 0, "objects and rounds must be > 0"),
            (0 <= self.box_prob <= 1 and 0 <= self.photo_weight <= 1, "probabilities in [0, 1]"),
            (
                0 <= self.openset_weight and self.photo_weight + self.openset_weight <= 1,
                "openset_weight must be >= 0 and photo_weight + openset_weight <= 1",
            ),
        ]
        for ok, message in checks:
            require(ok, message)

    @classmethod
    def from_dict(cls, data: dict) -> PromptableTrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown promptable training keys {sorted(unknown)}")
        return cls(**data)


def _prompt_rows(prompts, device) -> dict[str, torch.Tensor | None]:
    """Stack per-object SimulatedPrompts into predict_masks arguments (points padded)."""
    most = max(len(p.points) for p in prompts)
    points = labels = boxes = None
    if most:
        points = torch.zeros(len(prompts), most, 2)
        labels = torch.full((len(prompts), most), PADDING_LABEL, dtype=torch.int64)
        for row, p in enumerate(prompts):
            points[row, : len(p.points)] = p.points
            labels[row, : len(p.labels)] = p.labels
        points, labels = points.to(device), labels.to(device)
    if prompts[0].box is not None:
        boxes = torch.stack([p.box for p in prompts]).to(device)
    return {"points": points, "labels": labels, "boxes": boxes}


def interactive_loss(
    model: PromptableSegmenter,
    embedding: torch.Tensor,
    targets: torch.Tensor,
    *,
    rounds: int,
    box_prob: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, float]:
    """SAM's loss over ``rounds`` simulated interactions for the objects of one image.

    Args:
        embedding: (1, D, h, w) the image's embedding.
        targets: (P, S, S) bool object masks.
    Returns:
        the mean loss over rounds, and the IoU of the last round's mask (for logging).
    """
    side = targets.shape[-1]
    use_box = float(torch.rand(1, generator=generator)) < box_prob
    prompts = [
        first_prompt(t.cpu(), generator=generator, box_prob=1.0 if use_box else 0.0)
        for t in targets
    ]
    mask_inputs = None
    total = torch.zeros((), device=embedding.device)
    iou = 0.0
    for round_index in range(rounds):
        multimask = round_index == 0 and not use_box  # one point is ambiguous
        logits, iou_pred = model.predict_masks(
            embedding,
            **_prompt_rows(prompts, embedding.device),
            mask_inputs=mask_inputs,
            multimask=multimask,
        )  # (P, K, 4h, 4w), (P, K)
        loss = promptable_loss(logits, iou_pred, targets)
        total = total + loss.total
        chosen = logits.gather(
            1, loss.best[:, None, None, None].expand(-1, 1, *logits.shape[-2:])
        )  # (P, 1, 4h, 4w)
        mask_inputs = chosen.detach()
        upscaled = torch.nn.functional.interpolate(
            mask_inputs, (side, side), mode="bilinear", align_corners=False
        )[:, 0]  # (P, S, S)
        iou = float(mask_iou(upscaled, targets.float()).mean())
        if round_index + 1 < rounds:
            predicted = (upscaled > 0).cpu()
            prompts = [
                _with_padding(
                    add_correction(p, predicted[i], targets[i].cpu(), generator=generator), p
                )
                for i, p in enumerate(prompts)
            ]
    return total / rounds, iou


def _with_padding(new, old):
    """Keep every row's point count equal: an exact prediction gets a padding point."""
    if len(new.points) > len(old.points):
        return new
    return dataclasses.replace(
        new,
        points=torch.cat([new.points, torch.zeros(1, 2)]),
        labels=torch.cat([new.labels, torch.tensor([PADDING_LABEL])]),
    )


def _batch(
    samples: Sequence[ObjectSample],
    model: PromptableSegmenter,
    per_image: int,
    generator: torch.Generator,
    device: torch.device,
):
    images = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2)
    images = model.preprocess(images.to(device, torch.float32))  # (B, 3, S, S)
    targets = []
    for s in samples:
        order = torch.randperm(len(s.masks), generator=generator)[:per_image]
        targets.append(torch.from_numpy(s.masks[order.numpy()]).to(device))
    return images, targets


def train_promptable(
    config: PromptableTrainConfig,
    out: str | Path,
    *,
    sam_config: SamConfig | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[PromptableSegmenter, dict]:
    """Train a promptable model from scratch; returns it and a report (losses, held-out IoUs).

    Writes ``out/metrics.csv`` (step, loss, last-round IoU) as it goes and ``out/report.json``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    torch.manual_seed(config.seed)
    sam_config = sam_config or get_sam_config(config.model)
    if config.init:
        model = build_sam(sam_config, checkpoint=config.init).to(device).train()
    else:
        model = build_sam_from_config(sam_config).to(device).train()
    optimizer, scheduler = build_optimizer(model, config, filter_bias_and_norm=False)
    side = sam_config.image_size
    synthetic, photos, held_out = demo_sources(side, config.seed, config.synthetic_spacing)
    openset, held_out_families = openset_sources(config.seed)
    stream = ObjectStream(
        [synthetic, photos, openset],
        [
            1 - config.photo_weight - config.openset_weight,
            config.photo_weight,
            config.openset_weight,
        ],
        side,
        config.min_object_pixels,
        config.seed,
    )
    generator = torch.Generator().manual_seed(config.seed)
    rows, start = [], time.time()
    bar = tqdm(range(config.steps), desc="train promptable", disable=not progress)
    for step in bar:
        samples = [stream[step * config.batch_size + i] for i in range(config.batch_size)]
        images, targets = _batch(samples, model, config.objects_per_image, generator, device)
        embeddings = model.encode_images(images)  # (B, D, h, w)
        losses, ious = [], []
        for b, target in enumerate(targets):
            loss, iou = interactive_loss(
                model,
                embeddings[b : b + 1],
                target,
                rounds=config.rounds,
                box_prob=config.box_prob,
                generator=generator,
            )
            losses.append(loss)
            ious.append(iou)
        loss = torch.stack(losses).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step_update(step + 1)
        rows.append((step + 1, loss.item(), float(np.mean(ious)), time.time() - start))
        bar.set_postfix(loss=f"{loss.item():.3f}", iou=f"{np.mean(ious):.2f}")
    lines = ["step,loss,train_iou,seconds"] + [",".join(f"{v:.6g}" for v in r) for r in rows]
    atomic_write(out / "metrics.csv", lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    model.eval()
    min_pixels = config.min_object_pixels
    report = {
        "config": dataclasses.asdict(config),
        "model": sam_config.to_dict(),
        "train_seconds": rows[-1][3],
        "final_train_loss": float(np.mean([r[1] for r in rows[-50:]])),
        **{
            key: evaluate_prompts(
                model, object_samples(source, config.eval_images, side, min_pixels=min_pixels)
            )
            for key, source in (("held_out", held_out), ("held_out_families", held_out_families))
        },
    }
    atomic_write(
        out / "report.json", lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2))
    )
    return model, report


@torch.inference_mode()
def evaluate_prompts(
    model: PromptableSegmenter, samples: Sequence[ObjectSample]
) -> dict[str, float]:
    """Mean IoU over the objects of ``samples`` for one centre click (the best-scored of the
    multimask candidates) and for the object's exact box (single mask)."""
    from painter.promptable.predictor import PromptablePredictor

    device = next(model.parameters()).device
    predictor = PromptablePredictor(model, device=device, dtype="float32")
    point_ious, box_ious = [], []
    for sample in samples:
        predictor.set_image(sample.image)
        masks = sample.masks
        points = np.stack([centre_point(m) for m in masks])[:, None]  # (P, 1, 2)
        by_point = predictor.predict(points=points, labels=np.ones((len(masks), 1))).best()
        by_box = predictor.predict(box=np.stack([mask_to_box(m) for m in masks]), multimask=False)
        point_ious += [_iou(p, m) for p, m in zip(by_point, masks)]
        box_ious += [_iou(p, m) for p, m in zip(by_box.masks[:, 0], masks)]
    return {
        "one_point_miou": float(np.mean(point_ious)),
        "box_miou": float(np.mean(box_ious)),
        "objects": len(point_ious),
    }


def _iou(pred: np.ndarray, truth: np.ndarray) -> float:
    union = np.logical_or(pred, truth).sum()
    return float(np.logical_and(pred, truth).sum() / union) if union else 1.0
