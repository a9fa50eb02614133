"""Automatic masks: prompt the model with a grid of points and keep the good, distinct masks.

>>> generator = AutomaticMaskGenerator(PromptablePredictor(model), points_per_side=16)
>>> masks = generator.generate("street.jpg")        # list of AutoMask, best predicted IoU first
>>> classes = class_map(masks, image_size)            # (H, W) ids 1..len(masks), 0 = none
>>> json.dump([m.to_json() for m in masks], f)        # COCO RLE per mask

Per crop (the whole image, plus overlapping zoomed-in crops when ``crop_n_layers`` > 0): every
grid point is a single foreground prompt with three candidate masks; candidates pass when their
predicted IoU and their stability (IoU of the mask thresholded at +offset and at -offset) are
high enough and they do not touch an inner crop edge; box NMS removes duplicates inside each crop
and across crops (preferring smaller crops). Optionally small holes and islands are cleaned up.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import batched_nms
from tqdm.auto import tqdm

from painter.errors import ConfigError, missing_dependency
from painter.io import ImageSource, load_image
from painter.masks import mask_to_rle, rle_to_mask
from painter.promptable.predictor import PromptablePredictor
from painter.promptable.transforms import masks_to_boxes, upscale_logits

try:
    from scipy import ndimage
except ImportError as _err:
    raise missing_dependency("scipy", "app", "automatic mask generation") from _err

try:  # optional: a C encoder, much faster on large images
    from pycocotools import mask as _coco_mask
except ImportError:  # pragma: no cover - exercised only without pycocotools
    _coco_mask = None

EDGE_TOLERANCE_PX = 20.0


@dataclass(frozen=True)
class AutoMaskSettings:
    """Knobs of the generator; the defaults are those published for SAM ViT-H.

    A randomly initialised or small model predicts low IoUs: lower ``pred_iou_thresh`` and
    ``stability_score_thresh`` for it.
    """

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    min_mask_region_area: int = 0

    def __post_init__(self) -> None:
        if self.points_per_side < 1 or self.points_per_batch < 1:
            raise ConfigError("points_per_side and points_per_batch must be >= 1")
        if self.crop_n_layers < 0 or self.crop_n_points_downscale_factor < 1:
            raise ConfigError("crop_n_layers must be >= 0, crop_n_points_downscale_factor >= 1")
        if self.min_mask_region_area < 0:
            raise ConfigError("min_mask_region_area must be >= 0")


@dataclass
class AutoMask:
    """One automatic mask.

    Attributes:
        rle: COCO run-length encoding of the (H, W) mask, compressed ``counts`` string.
        area: foreground pixels.
        bbox: x, y, width, height of the foreground, in pixels.
        predicted_iou, stability_score: the scores it was kept for.
        point: the x, y prompt that produced it, in image pixels.
        crop_box: x0, y0, x1, y1 of the crop it was found in.
    """

    rle: dict
    area: int
    bbox: tuple[int, int, int, int]
    predicted_iou: float
    stability_score: float
    point: tuple[float, float]
    crop_box: tuple[int, int, int, int]

    def mask(self) -> np.ndarray:
        """(H, W) bool."""
        return decode_rle(self.rle)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


class AutomaticMaskGenerator:
    """Masks for everything in an image, from a grid of point prompts.

    Args:
        predictor: a :class:`PromptablePredictor`; ``generate`` replaces its current image.
        settings: an :class:`AutoMaskSettings`; keyword arguments override single fields.
    """

    def __init__(
        self,
        predictor: PromptablePredictor,
        settings: AutoMaskSettings | None = None,
        **overrides: int | float,
    ) -> None:
        self.predictor = predictor
        self.settings = dataclasses.replace(settings or AutoMaskSettings(), **overrides)

    def generate(self, image: ImageSource, *, progress: bool = False) -> list[AutoMask]:
        """All kept masks of ``image``, sorted by predicted IoU, best first."""
        rgb = load_image(image)
        size = rgb.shape[:2]
        records: list[_Candidate] = []
        crops = crop_boxes(size, self.settings.crop_n_layers, self.settings.crop_overlap_ratio)
        for box, layer in tqdm(crops, desc="crops", disable=not progress or len(crops) == 1):
            records.extend(self._crop(rgb, box, layer))
        if len(crops) > 1 and records:  # across crops, prefer the masks of smaller crops
            crop_area = torch.tensor([_area(r.crop_box) for r in records], dtype=torch.float32)
            keep = _nms([r.box for r in records], 1.0 / crop_area, self.settings.crop_nms_thresh)
            records = [records[i] for i in keep]
        if self.settings.min_mask_region_area > 0 and records:
            records = self._clean_up(records)
        records.sort(key=lambda r: -r.predicted_iou)
        return [r.finish() for r in records]

    def _crop(
        self, rgb: np.ndarray, box: tuple[int, int, int, int], layer: int
    ) -> list[_Candidate]:
        """Candidates of one crop, after the per-crop NMS."""
        cfg = self.settings
        x0, y0, x1, y1 = box
        self.predictor.set_image(rgb[y0:y1, x0:x1])
        crop_h, crop_w = y1 - y0, x1 - x0
        side = max(1, cfg.points_per_side // cfg.crop_n_points_downscale_factor**layer)
        points = point_grid(side) * np.array([crop_w, crop_h], dtype=np.float32)  # (n, 2)
        found: list[_Candidate] = []
        for start in range(0, len(points), cfg.points_per_batch):
            batch = points[start : start + cfg.points_per_batch]  # (B, 2) crop pixels
            found.extend(self._batch(batch, box, size=rgb.shape[:2]))
        if len(found) > 1:
            scores = torch.tensor([r.predicted_iou for r in found])
            keep = _nms([r.box for r in found], scores, cfg.box_nms_thresh)
            found = [found[i] for i in keep]
        return found

    def _batch(
        self, points: np.ndarray, crop_box: tuple[int, int, int, int], size: tuple[int, int]
    ) -> list[_Candidate]:
        """Candidates from (B, 2) point prompts in crop pixels that pass the filters."""
        cfg, predictor = self.settings, self.predictor
        prompts = predictor.prepare_prompts(points[:, None, :], np.ones((len(points), 1)))
        _, scores, low_res = predictor.predict_tensors(prompts, multimask=True, upscale=False)
        scores = scores.flatten()  # (B*K,)
        low_res = low_res.flatten(0, 1)  # (B*K, 4h, 4w)
        source = torch.arange(len(points)).repeat_interleave(low_res.shape[0] // len(points))
        keep = scores > cfg.pred_iou_thresh
        if not keep.any():
            return []
        logits = upscale_logits(  # (M, 1, h, w) at crop size, only for the candidates kept
            low_res[keep][:, None],
            input_size=predictor.input_size,
            original_size=predictor.original_size,
            image_size=predictor.config.image_size,
        )[:, 0]
        scores, source = scores[keep], source[keep.cpu()]
        threshold = predictor.config.mask_threshold
        stability = stability_scores(logits, threshold, cfg.stability_score_offset)
        masks = logits > threshold  # (M, h, w)
        x0, y0 = crop_box[:2]
        boxes = masks_to_boxes(masks) + torch.tensor([x0, y0, x0, y0], dtype=torch.float32)
        edge = box_near_crop_edge(boxes, crop_box, (0, 0, size[1], size[0]))
        keep = (stability >= cfg.stability_score_thresh) & ~edge & masks.flatten(1).any(dim=1)
        found = []
        for i in torch.nonzero(keep).flatten().tolist():
            full = np.zeros(size, dtype=bool)
            full[y0 : y0 + masks.shape[1], x0 : x0 + masks.shape[2]] = masks[i].cpu().numpy()
            point = points[int(source[i])] + np.array([x0, y0], dtype=np.float32)
            found.append(
                _Candidate(
                    rle=encode_rle(full),
                    area=int(full.sum()),
                    box=boxes[i].tolist(),
                    predicted_iou=float(scores[i]),
                    stability_score=float(stability[i]),
                    point=(float(point[0]), float(point[1])),
                    crop_box=tuple(int(v) for v in crop_box),
                )
            )
        return found

    def _clean_up(self, records: list[_Candidate]) -> list[_Candidate]:
        """Fill small holes, drop small islands; NMS then prefers the masks left unchanged."""
        area = self.settings.min_mask_region_area
        changed_flags = []
        for record in records:
            mask = decode_rle(record.rle)
            mask, filled = remove_small_regions(mask, area, fill_holes=True)
            mask, pruned = remove_small_regions(mask, area, fill_holes=False)
            changed = filled or pruned
            changed_flags.append(changed)
            if changed:
                record.rle = encode_rle(mask)
                record.area = int(mask.sum())
                box = masks_to_boxes(torch.from_numpy(mask)[None])[0]
                record.box = box.tolist()
        scores = torch.tensor([0.0 if c else 1.0 for c in changed_flags])
        keep = _nms([r.box for r in records], scores, self.settings.box_nms_thresh)
        return [records[i] for i in keep if records[i].area > 0]


@dataclass
class _Candidate:
    rle: dict
    area: int
    box: list[float]  # x0, y0, x1, y1 inclusive, image pixels
    predicted_iou: float
    stability_score: float
    point: tuple[float, float]
    crop_box: tuple[int, int, int, int]

    def finish(self) -> AutoMask:
        x0, y0, x1, y1 = (int(v) for v in self.box)
        return AutoMask(
            rle=self.rle,
            area=self.area,
            bbox=(x0, y0, x1 - x0 + 1, y1 - y0 + 1),
            predicted_iou=self.predicted_iou,
            stability_score=self.stability_score,
            point=self.point,
            crop_box=self.crop_box,
        )


# -- pure helpers ---------------------------------------------------------------------------------
def point_grid(side: int) -> np.ndarray:
    """(side * side, 2) x, y in (0, 1): the centres of a side x side grid of cells."""
    centres = (np.arange(side, dtype=np.float32) + 0.5) / side
    xs, ys = np.meshgrid(centres, centres)  # (side, side) each
    return np.stack([xs.reshape(-1), ys.reshape(-1)], axis=1)


def crop_boxes(
    size: tuple[int, int], n_layers: int, overlap_ratio: float
) -> list[tuple[tuple[int, int, int, int], int]]:
    """Crops as ((x0, y0, x1, y1), layer): layer 0 is the whole image, layer i an overlapping
    2^i x 2^i tiling whose overlap is ``overlap_ratio`` of the short side, scaled by 2 / 2^i."""
    height, width = size
    crops = [((0, 0, width, height), 0)]
    for layer in range(1, n_layers + 1):
        per_side = 2**layer
        overlap = int(overlap_ratio * min(height, width) * 2 / per_side)
        crop_w = math.ceil((overlap * (per_side - 1) + width) / per_side)
        crop_h = math.ceil((overlap * (per_side - 1) + height) / per_side)
        for i in range(per_side):
            for j in range(per_side):
                x0, y0 = int((crop_w - overlap) * j), int((crop_h - overlap) * i)
                crops.append(((x0, y0, min(x0 + crop_w, width), min(y0 + crop_h, height)), layer))
    return crops


def stability_scores(logits: torch.Tensor, threshold: float, offset: float) -> torch.Tensor:
    """(N, H, W) logits -> (N,) |logits > t + offset| / |logits > t - offset| (0 when empty)."""
    inner = (logits > threshold + offset).flatten(1).sum(dim=1).float()
    outer = (logits > threshold - offset).flatten(1).sum(dim=1).float()
    return torch.where(outer > 0, inner / outer.clamp(min=1), torch.zeros_like(outer))


def box_near_crop_edge(
    boxes: torch.Tensor,
    crop_box: Sequence[int],
    image_box: Sequence[int],
    atol: float = EDGE_TOLERANCE_PX,
) -> torch.Tensor:
    """(N, 4) boxes in image pixels -> (N,) True where a box touches a crop edge that is not
    also an image edge (the mask is probably cut off by the crop)."""
    crop = torch.tensor(crop_box, dtype=torch.float32)
    image = torch.tensor(image_box, dtype=torch.float32)
    near_crop = torch.isclose(boxes, crop[None], atol=atol, rtol=0)
    near_image = torch.isclose(boxes, image[None], atol=atol, rtol=0)
    return (near_crop & ~near_image).any(dim=1)


def remove_small_regions(
    mask: np.ndarray, area: int, *, fill_holes: bool
) -> tuple[np.ndarray, bool]:
    """Fill holes (``fill_holes``) or drop islands smaller than ``area`` pixels, 8-connected.

    Dropping never removes every island: when all are small the largest stays.
    Returns the new (H, W) bool mask and whether it changed.
    """
    regions, count = ndimage.label(~mask if fill_holes else mask, structure=np.ones((3, 3)))
    if count == 0:
        return mask, False
    sizes = np.bincount(regions.ravel())[1:]  # (count,)
    small = np.flatnonzero(sizes < area) + 1  # region ids
    if not fill_holes and len(small) == count:
        small = small[small != int(np.argmax(sizes)) + 1]
    if len(small) == 0:
        return mask, False
    touched = np.isin(regions, small)
    return (mask | touched) if fill_holes else (mask & ~touched), True


def class_map(masks: Sequence[AutoMask], size: tuple[int, int]) -> np.ndarray:
    """(H, W) int64: pixel -> 1 + index of the mask it shows, 0 where none does.

    Larger masks are painted first, so a small mask on top of a large one stays visible and no
    pixel holds two ids.
    """
    out = np.zeros(size, dtype=np.int64)
    for index in sorted(range(len(masks)), key=lambda i: -masks[i].area):
        out[masks[index].mask()] = index + 1
    return out


def encode_rle(mask: np.ndarray) -> dict:
    """(H, W) bool -> COCO RLE dict with a compressed ``counts`` string (JSON-ready)."""
    if _coco_mask is None:
        return mask_to_rle(mask)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        rle = _coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict) -> np.ndarray:
    """COCO RLE dict -> (H, W) bool."""
    if _coco_mask is None or not isinstance(rle.get("counts"), str):
        return rle_to_mask(rle)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        coded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
        return _coco_mask.decode(coded).astype(bool)


def _area(box: Sequence[int]) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))


def _nms(boxes: list[list[float]], scores: torch.Tensor, threshold: float) -> list[int]:
    """Indices kept by box NMS, highest score first."""
    tensor = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    groups = torch.zeros(len(tensor), dtype=torch.int64)
    return batched_nms(tensor, scores.float(), groups, threshold).tolist()
