"""In-context tuning: learn the prompt (image half and target half) for a fixed class set, with
the model frozen, by the same masked loss the model was trained with.

The result is a :class:`TunedPrompt` artifact (safetensors + class names + colours + the model
it was tuned for) that :class:`~seggpt.predictor.SegGPTPredictor` uses like a prepared prompt.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from painter.checkpoint import atomic_write, read_safetensors
from painter.config import SegType
from painter.errors import CheckpointError, InputMismatchError
from painter.losses import foreground_weights
from painter.model import PainterModel
from painter.ops import normalize, query_half_mask, stitch
from painter.resize import resize_image, resize_labels
from seggpt.coloring import MaskKind, PromptColoring, index_to_color, seggpt_palette
from seggpt.evaluation.metrics import IoUAccumulator
from seggpt.predictor import PreparedPrompts, SegGPTPredictor

TUNED_FORMAT = "painter-framework-tuned-prompt"


def model_fingerprint(model: PainterModel) -> str:
    """A short hash of the model's config and weights: a tuned prompt only fits that model."""
    digest = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes()[:4096])
    return digest.hexdigest()[:16]


@dataclass
class TunedPrompt:
    """A learned prompt for a fixed class set.

    Attributes:
        image, target: (3, H/2, W) prompt halves in the model's normalised space.
        class_names: K + 1 names, index 0 the background.
        fingerprint: :func:`model_fingerprint` of the model it was tuned for.
        step: optimisation steps done (for resuming).
        seg_type: the type token it was tuned with (use the same when predicting).
    """

    image: torch.Tensor
    target: torch.Tensor
    class_names: tuple[str, ...]
    fingerprint: str
    step: int = 0
    seg_type: SegType = SegType.SEMANTIC

    @property
    def palette(self) -> np.ndarray:
        """(K + 1, 3) uint8 colour of each class, the SegGPT palette."""
        return seggpt_palette(len(self.class_names) - 1)

    def check_model(self, model: PainterModel) -> None:
        found = model_fingerprint(model)
        if found != self.fingerprint:
            raise CheckpointError(
                f"this tuned prompt was tuned for model {self.fingerprint}, not for the loaded "
                f"model {found}; tune it again for this model (tools.tune)"
            )

    def prepared(self, device: torch.device) -> PreparedPrompts:
        """As prompts for :meth:`SegGPTPredictor.predict`."""
        k = len(self.class_names) - 1
        kind = MaskKind.BINARY if k == 1 else MaskKind.INDEX
        coloring = PromptColoring(self.palette, k, tuple(range(k + 1)), kind)
        return PreparedPrompts(self.image[None].to(device), self.target[None].to(device), coloring)

    def save(self, path: str | os.PathLike) -> Path:
        meta = {
            "format": TUNED_FORMAT,
            "class_names": json.dumps(list(self.class_names)),
            "colors": json.dumps(self.palette.tolist()),
            "fingerprint": self.fingerprint,
            "step": str(self.step),
            "seg_type": self.seg_type.name,
        }
        tensors = {
            "image": self.image.detach().cpu().contiguous(),
            "target": self.target.detach().cpu().contiguous(),
        }
        return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))

    @classmethod
    def load(cls, path: str | os.PathLike) -> TunedPrompt:
        tensors, meta = read_safetensors(path)
        if meta.get("format") != TUNED_FORMAT:
            raise CheckpointError(f"{path} is not a tuned prompt (made by tools.tune)")
        return cls(
            tensors["image"],
            tensors["target"],
            tuple(json.loads(meta["class_names"])),
            meta["fingerprint"],
            int(meta.get("step", 0)),
            SegType[meta.get("seg_type", "SEMANTIC")],
        )


@dataclass(frozen=True)
class TuningData:
    """Training pairs for tuning, resized to the model's half size.

    Attributes:
        images: (N, 3, H/2, W) normalised.
        targets: (N, 3, H/2, W) normalised colour masks (the fixed palette).
    """

    images: torch.Tensor
    targets: torch.Tensor


def tuning_data(
    model: PainterModel, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], num_classes: int
) -> TuningData:
    """Resize and colour (image, class-index mask) pairs with the fixed palette of K classes."""
    if len(images) != len(masks) or not images:
        raise InputMismatchError(f"need as many masks as images, got {len(images)}/{len(masks)}")
    half = model.config.half_size
    palette = seggpt_palette(num_classes)
    ims, tgs = [], []
    for image, mask in zip(images, masks):
        if image.shape[:2] != mask.shape[:2]:
            raise InputMismatchError(f"image {image.shape[:2]} and mask {mask.shape[:2]} differ")
        if int(mask.max()) > num_classes:
            raise InputMismatchError(
                f"mask has id {int(mask.max())} but only {num_classes} classes"
            )
        ims.append(resize_image(image, half))
        tgs.append(index_to_color(resize_labels(np.clip(mask, 0, None), half), palette))

    def tensor(arrays: list[np.ndarray]) -> torch.Tensor:
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
        return normalize(x)  # (N, 3, H/2, W)

    return TuningData(tensor(ims), tensor(tgs))


