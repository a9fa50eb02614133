"""SegGPT: the Painter generalist plus semantic/instance type tokens and the feature ensemble.

Two ways to run it:
- :meth:`SegGPT.forward` on whole canvases (training, and the reference inference path). With
  ``prompts_per_query`` > 1 it applies the original feature ensemble through attention hooks.
- :meth:`SegGPT.paint_queries` for inference with P prompts per query. The query half of every
  canvas is the same for all P prompts and stays the same under the ensemble, so its tokens are
  computed once per query instead of once per prompt, and only the query half is decoded. The
  result equals ``forward`` with the ensemble (up to float rounding).
"""

from __future__ import annotations

import torch
from timm.layers import trunc_normal_
from torch import nn

from painter.config import PainterConfig, SegType
from painter.errors import ConfigError, InputMismatchError
from painter.model import PaintDecoder, PainterModel, build_parts
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
    ) -> torch.Tensor:
        """Paint the hidden target patches of whole canvases.

        Args:
            images, targets: (B, 3, H, W) normalised canvases, B = Q * P with the P prompts of each
                query next to each other and the same query image in all of them.
            patch_mask: (B, h * w) bool, True where the target patch is hidden.
            seg_type: SegType, or a (B,) tensor of SegType values.
            prompts_per_query: P; > 1 turns on the feature ensemble over each query's prompts.
        Returns:
            (B, 3, H, W) painted canvas, normalised space.
        """
        if images.shape[0] % prompts_per_query:
            raise InputMismatchError(
                f"batch {images.shape[0]} is not a multiple of prompts_per_query {prompts_per_query}"
            )
        hooks = feature_ensemble_hooks(prompts_per_query)
        return super().forward(images, targets, patch_mask, seg_type=seg_type, hooks=hooks)

    def paint_queries(
        self,
        prompt_images: torch.Tensor,
        prompt_targets: torch.Tensor,
        query_images: torch.Tensor,
        *,
        seg_type: object = None,
    ) -> torch.Tensor:
        """Paint each query's target from its P prompts (feature ensemble), query half once.

        Args:
            prompt_images, prompt_targets: (Q, P, 3, H/2, W) normalised.
            query_images: (Q, 3, H/2, W) normalised.
        Returns:
            (Q, 3, H/2, W): the painted query half, normalised space.
        """
        cfg = self.config
        if any(blk.window_size for blk in self.backbone.blocks):
            raise ConfigError("paint_queries needs all-global attention; use forward() instead")
        n_q, n_p = prompt_images.shape[:2]
        if prompt_targets.shape[:2] != (n_q, n_p) or query_images.shape[0] != n_q:
            raise InputMismatchError(
                f"prompt images {tuple(prompt_images.shape)}, prompt targets "
                f"{tuple(prompt_targets.shape)} and queries {tuple(query_images.shape)} disagree"
            )
        hp = prompt_images.shape[-2] // cfg.vit.patch_size
        # Embed full canvases for the prompt rows and the query rows separately.
        embed = self.backbone.patch_embed
        prompt_flat = prompt_images.flatten(0, 1)  # (Q * P, 3, H/2, W)
        px = embed(prompt_flat)  # (QP, hp, w, C)
        py = embed(prompt_targets.flatten(0, 1))  # (QP, hp, w, C)
        qx = embed(query_images)  # (Q, hq, w, C)
        qy = self.mask_token.expand_as(qx)  # every query target patch is hidden
        grid = (hp + qx.shape[1], qx.shape[2])
        pos = self.backbone.position_embedding(grid)  # (1, h, w, C)
        type_p = self.extra_embedding(seg_type, n_q).repeat_interleave(n_p, dim=0)  # (QP,1,1,C)
        type_q = self.extra_embedding(seg_type, n_q)  # (Q, 1, 1, C)
        px = px + self.stream_token_image + pos[:, :hp] + type_p
        py = py + self.stream_token_target + pos[:, :hp] + type_p
        qx = qx + self.stream_token_image + pos[:, hp:] + type_q
        qy = qy + self.stream_token_target + pos[:, hp:] + type_q
        prompt_tok = torch.stack([px, py])  # (S=2, QP, hp, w, C)
        query_tok = torch.stack([qx, qy])  # (S=2, Q, hq, w, C)
        taps = []
        for i in range(cfg.vit.depth):
            prompt_tok, query_tok = self._shared_query_block(i, prompt_tok, query_tok, n_p, grid)
            if i == cfg.merge_block:
                prompt_tok = prompt_tok.mean(dim=0, keepdim=True)  # (1, QP, hp, w, C)
                query_tok = query_tok.mean(dim=0, keepdim=True)  # (1, Q, hq, w, C)
            if i in cfg.tap_blocks:
                # The query rows, plus prompt 0's last row: the decoder's 3x3 conv looks one pixel
                # row across the boundary, and the reference path reads prompt 0's canvas.
                edge = prompt_tok[0].unflatten(0, (n_q, n_p))[:, 0, -1:]  # (Q, 1, w, C)
                taps.append(self.norm(torch.cat([edge, query_tok[0]], dim=1)))  # (Q, 1+hq, w, C)
            if i >= cfg.tap_blocks[-1]:
                break
        painted = self.decoder(torch.cat(taps, dim=-1))  # (Q, 3, (1 + hq) * p, W)
        return painted[:, :, cfg.vit.patch_size :]  # drop the context row -> (Q, 3, H/2, W)

    def _shared_query_block(
        self,
        index: int,
        prompt_tok: torch.Tensor,
        query_tok: torch.Tensor,
        n_p: int,
        grid: tuple[int, int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One block with the query rows held once per query.

        Args:
            prompt_tok: (S, Q * P, hp, w, C) prompt rows of every canvas.
            query_tok: (S, Q, hq, w, C) query rows, shared by the P canvases of a query.
        Returns:
            both, updated. The query rows' attention output is averaged over the P canvases,
            exactly as the feature ensemble does on whole canvases.
        """
        block = self.backbone.blocks[index]
        attn = block.attn
        s, qp, hp, w, c = prompt_tok.shape
        n_q, hq = query_tok.shape[1], query_tok.shape[2]
        q_p, k_p, v_p = attn.project_qkv(block.norm1(prompt_tok).reshape(s * qp, hp * w, c))
        q_q, k_q, v_q = attn.project_qkv(block.norm1(query_tok).reshape(s * n_q, hq * w, c))

        def per_canvas(t: torch.Tensor) -> torch.Tensor:  # (S*Q, heads, Nq, d) -> (S*Q*P, ...)
            return t.repeat_interleave(n_p, dim=0)

        keys = torch.cat([k_p, per_canvas(k_q)], dim=2)  # (S*Q*P, heads, N, d)
        values = torch.cat([v_p, per_canvas(v_q)], dim=2)
        out_p = attn.attend(q_p, keys, values, key_grid=grid, query_rows=(0, hp))  # (SQP, Np, C)
        out_q = attn.attend(per_canvas(q_q), keys, values, key_grid=grid, query_rows=(hp, grid[0]))
        out_q = out_q.reshape(s * n_q, n_p, hq * w, c).mean(dim=1)  # ensemble: (S*Q, Nq, C)
        prompt_tok = prompt_tok + attn.proj(out_p).reshape(s, qp, hp, w, c)
        query_tok = query_tok + attn.proj(out_q).reshape(s, n_q, hq, w, c)
        prompt_tok = prompt_tok + block.mlp(block.norm2(prompt_tok))
        query_tok = query_tok + block.mlp(block.norm2(query_tok))
        return prompt_tok, query_tok


def build_seggpt(config: PainterConfig) -> SegGPT:
    """Build a :class:`SegGPT` from its config (``config.type_tokens`` must be True)."""
    if not config.type_tokens:
        raise ConfigError(f"config {config.name!r} has no type tokens; build it with build_painter")
    return SegGPT(config, *build_parts(config))
