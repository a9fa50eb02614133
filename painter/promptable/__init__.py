"""SAM-style promptable segmentation on the shared ViT: points, boxes and masks in, masks out.

Three layers: modules (:class:`PromptableSegmenter`, tensors in and out, differentiable), the
predictor (:class:`PromptablePredictor`, arrays in and out, the image embedding cached) and
pipelines (:class:`AutomaticMaskGenerator`, :func:`refine_mask`).
"""

from painter.promptable.adapt import SelfTrainingAdapter, add_lora, merge_lora
from painter.promptable.automatic import (
    AutoMask,
    AutoMaskSettings,
    AutomaticMaskGenerator,
    class_map,
)
from painter.promptable.checkpoint import read_sam_checkpoint, save_sam, save_sam_official
from painter.promptable.config import SamConfig, get_sam_config, list_sam_models
from painter.promptable.loading import DEMO_PROMPTABLE, build_sam
from painter.promptable.model import PromptableSegmenter
from painter.promptable.predictor import PromptablePredictor, PromptPrediction
from painter.promptable.refine import refine_mask

__all__ = [
    "AutoMask",
    "AutoMaskSettings",
    "AutomaticMaskGenerator",
    "PromptPrediction",
    "PromptablePredictor",
    "PromptableSegmenter",
    "SamConfig",
    "SelfTrainingAdapter",
    "add_lora",
    "DEMO_PROMPTABLE",
    "build_sam",
    "class_map",
    "get_sam_config",
    "list_sam_models",
    "merge_lora",
    "read_sam_checkpoint",
    "refine_mask",
    "save_sam",
    "save_sam_official",
]
