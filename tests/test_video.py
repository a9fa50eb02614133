"""Video object segmentation: synthetic videos, J&F, propagation memory, bad input, the CLIs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from data_mixtures.synthetic_video import SyntheticVideoConfig, synthetic_video, video_looks
from painter.errors import ConfigError, InputMismatchError, InvalidMaskError, InvalidVideoError
from painter.io import load_mask
from painter.ops import denormalize
from seggpt.evaluation.vos_metrics import (
    boundary_map,
    contour_accuracy,
    region_similarity,
    score_sequence,
    tolerance_disk,
)
from seggpt.loading import DEMO_CHECKPOINT, load_model
from seggpt.predictor import SegGPTPredictor
from seggpt.video import DEFAULT_ADMIT_RATIO, VideoSegmenter
from seggpt.video_io import VideoFrames
from tools import eval_vos, vos

SMALL = SyntheticVideoConfig(num_frames=8, image_size=(48, 64), num_objects=3)


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint) -> SegGPTPredictor:
    return SegGPTPredictor(load_model(tiny_checkpoint), device="cpu", dtype="float32")


def test_synthetic_video_is_deterministic_and_multi_object():
    video = synthetic_video(SMALL, seed=4)
    again = synthetic_video(SMALL, seed=4)
    other = synthetic_video(SMALL, seed=5)
    assert len(video) == 8 and video.object_ids == (1, 2, 3)
    for a, b in zip(video.frames + video.masks, again.frames + again.masks):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(video.frames[0], other.frames[0])
    assert video.frames[0].shape == (48, 64, 3) and video.frames[0].dtype == np.uint8
    assert set(np.unique(video.masks[0])) == {0, 1, 2, 3}  # every object shows in frame 0
    assert all(set(np.unique(m)) <= {0, 1, 2, 3} for m in video.masks)
    assert not np.array_equal(video.masks[0], video.masks[-1])  # the objects move


def test_open_set_videos_draw_the_families_they_are_given():
    from data_mixtures.openset_config import held_out_config

    config = dataclasses.replace(SMALL, image_size=(64, 64), looks=held_out_config())
    video = synthetic_video(config, seed=4)
    again = synthetic_video(config, seed=4)
    for a, b in zip(video.frames + video.masks, again.frames + again.masks):
        np.testing.assert_array_equal(a, b)
    assert set(np.unique(video.masks[0])) == {0, 1, 2, 3}
    assert not np.array_equal(video.masks[0], video.masks[-1])
    closed = synthetic_video(dataclasses.replace(SMALL, image_size=(64, 64)), seed=4)
    assert not np.array_equal(video.frames[0], closed.frames[0])
    # An object's texture moves with it: where an object stays put between two frames (the
    # pixels it covers in both), its colours barely change (frame noise only).
    for t in range(len(video) - 1):
        both = (video.masks[t] == 1) & (video.masks[t + 1] == 1)
        if both.sum() > 20:
            break
    step = np.abs(video.frames[t].astype(float) - video.frames[t + 1].astype(float))[both]
    assert np.median(step) < 40


def test_boundary_map_and_empty_conventions():
    square = np.zeros((20, 20), dtype=bool)
    square[5:11, 5:11] = True
    assert boundary_map(square).sum() == 4 * 6
    empty = np.zeros_like(square)
    assert region_similarity(empty, empty) == 1.0 and contour_accuracy(empty, empty) == 1.0
    assert region_similarity(square, empty) == 0.0 and contour_accuracy(square, empty) == 0.0
    assert tolerance_disk((480, 854)).shape == (17, 17)  # ceil(0.008 * 979.7) = 8 px


def test_jf_is_one_for_a_perfect_prediction():
    video = synthetic_video(SMALL, seed=1)
    score = score_sequence(list(video.masks), list(video.masks), name="perfect")
    assert score.jf == 1.0 and len(score.objects) == 3 and score.frames == 6


def test_jf_of_a_shifted_square_by_hand():
    """A 10x10 square at rows/cols 20..29 of a 64x64 frame, predicted 4 px to the right.

    J = overlap 10 x 6 / union 10 x 14 = 3/7. Tolerance ceil(0.008 * 90.5) = 1 px (a plus-shaped
    disk). Each boundary has 4 x 10 = 40 pixels (column left of and row above the square, its
    right column and bottom row). Predicted boundary pixels within 1 px of the true boundary:
    left column 4 (rows 19, 20, 28, 29), top row 7 (cols 24-30), right column 0, bottom row 7
    (cols 24-30): precision 18/40. True boundary near the predicted one: left column 0, top row
    8 (cols 22-29), right column 3 (rows 20, 28, 29), bottom row 7 (cols 22-28): recall 18/40.
    F = 0.45. Only the middle frame of the three is scored.
    """
    truth = np.zeros((64, 64), dtype=np.int64)
    truth[20:30, 20:30] = 1
    shifted = np.zeros_like(truth)
    shifted[20:30, 24:34] = 1
    score = score_sequence([truth, shifted, truth], [truth, truth, truth])
    assert score.j == pytest.approx(3 / 7) and score.f == pytest.approx(0.45)
    assert score.jf == pytest.approx((3 / 7 + 0.45) / 2) and score.frames == 1


def test_propagation_keeps_object_ids_and_a_bounded_color_memory(predictor):
    video = synthetic_video(SMALL, seed=2)
    segmenter = VideoSegmenter(predictor, memory_size=3, admit_ratio=None)
    state = segmenter.start(video.frames[0], video.masks[0])
    outputs = [state.first.mask]
    for frame in video.frames[1:]:
        outputs.append(segmenter.step(state, frame))
    np.testing.assert_array_equal(outputs[0], video.masks[0])  # the given mask is frame 0's
    assert all(set(np.unique(m)) <= {0, 1, 2, 3} for m in outputs)
    assert [m.index for m in state.recent] == [5, 6, 7] and state.next_index == 8
    for memory in state.recent:
        np.testing.assert_array_equal(memory.mask, outputs[memory.index])
    prompts = state.prompts()
    assert prompts.images.shape[0] == 4 and prompts.coloring.shown_ids == (0, 1, 2, 3)
    palette = prompts.coloring.palette.astype(np.int64)  # (4, 3): one colour per object id
    assert len({tuple(c) for c in palette}) == 4
    for memory in state.prompt_frames:  # every prompt is painted in the video's object colours
        rgb = torch.round(denormalize(memory.target) * 255).permute(1, 2, 0).reshape(-1, 3)
        colors = {tuple(c) for c in rgb.to(torch.int64).tolist()}
        assert colors <= {tuple(c) for c in palette.tolist()}
    ids_in_first = {tuple(palette[i]) for i in (1, 2, 3)}
    first_rgb = torch.round(denormalize(state.first.target) * 255).permute(1, 2, 0)
    assert ids_in_first <= {tuple(c) for c in first_rgb.reshape(-1, 3).to(torch.int64).tolist()}


class ScriptedPredictor:
    """The tiny predictor's sizes and device, but predictions read from a script."""

    def __init__(self, predictor, masks):
        self.config, self.device, self.masks = predictor.config, predictor.device, iter(masks)

    def predict(self, *args, **kwargs):
        return [type("Prediction", (), {"mask": next(self.masks)})()]


