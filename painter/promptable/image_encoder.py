"""SAM's image encoder: the shared ViT backbone followed by a convolutional neck."""

from __future__ import annotations

import torch
from torch import nn

from painter.backbone import ViTBackbone
from painter.promptable.config import SamConfig
from painter.promptable.layers import LayerNorm2d


def build_neck(in_dim: int, out_dim: int) -> nn.Sequential:
    """Conv1x1, LayerNorm2d, Conv3x3, LayerNorm2d, convs without bias.

    (B, C, h, w) -> (B, D, h, w).
    """
    return nn.Sequential(
        nn.Conv2d(in_dim, out_dim, kernel_size=1, bias=False),
        LayerNorm2d(out_dim),
        nn.Conv2d(out_dim, out_dim, kernel_size=3, padding=1, bias=False),
        LayerNorm2d(out_dim),
    )


class ImageEncoder(nn.Module):
    """Normalised, padded images -> the image embedding the prompts are decoded against."""

    def __init__(self, backbone: ViTBackbone, neck: nn.Sequential) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, D, S / patch, S / patch)."""
        tokens, _ = self.backbone(images)  # (B, h, w, C)
        return self.neck(tokens.permute(0, 3, 1, 2))  # (B, C, h, w) -> (B, D, h, w)


def build_image_encoder(config: SamConfig) -> ImageEncoder:
    backbone = ViTBackbone(config.encoder)
    return ImageEncoder(backbone, build_neck(config.encoder.embed_dim, config.prompt_embed_dim))
