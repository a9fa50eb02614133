"""The cases of benchmarks/bench_seggpt.py: the benchmarked architectures, the measured jobs,
their synthetic inputs, what each job runs, and the analytic FLOP count that cross-checks the
counted one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

# transformers keyword arguments of each benchmarked architecture.
CONFIGS = {
    "large": dict(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        mlp_dim=4096,
        image_size=[896, 448],
        intermediate_hidden_state_indices=[5, 11, 17, 23],
        merge_index=2,
    ),
    "tiny": dict(
        hidden_size=192,
        num_hidden_layers=12,
        num_attention_heads=3,
        mlp_dim=768,
        image_size=[448, 224],
        intermediate_hidden_state_indices=[2, 5, 8, 11],
        merge_index=2,
    ),
}
ENSEMBLE_PROMPTS = 8


@dataclass(frozen=True)
class Job:
    """One measured run: a side ("ours" or "hf"), a prompt count and a precision."""

    name: str
    side: str
    prompts: int
    bf16: bool = False


JOBS = (
    Job("ours_fp32", "ours", 1),
    Job("hf_fp32", "hf", 1),
    Job("ours_bf16", "ours", 1, bf16=True),
    Job("ours_p8", "ours", ENSEMBLE_PROMPTS),
    Job("hf_p8", "hf", ENSEMBLE_PROMPTS),
)


def synthetic_scene(size: tuple[int, int], gen: torch.Generator) -> tuple[torch.Tensor, np.ndarray]:
    """A coloured ellipse on a smooth background: image (3, H, W) in [0, 1], mask (H, W) 0/1."""
    height, width = size
    yy, xx = torch.meshgrid(
        torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij"
    )  # (H, W) each
    cy, cx, ry, rx = (0.25 + 0.5 * torch.rand(2, generator=gen)).tolist() + (
        0.12 + 0.15 * torch.rand(2, generator=gen)
    ).tolist()
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1  # (H, W)
    coarse = torch.rand(1, 3, 6, 6, generator=gen)
    background = 0.6 * F.interpolate(coarse, size=size, mode="bilinear")[0]  # (3, H, W)
    color = (0.5 + 0.5 * torch.rand(3, 1, 1, generator=gen)).expand(3, height, width)
    image = torch.where(inside, color, background)  # (3, H, W)
    return image, inside.numpy().astype(np.uint8)


def make_inputs(half: tuple[int, int], prompts: int, seed: int = 0) -> dict:
    """Normalised prompts (P, 3, H/2, W), their white-on-black targets, and one query (1, ...)."""
    from painter.ops import normalize
    from seggpt.coloring import prepare_prompt_masks

    gen = torch.Generator().manual_seed(seed)
    scenes = [synthetic_scene(half, gen) for _ in range(prompts + 1)]
    images = torch.stack([image for image, _ in scenes])  # (P + 1, 3, H/2, W)
    colored, _ = prepare_prompt_masks([mask for _, mask in scenes[:prompts]])
    targets = torch.from_numpy(np.stack(colored)).permute(0, 3, 1, 2) / 255.0  # (P, 3, H/2, W)
    return {
        "prompt_images": normalize(images[:prompts]),
        "prompt_targets": normalize(targets),
        "query_images": normalize(images[prompts:]),  # (1, 3, H/2, W)
    }


def analytic_flops(config, prompts: int) -> int:
    """FLOPs (2 x multiply-adds of matmuls and convs) of ``paint_queries`` for one query.

    Mirrors the shared-query path: prompt rows once per prompt, query rows once, attention of
    every canvas over all its keys, blocks up to the last tap, decoder on the query rows + 1.
    """
    vit = config.vit
    c, p = vit.embed_dim, vit.patch_size
    hidden = int(c * vit.mlp_ratio)
    h, w = config.grid
    n_half, n = (h // 2) * w, h * w
    rows = prompts * n_half + n_half  # token rows through the linear layers, per stream
    macs = (2 * prompts * n_half + n_half) * 3 * p * p * c  # patch embedding
    for block in range(config.tap_blocks[-1] + 1):
        streams = 2 if block <= config.merge_block else 1
        linear = rows * (3 * c * c + c * c + 2 * c * hidden)  # qkv, proj, MLP
        attention = prompts * n * n * c * 2  # QK^T and AV of every canvas
        rel_pos = prompts * n * (h + w) * c if vit.use_rel_pos else 0
        macs += streams * (linear + attention + rel_pos)
    taps, dim = len(config.tap_blocks), config.decoder_dim
    dec_tokens = (h // 2 + 1) * w
    macs += dec_tokens * taps * c * p * p * dim  # decoder linear
    macs += dec_tokens * p * p * (9 * dim * dim + 3 * dim)  # 3x3 and 1x1 convs
    return 2 * macs


def build_runner(job: Job, model, inputs: dict):
    """A no-argument function that runs the case and returns the query half (1, 3, H/2, W)."""
    prompts = inputs["prompt_images"][: job.prompts]  # (P, 3, H/2, W)
    targets = inputs["prompt_targets"][: job.prompts]
    query = inputs["query_images"]  # (1, 3, H/2, W)
    half = query.shape[-2]
    if job.side == "hf":
        queries = query.expand(job.prompts, -1, -1, -1)  # (P, 3, H/2, W): query repeated

        def run() -> torch.Tensor:
            out = model(
                pixel_values=queries,
                prompt_pixel_values=prompts,
                prompt_masks=targets,
                feature_ensemble=job.prompts > 1,
            ).pred_masks  # (P, 3, H, W)
            return out[:1, :, half:]

        return run

    def run() -> torch.Tensor:
        device_type = "cuda" if query.is_cuda else "cpu"  # "cpu" also while counting on meta
        autocast = torch.autocast(device_type, dtype=torch.bfloat16, enabled=job.bf16)
        with autocast:
            return model.paint_queries(prompts[None], targets[None], query)  # (1, 3, H/2, W)

    return run


def naive_runner(model, inputs: dict):
    """Our reference path: ``forward`` on P whole canvases with the feature-ensemble hooks."""
    from painter.ops import query_half_mask, stitch

    prompts, targets = inputs["prompt_images"], inputs["prompt_targets"]  # (P, 3, H/2, W)
    n_p, half = prompts.shape[0], prompts.shape[-2]
    images = stitch(prompts, inputs["query_images"].expand(n_p, -1, -1, -1))  # (P, 3, H, W)
    canvas_targets = stitch(targets, targets)  # (P, 3, H, W); the query half is hidden anyway
    patch_mask = query_half_mask(n_p, model.config.grid).to(images.device)  # (P, h * w)

    def run() -> torch.Tensor:
        out = model(images, canvas_targets, patch_mask, prompts_per_query=n_p)  # (P, 3, H, W)
        return out[:1, :, half:]

    return run


def count_flops(model, run) -> dict[str, int]:
    """Matmul/conv FLOPs of one run, counted on the meta device (CPU SDPA is not counted)."""
    with FlopCounterMode(display=False) as counter:
        run()
    return {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}


def decode_mask(painted: torch.Tensor, coloring) -> np.ndarray:
    """(1, 3, H, W) normalised painting -> (H, W) 0/1 mask, the predictor's binary rule."""
    from painter.ops import denormalize
    from seggpt.coloring import decode_painted

    rgb = (denormalize(painted[0]) * 255).clamp(0, 255).permute(1, 2, 0)  # (H, W, 3)
    return decode_painted(rgb.numpy(), coloring)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """Largest absolute difference, and the same relative to the largest |b|."""
    diff = (a - b).abs().max().item()
    return {"abs": diff, "rel": diff / max(b.abs().max().item(), 1e-12)}
