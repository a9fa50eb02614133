"""The mask decoder: output tokens + prompt tokens against the image embedding -> mask logits.

Token 0 gives the single-mask output, tokens 1..K the K candidate masks for ambiguous prompts;
an IoU token predicts each mask's quality. Masks are the dot product of each mask token (through
its own small MLP, a "hypernetwork") with the 4x upscaled image embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from painter.promptable.config import SamConfig
from painter.promptable.layers import MLP, LayerNorm2d
from painter.promptable.two_way import TwoWayTransformer


class MaskDecoder(nn.Module):
    def __init__(self, config: SamConfig) -> None:
        super().__init__()
        dim = config.prompt_embed_dim
        self.num_mask_tokens = config.num_multimask_outputs + 1
        self.transformer = TwoWayTransformer(
            config.decoder_depth,
            dim,
            config.decoder_heads,
            config.decoder_mlp_dim,
            downsample_rate=config.attention_downsample_rate,
            eps=config.decoder_norm_eps,
        )
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(dim, dim, dim // 8, depth=3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            dim, config.iou_head_hidden_dim, self.num_mask_tokens, depth=config.iou_head_depth
        )

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pos: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        *,
        multimask: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode P prompt rows.

        Args:
            image_embeddings: (P, D, h, w), or (1, D, h, w) shared by every row.
            image_pos: (1, D, h, w) position encoding of the embedding grid.
            sparse: (P, N, D) prompt tokens.
            dense: (P, D, h, w) dense prompt embedding.
            multimask: return the K candidate masks (else the single-mask output).
        Returns:
            mask logits (P, K or 1, 4h, 4w) and predicted IoUs (P, K or 1).
        """
        rows, _, dim = sparse.shape
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight])  # (1+T, D)
        tokens = torch.cat([output_tokens.expand(rows, -1, -1), sparse], dim=1)  # (P, 1+T+N, D)
        grid_h, grid_w = dense.shape[-2:]
        # channels-last from here on: contiguous (., h*w, D) rows feed the matrix products
        image = _as_tokens(image_embeddings).contiguous() + _as_tokens(dense)  # (P, h*w, D)
        image_pos = _as_tokens(image_pos).contiguous()  # (1, h*w, D)
        tokens, image = self.transformer(image, image_pos, tokens)  # (P, *, D), (P, h*w, D)

        chosen = range(1, self.num_mask_tokens) if multimask else range(1)
        upscaled = self.upscale(image)  # (P, h*w*16, D/8)
        hyper = torch.stack(  # (P, K, D/8): one vector per chosen mask token
            [self.output_hypernetworks_mlps[t](tokens[:, 1 + t]) for t in chosen], dim=1
        )
        masks = hyper @ upscaled.transpose(1, 2)  # (P, K, h*w*16), pixels in sub-pixel order
        masks = masks.reshape(rows, len(chosen), grid_h, grid_w, 2, 2, 2, 2)
        masks = masks.permute(0, 1, 2, 4, 6, 3, 5, 7)  # (P, K, h, a1, a2, w, b1, b2)
        iou = self.iou_prediction_head(tokens[:, 0])  # (P, 1+T)
        return masks.reshape(rows, len(chosen), 4 * grid_h, 4 * grid_w), iou[
            :, chosen.start : chosen.stop
        ]

    def upscale(self, image: torch.Tensor) -> torch.Tensor:
        """The output upscaling, channels-last: (P, h*w, D) -> (P, h*w*16, D/8).

        Equal to ``output_upscaling`` on (P, D, h, w) maps (two stride-2 2x2 transposed convs
        with LayerNorm2d and GELU), but each transposed conv runs as one matrix product: output
        pixel (4i + 2a1 + a2, 4j + 2b1 + b2) is row (i, j, a1, b1, a2, b2) of the result.
        """
        conv1, norm, act1, conv2, act2 = self.output_upscaling
        x = _stride2_transposed_conv(image, conv1)  # (P, h*w*4, D/4)
        x = act1(F.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, norm.eps))
        return act2(_stride2_transposed_conv(x, conv2))  # (P, h*w*16, D/8)


def _as_tokens(maps: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) -> (B, h*w, D) view."""
    return maps.flatten(2).transpose(1, 2)


def _stride2_transposed_conv(x: torch.Tensor, conv: nn.ConvTranspose2d) -> torch.Tensor:
    """(P, M, C_in) pixels -> (P, 4 M, C_out): each pixel becomes its 2x2 block, in (a, b)
    row-major order, exactly as ``conv`` (kernel 2, stride 2) would compute it."""
    c_in, c_out = conv.weight.shape[:2]
    weight = conv.weight.permute(2, 3, 1, 0).reshape(4 * c_out, c_in)  # rows (a, b, C_out)
    out = F.linear(x, weight, conv.bias.repeat(4))  # (P, M, 4 * C_out)
    return out.reshape(x.shape[0], 4 * x.shape[1], c_out)
