"""Train the promptable (SAM-style) model with simulated interactive prompting.

    python -m tools.train_promptable --config configs/demo_promptable.yaml --out runs/sam_demo \
        --export painter/promptable/weights/demo_promptable.safetensors [steps=200 ...]

Writes ``<out>/metrics.csv``, ``<out>/report.json`` (held-out one-point and box mIoU) and, with
``--export``, the model as safetensors with its config (and the report beside it).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from painter.checkpoint import atomic_write
from painter.promptable.checkpoint import save_sam
from seggpt.training.config import read_config_mapping
from seggpt.training.promptable import PromptableTrainConfig, train_promptable
from tools.cli import add_device_argument, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sam-train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML/JSON training config (defaults if omitted)")
    parser.add_argument("--out", required=True, type=Path, help="run folder")
    parser.add_argument("--export", type=Path, help="write the trained model here (.safetensors)")
    add_device_argument(parser, default="cpu")
    parser.add_argument("overrides", nargs="*", help="config overrides: key=value")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: run(args), log_level=logging.INFO)


def run(args: argparse.Namespace) -> None:
    config = PromptableTrainConfig.from_dict(read_config_mapping(args.config, args.overrides))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "config.json").write_text(json.dumps(vars(config), indent=2))
    model, report = train_promptable(config, args.out, device=args.device)
    for key, what in (("held_out", "held-out"), ("held_out_families", "held-out families")):
        held = report[key]
        print(
            f"{what}: one point mIoU {held['one_point_miou']:.3f}, box mIoU "
            f"{held['box_miou']:.3f} over {held['objects']} objects"
        )
    if args.export:
        save_sam(model.cpu(), args.export)
        report_path = args.export.with_suffix(".report.json")
        atomic_write(report_path, lambda tmp: shutil.copyfile(args.out / "report.json", tmp))
        print(f"model: {args.export}; report: {report_path}")


if __name__ == "__main__":
    sys.exit(main())
