"""Every registered model of both families: the SegGPT/Painter registry and the promptable one.

Each variant's parameter count, built on the meta device (nothing allocated), must equal a count
worked out here from its config alone, and the official count where the variant reproduces a
released model. Variants small enough to run on a CPU in a test (by parameter count, not name)
also train one step: finite outputs and gradients, and the same outputs and gradients with
gradient checkpointing on.
"""

from __future__ import annotations

import functools

import pytest
import torch

from painter.config import PainterConfig, SegType, ViTConfig
from painter.ops import query_half_mask
from painter.promptable.config import SamConfig, get_sam_config, list_sam_models
from painter.promptable.model import build_sam_from_config
from painter.registry import get_config, list_models
from seggpt.loading import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

VARIANTS = [("painter", name) for name in list_models()] + [
    ("promptable", name) for name in list_sam_models()
]
# Variants at most this large run forward and backward here; larger ones are counted on meta.
TINY_MAX_PARAMETERS = 25_000_000
# Parameter counts of the released models the registry reproduces: Meta's SAM checkpoints and
# BAAI/seggpt-vit-large (transformers' SegGptForImageSegmentation with its default config).
OFFICIAL_PARAMETERS = {
    "seggpt_vit_large": 370_723_203,
    "sam_vit_b": 93_735_472,
    "sam_vit_l": 312_342_832,
    "sam_vit_h": 641_090_608,
}


def _config(family: str, name: str) -> PainterConfig | SamConfig:
    return get_config(name) if family == "painter" else get_sam_config(name)


def _build(family: str, name: str) -> torch.nn.Module:
    config = _config(family, name)
    return build_model(config) if family == "painter" else build_sam_from_config(config)


@functools.cache
def _meta_count(family: str, name: str) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in _build(family, name).parameters())


# -- counts from the config alone ----------------------------------------------------------------
def _linear(fan_in: int, fan_out: int) -> int:
    return fan_in * fan_out + fan_out


def _conv(fan_in: int, fan_out: int, kernel: int, *, bias: bool = True) -> int:
    return fan_in * fan_out * kernel * kernel + (fan_out if bias else 0)


def _vit_count(vit: ViTConfig) -> int:
    """Patch embedding, absolute position embedding and the blocks."""
    c, hidden = vit.embed_dim, int(vit.embed_dim * vit.mlp_ratio)
    rows, cols = vit.pos_embed_grid
    total = _conv(vit.in_chans, c, vit.patch_size) + (vit.pos_embed_prefix + rows * cols) * c
    for block in range(vit.depth):
        qkv = 3 * c * c + (3 * c if vit.qkv_bias else 0)
        total += 2 * 2 * c + qkv + _linear(c, c) + _linear(c, hidden) + _linear(hidden, c)
        if vit.use_rel_pos:
            grid = vit.rel_pos_grid if vit.is_global(block) else (vit.window_size,) * 2
            total += (2 * grid[0] - 1 + 2 * grid[1] - 1) * vit.head_dim
    return total


def painter_count(config: PainterConfig) -> int:
    """Backbone; mask and two stream tokens, final norm (+ two type tokens); the decoder."""
    vit, p, d, g = config.vit, config.vit.patch_size, config.decoder_dim, config.decoder_guide
    c = vit.embed_dim
    tapped = c * len(config.tap_blocks)
    total = _vit_count(vit) + 3 * c + 2 * c + (2 * c if config.type_tokens else 0)
    total += _linear(tapped, p * p * d)  # features to D channels per pixel
    total += _conv(d + g, d, 3) + 2 * d  # conv 3x3, LayerNorm2d
    if g:
        total += _conv(vit.in_chans, g, 3) + _conv(d, d, 3)  # the image guide, a second 3x3
    total += _conv(d, 3, 1)
    if config.decoder_linear:
        total += _linear(tapped, p * p * 3)
    k = config.decoder_match
    if k:  # three more decoder input channels; the match head's stem, projections and scalars
        total += 9 * 3 * d
        total += _conv(vit.in_chans, k, 3) + 3 * _conv(k, k, 3)
        total += _linear(tapped, k) + _conv(2 * k, k, 1) + 1 + 3
        total += 2 if config.match_colour_bins else 0
        total += 1 if config.match_sink is not None else 0
        total += 2 if config.match_gate is not None else 0
    return total


