"""In-context tuning vs the best real example, on a fixed-class synthetic task.

    python benchmarks/bench_tuning.py [--checkpoint demo] [--steps 300]

Task: three categories of the held-out shape/texture families, each with one fixed look
(``seggpt.samples.fixed_class_source``), so no model of this framework was trained on them. The
tuned prompt is learned on a training split; the baseline is the single real
training pair whose prompt scores best on the training split itself. Both are scored on held-out
images (another generator seed). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from harness import finish, format_table

from painter.config import SegType
from seggpt.loading import load_model
from seggpt.predictor import SegGPTPredictor
from seggpt.samples import FIXED_CLASS_NAMES, fixed_class_split
from seggpt.tuning import prompt_miou, tune_prompt, tuning_data

CLASSES = FIXED_CLASS_NAMES
K = len(CLASSES) - 1


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="demo")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--foreground-weight", type=float, default=3.0)
    parser.add_argument("--train", type=int, default=64)
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--held-out", type=int, default=48)
    parser.add_argument("--out", default="benchmarks/results/bench_tuning.json")
    parser.add_argument("--save", help="also write the tuned prompt to this .safetensors file")
    args = parser.parse_args(argv)
    model = load_model(args.checkpoint)
    predictor = SegGPTPredictor(model, device="cpu", dtype="float32", seg_type=SegType.SEMANTIC)
    size = model.config.half_size
    train_images, train_masks = fixed_class_split(size, "train", args.train)
    test_images, test_masks = fixed_class_split(size, "held_out", args.held_out)
    # Baseline: the best single real pair, chosen on the training split only.
    candidates = [i for i in range(args.train) if len(np.unique(train_masks[i])) == len(CLASSES)]
    candidates = candidates[: args.candidates]
    chooser = slice(args.candidates, args.candidates + 24)
    chosen = train_images[chooser], train_masks[chooser]
    picks = {
        i: prompt_miou(predictor, *chosen, K, pair=(train_images[i], train_masks[i]))
        for i in candidates
    }
    best = max(picks, key=picks.get)
    pair = (train_images[best], train_masks[best])
    baseline = prompt_miou(predictor, test_images, test_masks, K, pair=pair)
    t0 = time.time()
    # Tune on the training images outside the chooser part, starting from the best example; the
    # chooser part (which picked that example) picks the best prompt along the way.
    rest = [i for i in range(args.train) if i != best and not chooser.start <= i < chooser.stop]
    order = [best] + rest
    data = tuning_data(model, [train_images[i] for i in order], [train_masks[i] for i in order], K)
    torch.manual_seed(0)
    tuned = tune_prompt(
        model,
        data,
        CLASSES,
        steps=args.steps,
        lr=args.lr,
        batch_size=8,
        init="examples",
        foreground_weight=args.foreground_weight,
        select=lambda prompt: prompt_miou(predictor, *chosen, K, prompts=prompt),
        select_every=25,
    )
    tuning_seconds = time.time() - t0
    tuned_score = prompt_miou(predictor, test_images, test_masks, K, prompts=tuned)
    result = {
        "best_example_miou": baseline,
        "tuned_prompt_miou": tuned_score,
        "gain_points": 100 * (tuned_score - baseline),
        "best_example_index": best,
        "candidates": len(candidates),
        "steps": args.steps,
        "selected_step": tuned.step,
        "lr": args.lr,
        "foreground_weight": args.foreground_weight,
        "tuning_seconds": tuning_seconds,
        "held_out": args.held_out,
    }
    rows = [["best real example", f"{baseline:.3f}"], ["tuned prompt", f"{tuned_score:.3f}"]]
    print(format_table(["prompt", "held-out mIoU"], rows))
    print(
        f"gain: {result['gain_points']:+.1f} mIoU points ({args.steps} steps, "
        f"{tuning_seconds:.0f} s)"
    )
    if args.save:
        print(f"tuned prompt: {tuned.save(args.save)}")
    return finish(result, args.out)


if __name__ == "__main__":
    main()
