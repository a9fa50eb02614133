"""Checkpoints of the promptable model: one pure key filter per format, the shared strict loader.

Formats:
- ``official``: Meta's ``sam_vit_{b,l,h}_*.pth``, a plain state dict with ``image_encoder.*``,
  ``prompt_encoder.*`` and ``mask_decoder.*`` keys. The architecture is read from the tensor
  shapes; the decoder's head count is not recorded in the file, 8 (every released model) is
  assumed unless ``build_sam`` is given a variant.
- ``hf``: a transformers ``SamModel`` folder (config.json + model.safetensors or
  pytorch_model.bin); config.json decides the architecture.
- ``native``: this project's safetensors file with the config in its metadata (``save_sam``).

Our key names follow Meta's for the prompt encoder and the mask decoder; the image encoder is
the shared backbone (``image_encoder.backbone.*``, MLP ``fc1``/``fc2``, position embedding
stored as (1, h*w, C)) plus ``image_encoder.neck.*``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from painter.checkpoint import NATIVE_FORMAT as SEGGPT_NATIVE_FORMAT
from painter.checkpoint import (
    CheckpointFormat,
    LoadReport,
    RawCheckpoint,
    atomic_write,
    contiguous_state,
    load_state_strict,
    read_hf_config,
    read_hf_weights,
    read_safetensors,
    save_native,
    tensor_state,
    torch_load,
)
from painter.errors import CheckpointError, ConfigError
from painter.promptable.config import SamConfig, sam_encoder, variant_of
from painter.promptable.model import PromptableSegmenter

SAM_NATIVE_FORMAT = "painter-framework-sam"
SAM_NATIVE_VERSION = "1"
StateDict = dict[str, torch.Tensor]
Rule = tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]

_SEGGPT_HINT = "is a SegGPT/Painter checkpoint; load it with seggpt.load_model"
_BACKBONE = "image_encoder.backbone."


def _rules(pairs: list[tuple[str, str | Callable[[re.Match[str]], str]]]) -> list[Rule]:
    return [(re.compile(pattern), target) for pattern, target in pairs]


# ours <- Meta's names (first match wins; keys no rule names pass through unchanged)
_FROM_OFFICIAL = _rules(
    [
        (r"^image_encoder\.patch_embed\.", _BACKBONE + "patch_embed."),
        (r"^image_encoder\.pos_embed$", _BACKBONE + "pos_embed"),
        (r"^image_encoder\.blocks\.(\d+)\.mlp\.lin([12])\.", _BACKBONE + r"blocks.\1.mlp.fc\2."),
        (r"^image_encoder\.blocks\.", _BACKBONE + "blocks."),
    ]
)
_TO_OFFICIAL = _rules(
    [
        (
            r"^image_encoder\.backbone\.blocks\.(\d+)\.mlp\.fc([12])\.",
            r"image_encoder.blocks.\1.mlp.lin\2.",
        ),
        (r"^image_encoder\.backbone\.", "image_encoder."),
    ]
)


def _hf_rules(iou_head_depth: int) -> list[Rule]:
    def mlp_layer(match: re.Match[str]) -> str:  # transformers' hidden layers sit between in/out
        return f"mask_decoder.{match[1]}.layers.{int(match[2]) + 1}."

    def mlp_out(match: re.Match[str]) -> str:
        last = iou_head_depth - 1 if match[1] == "iou_prediction_head" else 2
        return f"mask_decoder.{match[1]}.layers.{last}."

    heads = r"(output_hypernetworks_mlps\.\d+|iou_prediction_head)"
    return _rules(
        [
            (r"^vision_encoder\.patch_embed\.projection\.", _BACKBONE + "patch_embed.proj."),
            (r"^vision_encoder\.pos_embed$", _BACKBONE + "pos_embed"),
            (
                r"^vision_encoder\.layers\.(\d+)\.layer_norm([12])\.",
                _BACKBONE + r"blocks.\1.norm\2.",
            ),
            (r"^vision_encoder\.layers\.(\d+)\.attn\.", _BACKBONE + r"blocks.\1.attn."),
            (
                r"^vision_encoder\.layers\.(\d+)\.mlp\.lin([12])\.",
                _BACKBONE + r"blocks.\1.mlp.fc\2.",
            ),
            (r"^vision_encoder\.neck\.conv1\.", "image_encoder.neck.0."),
            (r"^vision_encoder\.neck\.layer_norm1\.", "image_encoder.neck.1."),
            (r"^vision_encoder\.neck\.conv2\.", "image_encoder.neck.2."),
            (r"^vision_encoder\.neck\.layer_norm2\.", "image_encoder.neck.3."),
            (
                r"^(shared_image_embedding|prompt_encoder\.shared_embedding)\.positional_embedding$",
                "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
            ),
            (r"^prompt_encoder\.point_embed\.", "prompt_encoder.point_embeddings."),
            (r"^prompt_encoder\.mask_embed\.conv1\.", "prompt_encoder.mask_downscaling.0."),
            (r"^prompt_encoder\.mask_embed\.layer_norm1\.", "prompt_encoder.mask_downscaling.1."),
            (r"^prompt_encoder\.mask_embed\.conv2\.", "prompt_encoder.mask_downscaling.3."),
            (r"^prompt_encoder\.mask_embed\.layer_norm2\.", "prompt_encoder.mask_downscaling.4."),
            (r"^prompt_encoder\.mask_embed\.conv3\.", "prompt_encoder.mask_downscaling.6."),
            (
                r"^mask_decoder\.transformer\.layers\.(\d+)\.layer_norm(\d)\.",
                r"mask_decoder.transformer.layers.\1.norm\2.",
            ),
            (
                r"^mask_decoder\.transformer\.layer_norm_final_attn\.",
                "mask_decoder.transformer.norm_final_attn.",
            ),
            (r"^mask_decoder\.upscale_conv1\.", "mask_decoder.output_upscaling.0."),
            (r"^mask_decoder\.upscale_layer_norm\.", "mask_decoder.output_upscaling.1."),
            (r"^mask_decoder\.upscale_conv2\.", "mask_decoder.output_upscaling.3."),
            (rf"^mask_decoder\.{heads}\.proj_in\.", r"mask_decoder.\1.layers.0."),
            (rf"^mask_decoder\.{heads}\.layers\.(\d+)\.", mlp_layer),
            (rf"^mask_decoder\.{heads}\.proj_out\.", mlp_out),
        ]
    )


def _rename(state: Mapping[str, torch.Tensor], rules: list[Rule]) -> StateDict:
    out: StateDict = {}
    for key, value in state.items():
        for pattern, target in rules:
            match = pattern.match(key)
            if match:
                new = target(match) if callable(target) else match.expand(target)
                key = new + key[match.end() :]
                break
        if key in out and not torch.equal(out[key], value):
            raise CheckpointError(f"two different tensors map to {key}; the file is inconsistent")
        out[key] = value
    return out


def _flat_pos_embed(state: StateDict) -> StateDict:
    key = _BACKBONE + "pos_embed"
    if key in state and state[key].dim() == 4:
        pos = state[key]
        state[key] = pos.reshape(1, pos.shape[1] * pos.shape[2], pos.shape[3])  # (1, h*w, C)
    return state


def official_to_native(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Meta's SAM state dict -> our key names and layouts (pure)."""
    return _flat_pos_embed(_rename(state, _FROM_OFFICIAL))


