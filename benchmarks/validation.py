"""What the benchmarks that choose a setting on validation episodes share: one-shot mIoU of a
predictor on every set with their mean, and the table of those rows."""

from __future__ import annotations

import torch
from harness import finish, format_table

from seggpt.evaluation.heldout import validation_sets
from seggpt.evaluation.metrics import evaluate
from seggpt.loading import load_model


def score_sets(predictor, sets: dict) -> dict[str, float]:
    """One-shot mIoU of ``predictor`` on each set of episodes, then their ``mean``."""
    found = {n: evaluate(predictor, eps, shots=1, baselines=False).miou for n, eps in sets.items()}
    found["mean"] = sum(found.values()) / len(found)
    return found


def score_table(rows: list[dict], label: str, header: str, sets: dict) -> str:
    """The rows (each with ``label`` naming it and a score per set and ``mean``) as a table."""
    names = [*sets, "mean"]
    return format_table(
        [header, *names], [[r[label], *(f"{r[n]:.3f}" for n in names)] for r in rows]
    )


def add_validation_arguments(parser, out: str) -> None:
    """``--episodes``, ``--seed`` (the validation sets') and ``--out`` (the JSON file)."""
    parser.add_argument("--episodes", type=int, default=48)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--out", default=out)


def read_validation(args) -> tuple[dict, object]:
    """The validation sets of ``args`` (seeded) and the model of ``args.checkpoint``, eval mode."""
    torch.manual_seed(0)
    sets = validation_sets(args.episodes, seed=args.seed)
    return sets, load_model(args.checkpoint).eval()


def finish_choice(args, rows: list[dict], chosen: dict, keys: tuple[str, ...], **extra) -> dict:
    """Write the JSON of a choice (the run's settings, every row, the chosen row's ``keys``)."""
    result = {
        "checkpoint": str(args.checkpoint),
        "episodes": args.episodes,
        "seed": args.seed,
        "rows": rows,
        "chosen": {k: chosen[k] for k in keys},
        **extra,
    }
    return finish(result, args.out)
