"""The promptable segmenter: image encoder, prompt encoder and mask decoder wired together.

>>> model = build_sam("sam_tiny")                      # random weights
>>> model = build_sam(checkpoint="sam_vit_b_01ec64.pth")  # Meta's file; or a transformers folder
>>> embedding = model.encode_images(model.preprocess(pixels))  # (1, D, h, w)
>>> logits, iou = model.predict_masks(embedding, points=pts, labels=lbl)
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import torch
from torch import nn

from painter.checkpoint import CheckpointFormat
from painter.errors import CheckpointError, ConfigError
from painter.promptable.config import SamConfig, get_sam_config, same_architecture
from painter.promptable.image_encoder import ImageEncoder, build_image_encoder
from painter.promptable.mask_decoder import MaskDecoder
from painter.promptable.prompt_encoder import PromptEncoder
from painter.promptable.transforms import normalize_and_pad

logger = logging.getLogger(__name__)

#: The bundled promptable demo model (``make demo-promptable``), beside the SegGPT demo model.
DEMO_PROMPTABLE = (
    Path(__file__).resolve().parents[2] / "seggpt" / "weights" / "demo_promptable.safetensors"
)


class PromptableSegmenter(nn.Module):
    """SAM-style segmentation from points, boxes and masks on top of the shared ViT.

    The image is encoded once (:meth:`encode_images`); any number of prompt rows are then
    decoded against the embedding (:meth:`predict_masks`), which is cheap.
    """

    def __init__(
        self,
        config: SamConfig,
        image_encoder: ImageEncoder,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
    ) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.register_buffer("pixel_mean", torch.tensor(config.pixel_mean), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(config.pixel_std), persistent=False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) resized pixels on the 0..255 scale -> (B, 3, S, S) model input."""
        return normalize_and_pad(images, self.pixel_mean, self.pixel_std, self.config.image_size)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised, padded images -> (B, D, h, w) image embeddings."""
        return self.image_encoder(images)

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        *,
        points: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        mask_inputs: torch.Tensor | None = None,
        multimask: bool = True,
        image_pos: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode P prompt rows against an image embedding.

        Args:
            image_embeddings: (1, D, h, w) shared by all rows, or (P, D, h, w) one per row.
            points: (P, N, 2) x, y in pixels of the padded input; ``labels`` (P, N) in
                {1 foreground, 0 background, -1 padding}.
            boxes: (P, 4) x0, y0, x1, y1 in input pixels, one per row.
            mask_inputs: (P, 1, 4h, 4w) mask logits, e.g. an earlier low-resolution output.
            multimask: K candidate masks per row instead of one.
            image_pos: ``prompt_encoder.image_position_encoding()`` when the caller keeps it
                (it depends on the weights only); computed here otherwise.
        Returns:
            low-resolution mask logits (P, K, 4h, 4w) and predicted IoUs (P, K).
        """
        sparse, dense = self.prompt_encoder(
            points=points, labels=labels, boxes=boxes, masks=mask_inputs
        )
        if image_pos is None:
            image_pos = self.prompt_encoder.image_position_encoding()  # (1, D, h, w)
        return self.mask_decoder(
            image_embeddings, image_pos, sparse, dense.to(sparse.dtype), multimask=multimask
        )

    def forward(
        self,
        images: torch.Tensor,
        *,
        points: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        mask_inputs: torch.Tensor | None = None,
        multimask: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One prompt row per image: (B, 3, S, S) and prompts for B rows -> logits, IoUs."""
        return self.predict_masks(
            self.encode_images(images),
            points=points,
            labels=labels,
            boxes=boxes,
            mask_inputs=mask_inputs,
            multimask=multimask,
        )


def build_sam_from_config(config: SamConfig) -> PromptableSegmenter:
    """A randomly initialised model of ``config``."""
    return PromptableSegmenter(
        config, build_image_encoder(config), PromptEncoder(config), MaskDecoder(config)
    )


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

    from painter.promptable.checkpoint import load_sam_state, read_sam_checkpoint

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
