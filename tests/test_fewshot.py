"""Few-shot evaluation: class splits, the three benchmark layouts, episodes, pooled metrics, CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_mixtures.records import IGNORE_LABEL
from data_mixtures.sources.fewshot_benchmarks import (
    coco20i_classes,
    coco20i_fold,
    folder_fold,
    fss1000_fold,
    pascal5i_classes,
    pascal5i_fold,
)
from painter.errors import ConfigError, DatasetError
from seggpt.evaluation.fewshot import evaluate_fewshot, evaluate_fold
from tools import eval_fewshot

SIZE = (12, 16)  # (H, W) of the generated images


def _image(seed: int, size=SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def _blob_mask(class_id: int, seed: int, size=SIZE) -> np.ndarray:
    """Class ``class_id`` in a rectangle, a little VOC border (255) around it."""
    mask = np.zeros(size, dtype=np.uint8)
    top, left = 1 + seed % 3, 2 + seed % 4
    mask[top : top + 6, left : left + 7] = 255
    mask[top + 1 : top + 5, left + 1 : left + 6] = class_id
    return mask


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def pascal_root(tmp_path) -> Path:
    """VOC-style root: classes 1 and 2 (fold 0) on 3 images each, class 7 (fold 1) on 3."""
    root = tmp_path / "VOC2012"
    lines, names = [], []
    for k, class_id in enumerate([1, 1, 1, 2, 2, 2, 7, 7, 7]):
        name = f"2008_{k:06d}"
        names.append(name)
        _write(root / "JPEGImages" / f"{name}.jpg", _image(k))
        _write(root / "SegmentationClassAug" / f"{name}.png", _blob_mask(class_id, k))
        if class_id <= 5:
            lines.append(f"{name}__{class_id}")
    (root / "splits" / "pascal" / "val").mkdir(parents=True)
    (root / "splits" / "pascal" / "val" / "fold0.txt").write_text("\n".join(lines) + "\n")
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(names) + "\n")
    return root


@pytest.fixture
def coco_root(tmp_path) -> Path:
    """HSNet COCO2014 layout: fold 0 classes 1 and 5, fold 1 class 2, three images each."""
    root = tmp_path / "COCO2014"
    for k, class_id in enumerate([1, 1, 1, 5, 5, 5, 2, 2, 2]):
        name = f"COCO_val2014_{k:012d}"
        _write(root / "val2014" / f"{name}.jpg", _image(k))
        mask = np.where(_blob_mask(class_id, k) == class_id, class_id, 0).astype(np.uint8)
        _write(root / "annotations" / "val2014" / f"{name}.png", mask)
    return root


# Hand-checkable FSS set: 8x8 masks, the fake predictor always answers "the left half".
LEFT = np.zeros((8, 8), dtype=bool)
LEFT[:, :4] = True
FSS_MASKS = {
    "apple": [np.s_[:4, :4], np.s_[:, :4], np.s_[:, 4:]],  # 16 px, left half, right half
    "bell": [np.s_[:4, :], np.s_[:, :7], np.s_[:, :2]],  # top half, all but col 7, cols 0-1
}


@pytest.fixture
def fss_root(tmp_path) -> Path:
    root = tmp_path / "FSS-1000"
    for c, name in enumerate([*FSS_MASKS, "zebra"]):
        for n, region in enumerate(FSS_MASKS.get(name, FSS_MASKS["apple"]), start=1):
            mask = np.zeros((8, 8), dtype=np.uint8)
            mask[region] = 255
            _write(root / name / f"{n}.png", mask)
            _write(root / name / f"{n}.jpg", _image(10 * c + n, (8, 8)))
    (root / "splits").mkdir()
    (root / "splits" / "test.txt").write_text("apple\nbell\n")
    return root


@dataclass
class _Answer:
    mask: np.ndarray


class LeftHalfPredictor:
    """Answers the left half of every query, whatever the prompts."""

    def __init__(self) -> None:
        self.calls = []

    def predict(self, prompt_images, prompt_masks, query_images, *, ensemble):
        self.calls.append((len(prompt_images), ensemble))
        return [_Answer(LEFT.astype(np.int64)) for _ in query_images]


def test_class_splits_follow_hsnet():
    assert pascal5i_classes(0) == (1, 2, 3, 4, 5)
    assert pascal5i_classes(3) == (16, 17, 18, 19, 20)
    assert coco20i_classes(0)[:3] == (1, 5, 9) and coco20i_classes(3)[-1] == 80
    every = sorted(c for fold in range(4) for c in coco20i_classes(fold))
    assert every == list(range(1, 81))
    with pytest.raises(ConfigError, match="fold"):
        coco20i_classes(4)


def test_pascal_fold_cycles_its_list_and_ignores_the_border(pascal_root):
    fold = pascal5i_fold(pascal_root, 0, num_episodes=8, seed=3)
    assert fold.class_ids == (1, 2) and len(fold) == 8  # 3..5 have no image: left out
    plans = [fold.plan(n, shots=2) for n in range(8)]
    assert [p.query for p in plans] == [0, 1, 2, 3, 4, 5, 0, 1]
    for plan in plans:
        assert plan.query not in plan.supports and len(set(plan.supports)) == 2
        assert set(plan.supports) <= set(fold.members[plan.class_id].tolist())
    # k-shot extends the 1-shot support; the same seed gives the same episodes
    assert fold.plan(5, shots=1).supports == fold.plan(5, shots=2).supports[:1]
    assert pascal5i_fold(pascal_root, 0, seed=3).plan(4) == fold.plan(4)
    episode = fold.episode(0, shots=2)
    assert episode.binary and episode.class_ids == (1,)
    assert set(np.unique(episode.query_mask)) == {IGNORE_LABEL, 0, 1}
    assert all(set(np.unique(m)) == {0, 1} for m in episode.prompt_masks)


def test_pascal_without_fold_lists_uses_all_val_images(pascal_root):
    (pascal_root / "splits" / "pascal" / "val" / "fold1.txt").unlink(missing_ok=True)
    fold = pascal5i_fold(pascal_root, 1)
    assert fold.class_ids == (7,) and len(fold) == 1000
    assert {fold.plan(n).query for n in range(3)} == {6, 7, 8}


def test_missing_layout_folders_are_named(pascal_root, coco_root, tmp_path):
    (pascal_root / "SegmentationClassAug").rename(pascal_root / "masks")
    with pytest.raises(DatasetError, match="SegmentationClassAug"):
        pascal5i_fold(pascal_root, 0)
    (coco_root / "annotations").rename(coco_root / "labels")
    with pytest.raises(DatasetError, match="annotations/val2014"):
        coco20i_fold(coco_root, 0)
    with pytest.raises(DatasetError, match="not found"):
        fss1000_fold(tmp_path / "nowhere")


def test_coco_fold_scans_annotations_and_draws_classes_first(coco_root):
    fold = coco20i_fold(coco_root, 0, num_episodes=40)
    assert fold.class_ids == (1, 5)
    plans = [fold.plan(n) for n in range(40)]
    assert {p.class_id for p in plans} == {1, 5}
    for plan in plans:
        members = set(fold.members[plan.class_id].tolist())
        assert plan.query in members and set(plan.supports) <= members - {plan.query}
    with pytest.raises(DatasetError, match="2 image"):
        fold.plan(0, shots=3)


def test_fss_split_file_and_all_classes(fss_root):
    fold = fss1000_fold(fss_root)
    assert fold.class_names == {1: "apple", 2: "bell"} and len(fold) == 6
    (fss_root / "splits" / "test.txt").unlink()
    assert len(fss1000_fold(fss_root).class_ids) == 3


def test_pooled_miou_and_fb_iou_by_hand(fss_root):
    """Each of the 6 images is a query once; the answer is always the left half (32 px).

    apple: truth 16 px top-left (I 16, U 32), left half (I 32, U 32), right half (I 0, U 64):
        pooled 48/128 = 3/8 (the mean of per-episode IoUs would be 1/2).
    bell: top half (I 16, U 48), all but column 7 (I 32, U 56), columns 0-1 (I 16, U 32):
        pooled 64/136 = 8/17.
    mIoU = (3/8 + 8/17) / 2. Foreground pooled over all: 112/264. Background (the right half
    answered): I 32+32+0+16+8+32 = 120, U 48+32+64+48+32+48 = 272.
    """
    predictor = LeftHalfPredictor()
    result = evaluate_fold(predictor, fss1000_fold(fss_root), shots=2, progress=False)
    assert result.per_class[1] == pytest.approx(3 / 8) and result.per_class[2] == pytest.approx(
        8 / 17
    )
    assert result.miou == pytest.approx(float((Fraction(3, 8) + Fraction(8, 17)) / 2))
    assert result.fb_iou == pytest.approx(float((Fraction(112, 264) + Fraction(120, 272)) / 2))
    assert result.episodes == 6 and predictor.calls == [(2, "feature")] * 6
    report = evaluate_fewshot(
        predictor, [fss1000_fold(fss_root)] * 2, benchmark="fss-1000", progress=False
    )
    assert report.miou == pytest.approx(result.miou)
    assert "mean" in report.table() and json.dumps(report.to_dict())


def test_folder_dataset_gives_one_fold(tmp_path):
    for k in range(6):
        _write(tmp_path / "images" / f"{k}.png", _image(k))
        mask = np.where(_blob_mask(1 + k % 2, k) == 255, 0, _blob_mask(1 + k % 2, k))
        _write(tmp_path / "masks" / f"{k}.png", mask)
    fold = folder_fold(tmp_path, num_episodes=5)
    assert fold.class_ids == (1, 2) and len(fold) == 5
    result = evaluate_fold(LeftHalfPredictorAnySize(), fold, progress=False)
    assert 0.0 <= result.miou <= 1.0 and result.episodes == 5


class LeftHalfPredictorAnySize:
    def predict(self, prompt_images, prompt_masks, query_images, *, ensemble):
        out = []
        for image in query_images:
            mask = np.zeros(image.shape[:2], dtype=np.int64)
            mask[:, : image.shape[1] // 2] = 1
            out.append(_Answer(mask))
        return out


@pytest.mark.parametrize("benchmark", ["pascal", "coco", "folder"])
def test_cli_runs_writes_json_and_resumes(
    benchmark, pascal_root, coco_root, tiny_checkpoint, tmp_path, capsys
):
    roots = {"pascal": pascal_root, "coco": coco_root}
    root = roots.get(benchmark, pascal_root)
    if benchmark == "folder":
        root = tmp_path / "mine"
        for k in range(4):
            _write(root / "images" / f"{k}.png", _image(k))
            _write(root / "masks" / f"{k}.png", (_blob_mask(1, k) == 1).astype(np.uint8) * 3)
    out = tmp_path / f"{benchmark}.json"
    argv = ["--benchmark", benchmark, "--root", str(root), "--folds", "0", "--episodes", "3"]
    argv += ["--shots", "2", "--checkpoint", str(tiny_checkpoint), "--device", "cpu"]
    argv += ["--out", str(out), "--no-progress"]
    assert eval_fewshot.main(argv) == 0
    data = json.loads(out.read_text())
    assert data["shots"] == 2 and len(data["folds"]) == 1 and data["folds"][0]["episodes"] == 3
    assert 0.0 <= data["mean"]["miou"] <= 1.0
    assert "mIoU" in capsys.readouterr().out
    assert eval_fewshot.main([*argv, "--resume"]) == 0
    assert "kept from" in capsys.readouterr().out


def test_cli_reports_a_bad_root_in_one_line(tmp_path, capsys):
    code = eval_fewshot.main(["--benchmark", "coco", "--root", str(tmp_path), "--folds", "0"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "val2014" in err and err.count("\n") == 1


def test_binary_episodes_score_a_uint8_answer_under_a_large_class_id():
    """A predictor may answer with uint8 masks; pooling a binary episode under a class id that
    does not fit in a byte must not wrap it (it once scored a perfect answer 0)."""
    from data_mixtures.records import EvalEpisode
    from seggpt.evaluation.metrics import evaluate

    class Uint8LeftHalf(LeftHalfPredictorAnySize):
        def predict(self, *args, **kwargs):
            return [_Answer(a.mask.astype(np.uint8)) for a in super().predict(*args, **kwargs)]

    left = np.zeros((8, 8), dtype=np.int64)
    left[:, :4] = 1
    episode = EvalEpisode(
        prompt_images=[np.zeros((8, 8, 3), np.uint8)],
        prompt_masks=[left],
        query_image=np.zeros((8, 8, 3), np.uint8),
        query_mask=left,
        class_ids=(1_331_346,),
        binary=True,
    )
    report = evaluate(Uint8LeftHalf(), [episode, episode], shots=1)
    assert report.miou == pytest.approx(1.0)
    assert report.baselines["all_foreground"] == pytest.approx(0.5)
