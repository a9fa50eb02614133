"""SegGPT: the Painter generalist plus semantic/instance type tokens and the feature ensemble.

Two ways to run it:
- :meth:`SegGPT.forward` on whole canvases (training, and the reference inference path). With
  ``prompts_per_query`` > 1 it applies the original feature ensemble through attention hooks.
- :meth:`PainterModel.paint_queries` (inherited) for inference with P prompts per query: the
  same ensemble with the shared query half computed once; equal to ``forward`` up to rounding.
"""

from __future__ import annotations

import torch
from timm.layers import trunc_normal_
from torch import nn

from painter.config import PainterConfig, SegType
from painter.decoder import PaintDecoder
from painter.errors import ConfigError, InputMismatchError
from painter.model import PainterModel, build_parts
from seggpt.ensemble import feature_ensemble_hooks


class SegGPT(PainterModel):
    """Painter with type tokens; see the module docstring for the two inference paths."""

    def __init__(self, config: PainterConfig, backbone: nn.Module, decoder: PaintDecoder) -> None:
        super().__init__(config, backbone, decoder)
        dim = config.vit.embed_dim
        self.type_token_semantic = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.type_token_instance = nn.Parameter(torch.zeros(1, 1, 1, dim))
        trunc_normal_(self.type_token_semantic, std=0.02)
        trunc_normal_(self.type_token_instance, std=0.02)

    def extra_embedding(self, seg_type: object, batch: int) -> torch.Tensor:
        """Type token per sample: ``seg_type`` is a SegType or a (B,) tensor of SegType values.

        Both tokens enter the graph for every sample (weighted 0/1), so neither is an unused
        parameter under DDP or gradient checkpointing.
        """
        if seg_type is None:
            seg_type = SegType.INSTANCE
        if isinstance(seg_type, torch.Tensor):
            is_instance = seg_type.to(self.type_token_instance.device).reshape(-1, 1, 1, 1)
            if is_instance.shape[0] != batch:
                raise InputMismatchError(
                    f"seg_type has {is_instance.shape[0]} entries for a batch of {batch}"
                )
        else:
            is_instance = torch.full((batch, 1, 1, 1), int(SegType(seg_type)))
            is_instance = is_instance.to(self.type_token_instance.device)
        w = is_instance.to(self.type_token_instance.dtype)  # (B, 1, 1, 1)
        return w * self.type_token_instance + (1 - w) * self.type_token_semantic  # (B, 1, 1, C)

    def forward(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        patch_mask: torch.Tensor,
        *,
        seg_type: object = None,
        prompts_per_query: int = 1,
        raw: bool = False,
    ) -> torch.Tensor:
        """Paint the hidden target patches of whole canvases.

        Args:
            images, targets: (B, 3, H, W) normalised canvases, B = Q * P with the P prompts of each
                query next to each other and the same query image in all of them.
            patch_mask: (B, h * w) bool, True where the target patch is hidden.
            seg_type: SegType, or a (B,) tensor of SegType values.
            prompts_per_query: P; > 1 turns on the feature ensemble over each query's prompts.
            raw: return the decoder's output as :meth:`loss` takes it (see ``PainterModel``).
        Returns:
            (B, 3, H, W) painted canvas, normalised space (or the raw output).
        """
        if images.shape[0] % prompts_per_query:
            raise InputMismatchError(
                f"batch {images.shape[0]} is not a multiple of "
                f"prompts_per_query {prompts_per_query}"
            )
        hooks = feature_ensemble_hooks(prompts_per_query)
        return super().forward(
            images,
            targets,
            patch_mask,
            seg_type=seg_type,
            hooks=hooks,
            match_group=prompts_per_query,
            raw=raw,
        )


def build_seggpt(config: PainterConfig) -> SegGPT:
    """Build a :class:`SegGPT` from its config (``config.type_tokens`` must be True)."""
    if not config.type_tokens:
        raise ConfigError(f"config {config.name!r} has no type tokens; build it with build_painter")
    return SegGPT(config, *build_parts(config))
