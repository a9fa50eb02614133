"""Labelling a held-out set from 3 examples, then one round of click corrections.

    python benchmarks/bench_label.py [--checkpoint demo] [--images 200] [--corrections 10]
    python benchmarks/bench_label.py --memory          # peak RSS of tools.label, 200 vs 2000 images

Two labelled sets no model of this framework trained on, with known ground truth:

* ``synthetic``: the bundled fixed-class task's held-out split (``seggpt.samples``: three
  categories of the held-out shape/texture families, each with one look, plus distractors),
  ``--images`` images at 128 px, the 3 examples from its training split;
* ``photos``: for each of 4 regions of held-out installed photos, 16 augmented views (crop,
  scale, flip, colour jitter); 3 views are the examples, the other 13 are labelled (binary).

Steps (``seggpt.labelling.session.LabelSession``): label all; score against the ground truth
(class-pooled mIoU) with the Spearman rank correlation of each image's score (certainty times
the agreement of the lone examples, ``seggpt.labelling.scoring``; certainty alone in brackets)
with its own IoU;
correct the ``--corrections`` least sure images with simulated clicks (per ground-truth object,
largest first, up to 3: a positive click at its most interior pixel, then up to 2 clicks at the
largest error region, positive in a miss and negative in a false alarm, through the promptable
model; the person keeps a result only where it beats the labelled mask) and accept them (they
join the examples); relabel the rest from all examples (feature ensemble) and, separately,
from a prompt tuned on them (in-context tuning, model frozen), and score it again. Baseline,
ignoring the examples' content: every object pixel labelled as the examples' most common class.
Writes ``benchmarks/results/bench_label.json``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import finish, format_table
from scipy import ndimage
from scipy.stats import spearmanr

from data_mixtures.eval_episodes import two_view_episodes
from data_mixtures.sources.photos import PhotoSource, PhotoSplit, installed_photos
from painter.config import SegType
from painter.promptable import PromptablePredictor, build_sam
from painter.promptable.refine import component_prompts
from seggpt.evaluation.metrics import IoUAccumulator
from seggpt.labelling.scoring import image_score
from seggpt.labelling.session import LabelSession
from seggpt.loading import load_model
from seggpt.predictor import SegGPTPredictor
from seggpt.samples import FIXED_CLASS_NAMES, fixed_class_source

ROOT = Path(__file__).resolve().parents[1]
SIZE = (128, 128)


# -- data ----------------------------------------------------------------------------------------
def synthetic_set(count: int):
    """(examples, images, truths, objects) of the fixed-class task; objects marks every object."""
    train, held = fixed_class_source(SIZE, "train"), fixed_class_source(SIZE, "held_out")
    examples = [train[i] for i in range(3)]
    records = [held[i] for i in range(count)]
    return (
        [(r.image, r.semantic) for r in examples],
        [r.image for r in records],
        [r.semantic for r in records],
        [r.instance > 0 for r in records],
    )


def photo_jobs(regions: int = 4, views: int = 16):
    """Per region: 3 example views and the other views with their 0/1 masks."""
    photos = PhotoSource(installed_photos(PhotoSplit.HELD_OUT), max_side=512, name="photos")
    episodes = two_view_episodes(
        photos, num_episodes=regions, shots=views - 1, seed=3, view_size=SIZE
    )
    jobs = []
    for e in episodes:
        images, masks = [*e.prompt_images, e.query_image], [*e.prompt_masks, e.query_mask]
        jobs.append((list(zip(images[:3], masks[:3])), images[3:], masks[3:]))
    return jobs


# -- scores --------------------------------------------------------------------------------------
def pooled_miou(preds, truths, classes) -> float:
    acc = IoUAccumulator()
    for p, t in zip(preds, truths):
        acc.update(p, t, classes)
    return acc.miou


def image_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    ids = sorted((set(np.unique(pred)) | set(np.unique(truth))) - {0})
    if not ids:
        return 1.0
    return float(
        np.mean(
            [((pred == c) & (truth == c)).sum() / ((pred == c) | (truth == c)).sum() for c in ids]
        )
    )


def majority_baseline(examples, objects) -> list[np.ndarray]:
    """Every object pixel as the examples' most common class."""
    counts = np.bincount(np.concatenate([m[m > 0].ravel() for _, m in examples]))
    return [np.where(o, int(counts.argmax()), 0) for o in objects]


