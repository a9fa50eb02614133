"""The Gradio app: its pure functions in-process, then every endpoint through gradio_client
against a server in a subprocess; masks must equal the predictor's, class id for class id."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import app_gradio as app
from painter.errors import InputMismatchError, InvalidImageError, InvalidMaskError
from painter.io import default_palette, load_image, load_mask, overlay, save_image
from painter.promptable import PromptablePredictor, build_sam, refine_mask
from seggpt import SegGPTPredictor, serving
from seggpt.samples import FIXED_CLASS_NAMES, fixed_class_split
from seggpt.tuning import TunedPrompt
from seggpt.video import VideoSegmenter
from tools.app.server import REPO

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402


@contextlib.contextmanager
def one_thread():
    """The server runs with one thread; so does the reference, for bit-equal float sums."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def predictor(tiny_predictor) -> SegGPTPredictor:
    return tiny_predictor


# --- pure functions ----------------------------------------------------------------------------


def test_mask_from_layers_maps_brush_colors_to_ids():
    layer = np.zeros((6, 8, 4), dtype=np.uint8)
    layer[1, 1] = (*serving.BRUSH_COLORS[0], 255)
    layer[2, 3] = (*(serving.BRUSH_COLORS[2].astype(int) + 3).clip(0, 255), 200)  # anti-aliased
    layer[4, 4] = (*serving.BRUSH_COLORS[1], 60)  # faint edge: not drawn
    top = np.zeros_like(layer)
    top[1, 1] = (*serving.BRUSH_COLORS[4], 255)  # a later layer paints over
    ids = serving.mask_from_layers([layer, top], (6, 8))
    expected = np.zeros((6, 8), dtype=np.int64)
    expected[1, 1], expected[2, 3] = 5, 3
    np.testing.assert_array_equal(ids, expected)
    small = layer[::2, ::2]  # (3, 4, 4): resized to the image (nearest)
    assert serving.mask_from_layers([small], (6, 8)).shape == (6, 8)


def test_prompt_from_slot_prefers_uploaded_mask_and_explains_problems(tmp_path):
    image = np.full((8, 8, 4), 255, dtype=np.uint8)
    layer = np.zeros((8, 8, 4), dtype=np.uint8)
    assert serving.prompt_from_slot(0, None, None) is None
    with pytest.raises(InvalidMaskError, match="example 1 has no mask"):
        serving.prompt_from_slot(0, {"background": image, "layers": [layer]}, None)
    with pytest.raises(InvalidImageError, match="example 2 has a mask but no image"):
        serving.prompt_from_slot(1, {"background": None, "layers": []}, "mask.png")
    stroke = layer.copy()
    stroke[3, 3] = (*serving.BRUSH_COLORS[0], 255)
    with pytest.raises(InvalidImageError, match="example 1 has a mask but no image"):
        serving.prompt_from_slot(0, {"background": None, "layers": [stroke]}, None)
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[2:5, 2:5] = 255
    save_image(tmp_path / "mask.png", mask)
    _, loaded = serving.prompt_from_slot(
        0, {"background": image, "layers": [layer]}, tmp_path / "mask.png"
    )
    np.testing.assert_array_equal(loaded, mask // 255)


def test_segment_arrays_equals_predictor_and_keeps_color_masks(predictor):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(3)]
    colors = np.zeros((40, 56, 3), dtype=np.uint8)
    colors[5:20, 5:30] = (10, 200, 30)
    colors[25:35, 30:50] = (250, 0, 120)
    seg = serving.segment_arrays(predictor, images[:1], [colors], images[1:])
    reference = predictor.predict(images[:1], [colors], images[1:])
    for mask, painted, over, ref, query in zip(
        seg.masks, seg.painted, seg.overlays, reference, images[1:]
    ):
        np.testing.assert_array_equal(mask, ref.mask)
        np.testing.assert_array_equal(painted, ref.painted)
        np.testing.assert_array_equal(over, overlay(query, ref.mask, seg.palette))
    np.testing.assert_array_equal(seg.palette, [(0, 0, 0), (10, 200, 30), (250, 0, 120)])
    assert "segmented 2 queries from 1 example(s)" in seg.info


