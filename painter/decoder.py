"""The painter's pixel decoder: tapped transformer features to a painted canvas."""

from __future__ import annotations

import torch
from timm.layers import LayerNorm2d
from torch import nn

from painter.errors import InputMismatchError


class PaintDecoder(nn.Module):
    """Tapped features to pixels: Linear -> pixel shuffle -> Conv3x3 -> LN -> GELU -> Conv1x1.

    With ``guide`` > 0 the image canvas enters too: a 3x3 conv of the image is concatenated to the
    pixel-shuffled features, and a second 3x3 conv (+ GELU) follows the first, before the 1x1 head.
    With ``linear`` a linear map of the features to each patch's pixels is added to the output.
    With ``match`` the match head's propagated colours (:mod:`painter.matching`) enter the first
    conv as three more channels.
    """

    def __init__(
        self,
        in_dim: int,
        patch_size: int,
        dim: int,
        *,
        guide: int = 0,
        linear: bool = False,
        match: bool = False,
        in_chans: int = 3,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.dim = dim
        self.decoder_embed = nn.Linear(in_dim, patch_size * patch_size * dim)
        self.guide = (
            nn.Sequential(nn.Conv2d(in_chans, guide, kernel_size=3, padding=1), nn.GELU())
            if guide
            else None
        )
        layers: list[nn.Module] = [
            nn.Conv2d(dim + guide + 3 * match, dim, kernel_size=3, padding=1),
            LayerNorm2d(dim, eps=eps),
            nn.GELU(),
        ]
        if guide:
            layers += [nn.Conv2d(dim, dim, kernel_size=3, padding=1), nn.GELU()]
        self.decoder_pred = nn.Sequential(*layers, nn.Conv2d(dim, 3, kernel_size=1))
        self.linear_paint = nn.Linear(in_dim, patch_size * patch_size * 3) if linear else None
        self.match = match

    def forward(
        self,
        features: torch.Tensor,
        image: torch.Tensor | None = None,
        propagated: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, h, w, T * C) [+ image (B, 3, h * p, w * p) when guided] [+ propagated colours
        (B, 3, h * p, w * p) with a match head] -> (B, 3, h * p, w * p)."""
        b, h, w, _ = features.shape
        p = self.patch_size
        x = self.decoder_embed(features).reshape(b, h, w, p, p, self.dim)  # (B, h, w, p, q, D)
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, h * p, w * p, self.dim)  # (B, H, W, D)
        # (B, D, H, W) in channels-last memory: the convolutions run faster on it than on NCHW
        x = x.permute(0, 3, 1, 2)
        if self.guide is not None:
            if image is None or image.shape[-2:] != x.shape[-2:]:
                got = None if image is None else tuple(image.shape)
                raise InputMismatchError(
                    f"this decoder is image-guided and needs the image canvas of size "
                    f"{tuple(x.shape[-2:])}; got {got}"
                )
            x = torch.cat([x, self.guide(image.to(x.dtype))], dim=1)  # (B, D + G, H, W)
        if self.match:
            if propagated is None or propagated.shape[-2:] != x.shape[-2:]:
                raise InputMismatchError("this decoder reads a match head's propagated colours")
            x = torch.cat([x, propagated.to(x.dtype)], dim=1)  # (B, D + G + 3, H, W)
        out = self.decoder_pred(x)  # (B, 3, H, W)
        if self.linear_paint is not None:
            direct = self.linear_paint(features).reshape(b, h, w, p, p, 3)  # (B, h, w, p, q, 3)
            direct = torch.einsum("bhwpqc->bchpwq", direct).reshape(b, 3, h * p, w * p)
            out = out + direct  # (B, 3, H, W)
        return out.contiguous()
