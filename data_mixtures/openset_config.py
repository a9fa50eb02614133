"""The configuration of open-set procedural groups (:mod:`data_mixtures.openset`): which shape,
texture and background families they draw from, how crowded an image is, the training and
held-out family splits, and the check that keeps those two apart."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from data_mixtures.procedural import (
    HELD_OUT_BACKGROUNDS,
    HELD_OUT_SHAPES,
    HELD_OUT_TEXTURES,
    TRAIN_BACKGROUNDS,
    TRAIN_SHAPES,
    TRAIN_TEXTURES,
    BackgroundFamily,
    ShapeFamily,
    TextureFamily,
)
from painter.errors import ConfigError

MAX_CATEGORIES = 7  # per group; class ids are group * (MAX_CATEGORIES + 1) + k + 1
_ID_STRIDE = MAX_CATEGORIES + 1


class LookMode(enum.Enum):
    SAME_LOOK = "same-look"
    COLOR_INDEPENDENT = "colour-independent"


class Share(enum.Enum):
    """Which attribute a distractor takes from a labelled category."""

    OUTLINE = "outline"
    TEXTURE = "texture"
    COLORS = "colours"


def _check_range(name: str, bounds: tuple, low: float) -> None:
    if len(bounds) != 2 or not low <= bounds[0] <= bounds[1]:
        raise ConfigError(f"{name} must be (low, high) with {low} <= low <= high")


@dataclass(frozen=True)
class OpenSetConfig:
    """How open-set groups are drawn.

    Attributes:
        image_size: (H, W) of every image.
        num_groups: groups in the source (the source has ``num_groups * group_size`` records).
        group_size: images per group (an episode with k prompts needs k + 1).
        shapes, textures, backgrounds: the families drawn from.
        same_look_prob: probability that a group is SAME_LOOK (else COLOUR_INDEPENDENT).
        categories_per_group: inclusive range of labelled categories (at most MAX_CATEGORIES).
        instances_per_category: inclusive range of instances of each category in an image.
        distractors_per_image: inclusive range of distractor objects.
        object_size: inclusive range of object radii as a fraction of min(H, W).
        max_rotation_deg: objects are rotated by up to this angle either way.
        spacing: object centres are kept this fraction of their summed radii apart (best effort).
        noise_std: inclusive range of the pixel-noise std (0..255 scale).
        strokes: inclusive range of clutter strokes on stroke backgrounds.
    """

    image_size: tuple[int, int] = (224, 224)
    num_groups: int = 1_000_000
    group_size: int = 2
    shapes: tuple[ShapeFamily, ...] = TRAIN_SHAPES
    textures: tuple[TextureFamily, ...] = TRAIN_TEXTURES
    backgrounds: tuple[BackgroundFamily, ...] = TRAIN_BACKGROUNDS
    same_look_prob: float = 0.5
    categories_per_group: tuple[int, int] = (1, 3)
    instances_per_category: tuple[int, int] = (1, 2)
    distractors_per_image: tuple[int, int] = (1, 3)
    object_size: tuple[float, float] = (0.12, 0.24)
    max_rotation_deg: float = 30.0
    spacing: float = 0.8
    noise_std: tuple[float, float] = (2.0, 6.0)
    strokes: tuple[int, int] = (2, 8)

    def __post_init__(self) -> None:
        if min(self.image_size) < 32:
            raise ConfigError(f"open-set image_size must be at least 32x32, got {self.image_size}")
        if self.num_groups < 1 or self.group_size < 2:
            raise ConfigError("num_groups must be >= 1 and group_size >= 2 (a prompt and a query)")
        if not (self.shapes and self.textures and self.backgrounds):
            raise ConfigError("open-set data needs at least one shape, texture and background")
        for name, kind in (
            ("shapes", ShapeFamily),
            ("textures", TextureFamily),
            ("backgrounds", BackgroundFamily),
        ):
            values = getattr(self, name)
            if any(not isinstance(v, kind) for v in values) or len(set(values)) != len(values):
                raise ConfigError(f"{name} must be distinct {kind.__name__} members")
        if not 0.0 <= self.same_look_prob <= 1.0:
            raise ConfigError(f"same_look_prob must be in [0, 1], got {self.same_look_prob}")
        _check_range("categories_per_group", self.categories_per_group, 1)
        if self.categories_per_group[1] > MAX_CATEGORIES:
            raise ConfigError(f"categories_per_group is at most {MAX_CATEGORIES}")
        _check_range("instances_per_category", self.instances_per_category, 1)
        _check_range("distractors_per_image", self.distractors_per_image, 0)
        _check_range("object_size", self.object_size, 0.02)
        if self.object_size[1] > 0.5:
            raise ConfigError("object_size is a radius fraction of at most 0.5")
        _check_range("noise_std", self.noise_std, 0.0)
        _check_range("strokes", self.strokes, 0)

    @property
    def families(self) -> frozenset:
        """Every family this config draws from (shapes, textures and backgrounds)."""
        return frozenset(self.shapes) | frozenset(self.textures) | frozenset(self.backgrounds)


def held_out_config(**changes) -> OpenSetConfig:
    """Only the held-out shape, texture and background families (none of the training space)."""
    base = dict(
        shapes=HELD_OUT_SHAPES,
        textures=HELD_OUT_TEXTURES,
        backgrounds=HELD_OUT_BACKGROUNDS,
        object_size=(0.15, 0.26),
        distractors_per_image=(1, 3),
    )
    return OpenSetConfig(**{**base, **changes})


def check_disjoint(train: OpenSetConfig, held_out: OpenSetConfig) -> None:
    """Raise ConfigError when a held-out config shares a family with a training config."""
    shared = train.families & held_out.families
    if shared:
        names = ", ".join(sorted(f.value for f in shared))
        raise ConfigError(f"held-out data shares families with training: {names}")
