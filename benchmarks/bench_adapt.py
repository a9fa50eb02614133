"""Label-free adaptation (WeSAM-style LoRA self-training) of the promptable demo model to a
shifted domain, with box weak labels.

    python benchmarks/bench_adapt.py [--checkpoint demo] [--steps 400] [--lr 1e-3] [--rank 4]
    python benchmarks/bench_adapt.py --box-weight 0                     # plain WeSAM

Domain: held-out synthetic images (never trained on) under the bundled shift (colour shift, blur,
noise). Adaptation sees N shifted images and their boxes only; scoring uses another N shifted
images and their true masks: box mIoU and one-point mIoU before and after. Prints a table and
writes JSON.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from harness import finish, format_table

from painter.promptable import build_sam
from seggpt.training.promptable import evaluate_prompts
from seggpt.training.promptable_data import ObjectSample
from seggpt.training.promptable_domain import (
    adapt_with_boxes,
    lora_parameter_count,
    shifted_objects,
)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="demo")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--box-weight", type=float, default=10.0, help="0: WeSAM's loss only")
    parser.add_argument("--strong-noise", type=float, default=0.0, help="0: no noise")
    parser.add_argument("--seed", type=int, default=0, help="adaptation sampling seed")
    parser.add_argument("--out", default="benchmarks/results/bench_adapt.json")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = build_sam(checkpoint=args.checkpoint)
    side = model.config.image_size
    adapt_set = shifted_objects(side, "adapt", args.images)
    test_set = [ObjectSample(s.image, s.masks) for s in shifted_objects(side, "test", args.images)]
    before = evaluate_prompts(model, test_set)
    t0 = time.time()
    adapter, losses = adapt_with_boxes(
        copy.deepcopy(model),
        [s.image for s in adapt_set],
        [s.boxes for s in adapt_set],
        steps=args.steps,
        rank=args.rank,
        lr=args.lr,
        seed=args.seed,
        box_weight=args.box_weight,
        strong_noise=args.strong_noise,
    )
    seconds = time.time() - t0
    adapter.model.eval()
    after = evaluate_prompts(adapter.model, test_set)
    result = {
        "before": before,
        "after": after,
        "box_gain_points": 100 * (after["box_miou"] - before["box_miou"]),
        "point_gain_points": 100 * (after["one_point_miou"] - before["one_point_miou"]),
        "trained_parameters": lora_parameter_count(adapter.model),
        "total_parameters": sum(p.numel() for p in model.parameters()),
        "steps": args.steps,
        "rank": args.rank,
        "lr": args.lr,
        "box_weight": args.box_weight,
        "strong_noise": args.strong_noise,
        "seed": args.seed,
        "adapt_seconds": seconds,
        "first_losses": losses[:10],
        "last_losses": losses[-10:],
    }
    rows = [
        [name, f"{scores['box_miou']:.3f}", f"{scores['one_point_miou']:.3f}"]
        for name, scores in (("unadapted", before), ("adapted (LoRA)", after))
    ]
    print(format_table(["shifted held-out", "box mIoU", "1-point mIoU"], rows))
    print(
        f"gain: box {result['box_gain_points']:+.1f} points, point "
        f"{result['point_gain_points']:+.1f} points; {result['trained_parameters']} trained "
        f"parameters of {result['total_parameters']}; {seconds:.0f} s"
    )
    return finish(result, args.out)


if __name__ == "__main__":
    main()
