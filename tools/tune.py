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
from seggpt.predictor import resolve_device
from seggpt.tuning import TunedPrompt, tune_prompt, tuning_data
from tools.cli import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seggpt-tune", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="demo", help="model to tune for (frozen)")
    parser.add_argument("--data", required=True, type=Path, help="semantic folder dataset")
    parser.add_argument("--out", required=True, type=Path, help="tuned prompt (.safetensors)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--init", choices=("examples", "noise"), default="examples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
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
        data = tuning_data(
            model, [r.image for r in records], [r.semantic for r in records], num_classes
        )
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
            resume=resume,
        )
        tuned.save(args.out)
        print(f"wrote {args.out} ({tuned.step} steps, {num_classes} classes)")

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
