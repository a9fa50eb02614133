"""Prompts (points, a box, a low-resolution mask) to the tokens the mask decoder reads.

Coordinates are in pixels of the padded model input (``image_size`` square); the predictor maps
image coordinates there (:mod:`painter.promptable.transforms`).

Point labels: 1 foreground, 0 background, -1 padding (ignored; lets rows of a batch hold
different numbers of points).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from painter.promptable.config import SamConfig
from painter.promptable.layers import LayerNorm2d

PADDING_LABEL = -1


class RandomFourierEncoding(nn.Module):
    """Position encoding with random spatial frequencies.

    A point at ``u`` in [0, 1]^2 is encoded as ``[sin(2 pi f), cos(2 pi f)]`` with
    ``f = (2 u - 1) @ G`` and ``G`` a fixed (2, D / 2) Gaussian matrix (kept in checkpoints).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, dim // 2))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """(..., 2) (x, y) in [0, 1] -> (..., D), computed in float32 even under autocast
        (bfloat16 phases would move every position)."""
        gaussian = self.positional_encoding_gaussian_matrix.float()
        with torch.autocast(coords.device.type, enabled=False):
            angles = 2 * math.pi * ((2 * coords.float() - 1) @ gaussian)  # (..., D/2)
            return torch.cat([angles.sin(), angles.cos()], dim=-1)

    def grid(self, size: int) -> torch.Tensor:
        """Encoding of the centres of a size x size token grid: (D, size, size)."""
        centres = (
            torch.arange(size, device=self.positional_encoding_gaussian_matrix.device) + 0.5
        ) / size
        ys, xs = torch.meshgrid(centres, centres, indexing="ij")  # (size, size) each
        return self(torch.stack([xs, ys], dim=-1)).permute(2, 0, 1)  # (s, s, D) -> (D, s, s)


class PromptEncoder(nn.Module):
    """Sparse tokens for points and boxes, a dense map for the mask prompt."""

    def __init__(self, config: SamConfig) -> None:
        super().__init__()
        dim = config.prompt_embed_dim
        self.image_size = config.image_size
        self.grid = config.grid
        self.embed_dim = dim
        self.pe_layer = RandomFourierEncoding(dim)
        # 0 background point, 1 foreground point, 2 box top-left, 3 box bottom-right
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, dim)
        hidden = config.mask_in_chans
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, hidden // 4, kernel_size=2, stride=2),
            LayerNorm2d(hidden // 4),
            nn.GELU(),
            nn.Conv2d(hidden // 4, hidden, kernel_size=2, stride=2),
            LayerNorm2d(hidden),
            nn.GELU(),
            nn.Conv2d(hidden, dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, dim)

    def image_position_encoding(self) -> torch.Tensor:
        """Position encoding of the image embedding's grid: (1, D, h, w)."""
        return self.pe_layer.grid(self.grid)[None]

    def _encode_coords(self, coords: torch.Tensor) -> torch.Tensor:
        """(..., 2) pixel coordinates of the padded input -> (..., D)."""
        return self.pe_layer((coords + 0.5) / self.image_size)  # pixel centres, then [0, 1]

    def embed_points(self, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(P, N, 2) points and (P, N) labels in {1, 0, -1} -> (P, N, D) tokens."""
        encoded = self._encode_coords(points)  # (P, N, D)
        is_point = (labels != PADDING_LABEL)[..., None]  # (P, N, 1)
        kind = torch.cat(  # (3, D): rows for labels -1, 0, 1
            [
                self.not_a_point_embed.weight,
                self.point_embeddings[0].weight,
                self.point_embeddings[1].weight,
            ]
        )
        return torch.where(is_point, encoded, 0.0) + kind[labels.long() + 1]  # (P, N, D)

    def embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """(P, 4) boxes x0, y0, x1, y1 -> (P, 2, D) corner tokens."""
        corners = self._encode_coords(boxes.reshape(-1, 2, 2))  # (P, 2, D)
        corner_kind = torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight])
        return corners + corner_kind  # (P, 2, D) + (2, D)

    def forward(
        self,
        *,
        points: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode P prompt rows.

        Args:
            points: (P, N, 2) x, y in input pixels, with ``labels`` (P, N).
            boxes: (P, 4) one box per row.
            masks: (P, 1, 4h, 4w) mask logits, e.g. a previous low-resolution output.
        Returns:
            sparse tokens (P, N', D) and the dense embedding (P, D, h, w). Without a box, one
            padding point is appended to the points (the released models expect it).
        """
        rows = _num_rows(points, boxes, masks)
        weight = self.no_mask_embed.weight
        sparse = [weight.new_zeros(rows, 0, self.embed_dim)]
        if points is not None:
            if labels is None:
                raise ValueError("points need labels")
            if boxes is None:
                points = torch.cat([points, points.new_zeros(rows, 1, 2)], dim=1)  # (P, N+1, 2)
                labels = torch.cat([labels, labels.new_full((rows, 1), PADDING_LABEL)], dim=1)
            sparse.append(self.embed_points(points, labels))
        if boxes is not None:
            sparse.append(self.embed_boxes(boxes))
        if masks is not None:
            dense = self.mask_downscaling(masks)  # (P, D, h, w)
        else:
            dense = weight.reshape(1, -1, 1, 1).expand(rows, -1, self.grid, self.grid)
        return torch.cat(sparse, dim=1), dense


def _num_rows(*tensors: torch.Tensor | None) -> int:
    for tensor in tensors:
        if tensor is not None:
            return tensor.shape[0]
    return 1
