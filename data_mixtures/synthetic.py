"""Procedural segmentation data whose categories are a SHAPE and a TEXTURE, never a colour.

Every object gets its own random colours, so a category can only be recognised by its outline
(circle, square, triangle, star, ring, cross, ...) and its fill pattern (stripes, dots, checker,
noisy solid). Each image holds several instances of a few categories, some distractor objects
(shape/texture combinations that are never labelled), a cluttered noisy background, and
occlusion (objects drawn later cover earlier ones). Record ``i`` of ``SyntheticSource(config,
seed=s)`` is a pure function of ``(s, i)`` and the config, for any image size.
"""

from __future__ import annotations

import enum
import itertools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from data_mixtures.records import SegRecord, SegType
from data_mixtures.sources.base import RecordSource
from painter.errors import ConfigError


class Shape(enum.Enum):
    CIRCLE = "circle"
    SQUARE = "square"
    TRIANGLE = "triangle"
    STAR = "star"
    RING = "ring"
    CROSS = "cross"
    DIAMOND = "diamond"
    HEXAGON = "hexagon"


class Texture(enum.Enum):
    SOLID_NOISE = "solid-noise"
    STRIPES = "stripes"
    DOTS = "dots"
    CHECKER = "checker"


Category = tuple[Shape, Texture]

_LABELLED_SHAPES = (Shape.CIRCLE, Shape.SQUARE, Shape.TRIANGLE, Shape.STAR, Shape.RING, Shape.CROSS)
DEFAULT_CATEGORIES: tuple[Category, ...] = tuple(itertools.product(_LABELLED_SHAPES, Texture))
DEFAULT_DISTRACTORS: tuple[Category, ...] = tuple(
    itertools.product((Shape.DIAMOND, Shape.HEXAGON), Texture)
)


def category_name(category: Category) -> str:
    return f"{category[0].value}/{category[1].value}"


def _range_ok(bounds: tuple[float, float], low: float) -> bool:
    return len(bounds) == 2 and low <= bounds[0] <= bounds[1]


@dataclass(frozen=True)
class SyntheticConfig:
    """How synthetic images are drawn.

    Attributes:
        image_size: (H, W) in pixels.
        num_records: how many records the source has (any index below it is valid).
        categories: labelled categories; class id ``k + 1`` is ``categories[k]``.
        distractors: categories drawn but labelled background (must not overlap ``categories``).
        categories_per_image: inclusive range of labelled categories per image.
        instances_per_category: inclusive range of instances of each chosen category.
        distractors_per_image: inclusive range of distractor objects per image.
        object_size: inclusive range of the object radius as a fraction of min(H, W).
        max_rotation_deg: objects are rotated by at most this angle (small, so that a square
            stays distinct from a diamond).
        clutter_strokes: inclusive range of unlabelled lines and blobs on the background.
        noise_std: std of the pixel noise added to the whole image (0..255 scale).
        spacing: how far apart object centres are kept, as a fraction of the sum of the two
            radii (0: anywhere, so objects may hide each other almost entirely; ~0.8: they still
            overlap and occlude, but no object is reduced to a sliver). Best effort: a centre is
            redrawn up to 20 times.
        color_jitter: None (default): every object gets random colours, so only shape and
            texture tell categories apart. A number: each labelled category has its own pair of
            colours (fixed by its position in ``categories``) and every object's colours are
            that pair plus Gaussian noise of this std (0..255 scale), so the colour scheme is a
            cue too (an easier task). Distractors always get random colours.
    """

    image_size: tuple[int, int] = (224, 224)
    num_records: int = 10_000
    categories: tuple[Category, ...] = DEFAULT_CATEGORIES
    distractors: tuple[Category, ...] = DEFAULT_DISTRACTORS
    categories_per_image: tuple[int, int] = (1, 3)
    instances_per_category: tuple[int, int] = (1, 3)
    distractors_per_image: tuple[int, int] = (0, 2)
    object_size: tuple[float, float] = (0.1, 0.22)
    max_rotation_deg: float = 20.0
    clutter_strokes: tuple[int, int] = (4, 16)
    noise_std: float = 6.0
    spacing: float = 0.0
    color_jitter: float | None = None

    def __post_init__(self) -> None:
        height, width = self.image_size
        if min(height, width) < 16:
            raise ConfigError(f"synthetic image_size must be at least 16x16, got {self.image_size}")
        if self.num_records < 1:
            raise ConfigError(f"num_records must be >= 1, got {self.num_records}")
        if not self.categories:
            raise ConfigError("synthetic data needs at least one labelled category")
        overlap = set(self.categories) & set(self.distractors)
        if overlap or len(set(self.categories)) != len(self.categories):
            raise ConfigError(f"categories must be unique and not distractors: {overlap}")
        for name in ("categories_per_image", "instances_per_category"):
            if not _range_ok(getattr(self, name), 1):
                raise ConfigError(f"{name} must be (low, high) with 1 <= low <= high")
        for name in ("distractors_per_image", "clutter_strokes"):
            if not _range_ok(getattr(self, name), 0):
                raise ConfigError(f"{name} must be (low, high) with 0 <= low <= high")
        if not _range_ok(self.object_size, 0.02) or self.object_size[1] > 0.5:
            raise ConfigError(f"object_size must lie in [0.02, 0.5], got {self.object_size}")
        if self.color_jitter is not None and self.color_jitter < 0:
            raise ConfigError(f"color_jitter must be None or >= 0, got {self.color_jitter}")
        if self.noise_std < 0 or not 0 <= self.max_rotation_deg <= 45:
            raise ConfigError("noise_std must be >= 0 and max_rotation_deg in [0, 45]")
        if not 0 <= self.spacing <= 2:
            raise ConfigError(f"spacing must lie in [0, 2], got {self.spacing}")

    @property
    def class_names(self) -> tuple[str, ...]:
        return ("background", *(category_name(c) for c in self.categories))


