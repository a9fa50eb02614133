"""The match head (painter.matching): colour propagation by key similarity, its masking, and its
place in the model (it reaches the painting; the transformers export refuses it)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from painter.checkpoint import CheckpointError
from painter.errors import ConfigError
from painter.formats import config_to_hf
from painter.matching import MATCH_STRIDE, MatchHead, cell_colours, colour_context
from painter.ops import normalize, query_half_mask
from painter.registry import get_config
from seggpt.loading import build_model


def _head(sigmoid: bool = True) -> MatchHead:
    return MatchHead(feature_dim=8, key_dim=4, patch_size=8, sigmoid=sigmoid)


def test_propagate_copies_the_colour_of_the_most_similar_visible_cell():
    head = _head()
    with torch.no_grad():
        head.log_scale.fill_(torch.log(torch.tensor(200.0)))  # a sharp softmax
    memory = F.normalize(torch.eye(4)[None], dim=-1)  # (1, 4 cells, 4)
    values = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 1.0]]])
    queries = memory[:, [2, 0, 3]]  # (1, 3, 4): the third, first and fourth cell's keys
    out = head.propagate(queries, memory, values)
    assert torch.allclose(out, values[:, [2, 0, 3]], atol=1e-4)
    # A hidden cell is never read: the query that matched cell 2 now averages the others.
    valid = torch.tensor([[True, True, False, True]])
    out = head.propagate(queries, memory, values, valid)
    assert torch.allclose(out[0, 0], values[0, [0, 1, 3]].mean(0), atol=1e-4)
    assert torch.allclose(out[0, 1:], values[0, [0, 3]], atol=1e-4)
    # No visible cell at all: black, not NaN.
    out = head.propagate(queries, memory, values, torch.zeros(1, 4, dtype=torch.bool))
    assert torch.equal(out, torch.zeros_like(out))


def test_the_sink_paints_black_where_nothing_is_similar_enough_and_learns():
    head = MatchHead(feature_dim=8, key_dim=4, patch_size=8, sigmoid=True, sink=0.5)
    with torch.no_grad():
        head.log_scale.fill_(torch.log(torch.tensor(200.0)))
    memory = F.normalize(torch.eye(4)[None, :2], dim=-1)  # two cells, keys e0 and e1
    values = torch.tensor([[[1.0, 0.5, 0.25], [0.2, 1.0, 0.0]]])
    queries = torch.stack(
        [
            torch.tensor([1.0, 0.0, 0.0, 0.0]),  # e0: cosine 1 > 0.5, copies cell 0
            F.normalize(torch.tensor([0.3, 0.0, 1.0, 0.0]), dim=0),  # best cosine 0.29 < 0.5
            torch.tensor([0.0, 0.0, 0.0, 1.0]),  # like nothing at all
        ]
    )[None]
    out = head.propagate(queries, memory, values)
    assert torch.allclose(out[0, 0], values[0, 0], atol=1e-4)
    assert out[0, 1:].abs().max() < 1e-4  # without the sink both would copy a colour:
    head.sink = None
    plain = head.propagate(queries, memory, values)
    assert torch.allclose(plain[0, 1], values[0, 0], atol=1e-3)
    assert torch.allclose(plain[0, 2], values[0].mean(0), atol=1e-4)
    # The threshold is a parameter the loss reaches (a softer scale keeps the gradient alive).
    head = MatchHead(feature_dim=8, key_dim=4, patch_size=8, sigmoid=True, sink=0.3)
    head.propagate(queries, memory, values).sum().backward()
    assert head.sink.grad is not None and head.sink.grad.abs() > 0
    # P copies of one memory (an ensemble of one prompt repeated) paint what one copy paints.
    twice = head.propagate(queries, memory.repeat(1, 2, 1), values.repeat(1, 2, 1), prompts=2)
    assert torch.allclose(twice, head.propagate(queries, memory, values), atol=1e-6)
    # Memory cells hidden by the mask stay hidden; the sink alone gives black.
    out = head.propagate(queries, memory, values, torch.zeros(1, 2, dtype=torch.bool))
    assert torch.equal(out, torch.zeros_like(out))


def test_the_sink_needs_the_match_head_and_a_cosine():
    base = get_config("seggpt_test")
    with pytest.raises(ConfigError, match="match_sink"):
        dataclasses.replace(base, match_sink=0.8)
    with pytest.raises(ConfigError, match="match_sink"):
        dataclasses.replace(base, decoder_match=8, match_sink=1.5)
    model = build_model(dataclasses.replace(base, decoder_match=8, match_sink=0.8))
    assert model.matcher.sink.item() == pytest.approx(0.8)
    assert "matcher.sink" in model.state_dict()


def test_the_gate_lets_the_decoder_paint_only_where_a_visible_cell_matched():
    head = MatchHead(feature_dim=8, key_dim=4, patch_size=8, sigmoid=True, sink=0.5, gate=(40, 0.5))
    with torch.no_grad():
        head.log_scale.fill_(torch.log(torch.tensor(200.0)))
    memory = F.normalize(torch.eye(4)[None, :2], dim=-1)
    values = torch.tensor([[[1.0, 0.5, 0.25], [0.2, 1.0, 0.0]]])
    queries = torch.eye(4)[None, [1, 3]]  # cell 1's key (cosine 1), then a key like nothing
    out = head.propagate(queries, memory, values)
    assert head.channels == 4 and out.shape == (1, 2, 4)
    assert torch.allclose(out[0, 0], torch.tensor([0.2, 1.0, 0.0, 1.0]), atol=1e-4)
    assert out[0, 1].abs().max() < 1e-4  # all its weight went to the sink: black, share 0
    # On pixels: the decoder's own painting passes where the share is high, is shut elsewhere;
    # the direct term reads the colours only.
    propagated = out.transpose(1, 2).reshape(1, 4, 1, 2)
    painted = torch.full((1, 3, 1, 2), 2.5)
    gated = head.gated(painted, propagated)
    assert torch.allclose(gated[..., 0], painted[..., 0], atol=1e-4)
    assert gated[..., 1].abs().max() < 1e-4
    assert torch.allclose(
        head.direct(propagated),
        head.gain.view(1, 3, 1, 1) * (2 * out.transpose(1, 2)[:, :3, None] - 1),
    )
    # Both gate parameters are reached by the loss.
    head = MatchHead(feature_dim=8, key_dim=4, patch_size=8, sigmoid=True, sink=0.3, gate=(5, 0.5))
    propagated = head.propagate(queries, memory, values).transpose(1, 2).reshape(1, 4, 1, 2)
    head.gated(painted, propagated).sum().backward()
    assert head.gate.grad is not None and (head.gate.grad.abs() > 0).all()
    # Without a sink every cell's weight is on visible cells: a gate would never close.
    with pytest.raises(ValueError, match="needs sink"):
        MatchHead(feature_dim=8, key_dim=4, patch_size=8, sigmoid=True, gate=(40, 0.5))
    base = get_config("seggpt_test")
    with pytest.raises(ConfigError, match="match_gate"):
        dataclasses.replace(base, decoder_match=8, match_gate=(40.0, 0.5))
    model = build_model(
        dataclasses.replace(base, decoder_match=8, match_sink=0.5, match_gate=(40.0, 0.9))
    )
    assert model.matcher.gate.tolist() == pytest.approx([40.0, 0.9])


def test_propagate_in_chunks_equals_one_piece(monkeypatch):
    head = _head()
    g = torch.Generator().manual_seed(0)
    queries = F.normalize(torch.randn(2, 37, 4, generator=g), dim=-1)
    memory = F.normalize(torch.randn(2, 11, 4, generator=g), dim=-1)
    values = torch.rand(2, 11, 3, generator=g)
    valid = torch.rand(2, 11, generator=g) > 0.3
    whole = head.propagate(queries, memory, values, valid)
    monkeypatch.setattr("painter.matching.MATCH_CHUNK", 5)
    assert torch.allclose(head.propagate(queries, memory, values, valid), whole, atol=1e-6)


def test_cell_colours_are_mean_intensities_of_4x4_cells():
    target = torch.zeros(1, 3, 8, 8)
    target[:, :, :4, :4] = 1.0
    target[:, 0, 4:, 4:6] = 1.0  # half of the bottom-right cell, red only
    cells = cell_colours(normalize(target))
    assert cells.shape == (1, 3, 8 // MATCH_STRIDE, 8 // MATCH_STRIDE)
    assert torch.allclose(cells[0, :, 0, 0], torch.ones(3), atol=1e-5)
    assert torch.allclose(cells[0, :, 1, 1], torch.tensor([0.5, 0.0, 0.0]), atol=1e-5)


def test_the_match_head_reaches_the_painting_and_has_no_transformers_export():
    config = dataclasses.replace(
        get_config("seggpt_test"), decoder_match=8, paint_activation="sigmoid"
    )
    model = build_model(config).eval()
    g = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, *config.canvas_size, generator=g)
    targets = torch.randn(2, 3, *config.canvas_size, generator=g)
    mask = query_half_mask(2, config.grid)
    with torch.no_grad():
        before = model(images, targets, mask)
        model.matcher.gain.zero_()
        model.decoder.decoder_pred[0].weight[:, -3:].zero_()
        silent = model(images, targets, mask)
        assert (silent - before).abs().max() > 1e-3
    with pytest.raises(CheckpointError, match="no match head"):
        config_to_hf(config)


def test_match_head_needs_a_patch_size_divisible_by_4():
    config = get_config("seggpt_smoke")  # 4-pixel patches: allowed
    assert dataclasses.replace(config, decoder_match=4).decoder_match == 4
    with pytest.raises(ConfigError, match="divisible by 4"):
        vit = dataclasses.replace(config.vit, patch_size=6)
        dataclasses.replace(config, vit=vit, canvas_size=(72, 36), decoder_match=4)


def test_colour_context_matches_cells_of_one_texture_whatever_its_pattern():
    """Two stripe textures in the same two colours (different period and phase) agree; the same
    stripes in other colours, or a flat fill of one of the colours, do not."""

    def stripes(a, b, period, phase=0):
        rows = (torch.arange(32)[:, None] + phase) // period % 2  # (32, 1)
        img = torch.where(rows.bool()[..., None], torch.tensor(a), torch.tensor(b))  # (32, 1, 3)
        return img.expand(32, 32, 3).permute(2, 0, 1)  # (3, 32, 32)

    red, blue, green, yellow = (0.9, 0.1, 0.1), (0.1, 0.1, 0.9), (0.1, 0.8, 0.1), (0.9, 0.9, 0.1)
    images = torch.stack(
        [
            stripes(red, blue, 2),
            stripes(red, blue, 3, phase=1),
            stripes(green, yellow, 2),
            stripes(red, red, 2),
        ]
    )
    keys = colour_context(normalize(images), bins=4)  # (4, 64, 8, 8)
    assert keys.shape == (4, 64, 8, 8)
    assert torch.allclose(keys.norm(dim=1), torch.ones(4, 8, 8), atol=1e-5)
    centre = keys[:, :, 4, 4]  # (4, 64)
    same, other_colours, flat = (centre[0] @ centre[i] for i in (1, 2, 3))
    assert same > 0.95
    assert other_colours < 0.05
    assert 0.5 < flat < 0.8  # half of the colours agree
