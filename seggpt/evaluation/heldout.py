"""The held-out evaluation sets that measure in-context transfer, and a report over all of them.

No set resembles the training data by construction:

* ``same-look``: one-shot/few-shot binary episodes drawn only from the held-out shape, texture
  and background families (:mod:`data_mixtures.procedural`); the target keeps one appearance
  within an episode, its colours random per episode; distractors share an outline or texture.
* ``colour-independent``: the same families, but the target's colours change between prompt
  and query and distractors may wear the prompt's colours, so only outline and texture decide.
* ``photos``: two differently augmented views of held-out photos (a split of the photos shipped
  by installed packages that training never draws), one unsupervised region as the target.
* ``lettering``: the scene-text words with masks of Debian's ``opencv-doc`` (reserved: never a
  training photo); prompt word ``i``, query word ``j``.

Every set is scored with the prompt-ignoring baselines beside the model: "all objects" (every
object in the query, where the set knows them), "all foreground", and "wrong prompt" (the
prompts of another episode).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from data_mixtures.eval_episodes import build_eval_episodes, cross_pair_episodes, two_view_episodes
from data_mixtures.openset import OpenSetSource
from data_mixtures.openset_config import LookMode, OpenSetConfig, check_disjoint, held_out_config
from data_mixtures.records import EvalEpisode
from data_mixtures.sources.photos import (
    OPENCV_DOC_EXAMPLES,
    PhotoSource,
    PhotoSplit,
    installed_photos,
)
from painter.errors import ConfigError, DatasetError
from painter.io import load_image, load_mask
from seggpt.evaluation.metrics import EvalReport, evaluate
from seggpt.predictor import SegGPTPredictor

logger = logging.getLogger(__name__)

EVAL_SETS = ("same-look", "colour-independent", "photos", "lettering")
LETTERING_FOLDER = OPENCV_DOC_EXAMPLES / "text"


@dataclass(frozen=True)
class EvalSetsConfig:
    """Which held-out episodes to build.

    Attributes:
        num_episodes: episodes per synthetic and photo set (lettering has its fixed 20).
        seed: seed of every set (episode ``i`` depends only on the seed and ``i``).
        shots: prompts per episode (scoring with fewer uses the first ones).
        image_size: (H, W) of synthetic images and photo views (at least 224 on a side).
        names: the sets to build, a subset of ``EVAL_SETS``.
        train_config: the open-set config of the training data, checked to share no family.
        held_out: the config of the synthetic sets (None: ``held_out_config`` at
            ``image_size`` with groups of ``shots + 1``); it must use held-out families only.
    """

    num_episodes: int = 48
    seed: int = 10_000
    shots: int = 4
    image_size: tuple[int, int] = (256, 256)
    names: tuple[str, ...] = EVAL_SETS
    train_config: OpenSetConfig = OpenSetConfig()
    held_out: OpenSetConfig | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.names) - set(EVAL_SETS))
        if unknown:
            raise ConfigError(f"unknown evaluation set(s) {unknown}; known: {list(EVAL_SETS)}")
        if self.num_episodes < 1 or self.shots < 1:
            raise ConfigError("num_episodes and shots must be >= 1")


def lettering_words(folder: str | Path = LETTERING_FOLDER) -> tuple[list, list]:
    """The ``*_segmented_word*`` images and their ``_mask.png`` masks in ``folder``."""
    folder = Path(folder)
    pairs = []
    for image_path in sorted(folder.glob("*segmented_word*.jpg")):
        mask_path = image_path.with_name(image_path.stem + "_mask.png")
        if mask_path.is_file():
            pairs.append((load_image(image_path), load_mask(mask_path)))
    if len(pairs) < 2:
        raise DatasetError(f"no scene-text words with masks in {folder} (apt install opencv-doc)")
    return [p[0] for p in pairs], [p[1] for p in pairs]


def held_out_photo_names() -> list[str]:
    """File names of the held-out photos this machine's installed packages ship (the photo set
    is reproducible only where the same ones are installed)."""
    try:
        return [p.name for p in installed_photos(PhotoSplit.HELD_OUT)]
    except DatasetError:
        return []


def build_eval_sets(config: EvalSetsConfig = EvalSetsConfig()) -> dict[str, list[EvalEpisode]]:
    """The sets of ``config.names``; photo and lettering sets are left out (with a warning) when
    the packages that ship their images are not installed."""
    held_out = config.held_out or held_out_config(
        image_size=config.image_size, group_size=config.shots + 1
    )
    if held_out.group_size < config.shots + 1:
        raise ConfigError(
            f"held-out groups of {held_out.group_size} cannot give {config.shots} shots"
        )
    check_disjoint(config.train_config, held_out)
    sets: dict[str, list[EvalEpisode]] = {}
    for offset, (name, look) in enumerate(
        (("same-look", LookMode.SAME_LOOK), ("colour-independent", LookMode.COLOR_INDEPENDENT))
    ):
        if name in config.names:
            source = OpenSetSource(held_out, seed=config.seed + offset, look=look, name=name)
            sets[name] = build_eval_episodes(
                source, num_episodes=config.num_episodes, shots=config.shots, seed=config.seed
            )
    if "photos" in config.names:
        photos = _photo_views(
            PhotoSplit.HELD_OUT,
            "photos",
            num_episodes=config.num_episodes,
            shots=config.shots,
            seed=config.seed,
            view_size=config.image_size,
        )
        if photos is not None:
            sets["photos"] = photos
    if "lettering" in config.names:
        try:
            images, masks = lettering_words()
            sets["lettering"] = cross_pair_episodes(
                images, masks, shots=min(config.shots, len(images) - 1), name="lettering"
            )
        except DatasetError as error:
            logger.warning("lettering set skipped: %s", error)
    return sets


def validation_sets(
    num_episodes: int = 48, *, seed: int = 777, shots: int = 4, image_size=(256, 256)
) -> dict[str, list[EvalEpisode]]:
    """Episodes of the *training* distribution under another seed, for choosing a setting
    (a threshold, a gate) before the held-out sets are read; never a proof of transfer.

    ``same-look``: same-look episodes of the training families; ``photos``: two views of the
    training photos (left out, with a warning, when no package ships them).
    """
    config = OpenSetConfig(image_size=tuple(image_size), group_size=shots + 1)
    source = OpenSetSource(config, seed=seed, look=LookMode.SAME_LOOK, name="val-same-look")
    sets = {
        "same-look": build_eval_episodes(source, num_episodes=num_episodes, shots=shots, seed=seed)
    }
    photos = _photo_views(
        PhotoSplit.TRAIN,
        "val-photos",
        num_episodes=num_episodes,
        shots=shots,
        seed=seed,
        view_size=tuple(image_size),
    )
    if photos is not None:
        sets["photos"] = photos
    return sets


def _photo_views(
    split: PhotoSplit,
    name: str,
    *,
    num_episodes: int,
    shots: int,
    seed: int,
    view_size: tuple[int, int],
) -> list[EvalEpisode] | None:
    """Two-view episodes of the installed photos of ``split``; None, with a warning, when no
    installed package ships any."""
    try:
        photos = PhotoSource(installed_photos(split), max_side=512, name=name)
        return two_view_episodes(
            photos, num_episodes=num_episodes, shots=shots, seed=seed, view_size=view_size
        )
    except DatasetError as error:
        logger.warning("%s photo set (%s) skipped: %s", split.value, name, error)
        return None


@dataclass(frozen=True)
class SetScores:
    """One set's one-shot report (with baselines) and its few-shot mIoU on the same episodes."""

    one_shot: EvalReport
    few_shot: float
    shots: int

    def to_dict(self) -> dict[str, object]:
        return {
            **self.one_shot.to_dict(),
            "few_shot": {"shots": self.shots, "ensemble": "feature", "miou": self.few_shot},
        }


