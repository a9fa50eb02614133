"""The palette SegGPT paints class masks with (the one Hugging Face's ``SegGptImageProcessor``
builds): id 0 black, ids 1..K spread over an RGB grid. Shared by inference (``seggpt.coloring``)
and training data (``data_mixtures.episode_coloring``)."""

from __future__ import annotations

import numpy as np

from painter.errors import InvalidMaskError

#: Smallest difference, per channel, between the levels that palette colours use. The painted
#: output is a regressed image, so colours closer than this are hard to tell apart.
MIN_LEVEL_GAP = 16
#: Largest grid base: colours use levels ``255 - i * (256 // base)``, at least MIN_LEVEL_GAP apart.
MAX_PALETTE_BASE = 256 // MIN_LEVEL_GAP
#: Most classes a palette can paint distinctly: the largest K with floor(K ** (1/3)) + 1 <= 16.
MAX_CLASSES = MAX_PALETTE_BASE**3 - 1


def seggpt_palette(num_labels: int) -> np.ndarray:
    """The palette of Hugging Face's ``SegGptImageProcessor`` for ``num_labels`` classes.

    Id 0 is black. With ``base = int(num_labels ** (1 / 3)) + 1`` (the same floating-point
    expression, so e.g. 64 gives base 4, not 5) and ``step = 256 // base``, id ``k >= 1`` is the
    base-``base`` number ``k - 1 = r * base**2 + g * base + b`` painted as
    ``(255 - r * step, 255 - g * step, 255 - b * step)``: id 1 is white, the blue level changes
    fastest.

    Returns:
        (num_labels + 1, 3) uint8.
    """
    if isinstance(num_labels, bool) or not isinstance(num_labels, (int, np.integer)):
        raise InvalidMaskError(f"num_labels must be an int, got {type(num_labels).__name__}")
    if num_labels < 0:
        raise InvalidMaskError(f"num_labels must be >= 0, got {num_labels}")
    if num_labels > MAX_CLASSES:
        raise InvalidMaskError(
            f"mask has {num_labels} classes, at most {MAX_CLASSES} can be painted distinctly; "
            "merge classes or split the task"
        )
    base = int(num_labels ** (1 / 3)) + 1
    step = 256 // base
    location = np.arange(int(num_labels), dtype=np.int64)  # (K,) = id - 1
    digits = np.stack([location // base**2, (location // base) % base, location % base], axis=1)
    colors = np.concatenate([np.zeros((1, 3), np.int64), 255 - digits * step])  # (K + 1, 3)
    return colors.astype(np.uint8)
