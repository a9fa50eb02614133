"""Model variants: name -> small function returning a validated config, in a plain dict. One
``Registry`` class serves both model families (this module's SegGPT/Painter variants and
``painter.promptable.config``'s promptable ones).

Building the module from a config is the job of ``painter.model.build_painter`` and
``seggpt.model.build_seggpt`` (``seggpt.build_model`` picks between them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Generic, TypeVar

from painter.config import PainterConfig, ViTConfig
from painter.errors import ConfigError

ConfigT = TypeVar("ConfigT")


class Registry(Generic[ConfigT]):
    """Named config builders of one model family; ``kind`` names them in error messages."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, Callable[[], ConfigT]] = {}

    def register(self, fn: Callable[[], ConfigT]) -> Callable[[], ConfigT]:
        """Register a config builder under its function name (a decorator)."""
        if fn.__name__ in self._builders:
            raise ConfigError(f"{self.kind} {fn.__name__!r} is registered twice")
        self._builders[fn.__name__] = fn
        return fn

    def names(self) -> list[str]:
        return sorted(self._builders)

    def get(self, name: str) -> ConfigT:
        """The config of variant ``name`` (its ``name`` field set); a ConfigError lists the known
        names otherwise."""
        try:
            builder = self._builders[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}"
            ) from None
        return dataclasses.replace(builder(), name=name)


MODELS: Registry[PainterConfig] = Registry("model variant")
register = MODELS.register
list_models = MODELS.names
get_config = MODELS.get


