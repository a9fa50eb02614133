"""Adapt a promptable model to a new image domain without masks (WeSAM-style LoRA self-training).

    python -m tools.adapt --checkpoint demo --images shifted/ --boxes shifted/boxes.json \
        --out outputs/adapted --steps 200 --rank 4
    python -m tools.adapt --checkpoint demo --synthetic-shift 64 --out outputs/adapted

``--boxes`` is JSON mapping each image's file name to its weak labels, a list of
``[x0, y0, x1, y1]`` boxes (one per object) in image pixels; images must be square at the model's
input size. ``--synthetic-shift N`` adapts instead to N held-out synthetic images under the
bundled domain shift (colour shift, blur, noise) with their true boxes as the weak labels.
Writes ``<out>/lora.safetensors`` (the updates alone), ``<out>/adapted.safetensors`` (merged
into the base, loadable by ``build_sam``) and ``<out>/losses.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from painter.errors import DatasetError
from painter.io import load_image
from painter.promptable import build_sam
from painter.promptable.adapt import merge_lora
from painter.promptable.checkpoint import save_sam
from seggpt.training.promptable_domain import (
    adapt_with_boxes,
    lora_parameter_count,
    save_lora,
    shifted_objects,
)
from tools.cli import add_model_arguments, positive_int, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sam-adapt", description=__doc__.splitlines()[0])
    add_model_arguments(parser, checkpoint_help="'demo', a SAM .pth, folder, file", dtype=False)
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--images", type=Path, help="folder of images of the new domain")
    data.add_argument("--synthetic-shift", type=positive_int, metavar="N")
    parser.add_argument("--boxes", type=Path, help="JSON: image file name -> list of boxes")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=positive_int, default=200)
    parser.add_argument("--rank", type=positive_int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--box-weight",
        type=float,
        default=10.0,
        help="weight of the box-filling loss (the boxes supervise too); 0: WeSAM's loss only",
    )
    parser.add_argument(
        "--strong-noise",
        type=float,
        default=0.0,
        help="largest pixel-noise std in the strong view (0..255); 0 (default): none, as WeSAM",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: run(args))


def folder_data(folder: Path, boxes_file: Path | None) -> tuple[list, list]:
    if boxes_file is None:
        raise DatasetError("--images needs --boxes, the weak labels (one box per object)")
    try:
        table = json.loads(boxes_file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DatasetError(f"cannot read the boxes file {boxes_file}: {err}") from None
    images, boxes = [], []
    for name, rows in sorted(table.items()):
        if not (folder / name).is_file():
            raise DatasetError(f"{boxes_file} names {name}, which is not in {folder}")
        images.append(load_image(folder / name))
        boxes.append(np.asarray(rows, dtype=np.float32).reshape(-1, 4))
    if not images:
        raise DatasetError(f"{boxes_file} lists no image")
    return images, boxes


def run(args: argparse.Namespace) -> None:
    if args.images is not None:
        images, boxes = folder_data(args.images, args.boxes)  # input errors before the model
    model = build_sam(checkpoint=args.checkpoint)
    if args.synthetic_shift is not None:
        samples = shifted_objects(model.config.image_size, "adapt", args.synthetic_shift)
        images, boxes = [s.image for s in samples], [s.boxes for s in samples]
    adapter, losses = adapt_with_boxes(
        model,
        images,
        boxes,
        steps=args.steps,
        rank=args.rank,
        lr=args.lr,
        seed=args.seed,
        box_weight=args.box_weight,
        strong_noise=args.strong_noise,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    trained = lora_parameter_count(adapter.model)
    save_lora(adapter.model, args.out / "lora.safetensors")
    save_sam(merge_lora(adapter.model), args.out / "adapted.safetensors")
    (args.out / "losses.json").write_text(json.dumps({"losses": losses, "trained": trained}))
    print(
        f"adapted on {len(images)} images for {args.steps} steps ({trained} LoRA parameters); "
        f"loss {np.mean(losses[:10]):.3f} -> {np.mean(losses[-10:]):.3f}; wrote {args.out}"
    )


if __name__ == "__main__":
    sys.exit(main())
