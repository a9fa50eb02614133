"""Dataset labelling (seggpt.labelling, tools.label): scores, COCO and Label Studio files that
decode to exactly the PNG masks, resuming after a kill, sharding over processes, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from painter.errors import ConfigError, InputMismatchError, InvalidMaskError
from painter.io import load_mask, save_image, save_index_mask
from seggpt.coloring import MaskKind, PromptColoring, seggpt_palette
from seggpt.labelling import coco, labelstudio
from seggpt.labelling.labeller import Labeller
from seggpt.labelling.scoring import (
    Instance,
    certainty_map,
    class_mask,
    image_score,
    instance_agreement,
    instances_of,
    mask_agreement,
)
from seggpt.samples import FIXED_CLASS_NAMES, fixed_class_split
from tools import label

ROOT = Path(__file__).resolve().parents[1]
SIZE = (96, 96)


def _binary() -> PromptColoring:
    return PromptColoring(seggpt_palette(1), 1, (0, 1), MaskKind.BINARY, (0, 1))


def _index(k: int) -> PromptColoring:
    return PromptColoring(
        seggpt_palette(k), k, tuple(range(k + 1)), MaskKind.INDEX, tuple(range(k + 1))
    )


# -- scores and instances ----------------------------------------------------------------------
def test_certainty_is_one_on_palette_colours_and_zero_halfway():
    painted = np.array([[[0, 0, 0], [255, 255, 255], [127.5, 127.5, 127.5], [191.25] * 3]])
    c = certainty_map(painted, _binary())
    np.testing.assert_allclose(c[0], [1.0, 1.0, 0.0, 0.5], atol=1e-5)
    palette = seggpt_palette(3).astype(float)
    halfway = (palette[1] + palette[2]) / 2
    c3 = certainty_map(np.array([[palette[2], halfway, palette[0]]]), _index(3))
    assert c3[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert c3[0, 1] == pytest.approx(0.0, abs=1e-5)
    assert c3[0, 2] == pytest.approx(1.0, abs=1e-5)


def test_image_score_rewards_crisp_paintings_and_confident_emptiness():
    mask = np.zeros((8, 8), dtype=np.int64)
    mask[2:5, 2:5] = 1
    crisp = np.where(mask == 1, 1.0, 1.0).astype(np.float32)
    assert image_score(mask, crisp) == 1.0
    assert image_score(np.zeros_like(mask), crisp) == 1.0  # nothing painted, nothing contested
    faint = np.full((8, 8), 0.9, dtype=np.float32)
    faint[1:6, 1:6] = 0.2  # the object and its rim are barely decided
    assert image_score(mask, faint) == pytest.approx(0.2)
    with pytest.raises(InputMismatchError):
        image_score(mask, crisp[:4])


def test_instances_are_components_per_class_and_redraw_the_mask():
    mask = np.zeros((10, 12), dtype=np.int64)
    mask[1:3, 1:3] = 2
    mask[6:9, 8:11] = 2
    mask[5, 1] = 1
    certainty = np.linspace(0, 1, mask.size, dtype=np.float32).reshape(mask.shape)
    found = instances_of(mask, certainty)
    assert [(i.class_id, i.area) for i in found] == [(1, 1), (2, 4), (2, 9)]
    assert found[0].score == pytest.approx(float(certainty[5, 1]))
    np.testing.assert_array_equal(class_mask(found, mask.shape), mask)


def test_agreement_is_the_mean_iou_of_the_lone_examples_with_the_ensemble():
    mask = np.zeros((4, 4), dtype=np.int64)
    mask[:2, :2] = 1
    same, half = mask.copy(), mask.copy()
    half[0, :2] = 0  # half of the object
    assert mask_agreement(mask, [same]) == 1.0
    assert mask_agreement(mask, [same, half]) == pytest.approx(0.75)
    assert mask_agreement(np.zeros_like(mask), [np.zeros_like(mask)]) == 1.0
    [instance] = instances_of(mask)
    assert instance_agreement(instance, [same, half]) == pytest.approx(0.75)


def test_labeller_with_agreement_scales_scores_by_it(label_set):
    from seggpt.loading import load_model
    from seggpt.predictor import SegGPTPredictor

    predictor = SegGPTPredictor(load_model("demo"), dtype="float32")
    images, masks = fixed_class_split(SIZE, "train", 2)
    queries, _ = fixed_class_split(SIZE, "held_out", 3)
    plain = Labeller.from_examples(predictor, images, masks).label(queries)
    checked = Labeller.from_examples(predictor, images, masks, agreement=True)
    alone = [
        Labeller.from_examples(predictor, [i], [m]).label(queries) for i, m in zip(images, masks)
    ]
    for k, (a, b) in enumerate(zip(plain, checked.label(queries))):
        np.testing.assert_array_equal(a.mask, b.mask)
        votes = [lone[k].mask for lone in alone]
        assert b.score == pytest.approx(a.score * mask_agreement(a.mask, votes), abs=2e-4)
    same = Labeller.from_examples(predictor, [images[0]] * 2, [masks[0]] * 2, agreement=True)
    lone = Labeller.from_examples(predictor, [images[0]], [masks[0]])
    assert [r.score for r in same.label(queries)] == [r.score for r in lone.label(queries)]


def test_class_names_from_a_comma_list_rename_ids_in_order_and_skip_blanks():
    from seggpt.labelling.inputs import named_classes

    given = {0: "background", 1: "a", 2: "b", 3: "c"}
    assert named_classes(given, "cat, ,bird") == {0: "background", 1: "cat", 2: "b", 3: "bird"}
    assert named_classes(given, None) == given
    assert named_classes({}, "x,y") == {1: "x", 2: "y"}


# -- export formats ----------------------------------------------------------------------------
def _instances() -> tuple[np.ndarray, list[Instance]]:
    mask = np.zeros((20, 30), dtype=np.int64)
    mask[2:7, 3:9] = 1
    mask[10:18, 20:29] = 2
    mask[12:14, 2:4] = 1
    return mask, instances_of(mask)


def test_coco_file_loads_with_pycocotools_and_decodes_to_the_masks(tmp_path):
    mask, instances = _instances()
    records = [e for e in map(coco.encode_instance, instances)]
    assert records[0]["bbox"] == [3.0, 2.0, 6.0, 5.0] and records[0]["area"] == 30
    images = [
        {"file_name": "a.png", "height": 20, "width": 30, "score": 0.5, "instances": records},
        {"file_name": "sub/b.png", "height": 20, "width": 30, "score": 1.0, "instances": []},
    ]
    path = coco.write_coco(tmp_path / "coco.json", images, {1: "cat", 2: "dog"})
    data = json.loads(path.read_text())
    assert [c["name"] for c in data["categories"]] == ["cat", "dog"]
    assert [a["id"] for a in data["annotations"]] == [1, 2, 3]
    decoded = dict(coco.read_coco_masks(path))
    np.testing.assert_array_equal(decoded["a.png"], mask)
    assert not decoded["sub/b.png"].any()


def test_label_studio_tasks_round_trip_through_the_sdk_brush_codec(tmp_path):
    mask, instances = _instances()
    names = {1: "cat", 2: "dog & co"}
    entry = labelstudio.task(
        "/data/local-files/?d=a.png",
        [(i.mask, i.class_id, i.score) for i in instances],
        names,
        score=0.7,
        key="a",
    )
    path = labelstudio.write_tasks(tmp_path / "tasks.json", [entry])
    [read] = json.loads(path.read_text())
    results = read["predictions"][0]["result"]
    assert len(results) == 3 and results[0]["value"]["format"] == "rle"
    decoded = labelstudio.decode_results(results, {"cat": 1, "dog & co": 2})
    np.testing.assert_array_equal(decoded, mask)
    config = ET.fromstring(labelstudio.label_config(list(names.values())))
    assert [e.get("value") for e in config.iter("Label")] == ["cat", "dog & co"]


# -- the command line --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def label_set(tmp_path_factory) -> Path:
    """2 examples (images/ + masks/ + classes.txt), 7 images to label in two folders, one
    unreadable file."""
    root = tmp_path_factory.mktemp("label_set")
    images, masks = fixed_class_split(SIZE, "train", 2)
    for i, (image, mask) in enumerate(zip(images, masks)):
        save_image(root / "examples" / "images" / f"e{i}.png", image)
        save_index_mask(root / "examples" / "masks" / f"e{i}.png", mask)
    (root / "examples" / "classes.txt").write_text("\n".join(FIXED_CLASS_NAMES))
    queries, _ = fixed_class_split(SIZE, "held_out", 7)
    for i, image in enumerate(queries):
        save_image(root / "images" / ("b" if i % 2 else "a") / f"q{i}.png", image)
    (root / "images" / "a" / "broken.png").write_bytes(b"not a png")
    return root


def _label(root: Path, out: Path, *extra: str) -> dict:
    args = [str(root / "images"), "--examples", str(root / "examples"), "--out", str(out)]
    parsed = label.build_parser().parse_args(
        [*args, "--workers", "0", "--quiet", "--dtype", "float32", *extra]
    )
    return label.run(parsed)


def _outputs(out: Path) -> dict[str, bytes]:
    skip = {"manifest", "labelling.json"}
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.relative_to(out).parts[0] not in skip
    }


@pytest.fixture(scope="module")
def labelled(label_set, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("labelled") / "out"
    report = _label(label_set, out)
    assert report["labelled"] == 7 and len(report["failed"]) == 1
    return out


def test_label_cli_writes_masks_coco_and_label_studio_that_agree(labelled):
    pngs = {
        p.name[: -len("_mask.png")]: load_mask(p) for p in (labelled / "masks").glob("*_mask.png")
    }
    assert sorted(pngs) == [f"q{i}" for i in range(7)]
    assert sum(m.any() for m in pngs.values()) >= 5  # the demo model labels most of them
    for file_name, mask in coco.read_coco_masks(labelled / "coco.json"):
        np.testing.assert_array_equal(mask, pngs[Path(file_name).stem], err_msg=file_name)
    classes = json.loads((labelled / "classes.json").read_text())
    ids = {name: int(i) for i, name in classes["classes"].items()}
    assert sorted(ids) == sorted(FIXED_CLASS_NAMES[1:])
    tasks = json.loads((labelled / "label_studio_tasks.json").read_text())
    assert {t["data"]["image"] for t in tasks} == {
        f"/data/local-files/?d=images/{'b' if i % 2 else 'a'}/q{i}.png" for i in range(7)
    }
    for t in tasks:
        decoded = labelstudio.decode_results(t["predictions"][0]["result"], ids)
        expected = pngs[t["meta"]["key"]]
        np.testing.assert_array_equal(decoded if decoded is not None else 0 * expected, expected)
    [(name, error)] = classes["failed"]
    assert name == "a/broken.png" and "not an image" in error


def test_review_lists_images_least_sure_first(labelled):
    data = json.loads((labelled / "coco.json").read_text())
    scores = {Path(i["file_name"]).stem: i["score"] for i in data["images"]}
    page = (labelled / "review.html").read_text()
    order = sorted(scores, key=lambda k: (scores[k], k))
    positions = [page.index(f"{k}_overlay.png") for k in order]
    assert positions == sorted(positions)
    assert "broken.png" in page
    assert (labelled / "review.png").stat().st_size > 1000


def test_a_killed_run_resumes_to_the_same_files(label_set, labelled, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real = Labeller.label
    calls = {"n": 0}

    def dies_on_second_batch(self, images, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, images, **kw)

    monkeypatch.setattr(Labeller, "label", dies_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        _label(label_set, out)
    monkeypatch.setattr(Labeller, "label", real)
    done_before = len((out / "manifest" / "rank-0.jsonl").read_text().splitlines())
    assert done_before == 4  # the first batch of 4 (the unreadable image among them)
    with open(out / "manifest" / "rank-0.jsonl", "a") as f:
        f.write('{"index": 6, "key": "cut sh')  # a line a kill cut short
    with pytest.raises(ConfigError, match="--resume"):
        _label(label_set, out)
    report = _label(label_set, out, "--resume")
    assert report["labelled"] == 7
    assert _outputs(out) == _outputs(labelled)


def test_another_runs_folder_is_refused_and_nothing_is_lost(label_set, labelled, tmp_path):
    before = _outputs(labelled)
    with pytest.raises(ConfigError, match="another labelling run"):
        _label(label_set, labelled, "--ensemble", "spatial", "--resume")
    assert _outputs(labelled) == before


def test_bad_examples_give_clear_errors(label_set, tmp_path):
    image = label_set / "examples" / "images" / "e0.png"
    empty = tmp_path / "empty.png"
    save_index_mask(empty, np.zeros(SIZE, dtype=np.int64))
    small = tmp_path / "small.png"
    save_index_mask(small, np.ones((10, 10), dtype=np.int64))
    base = [str(label_set / "images"), "--out", str(tmp_path / "o"), "--quiet"]
    for mask, error in ((empty, InvalidMaskError), (small, InputMismatchError)):
        with pytest.raises(error):
            label.run(label.build_parser().parse_args([*base, "--example", str(image), str(mask)]))
    assert not (tmp_path / "o").exists()


def test_label_cli_reports_errors_in_one_line(tmp_path, error_line):
    code = label.main([str(tmp_path / "missing"), "--example", "a", "b", "--out", str(tmp_path)])
    assert code == 2 and "no such file" in error_line()


def test_text_lists_and_datasets_folders_are_labelled(label_set, tmp_path):
    datasets = pytest.importorskip("datasets")
    queries, _ = fixed_class_split(SIZE, "held_out", 3)
    rows = datasets.Dataset.from_dict({"image": [Image.fromarray(q) for q in queries]}).cast_column(
        "image", datasets.Image()
    )
    rows.save_to_disk(str(tmp_path / "ds"))
    listed = sorted((label_set / "images" / "a").glob("q*.png"))
    (tmp_path / "list.txt").write_text("# two images\n" + "\n".join(map(str, listed)) + "\n")
    args = label.build_parser().parse_args(
        [
            str(tmp_path / "list.txt"),
            str(tmp_path / "ds"),
            "--examples",
            str(label_set / "examples"),
            "--out",
            str(tmp_path / "o"),
            "--workers",
            "1",
            "--quiet",
        ]
    )
    report = label.run(args)
    assert report["labelled"] == len(listed) + 3 and not report["failed"]
    names = [
        i["file_name"] for i in json.loads((tmp_path / "o" / "coco.json").read_text())["images"]
    ]
    expected = [f"images/a/{p.name}" for p in listed] + [f"ds/{i:06d}.png" for i in range(3)]
    assert all(n.endswith(e) and not n.startswith("/") for n, e in zip(names, expected)), names


def _torchrun(nproc: int, label_set: Path, out: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_port", str(29500 + (os.getpid() + nproc) % 1000), "-m", "tools.label",
            str(label_set / "images"), "--examples", str(label_set / "examples"),
            "--out", str(out), "--workers", "0", "--quiet", "--device", "cpu",
            "--dtype", "float32",
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_write_the_same_files_as_one(label_set, tmp_path):
    """torchrun with 2 gloo processes (each labels its batches, rank 0 merges) against one
    process launched the same way."""
    _torchrun(1, label_set, tmp_path / "one")
    _torchrun(2, label_set, tmp_path / "two")
    shards = sorted(p.name for p in (tmp_path / "two" / "manifest").iterdir())
    assert shards == ["rank-0.jsonl", "rank-1.jsonl"]
    assert _outputs(tmp_path / "two") == _outputs(tmp_path / "one")


def test_a_tuned_prompt_for_another_model_is_refused(label_set, tiny_checkpoint, tmp_path):
    from painter.errors import CheckpointError
    from seggpt.loading import DEMO_TUNED_PROMPT

    args = [str(label_set / "images"), "--tuned-prompt", str(DEMO_TUNED_PROMPT)]
    args += ["--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "o"), "--quiet"]
    with pytest.raises(CheckpointError, match="tuned for model"):
        label.run(label.build_parser().parse_args(args))
    assert not (tmp_path / "o").exists()