def native_to_official(state: Mapping[str, torch.Tensor], config: SamConfig) -> StateDict:
    """Our state dict -> Meta's key names, position embedding back to (1, h, w, C) (pure)."""
    out = _rename(state, _TO_OFFICIAL)
    pos = out["image_encoder.pos_embed"]
    out["image_encoder.pos_embed"] = pos.reshape(1, config.grid, config.grid, pos.shape[-1])
    return out


def hf_to_native(state: Mapping[str, torch.Tensor], config: SamConfig) -> StateDict:
    """transformers ``SamModel`` state dict -> our key names and layouts (pure)."""
    return _flat_pos_embed(_rename(state, _hf_rules(config.iou_head_depth)))


# -- architectures of the foreign formats -------------------------------------------------------
def _side(value: object) -> int:
    """transformers stores sizes as an int or an [h, w] pair."""
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise CheckpointError(f"only square inputs are supported, got {value}")
        return int(value[0])
    return int(value)


def config_from_hf(hf: Mapping[str, object]) -> SamConfig:
    """SamConfig from a transformers ``SamConfig`` dict (config.json); missing fields take
    transformers' defaults (the ViT-B layout)."""
    kind = hf.get("model_type")
    if kind == "seggpt":
        raise CheckpointError(f"config.json describes SegGPT: the folder {_SEGGPT_HINT}")
    if kind not in (None, "sam"):
        raise CheckpointError(f"config.json is for model_type {kind!r}; build_sam reads 'sam'")
    vision = dict(hf.get("vision_config") or {})
    prompt = dict(hf.get("prompt_encoder_config") or {})
    decoder = dict(hf.get("mask_decoder_config") or {})
    if not vision.get("use_abs_pos", True):
        raise CheckpointError("models without an absolute position embedding are not supported")
    dim = int(vision.get("hidden_size", 768))
    width = int(vision.get("output_channels", 256))
    widths = {width, int(prompt.get("hidden_size", 256)), int(decoder.get("hidden_size", 256))}
    if len(widths) != 1:
        raise CheckpointError(f"the neck, prompt encoder and decoder widths differ: {widths}")
    if 2 * int(vision.get("num_pos_feats", 128)) != width:
        raise CheckpointError("num_pos_feats must be half the prompt width")
    image_size = _side(vision.get("image_size", 1024))
    try:
        encoder = sam_encoder(
            dim,
            int(vision.get("num_hidden_layers", 12)),
            int(vision.get("num_attention_heads", 12)),
            tuple(int(i) for i in vision.get("global_attn_indexes", (2, 5, 8, 11))),
            image_size=image_size,
            window=int(vision.get("window_size", 14)),
            patch=_side(vision.get("patch_size", 16)),
        )
        mlp_dim = vision.get("mlp_dim") or dim * float(vision.get("mlp_ratio", 4.0))
        encoder = dataclasses.replace(
            encoder,
            mlp_ratio=float(mlp_dim) / dim,
            qkv_bias=bool(vision.get("qkv_bias", True)),
            norm_eps=float(vision.get("layer_norm_eps", 1e-6)),
            use_rel_pos=bool(vision.get("use_rel_pos", True)),
        )
        return SamConfig(
            encoder=encoder,
            image_size=image_size,
            prompt_embed_dim=width,
            mask_in_chans=int(prompt.get("mask_input_channels", 16)),
            decoder_depth=int(decoder.get("num_hidden_layers", 2)),
            decoder_heads=int(decoder.get("num_attention_heads", 8)),
            decoder_mlp_dim=int(decoder.get("mlp_dim", 2048)),
            attention_downsample_rate=int(decoder.get("attention_downsample_rate", 2)),
            num_multimask_outputs=int(decoder.get("num_multimask_outputs", 3)),
            iou_head_depth=int(decoder.get("iou_head_depth", 3)),
            iou_head_hidden_dim=int(decoder.get("iou_head_hidden_dim", 256)),
            decoder_norm_eps=float(decoder.get("layer_norm_eps", 1e-6)),
        )
    except (ConfigError, TypeError, ValueError) as err:
        raise CheckpointError(f"config.json describes no valid SAM model: {err}") from None


