"""Wiring between a training config and data_mixtures: the episode stream and the held-out
evaluation episodes."""

from __future__ import annotations

from data_mixtures.evaluation import build_eval_episodes as _episodes_from
from data_mixtures.masking import MaskingConfig
from data_mixtures.mixture import MixtureDataset, MixtureEntry, default_entries
from data_mixtures.records import EvalEpisode, SegType
from data_mixtures.sampling import SamplingConfig
from data_mixtures.synthetic import Shape, SyntheticConfig, SyntheticSource, Texture
from painter.config import PainterConfig
from painter.errors import ConfigError
from seggpt.train_config import TrainConfig

MIXTURES = ("default", "synthetic", "easy", "demo")

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
    colour_jitter=10.0,
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
    colour_jitter=20.0,
)
_SYNTHETIC_OF_MIXTURE = {"easy": EASY_SYNTHETIC, "demo": DEMO_SYNTHETIC}


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
    else:
        synthetic = synthetic_config(config, model_config.half_size, 10_000)
        entries = default_entries(canvas, seed=data.seed, synthetic=synthetic)
    if data.mixture == "synthetic":
        entries = [e for e in entries if e.name.startswith("synthetic")]
    return MixtureDataset(
        entries,
        sampling=SamplingConfig(
            canvas_size=canvas, patch_size=patch, mix_context_prob=data.mixed_context_prob
        ),
        masking=MaskingConfig(mask_ratio=data.mask_ratio, half_mask_prob=data.half_mask_prob),
        seed=data.seed,
    )


def held_out_source(config: TrainConfig, model_config: PainterConfig) -> SyntheticSource:
    """Synthetic images the training stream never draws (another generator seed)."""
    return SyntheticSource(
        synthetic_config(config, model_config.half_size, 100_000),
        seed=config.data.eval_seed,
        name="held-out-synthetic",
    )


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