def score_sets(
    predictor: SegGPTPredictor,
    sets: dict[str, list[EvalEpisode]],
    *,
    shots: int = 4,
    names: Sequence[str] | None = None,
    few_shot: bool = True,
) -> dict[str, SetScores]:
    """One-shot (with baselines) and ``shots``-shot feature-ensemble mIoU of every set."""
    scores = {}
    for name in names or list(sets):
        episodes = sets[name]
        one = evaluate(predictor, episodes, shots=1)
        k = min(shots, min(len(e.prompt_images) for e in episodes))
        few = (
            evaluate(predictor, episodes, shots=k, baselines=False).miou
            if few_shot
            else float("nan")
        )
        scores[name] = SetScores(one, few, k)
    return scores


def format_scores(scores: dict[str, SetScores]) -> str:
    """A plain-text table: set, one-shot, few-shot and every baseline."""
    names = sorted({b for s in scores.values() for b in s.one_shot.baselines})
    header = f"{'set':20s} {'1-shot':>7s} {'k-shot':>7s} " + " ".join(f"{n:>15s}" for n in names)
    rows = [header]
    for name, s in scores.items():
        cells = " ".join(f"{s.one_shot.baselines.get(n, float('nan')):15.3f}" for n in names)
        rows.append(f"{name:20s} {s.one_shot.miou:7.3f} {s.few_shot:7.3f} {cells}")
    return "\n".join(rows)
