"""Correspondence painting: each hidden pixel copies the colours of the visible target pixels it
resembles (an extension of this framework, off in the released models).

SegGPT paints the query's target from the transformer's patch features alone. The match head adds
a second, pixel-level route: a small conv stem (run on each half of the canvas on its own, so a
prompt's keys never depend on the query beside it) and the tapped transformer features give every
4x4 cell of the canvas a unit-length key; each cell then takes the softmax-weighted mean of the
colours of the visible prompt-target cells, weighted by key similarity. The propagated colours
enter the decoder's convolutions as three extra channels and are added to its output through a
learned per-channel gain, so a model starts from "paint what looks like the prompt's target"
and learns when to depart from it. With a sink (a none-of-the-above cell) and a gate, the decoder
paints only where a cell found its like among the visible ones. With P prompts per query, a
query's cells attend to the visible cells of all P prompts at once (the ensemble reads one joint
memory).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from painter.ops import denormalize, normalize

#: Side in pixels of the cells that carry keys and propagated colours.
MATCH_STRIDE = 4
#: Cells of one query chunk at inference (bounds the (chunk, memory) score matrix).
MATCH_CHUNK = 4096


class MatchHead(nn.Module):
    """Keys for every 4x4 cell of a canvas half, and the colour propagation between cells.

    Args:
        feature_dim: channels of the tapped transformer features (taps concatenated).
        key_dim: channels of the stem and of the keys.
        patch_size: the backbone's patch side (a multiple of :data:`MATCH_STRIDE`).
        sigmoid: the model paints logits (``paint_activation="sigmoid"``); the direct term is then
            ``gain * (2 m - 1)`` in logit space, else ``gain * normalize(m)`` on the canvas.
        colour_bins: > 0 adds each cell's local colour distribution (:func:`colour_context`,
            ``colour_bins``^3 bins) to its key, sharing the unit length with the learned part.
        sink: None, or the starting value of a learned similarity threshold: every memory then
            holds one more, black cell whose similarity to any key is this value, so a cell
            that resembles no visible cell better than the threshold paints background instead
            of the mean colour of whatever it resembles least badly.
        gate: None, or the starting ``(slope, threshold)`` of a learned gate on the decoder's own
            painting (needs ``sink``): each cell's ``matched`` share, the softmax weight its
            propagation gives to visible cells rather than to the sink, opens the gate as
            ``sigmoid(slope * (matched - threshold))``, so the decoder paints only where the
            prompt shows something alike and cannot add objects the prompt never showed.
            :meth:`propagate` then returns the share as a fourth channel.
    """

    def __init__(
        self,
        feature_dim: int,
        key_dim: int,
        patch_size: int,
        *,
        sigmoid: bool,
        colour_bins: int = 0,
        sink: float | None = None,
        gate: tuple[float, float] | None = None,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        c = key_dim
        self.patch_size = patch_size
        self.sigmoid = sigmoid
        # Stride 4, then two dilated convs: a receptive field of about 60 pixels, enough to
        # tell stripes and dots of a few pixels' period apart.
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, c, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(c, c, 3, padding=2, dilation=2),
            nn.GELU(),
            nn.Conv2d(c, c, 3, padding=4, dilation=4),
        )
        self.from_tokens = nn.Linear(feature_dim, c)
        self.key = nn.Conv2d(2 * c, c, 1)
        self.log_scale = nn.Parameter(torch.tensor(math.log(30.0)))
        self.gain = nn.Parameter(torch.full((3,), 4.0 if sigmoid else 1.0))
        self.colour_bins = colour_bins
        if colour_bins:
            # Shares of the colour-context and the learned parts in every key (softmax): 0.8 / 0.2
            # at the start, so a new model begins from colour-context matching.
            self.mix = nn.Parameter(torch.tensor([math.log(4.0), 0.0]))
        self.sink = None if sink is None else nn.Parameter(torch.tensor(float(sink)))
        if gate is not None and sink is None:
            raise ValueError("a match gate reads the sink's share: it needs sink")
        self.gate = None if gate is None else nn.Parameter(torch.tensor([float(g) for g in gate]))

    @property
    def channels(self) -> int:
        """Channels of what :meth:`propagate` returns: the colours, plus the matched share when
        there is a gate."""
        return 3 if self.gate is None else 4

    def keys(self, halves: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Unit keys of every cell of each half.

        Each half's keys are centred on their mean before the unit length: what every cell of an
        image shares says nothing about which cells match, and without the centring training
        drifted to near-identical keys (a uniform, useless propagation).

        Args:
            halves: (N, 3, Hh, W) normalised images, each one canvas half.
            features: (N, Hh / p, W / p, F) tapped features of the same halves.
        Returns:
            (N, c, Hh / 4, W / 4).
        """
        stem = self.stem(halves.to(features.dtype))  # (N, c, Hh/4, W/4)
        up = self.patch_size // MATCH_STRIDE
        tok = self.from_tokens(features).permute(0, 3, 1, 2)  # (N, c, h, w)
        tok = tok.repeat_interleave(up, dim=2).repeat_interleave(up, dim=3)  # (N, c, Hh/4, W/4)
        key = self.key(torch.cat([stem, tok], dim=1)).float()
        key = F.normalize(key - key.mean(dim=(2, 3), keepdim=True), dim=1)
        if not self.colour_bins:
            return key
        share = self.mix.float().softmax(dim=0).sqrt()  # unit keys stay unit
        context = colour_context(halves, self.colour_bins)  # (N, bins^3, Hh/4, W/4)
        return torch.cat([share[0] * context, share[1] * key], dim=1)

    def canvas_keys(self, images: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Keys of whole canvases (B, 3, H, W) with features (B, h, w, F), each half on its own
        (as :meth:`keys` on the prompt and the query images). Returns (B, c, H / 4, W / 4)."""
        b, _, height, _ = images.shape
        halves = images.unflatten(2, (2, height // 2)).transpose(1, 2).flatten(0, 1)
        half_features = features.unflatten(1, (2, -1)).flatten(0, 1)  # (2B, h/2, w, F)
        keys = self.keys(halves, half_features)  # (2B, c, H/8, W/4)
        return keys.unflatten(0, (b, 2)).transpose(1, 2).flatten(2, 3)  # (B, c, H/4, W/4)

    def propagate(
        self,
        queries: torch.Tensor,
        memory: torch.Tensor,
        values: torch.Tensor,
        valid: torch.Tensor | None = None,
        *,
        prompts: int = 1,
    ) -> torch.Tensor:
        """Softmax-weighted colours of the memory cells.

        Args:
            queries: (G, Nq, c) unit keys of the cells to paint.
            memory: (G, M, c) unit keys of the memory cells.
            values: (G, M, 3) their colours, intensities in [0, 1].
            valid: (G, M) bool, False where a memory cell is hidden; None for all visible.
            prompts: how many prompts the memory joins; the sink weighs as much against each
                prompt's cells as against one prompt's (its score gains log(prompts)), so P
                copies of one prompt paint what that prompt paints alone.
        Returns:
            (G, Nq, :attr:`channels`): the colours, then (with a gate) the share of the weight
            on visible cells; a group without a visible cell gets 0 (black, nothing matched).
        """
        scale = self.log_scale.exp().float()
        if self.gate is not None:  # the share rides along as a value: 1 per cell, 0 for the sink
            values = torch.cat([values, values.new_ones(values.shape[:2] + (1,))], dim=2)
        g, m, c = memory.shape
        bias = torch.zeros(g, 1, m, device=memory.device)
        if valid is not None:
            bias = bias.masked_fill(~valid[:, None], -1e9)
        if self.sink is not None:  # one more, black cell: score sink * scale for every key
            memory = torch.cat([memory, memory.new_zeros(g, 1, c)], dim=1)
            values = torch.cat([values, values.new_zeros(g, 1, values.shape[2])], dim=1)
            sink = (self.sink.float() * scale + math.log(prompts)).expand(g, 1, 1)
            bias = torch.cat([bias, sink], dim=2)
        mem_t = memory.float().transpose(1, 2)  # (G, c, M)
        pieces = []
        for start in range(0, queries.shape[1], MATCH_CHUNK):
            scores = torch.matmul(queries[:, start : start + MATCH_CHUNK].float(), mem_t) * scale
            pieces.append(torch.matmul((scores + bias).softmax(dim=-1), values.float()))
        out = torch.cat(pieces, dim=1)
        if valid is not None:
            out = out * valid.any(dim=1).to(out.dtype)[:, None, None]
        return out

    def direct(self, propagated: torch.Tensor) -> torch.Tensor:
        """The propagated colours (B, 3, H, W) in [0, 1] as a term of the decoder's raw output."""
        gain = self.gain.view(1, 3, 1, 1)
        colours = propagated[:, :3]
        if self.sigmoid:
            return gain * (2 * colours - 1)
        return gain * normalize(colours)

    def gated(self, painted: torch.Tensor, propagated: torch.Tensor) -> torch.Tensor:
        """The decoder's own output (B, 3, H, W) through the gate (unchanged without one)."""
        if self.gate is None:
            return painted
        slope, threshold = self.gate.float()
        opening = torch.sigmoid(slope * (propagated[:, 3:] - threshold))  # (B, 1, H, W)
        return painted * opening.to(painted.dtype)

    def paint_canvases(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        patch_mask: torch.Tensor,
        features: torch.Tensor,
        prompts_per_query: int,
    ) -> torch.Tensor:
        """Propagated colours of whole canvases, upsampled to pixels.

        Args:
            images, targets: (B, 3, H, W) normalised canvases, B = Q * P.
            patch_mask: (B, h * w) bool, True where the target patch is hidden.
            features: (B, h, w, F) tapped features.
            prompts_per_query: P; each canvas reads the visible prompt-half cells of its
                query's P canvases.
        Returns:
            (B, :attr:`channels`, H, W) intensities in [0, 1] (and the matched share).
        """
        b, _, height, width = images.shape
        keys = self.canvas_keys(images, features)  # (B, c, Hk, Wk)
        hk, wk = keys.shape[-2:]
        values = cell_colours(targets)  # (B, 3, Hk, Wk)
        up = self.patch_size // MATCH_STRIDE
        h, w = features.shape[1:3]
        hidden = patch_mask.reshape(b, h, w).repeat_interleave(up, 1).repeat_interleave(up, 2)
        n_q = b // prompts_per_query

        def grouped(t: torch.Tensor) -> torch.Tensor:  # (B, k, R, Wk) -> (Q, P * R * Wk, k)
            return t.flatten(2).transpose(1, 2).reshape(n_q, -1, t.shape[1])

        # The memory is the prompt half's visible cells (at inference: all of them).
        top = hk // 2
        memory = grouped(keys[:, :, :top])
        valid = ~hidden[:, :top].reshape(n_q, -1)  # (Q, P * Hk/2 * Wk)
        out = self.propagate(
            grouped(keys), memory, grouped(values[:, :, :top]), valid, prompts=prompts_per_query
        )
        out = out.reshape(b, hk * wk, -1).transpose(1, 2).reshape(b, self.channels, hk, wk)
        return upsample_cells(out, (height, width))

    def paint_query_rows(
        self,
        prompt_images: torch.Tensor,
        prompt_targets: torch.Tensor,
        query_images: torch.Tensor,
        prompt_features: torch.Tensor,
        features: torch.Tensor,
    ) -> torch.Tensor:
        """The match head's colours for prompt 0's last patch row and the query rows, each
        query reading the cells of all its P prompts (as :meth:`paint_canvases` does on canvases).

        Args:
            prompt_images, prompt_targets: (Q, P, 3, H/2, W) normalised.
            query_images: (Q, 3, H/2, W) normalised.
            prompt_features: (Q * P, hp, w, F) tapped features of every prompt row.
            features: (Q, 1 + hq, w, F) tapped features of the context row and the query rows.
        Returns:
            (Q, :attr:`channels`, (1 + hq) * p, W) intensities in [0, 1] (and the matched share).
        """
        n_q, n_p = prompt_images.shape[:2]
        up = self.patch_size // MATCH_STRIDE
        prompt_keys = self.keys(prompt_images.flatten(0, 1), prompt_features)  # (QP, c, Hk, Wk)
        prompt_keys = prompt_keys.unflatten(0, (n_q, n_p))  # (Q, P, c, Hk, Wk)
        query_keys = self.keys(query_images, features[:, 1:])  # (Q, c, Hq, Wk)
        cells = torch.cat([prompt_keys[:, 0, :, -up:], query_keys], dim=2)  # (Q, c, R, Wk)
        rows, wk = cells.shape[-2:]
        values = cell_colours(prompt_targets.flatten(0, 1)).unflatten(0, (n_q, n_p))

        def memory(t: torch.Tensor) -> torch.Tensor:  # (Q, P, k, Hk, Wk) -> (Q, P * Hk * Wk, k)
            return t.permute(0, 1, 3, 4, 2).reshape(n_q, -1, t.shape[2])

        out = self.propagate(
            cells.flatten(2).transpose(1, 2), memory(prompt_keys), memory(values), prompts=n_p
        )
        out = out.transpose(1, 2).reshape(n_q, self.channels, rows, wk)
        return upsample_cells(out, (rows * MATCH_STRIDE, wk * MATCH_STRIDE))


def colour_context(images: torch.Tensor, bins: int) -> torch.Tensor:
    """The local colour distribution around every 4x4 cell, as a unit vector.

    Each pixel's colour is softly assigned to a ``bins``^3 grid over RGB (a Gaussian per bin
    centre along each channel, width half a bin); the shares are averaged over an 8x8 window
    centred on each cell and square-rooted, so the dot product of two cells is the Bhattacharyya
    coefficient of their local colour histograms. No weights: whatever a texture is made of, two
    cells of it agree, and a cell of other colours does not.

    Args:
        images: (N, 3, H, W) normalised, H and W divisible by 4.
    Returns:
        (N, bins^3, H / 4, W / 4).
    """
    x = denormalize(images.float()).clamp(0, 1)  # (N, 3, H, W)
    centres = (torch.arange(bins, device=x.device, dtype=x.dtype) + 0.5) / bins
    width = 0.5 / bins
    share = torch.exp(-((x[:, :, None] - centres.view(1, 1, -1, 1, 1)) ** 2) / (2 * width**2))
    share = share / share.sum(dim=2, keepdim=True)  # (N, 3, bins, H, W)
    joint = torch.einsum("nahw,nbhw,nchw->nabchw", share[:, 0], share[:, 1], share[:, 2])
    window = 2 * MATCH_STRIDE
    local = F.avg_pool2d(
        joint.flatten(1, 3),
        window,
        stride=MATCH_STRIDE,
        padding=window // 4,
        count_include_pad=False,
    )
    return F.normalize(local.clamp(min=0).sqrt(), dim=1)


def cell_colours(targets: torch.Tensor) -> torch.Tensor:
    """Mean colour intensity in [0, 1] of each 4x4 cell of normalised targets (N, 3, H, W)."""
    return F.avg_pool2d(denormalize(targets.float()).clamp(0, 1), MATCH_STRIDE)


def upsample_cells(cells: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, 3, H / 4, W / 4) cell colours -> (N, 3, H, W) pixels (bilinear)."""
    return F.interpolate(cells, size=size, mode="bilinear", align_corners=False)