def test_memory_admits_only_frames_whose_objects_keep_their_size(predictor):
    video = synthetic_video(SMALL, seed=2)
    lost = video.masks[2].copy()
    lost[lost == 1] = 0  # object 1 vanished
    swollen = video.masks[3].copy()
    grown = np.zeros_like(swollen, dtype=bool)
    rows, cols = np.nonzero(video.masks[0] == 2)
    area = len(rows)
    grown[rows.min() : rows.min() + 6, :] = True  # object 2 spread over whole rows
    swollen[grown] = 2
    assert (swollen == 2).sum() > 2 * area
    script = [video.masks[1], lost, swollen, video.masks[4]]
    for ratio, kept in ((2.0, [1, 4]), (None, [1, 2, 3, 4])):
        segmenter = VideoSegmenter(
            ScriptedPredictor(predictor, script), memory_size=8, admit_ratio=ratio
        )
        state = segmenter.start(video.frames[0], video.masks[0])
        outputs = [segmenter.step(state, frame) for frame in video.frames[1:5]]
        for out, expected in zip(outputs, script):  # every prediction is output, admitted or not
            np.testing.assert_array_equal(out, expected)
        assert [m.index for m in state.recent] == kept and state.next_index == 5
        assert (state.admitted, state.rejected) == (len(kept), 4 - len(kept))
    with pytest.raises(ConfigError, match="admit_ratio"):
        VideoSegmenter(predictor, admit_ratio=1.0)


def test_run_matches_step_and_memory_zero_uses_the_first_frame_only(predictor):
    video = synthetic_video(SMALL, seed=3)
    masks = list(VideoSegmenter(predictor, memory_size=0).run(video.frames, video.masks[0]))
    assert len(masks) == len(video)
    segmenter = VideoSegmenter(predictor, memory_size=0)
    state = segmenter.start(video.frames[0], video.masks[0])
    np.testing.assert_array_equal(segmenter.step(state, video.frames[1]), masks[1])
    assert len(state.recent) == 0 and state.prompts().images.shape[0] == 1


