"""Choose a match model's decoder gate (slope, threshold) and match temperature on validation
episodes.

    python benchmarks/bench_match_gate.py --checkpoint runs/demo_stage3/checkpoint_0001000.pt
    python benchmarks/bench_match_gate.py --checkpoint demo --grid 40:0.9,80:0.95 --episodes 16

The gate (``match_gate``, :class:`painter.matching.MatchHead`) lets the decoder's own painting
through only where the share of a cell's propagation that went to visible prompt cells, rather
than to the none-of-the-above sink, is above about the threshold. A model with a sink and no gate
is read with each gate of the grid (its weights unchanged); one with a gate has it replaced. Two
reference rows: the model as it is, and the gate shut (the match head's direct term alone).
Then the best slope is read with every threshold and the match head's learned temperature
(``log_scale``, fitted before the gate existed) times each of ``--temperatures``: a sharper
softmax sends each cell's weight more decisively to its matches or to the sink, which is what
the gate reads.

Scored one-shot on :func:`seggpt.evaluation.heldout.validation_sets`: same-look episodes of the
*training* families and two views of *training* photos, another seed than training draws. The
chosen gate is the best mean of the two; the held-out sets are not read here. Prints a table,
writes JSON. About 4.5 s per row at 48 episodes on 2 cores (56 rows by default: 254 s).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import torch
from validation import (
    add_validation_arguments,
    finish_choice,
    read_validation,
    score_sets,
    score_table,
)

from painter.errors import ConfigError
from seggpt.loading import build_model
from seggpt.predictor import SegGPTPredictor

SLOPES = (10.0, 20.0, 40.0, 80.0, 160.0)
THRESHOLDS = (0.8, 0.85, 0.9, 0.925, 0.95, 0.97)
SHUT = (1000.0, 2.0)  # the share never exceeds 1: the decoder's own painting is off


def gated_copy(model):
    """``model`` with a learnable gate (its own, or a new one at ``SHUT``), other weights equal."""
    if model.config.match_gate is not None:
        return model
    try:
        config = dataclasses.replace(model.config, match_gate=SHUT)
    except ConfigError as error:
        raise ConfigError(f"this model cannot take a match gate: {error}") from error
    gated = build_model(config)
    report = gated.load_state_dict(model.state_dict(), strict=False)
    assert report.missing_keys == ["matcher.gate"] and not report.unexpected_keys, report
    return gated.eval()


def parse_grid(text: str | None) -> list[tuple[float, float]]:
    if not text:
        return [(s, t) for s in SLOPES for t in THRESHOLDS]
    try:
        return [tuple(float(v) for v in item.split(":")) for item in text.split(",")]
    except ValueError as error:
        raise SystemExit(f"--grid wants SLOPE:THRESHOLD,...: {error}") from error


def parse_factors(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as error:
        raise SystemExit(f"--temperatures wants FACTOR,...: {error}") from error


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="runs/demo_stage3/checkpoint_0001000.pt")
    parser.add_argument("--grid", help="SLOPE:THRESHOLD,... (default: 5 slopes x 6 thresholds)")
    parser.add_argument(
        "--temperatures",
        default="1.25,1.5,2,3",
        help="factors on the learned match temperature read with the chosen slope ('' = none)",
    )
    add_validation_arguments(parser, "benchmarks/results/match_gate.json")
    args = parser.parse_args(argv)
    sets, model = read_validation(args)
    gated = gated_copy(model)

    rows = []
    start = time.perf_counter()
    rows.append({"gate": "as trained", **score_sets(SegGPTPredictor(model, dtype="float32"), sets)})
    predictor = SegGPTPredictor(gated, dtype="float32")
    learned = gated.matcher.log_scale.detach().clone()

    def read(gate: tuple[float, float], factor: float = 1.0) -> None:
        with torch.no_grad():
            gated.matcher.gate.copy_(torch.tensor(gate))
            gated.matcher.log_scale.copy_(learned + math.log(factor))
        name = "shut (direct term only)" if gate == SHUT else f"{gate[0]:g} / {gate[1]:g}"
        name += f" x{factor:g}" if factor != 1.0 else ""
        row = {"gate": name, "slope": gate[0], "threshold": gate[1], "temperature": factor}
        rows.append({**row, **score_sets(predictor, sets)})
        print(f"{name:30s} " + " ".join(f"{n} {v:.3f}" for n, v in rows[-1].items() if n in sets))

    for gate in [SHUT, *parse_grid(args.grid)]:
        read(gate)
    # Stage 2: the chosen slope, each threshold, the match temperature scaled (the learned
    # temperature was fitted without the gate; a sharper softmax makes the share decisive).
    slope = max(rows[2:], key=lambda r: r["mean"])["slope"]
    for factor in parse_factors(args.temperatures):
        for threshold in sorted({r["threshold"] for r in rows[2:]}):
            read((slope, threshold), factor)
    best = max(rows[2:], key=lambda r: r["mean"])  # every grid row, after "as trained" and "shut"
    print(score_table(rows, "gate", "gate (slope / threshold x temperature)", sets))
    print(
        f"chosen: slope {best['slope']:g}, threshold {best['threshold']:g}, temperature "
        f"x{best['temperature']:g} = {float(learned.exp()) * best['temperature']:.4g} "
        f"(mean {best['mean']:.3f}; {time.perf_counter() - start:.0f} s)"
    )
    return finish_choice(
        args,
        rows,
        best,
        ("slope", "threshold", "temperature", "mean"),
        learned_temperature=float(learned.exp()),
    )


if __name__ == "__main__":
    main()
