"""Checkpoints: one strict loader, one pure key filter per format, atomic writers.

Formats:
- ``official``: BAAI's ``seggpt_vit_large.pth`` / ``painter_vit_large.pth`` (weights under "model").
- ``hf``: a transformers ``SegGptForImageSegmentation`` directory (config.json + weights).
- ``native``: this project's safetensors file with the resolved config in its metadata.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import pickle
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from painter.config import PainterConfig, ViTConfig
from painter.errors import CheckpointError, ConfigError

NATIVE_FORMAT = "painter-framework"
NATIVE_VERSION = "1"
# Top-level key beside "model" in official files written here: the config as JSON. BAAI's code
# reads only "model"; shape inference alone cannot recover every architecture (e.g. merge_block).
OFFICIAL_CONFIG_KEY = "painter_config"
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
    if config.decoder_guide or config.decoder_linear or config.paint_activation != "identity":
        raise CheckpointError(
            "the transformers format has no image-guided or linear decoder path and paints the "
            f"canvas directly; this config has decoder_guide={config.decoder_guide}, "
            f"decoder_linear={config.decoder_linear}, paint_activation={config.paint_activation}"
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
@dataclass
class LoadReport:
    """What a strict load found: keys the model lacks, keys the file had in excess."""

    source: str
    format: CheckpointFormat
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


@dataclass
class RawCheckpoint:
    """A checkpoint read from disk, already in this project's key names."""

    config: PainterConfig
    state: StateDict
    format: CheckpointFormat
    source: str
    extra: dict[str, str] = field(default_factory=dict)


def torch_load(path: Path) -> object:
    """``torch.load`` with ``weights_only=True``, turning refusals into CheckpointError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = refused.group(1) if refused else str(err).splitlines()[0][:200]
        raise CheckpointError(
            f"{path} holds Python objects that weights_only loading refuses ({what}); "
            "re-save it as a plain state dict or safetensors, from code you trust"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable torch checkpoint: {err}") from None


def read_checkpoint(path: str | os.PathLike) -> RawCheckpoint:
    """Read a native, official or HF checkpoint from a local file or directory."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        return _read_hf_dir(path)
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    obj = torch_load(path)
    config = None
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        if isinstance(obj.get("model_config"), Mapping):  # a training checkpoint of this project
            return _read_training_checkpoint(obj, path)
        if isinstance(obj.get(OFFICIAL_CONFIG_KEY), str):
            config = PainterConfig.from_dict(json.loads(obj[OFFICIAL_CONFIG_KEY]))
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors")
    return _from_foreign_state(dict(obj), str(path), hf_config=None, official_config=config)