@dataclass(frozen=True)
class _Placement:
    """One object to draw; ``class_id`` 0 marks a distractor."""

    category: Category
    class_id: int
    centre: tuple[float, float]  # (y, x)
    radius: float
    angle: float
    colors: np.ndarray  # (2, 3) float
    period: float
    phase: tuple[float, float]
    stripe_angle: float


def _contrasting_colors(rng: np.random.Generator) -> np.ndarray:
    """(2, 3) float: two random colours at least 90 apart, so every texture shows."""
    first = rng.uniform(0, 255, 3)
    for _ in range(32):
        second = rng.uniform(0, 255, 3)
        if np.linalg.norm(first - second) >= 90:
            break
    else:
        second = 255.0 - first
    return np.stack([first, second])


def _shape_mask(shape: Shape, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Inside test in the object frame; u, v are (h, w) offsets from the centre, y down."""
    rho = np.hypot(u, v)
    if shape is Shape.CIRCLE:
        return rho <= r
    if shape is Shape.SQUARE:
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8 * r
    if shape is Shape.DIAMOND:
        return np.abs(u) + np.abs(v) <= r
    if shape is Shape.RING:
        return (rho <= r) & (rho >= 0.55 * r)
    if shape is Shape.CROSS:
        arm = 0.3 * r
        return ((np.abs(u) <= arm) & (np.abs(v) <= r)) | ((np.abs(v) <= arm) & (np.abs(u) <= r))
    if shape is Shape.STAR:
        points = 5
        turn = ((np.arctan2(v, u) + math.pi / 2) * points / (2 * math.pi)) % 1.0  # 0 at a tip
        return rho <= r * (0.45 + 0.55 * np.abs(2 * turn - 1))
    sides = {Shape.TRIANGLE: 3, Shape.HEXAGON: 6}[shape]
    inside = np.ones(u.shape, dtype=bool)
    for k in range(sides):  # half-planes of a regular polygon with a vertex pointing up
        normal = -math.pi / 2 + math.pi / sides + 2 * math.pi * k / sides
        inside &= u * math.cos(normal) + v * math.sin(normal) <= r * math.cos(math.pi / sides)
    return inside


def _texture(
    place: _Placement, u: np.ndarray, v: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(h, w, 3) float fill in the object frame (the pattern turns with the object)."""
    texture = place.category[1]
    first, second = place.colors
    p, (phase_u, phase_v) = place.period, place.phase
    if texture is Texture.SOLID_NOISE:
        return first + rng.normal(0.0, 18.0, (*u.shape, 3))
    if texture is Texture.STRIPES:
        along = u * math.cos(place.stripe_angle) + v * math.sin(place.stripe_angle)
        pick = ((along / p + phase_u) % 1.0) < 0.5
    elif texture is Texture.DOTS:
        du, dv = (u / p + phase_u) % 1.0 - 0.5, (v / p + phase_v) % 1.0 - 0.5
        pick = du**2 + dv**2 <= 0.3**2
    else:  # CHECKER
        pick = (np.floor(u / p + phase_u) + np.floor(v / p + phase_v)) % 2 == 0
    return np.where(pick[..., None], first, second)  # (h, w, 3)


class SyntheticSource(RecordSource):
    """Procedural records with semantic and instance labels; record i depends only on (seed, i).

    Args:
        config: drawing parameters.
        seed: base seed; record ``i`` uses ``np.random.SeedSequence([seed, i])``.
        name: source name.
    """

    seg_types = frozenset({SegType.SEMANTIC, SegType.INSTANCE})

    def __init__(
        self, config: SyntheticConfig | None = None, *, seed: int = 0, name: str = "synthetic"
    ) -> None:
        super().__init__(name)
        self.config = config or SyntheticConfig()
        self.seed = seed

    def __len__(self) -> int:
        return self.config.num_records

    def _generators(self, index: int) -> tuple[np.random.Generator, np.random.Generator]:
        layout, render = np.random.SeedSequence([self.seed, index]).spawn(2)
        return np.random.default_rng(layout), np.random.default_rng(render)

    def _layout(self, rng: np.random.Generator) -> list[_Placement]:
        cfg = self.config
        height, width = cfg.image_size
        chosen: list[tuple[Category, int]] = []
        n_categories = min(
            rng.integers(*cfg.categories_per_image, endpoint=True), len(cfg.categories)
        )
        for k in rng.choice(len(cfg.categories), size=n_categories, replace=False):
            count = rng.integers(*cfg.instances_per_category, endpoint=True)
            chosen += [(cfg.categories[k], int(k) + 1)] * int(count)
        if cfg.distractors:
            n_distractors = rng.integers(*cfg.distractors_per_image, endpoint=True)
            for k in rng.integers(0, len(cfg.distractors), size=n_distractors):
                chosen.append((cfg.distractors[k], 0))
        placements = []
        max_angle = math.radians(cfg.max_rotation_deg)
        for position in rng.permutation(len(chosen)):
            category, class_id = chosen[position]
            radius = rng.uniform(*cfg.object_size) * min(height, width)
            placements.append(
                _Placement(
                    category=category,
                    class_id=class_id,
                    centre=self._centre(rng, radius, placements),
                    radius=radius,
                    angle=rng.uniform(-max_angle, max_angle),
                    colors=self._colors(class_id, rng),
                    period=max(3.0, rng.uniform(0.3, 0.5) * radius),
                    phase=(rng.uniform(), rng.uniform()),
                    stripe_angle=rng.uniform(0, math.pi),
                )
            )
        return placements

    def _centre(
        self, rng: np.random.Generator, radius: float, placed: list[_Placement]
    ) -> tuple[float, float]:
        """(y, x) of a new object, ``spacing`` away from the objects already placed."""
        height, width = self.config.image_size
        for _ in range(20 if self.config.spacing > 0 and placed else 1):
            centre = (rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width)
            if all(
                math.dist(centre, other.centre) >= self.config.spacing * (radius + other.radius)
                for other in placed
            ):
                break
        return centre

    def _colors(self, class_id: int, rng: np.random.Generator) -> np.ndarray:
        """(2, 3) float fill colours of one object of ``class_id`` (0: a distractor)."""
        jitter = self.config.color_jitter
        if jitter is None or class_id == 0:
            return _contrasting_colors(rng)
        scheme = _contrasting_colors(np.random.default_rng([7, class_id]))  # per category
        return np.clip(scheme + rng.normal(0.0, jitter, scheme.shape), 0, 255)

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        """(H, W, 3) float: gradient + low-frequency noise + clutter strokes."""
        height, width = self.config.image_size
        start, end = rng.uniform(0, 255, (2, 3))
        direction = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:height, 0:width] / max(height, width)  # (H, W) each
        ramp = (xx * math.cos(direction) + yy * math.sin(direction))[..., None]  # (H, W, 1)
        ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
        coarse = rng.normal(0.0, 30.0, (3, 5, 5)).astype(np.float32)
        blotches = np.stack(
            [
                np.asarray(Image.fromarray(c).resize((width, height), Image.BILINEAR))
                for c in coarse
            ],
            axis=-1,
        )  # (H, W, 3)
        base = np.clip(start + (end - start) * ramp + blotches, 0, 255).astype(np.uint8)
        canvas = Image.fromarray(base)
        draw = ImageDraw.Draw(canvas)
        size = min(height, width)
        for _ in range(rng.integers(*self.config.clutter_strokes, endpoint=True)):
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            y, x = rng.uniform(0, height), rng.uniform(0, width)
            if rng.random() < 0.6:
                length, angle = rng.uniform(0.05, 0.3) * size, rng.uniform(0, 2 * math.pi)
                end_xy = (x + length * math.cos(angle), y + length * math.sin(angle))
                draw.line([(x, y), end_xy], fill=color, width=int(rng.integers(1, 4)))
            else:
                r = rng.uniform(0.01, 0.04) * size
                draw.ellipse([x - r, y - r, x + r, y + r], fill=color)
        return np.asarray(canvas, dtype=np.float64)

    def load(self, index: int) -> SegRecord:
        cfg = self.config
        height, width = cfg.image_size
        layout_rng, render_rng = self._generators(index)
        placements = self._layout(layout_rng)
        image = self._background(render_rng)  # (H, W, 3) float
        semantic = np.zeros((height, width), dtype=np.int64)
        instance = np.zeros((height, width), dtype=np.int64)
        for number, place in enumerate(placements, start=1):
            (cy, cx), reach = place.centre, place.radius + 1.0
            top, bottom = max(0, int(cy - reach)), min(height, math.ceil(cy + reach) + 1)
            left, right = max(0, int(cx - reach)), min(width, math.ceil(cx + reach) + 1)
            if top >= bottom or left >= right:
                continue
            dy = np.arange(top, bottom)[:, None] + 0.5 - cy  # (h, 1)
            dx = np.arange(left, right)[None, :] + 0.5 - cx  # (1, w)
            cos, sin = math.cos(place.angle), math.sin(place.angle)
            u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # (h, w) object frame
            inside = _shape_mask(place.category[0], u, v, place.radius)  # (h, w)
            fill = _texture(place, u, v, render_rng)  # (h, w, 3)
            window = (slice(top, bottom), slice(left, right))
            image[window][inside] = fill[inside]
            semantic[window][inside] = place.class_id
            instance[window][inside] = number if place.class_id else 0
        image += render_rng.normal(0.0, cfg.noise_std, image.shape)
        # renumber the visible instances 1..N (fully covered ones disappear); 0 stays 0
        counts = np.bincount(instance.ravel(), minlength=len(placements) + 1)  # (n + 1,)
        visible = np.flatnonzero(counts[1:]) + 1
        renumber = np.zeros(len(counts), dtype=np.int64)
        renumber[visible] = np.arange(1, len(visible) + 1)
        return SegRecord(
            image=np.clip(np.rint(image), 0, 255).astype(np.uint8),
            semantic=semantic,
            instance=renumber[instance],
            class_names=cfg.class_names,
            source=self.name,
            key=str(index),
        )

    def sample_with_class(
        self, class_id: int, generator: np.random.Generator, *, exclude: int | None = None
    ) -> int | None:
        """A random record placing ``class_id``, by rejection over layouts (no full index)."""
        tries = 50 * len(self.config.categories)
        for _ in range(tries):
            index = int(generator.integers(len(self)))
            if index != exclude and class_id in self.record_classes(index):
                return index
        return None

    def record_classes(self, index: int) -> tuple[int, ...]:
        """Classes placed in record ``index`` (from its layout; nothing is drawn).

        An object can be hidden entirely by later ones, so a listed class may be absent from the
        drawn labels; samplers check the record they load.
        """
        layout_rng, _ = self._generators(self._check_index(index))
        return tuple(sorted({p.class_id for p in self._layout(layout_rng) if p.class_id}))
