"""Segment query images from example image/mask pairs with SegGPT.

    python -m tools.infer --prompt-image cat.jpg --prompt-mask cat_mask.png --query photos/ \
        --out outputs/cats
    python -m tools.infer ... --refine              # then refine with the promptable demo model

For each query this writes ``<name>_mask.png`` (class ids as a palette PNG: colour prompts keep
their colours, other masks get the VOC/DAVIS palette), ``<name>_overlay.png`` (the mask over the
image) and ``<name>_painted.png`` (what the model painted), as ``seggpt.outputs`` writes them for
the app too. ``<name>`` is the file's stem; queries that share a stem get their parent folders
prefixed (``a_img``, ``b_img``) so no output is overwritten.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from painter.config import SegType
from painter.errors import InputMismatchError, InvalidImageError
from painter.io import load_image, load_mask
from seggpt.loading import load_model
from seggpt.outputs import display_palette, output_names, write_prediction
from seggpt.predictor import SegGPTPredictor
from seggpt.tuning import TunedPrompt
from tools.cli import add_model_arguments, add_seggpt_arguments, positive_int, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seggpt-infer",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--prompt-image",
        action="append",
        default=[],
        dest="prompt_images",
        metavar="PATH",
        help="example image; repeat for several examples",
    )
    parser.add_argument(
        "--prompt-mask",
        action="append",
        default=[],
        dest="prompt_masks",
        metavar="PATH",
        help="mask of the example image given at the same position (class ids, 0/255 or colours)",
    )
    parser.add_argument(
        "--query",
        action="append",
        required=True,
        dest="queries",
        metavar="PATH",
        help="image to segment, or a folder of them (sorted by name); repeatable",
    )
    parser.add_argument("--out", required=True, type=Path, help="folder for the results")
    parser.add_argument(
        "--tuned-prompt",
        type=Path,
        help="a prompt learned by tools.tune, used instead of --prompt-image/--prompt-mask",
    )
    add_model_arguments(parser)
    parser.add_argument("--variant", help="model variant the checkpoint must match")
    add_seggpt_arguments(parser)
    parser.add_argument(
        "--batch-size", type=positive_int, default=4, help="queries per pass (default 4)"
    )
    parser.add_argument(
        "--refine",
        action="store_true",
        help="refine every mask with the promptable model (box + point per connected component)",
    )
    parser.add_argument(
        "--refine-checkpoint",
        default="demo",
        help="promptable model for --refine: 'demo' (default), a SAM .pth, file or folder",
    )
    parser.add_argument(
        "--refine-min-score",
        type=float,
        default=None,
        help="predicted IoU a refined component needs to replace the original (default: "
        "painter.promptable.refine.DEFAULT_MIN_SCORE, 0.95; 0 replaces all)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: run(args))


def run(args: argparse.Namespace) -> None:
    """Segment every query of ``args`` and write the results into ``args.out``."""
    queries = expand_queries(args.queries)
    names = output_names(queries)
    if bool(args.tuned_prompt) == bool(args.prompt_images or args.prompt_masks):
        raise InputMismatchError(
            "give either --prompt-image/--prompt-mask pairs or --tuned-prompt (exactly one)"
        )
    tuned = TunedPrompt.load(args.tuned_prompt) if args.tuned_prompt else None
    prompt_images = [load_image(path) for path in args.prompt_images]  # fail before the model loads
    prompt_masks = [load_mask(path) for path in args.prompt_masks]
    model = load_model(args.checkpoint, args.variant)
    seg_type = tuned.seg_type if tuned else SegType[args.seg_type.upper()]
    refiner = None
    if args.refine:  # imported here: the promptable package costs ~0.6 s of start-up
        from painter.promptable import PromptablePredictor, build_sam

        refiner = PromptablePredictor(
            build_sam(checkpoint=args.refine_checkpoint), device=args.device, dtype=args.dtype
        )
    predictor = SegGPTPredictor(
        model,
        device=args.device,
        dtype=args.dtype,
        seg_type=seg_type,
        refiner=refiner,
        refine_min_score=args.refine_min_score,
    )
    if tuned is not None:
        tuned.check_model(model)
        prompts = tuned.prepared(predictor.device)
    else:
        prompts = predictor.prepare_prompts(prompt_images, prompt_masks, ensemble=args.ensemble)
    palette = display_palette(prompts.coloring)
    args.out.mkdir(parents=True, exist_ok=True)
    # Batches are written as they finish: memory stays bounded and an interrupted run keeps them.
    with tqdm(total=len(queries), desc="segmenting", unit="image") as bar:
        for start in range(0, len(queries), args.batch_size):
            paths = queries[start : start + args.batch_size]
            images = [load_image(path) for path in paths]
            results = predictor.predict(
                None, None, images, prompts=prompts, batch_size=args.batch_size
            )
            for name, image, result in zip(names[start:], images, results):
                write_prediction(
                    args.out, name, result.mask, palette, image=image, painted=result.painted
                )
            bar.update(len(paths))
    print(f"wrote {3 * len(queries)} files for {len(queries)} queries to {args.out}")


def expand_queries(entries: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders as their image files sorted by name; duplicates dropped."""
    paths: list[Path] = []
    for entry in map(Path, entries):
        if entry.is_dir():
            found = sorted(
                p
                for p in entry.iterdir()
                if p.is_file() and _is_image_name(p) and not p.name.startswith(".")
            )
            if not found:
                raise InvalidImageError(f"query folder {entry} holds no image files")
            paths.extend(found)
        elif entry.is_file():
            paths.append(entry)
        else:
            raise InvalidImageError(f"query {entry}: no such file or folder; check the path")
    seen: set[Path] = set()
    unique = []
    for path in paths:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append(path)
    return unique


def _is_image_name(path: Path) -> bool:
    return Image.registered_extensions().get(path.suffix.lower()) in Image.OPEN


if __name__ == "__main__":
    sys.exit(main())
