"""Losses of the promptable model and simulated interactive prompting, on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from painter.promptable import build_sam
from painter.promptable.losses import (
    add_correction,
    box_projection_loss,
    correction_point,
    dice_loss,
    first_prompt,
    mask_iou,
    noisy_box,
    promptable_loss,
    sigmoid_focal_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def square_target(size: int = 8) -> torch.Tensor:
    target = torch.zeros(size, size)
    target[2:6, 3:7] = 1
    return target


def perfect_logits(target: torch.Tensor) -> torch.Tensor:
    return (target * 2 - 1) * 30.0


def test_perfect_prediction_costs_nothing():
    target = square_target()[None]
    logits = perfect_logits(target)
    assert float(sigmoid_focal_loss(logits, target)) == pytest.approx(0.0, abs=1e-9)
    assert float(dice_loss(logits, target)) == pytest.approx(0.0, abs=1e-6)
    assert float(mask_iou(logits, target)) == 1.0


def test_loss_values():
    target = square_target()[None]
    undecided = torch.zeros_like(target)
    # p = 0.5 everywhere: bce = ln 2, (1 - p_t)^2 = 1/4, alpha 0.25 on the 16 object pixels of 64
    expected = math.log(2) * 0.25 * (0.25 * 16 + 0.75 * 48) / 64
    assert float(sigmoid_focal_loss(undecided, target)) == pytest.approx(expected)
    # soft dice: 1 - (2 * 8 + 1) / (32 + 16 + 1)
    assert float(dice_loss(undecided, target)) == pytest.approx(1 - 17 / 49)
    wrong = -perfect_logits(target)  # 48 background pixels on, the 16 object pixels off
    assert float(dice_loss(wrong, target)) == pytest.approx(1 - 1 / 65, abs=1e-6)
    assert float(mask_iou(torch.full_like(target, -1.0), torch.zeros_like(target))) == 1.0


def test_only_the_best_candidate_gets_gradient():
    target = square_target()
    wrong = -perfect_logits(target)
    logits = torch.stack([wrong, perfect_logits(target), torch.zeros_like(target)])[None]
    logits.requires_grad_(True)
    iou_pred = torch.tensor([[0.2, 1.0, 0.5]], requires_grad=True)
    loss = promptable_loss(logits, iou_pred, target[None])
    assert loss.best.tolist() == [1]
    assert float(loss.total.detach()) == pytest.approx(
        0.0, abs=1e-6
    )  # best mask exact, its IoU right
    # make the winner imperfect so that it has a gradient to compare with
    logits2 = torch.stack([wrong, perfect_logits(target) * 0.01, torch.zeros_like(target)])[None]
    logits2.requires_grad_(True)
    loss2 = promptable_loss(logits2, iou_pred, target[None])
    loss2.total.backward()
    assert loss2.best.tolist() == [1]
    assert logits2.grad[0, 1].abs().sum() > 0
    assert logits2.grad[0, 0].abs().sum() == 0 and logits2.grad[0, 2].abs().sum() == 0
    assert iou_pred.grad[0, 1] == 0 and iou_pred.grad[0, [0, 2]].abs().sum() == 0


def test_iou_head_target_and_supervise_all():
    target = square_target()
    logits = torch.stack([perfect_logits(target), torch.full_like(target, 10.0)])[None]
    iou_pred = torch.tensor([[0.0, 0.0]])
    best_only = promptable_loss(logits, iou_pred, target[None])
    assert float(best_only.iou) == pytest.approx(1.0)  # best mask has IoU 1, predicted 0
    every = promptable_loss(logits, iou_pred, target[None], supervise_all_iou=True)
    assert float(every.iou) == pytest.approx((1.0 + 0.25**2) / 2)  # the full mask has IoU 1/4


def test_low_res_logits_are_upsampled_to_the_target():
    target = square_target(16)
    logits = torch.zeros(2, 3, 8, 8)
    loss = promptable_loss(logits, torch.zeros(2, 3), torch.stack([target, target]))
    assert loss.total.shape == () and loss.best.shape == (2,)


def test_first_prompt_point_or_box():
    target = square_target().bool()
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        point = first_prompt(target, generator=gen, box_prob=0.0)
        x, y = point.points[0].long().tolist()
        assert target[y, x] and point.labels.tolist() == [1] and point.box is None
    boxed = first_prompt(target, generator=gen, box_prob=1.0)
    assert boxed.box is not None and len(boxed.points) == 0
    exact = noisy_box(target, noise=0.0)
    assert exact.tolist() == [3, 2, 6, 5]
    noisy = noisy_box(target, generator=gen, noise=10.0, max_shift=1.0)
    assert (noisy - exact).abs().max() <= 1.0 and (noisy[2:] >= noisy[:2]).all()
    with pytest.raises(ValueError, match="empty"):
        first_prompt(torch.zeros(4, 4, dtype=torch.bool))


def test_correction_points_come_from_the_error_region():
    target = square_target().bool()
    gen = torch.Generator().manual_seed(1)
    point, label = correction_point(torch.zeros_like(target), target, generator=gen)
    assert label == 1 and target[int(point[1]), int(point[0])]  # missed object -> foreground
    point, label = correction_point(torch.ones_like(target), target, generator=gen)
    assert label == 0 and not target[int(point[1]), int(point[0])]  # spill -> background
    assert correction_point(target, target) is None
    prompt = first_prompt(target, generator=gen, box_prob=0.0)
    more = add_correction(prompt, torch.ones_like(target), target, generator=gen)
    assert more.labels.tolist() == [1, 0] and more.points.shape == (2, 2)


def test_simulated_clicks_train_the_decoder():
    """A few steps of the SAM recipe on one target lower the loss of the tiny model."""
    torch.manual_seed(0)
    model = build_sam("sam_tiny")
    for p in model.image_encoder.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        embedding = model.encode_images(torch.randn(1, 3, 256, 256))
    target = torch.zeros(64, 64)
    target[16:40, 20:50] = 1
    gen = torch.Generator().manual_seed(0)
    prompt = first_prompt(target.bool(), generator=gen, box_prob=0.0)
    points = prompt.points[None] * 4 + 2  # low-res pixels -> input pixels (pixel centres)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(15):
        logits, iou = model.predict_masks(embedding, points=points, labels=prompt.labels[None])
        loss = promptable_loss(logits, iou, target[None])
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
        losses.append(float(loss.total.detach()))
    assert losses[-1] < 0.7 * losses[0]


def test_box_projection_loss_by_hand():
    """A 16x16 logit grid over a 64-pixel input (4 pixels per cell); box x 8..23, y 4..15 covers
    cells 2..5 across and 1..3 down."""
    box = torch.tensor([[8.0, 4.0, 23.0, 15.0]])
    filled = torch.full((1, 16, 16), -50.0)
    filled[0, 1:4, 2:6] = 50.0
    assert float(box_projection_loss(filled, box, 64)[0]) == pytest.approx(0.0, abs=1e-6)
    diagonal = torch.full((1, 16, 16), -50.0)  # one cell per row and column: still fills it
    for k in range(3):
        diagonal[0, 1 + k, 2 + k] = 50.0
    diagonal[0, 3, 5] = 50.0
    assert float(box_projection_loss(diagonal, box, 64)[0]) == pytest.approx(0.0, abs=1e-6)
    half = torch.full((1, 16, 16), -50.0)
    half[0, 1:4, 2:4] = 50.0  # only the left half: x projection 2 of 4 cells, y complete
    expected = (1 - (2 * 2 + 1) / (2 + 4 + 1)) / 2
    assert float(box_projection_loss(half, box, 64)[0]) == pytest.approx(expected, abs=1e-6)
    spill = filled.clone()
    spill[0, 10, 12] = 50.0  # a stray cell outside the box on both axes
    spilled = (1 - (2 * 4 + 1) / (5 + 4 + 1) + 1 - (2 * 3 + 1) / (4 + 3 + 1)) / 2
    assert float(box_projection_loss(spill, box, 64)[0]) == pytest.approx(spilled, abs=1e-6)
    logits = torch.zeros(1, 16, 16, requires_grad=True)
    box_projection_loss(logits, box, 64).sum().backward()
    assert logits.grad[0, 2, 3] < 0 and logits.grad[0, 10, 12] > 0  # grow inside, shrink out
