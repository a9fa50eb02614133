"""Initialise a model for training from released weights: official Painter/SegGPT, HF SegGPT,
native checkpoints, or an MAE ViT (encoder only), resizing position embeddings as needed."""

from __future__ import annotations

import os

import torch
from timm.layers import resample_abs_pos_embed

from painter.checkpoint import (
    CheckpointFormat,
    LoadReport,
    RawCheckpoint,
    convert_keys,
    read_checkpoint,
    torch_load,
)
from painter.errors import CheckpointError, ConfigError
from painter.model import PainterModel
from seggpt.loading import resolve_source

_MAE_ONLY = ("cls_token", "decoder_", "mask_token", "norm_pix")


def _read_any(source: str | os.PathLike) -> RawCheckpoint | dict:
    path = resolve_source(source)
    if path.is_file() and path.suffix in (".pth", ".pt", ".bin"):
        obj = torch_load(path)
        state = obj.get("model", obj) if isinstance(obj, dict) else obj
        if isinstance(state, dict) and "cls_token" in state and "blocks.0.attn.qkv.weight" in state:
            kept = {k: v for k, v in state.items() if not k.startswith(_MAE_ONLY)}
            native = convert_keys(kept, CheckpointFormat.OFFICIAL, CheckpointFormat.NATIVE)
            return {"state": native, "source": str(path)}
    return read_checkpoint(path)


def _fit_pos_embed(value: torch.Tensor, model: PainterModel) -> torch.Tensor:
    cfg = model.config.vit
    own = model.backbone.pos_embed
    if value.shape == own.shape:
        return value
    prefix_in = value.shape[1] - int(round((value.shape[1] - cfg.pos_embed_prefix) ** 0.5)) ** 2
    side = int(round((value.shape[1] - prefix_in) ** 0.5))
    grid = value[:, prefix_in:]
    resized = resample_abs_pos_embed(
        grid,
        new_size=list(cfg.pos_embed_grid),
        old_size=[side, side],
        num_prefix_tokens=0,
        antialias=False,
    )
    prefix = own.detach()[:, : cfg.pos_embed_prefix].to(value.dtype)
    return torch.cat([prefix, resized], dim=1)


def initialise_from(model: PainterModel, source: str | os.PathLike) -> LoadReport:
    """Copy every matching tensor of ``source`` into ``model``.

    Tensors the source lacks (e.g. type tokens from Painter, the decoder and relative position
    from MAE) keep their initialisation and are listed in the report; the position embedding is
    resized; any other shape mismatch or a key the model lacks is an error.
    """
    raw = _read_any(source)
    state = raw["state"] if isinstance(raw, dict) else raw.state
    where = raw["source"] if isinstance(raw, dict) else raw.source
    own = model.state_dict()
    if "backbone.pos_embed" in state:
        state = {**state, "backbone.pos_embed": _fit_pos_embed(state["backbone.pos_embed"], model)}
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if unexpected or wrong:
        raise CheckpointError(
            f"{where} cannot initialise {model.config.name or 'this model'}: "
            f"unexpected {unexpected[:5]}, shape mismatches {wrong[:3]}"
        )
    model.load_state_dict(state, strict=False)
    missing = [k for k in own if k not in state]
    return LoadReport(where, CheckpointFormat.OFFICIAL, missing=missing)


def set_parameters(model: torch.nn.Module, values: dict[str, object]) -> None:
    """Set named parameters of ``model`` to given values (a run's ``set_parameters``): how a
    0-step recipe stage recalibrates a trained model's scalars, such as a match head's gate and
    temperature, with the values in its config for all to read.

    Args:
        values: parameter name -> a number or (nested) list of the parameter's shape.
    Raises:
        ConfigError: a name the model lacks (the message lists the model's parameters of that
            prefix), or a value that is not numbers of the parameter's shape.
    """
    own = dict(model.named_parameters())
    for name, value in values.items():
        if name not in own:
            prefix = name.rsplit(".", 1)[0]
            near = sorted(n for n in own if n.startswith(prefix + "."))[:8]
            raise ConfigError(
                f"set_parameters: the model has no parameter {name!r} (nearby: {near})"
            )
        param = own[name]
        try:
            tensor = torch.as_tensor(value, dtype=param.dtype)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"set_parameters: {name} wants numbers: {error}") from error
        if tensor.shape != param.shape:
            raise ConfigError(
                f"set_parameters: {name} has shape {tuple(param.shape)}, the value "
                f"{tuple(tensor.shape)}"
            )
        with torch.no_grad():
            param.copy_(tensor)
