"""Does a memory of predicted frames help a model track? J&F of the first frame alone against a
memory of K frames under each admission ratio, on synthetic videos of the held-out families.

    python benchmarks/bench_vos_memory.py --seeds 8:12          # choosing seeds (the ratio)
    python benchmarks/bench_vos_memory.py --seeds 0:8           # reported seeds
    python benchmarks/bench_vos_memory.py --checkpoint PATH --ratios 1.25,2 --memory 4

Videos: :func:`data_mixtures.synthetic_video.synthetic_video` with the held-out looks at the
model's canvas-half size (moving, occluding textured shapes of families no training run draws).
Rows: the first frame alone (K = 0), K frames admitted when every object's area is within each
ratio of its first-frame area, and K frames admitting every frame (the paper's rule). Prints mean
J&F per row and writes JSON with the per-seed scores. About 25 s per seed on 2 cores (6 rows).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from harness import finish, format_table, load_average

from data_mixtures.openset_config import held_out_config
from data_mixtures.synthetic_video import SyntheticVideoConfig, synthetic_video
from seggpt.evaluation.vos_metrics import score_sequence
from seggpt.loading import load_model
from seggpt.predictor import SegGPTPredictor
from seggpt.video import VideoSegmenter


def parse_seeds(text: str) -> list[int]:
    try:
        start, stop = (int(v) for v in text.split(":"))
    except ValueError as error:
        raise SystemExit(f"--seeds wants START:STOP: {error}") from error
    return list(range(start, stop))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="demo")
    parser.add_argument("--seeds", default="0:8", help="START:STOP of the video seeds")
    parser.add_argument("--memory", type=int, default=8, help="K, frames kept as prompts")
    parser.add_argument("--ratios", default="1.25,1.5,2,4", help="admission ratios to read")
    parser.add_argument("--out", default="benchmarks/results/vos_memory.json")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    predictor = SegGPTPredictor(load_model(args.checkpoint), device="cpu")
    ratios = [float(r) for r in args.ratios.split(",") if r.strip()]
    runs = {"first frame": (0, None)}
    runs.update({f"K{args.memory} ratio {r:g}": (args.memory, r) for r in ratios})
    runs[f"K{args.memory} every frame"] = (args.memory, None)
    config = SyntheticVideoConfig(image_size=predictor.config.half_size, looks=held_out_config())
    scores: dict[str, list[float]] = {name: [] for name in runs}
    start = time.perf_counter()
    seeds = parse_seeds(args.seeds)
    for seed in seeds:
        video = synthetic_video(config, seed=seed)
        for name, (memory, ratio) in runs.items():
            segmenter = VideoSegmenter(predictor, memory_size=memory, admit_ratio=ratio)
            masks = list(segmenter.run(video.frames, video.masks[0]))
            scores[name].append(score_sequence(masks, list(video.masks)).jf)
        print(f"seed {seed}: " + ", ".join(f"{n} {v[-1]:.3f}" for n, v in scores.items()))
    means = {name: float(np.mean(v)) for name, v in scores.items()}
    print(format_table(["memory", "mean J&F"], [[n, f"{m:.3f}"] for n, m in means.items()]))
    print(
        f"seeds {args.seeds}; {time.perf_counter() - start:.0f} s, load average "
        f"{load_average():.2f}"
    )
    result = {
        "checkpoint": str(args.checkpoint),
        "seeds": seeds,
        "memory": args.memory,
        "mean_jf": means,
        "per_seed": scores,
    }
    return finish(result, args.out)


if __name__ == "__main__":
    main()
