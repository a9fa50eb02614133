"""The promptable model's parts that need no model: the two-way attention's evaluation orders
and the pure pre- and post-processing transforms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from painter.promptable.transforms import (
    image_to_input_coords,
    masks_to_boxes,
    normalize_and_pad,
    resized_size,
    upscale_logits,
)
from painter.promptable.two_way import Attention
from tests.promptable_helpers import HEIGHT, WIDTH, rel_diff

pytestmark = pytest.mark.usefixtures("one_thread")


# -- decoder attention ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dim, heads, rate, n_q, n_k",
    [
        (64, 4, 2, 7, 300),  # prompt tokens -> image grid: the re-associated few-queries order
        (64, 4, 2, 300, 5),  # image grid -> prompt tokens: the few-keys order
        (48, 2, 1, 3, 40),  # head width 24, no downsampling
        (64, 4, 2, 20, 300),  # more tokens than a head has channels: the standard order
        (64, 4, 2, 6, 6),  # token self-attention: the standard order
    ],
)
def test_every_attention_order_computes_the_same_function(dim, heads, rate, n_q, n_k):
    torch.manual_seed(0)
    attention = Attention(dim, heads, rate)
    with torch.no_grad():
        for p in attention.parameters():  # biases too, so the dropped key bias is exercised
            p.normal_(0.0, 0.3)
    inputs = [torch.randn(2, n, dim, requires_grad=True) for n in (n_q, n_k, n_k)]
    cotangent = torch.randn(2, n_q, dim)
    names = ["q", "k", "v"] + [name for name, _ in attention.named_parameters()]
    results = {}
    for order in ("_standard", "_few_queries", "_few_keys", "forward"):
        attention.zero_grad()
        for x in inputs:
            x.grad = None
        out = getattr(attention, order)(*inputs)
        (out * cotangent).sum().backward()
        grads = [x.grad for x in inputs] + [p.grad for p in attention.parameters()]
        results[order] = (out.detach(), dict(zip(names, grads)))
    ref_out, ref_grads = results.pop("_standard")
    assert ref_out.abs().max() > 0.1
    scale = max(float(g.abs().max()) for g in ref_grads.values())
    for order, (out, grads) in results.items():
        assert rel_diff(out, ref_out) <= 1e-5, order
        for name, want in ref_grads.items():
            got = grads[name]
            if name == "k_proj.bias":  # shifts every key of a query alike: no effect, no gradient
                for grad in (got, want):
                    assert grad is None or grad.abs().max() <= 1e-5 * scale, order
            else:
                assert rel_diff(got, want) <= 1e-5, (order, name)


# -- pure transforms ----------------------------------------------------------------------------
def test_transforms():
    assert resized_size((480, 640), 1024) == (768, 1024)
    assert resized_size((HEIGHT, WIDTH), 256) == (165, 256)
    coords = image_to_input_coords(torch.tensor([[70.0, 45.0]]), (90, 140), (165, 256))
    assert torch.allclose(coords, torch.tensor([[128.0, 82.5]]))
    pixels = torch.full((1, 3, 2, 3), 255.0)
    out = normalize_and_pad(pixels, torch.zeros(3), torch.full((3,), 255.0), 4)
    assert out.shape == (1, 3, 4, 4) and out[0, 0, :2, :3].eq(1).all()
    assert out[..., 2:, :].eq(0).all() and out[..., :, 3:].eq(0).all()  # bottom/right padding
    low = torch.zeros(1, 1, 8, 8)
    low[..., :4, :] = 5.0  # positive over the top half of the padded input
    up = upscale_logits(low, input_size=(16, 32), original_size=(4, 8), image_size=32)
    assert up.shape == (1, 1, 4, 8) and up.gt(0).all()  # the image covers only the top half
    boxes = masks_to_boxes(torch.tensor([[[0, 1, 1], [0, 0, 1]], [[0, 0, 0], [0, 0, 0]]]).bool())
    assert boxes.tolist() == [[1, 0, 2, 1], [0, 0, 0, 0]]


@pytest.mark.parametrize(
    "image_size, low, input_size, original_size",
    [
        (64, 16, (48, 64), (480, 640)),  # landscape, upscaled back to a larger photo
        (64, 16, (64, 37), (64, 37)),  # portrait at the input size: no second resize
        (64, 16, (64, 64), (20, 20)),  # square, downscaled
        (1024, 256, (768, 1024), (768, 1024)),  # SAM's 1024 input and a 4:3 image
        (96, 32, (50, 96), (101, 193)),  # a scale of 3
    ],
)
def test_upscale_logits_equals_resize_crop_resize(image_size, low, input_size, original_size):
    logits = torch.randn(2, 3, low, low, generator=torch.Generator().manual_seed(0))
    padded = F.interpolate(logits, (image_size, image_size), mode="bilinear", align_corners=False)
    cropped = padded[..., : input_size[0], : input_size[1]]
    want = F.interpolate(cropped, original_size, mode="bilinear", align_corners=False)
    got = upscale_logits(
        logits, input_size=input_size, original_size=original_size, image_size=image_size
    )
    assert got.shape == want.shape == (2, 3, *original_size)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
