"""Score a SegGPT checkpoint on the held-out transfer sets (families it never trained on,
held-out photos, scene-text words), beside the prompt-ignoring baselines.

``python -m tools.eval_heldout --checkpoint demo --check-report`` re-evaluates the bundled demo
model and checks that its ``.report.json`` holds exactly these numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from painter.checkpoint import atomic_write, file_sha256
from painter.errors import CheckpointError
from seggpt import SegGPTPredictor, load_model
from seggpt.evaluation.heldout import (
    EVAL_SETS,
    EvalSetsConfig,
    build_eval_sets,
    format_scores,
    held_out_photo_names,
    score_sets,
)
from seggpt.loading import resolve_source
from tools.cli import add_model_arguments, positive_int, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seggpt-eval-heldout", description=__doc__.split("\n\n")[0]
    )
    add_model_arguments(parser, dtype=False)
    parser.add_argument(
        "--episodes",
        type=positive_int,
        default=None,
        help="per set (default: the report's, else 48)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="episode seed (default: the report's, else 10000)"
    )
    parser.add_argument(
        "--shots", type=positive_int, default=4, help="prompts of the few-shot score"
    )
    parser.add_argument("--sets", nargs="+", choices=EVAL_SETS, default=list(EVAL_SETS))
    parser.add_argument(
        "--check-report",
        action="store_true",
        help="compare with <checkpoint>.report.json (written by training) and fail on a mismatch",
    )
    parser.add_argument("--out", type=Path, help="write the scores here as JSON")
    return parser


def read_report(checkpoint: Path) -> dict:
    """The training report beside ``checkpoint``; CheckpointError when it is missing or was
    written for other weights."""
    path = checkpoint.with_suffix(".report.json")
    if not path.is_file():
        raise CheckpointError(f"no report {path} beside the checkpoint")
    try:
        report = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is not a JSON report: {err}") from None
    expected, actual = report.get("weights_sha256"), file_sha256(checkpoint)
    if expected != actual:
        raise CheckpointError(
            f"{path} was written for another model (weights sha256 {expected}, the checkpoint's "
            f"is {actual}); re-export the model or drop --check-report"
        )
    return report


def compare(scores: dict, report: dict, *, tolerance: float = 1e-6) -> list[str]:
    """Lines naming every number of ``scores`` that differs from ``report``."""
    problems = []
    for name, found in scores.items():
        expected = report.get("sets", {}).get(name)
        if expected is None:
            problems.append(f"{name}: not in the report")
            continue
        pairs = [("one-shot", found.one_shot.miou, expected["miou"])]
        pairs.append(("few-shot", found.few_shot, expected["few_shot"]["miou"]))
        pairs += [
            (b, v, expected["baselines"].get(b, math.nan))
            for b, v in found.one_shot.baselines.items()
        ]
        problems += [
            f"{name} {what}: {got:.6f} vs report {want:.6f}"
            for what, got, want in pairs
            if not abs(got - want) <= tolerance
        ]
    return problems


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:
        path = resolve_source(args.checkpoint)
        report = read_report(path) if args.check_report else {}
        names = list(args.sets)
        if report and "photos" in names and held_out_photo_names() != report.get("held_out_photos"):
            print("photos: other held-out photos are installed here than for the report; skipped")
            names.remove("photos")
        config = EvalSetsConfig(
            num_episodes=args.episodes or report.get("episodes", 48),
            seed=args.seed if args.seed is not None else report.get("eval_seed", 10_000),
            shots=args.shots,
            names=tuple(names),
        )
        predictor = SegGPTPredictor(load_model(path), device=args.device, dtype="float32")
        scores = score_sets(predictor, build_eval_sets(config), shots=args.shots)
        print(format_scores(scores))
        if args.out:
            text = json.dumps({n: s.to_dict() for n, s in scores.items()}, indent=2)
            atomic_write(args.out, lambda tmp: Path(tmp).write_text(text))
        if report:
            problems = compare(scores, report)
            if problems:
                raise CheckpointError("the report does not match: " + "; ".join(problems))
            print("report reproduced exactly")

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
