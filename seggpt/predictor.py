"""Arrays in, masks out: the SegGPT predictor.

>>> predictor = SegGPTPredictor(load_model("demo"))
>>> [result] = predictor.predict([prompt_image], [prompt_mask], [query_image])
>>> result.mask  # (H, W) class ids at the query's size
>>> refining = SegGPTPredictor(load_model("demo"), refiner=PromptablePredictor(build_sam(
...     checkpoint="demo")))   # masks sharpened by the promptable model where it is confident
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from painter.config import SegType
from painter.devices import autocast, resolve_device, resolve_dtype
from painter.errors import InputMismatchError
from painter.io import ImageSource, load_image, load_mask
from painter.model import PainterModel
from painter.ops import denormalize, normalize
from painter.resize import resize_image
from painter.upsample import check_guide, guided_upsample
from seggpt.coloring import PromptColoring, decode_painted, prepare_prompt_masks
from seggpt.ensemble import EnsembleMode, grid_side, tile_grid

if TYPE_CHECKING:
    from painter.promptable.predictor import PromptablePredictor

logger = logging.getLogger(__name__)


@dataclass
class Prediction:
    """One query's result.

    Attributes:
        mask: (H, W) int64 class ids at the query's original size (0 = background; for index
            prompts the ids are the prompts' own ids).
        painted: (H, W, 3) uint8 painted output at the original size.
        canvas: (3, H/2, W) float32 painted query half in the model's normalised space, when
            requested.
    """

    mask: np.ndarray
    painted: np.ndarray
    canvas: torch.Tensor | None = None


@dataclass
class PreparedPrompts:
    """Prompts after loading, colouring, resizing and normalisation; reusable across queries.

    Attributes:
        images, targets: (P, 3, H/2, W) normalised tensors on the predictor's device.
        coloring: how the prompt masks map to colours, to read the output back.
    """

    images: torch.Tensor
    targets: torch.Tensor
    coloring: PromptColoring


class SegGPTPredictor:
    """In-context segmentation with a SegGPT (or Painter) model.

    Args:
        model: a :class:`PainterModel` (SegGPT or Painter).
        device: "cpu", "cuda", "cuda:1", or None/"auto".
        dtype: "auto" (default): bfloat16 where the device computes it natively (a GPU with bf16,
            a CPU with AVX512-BF16/AMX), float32 elsewhere; or float32, bfloat16, float16. The
            half ones run under autocast (weights stay float32).
        seg_type: the type token (SegGPT only); the original's default is INSTANCE.
        refiner: a promptable predictor; if given, every mask is refined with it
            (:func:`painter.promptable.refine_mask`: each connected component prompted with its
            box and an interior point, replaced where the decoder is confident). ``painted``
            stays SegGPT's own output.
        refine_min_score: the decoder's predicted IoU a refined component needs.
        upsample_guide: how the painted query half reaches the query's size: "model" (default)
            for the model's own rule (``PainterConfig.upsample_guide``: bilinear for the released
            models, image-guided for the bundled demo model), None for bilinear, or
            ``(radius, eps)`` for :func:`painter.upsample.guided_upsample`.
    """

    def __init__(
        self,
        model: PainterModel,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = "auto",
        seg_type: SegType = SegType.INSTANCE,
        refiner: PromptablePredictor | None = None,
        refine_min_score: float | None = None,
        upsample_guide: tuple[int, float] | None | str = "model",
    ) -> None:
        if upsample_guide == "model":
            upsample_guide = model.config.upsample_guide
        elif upsample_guide is not None:
            check_guide(*upsample_guide)
        self.upsample_guide = upsample_guide
        self.refiner = refiner
        self.refine_min_score = refine_min_score
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model = model.to(self.device).eval()
        self.seg_type = SegType(seg_type)
        self.config = model.config

    # -- preprocessing ---------------------------------------------------------------------------
    def _to_tensor(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """(H, W, 3) uint8 arrays -> (N, 3, H, W) normalised float32 on the device."""
        stacked = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)  # (N, 3, H, W)
        return normalize(stacked.to(self.device, torch.float32) / 255.0)

    def prepare_prompts(
        self,
        prompt_images: Sequence[ImageSource],
        prompt_masks: Sequence[ImageSource],
        *,
        ensemble: EnsembleMode | str = EnsembleMode.FEATURE,
    ) -> PreparedPrompts:
        """Load, check, colour and resize the prompts once; pass the result to :meth:`predict`."""
        ensemble = EnsembleMode(ensemble)
        if len(prompt_images) != len(prompt_masks):
            raise InputMismatchError(
                f"{len(prompt_images)} prompt images but {len(prompt_masks)} prompt masks; "
                "give one mask per prompt image"
            )
        if not prompt_images:
            raise InputMismatchError("give at least one prompt image and its mask")
        images = [load_image(src) for src in prompt_images]
        masks = [load_mask(src) for src in prompt_masks]
        for i, (image, mask) in enumerate(zip(images, masks)):
            if image.shape[:2] != mask.shape[:2]:
                raise InputMismatchError(
                    f"prompt {i}: image is {image.shape[1]}x{image.shape[0]} but its mask is "
                    f"{mask.shape[1]}x{mask.shape[0]} (width x height); they must match"
                )
        colored, coloring = prepare_prompt_masks(masks)
        half = self.config.half_size
        if ensemble is EnsembleMode.SPATIAL and len(images) > 1:
            n = grid_side(len(images))
            cell = (half[0] // n, half[1] // n)
            images = [resize_image(tile_grid([resize_image(im, cell) for im in images]), half)]
            tiles = [resize_image(m, cell, nearest=True) for m in colored]
            colored = [resize_image(tile_grid(tiles), half, nearest=True)]
        images = [resize_image(im, half) for im in images]
        colored = [resize_image(m, half, nearest=True) for m in colored]
        return PreparedPrompts(self._to_tensor(images), self._to_tensor(colored), coloring)

    # -- inference -------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(
        self,
        prompt_images: Sequence[ImageSource] | None,
        prompt_masks: Sequence[ImageSource] | None,
        query_images: Sequence[ImageSource],
        *,
        prompts: PreparedPrompts | None = None,
        ensemble: EnsembleMode | str = EnsembleMode.FEATURE,
        batch_size: int = 4,
        return_canvas: bool = False,
        progress: bool = False,
    ) -> list[Prediction]:
        """Segment every query from the same prompts.

        Args:
            prompt_images, prompt_masks: P example pairs (paths, PIL images or arrays). Masks are
                class-index maps, binary 0/1 or 0/255 masks, or RGB colour masks.
            query_images: the images to segment.
            prompts: already prepared prompts (then the first two arguments may be None).
            ensemble: "feature" (averaged features, the original's) or "spatial" (prompts tiled).
            batch_size: queries per forward pass.
        Returns:
            one :class:`Prediction` per query, in order.
        """
        if prompts is None:
            prompts = self.prepare_prompts(prompt_images, prompt_masks, ensemble=ensemble)
        results: list[Prediction] = []
        batches = list(_chunks(list(query_images), max(1, batch_size)))
        # The next batch is read, decoded and resized in a thread while the model runs on this
        # one (image decoding releases the GIL); a bad file raises when its batch comes up.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seggpt-load") as loader:
            pending = loader.submit(self._load_batch, batches[0]) if batches else None
            steps = tqdm(range(len(batches)), desc="segmenting", unit="batch", disable=not progress)
            for i in steps:
                loaded = pending.result()
                if i + 1 < len(batches):
                    pending = loader.submit(self._load_batch, batches[i + 1])
                results.extend(self._predict_batch(prompts, *loaded, return_canvas))
        return results

    def _load_batch(self, sources: list[ImageSource]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The batch's images as loaded, and resized to the canvas half."""
        images = [load_image(src) for src in sources]
        half = self.config.half_size
        return images, [resize_image(im, half) for im in images]

    def _predict_batch(
        self,
        prompts: PreparedPrompts,
        images: list[np.ndarray],
        resized: list[np.ndarray],
        return_canvas: bool,
    ) -> list[Prediction]:
        queries = self._to_tensor(resized)  # (Q, 3, H/2, W)
        n_q = queries.shape[0]
        prompt_images = prompts.images[None].expand(n_q, -1, -1, -1, -1)  # (Q, P, 3, H/2, W)
        prompt_targets = prompts.targets[None].expand(n_q, -1, -1, -1, -1)
        with autocast(self.device, self.dtype):
            painted = self.model.paint_queries(
                prompt_images, prompt_targets, queries, seg_type=self.seg_type
            )
        painted = painted.float()  # (Q, 3, H/2, W)
        rgb = denormalize(painted).clamp(0, 1)  # (Q, 3, H/2, W)
        out = []
        for i, image in enumerate(images):
            full = self._upsampled(rgb[i : i + 1], queries[i : i + 1], image)
            full = (full * 255).clamp(0, 255)[0].permute(1, 2, 0).cpu().numpy()  # (H, W, 3)
            out.append(
                Prediction(
                    mask=self._refined(image, decode_painted(full, prompts.coloring)),
                    painted=np.rint(full).astype(np.uint8),
                    canvas=painted[i].cpu() if return_canvas else None,
                )
            )
        return out

    def _upsampled(self, rgb: torch.Tensor, query: torch.Tensor, image: np.ndarray) -> torch.Tensor:
        """(1, 3, H/2, W) painted intensities -> (1, 3, H, W) at ``image``'s size, bilinear or
        guided by the query image (``query``: its normalised canvas half)."""
        size = image.shape[:2]
        if self.upsample_guide is None:
            return torch.nn.functional.interpolate(
                rgb, size=size, mode="bilinear", align_corners=False
            ).clamp(0, 1)
        radius, eps = self.upsample_guide
        full = (
            torch.as_tensor(np.array(image, dtype=np.uint8), device=self.device)
            .permute(2, 0, 1)[None]
            .float()
            / 255
        )
        guide = denormalize(query.float()).clamp(0, 1)
        return guided_upsample(guide, rgb, full, radius=radius, eps=eps).clamp(0, 1)

    def _refined(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``mask`` refined by the refiner, or as it is without one."""
        if self.refiner is None:
            return mask
        from painter.promptable.refine import DEFAULT_MIN_SCORE, refine_mask

        score = DEFAULT_MIN_SCORE if self.refine_min_score is None else self.refine_min_score
        return refine_mask(self.refiner, image, mask, min_score=score)


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
