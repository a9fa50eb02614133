"""Score video object segmentation results with the DAVIS 2017 semi-supervised J&F.

    python -m tools.eval_vos --results outputs/davis \
        --annotations data/DAVIS/Annotations/480p \
        --imageset data/DAVIS/ImageSets/2017/val.txt --json outputs/davis_jf.json

``--results`` holds one folder per sequence with a PNG per annotated frame, named like the
annotations (what ``python -m tools.vos`` writes). Prints J&F, J and F per sequence and over all
objects (first and last frames excluded, boundary tolerance 0.008 of the diagonal).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from painter.errors import DatasetError, InvalidMaskError
from painter.io import load_mask
from seggpt.evaluation.vos_metrics import SequenceScore, VOSReport, score_sequence
from tools.cli import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seggpt-eval-vos", description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="<results>/<seq>/<frame>.png")
    parser.add_argument(
        "--annotations", type=Path, required=True, help="ground truth <annotations>/<seq>/*.png"
    )
    names = parser.add_mutually_exclusive_group()
    names.add_argument("--sequences", nargs="+", help="sequences to score")
    names.add_argument("--imageset", type=Path, help="a file listing the sequences, one a line")
    parser.add_argument("--json", type=Path, help="write the scores here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def report() -> None:
        result = evaluate_folders(args.results, args.annotations, sequence_names(args))
        print(result.table())
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
            print(f"wrote {args.json}")

    return run_cli(report)


def sequence_names(args: argparse.Namespace) -> list[str]:
    """The sequences to score: given, listed in --imageset, or every folder of --results."""
    if args.sequences:
        return list(args.sequences)
    if args.imageset:
        lines = args.imageset.read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip()]
    if not args.results.is_dir():
        raise DatasetError(f"results folder not found: {args.results}")
    names = sorted(p.name for p in args.results.iterdir() if p.is_dir())
    if not names:
        raise DatasetError(f"{args.results} holds no sequence folders")
    return names


def read_ids(path: Path) -> np.ndarray:
    """A palette or class-index PNG as (H, W) int64 object ids."""
    ids = load_mask(path)
    if ids.ndim != 2:
        raise InvalidMaskError(
            f"{path} is an RGB colour image; save object masks as palette or index PNGs"
        )
    return ids


def evaluate_folders(results: Path, annotations: Path, names: Sequence[str]) -> VOSReport:
    """Score ``names``: every annotated frame needs a result PNG of the same name."""
    scores: list[SequenceScore] = []
    for name in tqdm(names, desc="J&F", unit="sequence", disable=len(names) < 2):
        truth_dir, result_dir = annotations / name, results / name
        if not truth_dir.is_dir():
            raise DatasetError(f"no annotations for {name}: {truth_dir} is missing")
        truth_files = sorted(truth_dir.glob("*.png"))
        if not truth_files:
            raise DatasetError(f"{truth_dir} holds no annotation PNGs")
        missing = [p.name for p in truth_files if not (result_dir / p.name).is_file()]
        if missing:
            raise DatasetError(
                f"{result_dir} lacks {len(missing)} of {len(truth_files)} frames "
                f"(e.g. {', '.join(missing[:3])}); run the segmentation on the whole sequence"
            )
        truth = [read_ids(p) for p in truth_files]
        predicted = [read_ids(result_dir / p.name) for p in truth_files]
        scores.append(score_sequence(predicted, truth, name=name))
    return VOSReport(tuple(scores))


if __name__ == "__main__":
    sys.exit(main())
