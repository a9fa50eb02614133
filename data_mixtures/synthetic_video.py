"""A procedural multi-object video with per-frame ground truth, for tests, demos and benchmarks.

Textured shapes (the categories of :mod:`data_mixtures.synthetic`, or, with ``looks``, members of
the shape, texture and background families of an open-set config, e.g. the held-out families)
drift towards the middle of the frame, bounce off its edges and turn slowly, so they cross and
hide one another; unlabelled distractor shapes move among them. Object ``k`` (1..N) keeps its id
in every frame's mask; a hidden part is labelled with whatever covers it. The video is a pure
function of the config and the seed. :func:`save_davis` writes it in the DAVIS folder layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from data_mixtures.openset import draw_look, paint_look
from data_mixtures.openset_config import OpenSetConfig, held_out_config
from data_mixtures.procedural import render_background
from data_mixtures.synthetic import (
    DEFAULT_CATEGORIES,
    DEFAULT_DISTRACTORS,
    _contrasting_colors,
    _Placement,
    _shape_mask,
    _texture,
)
from painter.errors import ConfigError
from painter.io import save_image, save_index_mask

_LAYOUT_TRIES = 50
_MIN_VISIBLE = 0.3  # every object shows at least this share of its area in the first frame


@dataclass(frozen=True)
class SyntheticVideoConfig:
    """How the synthetic video is drawn.

    Attributes:
        num_frames: T, frames in the video (>= 3: DAVIS scoring skips the first and last).
        image_size: (H, W) in pixels.
        num_objects: labelled objects, ids 1..N.
        num_distractors: unlabelled moving shapes.
        object_size: inclusive range of the object radius as a fraction of min(H, W).
        speed: inclusive range of the speed, in fractions of min(H, W) per frame.
        max_spin_deg: largest rotation per frame, in degrees.
        noise_std: std of the per-frame pixel noise (0..255 scale).
        looks: None for the closed-set categories of :mod:`data_mixtures.synthetic` on a
            gradient background; an :class:`OpenSetConfig` to draw every object's outline,
            texture and colours and the background from its families instead (its image size
            and object sizes are not used).
    """

    num_frames: int = 24
    image_size: tuple[int, int] = (128, 128)
    num_objects: int = 3
    num_distractors: int = 1
    object_size: tuple[float, float] = (0.12, 0.2)
    speed: tuple[float, float] = (0.01, 0.03)
    max_spin_deg: float = 3.0
    noise_std: float = 4.0
    looks: OpenSetConfig | None = None

    def __post_init__(self) -> None:
        if self.num_frames < 3:
            raise ConfigError(f"num_frames must be >= 3, got {self.num_frames}")
        if min(self.image_size) < 16:
            raise ConfigError(f"image_size must be at least 16x16, got {self.image_size}")
        if not 1 <= self.num_objects <= 255 or self.num_distractors < 0:
            raise ConfigError("num_objects must be 1..255 and num_distractors >= 0")
        low, high = self.object_size
        if not 0.02 <= low <= high <= 0.4:
            raise ConfigError(f"object_size must lie in [0.02, 0.4], got {self.object_size}")
        if not 0 <= self.speed[0] <= self.speed[1] or self.noise_std < 0:
            raise ConfigError("speed must be (low, high) with 0 <= low <= high; noise_std >= 0")


@dataclass(frozen=True, eq=False)
class SyntheticVideo:
    """Frames and ground-truth masks.

    Attributes:
        name: the sequence name (the DAVIS folder name).
        frames: T frames, each (H, W, 3) uint8.
        masks: T object-id maps, each (H, W) int64 (0 background, 1..N objects).
        object_ids: the ids of the labelled objects, (1, ..., N).
    """

    name: str
    frames: tuple[np.ndarray, ...]
    masks: tuple[np.ndarray, ...]
    object_ids: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class _Mover:
    """One shape's look and motion; ``place.centre``/``place.angle`` are at frame 0."""

    place: _Placement
    velocity: tuple[float, float]  # (vy, vx) pixels per frame
    spin: float  # radians per frame
    look: object = None  # the open-set appearance (``config.looks``), else None
    texture_seed: int = 0  # the same texture noise in every frame


