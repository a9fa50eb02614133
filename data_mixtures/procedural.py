"""Parametric shapes, procedural textures and backgrounds, each in named *families*.

A family is a generator of appearances: ``ShapeFamily.STAR`` draws stars with any number of
points and any inner radius, ``TextureFamily.STRIPES`` stripes of any angle, period and duty.
:func:`draw_shape_params` / :func:`draw_texture_params` pick one member of a family (a
*category* is a shape member x a texture member x colours), and :func:`shape_mask` /
:func:`render_texture` / :func:`render_background` draw it. The families are split into a
training space and held-out families (``TRAIN_*`` / ``HELD_OUT_*``) that no training episode
draws, so that held-out evaluation measures transfer to unseen kinds of shapes and textures.

All randomness comes from an explicit ``numpy.random.Generator``; everything is pure numpy/PIL.
"""

from __future__ import annotations

import enum
import math

import numpy as np
from PIL import Image, ImageDraw


class ShapeFamily(enum.Enum):
    POLYGON = "polygon"  # 3-8 vertices at random angles and radii
    STAR = "star"  # 4-9 points, random inner radius
    RING = "ring"  # annulus of a circle or regular polygon
    CROSS = "cross"  # plus sign, random arm width and length
    BLOB = "blob"  # smooth closed curve from a random radial Fourier series
    ELLIPSE = "ellipse"  # random aspect ratio
    HEART = "heart"
    CRESCENT = "crescent"  # a disk minus an offset disk
    ARROW = "arrow"  # shaft and head of random proportions
    CHEVRON = "chevron"  # a thick V of random opening and thickness


class TextureFamily(enum.Enum):
    SOLID = "solid"  # one colour with fine noise
    STRIPES = "stripes"
    DOTS = "dots"  # a regular lattice of discs
    CHECKER = "checker"
    GRADIENT = "gradient"  # linear blend of the two colours
    GRID = "grid"  # thin lines on a lattice
    CONCENTRIC = "concentric"  # rings around the object's centre
    BLOTCHES = "blotches"  # thresholded smooth noise (camouflage)
    WAVES = "waves"  # strongly undulating bands


class BackgroundFamily(enum.Enum):
    NOISY_FLAT = "noisy-flat"  # flat colour, clutter strokes, noise
    TEXTURED = "textured"  # a low-contrast training texture, clutter strokes
    SMOOTH_FIELD = "smooth-field"  # low-frequency colour field, no strokes


TRAIN_SHAPES = (
    ShapeFamily.POLYGON,
    ShapeFamily.STAR,
    ShapeFamily.RING,
    ShapeFamily.CROSS,
    ShapeFamily.BLOB,
    ShapeFamily.ELLIPSE,
)
HELD_OUT_SHAPES = (ShapeFamily.HEART, ShapeFamily.CRESCENT, ShapeFamily.ARROW, ShapeFamily.CHEVRON)
TRAIN_TEXTURES = (
    TextureFamily.SOLID,
    TextureFamily.STRIPES,
    TextureFamily.DOTS,
    TextureFamily.CHECKER,
    TextureFamily.GRADIENT,
    TextureFamily.GRID,
)
HELD_OUT_TEXTURES = (TextureFamily.CONCENTRIC, TextureFamily.BLOTCHES, TextureFamily.WAVES)
TRAIN_BACKGROUNDS = (BackgroundFamily.NOISY_FLAT, BackgroundFamily.TEXTURED)
HELD_OUT_BACKGROUNDS = (BackgroundFamily.SMOOTH_FIELD,)

_CIRCLE = 48  # vertices of a polygonal circle


# -- shapes -----------------------------------------------------------------------------------
def _circle(radius: float = 1.0, centre: tuple[float, float] = (0.0, 0.0), n: int = _CIRCLE):
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    return np.stack([centre[0] + radius * np.cos(t), centre[1] + radius * np.sin(t)], axis=1)


