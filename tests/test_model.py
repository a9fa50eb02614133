"""Backbone, Painter/SegGPT modules, ops and losses on tiny configs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from painter.backbone import ViTBackbone
from painter.config import PainterConfig, SegType, ViTConfig
from painter.errors import ConfigError
from painter.losses import masked_smooth_l1
from painter.model import build_painter
from painter.ops import normalize, patchify, query_half_mask, unpatchify
from painter.registry import get_config, list_models
from seggpt.loading import build_model


def test_registry_lists_the_variants_and_builds_each_tiny_one():
    assert {"seggpt_vit_large", "painter_vit_large", "seggpt_vit_base", "seggpt_test"} <= set(
        list_models()
    )
    large = get_config("seggpt_vit_large")
    assert large.tap_blocks == (5, 11, 17, 23) and large.merge_block == 2
    assert large.vit.window_size == 0 and large.grid == (56, 28)
    with pytest.raises(ConfigError, match="known"):
        get_config("seggpt_vit_gigantic")


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(tap_blocks=(3, 1)), "increasing"),
        (dict(merge_block=9), "merge_block"),
        (dict(canvas_size=(130, 64)), "divisible"),
        (dict(tap_blocks=(0, 3)), "merge_block"),
    ],
)
def test_config_validation(change, message):
    base = get_config("seggpt_test")
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(base, **{"merge_block": 1, **change})


def test_config_round_trips_through_a_dict():
    cfg = get_config("seggpt_demo")
    assert PainterConfig.from_dict(cfg.to_dict()) == cfg


def test_windowed_backbone_taps_and_grad_checkpointing():
    torch.manual_seed(0)
    cfg = ViTConfig(
        embed_dim=32,
        depth=4,
        num_heads=2,
        window_size=3,
        global_attn_blocks=(1, 3),
        rel_pos_grid=(5, 7),
        pos_embed_grid=(5, 7),
        pos_embed_prefix=0,
    )
    net = ViTBackbone(cfg)
    with torch.no_grad():
        for blk in net.blocks:  # non-zero relative position so it matters
            blk.attn.rel_pos_h.normal_()
            blk.attn.rel_pos_w.normal_()
    assert net.blocks[0].window_size == 3 and net.blocks[1].window_size == 0
    assert net.blocks[0].attn.rel_pos_h.shape == (5, 16) and net.blocks[1].attn.rel_pos_h.shape == (
        9,
        16,
    )
    x = torch.randn(2, 3, 80, 112, requires_grad=True)
    last, taps = net(x, taps=(1, 2))
    assert last.shape == (2, 5, 7, 32) and len(taps) == 2
    grad = torch.autograd.grad(last.sum(), x)[0]
    net.set_grad_checkpointing(True)
    last_ckpt, _ = net(x, taps=(1, 2))
    grad_ckpt = torch.autograd.grad(last_ckpt.sum(), x)[0]
    assert torch.allclose(last, last_ckpt) and torch.allclose(grad, grad_ckpt, atol=1e-6)
    # another input size: pos embed and rel-pos tables are resized, nothing breaks
    assert net(torch.randn(1, 3, 48, 64))[0].shape == (1, 3, 4, 32)


def test_painter_learns_a_batch_and_loss_edge_cases():
    torch.manual_seed(0)
    cfg = dataclasses.replace(get_config("seggpt_test"), type_tokens=False)
    model = build_painter(cfg)
    images, targets = torch.randn(2, 3, 128, 64), torch.randn(2, 3, 128, 64)
    mask = query_half_mask(2, cfg.grid)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        loss = model.loss(model(images, targets, mask), targets, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    nothing = torch.zeros_like(mask)
    zero = masked_smooth_l1(images, targets, nothing, patch_size=16)
    assert zero.item() == 0.0 and not torch.isnan(zero)


def test_sigmoid_painting_loss_is_the_masked_bce_of_each_channel_and_learns():
    """paint_activation="sigmoid": the loss on the raw output is the per-channel BCE against the
    target's 0..1 intensities over hidden pixels (checked against a pixel loop), and a few Adam
    steps on one batch lower it."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(get_config("seggpt_test"), paint_activation="sigmoid")
    model = build_model(cfg)
    images = torch.randn(2, 3, 128, 64)
    intensity = (torch.rand(2, 1, 128, 64) > 0.7).float().expand(-1, 3, -1, -1)  # white on black
    targets = normalize(intensity)
    mask = query_half_mask(2, cfg.grid)
    raw = model(images, targets, mask, raw=True)
    loss = model.loss(raw, targets, mask)
    hidden = mask.reshape(2, *cfg.grid).repeat_interleave(16, 1).repeat_interleave(16, 2)
    z, y = raw[:, :, hidden[0]], intensity[:, :, hidden[0]]  # same half hidden in both
    by_hand = (torch.clamp(z, min=0) - z * y + torch.log1p(torch.exp(-z.abs()))).mean()
    assert torch.allclose(loss, by_hand, rtol=1e-4, atol=1e-4)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(20):
        loss = model.loss(model(images, targets, mask, raw=True), targets, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_mask_token_hides_the_target():
    """Hidden target patches carry no information: changing them leaves the output unchanged."""
    torch.manual_seed(0)
    model = build_model("seggpt_test").eval()
    images, targets = torch.randn(1, 3, 128, 64), torch.randn(1, 3, 128, 64)
    mask = query_half_mask(1, model.config.grid)
    changed = targets.clone()
    changed[..., 64:, :] = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a = model(images, targets, mask)
        b = model(images, changed, mask)
        c = model(images, targets, mask, seg_type=SegType.SEMANTIC)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)  # the type token matters


