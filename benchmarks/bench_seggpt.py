"""Benchmark: our SegGPT inference against transformers' SegGptForImageSegmentation.

Both models hold the same random weights (a transformers model is saved once and loaded by both
sides) and see the same synthetic prompt/query pairs in the same run. Three cases:

1. one prompt, fp32: ``paint_queries`` against the transformers forward;
2. one prompt, bf16 autocast: ours against the transformers fp32 time, plus agreement of the
   decoded binary mask with our own fp32 output;
3. eight prompts, feature ensemble: ``paint_queries`` with P = 8 against transformers with
   ``feature_ensemble=True`` on a batch of 8, and against our naive ``forward``.

Each measured case runs in its own subprocess, so its peak RSS is its own. On the CPU by
default; with ``--device cuda`` both models run on the GPU, times are taken after
``torch.cuda.synchronize`` and memory is the peak of ``torch.cuda.max_memory_allocated``. See
README.md here.

    python benchmarks/bench_seggpt.py [--config large|tiny] [--repeats N] [--out PATH]
        [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

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
# Seconds of timed runs per case before the repeats are cut (a P = 8 ViT-L run takes minutes).
CASE_BUDGET_S = {"large": 120.0, "tiny": 10.0}
ENSEMBLE_PROMPTS = 8
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# (name, measured value key, limit, True when the value must stay at or below the limit)
TARGETS = (
    ("fp32 time / HF time", "fp32_time_ratio", 0.55, True),
    ("bf16 time / HF fp32 time", "bf16_time_ratio", 0.30, True),
    ("bf16 mask pixels equal to fp32 (%)", "bf16_mask_agreement", 99.0, False),
    ("8 prompts time / HF time", "p8_time_ratio", 0.30, True),
    ("8 prompts peak RSS / HF peak RSS", "p8_memory_ratio", 0.50, True),
    ("fp32 GFLOP/s / measured fp32 GEMM (%)", "fp32_gemm_fraction", 75.0, False),
)


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


# -- setup (parent process) ----------------------------------------------------------------------
def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """The CPU's name, or the GPU's for a CUDA device."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


def save_random_hf_model(hf_kwargs: dict, directory: Path, seed: int = 0) -> None:
    """Build transformers' SegGPT, give every parameter random values, save_pretrained it.

    Rel-pos tables, tokens and norms included (zeros or ones would hide mismatches); norm weights
    stay near 1 so activations keep a sane scale through the depth.
    """
    from transformers import SegGptConfig, SegGptForImageSegmentation

    model = SegGptForImageSegmentation(SegGptConfig(**hf_kwargs)).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            is_norm_weight = "norm" in name and name.endswith("weight")
            noise = torch.randn(param.shape, generator=gen)
            param.copy_(1.0 + 0.05 * noise if is_norm_weight else 0.05 * noise)
    model.save_pretrained(directory)


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
    colour = (0.5 + 0.5 * torch.rand(3, 1, 1, generator=gen)).expand(3, height, width)
    image = torch.where(inside, colour, background)  # (3, H, W)
    return image, inside.numpy().astype(np.uint8)


def make_inputs(half: tuple[int, int], prompts: int, seed: int = 0) -> dict:
    """Normalised prompts (P, 3, H/2, W), their white-on-black targets, and one query (1, ...)."""
    from painter.ops import normalize
    from seggpt.coloring import prepare_prompt_masks

    gen = torch.Generator().manual_seed(seed)
    scenes = [synthetic_scene(half, gen) for _ in range(prompts + 1)]
    images = torch.stack([image for image, _ in scenes])  # (P + 1, 3, H/2, W)
    coloured, _ = prepare_prompt_masks([mask for _, mask in scenes[:prompts]])
    targets = torch.from_numpy(np.stack(coloured)).permute(0, 3, 1, 2) / 255.0  # (P, 3, H/2, W)
    return {
        "prompt_images": normalize(images[:prompts]),
        "prompt_targets": normalize(targets),
        "query_images": normalize(images[prompts:]),  # (1, 3, H/2, W)
    }


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU does not)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_gflops(
    dtype: torch.dtype, size: int = 2048, runs: int = 8, device: torch.device | str = "cpu"
) -> float:
    """Best-of-``runs`` rate of one (size x size) @ (size x size) torch.mm, in GFLOP/s."""
    device = torch.device(device)
    a = torch.randn(size, size).to(device, dtype)
    b = torch.randn(size, size).to(device, dtype)
    torch.mm(a, b)
    synchronize(device)
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


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