def test_segment_arrays_rejects_bad_requests(predictor):
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    mask = np.eye(16, dtype=np.uint8)
    with pytest.raises(InputMismatchError, match="at least one query"):
        serving.segment_arrays(predictor, [image], [mask], [])
    with pytest.raises(InputMismatchError, match="at most"):
        serving.segment_arrays(predictor, [image], [mask], [image] * (serving.MAX_QUERIES + 1))
    with pytest.raises(InputMismatchError, match="unknown ensemble"):
        serving.segment_arrays(predictor, [image], [mask], [image], ensemble="mean")


def test_output_names_are_distinct():
    assert serving.upload_names(["a/x.png", "b/x.png", "x_2.png", "y.jpg"]) == [
        "x",
        "x_2",
        "x_2_2",
        "y",
    ]


def test_main_reports_a_bad_checkpoint_without_a_traceback(tmp_path, capsys):
    assert app.main(["--checkpoint", str(tmp_path / "missing.safetensors")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert app.main(["--concurrency", "0"]) == 2


# --- the running app ---------------------------------------------------------------------------


def test_named_endpoints(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {
        "/segment",
        "/example_files",
        "/model_info",
        "/track",
        "/video_example",
        "/segment_tuned",
        "/promptable",
        "/refine",
        "/label_start",
        "/label_add_example",
        "/label_all",
        "/label_page",
        "/label_click",
        "/label_brush",
        "/label_accept",
        "/label_export",
    }
    names = [p["parameter_name"] for p in endpoints["/segment"]["parameters"]]
    assert names == ["prompt_images", "prompt_masks", "query_images", "ensemble"]


def test_model_info(client):
    info = client.predict(api_name="/model_info")
    assert info["model"] == "seggpt_test"
    assert info["canvas_size"] == [128, 64]
    assert info["ensembles"] == ["feature", "spatial"]


@pytest.mark.parametrize(
    "name, ensemble",
    [
        ("synthetic_4shot", "spatial"),
        ("synthetic_4shot", "feature"),
        ("photo_two_views", "feature"),
    ],
)
def test_segment_endpoint_equals_predictor(client, predictor, name, ensemble):
    prompt_images, prompt_masks, queries = client.predict(name, api_name="/example_files")
    assert len(prompt_images) == len(prompt_masks) >= 1 and len(queries) == 1
    masks, overlays, painted, info = client.predict(
        [handle_file(p) for p in prompt_images],
        [handle_file(p) for p in prompt_masks],
        [handle_file(p) for p in queries],
        ensemble,
        api_name="/segment",
    )
    with one_thread():  # the app's route: prompts prepared once, then the queries
        prompts = predictor.prepare_prompts(prompt_images, prompt_masks, ensemble=ensemble)
        [reference] = predictor.predict(None, None, queries, prompts=prompts)
    assert [Path(p).name for p in masks] == ["query_mask.png"]
    mask = load_mask(masks[0])
    assert mask.dtype == np.int64 and mask.shape == reference.mask.shape
    np.testing.assert_array_equal(mask, reference.mask)  # exact class ids
    np.testing.assert_array_equal(load_image(painted[0]), reference.painted)
    palette = default_palette(int(max(load_mask(m).max() for m in prompt_masks)) + 1)
    expected_overlay = overlay(load_image(queries[0]), reference.mask, palette)
    np.testing.assert_array_equal(load_image(overlays[0]), expected_overlay)
    assert f"{ensemble} ensemble" in info


def test_several_queries_keep_their_order_and_names(client, predictor):
    prompt_images, prompt_masks, [query] = client.predict(
        "synthetic_multiclass", api_name="/example_files"
    )
    flipped = Path(client.output_dir) / "flipped.png"
    save_image(flipped, load_image(query)[:, ::-1])
    queries = [query, str(flipped)]
    masks, _, _, info = client.predict(
        [handle_file(p) for p in prompt_images],
        [handle_file(p) for p in prompt_masks],
        [handle_file(p) for p in queries],
        api_name="/segment",
    )
    with one_thread():
        reference = predictor.predict(prompt_images, prompt_masks, queries)
    assert [Path(p).name for p in masks] == ["query_mask.png", "flipped_mask.png"]
    for path, ref in zip(masks, reference):
        np.testing.assert_array_equal(load_mask(path), ref.mask)
    assert "2 queries" in info


def test_errors_are_readable_and_the_server_keeps_serving(client, tmp_path):
    rng = np.random.default_rng(1)
    save_image(tmp_path / "image.png", rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    mask = np.zeros((48, 64), dtype=np.uint8)
    mask[10:30, 10:40] = 255
    save_image(tmp_path / "mask.png", mask)
    save_image(tmp_path / "small_mask.png", mask[:32, :32])
    save_image(tmp_path / "empty_mask.png", np.zeros_like(mask))
    (tmp_path / "broken.png").write_text("not an image")
    image, query = handle_file(tmp_path / "image.png"), handle_file(tmp_path / "image.png")
    cases = [
        ([image], [handle_file(tmp_path / "small_mask.png")], "they must match"),
        ([image], [handle_file(tmp_path / "empty_mask.png")], "is empty"),
        (
            [handle_file(tmp_path / "broken.png")],
            [handle_file(tmp_path / "mask.png")],
            "not an image",
        ),
        (
            [image, image],
            [handle_file(tmp_path / "mask.png")],
            "2 prompt images but 1 prompt masks",
        ),
    ]
    for prompt_images, prompt_masks, message in cases:
        with pytest.raises(AppError, match=message) as caught:
            client.predict(prompt_images, prompt_masks, [query], api_name="/segment")
        assert "Traceback" not in str(caught.value)
    with pytest.raises(AppError, match="no example"):
        client.predict("nope", api_name="/example_files")
    # The server still answers, and correctly.
    masks, _, _, _ = client.predict(
        [image], [handle_file(tmp_path / "mask.png")], [query], api_name="/segment"
    )
    assert load_mask(masks[0]).shape == (48, 64)


def test_track_endpoint_equals_video_segmenter(client, predictor):
    frames, first_mask = client.predict(api_name="/video_example")
    assert len(frames) == 12 and load_mask(first_mask).max() >= 2  # several objects
    gif, masks_zip, info = client.predict(
        [handle_file(f) for f in frames], handle_file(first_mask), 2, api_name="/track"
    )
    with one_thread():
        expected = list(VideoSegmenter(predictor, memory_size=2).run(frames, first_mask))
    unpacked = Path(client.output_dir) / "unpacked"
    with zipfile.ZipFile(masks_zip) as archive:
        names = sorted(archive.namelist())
        archive.extractall(unpacked)
    assert names == [f"{i:05d}.png" for i in range(12)]
    for name, reference in zip(names, expected):
        np.testing.assert_array_equal(load_mask(unpacked / name), reference)
    assert Image.open(gif).n_frames == 12
    assert "through 12 frames with a memory of 2" in info


def test_track_errors_are_readable(client, tmp_path):
    frames, first_mask = client.predict(api_name="/video_example")
    small = tmp_path / "small_mask.png"
    save_image(small, load_mask(first_mask)[:20, :20].astype(np.uint8))
    with pytest.raises(AppError, match="first-frame mask is 20x20") as caught:
        client.predict([handle_file(f) for f in frames], handle_file(small), api_name="/track")
    assert "Traceback" not in str(caught.value)
    (tmp_path / "notes.txt").write_text("not a frame")
    with pytest.raises(AppError, match="not image frames"):
        client.predict(
            [handle_file(frames[0]), handle_file(tmp_path / "notes.txt")],
            handle_file(first_mask),
            api_name="/track",
        )


def test_segment_tuned_equals_predictor(client, predictor, tuned_prompt_file):
    images, _ = fixed_class_split(predictor.config.half_size, "held_out", 2)
    queries = []
    for i, image in enumerate(images):
        queries.append(Path(client.output_dir) / f"q{i}.png")
        save_image(queries[-1], image)
    masks, overlays, legend = client.predict(
        [handle_file(q) for q in queries], "shapes", None, api_name="/segment_tuned"
    )
    tuned = TunedPrompt.load(tuned_prompt_file)
    runner = SegGPTPredictor(predictor.model, device="cpu", seg_type=tuned.seg_type)
    with one_thread():
        reference = runner.predict(
            None, None, [str(q) for q in queries], prompts=tuned.prepared(runner.device)
        )
    assert [Path(m).name for m in masks] == ["q0_mask.png", "q1_mask.png"]
    for path, ref in zip(masks, reference):
        np.testing.assert_array_equal(load_mask(path), ref.mask)
    assert f"1={FIXED_CLASS_NAMES[1]}" in legend and len(overlays) == 2
    with pytest.raises(AppError, match="not a readable safetensors file"):
        client.predict(
            [handle_file(queries[0])], "", handle_file(queries[0]), api_name="/segment_tuned"
        )
    with pytest.raises(AppError, match="no tuned prompt named 'nope'"):
        client.predict([handle_file(queries[0])], "nope", None, api_name="/segment_tuned")


def test_promptable_endpoint_equals_predictor(client, promptable_file, tmp_path):
    image = load_image(client.predict("photo_two_views", api_name="/example_files")[2][0])
    save_image(tmp_path / "photo.png", image)
    reference = PromptablePredictor(build_sam(checkpoint=promptable_file), device="cpu")
    with one_thread():
        reference.set_image(image)
        by_point = reference.predict(points=[[40, 30]], labels=[1], multimask=True)
        by_box = reference.predict(box=[10, 12, 70, 50], multimask=False)
    masks, scores = client.predict(
        handle_file(tmp_path / "photo.png"), "40,30", "", api_name="/promptable"
    )
    order = np.argsort(-by_point.scores[0])
    assert scores == pytest.approx(by_point.scores[0][order].tolist(), abs=1e-5)
    assert len(masks) == 3
    for path, k in zip(masks, order):
        np.testing.assert_array_equal(load_mask(path), by_point.masks[0, k].astype(np.int64))
    [box_mask], [score] = client.predict(
        handle_file(tmp_path / "photo.png"), "", "10,12,70,50", api_name="/promptable"
    )
    np.testing.assert_array_equal(load_mask(box_mask), by_box.masks[0, 0].astype(np.int64))
    assert score == pytest.approx(float(by_box.scores[0, 0]), abs=1e-5)
    with pytest.raises(AppError, match="must be x,y or x,y,label"):
        client.predict(handle_file(tmp_path / "photo.png"), "40", "", api_name="/promptable")


def test_refine_endpoint_equals_refine_mask(client, promptable_file, tmp_path):
    image = load_image(client.predict("photo_two_views", api_name="/example_files")[2][0])
    save_image(tmp_path / "photo.png", image)
    mask = np.zeros(image.shape[:2], dtype=np.uint8)
    mask[10:40, 15:50] = 1
    mask[45:60, 60:90] = 2
    save_image(tmp_path / "mask.png", mask)
    refined = client.predict(
        handle_file(tmp_path / "photo.png"), handle_file(tmp_path / "mask.png"), api_name="/refine"
    )
    predictor = PromptablePredictor(build_sam(checkpoint=promptable_file), device="cpu")
    with one_thread():
        expected = refine_mask(predictor, image, mask.astype(np.int64))
    np.testing.assert_array_equal(load_mask(refined), expected)


@pytest.mark.slow
def test_load_benchmark_runs_small(tiny_checkpoint, tmp_path):
    out = tmp_path / "bench_app.json"
    command = [sys.executable, str(REPO / "benchmarks" / "bench_app.py"), "--clients", "4"]
    command += ["--requests", "2", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(command, cwd=REPO, env=env, check=True, timeout=600, capture_output=True)
    report = json.loads(out.read_text())
    load = report["app_under_load"]
    assert load["requests"] == 8 and load["failures"] == 0, load["errors"]
    assert report["app_one_client"]["failures"] == 0
    assert 0 < load["p50_s"] <= load["p90_s"] <= load["max_s"]
