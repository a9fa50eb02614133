"""The promptable model on a tiny random variant: config, predictor, bad inputs, automatic masks
and refinement (attention orders and transforms: test_promptable_parts.py; the CLIs:
test_promptable_cli.py; checkpoints: test_checkpoint.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision

from painter.errors import ConfigError, InputMismatchError, InvalidMaskError
from painter.promptable import (
    AutomaticMaskGenerator,
    PromptablePredictor,
    automatic,
    class_map,
    get_sam_config,
    list_sam_models,
    refine_mask,
)
from painter.promptable.config import SamConfig, sam_encoder
from painter.promptable.refine import component_prompts
from painter.promptable.transforms import (
    upscale_logits,
)
from tests.promptable_helpers import HEIGHT, WIDTH, scene

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def predictor(sam_tiny):
    predictor = PromptablePredictor(sam_tiny, device="cpu")
    predictor.set_image(scene())
    return predictor


# -- config and registry --------------------------------------------------------------------------
def test_registry_and_config_round_trip():
    assert list_sam_models() == ["sam_demo", "sam_tiny", "sam_vit_b", "sam_vit_h", "sam_vit_l"]
    config = get_sam_config("sam_vit_l")
    assert config.encoder.global_attn_blocks == (5, 11, 17, 23) and config.grid == 64
    assert SamConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="sam_tiny"):
        get_sam_config("sam_vit_x")
    with pytest.raises(ConfigError, match="embedding grid"):
        SamConfig(encoder=sam_encoder(64, 2, 2, (1,), image_size=256), image_size=512)


def test_vit_b_matches_meta_layout_without_running_it():
    """Our sam_vit_b, written with Meta's names, has exactly Meta's keys and shapes."""
    build = pytest.importorskip("segment_anything.build_sam")
    from painter.promptable.checkpoint import native_to_official
    from painter.promptable.model import build_sam_from_config

    with torch.device("meta"):  # shapes only: nothing is allocated or run
        ours = build_sam_from_config(get_sam_config("sam_vit_b"))
        reference = build.build_sam_vit_b(checkpoint=None).state_dict()
    state = native_to_official(ours.state_dict(), ours.config)
    assert len(state) == len(reference) == 314
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        k: tuple(v.shape) for k, v in reference.items()
    }
    parameters = sum(p.numel() for p in ours.parameters())
    assert parameters == 93_735_472  # 93.7M, as published


# -- predictor ------------------------------------------------------------------------------------
def test_predict_caches_the_embedding(sam_tiny, monkeypatch):
    predictor = PromptablePredictor(sam_tiny, device="cpu")
    calls = []
    original = sam_tiny.encode_images
    monkeypatch.setattr(sam_tiny, "encode_images", lambda x: calls.append(1) or original(x))
    predictor.set_image(scene())
    first = predictor.predict(points=[[30, 20]], labels=[1])
    second = predictor.predict(points=[[30, 20]], labels=[1])
    assert len(calls) == 1
    assert np.array_equal(first.masks, second.masks)
    assert np.array_equal(first.low_res_logits, second.low_res_logits)
    assert first.masks.shape == (1, 3, HEIGHT, WIDTH) and first.masks.dtype == bool
    assert first.scores.shape == (1, 3) and first.low_res_logits.shape == (1, 3, 64, 64)
    assert first.best().shape == (1, HEIGHT, WIDTH)


def test_predictor_equals_the_module_on_an_input_sized_image(sam_tiny):
    image = scene(256, 256, seed=1)
    predictor = PromptablePredictor(sam_tiny, device="cpu")
    predictor.set_image(image)
    result = predictor.predict(points=[[100, 40], [10, 200]], labels=[1, 0], multimask=False)
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        low, iou = sam_tiny(
            sam_tiny.preprocess(pixels),
            points=torch.tensor([[[100.0, 40.0], [10.0, 200.0]]]),
            labels=torch.tensor([[1, 0]]),
            multimask=False,
        )
    assert np.allclose(result.low_res_logits, low.numpy(), atol=1e-5)
    assert np.allclose(result.scores, iou.numpy(), atol=1e-5)


def test_batched_ragged_and_feedback_prompts(predictor):
    rows = predictor.predict(
        points=[[[30, 20]], [[100, 60]]],
        box=[[10, 5, 70, 45], [80, 40, 120, 80]],
        multimask=False,
    )
    assert rows.masks.shape == (2, 1, HEIGHT, WIDTH)
    ragged = predictor.predict(points=[[[30, 20]], [[100, 60], [5, 5]]], labels=[[1], [1, 0]])
    assert ragged.masks.shape == (2, 3, HEIGHT, WIDTH)
    alone = predictor.predict(points=[[100, 60], [5, 5]], labels=[1, 0])
    assert np.allclose(ragged.low_res_logits[1], alone.low_res_logits[0], atol=1e-5)
    again = predictor.predict(
        points=[[30, 20]], mask_input=rows.low_res_logits[:1, 0], multimask=False
    )
    assert again.masks.shape == (1, 1, HEIGHT, WIDTH)
    box_only = predictor.predict(box=[0, 0, WIDTH, HEIGHT])
    assert box_only.scores.shape == (1, 3)


def test_bfloat16_autocast_is_close_to_float32(sam_tiny):
    image = scene()
    results = []
    for dtype in ("float32", "bfloat16"):
        predictor = PromptablePredictor(sam_tiny, device="cpu", dtype=dtype)
        predictor.set_image(image)
        results.append(predictor.predict(points=[[30, 20]], box=[10, 5, 70, 45]))
    full, half = results
    assert half.low_res_logits.dtype == np.float32 and half.masks.shape == full.masks.shape
    scale = np.abs(full.low_res_logits).max()
    assert np.abs(half.low_res_logits - full.low_res_logits).max() < 0.1 * scale


BAD_PROMPTS = {
    "point outside": (dict(points=[[WIDTH + 5, 10]]), InputMismatchError, "outside"),
    "negative point": (dict(points=[[-1, 10]]), InputMismatchError, "outside"),
    "label 2": (dict(points=[[5, 5]], labels=[2]), InputMismatchError, "1 .foreground. or 0"),
    "labels count": (dict(points=[[5, 5]], labels=[1, 1]), InputMismatchError, "one label"),
    "point shape": (dict(points=[5, 5, 5]), InputMismatchError, r"\(N, 2\)"),
    "two boxes in a row": (
        dict(box=[[[0, 0, 5, 5], [1, 1, 6, 6]]]),
        InputMismatchError,
        "more than one box per prompt row",
    ),
    "x1 < x0": (dict(box=[50, 5, 10, 20]), InputMismatchError, "x1 < x0"),
    "box outside": (dict(box=[0, 0, WIDTH + 50, 20]), InputMismatchError, "outside"),
    "mask size": (dict(mask_input=np.zeros((32, 32))), InvalidMaskError, "64x64"),
    "rows disagree": (
        dict(points=[[[5, 5]], [[6, 6]]], box=[0, 0, 9, 9]),
        InputMismatchError,
        "rows disagree",
    ),
    "nothing": (dict(), InputMismatchError, "at least one prompt"),
    "labels alone": (dict(labels=[1], box=[0, 0, 5, 5]), InputMismatchError, "without points"),
}


@pytest.mark.parametrize("case", list(BAD_PROMPTS))
def test_bad_prompts_say_what_to_fix(predictor, case):
    kwargs, error, message = BAD_PROMPTS[case]
    with pytest.raises(error, match=message):
        predictor.predict(**kwargs)


def test_predict_before_set_image(sam_tiny):
    with pytest.raises(InputMismatchError, match="set_image"):
        PromptablePredictor(sam_tiny, device="cpu").predict(points=[[1, 1]])


# -- automatic masks ------------------------------------------------------------------------------
def test_automatic_masks_give_a_valid_class_map_and_rles(predictor):
    generator = AutomaticMaskGenerator(
        predictor,
        points_per_side=6,
        points_per_batch=16,
        pred_iou_thresh=-1.0,
        stability_score_thresh=0.0,
        box_nms_thresh=0.95,
        crop_n_layers=1,
        min_mask_region_area=10,
    )
    image = scene()
    masks = generator.generate(image)
    assert masks, "with thresholds off the random model must keep some masks"
    scores = [m.predicted_iou for m in masks]
    assert scores == sorted(scores, reverse=True)
    classes = class_map(masks, image.shape[:2])
    assert classes.shape == image.shape[:2] and classes.dtype == np.int64
    assert classes.min() >= 0 and classes.max() <= len(masks)
    for index, found in enumerate(masks):
        mask = found.mask()
        assert mask.shape == image.shape[:2] and mask.sum() == found.area > 0
        assert not (classes == index + 1)[~mask].any()  # a pixel shows only a mask it is in
        x, y, w, h = found.bbox
        rows, cols = np.nonzero(mask)
        assert (x, y, x + w - 1, y + h - 1) == (cols.min(), rows.min(), cols.max(), rows.max())
        assert json.loads(json.dumps(found.to_json()))["rle"] == found.rle
    assert (classes > 0).sum() == np.any([m.mask() for m in masks], axis=0).sum()


class DiscPredictor(PromptablePredictor):
    """The tiny model's predictor, but every point prompt gives three discs around the point
    (radii 6, 12 and 24 input pixels; scores 0.9, 0.8, 0.95): many distinct, overlapping masks
    for checking the automatic pipeline itself."""

    def predict_tensors(self, prompts, *, multimask=True, upscale=True):
        side = self.config.low_res_size
        cells = (torch.arange(side, dtype=torch.float32) + 0.5) * self.config.image_size / side
        ys, xs = torch.meshgrid(cells, cells, indexing="ij")  # (4h, 4w) input pixels
        centre = prompts.points[:, 0]  # (P, 2)
        dist = ((xs - centre[:, 0, None, None]) ** 2 + (ys - centre[:, 1, None, None]) ** 2).sqrt()
        radii = torch.tensor([6.0, 12.0, 24.0])[None, :, None, None]
        low_res = 30.0 * (radii - dist[:, None]) / radii  # (P, 3, 4h, 4w), steep: stable
        scores = torch.tensor([[0.9, 0.8, 0.95]]).expand(len(centre), -1)
        logits = None
        if upscale:
            logits = upscale_logits(
                low_res,
                input_size=self.input_size,
                original_size=self.original_size,
                image_size=self.config.image_size,
            )
        return logits, scores, low_res


@pytest.mark.parametrize("crop_layers, min_area", [(0, 0), (1, 30)])
def test_automatic_pipeline_on_many_overlapping_masks(sam_tiny, crop_layers, min_area):
    predictor = DiscPredictor(sam_tiny, device="cpu")
    generator = AutomaticMaskGenerator(
        predictor,
        points_per_side=5,
        pred_iou_thresh=0.85,  # drops the radius-12 discs (score 0.8)
        stability_score_thresh=0.5,
        crop_n_layers=crop_layers,
        min_mask_region_area=min_area,
    )
    image = scene()
    masks = generator.generate(image)
    assert len(masks) > 5
    assert {round(m.predicted_iou, 2) for m in masks} <= {0.9, 0.95}
    boxes = torch.tensor([[x, y, x + w - 1, y + h - 1] for x, y, w, h in (m.bbox for m in masks)])
    overlap = torchvision.ops.box_iou(boxes.float(), boxes.float())
    assert (overlap - torch.eye(len(masks))).max() <= 0.7  # NMS left no close duplicates
    classes = class_map(masks, image.shape[:2])
    ids = set(np.unique(classes)) - {0}
    assert len(ids) > 5 and max(ids) <= len(masks)
    for index, found in enumerate(masks):
        mask = found.mask()
        assert mask.sum() == found.area
        assert not (classes == index + 1)[~mask].any()
        cx, cy = found.point
        assert mask[min(int(cy), HEIGHT - 1), min(int(cx), WIDTH - 1)]  # the disc holds its point
    smallest = min(masks, key=lambda m: m.area)
    assert (classes == masks.index(smallest) + 1).sum() == smallest.area  # painted last, on top


def test_rle_encoder_without_pycocotools_agrees(monkeypatch):
    mask = np.zeros((7, 9), dtype=bool)
    mask[1:4, 2:7] = True
    mask[6, 0] = True
    with_c = automatic.encode_rle(mask)
    monkeypatch.setattr(automatic, "_coco_mask", None)
    assert automatic.encode_rle(mask) == with_c
    assert np.array_equal(automatic.decode_rle(with_c), mask)


def test_automatic_helpers():
    assert automatic.point_grid(2).tolist() == [
        [0.25, 0.25],
        [0.75, 0.25],
        [0.25, 0.75],
        [0.75, 0.75],
    ]
    crops = automatic.crop_boxes((100, 200), 1, 0.5)
    assert crops[0] == ((0, 0, 200, 100), 0) and len(crops) == 5
    assert all(box[2] <= 200 and box[3] <= 100 for box, _ in crops)
    logits = torch.tensor([[[3.0, 0.5, -0.5, -3.0]], [[-3.0, -3.0, -3.0, -3.0]]])
    assert automatic.stability_scores(logits, 0.0, 1.0).tolist() == pytest.approx([1 / 3, 0.0])
    near = automatic.box_near_crop_edge(
        torch.tensor([[5.0, 5.0, 95.0, 40.0], [30.0, 5.0, 60.0, 40.0]]),
        (0, 0, 100, 50),
        (0, 0, 200, 50),
    )
    assert near.tolist() == [True, False]  # x1 = 95 sits on the inner crop edge at 100
    mask = np.zeros((10, 10), dtype=bool)
    mask[1:8, 1:8] = True
    mask[4, 4] = False  # a one-pixel hole
    mask[9, 9] = True  # a one-pixel island
    filled, changed = automatic.remove_small_regions(mask, 3, fill_holes=True)
    assert changed and filled[4, 4]
    pruned, changed = automatic.remove_small_regions(filled, 3, fill_holes=False)
    assert changed and not pruned[9, 9] and pruned.sum() == 49


# -- refinement -----------------------------------------------------------------------------------
def test_component_prompts():
    mask = np.zeros((20, 30), dtype=np.int64)
    mask[2:7, 3:12] = 1
    mask[10:19, 20:29] = 2
    mask[15, 2] = 1  # too small
    prompts = component_prompts(mask, min_area=4)
    assert [(p.class_id, p.area) for p in prompts] == [(1, 45), (2, 81)]
    assert prompts[0].box.tolist() == [3, 2, 11, 6] and prompts[0].point.tolist() == [7, 4]
    assert prompts[1].box.tolist() == [20, 10, 28, 18] and prompts[1].point.tolist() == [24, 14]


def test_refine_mask_keeps_size_and_ids(predictor):
    image = scene()
    mask = np.zeros(image.shape[:2], dtype=np.int64)
    mask[12:38, 18:58] = 3
    mask[50:70, 90:110] = 5
    mask[0, 0] = 5  # a speck below min_area stays as it is
    refined = refine_mask(predictor, image, mask, min_area=16)
    assert refined.shape == image.shape[:2] and refined.dtype == np.int64
    assert set(np.unique(refined)) <= {0, 3, 5} and refined[0, 0] == 5
    with pytest.raises(InputMismatchError, match="must match"):
        refine_mask(predictor, image, mask[:-1])
    assert not refine_mask(predictor, image, np.zeros_like(mask)).any()


def test_refine_score_gate_keeps_components_the_decoder_doubts(predictor):
    image = scene()
    mask = np.zeros(image.shape[:2], dtype=np.int64)
    mask[12:38, 18:58] = 3
    mask[50:70, 90:110] = 5
    doubted = refine_mask(predictor, image, mask, min_score=2.0)  # no IoU reaches 2
    np.testing.assert_array_equal(doubted, mask)
    replaced = refine_mask(predictor, image, mask, min_score=-1.0)
    assert not np.array_equal(replaced, mask)
    rows = component_prompts(mask, min_area=16)  # exactly the rows refine_mask decodes
    logits, scores, _ = predictor.predict_tensors(
        predictor.prepare_prompts(
            points=np.stack([r.point for r in rows])[:, None],
            labels=np.ones((len(rows), 1), dtype=np.int64),
            box=np.stack([r.box for r in rows]),
        ),
        multimask=False,
    )
    assert [r.class_id for r in rows] == [3, 5] and scores[0, 0] != scores[1, 0]
    gate = float(scores[:, 0].mean())  # between the two scores: one component passes
    mixed = refine_mask(predictor, image, mask, min_score=gate)
    trusted = 1 if scores[0, 0] < gate else 0
    doubted_id, trusted_id = rows[1 - trusted].class_id, rows[trusted].class_id
    np.testing.assert_array_equal(mixed == doubted_id, mask == doubted_id)  # kept as it was
    decoded = logits[trusted, 0].numpy() > predictor.config.mask_threshold
    np.testing.assert_array_equal(mixed == trusted_id, decoded & (mask != doubted_id))


def test_seggpt_predictor_refiner_option(tiny_checkpoint, predictor):
    from seggpt.loading import load_model
    from seggpt.predictor import SegGPTPredictor

    image = scene()
    prompt_mask = np.zeros(image.shape[:2], dtype=np.int64)
    prompt_mask[12:38, 18:58] = 1
    plain = SegGPTPredictor(load_model(tiny_checkpoint), device="cpu")
    refining = SegGPTPredictor(
        load_model(tiny_checkpoint), device="cpu", refiner=predictor, refine_min_score=-1.0
    )
    [raw] = plain.predict([image], [prompt_mask], [image])
    [refined] = refining.predict([image], [prompt_mask], [image])
    np.testing.assert_array_equal(refined.painted, raw.painted)
    expected = refine_mask(predictor, image, raw.mask, min_score=-1.0)
    np.testing.assert_array_equal(refined.mask, expected)
