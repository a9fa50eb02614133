"""Sharpen an in-context (SegGPT) class mask with the promptable decoder.

Every connected component of every class becomes one prompt row: its bounding box plus one
foreground point at its most interior pixel. Where the decoder trusts its single-mask output
(predicted IoU >= ``min_score``), that output replaces the component; other components stay as
they were. Where refined components overlap, the pixel goes to the one with the higher logit.

The score gate matters: with the demo models on held-out synthetic episodes
(``benchmarks/bench_refine.py``), SegGPT's masks score mIoU 0.401, refined without the gate
0.368 (the decoder turns wrong blobs into crisp wrong objects) and with ``min_score=0.8`` 0.419.

>>> seggpt_mask = seggpt_predictor.predict([prompt], [prompt_mask], [query])[0].mask
>>> refined = refine_mask(promptable_predictor, query, seggpt_mask)   # same ids, sharper edges
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from painter.errors import InputMismatchError, missing_dependency
from painter.io import ImageSource, load_image, mask_from_array
from painter.promptable.predictor import PromptablePredictor
from painter.promptable.transforms import mask_to_box

try:
    from scipy import ndimage
except ImportError as _err:
    raise missing_dependency("scipy", "app", "mask refinement") from _err

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)

#: Refined components whose predicted IoU is lower keep their original pixels. Chosen with the
#: open-set demo models on held-out same-look episodes, seed 20000 (benchmarks/bench_refine.py
#: --seed 20000 --sweep ...): 0.95, the best of 0.5-0.95 with the bundled SegGPT, whose guided
#: masks are sharper than the promptable demo model's, so only its surest masks may replace them
#: (0.7 with the same weights upsampled bilinearly; 0.8 with the earlier and closed-set models).
DEFAULT_MIN_SCORE = 0.95


@dataclass
class ComponentPrompt:
    """The prompt made from one connected component of one class.

    Attributes:
        class_id: the component's id in the class mask.
        box: (4,) x0, y0, x1, y1, inclusive pixel indices of its extent.
        point: (2,) x, y of its pixel farthest from the background.
        area: its pixel count.
    """

    class_id: int
    box: np.ndarray
    point: np.ndarray
    area: int


def component_prompts(mask: np.ndarray, *, min_area: int = 1) -> list[ComponentPrompt]:
    """One box + point prompt per 8-connected component of each non-zero class (pure).

    Args:
        mask: (H, W) integer class ids, 0 = background.
        min_area: components with fewer pixels are skipped.
    """
    return _prompts_of(_components(mask), min_area)


def _components(mask: np.ndarray) -> dict[int, np.ndarray]:
    """Class id -> (H, W) labels of its 8-connected components (0 elsewhere), ids ascending."""
    return {
        int(c): ndimage.label(mask == c, structure=EIGHT_CONNECTED)[0]
        for c in np.unique(mask)
        if c != 0
    }


def _prompts_of(components: dict[int, np.ndarray], min_area: int) -> list[ComponentPrompt]:
    prompts = []
    for class_id, regions in components.items():
        for region, slices in enumerate(ndimage.find_objects(regions), start=1):
            component = regions[slices] == region  # (h, w) inside its bounding box
            area = int(component.sum())
            if area < min_area:
                continue
            row, col = _interior_pixel(component)
            top, left = slices[0].start, slices[1].start
            box = mask_to_box(component) + np.array([left, top, left, top], dtype=np.float32)
            point = np.array([left + col, top + row], dtype=np.float32)
            prompts.append(ComponentPrompt(class_id, box, point, area))
    return prompts


def _interior_pixel(component: np.ndarray) -> tuple[int, int]:
    """(row, col) of the pixel farthest from the background; ties go to the one nearest the
    centre of mass, so symmetric shapes get their middle."""
    depth = ndimage.distance_transform_edt(np.pad(component, 1))[1:-1, 1:-1]
    rows, cols = np.nonzero(depth == depth.max())
    centre_row, centre_col = ndimage.center_of_mass(component)
    nearest = int(np.argmin((rows - centre_row) ** 2 + (cols - centre_col) ** 2))
    return int(rows[nearest]), int(cols[nearest])


def refine_mask(
    predictor: PromptablePredictor,
    image: ImageSource,
    mask: np.ndarray,
    *,
    min_area: int = 16,
    min_score: float = DEFAULT_MIN_SCORE,
    batch_size: int = 32,
) -> np.ndarray:
    """Refine an (H, W) class mask of ``image`` with the promptable model.

    Args:
        predictor: a :class:`PromptablePredictor`; its current image is replaced by ``image``.
        image: the image the mask belongs to (path, PIL image or array).
        mask: (H, W) integer class ids or bool, 0 = background.
        min_area: components smaller than this are kept as they are, not prompted.
        min_score: a component is replaced only if the decoder's predicted IoU for its refined
            mask is at least this; 0 replaces every prompted component.
        batch_size: prompt rows decoded per pass.
    Returns:
        (H, W) int64 class ids at the image's size, the input's ids.
    """
    rgb = load_image(image)
    ids = mask_from_array(np.asarray(mask), name="mask to refine")
    if ids.ndim != 2:
        raise InputMismatchError("refine_mask needs a class-index mask, not a colour mask")
    if ids.shape != rgb.shape[:2]:
        raise InputMismatchError(
            f"mask is {ids.shape[1]}x{ids.shape[0]} but the image is "
            f"{rgb.shape[1]}x{rgb.shape[0]} (width x height); they must match"
        )
    regions = _components(ids)  # class id -> (H, W) component labels
    prompts = _prompts_of(regions, min_area)
    refined = np.zeros_like(ids)
    kept = np.zeros(ids.shape, dtype=bool)  # pixels that keep their original class
    for class_id, labels in regions.items():  # components too small to prompt stay as they are
        sizes = np.bincount(labels.ravel())
        small = np.isin(labels, np.flatnonzero(sizes < min_area)) & (labels > 0)
        refined[small] = class_id
        kept |= small
    if not prompts:
        return refined

    predictor.set_image(rgb)
    best = torch.full(ids.shape, predictor.config.mask_threshold, device=predictor.device)
    winner = torch.full(ids.shape, -1, dtype=torch.int64, device=predictor.device)
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        rows = predictor.prepare_prompts(
            points=np.stack([p.point for p in chunk])[:, None],  # (B, 1, 2)
            labels=np.ones((len(chunk), 1), dtype=np.int64),
            box=np.stack([p.box for p in chunk]),  # (B, 4)
        )
        logits, scores, _ = predictor.predict_tensors(rows, multimask=False)  # (B, 1, H, W)
        trusted = scores[:, 0] >= min_score  # (B,)
        for prompt, ok in zip(chunk, trusted.tolist()):
            if not ok:  # the decoder is unsure: the component keeps its pixels
                x, y = prompt.point.astype(int)
                components = regions[prompt.class_id]
                component = components == components[y, x]
                refined[component] = prompt.class_id
                kept |= component
        masked = logits[:, 0].masked_fill(~trusted[:, None, None], float("-inf"))
        top, index = masked.max(dim=0)  # (H, W) each
        better = top > best
        best = torch.where(better, top, best)
        winner = torch.where(better, index + start, winner)
    class_of_row = np.array([p.class_id for p in prompts])
    chosen = winner.cpu().numpy()
    chosen_class = class_of_row[np.clip(chosen, 0, None)]  # (H, W)
    painted = (chosen >= 0) & ~kept
    refined[painted] = chosen_class[painted]
    return refined
