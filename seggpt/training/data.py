"""Wiring between a training config and data_mixtures: the episode stream and the held-out
evaluation episodes."""

from __future__ import annotations

import dataclasses

from data_mixtures.eval_episodes import build_eval_episodes as _episodes_from
from data_mixtures.masking import MaskingConfig
from data_mixtures.mixture import MixtureDataset, MixtureEntry, default_entries
from data_mixtures.openset import OpenSetSource
from data_mixtures.openset_config import LookMode, OpenSetConfig, held_out_config
from data_mixtures.procedural import BackgroundFamily
from data_mixtures.records import EvalEpisode, SegType
from data_mixtures.sampling import SamplingConfig
from data_mixtures.sources.photos import PhotoSource, PhotoSplit, installed_photos
from data_mixtures.synthetic import Shape, SyntheticConfig, SyntheticSource, Texture
from painter.config import PainterConfig
from painter.errors import ConfigError
from seggpt.evaluation.heldout import EvalSetsConfig
from seggpt.evaluation.heldout import build_eval_sets as build_held_out_sets
from seggpt.training.config import TrainConfig

MIXTURES = ("default", "synthetic", "easy", "demo", "openset", "openset-easy")

# "openset-easy": the intended data of an open-set training smoke test (configs/smoke_openset.yaml;
# it does not learn yet, so the default suite's smoke test keeps the "easy" mixture). Open-set
# same-look groups of the training families, one category with one instance, one or two
# distractors (sharing an outline or a texture, never the colours), large objects on flat
# backgrounds; scored on the same layout drawn from the held-out families.
OPENSET_EASY = dict(
    backgrounds=(BackgroundFamily.NOISY_FLAT,),
    categories_per_group=(1, 1),
    instances_per_category=(1, 1),
    distractors_per_image=(1, 2),
    object_size=(0.2, 0.3),
    strokes=(0, 0),
    noise_std=(2.0, 4.0),
)

# "easy": three categories, each with its own colour scheme, one instance each, large and
# uncluttered; for smoke tests of learning and the fixed-class tuning task.
EASY_SYNTHETIC = dict(
    categories=(
        (Shape.CIRCLE, Texture.SOLID_NOISE),
        (Shape.SQUARE, Texture.STRIPES),
        (Shape.TRIANGLE, Texture.CHECKER),
    ),
    distractors=(),
    categories_per_image=(2, 3),
    instances_per_category=(1, 1),
    distractors_per_image=(0, 0),
    object_size=(0.2, 0.3),
    clutter_strokes=(0, 0),
    noise_std=2.0,
    color_jitter=10.0,
)


# "demo": the bundled demo model's data. Six shape/texture categories, each with its own
# (jittered) colour scheme, two or three categories per image so that only the prompt tells which
# one to paint, one or two instances each, a distractor, clutter strokes and occlusion.
DEMO_SYNTHETIC = dict(
    categories=tuple(
        (shape, texture)
        for shape in (Shape.CIRCLE, Shape.SQUARE, Shape.TRIANGLE)
        for texture in (Texture.SOLID_NOISE, Texture.STRIPES)
    ),
    categories_per_image=(2, 3),
    instances_per_category=(1, 2),
    distractors_per_image=(0, 1),
    object_size=(0.18, 0.3),
    clutter_strokes=(2, 8),
    noise_std=4.0,
    color_jitter=20.0,
)
_SYNTHETIC_OF_MIXTURE = {"easy": EASY_SYNTHETIC, "demo": DEMO_SYNTHETIC}


def openset_entries(pair_size: tuple[int, int], *, seed: int) -> list[MixtureEntry]:
    """The "openset" mixture (the demo model's data): open-set procedural groups from the
    training families only, same-look 0.35 / colour-independent 0.15 semantic episodes, instance
    episodes 0.15, and two-view region episodes of the training split of installed photos 0.35."""
    config = OpenSetConfig(image_size=pair_size)
    same = OpenSetSource(config, seed=seed, look=LookMode.SAME_LOOK, name="open-set-same-look")
    other = OpenSetSource(
        config, seed=seed, look=LookMode.COLOR_INDEPENDENT, name="open-set-colour-independent"
    )
    mixed = OpenSetSource(config, seed=seed, name="open-set")
    photos = PhotoSource(
        installed_photos(PhotoSplit.TRAIN), max_side=2 * max(pair_size), cache_size=1024
    )
    return [
        MixtureEntry("open-set-same-look", 0.35, same, SegType.SEMANTIC),
        MixtureEntry("open-set-colour-independent", 0.15, other, SegType.SEMANTIC),
        MixtureEntry("open-set-instance", 0.15, mixed, SegType.INSTANCE),
        MixtureEntry("photo-pairs", 0.35, photos, SegType.INSTANCE),
    ]