def _read_training_checkpoint(payload: Mapping, path: Path) -> RawCheckpoint:
    """The model of a run folder's ``checkpoint_*.pt`` (native key names, config beside them)."""
    state = payload["model"]
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors under 'model'")
    try:
        config = PainterConfig.from_dict(dict(payload["model_config"]))
    except (ConfigError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: its model_config is not a valid config ({err})") from None
    extra = {"step": str(payload.get("step", ""))}
    return RawCheckpoint(config, dict(state), CheckpointFormat.NATIVE, str(path), extra)


def read_safetensors(path: str | os.PathLike) -> tuple[StateDict, dict[str, str]]:
    """Tensors and metadata of a safetensors file; CheckpointError if it cannot be read."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        return load_file(str(path)), meta
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from None


def _read_safetensors(path: Path) -> RawCheckpoint:
    state, meta = read_safetensors(path)
    if meta.get("format") == NATIVE_FORMAT:
        config = PainterConfig.from_dict(json.loads(meta["config"]))
        extra = {k: v for k, v in meta.items() if k not in ("format", "config")}
        return RawCheckpoint(config, state, CheckpointFormat.NATIVE, str(path), extra)
    return _from_foreign_state(state, str(path), hf_config=None)


def _read_hf_dir(path: Path) -> RawCheckpoint:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(
            f"{path} is a directory without config.json; not a transformers model"
        )
    try:
        hf_config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{config_file} is not valid JSON ({err}); re-download it") from None
    for name in ("model.safetensors", "pytorch_model.bin"):
        weights = path / name
        if weights.is_file():
            break
    else:
        raise CheckpointError(
            f"{path} has config.json but neither model.safetensors nor pytorch_model.bin"
        )
    try:
        state = load_file(str(weights)) if weights.suffix == ".safetensors" else torch_load(weights)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{weights} is not a readable safetensors file: {err}") from None
    return _from_foreign_state(dict(state), str(path), hf_config=hf_config)


def _from_foreign_state(
    state: StateDict,
    source: str,
    hf_config: Mapping | None,
    official_config: PainterConfig | None = None,
) -> RawCheckpoint:
    if any(
        k.startswith(("image_encoder.", "prompt_encoder.", "mask_decoder.", "vision_encoder."))
        for k in state
    ):
        raise CheckpointError(
            f"{source} is a SAM checkpoint; load it with the promptable model (build_sam)"
        )
    if any(k.startswith("model.embeddings.") for k in state):
        config = config_from_hf(hf_config or {})
        return RawCheckpoint(
            config,
            convert_keys(state, CheckpointFormat.HF, CheckpointFormat.NATIVE),
            CheckpointFormat.HF,
            source,
        )
    if "patch_embed.proj.weight" in state and "decoder_embed.weight" in state:
        try:
            config = official_config or config_from_official(state)
        except ConfigError as err:  # the shapes fit no valid model: damaged or foreign
            raise CheckpointError(
                f"{source}: cannot infer the architecture from the tensor shapes ({err}); the "
                "file is incomplete or of another model"
            ) from None
        return RawCheckpoint(
            config,
            convert_keys(state, CheckpointFormat.OFFICIAL, CheckpointFormat.NATIVE),
            CheckpointFormat.OFFICIAL,
            source,
        )
    if any(k.startswith("backbone.blocks.") for k in state):
        raise CheckpointError(
            f"{source} has this project's key names but no config; save it with save_native"
        )
    raise CheckpointError(
        f"{source} is not a SegGPT/Painter checkpoint (keys like {list(state)[:3]})"
    )


def load_state_strict(
    model: nn.Module, raw: RawCheckpoint, *, allow_missing: tuple[str, ...] = ()
) -> LoadReport:
    """Load ``raw.state`` into ``model``; raise on any missing, unexpected or mis-shaped key."""
    own = model.state_dict()
    report = LoadReport(raw.source, raw.format)
    report.missing = [k for k in own if k not in raw.state and not k.startswith(allow_missing)]
    report.unexpected = [k for k in raw.state if k not in own]
    shapes = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in raw.state.items()
        if k in own and v.shape != own[k].shape
    ]
    if report.missing or report.unexpected or shapes:
        raise CheckpointError(
            f"{raw.source} does not fit model {raw.config.name or 'painter'}: "
            f"{len(report.missing)} missing {report.missing[:5]}, "
            f"{len(report.unexpected)} unexpected {report.unexpected[:5]}, "
            f"{len(shapes)} shape mismatches {shapes[:3]}"
        )
    model.load_state_dict(raw.state, strict=False)
    return report


# -- writing -----------------------------------------------------------------------------------
def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def contiguous_state(state: Mapping[str, torch.Tensor]) -> StateDict:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def save_native(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    extra: Mapping[str, str] | None = None,
    format_name: str = NATIVE_FORMAT,
    format_version: str = NATIVE_VERSION,
) -> Path:
    """Write the project's format: safetensors with the resolved config in its metadata."""
    meta = {
        "format": format_name,
        "format_version": format_version,
        "config": json.dumps(model.config.to_dict()),
        **(extra or {}),
    }
    state = contiguous_state(model.state_dict())
    return atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta))


def save_official(
    state: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    *,
    config: PainterConfig | None = None,
) -> Path:
    """Write BAAI's layout: ``{"model": state}`` with the official key names, via torch.save.

    With ``config``, it is stored as JSON under OFFICIAL_CONFIG_KEY (BAAI's code ignores it) and
    read back instead of inferring the architecture from shapes.
    """
    official = convert_keys(state, CheckpointFormat.NATIVE, CheckpointFormat.OFFICIAL)
    payload: dict[str, object] = {"model": contiguous_state(official)}
    if config is not None:
        payload[OFFICIAL_CONFIG_KEY] = json.dumps(config.to_dict())
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def save_hf(
    state: Mapping[str, torch.Tensor], config: PainterConfig, directory: str | os.PathLike
) -> Path:
    """Write a transformers ``SegGptForImageSegmentation`` directory (config.json + safetensors)."""
    directory = Path(directory)
    hf_state = contiguous_state(convert_keys(state, CheckpointFormat.NATIVE, CheckpointFormat.HF))
    config_text = json.dumps(config_to_hf(config), indent=2)
    atomic_write(
        directory / "model.safetensors",
        lambda tmp: save_file(hf_state, tmp, metadata={"format": "pt"}),
    )
    atomic_write(directory / "config.json", lambda tmp: Path(tmp).write_text(config_text))
    return directory


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
