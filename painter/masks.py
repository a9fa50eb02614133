"""COCO segmentation decoding in numpy: polygons and run-length encodings (pure functions).

COCO stores one object's mask either as polygons (``[[x0, y0, x1, y1, ...], ...]``, the union of
the parts) or as a run-length encoding ``{"size": [h, w], "counts": ...}`` over the mask in
column-major order, starting with a run of zeros. ``counts`` is a list of ints (uncompressed) or
a string (compressed: each count, from the fourth on as a difference to the count two before,
written as little-endian groups of 5 bits in characters offset by 48, bit 0x20 meaning "more
groups follow" and bit 0x10 of the last group carrying the sign).

When pycocotools is installed ``decode_segmentation`` can use it instead; both agree exactly on
run-length encodings and nearly on polygons (pixel-centre sampling here; pycocotools rasterises
its own way, so diagonal edges may differ by a pixel).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from painter.errors import InvalidMaskError


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons (union of the parts) with the even-odd rule.

    A pixel ``(x, y)`` covers ``[x, x+1) x [y, y+1)`` and is inside when its centre
    ``(x + 0.5, y + 0.5)`` is; edges are half-open, so an axis-aligned rectangle from ``x0`` to
    ``x1`` covers exactly ``x1 - x0`` columns.

    Args:
        polygons: each a flat list ``[x0, y0, x1, y1, ...]`` of at least 3 points.
        height, width: mask size in pixels.

    Returns:
        (height, width) bool.
    """
    mask = np.zeros((height, width), dtype=bool)
    for polygon in polygons:
        points = np.asarray(polygon, dtype=np.float64)
        if points.ndim != 1 or points.size < 6 or points.size % 2:
            raise InvalidMaskError(
                f"a COCO polygon needs an even number (>= 6) of coordinates, got {points.size}"
            )
        mask |= _fill_polygon(points.reshape(-1, 2), height, width)
    return mask


def _fill_polygon(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """(E, 2) vertices (x, y) -> (height, width) bool, by pairing sorted row crossings."""
    x0, y0 = points[:, 0], points[:, 1]  # (E,)
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)  # (E,) the other end of each edge
    centres = np.arange(height, dtype=np.float64)[:, None] + 0.5  # (H, 1)
    crosses = (centres >= np.minimum(y0, y1)) & (centres < np.maximum(y0, y1))  # (H, E)
    dy = np.where(y1 == y0, 1.0, y1 - y0)  # horizontal edges never cross
    crossing_x = x0 + (centres - y0) / dy * (x1 - x0)  # (H, E)
    crossing_x = np.sort(np.where(crosses, crossing_x, np.inf), axis=1)  # (H, E)
    if crossing_x.shape[1] % 2:
        crossing_x = np.pad(crossing_x, ((0, 0), (0, 1)), constant_values=np.inf)
    starts, ends = crossing_x[:, 0::2], crossing_x[:, 1::2]  # (H, E/2) inside spans
    spans = np.isfinite(starts) & np.isfinite(ends)  # (H, E/2)
    rows = np.broadcast_to(np.arange(height)[:, None], starts.shape)[spans]  # (S,)
    # pixel x is inside a span [a, b) when a <= x + 0.5 < b, i.e. ceil(a - .5) <= x < ceil(b - .5)
    first = np.clip(np.ceil(starts[spans] - 0.5), 0, width).astype(np.int64)  # (S,)
    stop = np.clip(np.ceil(ends[spans] - 0.5), 0, width).astype(np.int64)  # (S,)
    edges = np.zeros((height, width + 1), dtype=np.int64)
    np.add.at(edges, (rows, first), 1)
    np.add.at(edges, (rows, stop), -1)
    return np.cumsum(edges[:, :width], axis=1) > 0  # (H, W)


def decode_rle_string(counts: str | bytes) -> list[int]:
    """Compressed COCO RLE string -> list of run lengths."""
    text = counts.decode("ascii") if isinstance(counts, bytes) else counts
    values: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(text):
                raise InvalidMaskError("compressed RLE string ends in the middle of a count")
            group = ord(text[position]) - 48
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            position += 1
            shift += 5
            if not more and group & 0x10:
                value |= -1 << shift  # sign-extend a negative difference
        if len(values) > 2:
            value += values[-2]
        values.append(value)
    return values


def encode_rle_string(counts: Sequence[int]) -> str:
    """List of run lengths -> compressed COCO RLE string (inverse of ``decode_rle_string``)."""
    chars: list[str] = []
    for i, count in enumerate(counts):
        value = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            group = value & 0x1F
            value >>= 5
            more = value != -1 if group & 0x10 else value != 0
            chars.append(chr(group + (0x20 if more else 0) + 48))
    return "".join(chars)


def rle_to_mask(rle: dict) -> np.ndarray:
    """COCO RLE dict (``size`` [h, w], ``counts`` list or string) -> (h, w) bool."""
    try:
        height, width = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidMaskError(f"RLE needs 'size' [h, w] and 'counts', got {rle!r:.80}") from error
    runs = decode_rle_string(counts) if isinstance(counts, (str, bytes)) else list(counts)
    runs_array = np.asarray(runs, dtype=np.int64)
    if (runs_array < 0).any() or runs_array.sum() != height * width:
        raise InvalidMaskError(
            f"RLE counts sum to {int(runs_array.sum())}, expected h*w = {height * width}"
        )
    values = np.arange(len(runs_array)) % 2 == 1  # runs alternate 0, 1, 0, ...
    flat = np.repeat(values, runs_array)  # (h*w,) column-major
    return np.ascontiguousarray(flat.reshape(width, height).T)  # (h, w)


def mask_to_rle(mask: np.ndarray, *, compressed: bool = True) -> dict:
    """(h, w) bool mask -> COCO RLE dict (compressed string counts or an int list)."""
    height, width = mask.shape
    flat = np.asarray(mask, dtype=bool).T.reshape(-1)  # (h*w,) column-major
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]  # counts always start with a run of zeros
    counts: str | list[int] = encode_rle_string(runs) if compressed else runs
    return {"size": [height, width], "counts": counts}


def decode_segmentation(
    segmentation: object, height: int, width: int, *, use_pycocotools: bool = False
) -> np.ndarray:
    """A COCO ``segmentation`` field (polygons or RLE) -> (height, width) bool."""
    if use_pycocotools:
        from pycocotools import mask as mask_utils

        with warnings.catch_warnings():
            # pycocotools 2.0.x trips numpy 2's __array__(copy=...) deprecation internally
            warnings.simplefilter("ignore", DeprecationWarning)
            if isinstance(segmentation, list):
                rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
            elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
                rle = mask_utils.frPyObjects(segmentation, height, width)
            else:
                rle = segmentation
            return mask_utils.decode(rle).astype(bool)
    if isinstance(segmentation, list):
        return polygons_to_mask(segmentation, height, width)
    if isinstance(segmentation, dict):
        mask = rle_to_mask(segmentation)
        if mask.shape != (height, width):
            raise InvalidMaskError(f"RLE size {mask.shape} differs from the image {height}x{width}")
        return mask
    raise InvalidMaskError(f"unknown COCO segmentation of type {type(segmentation).__name__}")
