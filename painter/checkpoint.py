"""Checkpoints: the raw readers (torch files with ``weights_only``, safetensors, transformers
folders) shared by both model families, one strict loader, atomic writers; and the SegGPT/Painter
reader and writers on top of the key tables of :mod:`painter.formats`."""

from __future__ import annotations

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

from painter.config import PainterConfig
from painter.errors import CheckpointError, ConfigError
from painter.formats import (
    CheckpointFormat,
    StateDict,
    config_from_hf,
    config_from_official,
    config_to_hf,
    convert_keys,
)

NATIVE_FORMAT = "painter-framework"
NATIVE_VERSION = "1"
# Top-level key beside "model" in official files written here: the config as JSON. BAAI's code
# reads only "model"; shape inference alone cannot recover every architecture (e.g. merge_block).
OFFICIAL_CONFIG_KEY = "painter_config"


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
    return _from_foreign_state(
        tensor_state(obj, path), str(path), hf_config=None, official_config=config
    )


def tensor_state(obj: object, source: object, *, where: str = "") -> StateDict:
    """``obj`` as a state dict, or a CheckpointError saying ``source`` holds none (``where``
    names the place inside the file)."""
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{source} holds no state dict of tensors{where}")
    return dict(obj)


def _read_training_checkpoint(payload: Mapping, path: Path) -> RawCheckpoint:
    """The model of a run folder's ``checkpoint_*.pt`` (native key names, config beside them)."""
    state = tensor_state(payload["model"], path, where=" under 'model'")
    try:
        config = PainterConfig.from_dict(dict(payload["model_config"]))
    except (ConfigError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: its model_config is not a valid config ({err})") from None
    extra = {"step": str(payload.get("step", ""))}
    return RawCheckpoint(config, state, CheckpointFormat.NATIVE, str(path), extra)


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
    hf_config = read_hf_config(path)
    return _from_foreign_state(read_hf_weights(path), str(path), hf_config=hf_config)


def read_hf_config(path: Path) -> dict:
    """The config.json dict of a transformers model folder (either family).

    Raises:
        CheckpointError: no config.json, or not valid JSON.
    """
    config_file = path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(
            f"{path} is a directory without config.json; not a transformers model"
        )
    try:
        return json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{config_file} is not valid JSON ({err}); re-download it") from None


def read_hf_weights(path: Path) -> StateDict:
    """The weights of a transformers model folder: model.safetensors or pytorch_model.bin.

    Raises:
        CheckpointError: no weights file, or one that cannot be read as a dict of tensors.
    """
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
    return tensor_state(state, weights)


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