def _movers(config: SyntheticVideoConfig, rng: np.random.Generator) -> list[_Mover]:
    """Labelled objects (class_id = object id) and distractors (0), in drawing order."""
    height, width = config.image_size
    size = min(height, width)
    looks = [(DEFAULT_CATEGORIES, k) for k in range(1, config.num_objects + 1)]
    looks += [(DEFAULT_DISTRACTORS, 0)] * config.num_distractors
    movers = []
    for position in rng.permutation(len(looks)):  # random depth order
        categories, object_id = looks[position]
        radius = rng.uniform(*config.object_size) * size
        cy, cx = rng.uniform(radius, height - radius), rng.uniform(radius, width - radius)
        heading = math.atan2(height / 2 - cy, width / 2 - cx) + rng.uniform(-0.5, 0.5)
        speed = rng.uniform(*config.speed) * size
        place = _Placement(
            category=categories[int(rng.integers(len(categories)))],
            class_id=object_id,
            centre=(cy, cx),
            radius=radius,
            angle=rng.uniform(-0.3, 0.3),
            colors=_contrasting_colors(rng),
            period=max(3.0, rng.uniform(0.3, 0.5) * radius),
            phase=(rng.uniform(), rng.uniform()),
            stripe_angle=rng.uniform(0, math.pi),
        )
        spin = math.radians(rng.uniform(-config.max_spin_deg, config.max_spin_deg))
        velocity = (speed * math.sin(heading), speed * math.cos(heading))
        if config.looks is None:
            movers.append(_Mover(place, velocity, spin))
        else:
            look = draw_look(config.looks, rng)
            movers.append(_Mover(place, velocity, spin, look, int(rng.integers(2**31))))
    return movers


def _bounce(start: float, step: float, low: float, high: float) -> float:
    """Position after moving ``step`` from ``start`` between walls ``low`` and ``high``."""
    span = high - low
    if span <= 0:
        return low
    offset = (start - low + step) % (2 * span)  # unfold the reflections onto a 2*span circle
    return low + (offset if offset <= span else 2 * span - offset)


def _at_frame(mover: _Mover, t: int, size: tuple[int, int]) -> _Placement:
    place, (vy, vx) = mover.place, mover.velocity
    r = place.radius
    cy = _bounce(place.centre[0], vy * t, r, size[0] - r)
    cx = _bounce(place.centre[1], vx * t, r, size[1] - r)
    return replace(place, centre=(cy, cx), angle=place.angle + mover.spin * t)


def _background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) float: a two-colour gradient with smooth blotches."""
    height, width = size
    start, end = rng.uniform(0, 255, (2, 3))
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)  # (H, W) each
    direction = rng.uniform(0, 2 * math.pi)
    ramp = (xx * math.cos(direction) + yy * math.sin(direction))[..., None]  # (H, W, 1)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    coarse = rng.normal(0.0, 25.0, (3, 4, 4)).astype(np.float32)
    blotches = np.stack(
        [np.asarray(Image.fromarray(c).resize((width, height), Image.BILINEAR)) for c in coarse],
        axis=-1,
    )  # (H, W, 3)
    return np.clip(start + (end - start) * ramp + blotches, 0, 255)


def _draw_looks(
    background: np.ndarray, movers: list[_Mover], t: int, rng: np.random.Generator, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t`` of open-set movers (each ``look`` painted with its own texture seed)."""
    image = background.astype(np.float64)
    height, width = image.shape[:2]
    ids = np.zeros((height, width), dtype=np.int64)
    for mover in movers:
        place = _at_frame(mover, t, (height, width))
        texture_rng = np.random.default_rng(mover.texture_seed)
        (cy, cx), side = place.centre, min(height, width)
        mask = paint_look(
            image, mover.look, (cx, cy), place.radius, place.angle, texture_rng, side=side
        )
        ids[mask] = place.class_id
    image += rng.normal(0.0, noise, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), ids