def config_from_official(state: Mapping[str, torch.Tensor]) -> SamConfig:
    """Infer the architecture of Meta's state dict from its tensor shapes."""
    enc, dec = "image_encoder.", "mask_decoder."

    def count(prefix: str) -> int:
        found = {int(k[len(prefix) :].split(".")[0]) for k in state if k.startswith(prefix)}
        return max(found) + 1 if found else 0

    try:
        dim, _, patch, _ = state[enc + "patch_embed.proj.weight"].shape
        grid = state[enc + "pos_embed"].shape[1]
        depth = count(enc + "blocks.")
        lengths = [state[f"{enc}blocks.{i}.attn.rel_pos_h"].shape[0] for i in range(depth)]
        head_dim = state[enc + "blocks.0.attn.rel_pos_h"].shape[1]
        global_blocks = tuple(i for i, n in enumerate(lengths) if n == 2 * grid - 1)
        windowed = [n for n in lengths if n != 2 * grid - 1]
        width = state[enc + "neck.0.weight"].shape[0]
        inner = state[dec + "transformer.layers.0.cross_attn_token_to_image.q_proj.weight"].shape[0]
        encoder = sam_encoder(
            dim,
            depth,
            dim // head_dim,
            global_blocks if windowed else (),
            image_size=grid * patch,
            window=(windowed[0] + 1) // 2 if windowed else 0,
            patch=patch,
        )
        encoder = dataclasses.replace(
            encoder,
            mlp_ratio=state[enc + "blocks.0.mlp.lin1.weight"].shape[0] / dim,
            qkv_bias=enc + "blocks.0.attn.qkv.bias" in state,
        )
        return SamConfig(
            encoder=encoder,
            image_size=grid * patch,
            prompt_embed_dim=width,
            mask_in_chans=state["prompt_encoder.mask_downscaling.3.weight"].shape[0],
            decoder_depth=count(dec + "transformer.layers."),
            decoder_mlp_dim=state[dec + "transformer.layers.0.mlp.lin1.weight"].shape[0],
            attention_downsample_rate=width // inner,
            num_multimask_outputs=state[dec + "mask_tokens.weight"].shape[0] - 1,
            iou_head_depth=count(dec + "iou_prediction_head.layers."),
            iou_head_hidden_dim=state[dec + "iou_prediction_head.layers.0.weight"].shape[0],
        )
    except (KeyError, ValueError, ConfigError) as err:
        raise CheckpointError(
            f"not a complete SAM state dict (cannot read the architecture: {err})"
        ) from None