def prompt_miou(
    predictor: SegGPTPredictor,
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    num_classes: int,
    *,
    prompts: PreparedPrompts | TunedPrompt | None = None,
    pair: tuple[np.ndarray, np.ndarray] | None = None,
) -> float:
    """Class-pooled mIoU (classes 1..``num_classes``) of segmenting ``images`` with one prompt:
    prepared prompts, a tuned prompt, or one real (image, class mask) ``pair``."""
    if (prompts is None) == (pair is None):
        raise InputMismatchError("give exactly one of prompts= and pair=")
    if isinstance(prompts, TunedPrompt):
        prompts = prompts.prepared(predictor.device)
    acc = IoUAccumulator()
    for image, mask in zip(images, masks):
        if pair is None:
            [pred] = predictor.predict(None, None, [image], prompts=prompts)
        else:
            [pred] = predictor.predict([pair[0]], [pair[1]], [image])
        acc.update(pred.mask, mask, list(range(1, num_classes + 1)))
    return acc.miou


def tune_prompt(
    model: PainterModel,
    data: TuningData,
    class_names: Sequence[str],
    *,
    steps: int = 200,
    lr: float = 0.02,
    batch_size: int = 8,
    init: str = "examples",
    seed: int = 0,
    seg_type: SegType = SegType.SEMANTIC,
    foreground_weight: float = 1.0,
    select: Callable[[TunedPrompt], float] | None = None,
    select_every: int = 25,
    resume: TunedPrompt | None = None,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> TunedPrompt:
    """Optimise the prompt halves with the model frozen.

    Args:
        data: training pairs (see :func:`tuning_data`).
        class_names: K + 1 names, index 0 the background.
        lr: Adam's peak step size (normalised pixel units); cosine-decayed to 0 over ``steps``.
        init: "examples" starts from the first training pair, "noise" from random values.
        foreground_weight: loss weight of coloured target pixels, as the model was trained with
            (``TrainConfig.foreground_weight``).
        select: optional score of a prompt (higher is better, e.g. mIoU on a validation part of
            the training data); the prompt is scored at the start and every ``select_every``
            steps and the best one is returned (early stopping).
        resume: continue a previous tuning (its step count is kept).
    Returns:
        the tuned prompt; each step draws a batch of pairs, puts them below the learned prompt and
        minimises the masked smooth-L1 on the query half.
    """
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if resume is not None:
        resume.check_model(model)
        image, target, start = resume.image.clone(), resume.target.clone(), resume.step
    elif init == "examples":
        image, target, start = data.images[0].clone(), data.targets[0].clone(), 0
    elif init == "noise":
        image = torch.randn(data.images.shape[1:], generator=generator)
        target = torch.randn(data.images.shape[1:], generator=generator)
        start = 0
    else:
        raise InputMismatchError(f"init must be 'examples' or 'noise', not {init!r}")
    image = image.to(device).requires_grad_(True)
    target = target.to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([image, target], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
    fingerprint = model_fingerprint(model)

    def snapshot(step: int) -> TunedPrompt:
        return TunedPrompt(
            image.detach().cpu().clone(),
            target.detach().cpu().clone(),
            tuple(class_names),
            fingerprint,
            step,
            seg_type,
        )

    best, best_score = None, float("-inf")

    def consider(step: int) -> None:
        nonlocal best, best_score
        candidate = snapshot(step)
        found = select(candidate)
        if found > best_score:
            best, best_score = candidate, found

    n = data.images.shape[0]
    grid = model.config.grid
    if select is not None:
        consider(start)
    for step in tqdm(range(start, start + steps), desc="tuning", disable=not progress):
        pick = torch.randint(
            0,
            n,
            (min(batch_size, n),),
            generator=torch.Generator().manual_seed(seed * 100_003 + step),
        )
        queries, truth = data.images[pick].to(device), data.targets[pick].to(device)
        b = queries.shape[0]
        canvas = stitch(image[None].expand(b, -1, -1, -1), queries)  # (B, 3, H, W)
        targets = stitch(target[None].expand(b, -1, -1, -1), truth)  # (B, 3, H, W)
        hidden = query_half_mask(b, grid, device)
        painted = model(canvas, targets, hidden, seg_type=seg_type, raw=True)
        weights = foreground_weights(targets, foreground_weight)
        loss = model.loss(painted, targets, hidden, valid=weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if on_step is not None:
            on_step(step, loss.item())
        done = step + 1 - start
        if select is not None and (done % select_every == 0 or done == steps):
            consider(step + 1)
    return best if best is not None else snapshot(start + steps)
