"""Train a SegGPT/Painter model: ``python -m tools.train --config configs/demo_seggpt_stage1.yaml``.

Multi-process: ``torchrun --nproc_per_node 2 -m tools.train --config ...`` (DDP by default,
``parallel=fsdp`` for large models).
"""

from __future__ import annotations

import argparse
import logging
import sys

from painter.errors import PainterError
from seggpt.training.config import load_train_config
from seggpt.training.trainer import Trainer
from tools.cli import add_device_argument, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seggpt-train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML/JSON training config (defaults if omitted)")
    parser.add_argument("--out", required=True, help="run folder (logs, checkpoints, config)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        help="continue from a checkpoint (default: the run folder's latest)",
    )
    parser.add_argument("--export", help="write the final model here (native .safetensors)")
    add_device_argument(parser)
    parser.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="stop after this many steps (the run stays resumable)",
    )
    parser.add_argument("overrides", nargs="*", help="config overrides: key=value, data.key=value")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: run(args), log_level=logging.INFO)


def run(args: argparse.Namespace) -> None:
    config = load_train_config(args.config, args.overrides)
    trainer = Trainer(config, args.out, device=args.device)
    if args.resume:
        path = trainer.latest_checkpoint() if args.resume == "latest" else args.resume
        if path is None:
            raise PainterError(f"--resume: no checkpoint in {args.out}")
        trainer.resume(path)
    result = trainer.fit(stop_after=args.stop_after)
    if result.eval is not None:
        print(
            f"step {result.step}: eval mIoU {result.eval.miou:.3f} "
            f"baselines {result.eval.baselines}"
        )
    if args.export and result.step == config.steps:
        report = trainer.export(args.export)
        if report is not None:
            print(f"exported {args.export}")
            for name, scores in report["sets"].items():
                print(
                    f"  {name}: one-shot mIoU {scores['miou']:.3f}, "
                    f"{scores['few_shot']['shots']}-shot {scores['few_shot']['miou']:.3f}, "
                    f"baselines {scores['baselines']}"
                )


if __name__ == "__main__":
    sys.exit(main())
