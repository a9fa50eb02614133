"""SegGPT/Painter checkpoint formats as pure functions: the key table between this project's,
BAAI's and transformers' names, and the conversions of configs to and from them.

Formats:
- ``official``: BAAI's ``seggpt_vit_large.pth`` / ``painter_vit_large.pth`` (weights under "model").
- ``hf``: a transformers ``SegGptForImageSegmentation`` directory (config.json + weights).
- ``native``: this project's safetensors file with the resolved config in its metadata.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

import torch

from painter.config import PainterConfig, ViTConfig
from painter.errors import CheckpointError

StateDict = dict[str, torch.Tensor]


class CheckpointFormat(str, enum.Enum):
    NATIVE = "native"
    OFFICIAL = "official"
    HF = "hf"


# (ours, official, hf) key prefixes; "{i}" stands for a block index.
_KEY_TABLE: tuple[tuple[str, str, str], ...] = (
    (
        "backbone.patch_embed.proj.",
        "patch_embed.proj.",
        "model.embeddings.patch_embeddings.projection.",
    ),
    ("backbone.pos_embed", "pos_embed", "model.embeddings.position_embeddings"),
    ("mask_token", "mask_token", "model.embeddings.mask_token"),
    ("stream_token_image", "segment_token_x", "model.embeddings.segment_token_input"),
    ("stream_token_target", "segment_token_y", "model.embeddings.segment_token_prompt"),
    ("type_token_semantic", "type_token_cls", "model.embeddings.type_token_semantic"),
    ("type_token_instance", "type_token_ins", "model.embeddings.type_token_instance"),
    (
        "backbone.blocks.{i}.norm1.",
        "blocks.{i}.norm1.",
        "model.encoder.layers.{i}.layernorm_before.",
    ),
    (
        "backbone.blocks.{i}.norm2.",
        "blocks.{i}.norm2.",
        "model.encoder.layers.{i}.layernorm_after.",
    ),
    ("backbone.blocks.{i}.attn.", "blocks.{i}.attn.", "model.encoder.layers.{i}.attention."),
    ("backbone.blocks.{i}.mlp.fc1.", "blocks.{i}.mlp.fc1.", "model.encoder.layers.{i}.mlp.lin1."),
    ("backbone.blocks.{i}.mlp.fc2.", "blocks.{i}.mlp.fc2.", "model.encoder.layers.{i}.mlp.lin2."),
    ("norm.", "norm.", "model.encoder.layernorm."),
    ("decoder.decoder_embed.", "decoder_embed.", "decoder.decoder_embed."),
    ("decoder.decoder_pred.0.", "decoder_pred.0.", "decoder.decoder_pred.conv."),
    ("decoder.decoder_pred.1.", "decoder_pred.1.", "decoder.decoder_pred.layernorm."),
    ("decoder.decoder_pred.3.", "decoder_pred.3.", "decoder.decoder_pred.head."),
    # This framework's image-guided decoder (decoder_guide > 0; no transformers counterpart, whose
    # export refuses such configs): the guide conv, and the head after the second conv.
    ("decoder.guide.", "decoder_guide.", "decoder.guide."),
    ("decoder.decoder_pred.5.", "decoder_pred.5.", "decoder.decoder_pred.guided_head."),
    # ... and its linear painting path (decoder_linear).
    ("decoder.linear_paint.", "decoder_linear_paint.", "decoder.linear_paint."),
    # ... and its match head (decoder_match > 0).
    ("matcher.", "matcher.", "matcher."),
)
_COLUMN = {CheckpointFormat.NATIVE: 0, CheckpointFormat.OFFICIAL: 1, CheckpointFormat.HF: 2}


def _prefix_regex(prefix: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(prefix).replace(re.escape("{i}"), r"(?P<i>\d+)"))


def convert_keys(
    state: Mapping[str, torch.Tensor], src: CheckpointFormat, dst: CheckpointFormat
) -> StateDict:
    """Rename every key of a painter/SegGPT state dict from format ``src`` to ``dst``.

    Pure: tensors are passed through untouched (the formats differ only in names). A key that no
    rule covers raises CheckpointError, so nothing is dropped silently.
    """
    rules = [(_prefix_regex(row[_COLUMN[src]]), row[_COLUMN[dst]]) for row in _KEY_TABLE]
    out: StateDict = {}
    unknown = []
    for key, value in state.items():
        for pattern, target in rules:
            match = pattern.match(key)
            if match:
                new_prefix = target.replace("{i}", match.groupdict().get("i") or "")
                out[new_prefix + key[match.end() :]] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} keys are not part of a {src.value} SegGPT/Painter checkpoint, e.g. "
            f"{unknown[:5]}; is this the right file (SAM weights load with build_sam)?"
        )
    return out


# -- configs of the foreign formats ------------------------------------------------------------
def config_from_hf(hf: Mapping[str, object]) -> PainterConfig:
    """PainterConfig from a transformers ``SegGptConfig`` dict (config.json)."""
    if hf.get("model_type") not in (None, "seggpt"):
        raise CheckpointError(
            f"config.json is for model_type {hf.get('model_type')!r}, not 'seggpt'"
        )
    dim = int(hf.get("hidden_size", 1024))
    patch = int(hf.get("patch_size", 16))
    canvas = tuple(int(v) for v in hf.get("image_size", (896, 448)))
    taps = hf.get("intermediate_hidden_state_indices") or hf.get("intermediate_feature_indices")
    pretrain = int(hf.get("pretrain_image_size", 224)) // patch
    vit = ViTConfig(
        embed_dim=dim,
        depth=int(hf.get("num_hidden_layers", 24)),
        num_heads=int(hf.get("num_attention_heads", 16)),
        patch_size=patch,
        in_chans=int(hf.get("num_channels", 3)),
        mlp_ratio=int(hf.get("mlp_dim") or 4 * dim) / dim,
        qkv_bias=bool(hf.get("qkv_bias", True)),
        norm_eps=float(hf.get("layer_norm_eps", 1e-6)),
        drop_path_rate=float(hf.get("drop_path_rate", 0.1)),
        use_rel_pos=bool(hf.get("use_relative_position_embeddings", True)),
        rel_pos_grid=(canvas[0] // patch, canvas[1] // patch),
        pos_embed_grid=(pretrain, pretrain),
    )
    return PainterConfig(
        vit=vit,
        canvas_size=canvas,
        merge_block=int(hf.get("merge_index", 2)),
        tap_blocks=tuple(int(i) for i in (taps or (5, 11, 17, 23))),
        decoder_dim=int(hf.get("decoder_hidden_size", 64)),
        type_tokens=True,
        loss_beta=float(hf.get("beta", 0.01)),
    )


def config_to_hf(config: PainterConfig) -> dict[str, object]:
    """transformers ``SegGptConfig`` dict for a SegGPT config; inverse of config_from_hf."""
    vit = config.vit
    if not config.type_tokens:
        raise CheckpointError(
            "the transformers format holds SegGPT only; this config has no type tokens"
        )
    if (
        config.decoder_guide
        or config.decoder_linear
        or config.decoder_match
        or config.paint_activation != "identity"
    ):
        raise CheckpointError(
            "the transformers format has no image-guided or linear decoder path, no match head, "
            f"and paints the canvas directly; this config has decoder_guide="
            f"{config.decoder_guide}, decoder_linear={config.decoder_linear}, decoder_match="
            f"{config.decoder_match}, paint_activation={config.paint_activation}"
        )
    if (
        vit.window_size
        or vit.pos_embed_grid[0] != vit.pos_embed_grid[1]
        or vit.pos_embed_prefix != 1
    ):
        raise CheckpointError(
            "the transformers format needs all-global attention and a square MAE pos embed"
        )
    return {
        "model_type": "seggpt",
        "architectures": ["SegGptForImageSegmentation"],
        "hidden_size": vit.embed_dim,
        "num_hidden_layers": vit.depth,
        "num_attention_heads": vit.num_heads,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "layer_norm_eps": vit.norm_eps,
        "image_size": list(config.canvas_size),
        "patch_size": vit.patch_size,
        "num_channels": vit.in_chans,
        "qkv_bias": vit.qkv_bias,
        "mlp_dim": int(vit.embed_dim * vit.mlp_ratio),
        "drop_path_rate": vit.drop_path_rate,
        "pretrain_image_size": vit.pos_embed_grid[0] * vit.patch_size,
        "decoder_hidden_size": config.decoder_dim,
        "use_relative_position_embeddings": vit.use_rel_pos,
        "merge_index": config.merge_block,
        "intermediate_hidden_state_indices": list(config.tap_blocks),
        "beta": config.loss_beta,
    }


def config_from_official(state: Mapping[str, torch.Tensor]) -> PainterConfig:
    """Infer the architecture of an official (BAAI) state dict from its tensor shapes.

    Heads follow from the relative-position tables (their width is the head size), the canvas from
    their lengths; taps are taken at the end of each quarter of the depth and the merge after block
    2, as in every released model.
    """
    try:
        dim, _, patch, _ = state["patch_embed.proj.weight"].shape
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        rel_h, head_dim = state["blocks.0.attn.rel_pos_h"].shape
        rel_w = state["blocks.0.attn.rel_pos_w"].shape[0]
        n_taps = state["decoder_embed.weight"].shape[1] // dim
        decoder_dim = state["decoder_pred.0.weight"].shape[0]
        mlp = state["blocks.0.mlp.fc1.weight"].shape[0]
        n_pos = state["pos_embed"].shape[1]
    except (KeyError, ValueError) as err:
        raise CheckpointError(
            f"not an official SegGPT/Painter state dict (missing {err})"
        ) from None
    grid = ((rel_h + 1) // 2, (rel_w + 1) // 2)
    side = int(round((n_pos - 1) ** 0.5))
    vit = ViTConfig(
        embed_dim=dim,
        depth=depth,
        num_heads=dim // head_dim,
        patch_size=patch,
        mlp_ratio=mlp / dim,
        drop_path_rate=0.1,
        rel_pos_grid=grid,
        pos_embed_grid=(side, side),
        pos_embed_prefix=n_pos - side * side,
    )
    return PainterConfig(
        vit=vit,
        canvas_size=(grid[0] * patch, grid[1] * patch),
        merge_block=2 if depth > 3 else 0,
        tap_blocks=tuple(depth * (k + 1) // n_taps - 1 for k in range(n_taps)),
        decoder_dim=decoder_dim,
        type_tokens="type_token_cls" in state,
    )


# -- reading -----------------------------------------------------------------------------------