def draw_shape_params(family: ShapeFamily, generator: np.random.Generator) -> dict:
    """One member of ``family``: the parameters that fix its outline (up to pose and size)."""
    u = generator.uniform
    if family is ShapeFamily.POLYGON:
        n = int(generator.integers(3, 9))
        gaps = u(0.5, 1.5, n)
        angles = np.cumsum(gaps / gaps.sum() * 2 * math.pi)
        return {"angles": angles, "radii": u(0.6, 1.0, n)}
    if family is ShapeFamily.STAR:
        return {"points": int(generator.integers(4, 10)), "inner": u(0.3, 0.65)}
    if family is ShapeFamily.RING:
        sides = int(generator.integers(3, 9))
        return {"sides": _CIRCLE if sides == 3 else sides, "inner": u(0.35, 0.7)}
    if family is ShapeFamily.CROSS:
        return {"width": u(0.18, 0.45), "aspect": u(0.6, 1.0)}
    if family is ShapeFamily.BLOB:
        k = np.arange(2, 6)
        return {"k": k, "amp": u(0.0, 0.25, k.size) / np.sqrt(k - 1), "phase": u(0, 6.3, k.size)}
    if family is ShapeFamily.ELLIPSE:
        return {"aspect": u(0.35, 0.9)}
    if family is ShapeFamily.HEART:
        return {"stretch": u(0.8, 1.2)}
    if family is ShapeFamily.CRESCENT:
        return {"offset": u(0.35, 0.65), "bite": u(0.75, 1.0)}
    if family is ShapeFamily.ARROW:
        return {"shaft": u(0.3, 0.5), "head": u(0.7, 1.1), "head_len": u(0.35, 0.6)}
    if family is ShapeFamily.CHEVRON:
        return {"opening": u(0.6, 1.3), "thickness": u(0.4, 0.65)}
    raise ValueError(f"unknown shape family {family}")


def _shape_parts(family: ShapeFamily, p: dict) -> list[tuple[np.ndarray, int]]:
    """Polygons in unit coordinates (inside the unit disc), each with fill 1 (draw) or 0 (cut)."""
    if family is ShapeFamily.POLYGON:
        a, r = p["angles"], p["radii"]
        return [(np.stack([r * np.cos(a), r * np.sin(a)], axis=1), 1)]
    if family is ShapeFamily.STAR:
        n = p["points"]
        t = np.arange(2 * n) * math.pi / n
        r = np.where(np.arange(2 * n) % 2 == 0, 1.0, p["inner"])
        return [(np.stack([r * np.sin(t), -r * np.cos(t)], axis=1), 1)]
    if family is ShapeFamily.RING:
        outer = _circle(n=p["sides"])
        return [(outer, 1), (outer * p["inner"], 0)]
    if family is ShapeFamily.CROSS:
        w, h = p["width"], p["aspect"]
        xs = [-w, w, w, 1, 1, w, w, -w, -w, -1, -1, -w]
        ys = [-h, -h, -w, -w, w, w, h, h, w, w, -w, -w]
        return [(np.stack([xs, ys], axis=1).astype(np.float64), 1)]
    if family is ShapeFamily.BLOB:
        t = np.linspace(0, 2 * math.pi, 64, endpoint=False)
        r = 1.0 + (p["amp"][:, None] * np.cos(p["k"][:, None] * t + p["phase"][:, None])).sum(0)
        r = r / r.max()
        return [(np.stack([r * np.cos(t), r * np.sin(t)], axis=1), 1)]
    if family is ShapeFamily.ELLIPSE:
        return [(_circle() * [1.0, p["aspect"]], 1)]
    if family is ShapeFamily.HEART:
        t = np.linspace(0, 2 * math.pi, 64, endpoint=False)
        x = 16 * np.sin(t) ** 3 * p["stretch"]
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        pts = np.stack([x, y + 2.5], axis=1)
        return [(pts / np.abs(pts).max(), 1)]
    if family is ShapeFamily.CRESCENT:
        return [(_circle(), 1), (_circle(p["bite"], (p["offset"], -0.15)), 0)]
    if family is ShapeFamily.ARROW:
        s, hw, hl = p["shaft"] / 2, p["head"] / 2, p["head_len"]
        xs = [-1, 1 - 2 * hl, 1 - 2 * hl, 1, 1 - 2 * hl, 1 - 2 * hl, -1]
        ys = [-s, -s, -hw, 0, hw, s, s]
        return [(np.stack([xs, ys], axis=1).astype(np.float64), 1)]
    if family is ShapeFamily.CHEVRON:
        o, th = p["opening"], p["thickness"]
        tip = np.array([0.0, 0.8])
        left, right = np.array([-math.sin(o), 0.8 - 1.6 * math.cos(o / 2)]), None
        right = np.array([math.sin(o), left[1]])
        inner = np.array([0.0, 0.8 - th * 1.6])
        pts = np.stack([left, tip, right, right + [0, -th], inner, left + [0, -th]])
        pts = pts - pts.mean(axis=0)
        return [(pts / np.abs(pts).max(), 1)]
    raise ValueError(f"unknown shape family {family}")


