"""Training configuration: frozen dataclasses, read from YAML/JSON, overridden from the command
line with dotted ``key=value`` pairs, written back resolved into every run folder and checkpoint."""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from painter.errors import ConfigError, missing_dependency
from painter.optim import OptimConfig

try:
    import yaml
except ImportError as _err:
    raise missing_dependency("pyyaml", "train", "training configs") from _err


class Precision(str, enum.Enum):
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


class Parallel(str, enum.Enum):
    """How several processes (started by torchrun) share the work."""

    DDP = "ddp"
    FSDP = "fsdp"


@dataclass(frozen=True)
class DataConfig:
    """The training mixture and its episode sampling.

    Attributes:
        mixture: name of a bundled mixture ("default": synthetic semantic + instance + photos).
        seed: seed of the episode stream (episode k is a function of (seed, k)).
        eval_seed: seed of the held-out evaluation episodes.
        eval_episodes: held-out episodes per evaluation.
        mask_ratio: fraction of target patches hidden (Painter's block masking).
        half_mask_prob: probability of hiding the whole query half instead.
        mixed_context_prob: probability of a mixed-context (stitched) sample.
        palette_color_prob: probability that an episode is coloured with inference's palette
            (in a random order) instead of random colours (``SamplingConfig``).
        jitter_prob: probability that each side of an episode is colour-jittered (independently
            of the other side).
        colored_range: (low, high) number of labels coloured per episode, the target included;
            (1, 1) gives binary episodes only (``SamplingConfig.colored_range``).
        weights: optional {entry name: weight} replacing the relative sampling weights of the
            mixture's named entries (0 drops an entry; a name the mixture lacks is an error).
        num_workers: DataLoader workers.
    """

    mixture: str = "default"
    seed: int = 0
    eval_seed: int = 10_000
    eval_episodes: int = 64
    mask_ratio: float = 0.5
    half_mask_prob: float = 0.1
    mixed_context_prob: float = 0.0
    palette_color_prob: float = 0.0
    jitter_prob: float = 0.8
    colored_range: tuple[int, int] = (1, 8)
    weights: dict[str, float] | None = None
    num_workers: int = 0


@dataclass(frozen=True)
class TrainConfig(OptimConfig):
    """Everything that decides a training run (the optimiser fields, ``steps``, ``lr``,
    ``min_lr``, ``warmup_steps``, ``weight_decay``, ``betas``, ``layer_decay``, are
    ``painter.optim.OptimConfig``'s).

    Attributes:
        model: registry variant to build.
        init: optional checkpoint to start from (official Painter/SegGPT, native, HF, MAE ViT).
        set_parameters: parameter name -> value, set after ``init`` is read (a fresh run only;
            a resumed run has them in its checkpoint): a 0-step stage's recalibration of a
            trained model, e.g. ``matcher.gate: [80, 0.97]``.
        batch_size: episodes per process per micro-batch.
        accum_steps: micro-batches per optimiser step.
        clip_grad: gradient-norm clip (0 = none).
        drop_path: stochastic depth rate (overrides the variant's).
        loss_beta: smooth-L1 beta of the training loss (None: the model variant's; Painter's
            0.01 suits large models, small ones learn faster with ~1, a near-quadratic loss).
        foreground_weight: loss weight of coloured target pixels relative to background (1.0 =
            Painter's plain masked loss).
        palette_weight: weight of the palette cross-entropy added to the smooth-L1 loss (0 =
            Painter's loss alone); it trains the nearest-colour decision that decodes a painting
            into a mask (``painter.losses.masked_palette_cross_entropy``).
        palette_temperature: its distance scale, in normalised colour units.
        dice_weight: weight of a soft Dice term on the painted intensities
            (``painter.losses.masked_soft_dice``; 0 = none): it judges each canvas's painting as
            a whole, as the IoU of its mask is, so over-painting costs what missing costs.
        grad_checkpointing: recompute block activations in the backward pass.
        precision: fp32, bf16 (CPU and CUDA) or fp16 (CUDA, with loss scaling).
        parallel: DDP or FSDP when started with more than one process.
        eval_every, save_every, log_every: in optimiser steps (0 = never / only at the end).
        keep_last: checkpoints kept in the run folder.
    """

    model: str = "seggpt_vit_tiny"
    init: str | None = None
    set_parameters: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 8
    accum_steps: int = 1
    clip_grad: float = 3.0
    drop_path: float = 0.0
    loss_beta: float | None = None
    foreground_weight: float = 1.0
    palette_weight: float = 0.0
    palette_temperature: float = 0.5
    dice_weight: float = 0.0
    grad_checkpointing: bool = False
    precision: Precision = Precision.FP32
    parallel: Parallel = Parallel.DDP
    seed: int = 0
    eval_every: int = 0
    save_every: int = 0
    log_every: int = 10
    keep_last: int = 3
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        checks = [
            (
                self.batch_size > 0 and self.accum_steps > 0,
                "batch_size and accum_steps must be > 0",
            ),
            (0 <= self.drop_path < 1, "drop_path must be in [0, 1)"),
            (self.foreground_weight > 0, "foreground_weight must be > 0"),
            (self.palette_weight >= 0, "palette_weight must be >= 0"),
            (self.palette_temperature > 0, "palette_temperature must be > 0"),
            (self.dice_weight >= 0, "dice_weight must be >= 0"),
            (isinstance(self.set_parameters, dict), "set_parameters must map names to values"),
            (self.loss_beta is None or self.loss_beta > 0, "loss_beta must be None or > 0"),
            (self.keep_last >= 1, "keep_last must be >= 1"),
            (0 <= self.data.mask_ratio <= 1, "data.mask_ratio must be in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=_enum_value))

    def fingerprint(self) -> dict[str, Any]:
        """The fields a resumed run must share with the run it continues."""
        d = self.to_dict()
        for key in ("steps", "eval_every", "save_every", "log_every", "keep_last"):
            d.pop(key)
        d["data"].pop("num_workers")
        d["data"].pop("eval_episodes")
        return d


def _enum_value(obj: Any) -> Any:
    if isinstance(obj, enum.Enum):
        return obj.value
    raise TypeError(f"cannot serialise {obj!r}")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(f"unknown config keys in {where}: {sorted(unknown)}")
    kwargs = {}
    for name, value in data.items():
        kind = fields[name].type
        if name == "data" and isinstance(value, dict):
            value = _build(DataConfig, value, f"{where}.data")
        elif kind == "Precision":
            value = Precision(value)
        elif kind == "Parallel":
            value = Parallel(value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid config in {where}: {err}") from err


def _parse_value(text: str) -> Any:
    """YAML scalars, plus numbers YAML 1.1 reads as strings (``1e-3``)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def load_train_config(path: str | Path | None = None, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML/JSON config (or the defaults) and apply ``key=value`` / ``data.key=value``."""
    return _build(TrainConfig, read_config_mapping(path, overrides), str(path or "defaults"))


def read_config_mapping(path: str | Path | None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The mapping in a YAML/JSON file (empty without one) with ``key=value`` overrides
    applied (dotted keys reach nested mappings; values are parsed as YAML scalars)."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping of config keys")
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. steps=200)")
        key, text = item.split("=", 1)
        node = data
        *parents, leaf = key.strip().split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = _parse_value(text)
    return data


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Inverse of :meth:`TrainConfig.to_dict`."""
    return _build(TrainConfig, dict(data), "checkpoint")
