"""The cases of benchmarks/bench_seggpt.py: the benchmarked architectures, the measured jobs,
their synthetic inputs, what each job runs, the analytic FLOP count that cross-checks the
counted one, and the report (targets, summary, table) made from the workers' results."""

from __future__ import annotations

import statistics
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


# (name, measured value key, limit, True when the value must stay at or below the limit)
TARGETS = (
    ("fp32 time / HF time", "fp32_time_ratio", 0.55, True),
    ("bf16 time / HF fp32 time", "bf16_time_ratio", 0.30, True),
    ("bf16 mask pixels equal to fp32 (%)", "bf16_mask_agreement", 99.0, False),
    ("8 prompts time / HF time", "p8_time_ratio", 0.30, True),
    ("8 prompts peak RSS / HF peak RSS", "p8_memory_ratio", 0.50, True),
    ("fp32 GFLOP/s / measured fp32 GEMM (%)", "fp32_gemm_fraction", 75.0, False),
)


# -- report (parent process) ---------------------------------------------------------------------
def summarise(results: dict, flops_ours: dict, coloring) -> dict:
    """Per-case rows and the target checks from the workers' raw results."""
    cases = {}
    pairs = (
        ("1 prompt fp32", "ours_fp32", "hf_fp32"),
        ("1 prompt bf16", "ours_bf16", "hf_fp32"),
        (f"{ENSEMBLE_PROMPTS} prompts fp32", "ours_p8", "hf_p8"),
    )
    for label, ours_name, hf_name in pairs:
        if ours_name not in results:
            continue
        ours, hf = results[ours_name], results[hf_name]
        ours_s, hf_s = statistics.median(ours["times_s"]), statistics.median(hf["times_s"])
        flops = sum(ours["flops"].values())
        rate = flops / ours_s / 1e9
        cases[label] = {
            "ours_s": ours_s,
            "hf_s": hf_s,
            "time_ratio": ours_s / hf_s,
            "ours_peak_rss_mb": ours["peak_rss"] / 2**20,
            "hf_peak_rss_mb": hf["peak_rss"] / 2**20,
            "ours_forward_rss_mb": (ours["peak_rss"] - ours["baseline_rss"]) / 2**20,
            "hf_forward_rss_mb": (hf["peak_rss"] - hf["baseline_rss"]) / 2**20,
            "memory_ratio": ours["peak_rss"] / hf["peak_rss"],
            "forward_memory_ratio": (ours["peak_rss"] - ours["baseline_rss"])
            / max(hf["peak_rss"] - hf["baseline_rss"], 1),
            "diff_vs_hf": max_diff(ours["output"], hf["output"]),
            "ours_gflop": flops / 1e9,
            "hf_gflop": sum(hf["flops"].values()) / 1e9,
            "ours_flops_by_op": ours["flops"],
            "analytic_gflop": flops_ours[ours_name] / 1e9,
            "gflops_per_s": rate,
            "gemm_gflops": ours["gemm_gflops"],  # measured in the same process, just before
            "gemm_fraction_pct": 100 * rate / ours["gemm_gflops"],
            "ours_times_s": ours["times_s"],
            "hf_times_s": hf["times_s"],
            "ours_warmup_s": ours["warmup_s"],
            "hf_warmup_s": hf["warmup_s"],
            "load_avg": {"ours": ours["load_avg"], "hf": hf["load_avg"]},
        }
    fp32 = cases["1 prompt fp32"]
    measured = {
        "fp32_time_ratio": fp32["time_ratio"],
        "fp32_gemm_fraction": fp32["gemm_fraction_pct"],
    }
    checks = [("1 prompt fp32 vs HF, max|d| / max|HF|", fp32["diff_vs_hf"]["rel"], 1e-4)]
    if "ours_bf16" in results:
        fp32_mask = decode_mask(results["ours_fp32"]["output"], coloring)
        bf16_mask = decode_mask(results["ours_bf16"]["output"], coloring)
        bf16 = cases["1 prompt bf16"]
        bf16["diff_vs_ours_fp32"] = max_diff(
            results["ours_bf16"]["output"], results["ours_fp32"]["output"]
        )
        bf16["mask_agreement_pct"] = 100 * float((fp32_mask == bf16_mask).mean())
        bf16["fp32_foreground_pct"] = 100 * float(fp32_mask.mean())
        measured["bf16_time_ratio"] = bf16["time_ratio"]
        measured["bf16_mask_agreement"] = bf16["mask_agreement_pct"]
    if "ours_p8" in results:
        p8 = cases[f"{ENSEMBLE_PROMPTS} prompts fp32"]
        p8["diff_vs_naive_forward"] = max_diff(
            results["ours_p8"]["output"], results["ours_p8"]["naive_output"]
        )
        p8["naive_forward_s"] = results["ours_p8"]["naive_s"]
        measured["p8_time_ratio"] = p8["time_ratio"]
        measured["p8_memory_ratio"] = p8["memory_ratio"]
        checks.append(
            (
                f"{ENSEMBLE_PROMPTS} prompts vs naive forward, max|d| / max|naive|",
                p8["diff_vs_naive_forward"]["rel"],
                1e-4,
            )
        )
    targets = [
        {"target": name, "value": value, "limit": limit, "at_most": True, "pass": value <= limit}
        for name, value, limit in checks
    ]
    for name, key, limit, at_most in TARGETS:
        if key not in measured:
            continue
        value = measured[key]
        passed = value <= limit if at_most else value >= limit
        targets.append(
            {"target": name, "value": value, "limit": limit, "at_most": at_most, "pass": passed}
        )
    return {"cases": cases, "targets": targets}