# -- simulated clicks ----------------------------------------------------------------------------
def _largest(region: np.ndarray):
    prompts = component_prompts(region.astype(np.int64), min_area=4)
    return max(prompts, key=lambda p: p.area) if prompts else None


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def clicked_object(refiner: PromptablePredictor, target: np.ndarray, clicks: int = 3) -> np.ndarray:
    """The promptable model's best mask of one object over up to ``clicks`` simulated clicks
    (the person sees each result and keeps the best)."""
    first = _largest(target)
    points, labels = [first.point.tolist()], [1]
    best = np.zeros_like(target)
    for _ in range(clicks):
        drawn = refiner.predict(points=[points], labels=[labels], multimask=True).best()[0]
        if _iou(drawn, target) > _iou(best, target):
            best = drawn
        miss, alarm = _largest(target & ~drawn), _largest(drawn & ~target)
        worst = max((miss, 1), (alarm, 0), key=lambda p: p[0].area if p[0] else 0)
        if worst[0] is None:
            break
        points.append(worst[0].point.tolist())
        labels.append(worst[1])
    return best


def corrected(
    refiner: PromptablePredictor, image, current: np.ndarray, truth: np.ndarray
) -> np.ndarray:
    """``current`` with each ground-truth class redrawn from clicks on its objects (up to 3,
    largest first), where that beats the class as labelled (else the person undoes it)."""
    refiner.set_image(image)
    out = current.copy()
    for c in sorted(set(np.unique(truth)) - {0}):
        regions, count = ndimage.label(truth == c, structure=np.ones((3, 3)))
        areas = ndimage.sum(np.ones_like(truth), regions, range(1, count + 1))
        drawn = np.zeros(truth.shape, dtype=bool)
        for region in np.argsort(areas)[::-1][:3] + 1:
            if areas[region - 1] >= 16:
                drawn |= clicked_object(refiner, regions == region)
        if _iou(drawn, truth == c) > _iou(out == c, truth == c):
            out[out == c] = 0
            out[drawn] = c
    return out


