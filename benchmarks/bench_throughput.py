"""Benchmark: a folder of queries segmented with one prepared prompt, against one ``predict`` call
per query (each preparing its prompt again), in the same run.

    python benchmarks/bench_throughput.py [--config tiny|large] [--queries N] [--batch-size B]
        [--out PATH]

The model is SegGPT at random weights in the architecture of ``bench_seggpt.py``'s config (the
same transformers-format save, loaded with ``seggpt.loading.load_model``); float32 on the CPU.
The queries are PNG files of 640 x 480 synthetic scenes (a coloured ellipse on a smooth
background) written to a temporary folder, so both ways read and decode them. Prints the
queries per second of each way, their ratio, and how many mask pixels the two ways agree on
(batching changes only rounding), and writes JSON.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from harness import cpu_count, finish, format_table, load_average, release_free_memory
from PIL import Image
from references import random_hf_seggpt
from seggpt_cases import CONFIGS, synthetic_scene

from seggpt.loading import load_model
from seggpt.predictor import SegGPTPredictor

SCENE = (480, 640)  # (H, W) of every written image
DEFAULT_QUERIES = {"tiny": 32, "large": 8}


def write_scenes(folder: Path, count: int, seed: int) -> list[tuple[Path, Path]]:
    """``count`` (image PNG, mask PNG) pairs in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    pairs = []
    for i in range(count):
        image, mask = synthetic_scene(SCENE, gen)  # (3, H, W) in [0, 1], (H, W) 0/1
        rgb = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # (H, W, 3)
        image_path, mask_path = folder / f"scene_{i:03d}.png", folder / f"scene_{i:03d}_mask.png"
        Image.fromarray(rgb).save(image_path)
        Image.fromarray(mask * 255).save(mask_path)
        pairs.append((image_path, mask_path))
    return pairs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    parser.add_argument(
        "--queries", type=int, default=None, help="query files (default: 32 tiny, 8 large)"
    )
    parser.add_argument("--batch-size", type=int, default=4, help="queries per forward pass")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    n_queries = args.queries or DEFAULT_QUERIES[args.config]
    out = args.out or Path(__file__).resolve().parent / "results" / (
        f"bench_throughput_{args.config}.json"
    )
    torch.set_num_threads(cpu_count())
    with tempfile.TemporaryDirectory(prefix="bench_throughput_") as tmp:
        work = Path(tmp)
        random_hf_seggpt(0, **CONFIGS[args.config]).save_pretrained(work / "model")
        model = load_model(work / "model")
        release_free_memory()
        [(prompt, prompt_mask)] = write_scenes(work / "prompt", 1, seed=1)
        queries = [image for image, _ in write_scenes(work / "queries", n_queries, seed=2)]
        predictor = SegGPTPredictor(model, device="cpu", dtype="float32")
        predictor.predict([prompt], [prompt_mask], queries[:1])  # warm-up
        load = [load_average()]

        def one_call_per_query() -> list[np.ndarray]:
            return [predictor.predict([prompt], [prompt_mask], [q])[0].mask for q in queries]

        def prepared_folder() -> list[np.ndarray]:
            prepared = predictor.prepare_prompts([prompt], [prompt_mask])
            results = predictor.predict(
                None, None, queries, prompts=prepared, batch_size=args.batch_size
            )
            return [r.mask for r in results]

        timings = {}
        masks = {}
        for name, run in (("separate", one_call_per_query), ("prepared", prepared_folder)):
            start = time.perf_counter()
            masks[name] = run()
            timings[name] = time.perf_counter() - start
            load.append(load_average())
    agree = np.mean([np.mean(a == b) for a, b in zip(masks["separate"], masks["prepared"])])
    rates = {name: n_queries / seconds for name, seconds in timings.items()}
    ratio = rates["prepared"] / rates["separate"]
    rows = [
        [
            "separate predict calls",
            f"{timings['separate']:.2f}",
            f"{rates['separate']:.3f}",
            "1.00",
        ],
        [
            f"prepared prompt, batches of {args.batch_size}",
            f"{timings['prepared']:.2f}",
            f"{rates['prepared']:.3f}",
            f"{ratio:.2f}",
        ],
    ]
    print(f"SegGPT {args.config}, {n_queries} query files of {SCENE[1]}x{SCENE[0]}, fp32, CPU")
    print(format_table(["way", "seconds", "queries/s", "rate x"], rows))
    print(f"mask pixels equal between the two ways: {100 * agree:.3f}%")
    print(f"load average (1 min) before, after each way: {', '.join(f'{v:.2f}' for v in load)}")
    print(f"target: prepared rate / separate rate >= 1.3: {'PASS' if ratio >= 1.3 else 'FAIL'}")
    result = {
        "config": args.config,
        "queries": n_queries,
        "batch_size": args.batch_size,
        "seconds": timings,
        "queries_per_s": rates,
        "rate_ratio": ratio,
        "mask_agreement_pct": 100 * float(agree),
        "load_avg": load,
    }
    return finish(result, out)


if __name__ == "__main__":
    main()