def synthetic_config(config: TrainConfig, size: tuple[int, int], records: int) -> SyntheticConfig:
    """The synthetic images of ``config.data.mixture`` at ``size`` = (H, W)."""
    extra = _SYNTHETIC_OF_MIXTURE.get(config.data.mixture, {})
    return SyntheticConfig(image_size=size, num_records=records, **extra)


def build_train_dataset(config: TrainConfig, model_config: PainterConfig) -> MixtureDataset:
    """The episode stream of ``config.data`` at the model's canvas size."""
    data = config.data
    if data.mixture not in MIXTURES:
        raise ConfigError(f"unknown mixture {data.mixture!r}; bundled: {', '.join(MIXTURES)}")
    canvas, patch = model_config.canvas_size, model_config.vit.patch_size
    if data.mixture == "easy":
        source = SyntheticSource(
            synthetic_config(config, model_config.half_size, 10_000),
            seed=data.seed,
            name="easy-synthetic",
        )
        entries = [MixtureEntry("easy-semantic", 1.0, source, SegType.SEMANTIC)]
    elif data.mixture == "openset":
        entries = openset_entries(model_config.half_size, seed=data.seed)
    elif data.mixture == "openset-easy":
        config = OpenSetConfig(image_size=model_config.half_size, **OPENSET_EASY)
        source = OpenSetSource(config, seed=data.seed, look=LookMode.SAME_LOOK, name="open-easy")
        entries = [MixtureEntry("open-set-easy", 1.0, source, SegType.SEMANTIC)]
    else:
        synthetic = synthetic_config(config, model_config.half_size, 10_000)
        entries = default_entries(canvas, seed=data.seed, synthetic=synthetic)
    if data.mixture == "synthetic":
        entries = [e for e in entries if e.name.startswith("synthetic")]
    if data.weights is not None:
        entries = reweighted(entries, data.weights)
    return MixtureDataset(
        entries,
        sampling=SamplingConfig(
            canvas_size=canvas,
            patch_size=patch,
            mix_context_prob=data.mixed_context_prob,
            palette_color_prob=data.palette_color_prob,
            jitter_prob=data.jitter_prob,
            colored_range=data.colored_range,
        ),
        masking=MaskingConfig(mask_ratio=data.mask_ratio, half_mask_prob=data.half_mask_prob),
        seed=data.seed,
    )


def reweighted(entries: list[MixtureEntry], weights: dict[str, float]) -> list[MixtureEntry]:
    """``entries`` with the weights named in ``weights`` replaced; weight 0 drops an entry."""
    names = [e.name for e in entries]
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ConfigError(
            f"data.weights names {unknown}, which the mixture lacks; its entries: {names}"
        )
    for name, weight in weights.items():
        if not (isinstance(weight, (int, float)) and weight >= 0):
            raise ConfigError(f"data.weights[{name!r}] must be a number >= 0, got {weight!r}")
    kept = [
        dataclasses.replace(e, weight=weights.get(e.name, e.weight))
        for e in entries
        if weights.get(e.name, e.weight) > 0
    ]
    if not kept:
        raise ConfigError("data.weights drops every entry of the mixture")
    return kept


def held_out_source(config: TrainConfig, model_config: PainterConfig) -> SyntheticSource:
    """Synthetic images the training stream never draws (another generator seed): the held-out
    set of the closed-set mixtures, which only measures generalisation within their generator."""
    return SyntheticSource(
        synthetic_config(config, model_config.half_size, 100_000),
        seed=config.data.eval_seed,
        name="held-out-synthetic",
    )


def build_eval_sets(
    config: TrainConfig, model_config: PainterConfig
) -> dict[str, list[EvalEpisode]]:
    """The held-out sets a run is scored on, the primary one first: for "openset" the sets of
    ``seggpt.evaluation.heldout`` (held-out families, held-out photos, lettering); for the
    closed-set mixtures one set of another generator seed ("held-out"), 4 prompts per episode."""
    data = config.data
    if data.mixture == "openset":
        return build_held_out_sets(
            EvalSetsConfig(num_episodes=data.eval_episodes, seed=data.eval_seed)
        )
    if data.mixture == "openset-easy":
        easy = {k: v for k, v in OPENSET_EASY.items() if k != "backgrounds"}
        held_out = held_out_config(image_size=(96, 96), group_size=5, **easy)
        train = OpenSetConfig(**OPENSET_EASY)
        sets = EvalSetsConfig(
            num_episodes=data.eval_episodes,
            seed=data.eval_seed,
            names=("same-look",),
            train_config=train,
            held_out=held_out,
        )
        return build_held_out_sets(sets)
    return {"held-out": build_eval_episodes(config, model_config, shots=4)}


def build_eval_episodes(
    config: TrainConfig, model_config: PainterConfig, *, shots: int = 1
) -> list[EvalEpisode]:
    """``config.data.eval_episodes`` binary held-out episodes with ``shots`` prompts each."""
    return _episodes_from(
        held_out_source(config, model_config),
        num_episodes=config.data.eval_episodes,
        shots=shots,
        seed=config.data.eval_seed,
    )
