"""Arrays in, masks out: the promptable predictor.

>>> predictor = PromptablePredictor(build_sam(checkpoint="sam_vit_b_01ec64.pth"))
>>> predictor.set_image("dog.jpg")                     # encodes once, caches the embedding
>>> result = predictor.predict(points=[[120, 80]], labels=[1])
>>> result.best()[0]                                    # (H, W) bool, the top-scored candidate
>>> again = predictor.predict(points=[[120, 80], [40, 60]], labels=[1, 0],
...                           mask_input=result.low_res_logits[:, :1])  # refine with feedback

Coordinates are pixels of the original image, (x, y). Several prompt rows (one object each) go
in one call: points (P, N, 2), labels (P, N), boxes (P, 4), mask inputs (P, 1, 4h, 4w).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from painter.devices import autocast, resolve_device, resolve_dtype
from painter.errors import InputMismatchError, InvalidMaskError
from painter.io import ImageSource, load_image
from painter.promptable.model import PromptableSegmenter
from painter.promptable.prompt_encoder import PADDING_LABEL
from painter.promptable.transforms import (
    image_to_input_boxes,
    image_to_input_coords,
    pad_point_rows,
    resize_longest_side,
    resized_size,
    upscale_logits,
)

ArrayLike = np.ndarray | Sequence


@dataclass
class PromptPrediction:
    """Masks for P prompt rows, K candidates each (K = 1 with ``multimask=False``).

    Attributes:
        masks: (P, K, H, W) bool at the image's size.
        scores: (P, K) float32 predicted IoU of each candidate.
        low_res_logits: (P, K, 4h, 4w) float32 logits; pass one candidate back as
            ``mask_input`` to refine.
    """

    masks: np.ndarray
    scores: np.ndarray
    low_res_logits: np.ndarray

    def best(self) -> np.ndarray:
        """(P, H, W) bool: each row's highest-scored candidate."""
        index = self.scores.argmax(axis=1)  # (P,)
        return self.masks[np.arange(len(index)), index]


@dataclass
class PromptTensors:
    """Validated prompts in model-input pixels, on the predictor's device."""

    points: torch.Tensor | None  # (P, N, 2)
    labels: torch.Tensor | None  # (P, N)
    boxes: torch.Tensor | None  # (P, 4)
    mask_inputs: torch.Tensor | None  # (P, 1, 4h, 4w)


