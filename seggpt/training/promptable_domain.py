"""The data side of label-free adaptation (see ``painter.promptable.adapt``): a shifted image
domain to adapt to, the weak/strong views, weak box labels as prompts, the adaptation loop, and
LoRA weights saved apart from the base model.

>>> model = build_sam(checkpoint="demo")
>>> adapter, losses = adapt_with_boxes(model, images, boxes, steps=200)   # LoRA, model frozen
>>> save_lora(adapter.model, "lora.safetensors")                         # the updates alone
>>> merged = merge_lora(adapter.model)                                   # or fold them in
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter
from safetensors.torch import save_file

from data_mixtures.records import SegRecord
from data_mixtures.sources.base import RecordSource
from painter.checkpoint import atomic_write, read_safetensors
from painter.errors import CheckpointError, InputMismatchError
from painter.promptable.adapt import LoRAQKV, SelfTrainingAdapter, add_lora
from painter.promptable.model import PromptableSegmenter
from painter.promptable.predictor import PromptTensors
from painter.promptable.transforms import mask_to_box

LORA_FORMAT = "painter-promptable-lora"


@dataclass(frozen=True)
class DomainShift:
    """A fixed corruption of every image: per-channel gain and offset (colour shift), Gaussian
    blur, then Gaussian pixel noise. Values on the 0..255 scale."""

    gains: tuple[float, float, float] = (1.25, 0.8, 0.7)
    offsets: tuple[float, float, float] = (-30.0, 20.0, 40.0)
    blur_sigma: float = 1.5
    noise_std: float = 25.0

    def apply(self, image: np.ndarray, seed: int) -> np.ndarray:
        """(H, W, 3) uint8 -> the shifted (H, W, 3) uint8; the noise is drawn from ``seed``."""
        shifted = image.astype(np.float32) * np.asarray(self.gains) + np.asarray(self.offsets)
        shifted = np.clip(shifted, 0, 255).astype(np.uint8)
        blurred = Image.fromarray(shifted).filter(ImageFilter.GaussianBlur(self.blur_sigma))
        noise = np.random.default_rng(seed).normal(0.0, self.noise_std, image.shape)
        return np.clip(np.asarray(blurred, dtype=np.float32) + noise, 0, 255).astype(np.uint8)


class ShiftedSource(RecordSource):
    """The records of ``source`` with :class:`DomainShift` applied to every image (labels kept);
    record i's noise is seeded by i."""

    def __init__(self, source: RecordSource, shift: DomainShift | None = None) -> None:
        super().__init__(f"{source.name}-shifted")
        self.source = source
        self.shift = shift or DomainShift()
        self.seg_types = source.seg_types

    def __len__(self) -> int:
        return len(self.source)

    def load(self, index: int) -> SegRecord:
        record = self.source.load(index)
        return dataclasses.replace(record, image=self.shift.apply(record.image, seed=index))


def strong_view(image: np.ndarray, rng: np.random.Generator, noise_std: float = 0.0) -> np.ndarray:
    """WeSAM-style strong augmentation of one (H, W, 3) uint8 view, geometry kept so the
    prompts stay valid: random colour gain/offset, blur (half the time) and solarisation (a
    fifth of the time); with ``noise_std`` > 0, also (half the time) Gaussian pixel noise of a
    std drawn from [0, noise_std] (not in WeSAM's set; sensor noise is a common shift)."""
    pixels = image.astype(np.float32)
    gain = rng.uniform(0.6, 1.4, 3)
    offset = rng.uniform(-40, 40, 3)
    pixels = np.clip(pixels * gain + offset, 0, 255)
    if rng.random() < 0.5:
        blurred = Image.fromarray(pixels.astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.0)))
        )
        pixels = np.asarray(blurred, dtype=np.float32)
    if rng.random() < 0.2:
        pixels = np.where(pixels > 128, 255 - pixels, pixels)
    if noise_std > 0 and rng.random() < 0.5:
        pixels = np.clip(pixels + rng.normal(0.0, rng.uniform(0, noise_std), pixels.shape), 0, 255)
    return pixels.astype(np.uint8)


def _input(model: PromptableSegmenter, image: np.ndarray) -> torch.Tensor:
    """(S, S, 3) uint8 at the model's input size -> (1, 3, S, S) normalised model input."""
    side = model.config.image_size
    if image.shape[:2] != (side, side):
        raise InputMismatchError(
            f"adaptation images must be {side}x{side} (the model's input size), got "
            f"{image.shape[1]}x{image.shape[0]}"
        )
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    return model.preprocess(tensor.to(model.pixel_mean.device))


