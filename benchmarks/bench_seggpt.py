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
        [--device cpu|cuda] [--malloc default|retain] [--jobs fp32]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from harness import (
    MALLOC_MODES,
    cpu_count,
    gemm_gflops,
    load_average,
    machine_header,
    machine_info,
    measure,
    peak_memory,
    release_free_memory,
    retain_freed_memory,
    write_json,
)
from references import random_hf_seggpt
from seggpt_cases import (
    CONFIGS,
    ENSEMBLE_PROMPTS,
    JOBS,
    Job,
    analytic_flops,
    build_runner,
    count_flops,
    decode_mask,
    make_inputs,
    max_diff,
    naive_runner,
)

# Seconds of timed runs per case before the repeats are cut (a P = 8 ViT-L run takes minutes).
CASE_BUDGET_S = {"large": 120.0, "tiny": 10.0}
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


# -- worker (one subprocess per measured case) ---------------------------------------------------
def worker(
    job: Job,
    model_dir: Path,
    work_dir: Path,
    repeats: int,
    case_budget: float,
    device: torch.device | str = "cpu",
    malloc: str = "default",
) -> None:
    device = torch.device(device)
    if malloc == "retain" and not retain_freed_memory():
        raise SystemExit("--malloc retain needs glibc")
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
    memory = peak_memory(device)
    release_free_memory()
    baseline = memory.current()
    load_avg = [load_average()]
    memory.reset()
    with torch.inference_mode():
        [timing] = measure([run], repeats=repeats, budget_s=case_budget, device=device)
        peak = memory.peak()
        load_avg.append(load_average())
        result = {
            "times_s": timing.wall_s,
            "warmup_s": timing.warmup_s,
            "peak_rss": peak,
            "baseline_rss": baseline,
            "load_avg": load_avg,
            "gemm_gflops": gemm,
            "output": timing.result.float().cpu().clone(),
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
        + f" (one range per case) on {cpu_count()} cores",
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
    parser.add_argument(
        "--malloc",
        choices=MALLOC_MODES,
        default="default",
        help="glibc malloc in every case's process, both sides alike: as it comes (default), or "
        "retain: large blocks from the heap and freed memory kept (no page faults per run)",
    )
    parser.add_argument(
        "--jobs",
        choices=("all", "fp32"),
        default="all",
        help="all cases (default), or only the one-prompt fp32 pair (a quick check; no targets)",
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
        worker(
            job, args.model_dir, args.work_dir, args.repeats, args.case_budget, device, args.malloc
        )
        return {}
    import transformers

    from painter.formats import config_from_hf

    hf_kwargs = CONFIGS[args.config]
    out = args.out or Path(__file__).resolve().parent / "results" / (
        "bench_seggpt.json" if args.config == "large" else f"bench_seggpt_{args.config}.json"
    )
    budget = args.case_budget if args.case_budget is not None else CASE_BUDGET_S[args.config]
    threads = cpu_count()
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="bench_seggpt_") as tmp:
        work = Path(tmp)
        random_hf_seggpt(0, **hf_kwargs).save_pretrained(work / "model")
        release_free_memory()  # the parent's copy of the model is gone before the cases run
        with open(work / "model" / "config.json") as f:
            config = config_from_hf(json.load(f))
        inputs = make_inputs(config.half_size, ENSEMBLE_PROMPTS)
        torch.save(inputs, work / "inputs.pt")
        gemm = {dtype: gemm_gflops(DTYPES[dtype], device=device) for dtype in ("fp32", "bf16")}
        results = {}
        jobs = JOBS if args.jobs == "all" else [j for j in JOBS if j.prompts == 1 and not j.bf16]
        for job in jobs:
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
                "--malloc",
                args.malloc,
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
    analytic = {job.name: analytic_flops(config, job.prompts) for job in jobs if job.side == "ours"}
    summary = summarise(results, analytic, coloring)
    vit = config.vit
    machine = machine_info(device)
    header = (
        f"SegGPT {device.type.upper()} benchmark, {args.config}: "
        f"ViT {vit.embed_dim}/{vit.depth}/{vit.num_heads}, "
        f"canvas {config.canvas_size[0]}x{config.canvas_size[1]}, taps {config.tap_blocks}, "
        f"merge {config.merge_block}; transformers {transformers.__version__}\n"
        f"{machine_header(machine)} (at the end)\n"
        f"time: median of up to {args.repeats} runs after 1 warm-up, at most {budget:g} s of "
        f"timed runs per case (runs column: ours/HF); malloc: {args.malloc}"
    )
    report = {
        "config": args.config,
        "hf_config": hf_kwargs,
        "repeats": args.repeats,
        "case_budget_s": budget,
        "malloc": args.malloc,
        "jobs": args.jobs,
        "machine": {
            **machine,
            "memory": "CUDA max_memory_allocated" if device.type == "cuda" else "peak RSS",
            "threads": threads,
            "transformers": transformers.__version__,
        },
        "gemm_gflops": gemm,
        **summary,
    }
    print(format_report(summary, gemm, header))
    write_json(out, report)
    return report


if __name__ == "__main__":
    main()
