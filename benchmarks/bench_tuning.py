"""In-context tuning vs the best real example, on a fixed-class synthetic task.

    python benchmarks/bench_tuning.py [--checkpoint demo] [--steps 300]

Task: three shape/texture categories with one fixed colour each (the "easy" synthetic
categories). The tuned prompt is learned on a training split; the baseline is the single real
training pair whose prompt scores best on the training split itself. Both are scored on held-out
images (another generator seed). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from seggpt.evaluation import IoUAccumulator
from seggpt.loading import load_model
from seggpt.predictor import SegGPTPredictor
from seggpt.samples import FIXED_CLASS_NAMES, fixed_class_split
from seggpt.tuning import tune_prompt, tuning_data

CLASSES = FIXED_CLASS_NAMES


def score(predictor, images, masks, *, prompt_pair=None, prompts=None) -> float:
    acc = IoUAccumulator()
    for image, mask in zip(images, masks):
        if prompts is None:
            [pred] = predictor.predict([prompt_pair[0]], [prompt_pair[1]], [image])
        else:
            [pred] = predictor.predict(None, None, [image], prompts=prompts)
        acc.update(pred.mask, mask, list(range(1, len(CLASSES))))
    return acc.miou


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="demo")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--train", type=int, default=64)
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--held-out", type=int, default=48)
    parser.add_argument("--out", default="benchmarks/results/bench_tuning.json")
    parser.add_argument("--save", help="also write the tuned prompt to this .safetensors file")
    args = parser.parse_args(argv)
    model = load_model(args.checkpoint)
    predictor = SegGPTPredictor(model, device="cpu")
    size = model.config.half_size
    train_images, train_masks = fixed_class_split(size, "train", args.train)
    test_images, test_masks = fixed_class_split(size, "held_out", args.held_out)
    # Baseline: the best single real pair, chosen on the training split only.
    candidates = [i for i in range(args.train) if len(np.unique(train_masks[i])) == len(CLASSES)]
    candidates = candidates[: args.candidates]
    chooser = slice(args.candidates, args.candidates + 24)
    picks = {
        i: score(
            predictor,
            train_images[chooser],
            train_masks[chooser],
            prompt_pair=(train_images[i], train_masks[i]),
        )
        for i in candidates
    }
    best = max(picks, key=picks.get)
    baseline = score(
        predictor, test_images, test_masks, prompt_pair=(train_images[best], train_masks[best])
    )
    t0 = time.time()
    order = [best] + [i for i in range(args.train) if i != best]  # start from the best example
    data = tuning_data(
        model, [train_images[i] for i in order], [train_masks[i] for i in order], len(CLASSES) - 1
    )
    torch.manual_seed(0)
    tuned = tune_prompt(
        model, data, CLASSES, steps=args.steps, lr=0.05, batch_size=8, init="examples"
    )
    tuning_seconds = time.time() - t0
    tuned_score = score(
        predictor, test_images, test_masks, prompts=tuned.prepared(predictor.device)
    )
    result = {
        "best_example_miou": baseline,
        "tuned_prompt_miou": tuned_score,
        "gain_points": 100 * (tuned_score - baseline),
        "best_example_index": best,
        "candidates": len(candidates),
        "steps": args.steps,
        "tuning_seconds": tuning_seconds,
        "held_out": args.held_out,
    }
    print(f"{'prompt':<28}{'held-out mIoU':>14}")
    print(f"{'best real example':<28}{baseline:>14.3f}")
    print(f"{'tuned prompt':<28}{tuned_score:>14.3f}")
    print(
        f"gain: {result['gain_points']:+.1f} mIoU points ({args.steps} steps, "
        f"{tuning_seconds:.0f} s)"
    )
    if args.save:
        print(f"tuned prompt: {tuned.save(args.save)}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
