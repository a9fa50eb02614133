"""Few-shot segmentation benchmarks: PASCAL-5i, COCO-20i, FSS-1000, or your own folder.

    python -m tools.eval_fewshot --benchmark pascal --root data/VOC2012 --shots 1 \
        --checkpoint BAAI/seggpt-vit-large --out results/pascal_1shot.json

Prints mIoU and FB-IoU per fold and their mean (HSNet's protocol: IoU pooled per class over all
episodes, 1000 episodes per fold, seed 0) and writes them as JSON. The JSON is rewritten after
every fold; ``--resume`` keeps the folds an earlier run with the same settings finished. Dataset
layouts are described in ``data_mixtures/sources/fewshot_benchmarks.py``; ``--benchmark folder``
takes an ``images/`` + ``masks/`` folder of class-index PNGs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from data_mixtures.fewshot_folds import FewShotFold
from data_mixtures.sources.fewshot_benchmarks import (
    NUM_FOLDS,
    coco20i_fold,
    folder_fold,
    fss1000_fold,
    pascal5i_fold,
)
from painter.config import SegType
from seggpt.ensemble import EnsembleMode
from seggpt.evaluation.fewshot import FewShotReport, FoldResult, evaluate_fold
from seggpt.loading import load_model
from seggpt.predictor import SegGPTPredictor
from tools.cli import add_model_arguments, positive_int, run_cli

BENCHMARKS = {"pascal": "pascal-5i", "coco": "coco-20i", "fss": "fss-1000", "folder": "folder"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seggpt-eval-fewshot", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--benchmark", choices=sorted(BENCHMARKS), required=True)
    parser.add_argument("--root", type=Path, required=True, help="the dataset folder")
    parser.add_argument(
        "--folds",
        type=int,
        nargs="+",
        choices=range(NUM_FOLDS),
        default=list(range(NUM_FOLDS)),
        help="PASCAL/COCO folds to run (default all four); FSS and folders have one",
    )
    parser.add_argument("--shots", type=positive_int, default=1, help="supports per episode")
    parser.add_argument(
        "--episodes",
        type=positive_int,
        help="episodes per fold (default: 1000; FSS-1000: every test image once)",
    )
    parser.add_argument("--seed", type=int, default=0, help="episode seed (default 0)")
    parser.add_argument(
        "--ensemble",
        choices=[mode.value for mode in EnsembleMode],
        default="feature",
        help="how k supports are combined (default %(default)s)",
    )
    add_model_arguments(parser, dtype_note="float32 gives the same scores on every machine")
    parser.add_argument("--variant", help="model variant the checkpoint must match")
    parser.add_argument(
        "--seg-type",
        choices=[t.name.lower() for t in SegType],
        default="instance",
        help="SegGPT's type token (default %(default)s)",
    )
    parser.add_argument("--out", type=Path, help="JSON file for the results")
    parser.add_argument(
        "--resume", action="store_true", help="keep folds already in --out with the same settings"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def report() -> None:
        print(run(args).table())
        if args.out:
            print(f"wrote {args.out}")

    return run_cli(report)


def build_folds(args: argparse.Namespace) -> list[FewShotFold]:
    """The folds ``args`` asks for, with the protocol's episode counts unless overridden."""
    episodes = {} if args.episodes is None else {"num_episodes": args.episodes}
    if args.benchmark == "pascal":
        return [pascal5i_fold(args.root, f, seed=args.seed, **episodes) for f in args.folds]
    if args.benchmark == "coco":
        return [coco20i_fold(args.root, f, seed=args.seed, **episodes) for f in args.folds]
    if args.benchmark == "fss":
        return [fss1000_fold(args.root, seed=args.seed, **episodes)]
    return [folder_fold(args.root, seed=args.seed, **episodes)]


def run(args: argparse.Namespace) -> FewShotReport:
    """Evaluate every fold, saving the JSON after each; returns the report."""
    folds = build_folds(args)  # dataset errors surface before the model loads
    settings = {
        "benchmark": BENCHMARKS[args.benchmark] if args.benchmark != "folder" else folds[0].name,
        "root": str(args.root),
        "shots": args.shots,
        "ensemble": args.ensemble,
        "seed": args.seed,
        "episodes": args.episodes,
        "checkpoint": str(args.checkpoint),
        "seg_type": args.seg_type,
    }
    done = _finished_folds(args.out, settings) if args.resume and args.out else {}
    predictor = None
    results: list[FoldResult] = []
    for fold in folds:
        if fold.name in done:
            print(f"{fold.name}: kept from {args.out}")
            results.append(done[fold.name])
            continue
        if predictor is None:
            predictor = SegGPTPredictor(
                load_model(args.checkpoint, args.variant),
                device=args.device,
                dtype=args.dtype,
                seg_type=SegType[args.seg_type.upper()],
            )
        results.append(
            evaluate_fold(
                predictor,
                fold,
                shots=args.shots,
                ensemble=args.ensemble,
                progress=not args.no_progress,
            )
        )
        report = FewShotReport(settings["benchmark"], args.shots, args.ensemble, tuple(results))
        if args.out:
            _write_json(args.out, {"settings": settings, **report.to_dict()})
    return FewShotReport(settings["benchmark"], args.shots, args.ensemble, tuple(results))


def _finished_folds(path: Path, settings: dict) -> dict[str, FoldResult]:
    if not path.is_file():
        return {}
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if previous.get("settings") != settings:
        print(f"{path} holds a run with other settings; starting afresh")
        return {}
    return {fold["name"]: FoldResult.from_dict(fold) for fold in previous.get("folds", [])}


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


if __name__ == "__main__":
    sys.exit(main())
