"""Segment one object of an image from points and/or a box with the promptable (SAM) model.

    python -m tools.promptable photo.jpg --point 310,220 --point 120,80,0 \
        --checkpoint sam_vit_b_01ec64.pth --out outputs/sam

All prompts describe one object. Writes ``<stem>_mask.png`` (the best candidate, 0/1 palette
PNG), ``<stem>_mask_<k>.png`` per candidate, ``<stem>_overlay.png`` and ``<stem>_scores.json``
(predicted IoU per candidate, the best index and the prompts).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from painter.checkpoint import atomic_write
from painter.errors import InputMismatchError
from painter.io import default_palette, load_image, overlay, save_image, save_index_mask
from painter.promptable import build_sam, list_sam_models
from painter.promptable.predictor import PromptablePredictor
from tools.cli import add_model_arguments, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sam-predict", description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path, help="the image to segment")
    parser.add_argument(
        "--point",
        action="append",
        default=[],
        dest="points",
        metavar="X,Y[,LABEL]",
        help="a point in image pixels; label 1 (default) = object, 0 = not object; repeatable",
    )
    parser.add_argument("--box", metavar="X0,Y0,X1,Y1", help="a box around the object (one)")
    add_model_arguments(
        parser,
        checkpoint_help="Meta's sam_vit_*.pth, a transformers SamModel folder or a save_sam "
        ".safetensors",
        checkpoint_default=None,
    )
    parser.add_argument(
        "--variant",
        help=f"model variant ({', '.join(list_sam_models())}); alone it builds random weights "
        "(sam_tiny for a quick try), with --checkpoint the file must match it",
    )
    parser.add_argument(
        "--single-mask",
        action="store_true",
        help="one mask instead of three candidates (better for several points or a box)",
    )
    parser.add_argument("--out", required=True, type=Path, help="folder for the results")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: run(args))


def parse_numbers(text: str, counts: tuple[int, ...], what: str) -> list[float]:
    """'1,2' -> [1.0, 2.0]; InputMismatchError unless there are ``counts`` numbers."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in counts:
        shape = {"point": "X,Y or X,Y,LABEL", "box": "X0,Y0,X1,Y1"}[what]
        raise InputMismatchError(f"--{what} {text!r} is not {shape} (numbers separated by commas)")
    return values


def run(args: argparse.Namespace) -> None:
    if args.checkpoint is None and args.variant is None:
        raise InputMismatchError("give --checkpoint, or --variant sam_tiny for random weights")
    if not args.points and args.box is None:
        raise InputMismatchError("give at least one --point X,Y[,LABEL] or a --box X0,Y0,X1,Y1")
    parsed = [parse_numbers(text, (2, 3), "point") for text in args.points]
    points = np.array([p[:2] for p in parsed], dtype=np.float32).reshape(-1, 2)
    labels = np.array([p[2] if len(p) == 3 else 1 for p in parsed])
    box = parse_numbers(args.box, (4,), "box") if args.box is not None else None
    image = load_image(args.image)  # fail on a bad image before the model loads
    model = build_sam(args.variant, args.checkpoint)
    predictor = PromptablePredictor(model, device=args.device, dtype=args.dtype)
    predictor.set_image(image)
    result = predictor.predict(
        points=points if len(points) else None,
        labels=labels if len(points) else None,
        box=box,
        multimask=not args.single_mask,
    )
    masks, scores = result.masks[0], result.scores[0]  # (K, H, W), (K,)
    best = int(np.argmax(scores))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.image.stem
    palette = default_palette(2)
    save_index_mask(args.out / f"{stem}_mask.png", masks[best].astype(np.uint8), palette=palette)
    for k, mask in enumerate(masks):
        save_index_mask(args.out / f"{stem}_mask_{k}.png", mask.astype(np.uint8), palette=palette)
    save_image(
        args.out / f"{stem}_overlay.png", overlay(image, masks[best].astype(np.int64), palette)
    )
    report = {
        "image": str(args.image),
        "scores": [float(s) for s in scores],
        "best": best,
        "points": points.tolist(),
        "labels": labels.astype(int).tolist(),
        "box": box,
        "foreground_pixels": [int(m.sum()) for m in masks],
    }
    text = json.dumps(report, indent=2)
    atomic_write(args.out / f"{stem}_scores.json", lambda tmp: Path(tmp).write_text(text))
    print(f"best mask {best} (predicted IoU {scores[best]:.3f}) written to {args.out}")


if __name__ == "__main__":
    sys.exit(main())
