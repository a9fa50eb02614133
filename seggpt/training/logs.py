"""A run's logs: the CSV and TensorBoard rows, the evaluation fields, the curves PNG."""

from __future__ import annotations

import csv
from pathlib import Path

from painter.checkpoint import atomic_write
from painter.errors import missing_dependency
from seggpt.evaluation.heldout import SetScores

CSV_FIELDS = (
    "step",
    "loss",
    "lr",
    "seconds",
    "eval_miou",
    "eval_all_objects",
    "eval_all_foreground",
    "eval_wrong_prompt",
    "eval_colour-independent_miou",
    "eval_photos_miou",
    "eval_lettering_miou",
    "eval_held-out_miou",
)


def eval_row(scores: dict[str, SetScores]) -> dict[str, float]:
    """Log fields of an evaluation: the primary (first) set as ``eval_miou`` and
    ``eval_<baseline>``, every other set as ``eval_<set>_miou``."""
    items = iter(scores.items())
    _, first = next(items)
    row = {"eval_miou": first.one_shot.miou}
    row.update({f"eval_{k}": v for k, v in first.one_shot.baselines.items()})
    row.update({f"eval_{name}_miou": s.one_shot.miou for name, s in items})
    return row


class RunLogs:
    """CSV + TensorBoard logs and a PNG of the curves in the run folder."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.csv_path = run_dir / "metrics.csv"
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:  # tensorboard is optional at run time
            self.tb = None

    def write(self, row: dict[str, float]) -> None:
        new = not self.csv_path.exists()
        with self.csv_path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self.tb is not None:
            for key, value in row.items():
                if key != "step":
                    self.tb.add_scalar(key, value, row["step"])

    def close(self, history: list[dict[str, float]]) -> None:
        if self.tb is not None:
            self.tb.close()
        if history:  # a run of 0 steps (only evaluated and exported) has no curves
            plot_curves(history, self.run_dir / "curves.png")


def plot_curves(history: list[dict[str, float]], path: Path) -> None:
    """Loss and eval mIoU (with baselines) against the step, as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise missing_dependency("matplotlib", "train", "training curves") from err

    fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot([r["step"] for r in history], [r["loss"] for r in history])
    ax_loss.set(xlabel="step", ylabel="masked smooth-L1", title="training loss", yscale="log")
    evals = [r for r in history if "eval_miou" in r]
    keys = [k for k in CSV_FIELDS if k.startswith("eval_")]
    for key in keys:
        if evals and key in evals[0]:
            ax_iou.plot([r["step"] for r in evals], [r[key] for r in evals], "o-", label=key[5:])
    ax_iou.set(xlabel="step", ylabel="mIoU", title="held-out episodes", ylim=(0, 1))
    if evals:  # a run without evaluation has no curves to label
        ax_iou.legend()
    fig.tight_layout()
    atomic_write(path.with_suffix(".png"), lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
