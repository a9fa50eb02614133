"""Build models by variant name and load them from any supported checkpoint."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from painter.checkpoint import LoadReport, RawCheckpoint, load_state_strict, read_checkpoint
from painter.config import PainterConfig
from painter.errors import CheckpointError
from painter.model import PainterModel, build_painter
from painter.registry import get_config
from painter.resources import bundled_path
from seggpt.model import build_seggpt

logger = logging.getLogger(__name__)

DEMO_CHECKPOINT = bundled_path("seggpt", "weights/demo_seggpt.safetensors")
#: A prompt tuned for the demo model on the bundled fixed-class task (benchmarks/bench_tuning.py).
DEMO_TUNED_PROMPT = DEMO_CHECKPOINT.with_name("demo_tuned_prompt.safetensors")

# Hub ids users commonly pass, with the files that hold the weights.
HUB_FILES = {
    "BAAI/seggpt-vit-large": ("config.json", "model.safetensors"),
    "BAAI/SegGPT": ("seggpt_vit_large.pth",),
    "BAAI/Painter": ("painter_vit_large.pth",),
}
# A missing path with one of these endings is a mistyped file, not a hub id.
_CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


def build_model(config: PainterConfig | str) -> PainterModel:
    """A randomly initialised model of a variant name or config (SegGPT if it has type tokens)."""
    if isinstance(config, str):
        config = get_config(config)
    return build_seggpt(config) if config.type_tokens else build_painter(config)


def resolve_source(source: str | os.PathLike) -> Path:
    """A local path for ``source``: "demo", a file, a directory, or a hub id (fetched online)."""
    if str(source) == "demo":
        if not DEMO_CHECKPOINT.is_file():
            raise CheckpointError(
                f"the bundled demo model {DEMO_CHECKPOINT} is missing; build it with "
                "`make demo-model` or pass a checkpoint path"
            )
        return DEMO_CHECKPOINT
    path = Path(source)
    if path.exists():
        return path
    text = str(source)
    if text.count("/") != 1 or text.startswith((".", "/")) or path.suffix in _CHECKPOINT_SUFFIXES:
        raise CheckpointError(f"checkpoint {text} does not exist")
    files = HUB_FILES.get(text, ("config.json", "model.safetensors"))
    try:
        from huggingface_hub import hf_hub_download

        local = [hf_hub_download(text, name) for name in files]
    except Exception as err:  # offline, unknown repo, missing file: all end the same way
        raise CheckpointError(
            f"could not fetch {text} from the Hugging Face hub ({type(err).__name__}). Offline, "
            f"download {', '.join(files)} from https://huggingface.co/{text} on a machine with "
            "internet, put them in one folder, and pass that folder (or the .pth file) instead"
        ) from None
    return Path(local[0]).parent if len(local) > 1 else Path(local[0])


def load_model(
    source: str | os.PathLike, variant: str | None = None, *, return_report: bool = False
) -> PainterModel | tuple[PainterModel, LoadReport]:
    """Load a SegGPT or Painter model from a checkpoint path, directory or hub id.

    Args:
        source: native ``.safetensors``, official ``.pth``, a transformers directory, or a hub id.
        variant: registry name that the checkpoint must match; by default the checkpoint's own
            config (read or inferred from its shapes) decides.
    Returns:
        the model in eval mode (and the LoadReport when ``return_report``).
    """
    raw = read_checkpoint(resolve_source(source))
    if variant is not None:
        raw = _with_variant(raw, variant)
    model = build_model(raw.config)
    report = load_state_strict(model, raw)
    logger.info(
        "loaded %s (%s format) as %s", raw.source, raw.format.value, raw.config.name or "model"
    )
    model.eval()
    return (model, report) if return_report else model


def _with_variant(raw: RawCheckpoint, variant: str) -> RawCheckpoint:
    wanted = get_config(variant)
    same_vit = dataclasses.replace(wanted.vit, drop_path_rate=raw.config.vit.drop_path_rate)
    if same_vit != raw.config.vit or wanted.type_tokens != raw.config.type_tokens:
        raise CheckpointError(
            f"{raw.source} does not hold a {variant} model: its architecture is "
            f"{raw.config.vit.embed_dim}-wide, {raw.config.vit.depth} blocks, canvas "
            f"{raw.config.canvas_size}, type tokens {raw.config.type_tokens}"
        )
    return RawCheckpoint(wanted, raw.state, raw.format, raw.source, raw.extra)
