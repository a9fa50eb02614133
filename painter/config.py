"""Frozen, validated configurations for the backbone and the painter models.

Structure (tap layers, merge layer, attention layout, canvas size) lives here and nowhere else:
model code reads it from these objects.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

from painter.errors import ConfigError
from painter.upsample import check_guide


class SegType(enum.IntEnum):
    """Which type token SegGPT adds: the context is a semantic class or one instance."""

    SEMANTIC = 0
    INSTANCE = 1


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``condition`` holds (config validation)."""
    if not condition:
        raise ConfigError(message)


#: How the decoder output becomes the painted canvas (PainterConfig.paint_activation).
PAINT_ACTIVATIONS = ("identity", "sigmoid")


@dataclass(frozen=True)
class ViTConfig:
    """A plain ViT image encoder with decomposed relative position and optional windows.

    Attributes:
        embed_dim, depth, num_heads: the usual ViT sizes.
        patch_size: side of the square patch in pixels.
        mlp_ratio: hidden size of the MLP as a multiple of ``embed_dim``.
        qkv_bias: bias on the fused qkv projection.
        norm_eps: LayerNorm epsilon.
        drop_path_rate: stochastic depth at the last block (linear schedule from 0).
        use_rel_pos: add decomposed relative-position terms to the attention logits.
        window_size: side of the attention window in patches; 0 makes every block global.
            Note: the released SegGPT and Painter weights were trained with every block global
            (their code listed window blocks but the list never matched), so their variants use 0.
        global_attn_blocks: blocks that attend globally when ``window_size`` > 0.
        rel_pos_grid: (rows, cols) the global blocks' relative-position tables are sized for;
            windowed blocks use (window_size, window_size). Tables are resized if the input differs.
        pos_embed_grid: (rows, cols) of the learned absolute position embedding; it is resized to
            the patch grid of each input.
        pos_embed_prefix: leading slots in the position embedding that are not patches (1 for the
            MAE layout with a class slot, 0 for SAM's grid layout). They are kept for lossless
            conversion and never added to tokens.
    """

    embed_dim: int
    depth: int
    num_heads: int
    patch_size: int = 16
    in_chans: int = 3
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    drop_path_rate: float = 0.0
    use_rel_pos: bool = True
    window_size: int = 0
    global_attn_blocks: tuple[int, ...] = ()
    rel_pos_grid: tuple[int, int] = (56, 28)
    pos_embed_grid: tuple[int, int] = (14, 14)
    pos_embed_prefix: int = 1

    def __post_init__(self) -> None:
        require(self.embed_dim > 0 and self.depth > 0, "embed_dim and depth must be positive")
        require(
            self.num_heads > 0 and self.embed_dim % self.num_heads == 0,
            f"embed_dim {self.embed_dim} must be divisible by num_heads {self.num_heads}",
        )
        require(self.patch_size > 0, "patch_size must be positive")
        require(0.0 <= self.drop_path_rate < 1.0, "drop_path_rate must be in [0, 1)")
        require(self.window_size >= 0, "window_size must be >= 0 (0 = all blocks global)")
        for i in self.global_attn_blocks:
            require(
                0 <= i < self.depth, f"global_attn_blocks entry {i} is outside 0..{self.depth - 1}"
            )
        require(
            self.window_size > 0 or not self.global_attn_blocks,
            "global_attn_blocks only makes sense with window_size > 0 (0 means all global)",
        )
        require(min(self.rel_pos_grid) > 0 and min(self.pos_embed_grid) > 0, "grids must be > 0")
        require(self.pos_embed_prefix >= 0, "pos_embed_prefix must be >= 0")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    def is_global(self, block: int) -> bool:
        """True when ``block`` attends over the whole grid."""
        return self.window_size == 0 or block in self.global_attn_blocks