def test_patchify_round_trip_any_size():
    x = torch.randn(2, 3, 48, 80)
    patches = patchify(x, 16)
    assert patches.shape == (2, 15, 768)
    assert torch.equal(unpatchify(patches, 16, (3, 5)), x)
    assert torch.equal(patches[0, 1, :3], x[0, :, 0, 16])  # pixel order (p, q, c)


def _palette_ce_by_hand(pred, target, patch_mask, patch_size, temperature):
    """Pixel by pixel: the distinct colours of each canvas, softmax over -d^2 / t."""
    total, count = 0.0, 0.0
    batch, _, height, width = pred.shape
    grid_w = width // patch_size
    for b in range(batch):
        pixels = target[b].reshape(3, -1).T
        colors = torch.unique(pixels, dim=0)
        for y in range(height):
            for x in range(width):
                if not patch_mask[b, (y // patch_size) * grid_w + x // patch_size]:
                    continue
                d2 = ((pred[b, :, y, x] - colors) ** 2).sum(1)
                true = (colors == target[b, :, y, x]).all(1).nonzero()[0, 0]
                total += float(torch.logsumexp(-d2 / temperature, 0) + d2[true] / temperature)
                count += 1
    return total / (count + 1e-2)


def test_palette_cross_entropy_matches_a_pixel_by_pixel_computation():
    from painter.losses import masked_palette_cross_entropy
    from painter.ops import normalize

    gen = torch.Generator().manual_seed(0)
    colors = torch.randint(0, 256, (2, 4, 3), generator=gen).float() / 255
    ids = torch.randint(0, 4, (2, 8, 8), generator=gen)
    target = normalize(torch.stack([colors[b][ids[b]].permute(2, 0, 1) for b in range(2)]))
    pred = target + 0.7 * torch.randn(target.shape, generator=gen)
    patch_mask = torch.rand(2, 16, generator=gen) < 0.6
    got = masked_palette_cross_entropy(pred, target, patch_mask, patch_size=2, temperature=0.5)
    want = _palette_ce_by_hand(pred, target, patch_mask, 2, 0.5)
    assert float(got) == pytest.approx(want, rel=1e-4)
    # painting the true colours exactly scores better than a dim compromise
    exact = masked_palette_cross_entropy(target, target, patch_mask, patch_size=2)
    dim = masked_palette_cross_entropy(0.5 * target, target, patch_mask, patch_size=2)
    assert float(exact) < float(dim)
    nothing = torch.zeros_like(patch_mask)
    assert float(masked_palette_cross_entropy(pred, target, nothing, patch_size=2)) == 0.0


def test_soft_dice_matches_a_hand_computation_and_judges_whole_paintings():
    from painter.losses import masked_soft_dice

    gen = torch.Generator().manual_seed(1)
    truth = (torch.rand(2, 3, 8, 8, generator=gen) > 0.6).float()
    painted = torch.rand(2, 3, 8, 8, generator=gen)
    patch_mask = torch.rand(2, 16, generator=gen) < 0.5
    hidden = patch_mask.view(2, 1, 4, 4).repeat_interleave(2, 2).repeat_interleave(2, 3).float()
    want = []
    for b in range(2):
        for c in range(3):
            p, t, w = painted[b, c], truth[b, c], hidden[b, 0]
            want.append(1 - (2 * (p * t * w).sum() + 1) / ((p * w).sum() + (t * w).sum() + 1))
    got = masked_soft_dice(painted, truth, patch_mask, patch_size=2)
    assert float(got) == pytest.approx(float(torch.stack(want).mean()), rel=1e-5)
    # a perfect painting of a large target scores near 0; painting an extra object of the
    # target's size costs about as much as missing the target, painting black the most
    big = torch.zeros(1, 3, 16, 16)
    big[:, 0, :, :8] = 1.0  # the target: the left half, red
    everything = torch.ones(1, 16, dtype=torch.bool)
    extra = big.clone()
    extra[:, 0, :, 8:] = 1.0
    missing = big.clone()
    missing[:, 0, :8] = 0.0
    score = [
        float(masked_soft_dice(x, big, everything, patch_size=4))
        for x in (big, extra, missing, torch.zeros_like(big))
    ]
    assert score[0] < 0.01
    assert abs(score[1] - score[2]) < 0.05 and score[3] > max(score[1], score[2])
    assert float(masked_soft_dice(painted, truth, torch.zeros_like(patch_mask), patch_size=2)) == 0
