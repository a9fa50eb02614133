"""Does refining SegGPT's in-context masks with the promptable model raise mIoU?

    python benchmarks/bench_refine.py [--seggpt demo] [--promptable demo] [--episodes 96] \
        [--min-score 0.8] [--sweep 0,0.5,0.7,0.9] [--seed 20000]

Held-out one-shot episodes (``--set``: same-look episodes of the shape/texture/background
families no demo model trained on, by default; or any set of ``seggpt.evaluation.heldout``):
SegGPT's mask, then the same mask refined (every connected component prompted with its box and
an interior point), once replacing every component and once only where the decoder's predicted
IoU reaches ``--min-score``. Prints pooled mIoU of all three and writes JSON; reported either way.
``--sweep`` also scores other gates, ``--seed`` draws other episodes of the same families: choose
a gate on one seed, report it on another.
"""

from __future__ import annotations

import argparse
import time

from harness import finish, format_table

from painter.promptable import PromptablePredictor, build_sam, refine_mask
from painter.promptable.refine import DEFAULT_MIN_SCORE
from seggpt.evaluation.heldout import EVAL_SETS, EvalSetsConfig, build_eval_sets
from seggpt.evaluation.metrics import IoUAccumulator, episode_classes
from seggpt.loading import load_model
from seggpt.predictor import SegGPTPredictor


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seggpt", default="demo")
    parser.add_argument("--promptable", default="demo")
    parser.add_argument("--episodes", type=int, default=96)
    parser.add_argument("--set", choices=EVAL_SETS, default="same-look", help="held-out set")
    parser.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE)
    parser.add_argument("--sweep", default="", help="more gates to score, comma-separated")
    parser.add_argument("--seed", type=int, default=EvalSetsConfig.seed, help="episode seed")
    parser.add_argument("--out", default="benchmarks/results/bench_refine.json")
    args = parser.parse_args(argv)
    seggpt = SegGPTPredictor(load_model(args.seggpt), device="cpu", dtype="float32")
    promptable = PromptablePredictor(
        build_sam(checkpoint=args.promptable), device="cpu", dtype="float32"
    )
    sweep = {float(g): IoUAccumulator() for g in args.sweep.split(",") if g.strip()}
    sets = EvalSetsConfig(num_episodes=args.episodes, seed=args.seed, shots=1, names=(args.set,))
    episodes = build_eval_sets(sets)[args.set]
    plain, ungated, refined = IoUAccumulator(), IoUAccumulator(), IoUAccumulator()
    seconds = 0.0
    for ep in episodes:
        [result] = seggpt.predict(ep.prompt_images, ep.prompt_masks, [ep.query_image])
        classes = episode_classes(ep)
        plain.update(result.mask, ep.query_mask, classes)
        ungated.update(
            refine_mask(promptable, ep.query_image, result.mask, min_score=0.0),
            ep.query_mask,
            classes,
        )
        t0 = time.perf_counter()
        better = refine_mask(promptable, ep.query_image, result.mask, min_score=args.min_score)
        seconds += time.perf_counter() - t0
        refined.update(better, ep.query_mask, classes)
        for gate, scores in sweep.items():
            gated = refine_mask(promptable, ep.query_image, result.mask, min_score=gate)
            scores.update(gated, ep.query_mask, classes)
    out = {
        "set": args.set,
        "episodes": len(episodes),
        "seed": args.seed,
        "seggpt_miou": plain.miou,
        "min_score": args.min_score,
        "refined_every_component_miou": ungated.miou,
        "refined_miou": refined.miou,
        "gain_points": 100 * (refined.miou - plain.miou),
        "seggpt_fb_iou": plain.fb_iou,
        "refined_fb_iou": refined.fb_iou,
        "refine_ms_per_image": 1000 * seconds / max(len(episodes), 1),
        "sweep": {str(gate): scores.miou for gate, scores in sweep.items()},
    }
    rows = [
        [name, f"{scores.miou:.3f}", f"{scores.fb_iou:.3f}"]
        for name, scores in (
            ("SegGPT (in-context)", plain),
            ("+ refine, every comp.", ungated),
            ("+ refine, score gate", refined),
            *((f"  gate {gate:g}", scores) for gate, scores in sweep.items()),
        )
    ]
    print(format_table(["", "mIoU", "FB-IoU"], rows))
    print(
        f"gain (gated) {out['gain_points']:+.1f} mIoU points; "
        f"{out['refine_ms_per_image']:.0f} ms/image"
    )
    return finish(out, args.out)


if __name__ == "__main__":
    main()
