"""The main demo: segment bundled sample episodes and write masks, overlays and a figure.

``python -m tools.demo --out outputs/demo`` (``make demo``). Episodes are made on the fly,
deterministically: held-out synthetic shapes (one-shot binary, few-shot, multi-class) and a real
photo from scikit-image whose pseudo-mask regions must be found in a flipped, cropped view. The
prompt/query files are written too, so ``tools.infer`` can be tried on them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_mixtures.evaluation import build_eval_episodes
from data_mixtures.sources.photos import PhotoSource, load_skimage_photos
from data_mixtures.synthetic import SyntheticConfig, SyntheticSource
from data_mixtures.transforms import crop_resize_record, flip_record
from painter.errors import PainterError
from painter.io import default_palette, overlay, save_image, save_index_mask
from seggpt import SegGPTPredictor, load_model
from seggpt.evaluation import IoUAccumulator

logger = logging.getLogger(__name__)


@dataclass
class Sample:
    name: str
    prompt_images: list[np.ndarray]
    prompt_masks: list[np.ndarray]
    query_image: np.ndarray
    query_mask: np.ndarray


def synthetic_samples(size: tuple[int, int], seed: int = 7) -> list[Sample]:
    source = SyntheticSource(
        SyntheticConfig(image_size=size, num_records=1000), seed=seed, name="demo-synthetic"
    )
    one = build_eval_episodes(source, num_episodes=2, shots=1, seed=seed)
    few = build_eval_episodes(source, num_episodes=1, shots=4, seed=seed + 1)
    multi = build_eval_episodes(source, num_episodes=1, shots=1, seed=seed + 2, binary=False)
    named = [
        ("synthetic_1shot_a", one[0]),
        ("synthetic_1shot_b", one[1]),
        ("synthetic_4shot", few[0]),
        ("synthetic_multiclass", multi[0]),
    ]
    return [
        Sample(n, e.prompt_images, e.prompt_masks, e.query_image, e.query_mask) for n, e in named
    ]


def photo_sample(max_side: int, objects: int = 3) -> Sample:
    """A real photo (scikit-image's coins) with its largest pseudo-mask regions that do not touch
    the border (objects, not background) as classes; the query is a flipped, cropped view."""
    [(_, coins)] = load_skimage_photos(("coins",))
    source = PhotoSource([coins], max_side=max_side, granularities=(500.0,), name="demo-photo")
    record = source[0]
    regions = record.instance
    border = set(
        np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))
    )
    ids, counts = np.unique(regions[regions > 0], return_counts=True)
    inner = [(c, i) for i, c in zip(ids, counts) if i not in border]  # objects, not background
    keep = [i for _, i in sorted(inner, reverse=True)[:objects]]
    labels = np.zeros_like(record.instance)
    for new, old in enumerate(keep, start=1):
        labels[record.instance == old] = new
    record = type(record)(image=record.image, semantic=labels, source=record.source)
    h, w = record.size
    view = crop_resize_record(
        flip_record(record), (h // 10, w // 10, h - h // 10, w - w // 10), (h, w)
    )
    return Sample("photo_coins", [record.image], [labels], view.image, view.semantic)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seggpt-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="demo", help="model to run (default: bundled)")
    parser.add_argument("--out", default="outputs/demo", help="output folder")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        predictor = SegGPTPredictor(
            load_model(args.checkpoint), device=args.device, dtype=args.dtype
        )
        half = predictor.config.half_size
        samples = synthetic_samples(half) + [photo_sample(max(half) * 2)]
        out = Path(args.out)
        scores = {}
        for sample in samples:
            [pred] = predictor.predict(
                sample.prompt_images, sample.prompt_masks, [sample.query_image]
            )
            scores[sample.name] = _write(out, sample, pred)
            print(f"{sample.name:22s} mIoU {scores[sample.name]:.3f}")
        _figure(out / "demo.png", samples, predictor)
        (out / "scores.json").write_text(json.dumps(scores, indent=2))
        print(f"wrote masks, overlays and {out / 'demo.png'}")
    except PainterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _write(out: Path, sample: Sample, pred) -> float:
    folder = out / sample.name
    palette = default_palette()
    for i, (image, mask) in enumerate(zip(sample.prompt_images, sample.prompt_masks)):
        save_image(folder / f"prompt{i}.png", image)
        save_index_mask(folder / f"prompt{i}_mask.png", mask)
    save_image(folder / "query.png", sample.query_image)
    save_index_mask(folder / "pred_mask.png", pred.mask)
    save_image(folder / "pred_overlay.png", overlay(sample.query_image, pred.mask, palette))
    save_image(folder / "painted.png", pred.painted)
    acc = IoUAccumulator()
    acc.update(pred.mask, sample.query_mask, sorted(set(np.unique(sample.query_mask)) - {0, -1}))
    return acc.miou


def _figure(path: Path, samples: list[Sample], predictor: SegGPTPredictor) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    palette = default_palette()
    fig, axes = plt.subplots(len(samples), 4, figsize=(12, 3 * len(samples)), squeeze=False)
    for row, sample in zip(axes, samples):
        [pred] = predictor.predict(sample.prompt_images, sample.prompt_masks, [sample.query_image])
        truth = np.where(sample.query_mask < 0, 0, sample.query_mask)
        panels = [
            (overlay(sample.prompt_images[0], sample.prompt_masks[0], palette), "prompt (1st)"),
            (sample.query_image, "query"),
            (overlay(sample.query_image, pred.mask, palette), "prediction"),
            (overlay(sample.query_image, truth, palette), "ground truth"),
        ]
        for ax, (image, title) in zip(row, panels):
            ax.imshow(image)
            ax.set_title(
                f"{sample.name}: {title}" if title == "prompt (1st)" else title, fontsize=8
            )
            ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
