"""Open-set procedural episodes: categories that cannot be memorised.

Records come in *groups* of ``group_size`` images that share their categories, so a group is
what one in-context episode needs (prompts and query). Each group draws its own categories: a
member of a shape family (:mod:`data_mixtures.procedural`) x a member of a texture family x
colours, from a space far larger than any training run sees, so a model can only find the
target by reading the prompt. Every image also holds distractors, each sharing one attribute
with a labelled category (its outline, its texture, or, in colour-independent groups, the colours
that category wears in another image of the group), so that only the combination decides.

Two kinds of group (``LookMode``):

* ``SAME_LOOK``: a category keeps one appearance (outline, texture, colours) in every image of
  the group; its colours are random per group and never tied to the category; distractors share
  an outline or a texture but never the colours.
* ``COLOUR_INDEPENDENT``: a category's colours are drawn anew for every image, and a distractor
  may wear the colours the target has in another image of the group (e.g. the prompt's), so only
  outline and texture decide.

Class ids are unique per group (``group * 8 + k + 1``), so pooled per-class metrics are
per-episode metrics and ``sample_with_class`` finds the other members of the group. Record ``i``
is a pure function of ``(seed, i)`` and the config, at any image size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from data_mixtures.openset_config import (
    _ID_STRIDE,
    LookMode,
    OpenSetConfig,
    Share,
)
from data_mixtures.procedural import (
    ShapeFamily,
    TextureFamily,
    color_pair,
    draw_shape_params,
    draw_texture_params,
    render_background,
    render_texture,
    shape_mask,
)
from data_mixtures.records import SegRecord, SegType
from data_mixtures.sources.base import RecordSource
from painter.errors import ConfigError


@dataclass(frozen=True)
class _Look:
    shape: ShapeFamily
    shape_params: dict
    texture: TextureFamily
    texture_params: dict
    colors: np.ndarray  # (2, 3)


class OpenSetSource(RecordSource):
    """Groups of images sharing open-set categories; see the module docstring.

    Args:
        config: how groups are drawn.
        seed: the source's seed; record ``i`` depends only on ``(seed, i)`` and ``config``.
        look: force every group to one ``LookMode`` (None: ``config.same_look_prob`` decides).
        category_seed: None (default): every group draws its own categories. An int: every
            record shows the same categories, drawn from this seed alone, with class ids 1..K
            (a fixed-class task, e.g. for in-context tuning; ``seed`` still varies the images).
        name: source name.
    """

    seg_types = frozenset({SegType.SEMANTIC, SegType.INSTANCE})

    def __init__(
        self,
        config: OpenSetConfig,
        *,
        seed: int = 0,
        look: LookMode | None = None,
        category_seed: int | None = None,
        name: str = "open-set",
    ) -> None:
        super().__init__(name)
        self.config = config
        self.seed = int(seed)
        self.look = None if look is None else LookMode(look)
        self.category_seed = category_seed

    def __len__(self) -> int:
        return self.config.num_groups * self.config.group_size

    # -- group structure -------------------------------------------------------------------------
    def _rng(self, *keys: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, *keys]))

    def group_mode(self, group: int) -> LookMode:
        if self.look is not None:
            return self.look
        same = self._rng(group, 0).random() < self.config.same_look_prob
        return LookMode.SAME_LOOK if same else LookMode.COLOR_INDEPENDENT

    def class_id(self, group: int, k: int) -> int:
        """The class id of category ``k`` in ``group``."""
        return k + 1 if self.category_seed is not None else group * _ID_STRIDE + k + 1

    def _categories(self, group: int) -> list[_Look]:
        """The group's labelled categories (colours: the group's, used by SAME_LOOK)."""
        if self.category_seed is None:
            rng = self._rng(group, 1)
        else:
            rng = np.random.default_rng(np.random.SeedSequence([self.category_seed, 1]))
        cfg = self.config
        count = int(rng.integers(cfg.categories_per_group[0], cfg.categories_per_group[1] + 1))
        return [draw_look(cfg, rng) for _ in range(count)]

    def _member_colors(self, group: int, member: int, count: int) -> list[np.ndarray]:
        """Per-image colours of each category in a COLOUR_INDEPENDENT group."""
        rng = self._rng(group, 2, member)
        return [color_pair(rng) for _ in range(count)]

    def record_classes(self, index: int) -> tuple[int, ...]:
        group = index // self.config.group_size
        count = len(self._categories(group))
        return tuple(self.class_id(group, k) for k in range(count))

    def category_names(self) -> tuple[str, ...]:
        """``shape/texture`` family names of the fixed categories (``category_seed`` given)."""
        if self.category_seed is None:
            raise ConfigError("only a source with a category_seed has fixed category names")
        return tuple(f"{c.shape.value}/{c.texture.value}" for c in self._categories(0))

    def sample_with_class(
        self, class_id: int, generator: np.random.Generator, *, exclude: int | None = None
    ) -> int | None:
        """Another member of the group that owns ``class_id`` (all members show all classes)."""
        if class_id < 1:
            return None
        if self.category_seed is not None:  # every record shows every class
            if len(self) < 2:
                return None
            index = int(generator.integers(len(self) - 1))
            return index + 1 if exclude is not None and index >= exclude else index
        group = (class_id - 1) // _ID_STRIDE
        size = self.config.group_size
        if not 0 <= group < self.config.num_groups:
            return None
        members = [group * size + m for m in range(size) if group * size + m != exclude]
        return int(members[int(generator.integers(len(members)))])

    # -- drawing ---------------------------------------------------------------------------------
    def _distractor(
        self,
        rng: np.random.Generator,
        looks: list[_Look],
        colors: list[np.ndarray],
        mode: LookMode,
        group: int,
        member: int,
    ) -> _Look:
        cfg = self.config
        twin = int(rng.integers(len(looks)))
        shares = [Share.OUTLINE, Share.TEXTURE]
        if mode is LookMode.COLOR_INDEPENDENT:
            shares.append(Share.COLORS)
        share = shares[int(rng.integers(len(shares)))]
        shape = cfg.shapes[int(rng.integers(len(cfg.shapes)))]
        texture = cfg.textures[int(rng.integers(len(cfg.textures)))]
        look = _Look(
            shape,
            draw_shape_params(shape, rng),
            texture,
            draw_texture_params(texture, rng),
            color_pair(rng),
        )
        base = looks[twin]
        if share is Share.OUTLINE:
            look = _Look(
                base.shape, base.shape_params, look.texture, look.texture_params, look.colors
            )
        elif share is Share.TEXTURE:
            look = _Look(
                look.shape, look.shape_params, base.texture, base.texture_params, look.colors
            )
        else:  # the colours the twin wears in another image of the group (e.g. the prompt)
            others = [m for m in range(cfg.group_size) if m != member]
            other = others[int(rng.integers(len(others)))]
            worn = self._member_colors(group, other, len(looks))[twin]
            look = _Look(look.shape, look.shape_params, look.texture, look.texture_params, worn)
        if mode is LookMode.SAME_LOOK:  # never the colours of a labelled category
            while min(_color_gap(look.colors, c) for c in colors) < 80.0:
                look = _Look(
                    look.shape,
                    look.shape_params,
                    look.texture,
                    look.texture_params,
                    color_pair(rng),
                )
        return look

    def load(self, index: int) -> SegRecord:
        cfg = self.config
        group, member = divmod(index, cfg.group_size)
        rng = self._rng(group, 3, member)
        mode = self.group_mode(group)
        looks = self._categories(group)
        if mode is LookMode.SAME_LOOK:
            colors = [look.colors for look in looks]
        else:
            colors = self._member_colors(group, member, len(looks))
        objects: list[tuple[_Look, int]] = []  # (look, class id or 0)
        for k, look in enumerate(looks):
            worn = _Look(
                look.shape, look.shape_params, look.texture, look.texture_params, colors[k]
            )
            low, high = cfg.instances_per_category
            for _ in range(int(rng.integers(low, high + 1))):
                objects.append((worn, self.class_id(group, k)))
        low, high = cfg.distractors_per_image
        for _ in range(int(rng.integers(low, high + 1))):
            objects.append((self._distractor(rng, looks, colors, mode, group, member), 0))
        order = rng.permutation(len(objects))
        image, semantic, instance = self._draw([objects[i] for i in order], rng)
        return SegRecord(
            image=image,
            semantic=semantic,
            instance=instance,
            source=self.name,
            key=f"group{group}/{member}",
        )

    def _draw(self, objects: list[tuple[_Look, int]], rng: np.random.Generator):
        cfg = self.config
        height, width = cfg.image_size
        side = min(height, width)
        background = cfg.backgrounds[int(rng.integers(len(cfg.backgrounds)))]
        image = render_background(
            background, size=(height, width), generator=rng, strokes=cfg.strokes
        )
        semantic = np.zeros((height, width), np.int64)
        instance = np.zeros((height, width), np.int64)
        placed: list[tuple[float, float, float]] = []
        for number, (look, class_id) in enumerate(objects, start=1):
            radius = rng.uniform(*cfg.object_size) * side
            centre = _place(rng, radius, placed, (height, width), cfg.spacing)
            placed.append((*centre, radius))
            rotation = math.radians(rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg))
            mask = paint_look(image, look, centre, radius, rotation, rng, side=side)
            semantic[mask] = class_id
            instance[mask] = number
        image = image + rng.normal(0.0, rng.uniform(*cfg.noise_std), image.shape)
        return np.clip(image, 0, 255).astype(np.uint8), semantic, _renumber(instance)


def draw_look(config: OpenSetConfig, rng: np.random.Generator) -> _Look:
    """A category's appearance: a member of one of ``config``'s shape families, of one of its
    texture families, and a colour pair."""
    shape = config.shapes[int(rng.integers(len(config.shapes)))]
    texture = config.textures[int(rng.integers(len(config.textures)))]
    return _Look(
        shape,
        draw_shape_params(shape, rng),
        texture,
        draw_texture_params(texture, rng),
        color_pair(rng),
    )


def paint_look(
    image: np.ndarray,
    look: _Look,
    centre: tuple[float, float],
    radius: float,
    rotation: float,
    rng: np.random.Generator,
    *,
    side: int,
) -> np.ndarray:
    """Paint ``look`` into ``image`` (H, W, 3) float in place, centred at ``centre`` (x, y) with
    ``radius`` and ``rotation`` (radians); ``side`` scales the texture. Returns the (H, W) bool
    mask of its pixels. Only the object's bounding box is drawn (textures are centred on it)."""
    height, width = image.shape[:2]
    x0, y0 = max(0, int(centre[0] - radius) - 1), max(0, int(centre[1] - radius) - 1)
    x1 = min(width, int(math.ceil(centre[0] + radius)) + 2)
    y1 = min(height, int(math.ceil(centre[1] + radius)) + 2)
    local = (centre[0] - x0, centre[1] - y0)
    box_size = (y1 - y0, x1 - x0)
    inside = shape_mask(
        look.shape, look.shape_params, size=box_size, centre=local, radius=radius, rotation=rotation
    )
    texture = render_texture(
        look.texture,
        look.texture_params,
        look.colors,
        size=box_size,
        centre=local,
        rotation=rotation,
        generator=rng,
        side=side,
    )
    mask = np.zeros((height, width), bool)
    mask[y0:y1, x0:x1] = inside
    image[y0:y1, x0:x1][inside] = texture[inside]
    return mask


def _color_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between two colour pairs (the closer of the two pairings)."""
    straight = np.linalg.norm(a - b, axis=1).mean()
    crossed = np.linalg.norm(a - b[::-1], axis=1).mean()
    return float(min(straight, crossed))


def _place(rng, radius, placed, size, spacing) -> tuple[float, float]:
    """A centre (x, y) inside the image, away from placed objects when possible (20 tries)."""
    height, width = size
    margin = 0.6 * radius
    centre = (width / 2, height / 2)
    for _ in range(20):
        centre = (rng.uniform(margin, width - margin), rng.uniform(margin, height - margin))
        if all(
            math.hypot(centre[0] - x, centre[1] - y) >= spacing * (radius + r) for x, y, r in placed
        ):
            break
    return centre


def _renumber(instance: np.ndarray) -> np.ndarray:
    """Visible instance ids renumbered 1..N in order of first id (hidden ones vanish)."""
    ids = np.unique(instance)
    ids = ids[ids > 0]
    lookup = np.zeros(int(instance.max()) + 1, np.int64)
    lookup[ids] = np.arange(1, ids.size + 1)
    return lookup[instance]