def _vit(
    dim: int, depth: int, heads: int, canvas: tuple[int, int], patch: int = 16, **kw
) -> ViTConfig:
    # Every released Painter/SegGPT block attends globally (window_size=0), see ViTConfig.
    grid = (canvas[0] // patch, canvas[1] // patch)
    return ViTConfig(
        embed_dim=dim, depth=depth, num_heads=heads, patch_size=patch, rel_pos_grid=grid, **kw
    )


def _every_quarter(depth: int) -> tuple[int, ...]:
    """Taps at the end of each quarter of the depth, e.g. 24 -> (5, 11, 17, 23)."""
    return tuple(depth * k // 4 - 1 for k in range(1, 5))


def _painter(
    dim, depth, heads, canvas, *, type_tokens, merge=2, drop_path=0.1, patch=16
) -> PainterConfig:
    return PainterConfig(
        vit=_vit(dim, depth, heads, canvas, patch, drop_path_rate=drop_path),
        canvas_size=canvas,
        merge_block=merge,
        tap_blocks=_every_quarter(depth),
        type_tokens=type_tokens,
    )


@register
def seggpt_vit_large() -> PainterConfig:
    """The released SegGPT (BAAI/seggpt-vit-large): ViT-L, 896x448 canvas."""
    return _painter(1024, 24, 16, (896, 448), type_tokens=True)


@register
def painter_vit_large() -> PainterConfig:
    """The released Painter generalist: ViT-L, 896x448 canvas, no type tokens."""
    return _painter(1024, 24, 16, (896, 448), type_tokens=False)


@register
def seggpt_vit_base() -> PainterConfig:
    return _painter(768, 12, 12, (896, 448), type_tokens=True)


@register
def seggpt_vit_tiny() -> PainterConfig:
    """192-wide, 12 blocks, 448x224 canvas: trains on a CPU."""
    return _painter(192, 12, 3, (448, 224), type_tokens=True, drop_path=0.0)


@register
def painter_vit_tiny() -> PainterConfig:
    return _painter(192, 12, 3, (448, 224), type_tokens=False, drop_path=0.0)


@register
def seggpt_test() -> PainterConfig:
    """For unit tests: 64-wide, 4 blocks, 128x64 canvas; runs in milliseconds."""
    return PainterConfig(
        vit=_vit(64, 4, 2, (128, 64)),
        canvas_size=(128, 64),
        merge_block=0,
        tap_blocks=(1, 3),
        decoder_dim=16,
    )


@register
def seggpt_smoke() -> PainterConfig:
    """For the training smoke test: 64-wide, 3 blocks, 64x32 canvas in 4-pixel patches, with the
    image-guided decoder and beta-1 loss; learns the easy task in under two minutes."""
    return PainterConfig(
        vit=_vit(64, 3, 2, (64, 32), patch=4),
        canvas_size=(64, 32),
        merge_block=0,
        tap_blocks=(1, 2),
        decoder_dim=16,
        decoder_guide=8,
        loss_beta=1.0,
    )


@register
def seggpt_demo() -> PainterConfig:
    """The bundled demo model: 192-wide, 6 blocks, 128x64 canvas in 8-pixel patches (an 8x8
    grid per 64x64 half); trains on a CPU in under an hour.

    Its loss is nearly quadratic (smooth-L1 with beta 1 in the normalised space): with Painter's
    beta 0.01, a model this small learns to paint every hidden pixel black long before it learns
    where objects are (the median of a mostly-background target), and never recovers.
    """
    return PainterConfig(
        vit=_vit(192, 6, 3, (128, 64), patch=8),
        canvas_size=(128, 64),
        merge_block=1,
        tap_blocks=(2, 5),
        decoder_dim=16,
        loss_beta=1.0,
    )


@register
def seggpt_openset() -> PainterConfig:
    """Experimental open-set demo candidate (configs/openset_seggpt.yaml): 192-wide, 6 blocks,
    256x128 canvas in 16-pixel patches (an 8x8 grid per 128x128 half) with the image-guided
    decoder and the linear painting path (without it the decoder does not start learning
    open-set matching: benchmarks/diag_openset_heads.py); about 1.2 s per step of 16 episodes
    on 2 CPU cores.
    """
    return PainterConfig(
        vit=_vit(192, 6, 3, (256, 128), patch=16),
        canvas_size=(256, 128),
        merge_block=1,
        tap_blocks=(2, 5),
        decoder_dim=8,
        decoder_guide=8,
        decoder_linear=True,
        paint_activation="sigmoid",
        loss_beta=1.0,
    )


@register
def seggpt_match() -> PainterConfig:
    """Stage 1 of the demo model (configs/demo_seggpt_stage1.yaml): ``seggpt_openset`` plus the
    match head (:mod:`painter.matching`, 32-channel keys on 4x4 cells), so a hidden pixel can
    copy the colours of the prompt cells it resembles."""
    return dataclasses.replace(seggpt_openset(), decoder_match=32)


@register
def seggpt_smoke_match() -> PainterConfig:
    """The open-set training smoke test's model (configs/smoke_openset.yaml): ``seggpt_smoke``
    with the match head (8-channel keys) painting through a sigmoid."""
    return dataclasses.replace(seggpt_smoke(), decoder_match=8, paint_activation="sigmoid")


@register
def seggpt_match_colour() -> PainterConfig:
    """Stage 2 of the demo model (configs/demo_seggpt_stage2.yaml): ``seggpt_match`` whose keys also
    hold each cell's local colour distribution (4^3 bins, ``match_colour_bins``)."""
    return dataclasses.replace(seggpt_match(), match_colour_bins=4)


@register
def seggpt_match_sink() -> PainterConfig:
    """Stage 3 of the demo model (configs/demo_seggpt_stage3.yaml): ``seggpt_match_colour`` whose
    match memory also holds a black none-of-the-above cell (``match_sink``, a learned similarity
    threshold starting at 0.85), so query cells that resemble nothing in the prompt well enough
    paint background."""
    return dataclasses.replace(seggpt_match_colour(), match_sink=0.85)


@register
def seggpt_match_gate() -> PainterConfig:
    """The bundled demo model's weights (configs/demo_seggpt.yaml, stage 4, reads them as
    ``seggpt_match_guided``): ``seggpt_match_sink`` whose decoder paints only where the match head
    found the cell's like among the visible cells (``match_gate``: starts at slope 80, threshold
    0.95 on the share of the propagation that did not go to the sink, the best at a model's learned
    match temperature; the bundled model's stage 4 sets 80 / 0.97 and twice its temperature, chosen
    on training-family validation episodes, README, Training)."""
    return dataclasses.replace(seggpt_match_sink(), match_gate=(80.0, 0.95))


@register
def seggpt_match_guided() -> PainterConfig:
    """The bundled demo model (configs/demo_seggpt.yaml, stage 4): ``seggpt_match_gate`` whose
    painting reaches the query's own size through an image-guided upsampling
    (``upsample_guide``: radius 6 canvas pixels, eps 1e-3, chosen on training-family validation
    episodes, README, Training) instead of a bilinear one; the same weights."""
    return dataclasses.replace(seggpt_match_gate(), upsample_guide=(6, 1e-3))
