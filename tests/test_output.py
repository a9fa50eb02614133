"""seggpt.outputs: one palette, one naming rule and one writer for the CLI and the app; the same
prediction gives byte-identical files from ``tools.infer`` and from the app's /segment path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from painter.io import default_palette, load_mask
from seggpt import SegGPTPredictor, load_model, serving
from seggpt.coloring import prepare_prompt_masks
from seggpt.outputs import (
    OUTPUT_KINDS,
    display_palette,
    output_names,
    output_paths,
    write_prediction,
)
from tools import infer


def _noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _prompt_mask(kind: str) -> np.ndarray:
    """A 56x40 prompt mask: 0/255 binary, class ids 0..2, or two colours on black."""
    ids = np.zeros((40, 56), dtype=np.uint8)
    ids[5:20, 5:30] = 1
    ids[25:35, 30:50] = 2
    if kind == "binary":
        return (ids > 0).astype(np.uint8) * 255
    if kind == "index":
        return ids
    return np.array([(0, 0, 0), (10, 200, 30), (250, 0, 120)], dtype=np.uint8)[ids]


@pytest.mark.parametrize("kind", ["binary", "index", "colour"])
def test_cli_and_app_write_byte_identical_files(tmp_path, tiny_checkpoint, kind):
    prompt, mask, query = tmp_path / "prompt.png", tmp_path / "prompt_mask.png", tmp_path / "q.png"
    Image.fromarray(_noise((40, 56, 3), seed=0)).save(prompt)
    Image.fromarray(_prompt_mask(kind)).save(mask)
    Image.fromarray(_noise((30, 50, 3), seed=1)).save(query)
    cli_out, app_out = tmp_path / "cli", tmp_path / "app"
    args = ["--prompt-image", prompt, "--prompt-mask", mask, "--query", query, "--out", cli_out]
    args += ["--checkpoint", tiny_checkpoint, "--device", "cpu", "--dtype", "float32"]
    assert infer.main([str(arg) for arg in args]) == 0

    predictor = SegGPTPredictor(load_model(tiny_checkpoint), device="cpu", dtype="float32")
    seg = serving.segment_arrays(predictor, [prompt], [mask], [query])  # the /segment path
    serving.write_segmentation(seg, serving.upload_names([query]), app_out)

    for kind_name in OUTPUT_KINDS:
        cli_file, app_file = cli_out / f"q_{kind_name}.png", app_out / f"q_{kind_name}.png"
        assert cli_file.read_bytes() == app_file.read_bytes(), kind_name
    with Image.open(cli_out / "q_mask.png") as image:
        colors = np.array(image.getpalette()[:9], dtype=np.uint8).reshape(3, 3)
    expected = default_palette(3)
    if kind == "colour":
        expected = _prompt_mask("colour")[[0, 10, 30], [0, 10, 40]]  # black, then sorted colours
    elif kind == "binary":
        expected = default_palette(2)
        colors = colors[:2]
    np.testing.assert_array_equal(colors, expected)


def test_display_palette_keeps_user_colors_and_uses_voc_otherwise():
    _, index = prepare_prompt_masks([_prompt_mask("index")])
    np.testing.assert_array_equal(display_palette(index), default_palette(3))
    _, binary = prepare_prompt_masks([_prompt_mask("binary")])
    np.testing.assert_array_equal(display_palette(binary), default_palette(2))
    _, color = prepare_prompt_masks([_prompt_mask("colour")])
    np.testing.assert_array_equal(display_palette(color), [(0, 0, 0), (10, 200, 30), (250, 0, 120)])


def test_output_names_folders_then_extensions_then_a_counter():
    paths = [Path(p) for p in ("/d/x/u/k.png", "/d/y/u/k.png", "/d/q/a.png", "/d/q/a.jpg")]
    assert output_names(paths) == ["x_u_k", "y_u_k", "a_png", "a_jpg"]
    assert output_names(["x.png", "x.png", "x_2.png", "y.jpg"]) == ["x", "x_2", "x_2_2", "y"]
    assert output_names(["/a/b.png", "/a/b.png"]) == ["b", "b_2"]
    assert output_names([]) == []


def test_upload_names_ignore_the_upload_folders():
    uploads = ["/tmp/gradio/3f2a/cat.png", "/tmp/gradio/9c1d/cat.png", "/tmp/gradio/77/dog.jpg"]
    assert serving.upload_names(uploads) == ["cat", "cat_2", "dog"]


def test_write_prediction_writes_what_it_is_given(tmp_path):
    mask = np.zeros((6, 8), dtype=np.int64)
    mask[1:3, 2:5] = 2
    image = _noise((6, 8, 3), seed=0)
    palette = default_palette(3)
    written = write_prediction(tmp_path / "out", "a", mask, palette, image=image, painted=image)
    assert written == output_paths(tmp_path / "out", "a")
    np.testing.assert_array_equal(load_mask(written[0]), mask)
    only_mask = write_prediction(tmp_path / "out", "b", mask, palette)
    assert [p.name for p in only_mask] == ["b_mask.png"]