def test_bad_input_raises_typed_errors_that_say_what_to_fix(predictor, tmp_path):
    video = synthetic_video(SMALL, seed=0)
    segmenter = VideoSegmenter(predictor)
    other_size = np.zeros((40, 64, 3), dtype=np.uint8)
    with pytest.raises(InputMismatchError, match="one size"):
        list(segmenter.run([video.frames[0], other_size], video.masks[0]))
    with pytest.raises(InputMismatchError, match="first-frame mask is 32x24.*frames' size"):
        segmenter.start(video.frames[0], video.masks[0][:24, :32])
    with pytest.raises(InvalidMaskError, match="no object"):
        segmenter.start(video.frames[0], np.zeros((48, 64), dtype=np.int64))
    state = segmenter.start(video.frames[0], video.masks[0])
    with pytest.raises(InvalidMaskError, match=r"ids \[7\] are not objects"):
        segmenter.add_to_memory(state, video.frames[1], np.full((48, 64), 7))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(InvalidVideoError, match="convert it to MP4"):
        VideoFrames(broken)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidVideoError, match="no frame images"):
        VideoFrames(tmp_path / "empty")
    with pytest.raises(InvalidVideoError, match="no such"):
        VideoFrames(tmp_path / "missing.mp4")


def test_frames_from_a_folder_and_a_video_file(tmp_path):
    import cv2

    video = synthetic_video(SMALL, seed=6)
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in (10, 2, 1):  # numeric names sort as numbers
        Image.fromarray(video.frames[t % 8]).save(folder / f"{t}.png")
    frames = VideoFrames(folder)
    assert frames.names == ["1", "2", "10"] and len(list(frames)) == 3
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (64, 48))
    for frame in video.frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    decoded = list(VideoFrames(path))
    assert len(decoded) == 8 and decoded[0].shape == (48, 64, 3)
    assert np.abs(decoded[0].astype(int) - video.frames[0]).mean() < 20  # lossy codec


def test_vos_cli_on_the_synthetic_video_then_eval(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--synthetic", "0", "--out", str(out), "--memory", "2"]
    argv += ["--checkpoint", str(tiny_checkpoint), "--device", "cpu"]
    assert vos.main(argv) == 0
    printed = capsys.readouterr().out
    assert "frames/s" in printed
    truth = out / "synthetic_data" / "Annotations" / "480p"
    pngs = sorted((out / "synthetic-0").glob("*.png"))
    assert len(pngs) == SyntheticVideoConfig().num_frames and pngs[0].name == "00000.png"
    np.testing.assert_array_equal(
        load_mask(pngs[0]), load_mask(truth / "synthetic-0" / "00000.png")
    )
    assert Image.open(pngs[0]).mode == "P" and (out / "synthetic-0_overlay.gif").is_file()
    assert vos.main(argv) == 0 and "kept" in capsys.readouterr().out  # finished: not redone
    report = tmp_path / "jf.json"
    argv = ["--results", str(out), "--annotations", str(truth), "--sequences", "synthetic-0"]
    assert eval_vos.main([*argv, "--json", str(report)]) == 0
    scores = json.loads(report.read_text())
    assert 0.0 <= scores["global"]["J&F"] <= 1.0 and "synthetic-0" in scores["sequences"]
    assert eval_vos.main(["--results", str(truth), "--annotations", str(truth)]) == 0
    assert "100.00" in capsys.readouterr().out.splitlines()[-1]


def test_cli_errors_are_one_line(tmp_path, capsys):
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"not a video")
    mask = tmp_path / "mask.png"
    Image.fromarray(np.ones((4, 4), dtype=np.uint8)).save(mask)
    code = vos.main(["--video", str(broken), "--first-mask", str(mask), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and "broken.avi" in err
    code = eval_vos.main(["--results", str(tmp_path / "none"), "--annotations", str(tmp_path)])
    assert code == 2 and "not found" in capsys.readouterr().err


@pytest.mark.slow
def test_admission_keeps_bad_frames_out_of_the_memory():
    """Mean J&F over eight synthetic videos of the held-out families with the open-set demo
    model: K = 8 with admission (the default ratio, 1.25, chosen on seeds 8..11) beats K = 8
    admitting every frame. Measured (seeds 0..7): 0.559 with admission, 0.305 admitting every
    frame, 0.439 at the earlier ratio 2; the first frame alone scores 0.568, so with this small
    model a memory of its own predictions does not help (earlier closed-set model on its own
    generator's videos: 0.257 vs 0.246)."""
    if not DEMO_CHECKPOINT.is_file():
        pytest.skip(f"the demo checkpoint {DEMO_CHECKPOINT} is not built yet")
    predictor = SegGPTPredictor(load_model("demo"), device="cpu")
    config = SyntheticVideoConfig(
        image_size=predictor.config.half_size, looks=video_looks("held-out")
    )
    scores = {"admitted": [], "every frame": []}
    for seed in range(8):
        video = synthetic_video(config, seed=seed)
        for name, runs in scores.items():
            ratio = None if name == "every frame" else DEFAULT_ADMIT_RATIO
            segmenter = VideoSegmenter(predictor, memory_size=8, admit_ratio=ratio)
            masks = list(segmenter.run(video.frames, video.masks[0]))
            runs.append(score_sequence(masks, list(video.masks)).jf)
    assert np.mean(scores["admitted"]) > np.mean(scores["every frame"]), scores