def shape_mask(
    family: ShapeFamily,
    params: dict,
    *,
    size: tuple[int, int],
    centre: tuple[float, float],
    radius: float,
    rotation: float,
) -> np.ndarray:
    """(H, W) bool mask of the shape at ``centre`` (x, y pixels), ``radius`` pixels, rotated by
    ``rotation`` radians. Drawn at 2x and downsampled, so outlines are not jagged."""
    scale = 2
    height, width = size
    canvas = Image.new("L", (width * scale, height * scale), 0)
    draw = ImageDraw.Draw(canvas)
    c, s = math.cos(rotation), math.sin(rotation)
    rot = np.array([[c, -s], [s, c]])
    for points, fill in _shape_parts(family, params):
        xy = (points @ rot.T) * radius + np.asarray(centre)  # (N, 2) pixels
        draw.polygon([tuple(v) for v in (xy * scale).tolist()], fill=255 * fill)
    small = canvas.resize((width, height), Image.BILINEAR)
    return np.asarray(small) >= 128


# -- textures ---------------------------------------------------------------------------------
def draw_texture_params(family: TextureFamily, generator: np.random.Generator) -> dict:
    """One member of ``family``. Lengths are fractions of the image's shorter side."""
    u = generator.uniform
    angle = u(0, math.pi)
    if family is TextureFamily.SOLID:
        return {"grain": u(2.0, 10.0)}
    if family is TextureFamily.STRIPES:
        return {"angle": angle, "period": u(0.04, 0.12), "duty": u(0.3, 0.7)}
    if family is TextureFamily.DOTS:
        return {"angle": angle, "period": u(0.05, 0.12), "radius": u(0.2, 0.4)}
    if family is TextureFamily.CHECKER:
        return {"angle": angle, "period": u(0.05, 0.14)}
    if family is TextureFamily.GRADIENT:
        return {"angle": u(0, 2 * math.pi), "length": u(0.15, 0.5)}
    if family is TextureFamily.GRID:
        return {"angle": angle, "period": u(0.05, 0.12), "line": u(0.15, 0.3)}
    if family is TextureFamily.CONCENTRIC:
        return {"period": u(0.04, 0.1), "duty": u(0.35, 0.65)}
    if family is TextureFamily.BLOTCHES:
        return {
            "scale": u(0.05, 0.12),
            "level": u(-0.3, 0.3),
            "seed": int(generator.integers(1 << 30)),
        }
    if family is TextureFamily.WAVES:
        return {"angle": angle, "period": u(0.05, 0.12), "amp": u(0.4, 1.0), "wave": u(0.15, 0.35)}
    raise ValueError(f"unknown texture family {family}")


def _smooth_field(
    shape: tuple[int, int], cell: float, generator: np.random.Generator
) -> np.ndarray:
    """(H, W) smooth noise in about [-1, 1]: a coarse random lattice, bicubic-upsampled."""
    height, width = shape
    rows, cols = max(2, round(height / cell) + 2), max(2, round(width / cell) + 2)
    coarse = generator.standard_normal((rows, cols)).astype(np.float32)
    big = Image.fromarray(coarse, mode="F").resize(
        (round(cols * cell), round(rows * cell)), Image.BICUBIC
    )
    field = np.asarray(big)[:height, :width]
    return np.clip(field / (field.std() + 1e-6) / 2.0, -1.5, 1.5)