def _frame(
    config: SyntheticVideoConfig,
    background: np.ndarray,
    movers: list[_Mover],
    t: int,
    rng: np.random.Generator,
    noise: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t``: (H, W, 3) uint8 image and (H, W) int64 object ids, later shapes on top."""
    if config.looks is not None:
        return _draw_looks(background, movers, t, rng, noise)
    return _draw(background, [_at_frame(m, t, config.image_size) for m in movers], rng, noise)


def _draw(
    background: np.ndarray, places: list[_Placement], rng: np.random.Generator, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """One frame: (H, W, 3) uint8 image and (H, W) int64 object ids, later shapes on top."""
    image = background.copy()
    height, width = image.shape[:2]
    ids = np.zeros((height, width), dtype=np.int64)
    for place in places:
        (cy, cx), reach = place.centre, place.radius + 1.0
        top, bottom = max(0, int(cy - reach)), min(height, math.ceil(cy + reach) + 1)
        left, right = max(0, int(cx - reach)), min(width, math.ceil(cx + reach) + 1)
        dy = np.arange(top, bottom)[:, None] + 0.5 - cy  # (h, 1)
        dx = np.arange(left, right)[None, :] + 0.5 - cx  # (1, w)
        cos, sin = math.cos(place.angle), math.sin(place.angle)
        u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # (h, w) object frame
        inside = _shape_mask(place.category[0], u, v, place.radius)  # (h, w)
        window = (slice(top, bottom), slice(left, right))
        image[window][inside] = _texture(place, u, v, rng)[inside]
        ids[window][inside] = place.class_id
    image += rng.normal(0.0, noise, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), ids


#: Where a synthetic video's objects and background come from (:func:`video_looks`).
VIDEO_LOOKS = ("held-out", "training", "closed-set")


def video_looks(name: str) -> OpenSetConfig | None:
    """``SyntheticVideoConfig.looks`` for a name of :data:`VIDEO_LOOKS`: the open-set held-out
    families (no demo model trained on them), the open-set training families, or None for the
    closed-set categories of :mod:`data_mixtures.synthetic`."""
    if name not in VIDEO_LOOKS:
        raise ConfigError(f"unknown video looks {name!r}; choose one of {list(VIDEO_LOOKS)}")
    return {"held-out": held_out_config(), "training": OpenSetConfig(), "closed-set": None}[name]


def synthetic_video(
    config: SyntheticVideoConfig | None = None, *, seed: int = 0, name: str | None = None
) -> SyntheticVideo:
    """Draw the video of ``config`` and ``seed`` (the same arguments give the same pixels).

    Every labelled object shows at least 30% of its area in the first frame, so the first-frame
    mask holds all N ids.
    """
    config = config or SyntheticVideoConfig()
    size = config.image_size
    layout_seq, render_seq = np.random.SeedSequence([seed, config.num_objects]).spawn(2)
    layout_rng = np.random.default_rng(layout_seq)
    blank = np.zeros((*size, 3))
    for _ in range(_LAYOUT_TRIES):
        movers = _movers(config, layout_rng)
        alone = [_frame(config, blank, [m], 0, layout_rng, 0.0)[1] for m in movers]
        _, first = _frame(config, blank, movers, 0, layout_rng, 0.0)
        if all(
            (first == m.place.class_id).sum() >= _MIN_VISIBLE * (a > 0).sum()
            for m, a in zip(movers, alone)
            if m.place.class_id
        ):
            break
    else:
        raise ConfigError("no layout shows every object in frame 0; use fewer or smaller objects")
    render_rng = np.random.default_rng(render_seq)
    if config.looks is None:
        background = _background(size, render_rng)
    else:
        families = config.looks.backgrounds
        family = families[int(render_rng.integers(len(families)))]
        background = render_background(
            family, size=size, generator=render_rng, strokes=config.looks.strokes
        )
    frames, masks = [], []
    for t in range(config.num_frames):
        image, ids = _frame(config, background, movers, t, render_rng, config.noise_std)
        frames.append(image)
        masks.append(ids)
    ids = tuple(range(1, config.num_objects + 1))
    return SyntheticVideo(name or f"synthetic-{seed}", tuple(frames), tuple(masks), ids)


def save_davis(video: SyntheticVideo, root: str | Path, *, resolution: str = "480p") -> Path:
    """Write ``root/JPEGImages/<res>/<name>/00000.jpg`` and ``root/Annotations/<res>/<name>/
    00000.png`` (palette PNGs) for every frame; returns ``root``."""
    root = Path(root)
    for t, (frame, mask) in enumerate(zip(video.frames, video.masks)):
        save_image(root / "JPEGImages" / resolution / video.name / f"{t:05d}.jpg", frame)
        save_index_mask(root / "Annotations" / resolution / video.name / f"{t:05d}.png", mask)
    return root
