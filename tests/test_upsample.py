"""Image-guided upsampling (painter.upsample): edges recovered at the image's resolution, the
defining linear property, its checks, and its place in the predictor and the model config."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from painter.config import PainterConfig
from painter.errors import ConfigError
from painter.ops import denormalize
from painter.registry import get_config
from painter.resize import resize_image
from painter.upsample import guided_upsample
from seggpt.coloring import decode_painted, prepare_prompt_masks
from seggpt.loading import build_model
from seggpt.predictor import SegGPTPredictor


def _disc_scene(size: int = 128) -> tuple[torch.Tensor, np.ndarray]:
    """A textured two-colour image (1, 3, size, size) in [0, 1] with a disc whose edge falls
    between the low-resolution pixels, and the disc's mask."""
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - 61.3) ** 2 + (xx - 66.7) ** 2 < 37.4**2
    rng = np.random.default_rng(0)
    image = np.where(disc[..., None], [0.85, 0.30, 0.20], [0.20, 0.45, 0.80])
    image = np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1)
    return torch.from_numpy(image).permute(2, 0, 1)[None].float(), disc


def test_guided_upsampling_puts_the_edges_where_the_image_has_them():
    full, disc = _disc_scene()
    low = F.interpolate(full, scale_factor=0.25, mode="area")  # the canvas's view, 32 px
    painted = F.interpolate(
        torch.from_numpy(disc)[None, None].float(), scale_factor=0.25, mode="area"
    )
    bilinear = F.interpolate(painted, size=disc.shape, mode="bilinear", align_corners=False)
    guided = guided_upsample(low, painted, full, radius=2, eps=1e-3)
    assert guided.shape == (1, 1, 128, 128) and guided.dtype == torch.float32
    bilinear_wrong = int(((bilinear[0, 0].numpy() > 0.5) != disc).sum())
    guided_wrong = int(((guided[0, 0].numpy() > 0.5) != disc).sum())
    assert guided_wrong <= 2 < 20 <= bilinear_wrong, (guided_wrong, bilinear_wrong)


def test_a_painting_linear_in_the_colours_is_reproduced_at_full_resolution():
    generator = torch.Generator().manual_seed(1)
    full = torch.rand(2, 3, 40, 56, generator=generator)
    low = F.interpolate(full, size=(10, 14), mode="area")
    weights = torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.0, 0.0]])  # two channels
    values = torch.einsum("ca,nahw->nchw", weights, low) + torch.tensor([0.1, -0.2]).view(
        1, 2, 1, 1
    )
    out = guided_upsample(low, values, full, radius=2, eps=1e-7)
    want = torch.einsum("ca,nahw->nchw", weights, full) + torch.tensor([0.1, -0.2]).view(1, 2, 1, 1)
    assert torch.allclose(out, want, atol=2e-3)
    # A constant painting stays that constant, whatever the image.
    flat = guided_upsample(low, torch.full((2, 1, 10, 14), 0.7), full, radius=3, eps=1e-3)
    assert torch.allclose(flat, torch.full_like(flat, 0.7), atol=1e-4)


@pytest.mark.parametrize(
    ("radius", "eps", "words"),
    [(0, 1e-3, "radius"), (2.5, 1e-3, "radius"), (2, 0.0, "eps"), (2, -1.0, "eps")],
)
def test_bad_guide_settings_are_config_errors(radius, eps, words):
    image = torch.rand(1, 3, 8, 8)
    with pytest.raises(ConfigError, match=words):
        guided_upsample(image, image[:, :1], image, radius=radius, eps=eps)
    with pytest.raises(ConfigError, match=words):
        dataclasses.replace(get_config("seggpt_smoke"), upsample_guide=(radius, eps))


def test_mismatched_guides_are_config_errors():
    image = torch.rand(1, 3, 8, 8)
    with pytest.raises(ConfigError, match="RGB guides"):
        guided_upsample(image[:, :1], image[:, :1], image, radius=1, eps=1e-3)
    with pytest.raises(ConfigError, match="values at the guide's size"):
        guided_upsample(image, torch.rand(1, 1, 4, 4), image, radius=1, eps=1e-3)


def test_the_config_round_trips_the_guide_and_the_demo_variant_has_one():
    config = get_config("seggpt_match_guided")
    assert config.upsample_guide == (6, 1e-3)
    assert get_config("seggpt_match_gate").upsample_guide is None  # the released rule: bilinear
    assert PainterConfig.from_dict(config.to_dict()) == config


def test_the_predictor_upsamples_by_the_models_rule_unless_told_otherwise():
    torch.manual_seed(0)
    base = get_config("seggpt_smoke")
    model = build_model(dataclasses.replace(base, upsample_guide=(2, 1e-3))).eval()
    rng = np.random.default_rng(3)
    prompt = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    mask = np.zeros((48, 40), np.uint8)
    mask[10:30, 8:25] = 1
    query = rng.integers(0, 256, (90, 70, 3), dtype=np.uint8)

    def run(**kwargs):
        predictor = SegGPTPredictor(model, dtype="float32", **kwargs)
        [out] = predictor.predict([prompt], [mask], [query], return_canvas=True)
        return predictor, out

    predictor, guided = run()
    assert predictor.upsample_guide == (2, 1e-3)
    rgb = denormalize(guided.canvas[None]).clamp(0, 1)
    low = resize_image(query, predictor.config.half_size)  # the query half of the canvas
    want = guided_upsample(
        torch.tensor(low).permute(2, 0, 1)[None].float() / 255,
        rgb,
        torch.from_numpy(query).permute(2, 0, 1)[None].float() / 255,
        radius=2,
        eps=1e-3,
    ).clamp(0, 1)
    want = (want * 255)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(guided.painted, np.rint(want).astype(np.uint8))
    _, coloring = prepare_prompt_masks([mask])
    assert np.array_equal(guided.mask, decode_painted(want, coloring))

    _, bilinear = run(upsample_guide=None)
    plain = F.interpolate(rgb, size=query.shape[:2], mode="bilinear", align_corners=False)
    plain = (plain * 255)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(bilinear.mask, decode_painted(plain, coloring))
    assert not np.array_equal(bilinear.painted, guided.painted)
    with pytest.raises(ConfigError, match="eps"):
        SegGPTPredictor(model, upsample_guide=(2, 0.0))
