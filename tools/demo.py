"""The main demo: segment bundled sample episodes and write masks, overlays and a figure.

``python -m tools.demo --out outputs/demo`` (``make demo``). Episodes are made on the fly,
deterministically, from data the demo model never trained on: shape/texture/background families
held out of its training space (one-shot, few-shot, colour-independent, multi-class), two views
of a held-out photo and scene-text words. Each score is printed beside the prompt-ignoring
baselines (all objects, all foreground). The prompt/query files are written too, so
``tools.infer`` can be tried on them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from painter.errors import missing_dependency
from painter.io import default_palette, overlay, save_image, save_index_mask
from seggpt import SegGPTPredictor, load_model
from seggpt.evaluation.metrics import IoUAccumulator
from seggpt.samples import Sample, bundled_samples
from tools.cli import add_model_arguments, run_cli

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seggpt-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/demo", help="output folder")
    add_model_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:
        predictor = SegGPTPredictor(
            load_model(args.checkpoint), device=args.device, dtype=args.dtype
        )
        samples = bundled_samples()
        out = Path(args.out)
        scores = {}
        for sample in samples:
            [pred] = predictor.predict(
                sample.prompt_images, sample.prompt_masks, [sample.query_image]
            )
            _write(out, sample, pred)
            scores[sample.name] = sample_scores(sample, pred.mask)
            print(f"{sample.name:30s} {_describe(scores[sample.name])}")
        _figure(out / "demo.png", samples, predictor, scores)
        (out / "scores.json").write_text(json.dumps(scores, indent=2))
        print(f"wrote masks, overlays and {out / 'demo.png'}")

    return run_cli(run)


def _miou(pred: np.ndarray, truth: np.ndarray) -> float:
    acc = IoUAccumulator()
    acc.update(pred, truth, sorted(set(np.unique(truth).tolist()) - {0, -1}))
    return acc.miou


def sample_scores(sample: Sample, mask: np.ndarray) -> dict[str, float]:
    """mIoU of ``mask`` and, for a binary sample, of the prompt-ignoring baselines: every object
    (where the sample knows them) and every pixel."""
    scores = {"miou": _miou(mask, sample.query_mask)}
    classes = set(np.unique(sample.query_mask).tolist()) - {0, -1}
    if classes == {1}:
        if sample.query_objects is not None:
            scores["all_objects"] = _miou(sample.query_objects.astype(np.int64), sample.query_mask)
        scores["all_foreground"] = _miou(np.ones_like(sample.query_mask), sample.query_mask)
    return scores


def _describe(scores: dict[str, float]) -> str:
    parts = [f"{k.replace('_', ' ')} {v:.3f}" for k, v in scores.items() if k != "miou"]
    baselines = ", ".join(parts)
    return f"mIoU {scores['miou']:.3f}" + (f" (baselines: {baselines})" if baselines else "")


def _write(out: Path, sample: Sample, pred) -> None:
    folder = out / sample.name
    palette = default_palette()
    for i, (image, mask) in enumerate(zip(sample.prompt_images, sample.prompt_masks)):
        save_image(folder / f"prompt{i}.png", image)
        save_index_mask(folder / f"prompt{i}_mask.png", mask)
    save_image(folder / "query.png", sample.query_image)
    save_index_mask(folder / "pred_mask.png", pred.mask)
    save_image(folder / "pred_overlay.png", overlay(sample.query_image, pred.mask, palette))
    save_image(folder / "painted.png", pred.painted)


def _figure(
    path: Path, samples: list[Sample], predictor: SegGPTPredictor, scores: dict[str, dict]
) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise missing_dependency("matplotlib", "train", "the demo figure") from err

    palette = default_palette()
    fig, axes = plt.subplots(len(samples), 4, figsize=(12, 3 * len(samples)), squeeze=False)
    for row, sample in zip(axes, samples):
        [pred] = predictor.predict(sample.prompt_images, sample.prompt_masks, [sample.query_image])
        truth = np.where(sample.query_mask < 0, 0, sample.query_mask)
        panels = [
            (overlay(sample.prompt_images[0], sample.prompt_masks[0], palette), "prompt (1st)"),
            (sample.query_image, "query"),
            (overlay(sample.query_image, pred.mask, palette), _describe(scores[sample.name])),
            (overlay(sample.query_image, truth, palette), "ground truth"),
        ]
        for ax, (image, title) in zip(row, panels):
            ax.imshow(image)
            title = f"{sample.name}: {title}" if title == "prompt (1st)" else title
            ax.set_title(title.replace(" (baselines", "\n(baselines"), fontsize=7)
            ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
