"""The contract every source follows: index-addressable, lazy, counting what it had to skip."""

from __future__ import annotations

import abc
import logging
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from data_mixtures.records import SegRecord, SegType, present_labels
from painter.errors import DatasetError, InvalidImageError, InvalidMaskError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# What "unreadable" means: a file that cannot be decoded. Structural problems of a dataset
# (unpaired files, sizes that disagree) are DatasetError and are never skipped.
UNREADABLE_ERRORS: tuple[type[Exception], ...] = (InvalidImageError, InvalidMaskError, OSError)


class UnreadableRecordWarning(UserWarning):
    """A record could not be read and was skipped."""


class RecordSource(abc.ABC):
    """A sequence of ``SegRecord`` computed on access from an index.

    Subclasses implement ``__len__`` and ``load(index)``; ``load`` may raise one of
    ``UNREADABLE_ERRORS`` for a file that cannot be decoded. ``get(index)`` turns that into a
    warning plus ``None`` and counts it in ``num_skipped``. Note that each DataLoader worker counts
    its own skips.

    Attributes:
        name: a short name used in records, logs and error messages.
        seg_types: which label maps the records carry.
    """

    seg_types: frozenset[SegType] = frozenset({SegType.SEMANTIC})

    def __init__(self, name: str) -> None:
        self.name = name
        self._skipped: dict[int, str] = {}
        self._class_index: dict[int, np.ndarray] | None = None

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def load(self, index: int) -> SegRecord:
        """The record at ``index`` (already range-checked); may raise ``UNREADABLE_ERRORS``."""

    def _check_index(self, index: int) -> int:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{self.name}: index {index} out of range for {n} records")
        return index % n

    def __getitem__(self, index: int) -> SegRecord:
        """The record at ``index``; raises if its files are unreadable (see ``get``)."""
        return self.load(self._check_index(int(index)))

    def get(self, index: int) -> SegRecord | None:
        """The record at ``index``, or None (with a warning, counted) when it is unreadable."""
        index = self._check_index(int(index))
        try:
            return self.load(index)
        except UNREADABLE_ERRORS as error:
            self._note_skip(index, error)
            return None

    def __iter__(self) -> Iterator[SegRecord]:
        """Every readable record in order; unreadable ones are skipped with a warning."""
        for index in range(len(self)):
            record = self.get(index)
            if record is not None:
                yield record

    def _note_skip(self, index: int, error: Exception) -> None:
        if index in self._skipped:
            return
        self._skipped[index] = str(error)
        message = (
            f"{self.name}: skipping unreadable record {index} ({error}); "
            f"{len(self._skipped)} skipped so far"
        )
        logger.warning(message)
        warnings.warn(message, UnreadableRecordWarning, stacklevel=3)

    @property
    def num_skipped(self) -> int:
        """How many distinct records were found unreadable so far."""
        return len(self._skipped)

    @property
    def skipped(self) -> Mapping[int, str]:
        """Index -> reason for every record found unreadable so far."""
        return dict(self._skipped)

    def scan(self) -> int:
        """Read every record once (with progress) and return ``num_skipped``."""
        for index in tqdm(range(len(self)), desc=f"scan {self.name}", disable=len(self) < 1000):
            self.get(index)
        return self.num_skipped

    def record_classes(self, index: int) -> tuple[int, ...]:
        """Class ids present in record ``index`` (empty when unreadable).

        Sources override this when they can answer without decoding the image
        (``MaskFileSource``).
        """
        record = self.get(index)
        return () if record is None else record.classes()

    def sample_with_class(
        self, class_id: int, generator: np.random.Generator, *, exclude: int | None = None
    ) -> int | None:
        """A random record index whose classes include ``class_id`` (not ``exclude``), or None.

        Uses ``class_index``; sources with a cheaper way to find one override this.
        """
        members = self.class_index().get(class_id)
        if members is None:
            return None
        members = members[members != exclude]
        return int(members[generator.integers(members.size)]) if members.size else None

    def class_index(self) -> Mapping[int, np.ndarray]:
        """Class id -> sorted record indices containing it; built on first use, then cached."""
        if self._class_index is None:
            members: dict[int, list[int]] = {}
            n = len(self)
            for index in tqdm(range(n), desc=f"index {self.name}", disable=n < 1000):
                for class_id in self.record_classes(index):
                    members.setdefault(class_id, []).append(index)
            self._class_index = {c: np.asarray(v, dtype=np.int64) for c, v in members.items()}
            logger.info("%s: %d classes over %d records", self.name, len(members), n)
        return self._class_index


def pair_by_stem(
    images: list[Path], masks: list[Path], *, image_dir: Path, mask_dir: Path
) -> list[tuple[Path, Path]]:
    """Pair files by stem; raise ``DatasetError`` naming unmatched files."""
    image_by_stem = {p.stem: p for p in images}
    mask_by_stem = {p.stem: p for p in masks}
    lonely_images = sorted(set(image_by_stem) - set(mask_by_stem))
    lonely_masks = sorted(set(mask_by_stem) - set(image_by_stem))
    if lonely_images or lonely_masks:
        parts = []
        if lonely_images:
            names = ", ".join(image_by_stem[s].name for s in lonely_images[:5])
            parts.append(
                f"{len(lonely_images)} image(s) in {image_dir} without a mask (e.g. {names})"
            )
        if lonely_masks:
            names = ", ".join(mask_by_stem[s].name for s in lonely_masks[:5])
            parts.append(
                f"{len(lonely_masks)} mask(s) in {mask_dir} without an image (e.g. {names})"
            )
        raise DatasetError("images and masks do not pair up by file stem: " + "; ".join(parts))
    if not image_by_stem:
        raise DatasetError(f"no images found in {image_dir}")
    return [(image_by_stem[s], mask_by_stem[s]) for s in sorted(image_by_stem)]


def list_images(folder: str | Path) -> list[Path]:
    """Image files (by suffix) directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"folder not found: {folder}")
    stems: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in stems:
                raise DatasetError(f"two files share the stem {path.stem!r} in {folder}")
            stems[path.stem] = path
    return list(stems.values())


class MaskFileSource(RecordSource):
    """A source whose class-index masks are files of their own: it knows a record's classes from
    the mask alone, without decoding the image."""

    @abc.abstractmethod
    def _mask(self, index: int) -> np.ndarray:
        """(H, W) int64 class ids of record ``index``; raises one of ``UNREADABLE_ERRORS``."""

    def record_classes(self, index: int) -> tuple[int, ...]:
        try:
            return present_labels(self._mask(index))
        except UNREADABLE_ERRORS as error:
            self._note_skip(index, error)
            return ()
