"""LoRA layers and the WeSAM-style self-training step on the tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from painter.promptable import build_sam
from painter.promptable.adapt import (
    BranchOutput,
    LoRAQKV,
    SelfTrainingAdapter,
    add_lora,
    instance_contrast,
    instance_features,
    merge_lora,
    wesam_loss,
)
from painter.promptable.predictor import PromptTensors

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def model():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build_sam("sam_tiny")


def _decode(model, images):
    points = torch.tensor([[[60.0, 40.0]], [[180.0, 150.0]]])
    with torch.no_grad():
        return model(images.expand(2, -1, -1, -1), points=points, labels=torch.ones(2, 1))[0]


def test_lora_starts_as_the_identity_and_trains_only_itself(model):
    images = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    before = _decode(model, images)
    params = add_lora(model, rank=4)
    assert torch.allclose(_decode(model, images), before, atol=1e-6)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == {id(p) for p in params}
    assert sum(p.numel() for p in params) == 4 * 2 * 2 * 96 * 4  # blocks x (q, v) x (A, B)
    with pytest.raises(ValueError, match="merge_lora"):
        add_lora(model)


def test_merge_folds_the_update_into_the_original_keys(model):
    keys = set(model.state_dict())
    images = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(2))
    add_lora(model, rank=2)
    with torch.no_grad():
        for block in model.image_encoder.backbone.blocks:
            for b in block.attn.qkv.lora_b:
                b.normal_(0, 0.05)
    wrapped = _decode(model, images)
    merged = merge_lora(model)
    assert set(merged.state_dict()) == keys
    assert not any(isinstance(b.attn.qkv, LoRAQKV) for b in merged.image_encoder.backbone.blocks)
    assert torch.allclose(_decode(merged, images), wrapped, atol=1e-4)


def test_instance_contrast_value():
    features = torch.eye(2, 8)  # two orthogonal unit features, teacher == anchor
    tau = 0.3
    expected = -math.log(2 * math.exp(1 / tau) / (2 * math.exp(1 / tau) + 2))
    assert float(instance_contrast(features, features, tau)) == pytest.approx(expected)
    embedding = torch.zeros(1, 4, 2, 2)
    embedding[0, 0, 0, :] = 1.0  # top row points along channel 0, bottom row along channel 1
    embedding[0, 1, 1, :] = 2.0
    logits = torch.full((2, 1, 8, 8), -10.0)
    logits[0, 0, :4] = 10.0  # instance 0 covers the top half
    logits[1, 0, 4:] = 10.0
    assert torch.allclose(instance_features(embedding, logits), torch.eye(2, 4), atol=1e-6)


def test_wesam_loss_of_agreeing_branches():
    target = torch.zeros(2, 1, 16, 16)
    target[0, 0, 2:8, 2:8] = 1
    target[1, 0, 9:14, 5:12] = 1
    logits = (2 * target - 1) * 30
    embedding = torch.randn(1, 8, 4, 4, generator=torch.Generator().manual_seed(0))
    branch = BranchOutput(embedding, logits, torch.ones(2, 1))
    loss = wesam_loss(branch, branch, branch)
    assert float(loss.focal) == pytest.approx(0.0, abs=1e-9)
    assert float(loss.dice) == pytest.approx(0.0, abs=1e-6)
    assert float(loss.anchor) == pytest.approx(0.0, abs=1e-6)
    assert float(loss.iou) == pytest.approx(0.0, abs=1e-9)  # predicted IoU 1 is right
    assert float(loss.contrast) > 0 and torch.isfinite(loss.total)


def test_box_term_is_added_only_with_boxes_and_a_weight():
    target = torch.zeros(1, 1, 16, 16)
    target[0, 0, 4:8, 4:12] = 1
    branch = BranchOutput(torch.randn(1, 8, 4, 4), (2 * target - 1) * 30, torch.ones(1, 1))
    inside = torch.tensor([[16.0, 16.0, 47.0, 31.0]])  # input pixels of a 64-pixel input
    elsewhere = torch.tensor([[0.0, 40.0, 20.0, 60.0]])
    plain = wesam_loss(branch, branch, branch)
    fits = wesam_loss(branch, branch, branch, boxes=inside, input_size=64, box_weight=10.0)
    wrong = wesam_loss(branch, branch, branch, boxes=elsewhere, input_size=64, box_weight=10.0)
    assert float(plain.box) == 0 and float(fits.box) == pytest.approx(0.0, abs=1e-6)
    assert float(wrong.box) > 0.5
    assert float(wrong.total) == pytest.approx(float(plain.total) + 10 * float(wrong.box))


def test_adapter_step_updates_only_the_lora_weights(model):
    base = {k: v.clone() for k, v in model.state_dict().items()}
    adapter = SelfTrainingAdapter(model, rank=4, lr=1e-3)
    gen = torch.Generator().manual_seed(3)
    weak = torch.randn(1, 3, 256, 256, generator=gen)
    strong = weak + 0.3 * torch.randn(1, 3, 256, 256, generator=gen)
    prompts = PromptTensors(
        points=torch.tensor([[[60.0, 40.0]], [[180.0, 150.0]], [[30.0, 200.0]]]),
        labels=torch.ones(3, 1, dtype=torch.int64),
        boxes=None,
        mask_inputs=None,
    )
    losses = [adapter.step(weak, strong, prompts) for _ in range(2)]
    assert all(torch.isfinite(loss.total) for loss in losses)
    assert all(not t.requires_grad for t in vars(losses[0]).values())
    blocks = adapter.model.image_encoder.backbone.blocks
    assert all(b.abs().sum() > 0 for block in blocks for b in block.attn.qkv.lora_b)
    anchor = adapter.anchor.state_dict()
    assert all(torch.equal(anchor[k], v) for k, v in base.items())
    merged = merge_lora(adapter.model).state_dict()
    changed = [k for k, v in base.items() if not torch.equal(merged[k], v)]
    assert changed and all(k.endswith("attn.qkv.weight") for k in changed)