def format_report(summary: dict, gemm: dict, header: str, *, cores: int) -> str:
    cols = (
        f"{'case':<16}{'runs':>5}{'ours s':>9}{'HF s':>9}{'time x':>8}{'ours MB':>9}{'HF MB':>9}"
        f"{'mem x':>7}{'fwd x':>7}{'max|d| HF':>11}{'GFLOP':>9}{'HF GFLOP':>10}{'GFLOP/s':>9}"
        f"{'GEMM':>7}{'%GEMM':>7}"
    )
    lines = [header, "", cols, "-" * len(cols)]
    for label, c in summary["cases"].items():
        runs = f"{len(c['ours_times_s'])}/{len(c['hf_times_s'])}"
        lines.append(
            f"{label:<16}{runs:>5}{c['ours_s']:>9.3f}{c['hf_s']:>9.3f}{c['time_ratio']:>8.3f}"
            f"{c['ours_peak_rss_mb']:>9.0f}{c['hf_peak_rss_mb']:>9.0f}{c['memory_ratio']:>7.3f}"
            f"{c['forward_memory_ratio']:>7.3f}{c['diff_vs_hf']['abs']:>11.2e}"
            f"{c['ours_gflop']:>9.1f}{c['hf_gflop']:>10.1f}{c['gflops_per_s']:>9.1f}"
            f"{c['gemm_gflops']:>7.1f}{c['gemm_fraction_pct']:>7.1f}"
        )
    cases = list(summary["cases"].values())
    bf16 = summary["cases"].get("1 prompt bf16")
    p8 = summary["cases"].get(f"{ENSEMBLE_PROMPTS} prompts fp32")
    lines += [
        "",
        "max|d| HF: largest |ours - HF| on the query half; fwd x: peak RSS above the loaded "
        "model, ours / HF",
        f"GEMM 2048^3 torch.mm before the cases: fp32 {gemm['fp32']:.1f} GFLOP/s, bf16 "
        f"{gemm['bf16']:.1f} GFLOP/s (the GEMM column: same measure inside each case's process)",
        "load average (1 min) during the cases: "
        + ", ".join(
            f"{min(v):.1f}-{max(v):.1f}"
            for c in cases
            for v in [c["load_avg"]["ours"] + c["load_avg"]["hf"]]
        )
        + f" (one range per case) on {cores} cores",
    ]
    if bf16 is not None:
        lines.append(
            f"1 prompt bf16 vs ours fp32: max|d| {bf16['diff_vs_ours_fp32']['abs']:.3f}, "
            f"mask pixels equal {bf16['mask_agreement_pct']:.2f}% "
            f"(fp32 foreground {bf16['fp32_foreground_pct']:.1f}%)"
        )
    if p8 is not None:
        lines.append(
            f"{ENSEMBLE_PROMPTS} prompts vs our naive forward: max|d| "
            f"{p8['diff_vs_naive_forward']['abs']:.2e} "
            f"(rel {p8['diff_vs_naive_forward']['rel']:.1e}, naive took "
            f"{p8['naive_forward_s']:.2f} s); vs HF rel {p8['diff_vs_hf']['rel']:.1e} "
            "(HF also averages the two streams' query half at the merge block)"
        )
    lines += [
        "FLOPs counted by FlopCounterMode on meta; analytic: "
        + ", ".join(f"{c['analytic_gflop']:.1f}" for c in cases),
        "",
        f"{'target':<52}{'measured':>10}{'limit':>10}  result",
    ]
    for t in summary["targets"]:
        limit = f"{'<=' if t['at_most'] else '>='}{t['limit']:g}"
        value = f"{t['value']:.3f}" if t["value"] >= 1e-3 else f"{t['value']:.1e}"
        lines.append(f"{t['target']:<52}{value:>10}{limit:>10}  {'PASS' if t['pass'] else 'FAIL'}")
    return "\n".join(lines)
