"""tools.promptable and tools.auto_masks end to end on the tiny random model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from painter.promptable import automatic
from tests.promptable_helpers import HEIGHT, WIDTH, scene
from tools import auto_masks
from tools import promptable as promptable_cli

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "scene.png"
    Image.fromarray(scene()).save(path)
    return path


def test_promptable_cli(image_file, tmp_path, capsys):
    out = tmp_path / "out"
    args = [str(image_file), "--variant", "sam_tiny", "--out", str(out), "--device", "cpu"]
    assert promptable_cli.main([*args, "--point", "30,20", "--point", "100,60,0"]) == 0
    report = json.loads((out / "scene_scores.json").read_text())
    assert len(report["scores"]) == 3 and report["labels"] == [1, 0]
    for name in ("scene_mask.png", "scene_mask_0.png", "scene_mask_2.png", "scene_overlay.png"):
        with Image.open(out / name) as saved:
            assert saved.size == (WIDTH, HEIGHT)
    assert promptable_cli.main([*args, "--box", "10,5,70,45", "--single-mask"]) == 0
    assert len(json.loads((out / "scene_scores.json").read_text())["scores"]) == 1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--variant", "sam_tiny", "--point", "500,20"], "outside"),
        (["--variant", "sam_tiny", "--point", "1,2,3,4"], "X,Y or X,Y,LABEL"),
        (["--variant", "sam_tiny", "--box", "50,5,10,20"], "x1 < x0"),
        (["--variant", "sam_tiny"], "at least one --point"),
        (["--point", "5,5"], "--checkpoint"),
        (["--variant", "sam_huge", "--point", "5,5"], "unknown promptable variant"),
    ],
)
def test_promptable_cli_bad_input_exits_2(image_file, tmp_path, capsys, extra, message):
    code = promptable_cli.main([str(image_file), "--out", str(tmp_path / "o"), *extra])
    assert code == 2
    assert message in capsys.readouterr().err


def test_auto_masks_cli(image_file, tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "auto"
    args = [str(image_file), "--out", str(out), "--device", "cpu", "--points-per-side", "4"]
    args += ["--pred-iou-thresh", "-1", "--stability-thresh", "0"]
    assert auto_masks.main([*args, "--variant", "sam_tiny"]) == 0
    report = json.loads((out / "scene_masks.json").read_text())
    with Image.open(out / "scene_classes.png") as saved:
        classes = np.asarray(saved)
    assert classes.shape == (HEIGHT, WIDTH) and report["size"] == [HEIGHT, WIDTH]
    assert report["masks"] and classes.max() <= len(report["masks"])
    for entry in report["masks"]:
        mask = automatic.decode_rle(entry["rle"])
        assert mask.sum() == entry["area"] and not (classes == entry["id"])[~mask].any()
    assert auto_masks.main([*args, "--checkpoint", str(tiny_checkpoint)]) == 2
    assert "seggpt.load_model" in capsys.readouterr().err
    assert (
        auto_masks.main([str(tmp_path / "nope.png"), "--out", str(out), "--variant", "sam_tiny"])
        == 2
    )
