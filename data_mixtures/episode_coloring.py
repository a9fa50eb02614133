"""Random in-context colouring: distinct random colours for selected labels, black elsewhere."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from painter.errors import ConfigError
from painter.palette import seggpt_palette

_CANDIDATES_PER_ROUND = 256
_ROUNDS_PER_THRESHOLD = 8


def random_palette(
    count: int,
    generator: np.random.Generator,
    *,
    min_distance: float = 60.0,
    min_brightness: float = 100.0,
) -> np.ndarray:
    """``count`` distinct random RGB colours, far from black and from each other.

    Colours are drawn uniformly and accepted greedily when their Euclidean distance (0..255
    scale) to black is at least ``min_brightness`` and to every accepted colour at least
    ``min_distance``. If that many colours do not fit, the distance is relaxed step by step
    (never below 1, so the colours always stay distinct).

    Returns:
        (count, 3) uint8.
    """
    if count < 0 or min_distance < 0 or not 0 <= min_brightness < 255 * np.sqrt(3):
        raise ConfigError("need count >= 0, min_distance >= 0 and min_brightness in [0, 441)")
    accepted: list[np.ndarray] = []
    distance = float(min_distance)
    while len(accepted) < count:
        for _ in range(_ROUNDS_PER_THRESHOLD):
            candidates = generator.integers(0, 256, (_CANDIDATES_PER_ROUND, 3)).astype(np.float64)
            candidates = candidates[np.linalg.norm(candidates, axis=1) >= min_brightness]
            for color in candidates:
                if all(np.linalg.norm(color - c) >= max(distance, 1.0) for c in accepted):
                    accepted.append(color)
                    if len(accepted) == count:
                        break
            if len(accepted) == count:
                break
        distance *= 0.8
    return np.asarray(accepted, dtype=np.uint8).reshape(count, 3)


def shuffled_seggpt_palette(count: int, generator: np.random.Generator) -> np.ndarray:
    """The ``count`` foreground colours that inference paints ``count`` classes with
    (``seggpt_palette``), in a random order: which label gets which colour changes per episode,
    so a colour still never names a category.

    Returns:
        (count, 3) uint8.
    """
    colors = seggpt_palette(count)[1:]  # (count, 3), black left out
    return colors[generator.permutation(count)]


def colorize(keys: np.ndarray, colors: Mapping[int, np.ndarray]) -> np.ndarray:
    """Paint a key map: each key in ``colours`` gets its colour, every other pixel black.

    Args:
        keys: (H, W) int64 label map.
        colours: key -> (3,) uint8 colour.

    Returns:
        (H, W, 3) uint8.
    """
    out = np.zeros((*keys.shape, 3), dtype=np.uint8)
    for key, color in colors.items():
        out[keys == key] = color
    return out