class PromptablePredictor:
    """Promptable segmentation of one image at a time, its embedding computed once.

    Args:
        model: a :class:`PromptableSegmenter`.
        device: "cpu", "cuda", "cuda:1", or None/"auto".
        dtype: "auto" (default): bfloat16 where the device computes it natively (a GPU with bf16,
            a CPU with AVX512-BF16/AMX), float32 elsewhere; or float32, bfloat16, float16. The
            half ones run under autocast (weights stay float32).
    """

    def __init__(
        self,
        model: PromptableSegmenter,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = "auto",
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.reset_image()

    # -- the image ------------------------------------------------------------------------------
    def reset_image(self) -> None:
        self._embedding: torch.Tensor | None = None
        self._image_pos: torch.Tensor | None = None
        self.original_size: tuple[int, int] | None = None
        self.input_size: tuple[int, int] | None = None

    @property
    def is_image_set(self) -> bool:
        return self._embedding is not None

    @property
    def image_embedding(self) -> torch.Tensor:
        """(1, D, h, w) float32 embedding of the current image."""
        if self._embedding is None:
            raise InputMismatchError("no image is set; call set_image(image) before predicting")
        return self._embedding

    def set_image(self, image: ImageSource) -> None:
        """Encode ``image`` (path, PIL image or array) and keep its embedding for predict."""
        rgb = load_image(image)  # (H, W, 3) uint8
        resized = resize_longest_side(rgb, self.config.image_size)  # (h', w', 3)
        pixels = torch.from_numpy(np.array(resized)).permute(2, 0, 1)  # (3, h', w')
        pixels = pixels[None].to(self.device, torch.float32)  # (1, 3, h', w')
        with torch.inference_mode(), autocast(self.device, self.dtype):
            embedding = self.model.encode_images(self.model.preprocess(pixels))
        self._store(embedding)
        self.original_size = rgb.shape[:2]
        self.input_size = resized.shape[:2]

    def set_image_embedding(self, embedding: torch.Tensor, original_size: tuple[int, int]) -> None:
        """Use an embedding computed earlier (e.g. stored with the image) instead of encoding.

        Args:
            embedding: (1, D, h, w) from ``model.encode_images`` of this model.
            original_size: (H, W) of the image it was computed from.
        """
        expected = (1, self.config.prompt_embed_dim, self.config.grid, self.config.grid)
        if tuple(embedding.shape) != expected:
            raise InputMismatchError(
                f"embedding has shape {tuple(embedding.shape)}; this model makes {expected}"
            )
        self._store(embedding.to(self.device))
        self.original_size = (int(original_size[0]), int(original_size[1]))
        self.input_size = resized_size(self.original_size, self.config.image_size)

    def _store(self, embedding: torch.Tensor) -> None:
        """Keep the embedding and the grid's position encoding (weights-only, computed once)."""
        self._embedding = embedding.float()
        with torch.inference_mode():
            self._image_pos = self.model.prompt_encoder.image_position_encoding()

    # -- prompts --------------------------------------------------------------------------------
    def predict(
        self,
        points: ArrayLike | None = None,
        labels: ArrayLike | None = None,
        box: ArrayLike | None = None,
        mask_input: ArrayLike | None = None,
        *,
        multimask: bool = True,
    ) -> PromptPrediction:
        """Masks for one or more prompt rows on the current image.

        Args:
            points: (N, 2) or (P, N, 2) x, y in image pixels, or a list of P arrays (N_i, 2)
                of different lengths.
            labels: matching (N,) / (P, N) / list; 1 foreground, 0 background. Default all 1.
            box: (4,) or (P, 4) x0, y0, x1, y1 in image pixels, one box per row.
            mask_input: (4h, 4w), (P, 4h, 4w) or (P, 1, 4h, 4w) logits, typically a candidate
                of an earlier prediction's ``low_res_logits``.
            multimask: K candidate masks per row (best for a single ambiguous point); False
                gives one mask (best for several points or a box).
        """
        prompts = self.prepare_prompts(points, labels, box, mask_input)
        logits, scores, low_res = self.predict_tensors(prompts, multimask=multimask)
        return PromptPrediction(
            masks=(logits > self.config.mask_threshold).cpu().numpy(),
            scores=scores.cpu().numpy(),
            low_res_logits=low_res.cpu().numpy(),
        )

    def predict_tensors(
        self, prompts: PromptTensors, *, multimask: bool = True, upscale: bool = True
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """Logits at the image size (P, K, H, W) (None unless ``upscale``), scores (P, K) and
        low-res logits (P, K, 4h, 4w); float32 on the device."""
        embedding = self.image_embedding
        with torch.inference_mode(), autocast(self.device, self.dtype):
            low_res, scores = self.model.predict_masks(
                embedding,
                points=prompts.points,
                labels=prompts.labels,
                boxes=prompts.boxes,
                mask_inputs=prompts.mask_inputs,
                multimask=multimask,
                image_pos=self._image_pos,
            )
            low_res, scores = low_res.float(), scores.float()
            if not upscale:
                return None, scores, low_res
            logits = upscale_logits(
                low_res,
                input_size=self.input_size,
                original_size=self.original_size,
                image_size=self.config.image_size,
            )
        return logits, scores, low_res

    def prepare_prompts(
        self,
        points: ArrayLike | None = None,
        labels: ArrayLike | None = None,
        box: ArrayLike | None = None,
        mask_input: ArrayLike | None = None,
    ) -> PromptTensors:
        """Check prompts given in image pixels and move them to the model's input frame."""
        size = self.original_size
        if size is None:
            raise InputMismatchError("no image is set; call set_image(image) before predicting")
        if points is None and box is None and mask_input is None:
            raise InputMismatchError("give at least one prompt: points, a box or a mask_input")
        if points is None and labels is not None:
            raise InputMismatchError("labels were given without points")
        rows: dict[str, int] = {}
        point_t = label_t = box_t = mask_t = None
        if points is not None:
            point_arr, label_arr = _check_points(points, labels, size)
            rows["points"] = len(point_arr)
            coords = torch.from_numpy(point_arr).to(self.device)
            point_t = image_to_input_coords(coords, size, self.input_size)
            label_t = torch.from_numpy(label_arr).to(self.device)
        if box is not None:
            box_arr = _check_boxes(box, size)
            rows["box"] = len(box_arr)
            box_t = image_to_input_boxes(
                torch.from_numpy(box_arr).to(self.device), size, self.input_size
            )
        if mask_input is not None:
            mask_arr = _check_mask_input(mask_input, self.config.low_res_size)
            rows["mask_input"] = len(mask_arr)
            mask_t = torch.from_numpy(mask_arr).to(self.device)
        if len(set(rows.values())) > 1:
            counts = ", ".join(f"{name} {n}" for name, n in rows.items())
            raise InputMismatchError(
                f"prompt rows disagree ({counts}); give the same number of rows P for each"
            )
        return PromptTensors(point_t, label_t, box_t, mask_t)


# -- validation (pure) ----------------------------------------------------------------------------
def _check_points(
    points: ArrayLike, labels: ArrayLike | None, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """-> (P, N, 2) float32 points and (P, N) int64 labels (padding -1 for ragged rows)."""
    try:
        arr = np.asarray(points, dtype=np.float32)
        ragged = False
    except ValueError:  # rows of different lengths
        ragged = True
    if ragged or arr.dtype == object:
        point_rows = [np.asarray(row, dtype=np.float32) for row in points]
        label_rows = (
            [np.ones(len(row), np.int64) for row in point_rows]
            if labels is None
            else [np.asarray(row) for row in labels]
        )
        if len(label_rows) != len(point_rows):
            raise InputMismatchError(
                f"{len(point_rows)} point rows but {len(label_rows)} label rows"
            )
        for i, (row, row_labels) in enumerate(zip(point_rows, label_rows)):
            _point_array(row, f"points row {i}")
            _label_array(row_labels, len(row), f"labels row {i}")
        arr, label_arr = pad_point_rows(point_rows, label_rows, PADDING_LABEL)
    else:
        if arr.ndim == 2:
            arr = arr[None]  # (1, N, 2)
        _point_array(arr, "points")
        label_arr = np.ones(arr.shape[:2], np.int64) if labels is None else np.asarray(labels)
        if label_arr.ndim == 1 and arr.shape[0] == 1:
            label_arr = label_arr[None]
        if label_arr.shape != arr.shape[:2]:
            raise InputMismatchError(
                f"labels have shape {label_arr.shape} but points {arr.shape}; give one label "
                "per point"
            )
        _label_array(label_arr, None, "labels")
    real = label_arr != PADDING_LABEL
    xs, ys = arr[..., 0][real], arr[..., 1][real]
    height, width = size
    outside = (xs < 0) | (xs >= width) | (ys < 0) | (ys >= height)
    if outside.any():
        x, y = float(xs[outside][0]), float(ys[outside][0])
        raise InputMismatchError(
            f"point ({x:g}, {y:g}) lies outside the {width}x{height} image; points are x, y "
            f"pixels with 0 <= x < {width} and 0 <= y < {height}"
        )
    return arr.astype(np.float32), label_arr.astype(np.int64)


def _point_array(arr: np.ndarray, name: str) -> None:
    if arr.ndim not in (2, 3) or arr.shape[-1] != 2 or arr.shape[-2] == 0:
        raise InputMismatchError(
            f"{name} have shape {arr.shape}; give (N, 2) or (P, N, 2) x, y pixel coordinates"
        )
    if not np.isfinite(arr).all():
        raise InputMismatchError(f"{name} contain NaN or infinite coordinates")


def _label_array(labels: np.ndarray, count: int | None, name: str) -> None:
    if count is not None and labels.shape != (count,):
        raise InputMismatchError(f"{name} has shape {labels.shape}; give one label per point")
    bad = labels[(labels != 0) & (labels != 1)]
    if bad.size:
        raise InputMismatchError(
            f"{name} contain {bad.flat[0]!r}; labels are 1 (foreground) or 0 (background)"
        )


def _check_boxes(box: ArrayLike, size: tuple[int, int]) -> np.ndarray:
    """-> (P, 4) float32 boxes."""
    arr = np.asarray(box, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[1] == 1:
        arr = arr[:, 0]  # (P, 1, 4) -> (P, 4)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim == 3 and arr.shape[-1] == 4:
        raise InputMismatchError(
            f"box has shape {arr.shape}: more than one box per prompt row; a row takes one box, "
            "so give several boxes as separate rows, shape (P, 4)"
        )
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise InputMismatchError(f"box has shape {arr.shape}; give (4,) or (P, 4) x0, y0, x1, y1")
    if not np.isfinite(arr).all():
        raise InputMismatchError("box contains NaN or infinite coordinates")
    for i, (x0, y0, x1, y1) in enumerate(arr.tolist()):
        if x1 < x0 or y1 < y0:
            raise InputMismatchError(
                f"box {i} ({x0:g}, {y0:g}, {x1:g}, {y1:g}) has x1 < x0 or y1 < y0; give "
                "x0, y0, x1, y1 with the top-left corner first"
            )
    height, width = size
    if (
        (arr[:, [0, 2]] < 0).any()
        or (arr[:, [0, 2]] > width).any()
        or (arr[:, [1, 3]] < 0).any()
        or (arr[:, [1, 3]] > height).any()
    ):
        raise InputMismatchError(
            f"a box reaches outside the {width}x{height} image; clip it to 0..{width} x 0..{height}"
        )
    return arr


def _check_mask_input(mask_input: ArrayLike, side: int) -> np.ndarray:
    """-> (P, 1, side, side) float32 logits."""
    arr = np.asarray(mask_input, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None, None]
    elif arr.ndim == 3:
        arr = arr[:, None]  # (P, side, side) -> (P, 1, side, side)
    if arr.ndim != 4 or arr.shape[1] != 1 or arr.shape[2:] != (side, side):
        raise InvalidMaskError(
            f"mask_input has shape {np.shape(mask_input)}; it must be {side}x{side} low-resolution "
            f"logits, (P, 1, {side}, {side}) — pass low_res_logits of an earlier prediction"
        )
    if not np.isfinite(arr).all():
        raise InvalidMaskError("mask_input contains NaN or infinite values")
    return arr
