"""Palettes and conversions between class masks and the colour images SegGPT paints (pure).

SegGPT reads and writes masks as RGB images. A task with K classes is painted with the palette
of :func:`seggpt_palette` (the one Hugging Face's ``SegGptImageProcessor`` builds): id 0 is black,
ids 1..K get colours spread over an RGB grid. Before a call, :func:`prepare_prompt_masks`
turns the user's prompt masks (binary, class-index or colour) into such images and records how in
a :class:`PromptColoring`; after it, :func:`decode_painted` turns the painted output back into
class ids.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from painter.errors import InvalidMaskError
from painter.io import mask_from_array
from painter.palette import MAX_CLASSES, seggpt_palette

logger = logging.getLogger(__name__)

#: Official SegGPT rule for binary outputs: foreground where the RGB mean is above this.
BINARY_THRESHOLD = 128.0

_CHUNK_ELEMENTS = 1 << 22  # pixels x colours x 3 floats computed at once by color_to_index


class MaskKind(enum.Enum):
    """What kind of prompt masks a call was given."""

    BINARY = "binary"  # one foreground class, painted white on black
    INDEX = "index"  # (H, W) class ids; ids keep their values
    COLOR = "color"  # (H, W, 3) colour masks; each distinct colour is a class


@dataclass(frozen=True, eq=False)
class PromptColoring:
    """How the prompt masks of one call were painted, so the output can be read back.

    Attributes:
        palette: (K + 1, 3) uint8 colour of each class id, id 0 (background) black.
        num_classes: K, the number of foreground classes.
        class_values: K + 1 entries; ``class_values[i]`` is what class id ``i`` was in the user's
            masks: the id itself for BINARY and INDEX, an ``(r, g, b)`` tuple for COLOR.
        kind: the kind of the prompt masks.
        shown_ids: the ids some prompt actually shows (0 included); outputs are decoded to these
            only, so ids missing from the prompts (gaps like {0, 3}) never appear in a result.
            Empty means every id of the palette.
    """

    palette: np.ndarray
    num_classes: int
    class_values: tuple
    kind: MaskKind
    shown_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        palette = np.array(self.palette, dtype=np.uint8)  # a private, read-only copy
        if palette.shape != (self.num_classes + 1, 3):
            raise InvalidMaskError(
                f"palette has shape {palette.shape}; expected ({self.num_classes + 1}, 3)"
            )
        if len(self.class_values) != self.num_classes + 1:
            raise InvalidMaskError(
                f"{len(self.class_values)} class values for {self.num_classes + 1} class ids"
            )
        palette.setflags(write=False)
        object.__setattr__(self, "palette", palette)
        object.__setattr__(self, "class_values", tuple(self.class_values))


def index_to_color(index_map: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Paint a class-index map with a palette.

    Args:
        index_map: (H, W) integer or bool class ids in 0..K.
        palette: (K + 1, 3) uint8.

    Returns:
        (H, W, 3) uint8; for a binary map and ``seggpt_palette(1)``, white on black.
    """
    ids = np.asarray(index_map)
    if ids.ndim != 2 or ids.dtype.kind not in "biu":
        raise InvalidMaskError(
            f"index map has shape {ids.shape} and dtype {ids.dtype}; expected (H, W) integer ids"
        )
    colors = _check_palette(palette)
    if ids.size and (ids.min() < 0 or ids.max() >= len(colors)):
        raise InvalidMaskError(
            f"index map has ids {int(ids.min())}..{int(ids.max())} but the palette has "
            f"{len(colors)} colours (ids 0..{len(colors) - 1})"
        )
    return colors[ids.astype(np.intp)]  # (H, W, 3)


