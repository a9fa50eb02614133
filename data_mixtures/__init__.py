"""The data side of in-context segmentation training: sources, sampling, mixtures.

No model code lives or is imported here. The usual path::

    from data_mixtures import default_mixture, collate_episodes
    dataset = default_mixture(canvas_size=(896, 448), patch_size=16, seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, collate_fn=collate_episodes)
"""

from data_mixtures.eval_episodes import build_eval_episodes
from data_mixtures.masking import MaskingConfig
from data_mixtures.mixture import (
    MixtureDataset,
    MixtureEntry,
    default_entries,
    default_mixture,
    shard_positions,
)
from data_mixtures.records import (
    IGNORE_LABEL,
    Episode,
    EpisodeBatch,
    EvalEpisode,
    SegRecord,
    SegType,
    collate_episodes,
)
from data_mixtures.sampling import SamplingConfig, sample_episode
from data_mixtures.synthetic import SyntheticConfig, SyntheticSource

__all__ = [
    "IGNORE_LABEL",
    "Episode",
    "EpisodeBatch",
    "EvalEpisode",
    "MaskingConfig",
    "MixtureDataset",
    "MixtureEntry",
    "SamplingConfig",
    "SegRecord",
    "SegType",
    "SyntheticConfig",
    "SyntheticSource",
    "build_eval_episodes",
    "collate_episodes",
    "default_entries",
    "default_mixture",
    "sample_episode",
    "shard_positions",
]
