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
    format_report,
    make_inputs,
    naive_runner,
    summarise,
)

# Seconds of timed runs per case before the repeats are cut (a P = 8 ViT-L run takes minutes).
CASE_BUDGET_S = {"large": 120.0, "tiny": 10.0}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


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
    print(format_report(summary, gemm, header, cores=cpu_count()))
    write_json(out, report)
    return report


if __name__ == "__main__":
    main()