# -- worker (one subprocess per measured case) ---------------------------------------------------
class PeakRss:
    """Peak resident set size of this process from ``reset()`` on, in bytes.

    Uses the kernel's own high-water mark (VmHWM, reset through /proc/self/clear_refs); where
    that is not allowed, samples VmRSS every 2 ms in a thread.
    """

    def __init__(self) -> None:
        self._sampled = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _status(field: str) -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(f"{field} missing from /proc/self/status")

    def current(self) -> int:
        return self._status("VmRSS")

    def reset(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")
        except OSError:
            self._sampled = self.current()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._sampled = max(self._sampled, self.current())

    def peak(self) -> int:
        if self._thread is None:
            return self._status("VmHWM")
        self._stop.set()
        self._thread.join()
        return self._sampled


class CudaPeak:
    """PeakRss's measure on a GPU: the peak of ``torch.cuda.max_memory_allocated``, in bytes."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def current(self) -> int:
        return torch.cuda.memory_allocated(self.device)

    def reset(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)

    def peak(self) -> int:
        return torch.cuda.max_memory_allocated(self.device)


def release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS, so the baseline is honest."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


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


def worker(
    job: Job,
    model_dir: Path,
    work_dir: Path,
    repeats: int,
    case_budget: float,
    device: torch.device | str = "cpu",
) -> None:
    device = torch.device(device)
    torch.set_num_threads(cpu_count())
    if job.side == "hf":
        from transformers import SegGptForImageSegmentation

        model = SegGptForImageSegmentation.from_pretrained(model_dir, dtype=torch.float32).eval()
    else:
        from seggpt.loading import load_model

        model = load_model(model_dir)
    model.to(device)
    inputs = torch.load(work_dir / "inputs.pt", weights_only=True)
    inputs = {key: value.to(device) for key, value in inputs.items()}
    run = build_runner(job, model, inputs)
    gemm = gemm_gflops(torch.bfloat16 if job.bf16 else torch.float32, device=device)  # same load
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.sum()  # page in weights that from_pretrained may leave memory-mapped
    rss = CudaPeak(device) if device.type == "cuda" else PeakRss()
    release_free_memory()
    baseline = rss.current()
    load_avg = [os.getloadavg()[0]]
    rss.reset()
    times = []
    with torch.inference_mode():
        start = time.perf_counter()
        run()  # warm-up
        synchronize(device)
        warmup = time.perf_counter() - start
        runs = max(1, min(repeats, int(case_budget // max(warmup, 1e-9))))
        for _ in range(runs):
            start = time.perf_counter()
            output = run()
            synchronize(device)
            times.append(time.perf_counter() - start)
        peak = rss.peak()
        load_avg.append(os.getloadavg()[0])
        result = {
            "times_s": times,
            "warmup_s": warmup,
            "peak_rss": peak,
            "baseline_rss": baseline,
            "load_avg": load_avg,
            "gemm_gflops": gemm,
            "output": output.float().cpu().clone(),
        }
        if job.side == "ours" and job.prompts > 1:
            naive = naive_runner(model, inputs)
            start = time.perf_counter()
            result["naive_output"] = naive().float().cpu().clone()
            result["naive_s"] = time.perf_counter() - start
    model.to("meta")
    meta_inputs = {key: value.to("meta") for key, value in inputs.items()}
    with torch.no_grad():
        result["flops"] = count_flops(
            model, build_runner(Job("count", job.side, job.prompts), model, meta_inputs)
        )
    torch.save(result, work_dir / f"{job.name}.pt")


# -- report (parent process) ---------------------------------------------------------------------
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


def summarise(results: dict, flops_ours: dict, coloring) -> dict:
    """Per-case rows and the target checks from the workers' raw results."""
    cases = {}
    pairs = (
        ("1 prompt fp32", "ours_fp32", "hf_fp32"),
        ("1 prompt bf16", "ours_bf16", "hf_fp32"),
        (f"{ENSEMBLE_PROMPTS} prompts fp32", "ours_p8", "hf_p8"),
    )
    for label, ours_name, hf_name in pairs:
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
    fp32_mask = decode_mask(results["ours_fp32"]["output"], coloring)
    bf16_mask = decode_mask(results["ours_bf16"]["output"], coloring)
    bf16 = cases["1 prompt bf16"]
    bf16["diff_vs_ours_fp32"] = max_diff(
        results["ours_bf16"]["output"], results["ours_fp32"]["output"]
    )
    bf16["mask_agreement_pct"] = 100 * float((fp32_mask == bf16_mask).mean())
    bf16["fp32_foreground_pct"] = 100 * float(fp32_mask.mean())
    p8 = cases[f"{ENSEMBLE_PROMPTS} prompts fp32"]
    p8["diff_vs_naive_forward"] = max_diff(
        results["ours_p8"]["output"], results["ours_p8"]["naive_output"]
    )
    p8["naive_forward_s"] = results["ours_p8"]["naive_s"]
    fp32 = cases["1 prompt fp32"]
    measured = {
        "fp32_time_ratio": fp32["time_ratio"],
        "bf16_time_ratio": bf16["time_ratio"],
        "bf16_mask_agreement": bf16["mask_agreement_pct"],
        "p8_time_ratio": p8["time_ratio"],
        "p8_memory_ratio": p8["memory_ratio"],
        "fp32_gemm_fraction": fp32["gemm_fraction_pct"],
    }
    checks = [
        ("1 prompt fp32 vs HF, max|d| / max|HF|", fp32["diff_vs_hf"]["rel"], 1e-4),
        (
            f"{ENSEMBLE_PROMPTS} prompts vs naive forward, max|d| / max|naive|",
            p8["diff_vs_naive_forward"]["rel"],
            1e-4,
        ),
    ]
    targets = [
        {"target": name, "value": value, "limit": limit, "at_most": True, "pass": value <= limit}
        for name, value, limit in checks
    ]
    for name, key, limit, at_most in TARGETS:
        value = measured[key]
        passed = value <= limit if at_most else value >= limit
        targets.append(
            {"target": name, "value": value, "limit": limit, "at_most": at_most, "pass": passed}
        )
    return {"cases": cases, "targets": targets}


def format_report(summary: dict, gemm: dict, header: str) -> str:
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
    fp32, bf16, p8 = cases
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
        + f" (one range per case) on {os.cpu_count()} cores",
        f"1 prompt bf16 vs ours fp32: max|d| {bf16['diff_vs_ours_fp32']['abs']:.3f}, "
        f"mask pixels equal {bf16['mask_agreement_pct']:.2f}% "
        f"(fp32 foreground {bf16['fp32_foreground_pct']:.1f}%)",
        f"{ENSEMBLE_PROMPTS} prompts vs our naive forward: max|d| "
        f"{p8['diff_vs_naive_forward']['abs']:.2e} (rel {p8['diff_vs_naive_forward']['rel']:.1e}, "
        f"naive took {p8['naive_forward_s']:.2f} s); vs HF rel {p8['diff_vs_hf']['rel']:.1e} "
        "(HF also averages the two streams' query half at the merge block)",
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="large")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up")
    parser.add_argument(
        "--case-budget",
        type=float,
        default=None,
        help="seconds of timed runs per case (default: 120 large, 10 tiny); fewer repeats, at "
        "least 1, when the warm-up shows they would not fit",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON file (default benchmarks/results/bench_seggpt.json, _tiny for the tiny config)",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="where both models run: cpu (default), cuda or cuda:N; on CUDA the memory columns "
        "are the peak of torch.cuda.max_memory_allocated instead of the process's RSS",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    device = torch.device(args.device)
    if args.worker:
        job = next(job for job in JOBS if job.name == args.worker)
        worker(job, args.model_dir, args.work_dir, args.repeats, args.case_budget, device)
        return {}
    import transformers

    from painter.checkpoint import config_from_hf

    hf_kwargs = CONFIGS[args.config]
    out = args.out or Path(__file__).resolve().parent / "results" / (
        "bench_seggpt.json" if args.config == "large" else f"bench_seggpt_{args.config}.json"
    )
    budget = args.case_budget if args.case_budget is not None else CASE_BUDGET_S[args.config]
    threads = cpu_count()
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="bench_seggpt_") as tmp:
        work = Path(tmp)
        save_random_hf_model(hf_kwargs, work / "model")
        release_free_memory()  # the parent's copy of the model is gone before the cases run
        with open(work / "model" / "config.json") as f:
            config = config_from_hf(json.load(f))
        inputs = make_inputs(config.half_size, ENSEMBLE_PROMPTS)
        torch.save(inputs, work / "inputs.pt")
        gemm = {dtype: gemm_gflops(DTYPES[dtype], device=device) for dtype in ("fp32", "bf16")}
        results = {}
        for job in JOBS:
            print(f"[bench] {job.name} ...", file=sys.stderr, flush=True)
            start = time.perf_counter()
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                job.name,
                "--model-dir",
                str(work / "model"),
                "--work-dir",
                str(work),
                "--repeats",
                str(args.repeats),
                "--case-budget",
                str(budget),
                "--device",
                args.device,
            ]
            subprocess.run(cmd, check=True)
            results[job.name] = torch.load(work / f"{job.name}.pt", weights_only=True)
            print(
                f"[bench] {job.name} done in {time.perf_counter() - start:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    from seggpt.coloring import prepare_prompt_masks

    _, coloring = prepare_prompt_masks([np.ones((2, 2), np.uint8)])  # binary: white on black
    analytic = {job.name: analytic_flops(config, job.prompts) for job in JOBS if job.side == "ours"}
    summary = summarise(results, analytic, coloring)
    vit = config.vit
    where = device_name(device)
    header = (
        f"SegGPT {device.type.upper()} benchmark, {args.config}: "
        f"ViT {vit.embed_dim}/{vit.depth}/{vit.num_heads}, "
        f"canvas {config.canvas_size[0]}x{config.canvas_size[1]}, taps {config.tap_blocks}, "
        f"merge {config.merge_block}; {threads} threads, torch {torch.__version__}, "
        f"transformers {transformers.__version__}; {where}\n"
        f"time: median of up to {args.repeats} runs after 1 warm-up, at most {budget:g} s of "
        "timed runs per case (runs column: ours/HF)"
    )
    report = {
        "config": args.config,
        "hf_config": hf_kwargs,
        "repeats": args.repeats,
        "case_budget_s": budget,
        "machine": {
            "cpu": cpu_name(),
            "device": where,
            "memory": "CUDA max_memory_allocated" if device.type == "cuda" else "peak RSS",
            "threads": threads,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "gemm_gflops": gemm,
        **summary,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(summary, gemm, header))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
