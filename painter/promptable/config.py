"""Frozen configuration of the promptable (SAM-style) segmenter and its variant registry.

The image encoder is the shared :class:`~painter.backbone.ViTBackbone`; its :class:`ViTConfig`
sits inside :class:`SamConfig` together with the sizes of the neck, the prompt encoder and the
two-way mask decoder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from painter.config import ViTConfig, require
from painter.errors import ConfigError
from painter.registry import Registry

# Pixel statistics of the released SAM models, on the 0..255 scale.
SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class SamConfig:
    """A promptable segmenter: ViT encoder + neck, prompt encoder, two-way mask decoder.

    Attributes:
        encoder: the ViT; windowed attention with a few global blocks, SAM's grid-layout
            position embedding (``pos_embed_prefix`` 0) sized for ``image_size``.
        image_size: side of the square, zero-padded model input in pixels (1024 for SAM).
        prompt_embed_dim: channels of the image embedding (neck output), of every prompt token
            and of the mask decoder (256 for SAM).
        mask_in_chans: hidden channels of the dense mask-prompt downscaler.
        decoder_depth, decoder_heads, decoder_mlp_dim: the two-way transformer.
        attention_downsample_rate: the cross attentions project to ``prompt_embed_dim / rate``.
        num_multimask_outputs: candidate masks for ambiguous prompts (one more token is the
            single-mask output).
        iou_head_depth, iou_head_hidden_dim: the MLP that predicts each mask's IoU.
        decoder_norm_eps: epsilon of the two-way blocks' LayerNorms (Meta's code uses torch's
            default 1e-5, transformers' port 1e-6; the loaders set what the weights were made with).
        pixel_mean, pixel_std: input normalisation on the 0..255 scale.
        mask_threshold: logits above it are foreground.
    """

    encoder: ViTConfig
    image_size: int = 1024
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp_dim: int = 2048
    attention_downsample_rate: int = 2
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    decoder_norm_eps: float = 1e-5
    pixel_mean: tuple[float, float, float] = SAM_PIXEL_MEAN
    pixel_std: tuple[float, float, float] = SAM_PIXEL_STD
    mask_threshold: float = 0.0
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        enc = self.encoder
        require(
            self.image_size > 0 and self.image_size % enc.patch_size == 0,
            f"image_size {self.image_size} must be a positive multiple of the patch size "
            f"{enc.patch_size}",
        )
        grid = (self.grid, self.grid)
        require(enc.pos_embed_prefix == 0, "the SAM encoder's position embedding has no prefix")
        require(
            tuple(enc.pos_embed_grid) == grid and tuple(enc.rel_pos_grid) == grid,
            f"encoder pos_embed_grid {enc.pos_embed_grid} and rel_pos_grid {enc.rel_pos_grid} "
            f"must equal the embedding grid {grid} of image_size {self.image_size}",
        )
        dim = self.prompt_embed_dim
        require(
            dim > 0 and dim % 8 == 0, f"prompt_embed_dim {dim} must be a positive multiple of 8"
        )
        require(self.mask_in_chans % 4 == 0, "mask_in_chans must be a multiple of 4")
        require(self.decoder_depth > 0, "decoder_depth must be positive")
        require(
            self.attention_downsample_rate > 0
            and dim % self.attention_downsample_rate == 0
            and (dim // self.attention_downsample_rate) % self.decoder_heads == 0,
            f"decoder_heads {self.decoder_heads} must divide prompt_embed_dim {dim} / "
            f"attention_downsample_rate {self.attention_downsample_rate}",
        )
        require(self.num_multimask_outputs >= 1, "num_multimask_outputs must be >= 1")
        require(self.iou_head_depth >= 2, "iou_head_depth must be >= 2 (input and output layer)")
        require(len(self.pixel_mean) == 3 and len(self.pixel_std) == 3, "pixel stats need 3 values")
        require(min(self.pixel_std) > 0, "pixel_std must be positive")

    @property
    def grid(self) -> int:
        """Side of the image embedding in tokens (64 for SAM)."""
        return self.image_size // self.encoder.patch_size

    @property
    def low_res_size(self) -> int:
        """Side of the decoder's logit maps and of mask prompts (256 for SAM)."""
        return 4 * self.grid

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, lists become tuples."""
        data = dict(data)
        try:
            encoder = ViTConfig(**{k: _tuplify(v) for k, v in data.pop("encoder").items()})
            return cls(encoder=encoder, **{k: _tuplify(v) for k, v in data.items()})
        except (TypeError, KeyError, AttributeError) as err:
            raise ConfigError(f"not a valid promptable-model config: {err}") from err


def _tuplify(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def sam_encoder(
    dim: int,
    depth: int,
    heads: int,
    global_blocks: tuple[int, ...],
    *,
    image_size: int = 1024,
    window: int = 14,
    patch: int = 16,
) -> ViTConfig:
    """SAM's ViT: windowed blocks, a few global ones, grid-layout position embedding."""
    grid = (image_size // patch, image_size // patch)
    return ViTConfig(
        embed_dim=dim,
        depth=depth,
        num_heads=heads,
        patch_size=patch,
        window_size=window,
        global_attn_blocks=global_blocks,
        rel_pos_grid=grid,
        pos_embed_grid=grid,
        pos_embed_prefix=0,
    )


def same_architecture(a: SamConfig, b: SamConfig, *, ignore_heads: bool = False) -> bool:
    """True when the two configs give the same weights: name, threshold, drop-path rate and the
    decoder's LayerNorm epsilon aside (and the decoder's head count with ``ignore_heads``, which
    Meta's checkpoint files do not record)."""

    def core(config: SamConfig) -> SamConfig:
        return dataclasses.replace(
            config,
            encoder=dataclasses.replace(config.encoder, drop_path_rate=0.0),
            name="",
            mask_threshold=0.0,
            decoder_norm_eps=0.0,
            decoder_heads=1 if ignore_heads else config.decoder_heads,
        )

    return core(a) == core(b)


def variant_of(config: SamConfig, *, ignore_heads: bool = False) -> str | None:
    """The registered variant with ``config``'s architecture, if any."""
    for name in list_sam_models():
        if same_architecture(get_sam_config(name), config, ignore_heads=ignore_heads):
            return name
    return None


# -- registry ----------------------------------------------------------------------------------
SAM_MODELS: Registry[SamConfig] = Registry("promptable variant")
register = SAM_MODELS.register
list_sam_models = SAM_MODELS.names
get_sam_config = SAM_MODELS.get


@register
def sam_vit_b() -> SamConfig:
    """SAM ViT-B (sam_vit_b_01ec64.pth): 768 wide, 12 blocks, global 2, 5, 8, 11."""
    return SamConfig(encoder=sam_encoder(768, 12, 12, (2, 5, 8, 11)))


@register
def sam_vit_l() -> SamConfig:
    """SAM ViT-L (sam_vit_l_0b3195.pth): 1024 wide, 24 blocks, global 5, 11, 17, 23."""
    return SamConfig(encoder=sam_encoder(1024, 24, 16, (5, 11, 17, 23)))


@register
def sam_vit_h() -> SamConfig:
    """SAM ViT-H (sam_vit_h_4b8939.pth): 1280 wide, 32 blocks, global 7, 15, 23, 31."""
    return SamConfig(encoder=sam_encoder(1280, 32, 16, (7, 15, 23, 31)))


@register
def sam_tiny() -> SamConfig:
    """For tests and CPU demos: 96-wide 4-block encoder at 256 px, 64-wide decoder."""
    return SamConfig(
        encoder=sam_encoder(96, 4, 3, (1, 3), image_size=256, window=6),
        image_size=256,
        prompt_embed_dim=64,
        decoder_heads=4,
        decoder_mlp_dim=128,
        iou_head_hidden_dim=64,
    )


@register
def sam_demo() -> SamConfig:
    """The bundled promptable demo model: 128-wide 4-block encoder at 128 px in 8-pixel patches
    (a 16x16 embedding grid, 4x4 windows, blocks 1 and 3 global), 64-wide decoder."""
    return SamConfig(
        encoder=sam_encoder(128, 4, 4, (1, 3), image_size=128, window=4, patch=8),
        image_size=128,
        prompt_embed_dim=64,
        decoder_heads=4,
        decoder_mlp_dim=256,
        iou_head_hidden_dim=64,
    )
