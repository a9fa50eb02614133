"""Any Hugging Face ``datasets.Dataset`` with an image column and mask column(s).

Cells may be ``PIL.Image`` (the ``datasets.Image`` feature), numpy arrays or nested lists
(``Array2D``/``Sequence`` features), or undecoded ``{"bytes", "path"}`` dicts
(``Image(decode=False)``). Rows are read on access.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from data_mixtures.records import IGNORE_LABEL, SegRecord, SegType, present_labels
from data_mixtures.sources.base import UNREADABLE_ERRORS, RecordSource
from data_mixtures.sources.instance import colors_to_ids
from painter.errors import DatasetError, InvalidImageError, missing_dependency
from painter.io import load_image, load_mask

try:
    import datasets
except ImportError as _err:
    raise missing_dependency("datasets", "train", "Hugging Face dataset sources") from _err

logger = logging.getLogger(__name__)


def _cell_to_readable(cell: object, what: str) -> object:
    """A dataset cell -> something ``painter.io`` reads (PIL image, array or path)."""
    if cell is None:
        raise InvalidImageError(f"the {what} cell is empty")
    if isinstance(cell, dict):
        if cell.get("bytes"):
            try:
                return Image.open(io.BytesIO(cell["bytes"]))
            except OSError as error:
                raise InvalidImageError(f"the {what} bytes are not an image: {error}") from error
        if cell.get("path"):
            return cell["path"]
        raise InvalidImageError(f"the {what} cell has neither bytes nor a path")
    if isinstance(cell, list):
        return np.asarray(cell)
    return cell


class HFSource(RecordSource):
    """Records from the rows of a ``datasets.Dataset``.

    Args:
        dataset: a ``datasets.Dataset``, or the folder of one saved with ``save_to_disk``.
        image_column: column holding the image.
        mask_column: column holding (H, W) semantic class ids, or None.
        instance_column: column holding (H, W) instance ids (or colour-coded instances), or None.
        class_names: names indexed by class id, if known.
        ignore_value: semantic mask value meaning "unlabeled" (None: no such value).
        split: which split to take when ``dataset`` is a saved ``DatasetDict``.
        name: source name.

    Raises:
        DatasetError: a column is missing, or no mask column is given.
    """

    def __init__(
        self,
        dataset: datasets.Dataset | str | Path,
        *,
        image_column: str = "image",
        mask_column: str | None = "mask",
        instance_column: str | None = None,
        class_names: Sequence[str] = (),
        ignore_value: int | None = 255,
        split: str | None = None,
        name: str = "hf",
    ) -> None:
        super().__init__(name)
        if isinstance(dataset, (str, Path)):
            dataset = datasets.load_from_disk(str(dataset))
        if isinstance(dataset, datasets.DatasetDict):
            if split not in dataset:
                raise DatasetError(f"{name}: pick a split with split=..., one of {list(dataset)}")
            dataset = dataset[split]
        if not isinstance(dataset, datasets.Dataset):
            raise DatasetError(f"{name}: expected a datasets.Dataset, got {type(dataset).__name__}")
        if mask_column is None and instance_column is None:
            raise DatasetError(f"{name}: give mask_column and/or instance_column")
        wanted = [c for c in (image_column, mask_column, instance_column) if c is not None]
        missing = [c for c in wanted if c not in dataset.column_names]
        if missing:
            raise DatasetError(
                f"{name}: column(s) {missing} not in the dataset; it has {dataset.column_names}"
            )
        self.dataset = dataset.select_columns(wanted)
        self._masks = None if mask_column is None else dataset.select_columns([mask_column])
        self.image_column = image_column
        self.mask_column = mask_column
        self.instance_column = instance_column
        self.class_names = tuple(class_names)
        self.ignore_value = ignore_value
        types = set()
        if mask_column is not None:
            types.add(SegType.SEMANTIC)
        if instance_column is not None:
            types.add(SegType.INSTANCE)
        self.seg_types = frozenset(types)
        logger.info("%s: %d rows", self.name, len(dataset))

    def __len__(self) -> int:
        return len(self.dataset)

    def _semantic(self, cell: object, row: int) -> np.ndarray:
        mask = load_mask(_cell_to_readable(cell, "mask"))
        if mask.ndim != 2:
            raise DatasetError(
                f"{self.name}: row {row} of column {self.mask_column!r} is a colour mask; "
                "semantic masks must hold class ids"
            )
        if self.ignore_value is not None:
            mask = np.where(mask == self.ignore_value, IGNORE_LABEL, mask)
        return mask

    def load(self, index: int) -> SegRecord:
        row = self.dataset[index]
        image = load_image(_cell_to_readable(row[self.image_column], "image"))
        semantic = instance = None
        if self.mask_column is not None:
            semantic = self._semantic(row[self.mask_column], index)
        if self.instance_column is not None:
            raw = load_mask(_cell_to_readable(row[self.instance_column], "instance mask"))
            instance = colors_to_ids(raw) if raw.ndim == 3 else raw
        for column, labels in ((self.mask_column, semantic), (self.instance_column, instance)):
            if labels is not None and labels.shape != image.shape[:2]:
                raise DatasetError(
                    f"{self.name}: row {index}: column {column!r} is {labels.shape[1]}x"
                    f"{labels.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}"
                )
        return SegRecord(
            image=image,
            semantic=semantic,
            instance=instance,
            class_names=self.class_names,
            source=self.name,
            key=str(index),
        )

    def record_classes(self, index: int) -> tuple[int, ...]:
        """Classes of row ``index`` from its mask column alone."""
        if self._masks is None:
            return ()
        try:
            cell = self._masks[index][self.mask_column]
            return present_labels(self._semantic(cell, index))
        except UNREADABLE_ERRORS as error:
            self._note_skip(index, error)
            return ()