def sam_count(config: SamConfig) -> int:
    """Encoder + neck, prompt encoder, two-way mask decoder (SAM's layout)."""
    d, m = config.prompt_embed_dim, config.mask_in_chans
    neck = _conv(config.encoder.embed_dim, d, 1, bias=False) + 2 * d + _conv(d, d, 3, bias=False)
    neck += 2 * d
    # 4 point embeddings, not-a-point, no-mask; the mask downscaler (the Fourier matrix is a
    # buffer)
    prompt = 6 * d + _conv(1, m // 4, 2) + 2 * (m // 4) + _conv(m // 4, m, 2) + 2 * m
    prompt += _conv(m, d, 1)
    inner = d // config.attention_downsample_rate
    cross = 3 * _linear(d, inner) + _linear(inner, d)
    block = 4 * _linear(d, d) + 2 * cross + 4 * 2 * d
    block += _linear(d, config.decoder_mlp_dim) + _linear(config.decoder_mlp_dim, d)
    masks = config.num_multimask_outputs + 1
    hidden = config.iou_head_hidden_dim
    decoder = config.decoder_depth * block + cross + 2 * d + d + masks * d  # + iou/mask tokens
    decoder += _conv(d, d // 4, 2) + 2 * (d // 4) + _conv(d // 4, d // 8, 2)  # transposed convs
    decoder += masks * (2 * _linear(d, d) + _linear(d, d // 8))  # hypernetwork MLPs
    decoder += _linear(d, hidden) + (config.iou_head_depth - 2) * _linear(hidden, hidden)
    decoder += _linear(hidden, masks)
    return _vit_count(config.encoder) + neck + prompt + decoder


@pytest.mark.parametrize(("family", "name"), VARIANTS)
def test_parameter_count_follows_from_the_config(family, name):
    config = _config(family, name)
    expected = painter_count(config) if family == "painter" else sam_count(config)
    assert _meta_count(family, name) == expected
    if name in OFFICIAL_PARAMETERS:
        assert expected == OFFICIAL_PARAMETERS[name]


def test_every_official_count_names_a_registered_variant():
    assert set(OFFICIAL_PARAMETERS) <= {name for _, name in VARIANTS}


# -- tiny variants: one training step ------------------------------------------------------------
TINY = [v for v in VARIANTS if _meta_count(*v) <= TINY_MAX_PARAMETERS]


def _backbone(model: torch.nn.Module):
    return model.backbone if hasattr(model, "backbone") else model.image_encoder.backbone


def _loss_fn(family: str, model: torch.nn.Module):
    """A seeded batch of two and a function of the model giving (outputs, loss)."""
    gen = torch.Generator().manual_seed(0)
    config = model.config
    if family == "painter":
        height, width = config.canvas_size
        images, targets = (torch.randn(2, 3, height, width, generator=gen) for _ in range(2))
        mask = query_half_mask(2, config.grid)  # (B, h * w)
        seg_type = torch.tensor([SegType.SEMANTIC, SegType.INSTANCE])

        def run() -> tuple[list[torch.Tensor], torch.Tensor]:
            kwargs = {"seg_type": seg_type} if config.type_tokens else {}
            painted = model(images, targets, mask, **kwargs)  # (B, 3, H, W)
            return [painted], model.loss(painted, targets, mask)

        return run
    side = config.image_size
    images = torch.randn(2, 3, side, side, generator=gen)
    points = torch.rand(2, 2, 2, generator=gen) * side  # (P, N, 2)
    labels = torch.tensor([[1, 0], [1, -1]])
    boxes = torch.tensor([[4.0, 4.0, side / 2, side / 3], [side / 4, 8.0, side - 4, side / 2]])

    def run() -> tuple[list[torch.Tensor], torch.Tensor]:
        logits, iou = model(images, points=points, labels=labels, boxes=boxes)
        return [logits, iou], logits.square().mean() + iou.square().mean()

    return run


def _step(model: torch.nn.Module, run) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    with torch.random.fork_rng():
        torch.manual_seed(1)  # the same drop-path draws in both runs
        outputs, loss = run()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return [o.detach() for o in outputs], grads


@pytest.mark.parametrize(("family", "name"), TINY)
def test_tiny_variant_trains_and_checkpointing_changes_nothing(family, name):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = _build(family, name).train()
    run = _loss_fn(family, model)
    outputs, grads = _step(model, run)
    assert all(torch.isfinite(o).all() for o in outputs)
    assert all(torch.isfinite(g).all() for g in grads.values())
    backbone = _backbone(model)
    for param_name, param in backbone.named_parameters():
        assert param.grad is not None, param_name  # every backbone weight reaches the loss
    backbone.set_grad_checkpointing(True)
    outputs_ckpt, grads_ckpt = _step(model, run)
    for plain, ckpt in zip(outputs, outputs_ckpt):
        torch.testing.assert_close(ckpt, plain, rtol=1e-5, atol=1e-6)
    assert grads_ckpt.keys() == grads.keys()
    for param_name, grad in grads.items():
        torch.testing.assert_close(
            grads_ckpt[param_name], grad, rtol=1e-5, atol=1e-6, msg=param_name
        )


def test_the_tiny_split_is_by_size():
    """The large variants really are large, and both families have tiny ones."""
    large = [v for v in VARIANTS if v not in TINY]
    assert {name for _, name in large} >= set(OFFICIAL_PARAMETERS)
    assert {family for family, _ in TINY} == {"painter", "promptable"}
