"""Building a promptable model by name, config or checkpoint, and the bundled demo model."""

from __future__ import annotations

import dataclasses
import logging
import os

from painter.checkpoint import CheckpointFormat
from painter.errors import CheckpointError, ConfigError
from painter.promptable.checkpoint import load_sam_state, read_sam_checkpoint
from painter.promptable.config import SamConfig, get_sam_config, same_architecture
from painter.promptable.model import PromptableSegmenter, build_sam_from_config
from painter.resources import bundled_path

logger = logging.getLogger(__name__)

#: The bundled promptable demo model (``make demo-promptable``), package data of this package.
DEMO_PROMPTABLE = bundled_path("painter.promptable", "weights/demo_promptable.safetensors")


def build_sam(
    variant: str | SamConfig | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> PromptableSegmenter:
    """Build a promptable model, optionally loading weights.

    Args:
        variant: a registry name (``sam_vit_b``, ``sam_vit_l``, ``sam_vit_h``, ``sam_tiny``) or a
            config. With a checkpoint, the checkpoint decides the architecture and ``variant``,
            when given, must match it.
        checkpoint: Meta's official ``.pth``, a transformers ``SamModel`` folder (config.json +
            weights), this project's safetensors file (see ``save_sam``), or "demo": the
            bundled promptable demo model (``sam_demo``).
    Returns:
        the model in eval mode.
    """
    wanted = get_sam_config(variant) if isinstance(variant, str) else variant
    if checkpoint is None:
        if wanted is None:
            raise ConfigError("build_sam needs a variant name, a config or a checkpoint")
        return build_sam_from_config(wanted).eval()

    if str(checkpoint) == "demo":
        checkpoint = DEMO_PROMPTABLE
        if not checkpoint.is_file():
            raise CheckpointError(
                f"the bundled promptable demo model {checkpoint} is missing; build it with "
                "`make demo-promptable` or pass a checkpoint path"
            )
    raw = read_sam_checkpoint(checkpoint)
    config = raw.config
    if wanted is not None:
        # Meta's files do not record the decoder's head count: the variant's is taken
        official = raw.format is CheckpointFormat.OFFICIAL
        if not same_architecture(wanted, config, ignore_heads=official):
            raise CheckpointError(
                f"{raw.source} does not hold a {wanted.name or 'model of the given config'}: "
                f"its encoder is {config.encoder.embed_dim}-wide with {config.encoder.depth} "
                f"blocks at {config.image_size} px"
            )
        # the wanted name, threshold and drop-path rate; the eps the weights were made with
        config = dataclasses.replace(wanted, decoder_norm_eps=config.decoder_norm_eps)
    model = build_sam_from_config(config)
    load_sam_state(model, raw)
    logger.info("loaded %s (%s format)", raw.source, raw.format.value)
    return model.eval()
