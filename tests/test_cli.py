"""End-to-end tests of tools.infer on a tiny random model (tools.convert_checkpoint:
test_checkpoint.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from painter.io import load_mask
from tools import infer

ROOT = Path(__file__).resolve().parents[1]


def _noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def prompt(tmp_path) -> tuple[Path, Path]:
    """A 56x40 RGB prompt image and its mask with classes 1 and 2."""
    Image.fromarray(_noise((40, 56, 3), seed=0)).save(tmp_path / "prompt.png")
    mask = np.zeros((40, 56), dtype=np.uint8)
    mask[5:20, 5:30] = 1
    mask[25:35, 30:50] = 2
    Image.fromarray(mask).save(tmp_path / "prompt_mask.png")
    return tmp_path / "prompt.png", tmp_path / "prompt_mask.png"


@pytest.fixture
def query_dir(tmp_path) -> Path:
    """A grayscale 50x30 and an RGBA 36x64 query, plus a file that is not an image."""
    folder = tmp_path / "queries"
    folder.mkdir()
    Image.fromarray(_noise((30, 50), seed=1)).save(folder / "gray.png")
    Image.fromarray(_noise((64, 36, 4), seed=2), mode="RGBA").save(folder / "rgba.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def _infer_args(checkpoint: Path, prompt: tuple[Path, Path], out: Path, *queries: Path) -> list:
    args = ["--prompt-image", prompt[0], "--prompt-mask", prompt[1], "--out", out]
    args += ["--checkpoint", checkpoint, "--device", "cpu", "--batch-size", "1"]
    for query in queries:
        args += ["--query", query]
    return [str(arg) for arg in args]


def test_infer_writes_mask_overlay_and_painted_per_query(
    tmp_path, tiny_checkpoint, prompt, query_dir
):
    out = tmp_path / "out"
    assert infer.main(_infer_args(tiny_checkpoint, prompt, out, query_dir)) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        f"{stem}_{kind}.png" for stem in ("gray", "rgba") for kind in ("mask", "overlay", "painted")
    ]
    for stem, size in [("gray", (30, 50)), ("rgba", (64, 36))]:
        with Image.open(out / f"{stem}_mask.png") as image:
            assert image.mode == "P"
        mask = load_mask(out / f"{stem}_mask.png")
        assert mask.shape == size
        assert set(np.unique(mask)) <= {0, 1, 2}
        for kind in ("overlay", "painted"):
            with Image.open(out / f"{stem}_{kind}.png") as image:
                assert (image.height, image.width) == size and image.mode == "RGB"


def test_infer_refine_flag_refines_with_the_promptable_model(tmp_path, tiny_checkpoint, prompt):
    from painter.promptable import PromptablePredictor, build_sam, refine_mask

    query = tmp_path / "query.png"
    Image.fromarray(_noise((48, 64, 3), seed=3)).save(query)
    plain_out, refined_out = tmp_path / "plain", tmp_path / "refined"
    assert infer.main(_infer_args(tiny_checkpoint, prompt, plain_out, query)) == 0
    flags = ["--refine", "--refine-checkpoint", "demo", "--refine-min-score", "0"]
    args = _infer_args(tiny_checkpoint, prompt, refined_out, query) + flags
    assert infer.main(args) == 0
    raw = load_mask(plain_out / "query_mask.png")
    assert raw.any()  # something to refine
    refiner = PromptablePredictor(build_sam(checkpoint="demo"), device="cpu")
    expected = refine_mask(refiner, query, raw, min_score=0.0)
    np.testing.assert_array_equal(load_mask(refined_out / "query_mask.png"), expected)


def test_infer_refine_help_names_the_default_score():
    """The default lives in painter.promptable.refine (resolved by SegGPTPredictor); the help
    text states it without importing that package at start-up."""
    from painter.promptable.refine import DEFAULT_MIN_SCORE

    [action] = [a for a in infer.build_parser()._actions if a.dest == "refine_min_score"]
    assert action.default is None and f"{DEFAULT_MIN_SCORE}" in action.help


def test_folders_expand_to_sorted_images_and_duplicates_drop(tmp_path):
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.png", "a.JPG", ".hidden.png", "sub/c.png"):
        Image.fromarray(_noise((8, 8, 3), seed=0)).save(folder / name, format="PNG")
    (folder / "readme.md").write_text("#")
    found = infer.expand_queries([folder, folder / "b.png", tmp_path / "mixed" / "sub" / "c.png"])
    assert [p.relative_to(folder).as_posix() for p in found] == ["a.JPG", "b.png", "sub/c.png"]


def test_same_stem_in_two_folders_gives_two_outputs(tmp_path, tiny_checkpoint, prompt):
    for folder, size in [("x", (24, 40)), ("y", (48, 20))]:
        (tmp_path / folder).mkdir()
        Image.fromarray(_noise((*size, 3), seed=3)).save(tmp_path / folder / "img.png")
    out = tmp_path / "out"
    queries = (tmp_path / "x" / "img.png", tmp_path / "y")
    assert infer.main(_infer_args(tiny_checkpoint, prompt, out, *queries)) == 0
    assert load_mask(out / "x_img_mask.png").shape == (24, 40)
    assert load_mask(out / "y_img_mask.png").shape == (48, 20)
    assert not (out / "img_mask.png").exists()


def test_output_names_tell_clashing_files_apart():
    paths = [Path(p) for p in ("/d/x/u/k.png", "/d/y/u/k.png", "/d/q/a.png", "/d/q/a.jpg")]
    paths += [Path("/d/b.png"), Path("/d/x/b.png"), Path("/d/x_b.png")]
    names = infer.output_names(paths)
    assert names[:4] == ["x_u_k", "y_u_k", "a_png", "a_jpg"]
    assert len(set(names)) == len(names)


def test_missing_prompt_mask_exits_2_with_one_line(
    tmp_path, tiny_checkpoint, prompt, query_dir, error_line
):
    missing = (prompt[0], tmp_path / "no_such_mask.png")
    assert infer.main(_infer_args(tiny_checkpoint, missing, tmp_path / "out", query_dir)) == 2
    line = error_line()
    assert "no_such_mask.png" in line and "no such file" in line
    assert not (tmp_path / "out").exists()


def test_prompt_size_mismatch_exits_2_with_one_line(
    tmp_path, tiny_checkpoint, prompt, query_dir, error_line
):
    Image.fromarray(np.ones((30, 30), dtype=np.uint8)).save(tmp_path / "small_mask.png")
    bad_prompt = (prompt[0], tmp_path / "small_mask.png")
    args = _infer_args(tiny_checkpoint, bad_prompt, tmp_path / "out", query_dir)
    assert infer.main(args) == 2
    assert "must match" in error_line()


@pytest.mark.slow  # a fresh interpreter imports torch: seconds on a busy machine
def test_infer_module_reports_errors_without_traceback(tmp_path, prompt):
    """Run as ``python -m tools.infer``: a missing query folder is one line and exit code 2."""
    args = ["--prompt-image", prompt[0], "--prompt-mask", prompt[1], "--query", tmp_path / "nope"]
    command = [sys.executable, "-m", "tools.infer", *map(str, args), "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: query") and "\n" not in done.stderr.strip()


def test_out_that_is_a_file_exits_2(tmp_path, tiny_checkpoint, prompt, query_dir, error_line):
    (tmp_path / "taken").write_text("a file")
    assert infer.main(_infer_args(tiny_checkpoint, prompt, tmp_path / "taken", query_dir)) == 2
    assert "taken" in error_line()
