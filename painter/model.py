"""The Painter generalist: an image canvas and a target canvas through one ViT, merged, decoded.

The image canvas holds the prompt image above the query image; the target canvas holds the
prompt's coloured mask above the (hidden) query target. Hidden target patches are replaced by a
learned mask token, the model paints them, and a masked smooth-L1 loss compares the painting with
the real target.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from timm.layers import trunc_normal_
from torch import nn

from painter.backbone import AttnHook, ViTBackbone
from painter.config import PainterConfig
from painter.decoder import PaintDecoder
from painter.errors import ConfigError, InputMismatchError
from painter.losses import masked_intensity_bce, masked_smooth_l1
from painter.matching import MatchHead
from painter.ops import denormalize, normalize

# (block index, streams already merged?) -> hook on that block's attention branch, or None.
HookFactory = Callable[[int, bool], AttnHook | None]


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
        self.matcher = (
            MatchHead(
                dim * len(config.tap_blocks),
                config.decoder_match,
                config.vit.patch_size,
                sigmoid=config.paint_activation == "sigmoid",
                colour_bins=config.match_colour_bins,
                sink=config.match_sink,
                gate=config.match_gate,
                in_chans=config.vit.in_chans,
            )
            if config.decoder_match
            else None
        )

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
        match_group: int = 1,
        raw: bool = False,
    ) -> torch.Tensor:
        """Paint the hidden target patches.

        Args:
            images, targets: (B, 3, H, W) normalised canvases.
            patch_mask: (B, h * w) bool, True where the target patch is hidden.
            match_group: canvases (consecutive) whose visible cells the match head reads
                together: the P prompts of one query under the feature ensemble.
            raw: return the decoder's output as :meth:`loss` takes it (the logits of a
                ``paint_activation="sigmoid"`` model; the canvas itself otherwise).
        Returns:
            (B, 3, H, W) painted target canvas in the normalised space (or the raw output).
        """
        x, y = self.embed(images, targets, patch_mask, seg_type=seg_type)
        features = torch.cat(self.encode(x, y, hooks=hooks), dim=-1)  # (B, h, w, T * C)
        propagated = None
        if self.matcher is not None:
            propagated = self.matcher.paint_canvases(
                images, targets, patch_mask, features, match_group
            )
        out = self._decode(features, images, propagated)  # (B, 3, H, W)
        return out if raw else self.to_canvas(out)

    def _decode(
        self, features: torch.Tensor, images: torch.Tensor, propagated: torch.Tensor | None
    ) -> torch.Tensor:
        """The decoder's raw output, plus the match head's direct term when there is one (the
        decoder's own part through the match gate, when the head has one)."""
        if propagated is None:
            return self.decoder(features, images, None)
        out = self.matcher.gated(self.decoder(features, images, propagated[:, :3]), propagated)
        return out + self.matcher.direct(propagated).to(out.dtype)

    def to_canvas(self, out: torch.Tensor) -> torch.Tensor:
        """The decoder's raw output (B, 3, H, W) as a painted canvas in the normalised space."""
        if self.config.paint_activation == "sigmoid":
            return normalize(torch.sigmoid(out.float())).to(out.dtype)
        return out

    def paint_queries(
        self,
        prompt_images: torch.Tensor,
        prompt_targets: torch.Tensor,
        query_images: torch.Tensor,
        *,
        seg_type: object = None,
    ) -> torch.Tensor:
        """Paint each query's target from its P prompts (feature ensemble), query half once.

        The query half of every canvas is the same for all P prompts and stays the same under the
        ensemble, so its tokens are computed once per query instead of once per prompt, and only
        the query half is decoded. Where all Q queries have the same prompt targets (one prepared
        prompt set over a batch), the target stream's blocks before the merge, which never see a
        query image, run once for all of them. Equals :meth:`forward` with the ensemble up to
        rounding. Inference only (drop path is skipped).

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
        px = px + self.stream_token_image + pos[:, :hp]
        py = py + self.stream_token_target + pos[:, :hp]
        qx = qx + self.stream_token_image + pos[:, hp:]
        qy = qy + self.stream_token_target + pos[:, hp:]
        extra = self.extra_embedding(seg_type, n_q)  # (Q, 1, 1, C) or None
        if extra is not None:
            px, py = (
                px + extra.repeat_interleave(n_p, dim=0),
                py + extra.repeat_interleave(n_p, dim=0),
            )
            qx, qy = qx + extra, qy + extra
        prompt_tok = torch.stack([px, py])  # (S=2, QP, hp, w, C)
        query_tok = torch.stack([qx, qy])  # (S=2, Q, hq, w, C)
        # Before the merge the target stream never sees a query image: with the same prompts
        # for every query its blocks run once, for the first query, and serve all of them.
        target = None
        if _same_for_all(prompt_targets, extra):
            target = (prompt_tok[1:, :n_p], query_tok[1:, :1])  # (1, P, ...), (1, 1, ...)
            prompt_tok, query_tok = prompt_tok[:1], query_tok[:1]  # the image stream
        taps, prompt_taps = [], []
        match = self.matcher is not None  # the match head keys every prompt row
        for i in range(cfg.vit.depth):
            last = i >= cfg.tap_blocks[-1]
            first_row = hp - 1 if last and not match else 0
            prompt_tok, query_tok = self._shared_query_block(
                i, prompt_tok, query_tok, n_p, grid, prompt_rows=(first_row, hp)
            )
            if target is not None and i <= cfg.merge_block:
                target = self._shared_query_block(i, *target, n_p, grid, prompt_rows=(0, hp))
            if i == cfg.merge_block:
                if target is not None:  # the one target stream, tiled over the queries
                    prompt_tok = torch.cat([prompt_tok, target[0].repeat(1, n_q, 1, 1, 1)])
                    query_tok = torch.cat([query_tok, target[1].expand_as(query_tok)])
                prompt_tok = prompt_tok.mean(dim=0, keepdim=True)  # (1, QP, hp, w, C)
                query_tok = query_tok.mean(dim=0, keepdim=True)  # (1, Q, hq, w, C)
            if i in cfg.tap_blocks:
                # The query rows, plus prompt 0's last row: the decoder's 3x3 conv looks one pixel
                # row across the boundary, and the reference path reads prompt 0's canvas.
                edge = prompt_tok[0].unflatten(0, (n_q, n_p))[:, 0, -1:]  # (Q, 1, w, C)
                taps.append(self.norm(torch.cat([edge, query_tok[0]], dim=1)))  # (Q, 1+hq, w, C)
                if match:
                    prompt_taps.append(self.norm(prompt_tok[0]))  # (QP, hp, w, C)
            if last:
                break
        p = cfg.vit.patch_size
        # The image under those rows: prompt 0's last patch row above each query image.
        image = torch.cat([prompt_images[:, 0, :, -p:], query_images], dim=2)
        features = torch.cat(taps, dim=-1)  # (Q, 1 + hq, w, T * C)
        propagated = None
        if match:
            propagated = self.matcher.paint_query_rows(
                prompt_images, prompt_targets, query_images, torch.cat(prompt_taps, -1), features
            )
        painted = self._decode(features, image, propagated)  # (Q, 3, (1 + hq) * p, W)
        return self.to_canvas(painted[:, :, p:])  # drop the context row -> (Q, 3, H/2, W)

    def _shared_query_block(
        self,
        index: int,
        prompt_tok: torch.Tensor,
        query_tok: torch.Tensor,
        n_p: int,
        grid: tuple[int, int],
        *,
        prompt_rows: tuple[int, int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One block with the query rows held once per query.

        Args:
            prompt_tok: (S, Q * P, hp, w, C) prompt rows of every canvas.
            query_tok: (S, Q, hq, w, C) query rows, shared by the P canvases of a query.
            prompt_rows: (start, stop) of the prompt rows whose outputs are wanted; every prompt
                row still serves as a key. The last block needs only the row next to the query.
        Returns:
            both, updated (the prompt rows cut to ``prompt_rows``). The query rows' attention
            output is averaged over the P canvases, exactly as the feature ensemble does on whole
            canvases.
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
        row0, row1 = prompt_rows
        q_p = q_p[:, :, row0 * w : row1 * w]  # (S*Q*P, heads, wanted rows * w, d)
        prompt_tok = prompt_tok[:, :, row0:row1]  # (S, Q*P, wanted rows, w, C)
        if n_p == 1 and row1 == hp:
            # One canvas per query: the wanted prompt rows and the query rows are contiguous rows
            # of one canvas over the same keys, so they run as one attention (one softmax each)
            out = attn.attend(
                torch.cat([q_p, q_q], dim=2),
                keys,
                values,
                key_grid=grid,
                query_rows=(row0, grid[0]),
            )
            out_p, out_q = out[:, : (row1 - row0) * w], out[:, (row1 - row0) * w :]
        else:
            out_p = attn.attend(q_p, keys, values, key_grid=grid, query_rows=prompt_rows)
            # The query rows of the P canvases, averaged: the feature ensemble. (S*Q, Nq, C)
            out_q = attn.attend_shared_rows(q_q, k_q, v_q, k_p, v_p, key_grid=grid)
        prompt_tok = prompt_tok + attn.proj(out_p).reshape(s, qp, row1 - row0, w, c)
        query_tok = query_tok + attn.proj(out_q).reshape(s, n_q, hq, w, c)
        return block.mlp_residual(prompt_tok), block.mlp_residual(query_tok)

    def loss(
        self,
        pred: torch.Tensor,
        targets: torch.Tensor,
        patch_mask: torch.Tensor,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The masked training loss between the raw output (B, 3, H, W) (``forward(...,
        raw=True)``) and the true target canvas (normalised): smooth-L1 on the canvas, or for
        ``paint_activation="sigmoid"`` the per-channel BCE of the logits against the target's
        intensities."""
        if self.config.paint_activation == "sigmoid":
            return masked_intensity_bce(
                pred.float(),
                denormalize(targets.float()),
                patch_mask,
                patch_size=self.config.vit.patch_size,
                valid=valid,
            )
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

    def group_matcher(self, coarse: bool = False) -> dict[str, object]:
        """Parameter groups for timm's layer-wise lr decay: embeddings first, then each block;
        the final norm and the decoder fall in the last group."""
        return {
            "stem": r"^backbone\.(?:patch_embed|pos_embed)|^mask_token|^stream_token_|^type_token_",
            "blocks": [(r"^backbone\.blocks\.(\d+)", None), (r"^norm", (99999,))],
        }


def _same_for_all(prompt_targets: torch.Tensor, extra: torch.Tensor | None) -> bool:
    """Whether every query of a :meth:`PainterModel.paint_queries` call has the same prompt
    targets (Q, P, 3, H/2, W) and extra embedding (Q, 1, 1, C), e.g. one prepared prompt set
    for a batch of queries; False for a single query (nothing to share)."""
    if prompt_targets.shape[0] < 2:
        return False
    first = prompt_targets[:1].expand_as(prompt_targets)
    same = prompt_targets.stride(0) == 0 or torch.equal(prompt_targets, first)
    return same and (extra is None or torch.equal(extra, extra[:1].expand_as(extra)))


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
        guide=config.decoder_guide,
        linear=config.decoder_linear,
        match=bool(config.decoder_match),
        in_chans=vit.in_chans,
        eps=vit.norm_eps,
    )
    return backbone, decoder
