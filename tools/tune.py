"""In-context tuning: learn a prompt for a fixed class set with the model frozen.

    python -m tools.tune --checkpoint demo --data my_dataset/ --out prompt.safetensors --steps 300

``--data`` is a semantic folder dataset (images/ + masks/ class-index PNGs + optional
classes.txt, see data_mixtures.sources.folder). Use the result with
``python -m tools.infer --tuned-prompt prompt.safetensors --query ...``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from data_mixtures.sources.folder import SemanticFolderSource
from seggpt.loading import load_model
from seggpt.predictor import SegGPTPredictor, resolve_device
from seggpt.tuning import TunedPrompt, prompt_miou, tune_prompt, tuning_data
from tools.cli import add_model_arguments, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seggpt-tune", description=__doc__.splitlines()[0])
    add_model_arguments(parser, checkpoint_help="model to tune for (frozen)", dtype=False)
    parser.add_argument("--data", required=True, type=Path, help="semantic folder dataset")
    parser.add_argument("--out", required=True, type=Path, help="tuned prompt (.safetensors)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.02, help="peak Adam step (cosine decay)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--foreground-weight",
        type=float,
        default=3.0,
        help="loss weight of coloured pixels (use the model's training value; the demo's is 3)",
    )
    parser.add_argument(
        "--select-fraction",
        type=float,
        default=0.25,
        help="part of --data held aside to keep the prompt with the best mIoU (0: keep the last)",
    )
    parser.add_argument("--select-every", type=int, default=25)
    parser.add_argument("--init", choices=("examples", "noise"), default="examples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue the prompt in --out")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:
        source = SemanticFolderSource(args.data)
        records = [r for r in (source.get(i) for i in range(len(source))) if r is not None]
        num_classes = max(int(r.semantic.max()) for r in records)
        names = source.class_names or tuple(
            ["background"] + [f"class_{i}" for i in range(1, num_classes + 1)]
        )
        model = load_model(args.checkpoint).to(resolve_device(args.device))
        images, masks = [r.image for r in records], [r.semantic for r in records]
        held = int(round(len(records) * args.select_fraction)) if len(records) >= 5 else 0
        select = None
        if held:
            predictor = SegGPTPredictor(model, device=args.device, dtype="float32")
            aside = images[-held:], masks[-held:]
            images, masks = images[:-held], masks[:-held]

            def select(tuned: TunedPrompt) -> float:
                return prompt_miou(predictor, *aside, num_classes, prompts=tuned)

        data = tuning_data(model, images, masks, num_classes)
        resume = TunedPrompt.load(args.out) if args.resume else None
        tuned = tune_prompt(
            model,
            data,
            names[: num_classes + 1],
            steps=args.steps,
            lr=args.lr,
            batch_size=args.batch_size,
            init=args.init,
            seed=args.seed,
            foreground_weight=args.foreground_weight,
            select=select,
            select_every=args.select_every,
            resume=resume,
        )
        tuned.save(args.out)
        print(f"wrote {args.out} ({tuned.step} steps, {num_classes} classes)")

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