def color_to_index(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Class id of the nearest palette colour (squared L2), per pixel.

    Values are clipped to 0..255 first, as Hugging Face's post-processor does; ties go to the
    lower id. Work is split into chunks so large images never hold (H * W, K, 3) floats at once.

    Args:
        rgb: (H, W, 3) float or uint8 in 0..255.
        palette: (K + 1, 3) uint8.

    Returns:
        (H, W) int64.
    """
    pixels = np.asarray(rgb)
    if pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise InvalidMaskError(f"painted image has shape {pixels.shape}; expected (H, W, 3)")
    if pixels.dtype.kind == "f" and not np.isfinite(pixels).all():
        raise InvalidMaskError("painted image contains NaN or infinite values")
    colors = _check_palette(palette).astype(np.float32)  # (K + 1, 3)
    height, width = pixels.shape[:2]
    flat = np.clip(pixels.reshape(-1, 3).astype(np.float32), 0, 255)  # (H * W, 3)
    ids = np.empty(len(flat), dtype=np.int64)
    chunk = max(1, _CHUNK_ELEMENTS // (3 * len(colors)))
    for start in range(0, len(flat), chunk):
        part = flat[start : start + chunk]  # (M, 3)
        distance = ((part[:, None, :] - colors[None, :, :]) ** 2).sum(-1)  # (M, K + 1)
        ids[start : start + chunk] = distance.argmin(axis=1)
    return ids.reshape(height, width)  # (H, W)


def prepare_prompt_masks(
    masks: Sequence[np.ndarray],
) -> tuple[list[np.ndarray], PromptColoring]:
    """Paint the prompt masks of one call with the SegGPT palette.

    Each mask first goes through :func:`painter.io.mask_from_array` (so 0/255 masks become 0/1
    and grey RGB masks become class ids). Then all masks must share one kind:

    * class ids whose largest value over all prompts is 1: BINARY, painted white on black;
    * other class ids: INDEX, painted with ``seggpt_palette(max id over all prompts)``; ids keep
      their values, so id 3 is the same class in every prompt and in the output;
    * colour masks: COLOR; black is background 0, the other distinct colours over all prompts,
      sorted lexicographically, become ids 1..K and are repainted with the SegGPT palette.

    Args:
        masks: P arrays, each (H_p, W_p) class ids or (H_p, W_p, 3) colours.

    Returns:
        P (H_p, W_p, 3) uint8 colour masks, and the coloring to decode the output with.
    """
    if len(masks) == 0:
        raise InvalidMaskError("no prompt masks given; pass at least one")
    normalised = [mask_from_array(mask, name=f"prompt mask {i}") for i, mask in enumerate(masks)]
    color_prompts = [i for i, mask in enumerate(normalised) if mask.ndim == 3]
    if 0 < len(color_prompts) < len(normalised):
        index_prompts = [i for i, mask in enumerate(normalised) if mask.ndim == 2]
        raise InvalidMaskError(
            f"prompt masks {color_prompts} are colour masks but {index_prompts} are class-id "
            "maps; give all prompts of one call in the same form"
        )
    for i, mask in enumerate(normalised):
        if not mask.any():
            raise InvalidMaskError(
                f"prompt mask {i} is empty (no foreground pixel); give a prompt that shows the "
                "object, or drop that prompt"
            )
    if color_prompts:
        return _prepare_color_masks(normalised)
    num_classes = max(int(mask.max()) for mask in normalised)
    if num_classes > MAX_CLASSES:
        raise InvalidMaskError(
            f"mask has {num_classes} classes (ids keep their values, so the largest id counts), "
            f"at most {MAX_CLASSES} can be painted distinctly; merge classes or split the task"
        )
    palette = seggpt_palette(num_classes)
    kind = MaskKind.BINARY if num_classes == 1 else MaskKind.INDEX
    shown = tuple(sorted({0}.union(*(np.unique(mask).tolist() for mask in normalised))))
    coloring = PromptColoring(palette, num_classes, tuple(range(num_classes + 1)), kind, shown)
    logger.debug("%d prompt masks, %s, %d classes", len(masks), kind.value, num_classes)
    return [index_to_color(mask, palette) for mask in normalised], coloring


def decode_painted(painted_rgb: np.ndarray, coloring: PromptColoring) -> np.ndarray:
    """Class ids of a painted output.

    BINARY: foreground where the mean over R, G and B is above 128, the rule of the official
    SegGPT inference code. INDEX and COLOR: the id of the nearest palette colour (among the ids
    the prompts show), as in
    :func:`color_to_index`; for INDEX these are the user's own ids, for COLOR look them up in
    ``coloring.class_values``.

    Args:
        painted_rgb: (H, W, 3) float in 0..255.
        coloring: what :func:`prepare_prompt_masks` returned for the call.

    Returns:
        (H, W) int64.
    """
    pixels = np.asarray(painted_rgb)
    if coloring.kind is MaskKind.BINARY:
        if pixels.ndim != 3 or pixels.shape[-1] != 3:
            raise InvalidMaskError(f"painted image has shape {pixels.shape}; expected (H, W, 3)")
        mean = pixels.astype(np.float64).mean(axis=-1)  # (H, W)
        return (mean > BINARY_THRESHOLD).astype(np.int64)
    if coloring.shown_ids:
        ids = np.asarray(coloring.shown_ids, dtype=np.int64)
        return ids[color_to_index(pixels, coloring.palette[ids])]
    return color_to_index(pixels, coloring.palette)


def _prepare_color_masks(masks: list[np.ndarray]) -> tuple[list[np.ndarray], PromptColoring]:
    """Number the distinct colours of (H, W, 3) uint8 masks and repaint them."""
    codes = [_color_codes(mask) for mask in masks]  # each (H, W) int64
    distinct = np.unique(np.concatenate([code.ravel() for code in codes]))  # sorted; 0 = black
    foreground = distinct[distinct != 0]  # (K,) sorted lexicographically as (r, g, b)
    palette = seggpt_palette(len(foreground))
    painted = []
    for code in codes:
        ids = np.zeros(code.shape, dtype=np.int64)  # (H, W)
        nonzero = code != 0
        ids[nonzero] = np.searchsorted(foreground, code[nonzero]) + 1
        painted.append(index_to_color(ids, palette))
    values = [(0, 0, 0)] + [(int(c >> 16), int((c >> 8) & 255), int(c & 255)) for c in foreground]
    coloring = PromptColoring(palette, len(foreground), tuple(values), MaskKind.COLOR)
    logger.debug("%d colour prompt masks, %d classes", len(masks), len(foreground))
    return painted, coloring


def _color_codes(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) int64 ``r << 16 | g << 8 | b``, ordered like (r, g, b)."""
    wide = rgb.astype(np.int64)
    return (wide[..., 0] << 16) | (wide[..., 1] << 8) | wide[..., 2]


def _check_palette(palette: np.ndarray) -> np.ndarray:
    colors = np.asarray(palette)
    if colors.ndim != 2 or colors.shape[1] != 3 or len(colors) == 0:
        raise InvalidMaskError(f"palette has shape {colors.shape}; expected (K + 1, 3)")
    return colors.astype(np.uint8)
