"""One module per dataset layout; each turns files or rows into ``SegRecord``s on access."""

from data_mixtures.sources.base import RecordSource, UnreadableRecordWarning
from data_mixtures.sources.folder import SemanticFolderSource
from data_mixtures.sources.instance import CocoSource, InstanceFolderSource
from data_mixtures.sources.photos import PhotoSource, RegionMethod

__all__ = [
    "CocoSource",
    "HFSource",
    "InstanceFolderSource",
    "PhotoSource",
    "RecordSource",
    "RegionMethod",
    "SemanticFolderSource",
    "UnreadableRecordWarning",
]


def __getattr__(name: str) -> object:
    """``HFSource`` loads ``datasets`` (about half a second) only when it is asked for."""
    if name == "HFSource":
        from data_mixtures.sources.hf import HFSource

        return HFSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
