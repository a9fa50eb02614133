"""Video object segmentation speed: frames/s, and the shared-query ensemble against naive canvases.

For each variant (random weights; the speed does not depend on them) and a memory of K frames,
every timed frame has P = K + 1 prompts (the first frame and K memory frames, filled beforehand
with the synthetic video's ground truth). Three numbers per variant, all on the same inputs:

1. frames/s of :meth:`VideoSegmenter.step` (pre-processing, model, read-back, memory update);
2. seconds of the model alone with the shared query: ``paint_queries`` on (1, P) prompts;
3. seconds of the naive feature ensemble: ``forward`` on P full canvases with
   ``prompts_per_query=P`` (each canvas recomputes the query half), and the speed-up 3 / 2,
   with the largest difference between the two painted query halves as a check.

    python benchmarks/bench_vos.py --variants seggpt_vit_tiny seggpt_vit_large --frames 2

Prints a table and writes JSON (default benchmarks/results/bench_vos.json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from harness import format_table, machine_header, machine_info, measure, write_json

from data_mixtures.synthetic_video import SyntheticVideoConfig, synthetic_video
from painter.ops import normalize, query_half_mask, stitch
from seggpt.loading import build_model
from seggpt.predictor import SegGPTPredictor
from seggpt.video import VideoSegmenter

ROOT = Path(__file__).resolve().parent
MEMORY_MARGIN = 4 * 2**30  # bytes left free for everything else while the naive case runs


def _timed(fn, repeats: int) -> tuple[float, object]:
    """Median seconds of ``repeats`` calls (one untimed warm-up first when repeats > 1), and the
    last call's result."""
    [timing] = measure([fn], repeats=repeats, warmup=1 if repeats > 1 else 0)
    return timing.median_s, timing.result


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where there is none)."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def attention_bytes(model, canvases: int, query_rows: int, key_rows: int) -> int:
    """Peak bytes of one block's attention bias and weights, two streams, float32."""
    heads, width = model.config.vit.num_heads, model.config.canvas_size[1] // 16
    return 2 * 2 * canvases * heads * (query_rows * width) * (key_rows * width) * 4


def bench_variant(variant: str, *, memory: int, frames: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = build_model(variant).eval()
    predictor = SegGPTPredictor(model, device="cpu", dtype="float32")
    config = SyntheticVideoConfig(num_frames=memory + 1 + frames, image_size=model.config.half_size)
    video = synthetic_video(config, seed=0)
    segmenter = VideoSegmenter(predictor, memory_size=memory, admit_ratio=None)  # always updates
    state = segmenter.start(video.frames[0], video.masks[0])
    for t in range(1, memory + 1):  # a full memory, as in the middle of a video
        segmenter.add_to_memory(state, video.frames[t], video.masks[t])
    prompts_per_frame = len(state.prompt_frames)

    start = time.perf_counter()
    for t in range(memory + 1, memory + 1 + frames):
        segmenter.step(state, video.frames[t])
    step_s = (time.perf_counter() - start) / frames

    prompts = state.prompts()  # (P, 3, H/2, W) images and targets
    # The query as the predictor prepares it (the frames already have the half-canvas size).
    last = torch.from_numpy(video.frames[-1]).permute(2, 0, 1)[None].float() / 255
    query_t = normalize(last)  # (1, 3, H/2, W)
    p = prompts.images.shape[0]
    with torch.inference_mode():
        shared_s, shared = _timed(
            lambda: model.paint_queries(prompts.images[None], prompts.targets[None], query_t),
            repeats,
        )  # (1, 3, H/2, W)
        images = stitch(prompts.images, query_t.expand(p, -1, -1, -1))  # (P, 3, H, W)
        targets = stitch(prompts.targets, torch.zeros_like(prompts.targets))  # (P, 3, H, W)
        grid = model.config.canvas_size[0] // 16, model.config.canvas_size[1] // 16
        hidden = query_half_mask(p, grid)  # (P, h * w)
        need = attention_bytes(model, p, grid[0], grid[0]) + MEMORY_MARGIN
        free = available_bytes()
        if free is not None and need > free:  # never push other work on the machine into swap
            print(f"{variant}: naive forward skipped, needs ~{need / 2**30:.1f} GiB free")
            naive_s, naive = float("nan"), None
        else:
            naive_s, naive = _timed(
                lambda: model(images, targets, hidden, prompts_per_query=p), repeats
            )  # (P, 3, H, W)
    half = model.config.half_size[0]
    difference = (
        float("nan") if naive is None else float((naive[0, :, half:] - shared[0]).abs().max())
    )
    return {
        "variant": variant,
        "canvas": list(model.config.canvas_size),
        "parameters_m": sum(t.numel() for t in model.parameters()) / 1e6,
        "memory_frames": memory,
        "prompts_per_frame": prompts_per_frame,
        "timed_frames": frames,
        "frames_per_s": 1.0 / step_s,
        "step_s": step_s,
        "shared_query_s": shared_s,
        "naive_forward_s": naive_s,
        "speedup": naive_s / shared_s,
        "max_abs_difference": difference,
    }


def table(rows: list[dict]) -> str:
    head = ["variant", "P", "frames/s", "shared s", "naive s", "speed-up"]
    cells = [
        [r["variant"], r["prompts_per_frame"], f"{r['frames_per_s']:.3f}"]
        + [f"{r['shared_query_s']:.3f}", f"{r['naive_forward_s']:.3f}", f"{r['speedup']:.2f}x"]
        for r in rows
    ]
    return format_table(head, cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["seggpt_vit_tiny"])
    parser.add_argument("--memory", type=int, default=8, help="K memory frames (default 8)")
    parser.add_argument("--frames", type=int, default=4, help="timed frames per variant")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed model calls (1 for ViT-L variants)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_vos.json")
    args = parser.parse_args()
    print(machine_header(machine_info()) + " (at the start)")
    rows = []
    for variant in args.variants:
        repeats = 1 if "large" in variant else args.repeats
        frames = min(args.frames, 2) if "large" in variant else args.frames
        rows.append(bench_variant(variant, memory=args.memory, frames=frames, repeats=repeats))
        print(table(rows[-1:]), flush=True)
    print()
    print(table(rows))
    machine = machine_info()
    print(machine_header(machine) + " (at the end)")
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results = {**previous.get("results", {}), **{r["variant"]: r for r in rows}}
    write_json(args.out, {"machine": machine, "results": results})


if __name__ == "__main__":
    main()