# -- one labelling job ----------------------------------------------------------------------------
def run_job(
    predictor, refiner, examples, images, truths, classes, corrections, names=None, *, tune_after=5
):
    """Label, score, correct the least sure, then relabel the rest twice: from all examples
    (feature ensemble) and from a prompt tuned on them (``tune_after``)."""
    session = LabelSession(
        predictor,
        images,
        [f"{i:04d}.png" for i in range(len(images))],
        [e[0] for e in examples],
        [e[1] for e in examples],
        class_names=names,
        agreement=True,
    )
    start = time.perf_counter()
    session.label_all()
    seconds = {"label_all": time.perf_counter() - start}
    first = [session.results[i].mask for i in range(len(images))]
    scores = [session.results[i].score for i in range(len(images))]
    certainty_only = [image_score(m, session.results[i].certainty) for i, m in enumerate(first)]
    ious = [image_iou(p, t) for p, t in zip(first, truths)]
    fixed = session.order()[:corrections]
    start = time.perf_counter()
    for i in fixed:
        session.set_mask(i, corrected(refiner, images[i], session.results[i].mask, truths[i]))
        session.accept(i)
    seconds["corrections"] = time.perf_counter() - start
    rest = [i for i in range(len(images)) if i not in fixed]

    def miou(masks, which):
        return pooled_miou([masks[i] for i in which], [truths[i] for i in which], classes)

    ranked, decile = sorted(zip(scores, ious)), max(1, len(ious) // 10)
    result = {
        "images": len(images),
        "first_miou": miou(first, range(len(images))),
        "first_rest_miou": miou(first, rest),
        "corrected_before": miou(first, fixed),
        "corrected_after": miou([session.results[i].mask for i in range(len(images))], fixed),
        "spearman_score_vs_iou": float(spearmanr(scores, ious).statistic),
        "spearman_certainty_only_vs_iou": float(spearmanr(certainty_only, ious).statistic),
        "least_sure_decile_iou": float(np.mean([iou for _, iou in ranked[:decile]])),
        "most_sure_decile_iou": float(np.mean([iou for _, iou in ranked[-decile:]])),
        "examples_after": len(session.example_images),
    }
    for mode, after in (("ensemble", None), ("tuned", tune_after)):
        session.set_tune_after(after)
        start = time.perf_counter()
        session.label_all()
        seconds[f"relabel_{mode}"] = time.perf_counter() - start
        second = [session.results[i].mask for i in range(len(images))]
        result[f"rest_{mode}_miou"] = miou(second, rest)
        result[f"all_{mode}_miou"] = miou(second, range(len(images)))
    result["seconds"] = seconds
    return result


def label_proof(args) -> dict:
    model = load_model(args.checkpoint)
    semantic = SegGPTPredictor(model, dtype="float32", seg_type=SegType.SEMANTIC)
    instance = SegGPTPredictor(model, dtype="float32", seg_type=SegType.INSTANCE)
    refiner = PromptablePredictor(build_sam(checkpoint=args.promptable), dtype="float32")
    examples, images, truths, objects = synthetic_set(args.images)
    names = dict(enumerate(FIXED_CLASS_NAMES))
    synthetic = run_job(
        semantic, refiner, examples, images, truths, [1, 2, 3], args.corrections, names
    )
    synthetic["baseline_majority_class_on_objects"] = pooled_miou(
        majority_baseline(examples, objects), truths, [1, 2, 3]
    )
    photo_sets = photo_jobs()
    jobs = [run_job(instance, refiner, ex, ims, truth, [1], 3) for ex, ims, truth in photo_sets]
    photos = {k: float(np.mean([j[k] for j in jobs])) for k in jobs[0] if k != "seconds"}
    photos["seconds"] = {k: float(sum(j["seconds"][k] for j in jobs)) for k in jobs[0]["seconds"]}
    photos["jobs"] = jobs
    photos["baseline_all_foreground"] = float(
        np.mean([pooled_miou([np.ones_like(t) for t in job[2]], job[2], [1]) for job in photo_sets])
    )
    return {"synthetic": synthetic, "photos": photos}


def _peak_rss_mb(
    list_file: Path, examples: Path, checkpoint: Path, out: Path
) -> tuple[float, float]:
    code = (
        "import resource, sys, time; from tools.label import main; t = time.perf_counter(); "
        "code = main(sys.argv[1:]); "
        "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
        "time.perf_counter() - t); sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(list_file), "--examples", str(examples), "--checkpoint",
         str(checkpoint), "--out", str(out), "--workers", "1", "--quiet", "--dtype", "float32"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    [line] = [x for x in done.stdout.splitlines() if x.startswith("RSS")]
    return float(line.split()[1]), float(line.split()[2])


def memory_check(counts=(200, 2000)) -> dict:
    """Peak RSS and images/s of tools.label on ``counts`` images (64 px) with a random
    ``seggpt_test`` model: memory must not grow with the number of images."""
    import torch

    from painter.checkpoint import save_native
    from painter.io import save_image, save_index_mask
    from seggpt.loading import build_model

    folder = Path(tempfile.mkdtemp(prefix="bench_label_"))
    torch.manual_seed(0)
    checkpoint = save_native(build_model("seggpt_test"), folder / "tiny.safetensors")
    source = fixed_class_source((64, 64), "held_out")
    for i in range(2):
        save_image(folder / "ex" / "images" / f"{i}.png", source[i].image)
        save_index_mask(folder / "ex" / "masks" / f"{i}.png", source[i].semantic)
    paths = []
    for i in range(max(counts)):
        paths.append(folder / "images" / f"{i:05d}.png")
        save_image(paths[-1], source[i % 500 + 2].image)
    rows = {}
    for n in counts:
        listing = folder / f"list_{n}.txt"
        listing.write_text("\n".join(map(str, paths[:n])))
        rss, seconds = _peak_rss_mb(listing, folder / "ex", checkpoint, folder / f"out_{n}")
        rows[n] = {"peak_rss_mb": rss, "seconds": seconds, "images_per_s": n / seconds}
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="demo")
    parser.add_argument("--promptable", default="demo")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--corrections", type=int, default=10)
    parser.add_argument("--memory", action="store_true", help="only the peak-RSS check")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_label.json"))
    args = parser.parse_args(argv)
    if args.memory:
        rows = memory_check()
        cells = [
            [n, f"{r['peak_rss_mb']:.0f}", f"{r['seconds']:.1f}", f"{r['images_per_s']:.1f}"]
            for n, r in rows.items()
        ]
        print(format_table(["images", "peak RSS MB", "s", "images/s"], cells))
        a, b = (rows[n]["peak_rss_mb"] for n in sorted(rows))
        print(f"peak RSS ratio {b / a:.3f}")
        return finish(
            {"memory": rows, "ratio": b / a}, Path(args.out).with_name("bench_label_memory.json")
        )
    result = label_proof(args)
    table = []
    for name, r in result.items():
        baseline = r.get("baseline_majority_class_on_objects", r.get("baseline_all_foreground"))
        table.append([
            name, r["images"], f"{baseline:.3f}", f"{r['first_miou']:.3f}",
            f"{r['first_rest_miou']:.3f}", f"{r['rest_ensemble_miou']:.3f}",
            f"{r['rest_tuned_miou']:.3f}",
            f"{r['corrected_before']:.3f} -> {r['corrected_after']:.3f}",
            f"{r['spearman_score_vs_iou']:.2f} ({r['spearman_certainty_only_vs_iou']:.2f})",
            f"{r['least_sure_decile_iou']:.2f} / {r['most_sure_decile_iou']:.2f}",
            f"{sum(r['seconds'].values()):.0f}",
        ])  # fmt: skip
    print(format_table(
        ["set", "images", "baseline", "first mIoU", "rest: first", "rest: ensemble",
         "rest: tuned", "corrected", "Spearman (certainty only)", "IoU least/most sure 10%",
         "s"], table,
    ))  # fmt: skip
    return finish(result, args.out)


if __name__ == "__main__":
    main()