# -- reading ------------------------------------------------------------------------------------
def read_sam_checkpoint(path: str | os.PathLike) -> RawCheckpoint:
    """Read an official, transformers or native promptable checkpoint; keys come back in our
    names (``RawCheckpoint.config`` is a :class:`SamConfig`)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        return _read_hf_dir(path)
    if path.suffix == ".safetensors":
        state, meta = read_safetensors(path)
        if meta.get("format") == SAM_NATIVE_FORMAT:
            config = SamConfig.from_dict(json.loads(meta["config"]))
            return RawCheckpoint(config, state, CheckpointFormat.NATIVE, str(path))
        if meta.get("format") == SEGGPT_NATIVE_FORMAT:
            raise CheckpointError(f"{path} {_SEGGPT_HINT}")
        return _from_state(state, str(path))
    obj = torch_load(path)
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]  # training wrappers; BAAI's SegGPT files look like this too
    return _from_state(tensor_state(obj, path), str(path))


def _from_state(state: StateDict, source: str) -> RawCheckpoint:
    keys = list(state)
    if any(k.startswith(("model.embeddings.", "decoder_embed.", "backbone.blocks.")) for k in keys):
        raise CheckpointError(f"{source} {_SEGGPT_HINT}")
    if any(k.startswith(("image_encoder.trunk.", "sam_mask_decoder.")) for k in keys):
        raise CheckpointError(f"{source} looks like a SAM 2 checkpoint; build_sam reads SAM v1")
    if any(k.startswith("vision_encoder.") for k in keys):
        raise CheckpointError(
            f"{source} holds transformers SamModel weights; pass the folder with its config.json"
        )
    if any(k.startswith("image_encoder.blocks.") for k in keys):
        config = _named(config_from_official(state), ignore_heads=True)
        return RawCheckpoint(config, official_to_native(state), CheckpointFormat.OFFICIAL, source)
    raise CheckpointError(f"{source} is not a SAM checkpoint (keys like {keys[:3]})")


def _read_hf_dir(path: Path) -> RawCheckpoint:
    config = _named(config_from_hf(read_hf_config(path)))
    state = read_hf_weights(path)
    return RawCheckpoint(config, hf_to_native(state, config), CheckpointFormat.HF, str(path))


def _named(config: SamConfig, *, ignore_heads: bool = False) -> SamConfig:
    """``config`` named after the registered variant it matches (for messages), else "sam"."""
    return dataclasses.replace(config, name=variant_of(config, ignore_heads=ignore_heads) or "sam")


def load_sam_state(model: PromptableSegmenter, raw: RawCheckpoint) -> LoadReport:
    """Strictly load ``raw`` into ``model``; raises CheckpointError on any key or shape surprise."""
    return load_state_strict(model, raw)


# -- writing ------------------------------------------------------------------------------------
def save_sam(model: PromptableSegmenter, path: str | os.PathLike) -> Path:
    """This project's format: safetensors with the config in its metadata."""
    return save_native(
        model, path, format_name=SAM_NATIVE_FORMAT, format_version=SAM_NATIVE_VERSION
    )


def save_sam_official(model: PromptableSegmenter, path: str | os.PathLike) -> Path:
    """Meta's format: a plain state dict with their key names (torch.save)."""
    state = contiguous_state(native_to_official(model.state_dict(), model.config))
    return atomic_write(path, lambda tmp: torch.save(state, tmp))