@dataclass(frozen=True)
class PainterConfig:
    """The painter: two streams (image, target) over one backbone, merged, then decoded.

    Attributes:
        vit: the backbone.
        canvas_size: (H, W) of the stitched canvas in pixels; prompt on top, query below.
        merge_block: the image and target streams are averaged after this block.
        tap_blocks: blocks whose outputs (after the stream merge and the shared final norm) feed
            the decoder.
        decoder_dim: channels of the pixel decoder.
        decoder_guide: channels of an image-guided refinement in the decoder, 0 for none (the
            released models). When > 0 the decoder also sees the image canvas through a 3x3 conv
            and refines with a second 3x3 conv, so a painting can follow the image's edges inside
            a patch instead of being blocky at the patch grid (an extension of this framework,
            not part of SegGPT; such models have no transformers/official export).
        decoder_linear: add a linear map from the tapped features straight to each patch's
            pixels (all three channels) to the decoder's output (an extension of this framework,
            off in the released models). On the CPU recipes here the conv decoder alone does
            not start learning open-set matching from scratch, while a linear per-patch head on
            the same backbone does (benchmarks/diag_openset_heads.py).
        paint_activation: "identity" (the released models: the decoder paints the normalised
            canvas directly, trained with smooth-L1) or "sigmoid" (an extension of this
            framework: the decoder gives per-channel logits of each pixel's colour intensity in
            [0, 1], the canvas is their sigmoid, and training uses a per-channel binary
            cross-entropy against the target's intensities; on the CPU recipes here this starts
            learning open-set matching where the regression does not, see README, Training).
        decoder_match: key channels of the match head (:mod:`painter.matching`), 0 for none (the
            released models): every hidden 4x4 cell also copies the colours of the visible target
            cells whose keys (a small conv stem on each canvas half plus the tapped features)
            it resembles, and the decoder refines that propagation (an extension of this
            framework; no transformers export). Needs a patch size divisible by 4.
        match_colour_bins: with the match head, also key every cell by its local colour
            distribution (``bins``^3 soft RGB bins over an 8x8 window, no weights; the keys'
            learned share starts at 0.2), so matching starts from "same colours nearby" and holds
            for textures the model never trained on; 0 for learned keys only.
        match_sink: with the match head, the starting value of a learned similarity threshold
            (a cosine in [-1, 1]): a hidden cell that resembles no visible cell better than it
            copies black (background) instead of the colours of its least-bad match; None for
            none (every cell copies the colours of what it resembles most).
        match_gate: with the sink, the starting ``(slope, threshold)`` of a learned gate on the
            decoder's own painting: it paints only where the share of a cell's propagation that
            went to visible cells rather than the sink is above about ``threshold``
            (:class:`painter.matching.MatchHead`); None for an ungated decoder.
        upsample_guide: how the painted query half reaches the query image's own size: None for
            bilinear upsampling (the released models, as the official inference), or ``(radius,
            eps)`` of an image-guided upsampling (:func:`painter.upsample.guided_upsample`: a guided
            filter fitted on the canvas, radius in canvas pixels, applied to the image at full
            size), so mask edges follow the image's edges rather than the canvas grid (an extension
            of this framework; it changes no weights).
        type_tokens: add SegGPT's semantic/instance type tokens (False for Painter).
        loss_beta: smooth-L1 beta of the masked loss.
    """

    vit: ViTConfig
    canvas_size: tuple[int, int] = (896, 448)
    merge_block: int = 2
    tap_blocks: tuple[int, ...] = (5, 11, 17, 23)
    decoder_dim: int = 64
    decoder_guide: int = 0
    decoder_linear: bool = False
    paint_activation: str = "identity"
    decoder_match: int = 0
    match_colour_bins: int = 0
    match_sink: float | None = None
    match_gate: tuple[float, float] | None = None
    upsample_guide: tuple[int, float] | None = None
    type_tokens: bool = True
    loss_beta: float = 0.01
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        height, width = self.canvas_size
        p = self.vit.patch_size
        require(
            height % (2 * p) == 0 and width % p == 0,
            f"canvas_size {self.canvas_size} must be divisible by the patch size {p} "
            "(and its height by 2 * patch, so prompt and query halves hold whole patches)",
        )
        require(
            0 <= self.merge_block < self.vit.depth,
            f"merge_block {self.merge_block} is outside 0..{self.vit.depth - 1}",
        )
        require(len(self.tap_blocks) > 0, "tap_blocks must name at least one block")
        require(
            list(self.tap_blocks) == sorted(set(self.tap_blocks)),
            f"tap_blocks {self.tap_blocks} must be strictly increasing",
        )
        require(
            self.tap_blocks[0] >= self.merge_block and self.tap_blocks[-1] < self.vit.depth,
            f"tap_blocks {self.tap_blocks} must not come before merge_block {self.merge_block} "
            f"and before depth {self.vit.depth}",
        )
        require(
            self.decoder_dim > 0 and self.loss_beta > 0, "decoder_dim and loss_beta must be > 0"
        )
        require(self.decoder_guide >= 0, f"decoder_guide {self.decoder_guide} must be >= 0")
        require(
            self.decoder_match >= 0 and (self.decoder_match == 0 or p % 4 == 0),
            f"decoder_match {self.decoder_match} must be >= 0, and > 0 only with a patch size "
            f"divisible by 4 (got {p})",
        )
        require(
            self.match_colour_bins >= 0 and (self.decoder_match or not self.match_colour_bins),
            f"match_colour_bins {self.match_colour_bins} needs decoder_match > 0",
        )
        require(
            self.match_sink is None or (self.decoder_match and -1 <= self.match_sink <= 1),
            f"match_sink {self.match_sink} needs decoder_match > 0 and a value in [-1, 1]",
        )
        require(
            self.match_gate is None or (self.match_sink is not None and len(self.match_gate) == 2),
            f"match_gate {self.match_gate} needs match_sink and is (slope, threshold)",
        )
        if self.upsample_guide is not None:
            require(len(self.upsample_guide) == 2, "upsample_guide is (radius, eps) or None")
            check_guide(*self.upsample_guide)
        require(
            self.paint_activation in PAINT_ACTIVATIONS,
            f"paint_activation {self.paint_activation!r} is not one of {PAINT_ACTIVATIONS}",
        )

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) patch grid of the whole canvas."""
        return self.canvas_size[0] // self.vit.patch_size, self.canvas_size[
            1
        ] // self.vit.patch_size

    @property
    def half_size(self) -> tuple[int, int]:
        """(H, W) of one image of the pair (the prompt or the query)."""
        return self.canvas_size[0] // 2, self.canvas_size[1]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PainterConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, lists become tuples."""
        data = dict(data)
        try:
            vit_data = {k: _tuplify(v) for k, v in data.pop("vit").items()}
            vit = ViTConfig(**vit_data)
            return cls(vit=vit, **{k: _tuplify(v) for k, v in data.items()})
        except (TypeError, KeyError) as err:
            raise ConfigError(f"not a valid painter config: {err}") from err


def _tuplify(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
