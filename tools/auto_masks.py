"""Segment everything in an image with the promptable (SAM) model and a grid of point prompts.

    python -m tools.auto_masks photo.jpg --checkpoint sam_vit_b_01ec64.pth --out outputs/auto

Writes ``<stem>_classes.png`` (one id per mask, 0 where none; palette PNG, 16-bit beyond 255
masks), ``<stem>_overlay.png`` and ``<stem>_masks.json`` (per mask: its id in the PNG, COCO RLE,
area, bbox x/y/w/h, predicted IoU, stability score, prompt point, crop box).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from painter.checkpoint import atomic_write
from painter.errors import InputMismatchError
from painter.io import default_palette, load_image, overlay, save_image, save_index_mask
from painter.promptable import build_sam, list_sam_models
from painter.promptable.automatic import AutoMaskSettings, AutomaticMaskGenerator, class_map
from painter.promptable.predictor import PromptablePredictor
from tools.cli import add_model_arguments, run_cli

_DEFAULTS = AutoMaskSettings()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sam-auto-masks", description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path, help="the image to segment")
    parser.add_argument("--out", required=True, type=Path, help="folder for the results")
    add_model_arguments(
        parser,
        checkpoint_help="Meta's .pth, a transformers folder or .safetensors",
        checkpoint_default=None,
        dtype=False,
    )
    parser.add_argument(
        "--variant", help=f"model variant ({', '.join(list_sam_models())}); alone: random weights"
    )
    parser.add_argument(
        "--points-per-side", type=int, default=_DEFAULTS.points_per_side, help="grid density"
    )
    parser.add_argument(
        "--points-per-batch", type=int, default=_DEFAULTS.points_per_batch, help="prompts per pass"
    )
    parser.add_argument(
        "--pred-iou-thresh",
        type=float,
        default=_DEFAULTS.pred_iou_thresh,
        help="keep masks whose predicted IoU is above this (default %(default)s)",
    )
    parser.add_argument(
        "--stability-thresh",
        type=float,
        default=_DEFAULTS.stability_score_thresh,
        help="keep masks at least this stable (default %(default)s)",
    )
    parser.add_argument(
        "--nms-thresh", type=float, default=_DEFAULTS.box_nms_thresh, help="box NMS IoU"
    )
    parser.add_argument(
        "--crop-layers", type=int, default=0, help="extra layers of zoomed-in crops (default 0)"
    )
    parser.add_argument(
        "--min-area",
        type=int,
        default=0,
        help="fill holes and drop islands smaller than this many pixels (default 0: off)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: run(args))


def run(args: argparse.Namespace) -> None:
    settings = AutoMaskSettings(  # checked before the model loads
        points_per_side=args.points_per_side,
        points_per_batch=args.points_per_batch,
        pred_iou_thresh=args.pred_iou_thresh,
        stability_score_thresh=args.stability_thresh,
        box_nms_thresh=args.nms_thresh,
        crop_n_layers=args.crop_layers,
        min_mask_region_area=args.min_area,
    )
    if args.checkpoint is None and args.variant is None:
        raise InputMismatchError("give --checkpoint, or --variant sam_tiny for random weights")
    image = load_image(args.image)
    model = build_sam(args.variant, args.checkpoint)
    predictor = PromptablePredictor(model, device=args.device)
    masks = AutomaticMaskGenerator(predictor, settings).generate(image, progress=True)
    classes = class_map(masks, image.shape[:2])
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.image.stem
    palette = default_palette(max(256, len(masks) + 1))
    save_index_mask(args.out / f"{stem}_classes.png", classes, palette=palette[:256])
    save_image(args.out / f"{stem}_overlay.png", overlay(image, classes, palette))
    report = {
        "image": str(args.image),
        "size": list(image.shape[:2]),
        "masks": [{"id": i + 1, **mask.to_json()} for i, mask in enumerate(masks)],
    }
    text = json.dumps(report)
    atomic_write(args.out / f"{stem}_masks.json", lambda tmp: Path(tmp).write_text(text))
    print(f"{len(masks)} masks written to {args.out}")


if __name__ == "__main__":
    sys.exit(main())
