"""Label a whole image set from a few examples: PNG masks, COCO, Label Studio tasks, review.

    python -m tools.label photos/ --example a.jpg a_mask.png --example b.jpg b_mask.png \
        --out labels/
    python -m tools.label list.txt --examples my_examples/ --out labels/ --refine
    python -m tools.label photos/ --tuned-prompt cats.safetensors --out labels/ --resume
    torchrun --nproc_per_node 2 -m tools.label photos/ --examples ex/ --out labels/

``--out`` receives ``masks/<name>_mask.png`` and ``<name>_overlay.png`` per image (the files
``tools.infer`` writes), ``coco.json`` (one RLE annotation per connected component per class,
with scores), ``label_studio_tasks.json`` + ``label_studio_config.xml`` (brush pre-annotations),
``review.html`` and ``review.png`` (least sure first), ``classes.json``, and the manifest a
killed run resumes from (``--resume``).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

from painter.config import SegType
from painter.errors import InputMismatchError
from seggpt.labelling.exports import LOCAL_FILES_PREFIX
from seggpt.labelling.inputs import collect_images, images_root, load_examples, named_classes
from seggpt.labelling.labeller import Labeller
from seggpt.labelling.run import device_for_rank, label_images, merge_outputs
from seggpt.loading import load_model
from seggpt.predictor import SegGPTPredictor
from seggpt.training.distributed import setup_distributed
from seggpt.tuning import TunedPrompt, model_fingerprint
from tools.cli import (
    add_examples_arguments,
    add_model_arguments,
    add_seggpt_arguments,
    non_negative_int,
    positive_int,
    run_cli,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seggpt-label", description=__doc__.splitlines()[0])
    parser.add_argument(
        "images",
        nargs="+",
        metavar="IMAGES",
        help="images to label: files, folders (recursive), text files listing paths, or a "
        "datasets folder made by save_to_disk",
    )
    add_examples_arguments(parser)
    parser.add_argument("--tuned-prompt", type=Path, help="a prompt learned by tools.tune")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--resume", action="store_true", help="finish the run held in --out")
    add_model_arguments(parser)
    parser.add_argument("--variant", help="model variant the checkpoint must match")
    add_seggpt_arguments(parser, what="examples")
    parser.add_argument(
        "--agreement",
        action="store_true",
        help="also score each image by how well each example alone agrees with them all (one "
        "more forward pass per example; ranks errors better)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=4, help="images per pass")
    parser.add_argument(
        "--workers", type=non_negative_int, default=2, help="image-decoding processes (default 2)"
    )
    parser.add_argument(
        "--refine", action="store_true", help="refine masks with the promptable model"
    )
    parser.add_argument("--refine-checkpoint", default="demo", help="promptable model for --refine")
    parser.add_argument(
        "--refine-min-score", type=float, default=None, help="see tools.infer --refine-min-score"
    )
    parser.add_argument(
        "--image-url-prefix",
        default=None,
        help="prefix of each image's path (relative to the images' common folder) in the Label "
        "Studio tasks; default '/data/local-files/?d=<that folder's name>/': Label Studio's "
        "local files with LOCAL_FILES_DOCUMENT_ROOT at its parent and a Local storage on it",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: run(args))


def run(args: argparse.Namespace) -> dict:
    """Label every image of ``args`` (this process's shard under torchrun); rank 0 merges."""
    if bool(args.tuned_prompt) == bool(args.example or args.examples):
        raise InputMismatchError(
            "give examples (--example / --examples) or --tuned-prompt, not both"
        )
    refs = collect_images(args.images)
    tuned = TunedPrompt.load(args.tuned_prompt) if args.tuned_prompt else None
    examples = None if tuned else load_examples(args.example, args.examples)
    given = dict(enumerate(tuned.class_names)) if tuned else examples.class_names
    names = named_classes(given, args.class_names)
    model = load_model(args.checkpoint, args.variant)
    env = setup_distributed(_torch_device(args.device))
    predictor = SegGPTPredictor(
        model,
        device=device_for_rank(args.device, env.local_rank) if env.world_size > 1 else args.device,
        dtype=args.dtype,
        seg_type=tuned.seg_type if tuned else SegType[args.seg_type.upper()],
        refiner=_refiner(args) if args.refine else None,
        refine_min_score=args.refine_min_score,
    )
    if tuned is not None:
        tuned.check_model(model)
        labeller = Labeller(predictor, tuned.prepared(predictor.device), names)
    else:
        labeller = Labeller.from_examples(
            predictor,
            examples.images,
            examples.masks,
            class_names=names,
            ensemble=args.ensemble,
            agreement=args.agreement,
        )
    fingerprint = {
        "model": model_fingerprint(model),
        "examples": _file_digest(args.tuned_prompt) if tuned else examples.digest(),
        "classes": labeller.class_names,
        "images": hashlib.sha256("\n".join(r.key for r in refs).encode()).hexdigest(),
        "options": {
            k: str(getattr(args, k))
            for k in (
                "ensemble",
                "seg_type",
                "refine",
                "refine_checkpoint",
                "refine_min_score",
                "batch_size",
                "agreement",
            )
        },
    }
    summary = label_images(
        refs,
        args.out,
        labeller,
        fingerprint=fingerprint,
        resume=args.resume,
        batch_size=args.batch_size,
        num_workers=args.workers,
        rank=env.rank,
        world_size=env.world_size,
        progress=not args.quiet,
    )
    report = {"labelled_now": summary.labelled, "images_per_second": summary.images_per_second}
    if env.is_main:
        prefix = args.image_url_prefix
        if prefix is None:
            prefix = f"{LOCAL_FILES_PREFIX}{images_root(refs).name}/"
        report.update(merge_outputs(refs, args.out, labeller.class_names, image_url_prefix=prefix))
        print(
            f"labelled {report['labelled']} of {len(refs)} images into {args.out} "
            f"({summary.images_per_second:.2f} images/s here); {len(report['failed'])} could "
            f"not be read" + "".join(f"\n  skipped {n}: {e}" for n, e in report["failed"])
        )
    return report


def _refiner(args: argparse.Namespace):
    from painter.promptable import PromptablePredictor, build_sam

    return PromptablePredictor(
        build_sam(checkpoint=args.refine_checkpoint), device=args.device, dtype=args.dtype
    )


def _torch_device(device: str | None):
    from painter.devices import resolve_device

    return resolve_device(device)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


if __name__ == "__main__":
    sys.exit(main())
