"""The Painter generalist: an image canvas and a target canvas through one ViT, merged, decoded.

The image canvas holds the prompt image above the query image; the target canvas holds the
prompt's coloured mask above the (hidden) query target. Hidden target patches are replaced by a
learned mask token, the model paints them, and a masked smooth-L1 loss compares the painting with
the real target.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from timm.layers import LayerNorm2d, trunc_normal_
from torch import nn

from painter.backbone import AttnHook, ViTBackbone
from painter.config import PainterConfig
from painter.losses import masked_smooth_l1

# (block index, streams already merged?) -> hook on that block's attention branch, or None.
HookFactory = Callable[[int, bool], AttnHook | None]


class PaintDecoder(nn.Module):
    """Tapped features to pixels: Linear -> pixel shuffle -> Conv3x3 -> LN -> GELU -> Conv1x1."""

    def __init__(self, in_dim: int, patch_size: int, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.dim = dim
        self.decoder_embed = nn.Linear(in_dim, patch_size * patch_size * dim)
        self.decoder_pred = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=3, padding=1),
            LayerNorm2d(dim, eps=eps),
            nn.GELU(),
            nn.Conv2d(dim, 3, kernel_size=1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, h, w, T * C) -> (B, 3, h * p, w * p)."""
        b, h, w, _ = features.shape
        p = self.patch_size
        x = self.decoder_embed(features).reshape(b, h, w, p, p, self.dim)  # (B, h, w, p, q, D)
        x = torch.einsum("bhwpqd->bdhpwq", x).reshape(b, self.dim, h * p, w * p)  # (B, D, H, W)
        return self.decoder_pred(x)


class PainterModel(nn.Module):
    """Two-stream masked image modelling over a prompt+query canvas (Painter)."""

    def __init__(self, config: PainterConfig, backbone: ViTBackbone, decoder: PaintDecoder) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.decoder = decoder
        dim = config.vit.embed_dim
        self.mask_token = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.stream_token_image = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.stream_token_target = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.norm = nn.LayerNorm(dim, eps=config.vit.norm_eps)
        for token in (self.mask_token, self.stream_token_image, self.stream_token_target):
            trunc_normal_(token, std=0.02)

    # -- embedding -------------------------------------------------------------------------------
    def extra_embedding(self, seg_type: object, batch: int) -> torch.Tensor | None:
        """Embedding added to both streams after the position embedding (none for Painter)."""
        return None

    def embed(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        patch_mask: torch.Tensor,
        *,
        seg_type: object = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed both canvases.

        Args:
            images, targets: (B, 3, H, W) normalised canvases.
            patch_mask: (B, h * w) bool, True where the target patch is hidden.
        Returns:
            image-stream and target-stream tokens, each (B, h, w, C).
        """
        x = self.backbone.patch_embed(images)  # (B, h, w, C)
        y = self.backbone.patch_embed(targets)  # (B, h, w, C)
        b, h, w, _ = y.shape
        hidden = patch_mask.reshape(b, h, w, 1).to(y.dtype)  # (B, h, w, 1)
        y = y * (1 - hidden) + self.mask_token.to(y.dtype) * hidden
        x = x + self.stream_token_image
        y = y + self.stream_token_target
        pos = self.backbone.position_embedding((h, w))  # (1, h, w, C)
        x, y = x + pos, y + pos
        extra = self.extra_embedding(seg_type, b)
        if extra is not None:
            x, y = x + extra, y + extra
        return x, y

    # -- encoder ---------------------------------------------------------------------------------
    def encode(
        self, x: torch.Tensor, y: torch.Tensor, *, hooks: HookFactory | None = None
    ) -> list[torch.Tensor]:
        """Run the blocks: streams apart up to ``merge_block``, averaged after it.

        Args:
            x, y: image-stream and target-stream tokens, each (B, h, w, C).
            hooks: optional per-block attention hooks (see :data:`HookFactory`).
        Returns:
            normalised outputs of the tap blocks, each (B, h, w, C).
        """
        cfg = self.config
        b = x.shape[0]
        tokens = torch.cat([x, y], dim=0)  # (2B, h, w, C): image streams, then target streams
        merged = False
        taps = []
        for i in range(cfg.vit.depth):
            hook = hooks(i, merged) if hooks is not None else None
            tokens = self.backbone.run_block(i, tokens, hook)
            if i == cfg.merge_block:
                tokens = (tokens[:b] + tokens[b:]) * 0.5  # (B, h, w, C)
                merged = True
            if i in cfg.tap_blocks:
                taps.append(self.norm(tokens))
            if i >= cfg.tap_blocks[-1]:
                break  # later blocks feed nothing
        return taps

    def forward(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        patch_mask: torch.Tensor,
        *,
        seg_type: object = None,
        hooks: HookFactory | None = None,
    ) -> torch.Tensor:
        """Paint the hidden target patches.

        Args:
            images, targets: (B, 3, H, W) normalised canvases.
            patch_mask: (B, h * w) bool, True where the target patch is hidden.
        Returns:
            (B, 3, H, W) painted target canvas in the normalised space.
        """
        x, y = self.embed(images, targets, patch_mask, seg_type=seg_type)
        taps = self.encode(x, y, hooks=hooks)
        return self.decoder(torch.cat(taps, dim=-1))  # (B, h, w, T * C) -> (B, 3, H, W)

    def loss(
        self,
        pred: torch.Tensor,
        targets: torch.Tensor,
        patch_mask: torch.Tensor,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Masked smooth-L1 between the painting (B, 3, H, W) and the true target canvas."""
        return masked_smooth_l1(
            pred.float(),
            targets.float(),
            patch_mask,
            patch_size=self.config.vit.patch_size,
            valid=valid,
            beta=self.config.loss_beta,
        )

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.backbone.set_grad_checkpointing(enable)

    def no_weight_decay(self) -> set[str]:
        """Parameter names that take no weight decay (tokens and the position embedding)."""
        return {
            "backbone.pos_embed",
            "mask_token",
            "stream_token_image",
            "stream_token_target",
        } | {n for n, _ in self.named_parameters() if n.startswith("type_token_")}

    def layer_id(self, name: str) -> int:
        """Layer index for layer-wise lr decay: embeddings 0, block i -> i + 1, rest depth + 1."""
        depth = self.config.vit.depth
        if name.startswith("backbone.blocks."):
            return int(name.split(".")[2]) + 1
        embeddings = ("backbone.patch_embed", "backbone.pos_embed", "mask_token", "stream_token_")
        if name.startswith(embeddings + ("type_token_",)):
            return 0
        return depth + 1


def build_painter(config: PainterConfig) -> PainterModel:
    """Build a :class:`PainterModel` from its config."""
    return PainterModel(config, *build_parts(config))


def build_parts(config: PainterConfig) -> tuple[ViTBackbone, PaintDecoder]:
    """The backbone and the decoder a painter model of ``config`` composes."""
    vit = config.vit
    backbone = ViTBackbone(vit)
    decoder = PaintDecoder(
        vit.embed_dim * len(config.tap_blocks),
        vit.patch_size,
        config.decoder_dim,
        eps=vit.norm_eps,
    )
    return backbone, decoder
