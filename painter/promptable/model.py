"""The promptable segmenter: image encoder, prompt encoder and mask decoder wired together.

>>> model = build_sam("sam_tiny")                      # random weights
>>> model = build_sam(checkpoint="sam_vit_b_01ec64.pth")  # Meta's file; or a transformers folder
>>> embedding = model.encode_images(model.preprocess(pixels))  # (1, D, h, w)
>>> logits, iou = model.predict_masks(embedding, points=pts, labels=lbl)
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from painter.promptable.config import SamConfig
from painter.promptable.image_encoder import ImageEncoder, build_image_encoder
from painter.promptable.mask_decoder import MaskDecoder
from painter.promptable.prompt_encoder import PromptEncoder
from painter.promptable.transforms import normalize_and_pad

logger = logging.getLogger(__name__)


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