def adapt_with_boxes(
    model: PromptableSegmenter,
    images: Sequence[np.ndarray],
    boxes: Sequence[np.ndarray],
    *,
    steps: int = 200,
    rank: int = 4,
    lr: float = 1e-4,
    seed: int = 0,
    box_weight: float = 10.0,
    strong_noise: float = 0.0,
) -> tuple[SelfTrainingAdapter, list[float]]:
    """Adapt ``model`` (in place: LoRA layers added, base frozen) to unlabelled ``images`` with
    weak box labels ``boxes`` (per image (P, 4) x0, y0, x1, y1 in its pixels) as prompts.

    Each step takes one image: the weak view is the image, the strong view
    :func:`strong_view` of it (with ``strong_noise``). The boxes are prompts and, with
    ``box_weight`` > 0, also supervise through the box-filling term (see
    ``painter.promptable.adapt``); ``box_weight=0, strong_noise=0`` is plain WeSAM. Returns the
    adapter and the loss of every step.
    """
    if len(images) != len(boxes) or not images:
        raise InputMismatchError(f"need one box array per image, got {len(images)}/{len(boxes)}")
    adapter = SelfTrainingAdapter(model, rank=rank, lr=lr, box_weight=box_weight)
    rng = np.random.default_rng(seed)
    device = model.pixel_mean.device
    losses = []
    for _ in range(steps):
        index = int(rng.integers(len(images)))
        rows = np.asarray(boxes[index], dtype=np.float32).reshape(-1, 4)
        if not len(rows):
            continue
        prompts = PromptTensors(None, None, torch.from_numpy(rows).to(device), None)
        weak = _input(model, images[index])
        strong = _input(model, strong_view(images[index], rng, strong_noise))
        losses.append(float(adapter.step(weak, strong, prompts).total))
    return adapter, losses


@dataclass
class WeaklyLabelled:
    """One shifted image with its objects' true masks (for scoring) and boxes (weak labels)."""

    image: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray


#: Where each split of the shifted held-out images starts (record indices).
SHIFT_SPLITS = {"adapt": 0, "test": 50_000}


def shifted_objects(
    side: int, split: str, count: int, *, shift: DomainShift | None = None, min_pixels: int = 64
) -> list[WeaklyLabelled]:
    """``count`` held-out synthetic images (never trained on) under ``shift``, at ``side``."""
    from seggpt.training.promptable_data import demo_sources, object_samples

    _, _, held_out = demo_sources(side, 0)
    samples = object_samples(
        ShiftedSource(held_out, shift),
        count,
        side,
        start=SHIFT_SPLITS[split],
        min_pixels=min_pixels,
    )
    return [
        WeaklyLabelled(s.image, s.masks, np.stack([mask_to_box(m) for m in s.masks]))
        for s in samples
    ]


def lora_parameter_count(model: PromptableSegmenter) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if ".lora_" in n)


def save_lora(model: PromptableSegmenter, path: str | os.PathLike) -> Path:
    """Write only the LoRA updates (safetensors, with the rank and the base's config)."""
    state = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if ".lora_" in n}
    if not state:
        raise CheckpointError("the model has no LoRA layers to save (adapt it first)")
    wrapped = next(
        b.attn.qkv for b in model.image_encoder.backbone.blocks if isinstance(b.attn.qkv, LoRAQKV)
    )
    meta = {
        "format": LORA_FORMAT,
        "rank": str(wrapped.lora_a[0].shape[0]),
        "scale": str(wrapped.scale),
        "base_config": json.dumps(model.config.to_dict()),
    }
    return atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta))


def load_lora(model: PromptableSegmenter, path: str | os.PathLike) -> PromptableSegmenter:
    """Add LoRA layers to ``model`` and load saved updates into them (strict)."""
    state, meta = read_safetensors(path)
    if meta.get("format") != LORA_FORMAT:
        raise CheckpointError(f"{path} is not a LoRA file of this project (made by save_lora)")
    if json.loads(meta["base_config"]) != json.loads(json.dumps(model.config.to_dict())):
        raise CheckpointError(f"{path} was adapted from another promptable model architecture")
    add_lora(model, rank=int(meta["rank"]), scale=float(meta["scale"]))
    own = {n for n, _ in model.named_parameters() if ".lora_" in n}
    if set(state) != own:
        raise CheckpointError(f"{path}: LoRA keys do not match the model's blocks")
    model.load_state_dict(state, strict=False)
    return model