def render_texture(
    family: TextureFamily,
    params: dict,
    colors: np.ndarray,
    *,
    size: tuple[int, int],
    centre: tuple[float, float],
    rotation: float,
    generator: np.random.Generator,
    side: float | None = None,
) -> np.ndarray:
    """(H, W, 3) float32 texture of ``size``, in the two ``colours`` (2, 3), positioned relative
    to the object (``centre`` in x, y pixels, ``rotation`` radians). Lengths in ``params`` are
    fractions of ``side`` (default: the shorter side of ``size``; pass the whole image's when
    drawing a crop of it)."""
    height, width = size
    side = float(min(height, width) if side is None else side)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    dx, dy = xs - centre[0], ys - centre[1]
    angle = params.get("angle", 0.0) + rotation
    u = (dx * math.cos(angle) + dy * math.sin(angle)) / side  # along the pattern, image units
    v = (-dx * math.sin(angle) + dy * math.cos(angle)) / side
    if family is TextureFamily.SOLID:
        weight = np.zeros(size, np.float32)
    elif family is TextureFamily.STRIPES:
        weight = ((u / params["period"]) % 1.0 < params["duty"]).astype(np.float32)
    elif family is TextureFamily.DOTS:
        fu, fv = (u / params["period"]) % 1.0 - 0.5, (v / params["period"]) % 1.0 - 0.5
        weight = (np.hypot(fu, fv) < params["radius"]).astype(np.float32)
    elif family is TextureFamily.CHECKER:
        cells = np.floor(u / params["period"]) + np.floor(v / params["period"])
        weight = (cells % 2).astype(np.float32)
    elif family is TextureFamily.GRADIENT:
        weight = np.clip(0.5 + u / (2 * params["length"]), 0.0, 1.0)
    elif family is TextureFamily.GRID:
        fu, fv = (u / params["period"]) % 1.0, (v / params["period"]) % 1.0
        weight = ((fu < params["line"]) | (fv < params["line"])).astype(np.float32)
    elif family is TextureFamily.CONCENTRIC:
        radius = np.hypot(dx, dy) / side
        weight = ((radius / params["period"]) % 1.0 < params["duty"]).astype(np.float32)
    elif family is TextureFamily.BLOTCHES:
        own = np.random.default_rng(params["seed"])  # the same blotches for the same member
        field = _smooth_field(size, params["scale"] * side, own)
        weight = (field > params["level"]).astype(np.float32)
    elif family is TextureFamily.WAVES:
        bend = params["amp"] * params["period"] * np.sin(2 * math.pi * v / params["wave"])
        weight = (((u + bend) / params["period"]) % 1.0 < 0.5).astype(np.float32)
    else:
        raise ValueError(f"unknown texture family {family}")
    a, b = colors.astype(np.float32)
    texture = a * (1.0 - weight[..., None]) + b * weight[..., None]
    grain = params.get("grain", 3.0)
    return texture + generator.normal(0.0, grain, texture.shape).astype(np.float32)


# -- backgrounds ------------------------------------------------------------------------------
def random_color(generator: np.random.Generator, count: int = 1) -> np.ndarray:
    """(count, 3) float RGB colours, uniform in the cube."""
    return generator.uniform(0, 255, (count, 3))


def color_pair(generator: np.random.Generator, min_contrast: float = 60.0) -> np.ndarray:
    """(2, 3) two colours at least ``min_contrast`` apart (RGB distance), so patterns show."""
    for _ in range(50):
        pair = random_color(generator, 2)
        if np.linalg.norm(pair[0] - pair[1]) >= min_contrast:
            return pair
    return np.stack([pair[0], 255.0 - pair[0]])


def _strokes(image: np.ndarray, count: int, generator: np.random.Generator) -> np.ndarray:
    """Draw ``count`` random lines and small ellipses onto (H, W, 3) float image."""
    height, width = image.shape[:2]
    canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(count):
        color = tuple(int(c) for c in random_color(generator)[0])
        x0, x1 = generator.uniform(0, width, 2)
        y0, y1 = generator.uniform(0, height, 2)
        if generator.random() < 0.5:
            draw.line([(x0, y0), (x1, y1)], fill=color, width=int(generator.integers(1, 4)))
        else:
            r = generator.uniform(0.01, 0.04) * min(height, width)
            draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=color)
    return np.asarray(canvas).astype(np.float32)


def render_background(
    family: BackgroundFamily,
    *,
    size: tuple[int, int],
    generator: np.random.Generator,
    strokes: tuple[int, int] = (2, 10),
) -> np.ndarray:
    """(H, W, 3) float32 background of ``family``."""
    height, width = size
    if family is BackgroundFamily.NOISY_FLAT:
        image = np.broadcast_to(random_color(generator)[0], (height, width, 3)).astype(np.float32)
        image = image + generator.normal(0, 8.0, image.shape).astype(np.float32)
    elif family is BackgroundFamily.TEXTURED:
        texture = TRAIN_TEXTURES[int(generator.integers(len(TRAIN_TEXTURES)))]
        base = random_color(generator)[0]
        colors = np.stack([base, np.clip(base + generator.normal(0, 30, 3), 0, 255)])
        image = render_texture(
            texture,
            draw_texture_params(texture, generator),
            colors,
            size=size,
            centre=(width / 2, height / 2),
            rotation=0.0,
            generator=generator,
        )
    elif family is BackgroundFamily.SMOOTH_FIELD:
        cell = generator.uniform(0.2, 0.5) * min(height, width)
        fields = np.stack([_smooth_field(size, cell, generator) for _ in range(3)], axis=-1)
        image = random_color(generator)[0] + 60.0 * fields
        return image.astype(np.float32)
    else:
        raise ValueError(f"unknown background family {family}")
    return _strokes(image, int(generator.integers(strokes[0], strokes[1] + 1)), generator)
