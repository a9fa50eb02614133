"""How far does the promptable model carry beyond the generator it was trained on?

    python benchmarks/bench_promptable_heldout.py [--checkpoint demo] [--objects 48]

One centre click (best of the multimask candidates) and the exact box per object, mean IoU, on
three sets of images at the model's input size: its own held-out synthetic images (the training
generator with another seed, what its report is measured on), open-set images of the training
shape/texture families, and open-set images of the held-out families (shapes, textures and
backgrounds it never saw). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse

import torch
from harness import finish, format_table

from painter.promptable import build_sam
from seggpt.training.promptable import evaluate_prompts
from seggpt.training.promptable_data import (
    DEMO_SPACING,
    demo_sources,
    object_samples,
    openset_sources,
)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="demo", help="promptable model to score")
    parser.add_argument("--objects", type=int, default=48, help="images per set")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/promptable_heldout.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = build_sam(checkpoint=args.checkpoint)
    side = model.config.image_size
    _, _, own = demo_sources(side, 0, DEMO_SPACING)
    training, held_out = openset_sources(args.seed, held_out_seed=args.seed)
    sets = {
        "own held-out (training generator, other seed)": own,
        "open-set, training families": training,
        "open-set, held-out families": held_out,
    }
    scores = {
        name: evaluate_prompts(model, object_samples(source, args.objects, side, min_pixels=64))
        for name, source in sets.items()
    }
    rows = [
        [name, f"{s['one_point_miou']:.3f}", f"{s['box_miou']:.3f}", s["objects"]]
        for name, s in scores.items()
    ]
    print(format_table(["set", "1 click", "box", "objects"], rows))
    return finish({**vars(args), "scores": scores}, args.out)


if __name__ == "__main__":
    main()
