"""Semantic segmentation folders: ``images/`` + ``masks/`` class-index PNGs with the same stems.

Layout::

    root/
      images/0001.jpg, 0002.png, ...
      masks/0001.png, 0002.png, ...     (H, W) class ids, 0 = background
      classes.txt                        optional: one class name per line, line k names class k

Masks may be grey or palette ('P') PNGs; ``ignore_value`` (255 by default, the PASCAL VOC border)
becomes ``IGNORE_LABEL``. A mask holding only 0 and 255 is read as a binary 0/1 mask by
``painter.io.load_mask``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from data_mixtures.records import IGNORE_LABEL, SegRecord, SegType
from data_mixtures.sources.base import (
    MaskFileSource,
    list_images,
    pair_by_stem,
)
from painter.errors import DatasetError
from painter.io import load_image, load_mask

logger = logging.getLogger(__name__)


def read_class_names(path: Path) -> tuple[str, ...]:
    """Class names from a text file, one per line (line k names class k); blank lines dropped."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = tuple(line for line in lines if line)
    if not names:
        raise DatasetError(f"{path} lists no class names")
    return names


def read_index_mask(path: Path, *, ignore_value: int | None) -> np.ndarray:
    """A class-index mask file as (H, W) int64, ``ignore_value`` mapped to ``IGNORE_LABEL``."""
    mask = load_mask(path)
    if mask.ndim != 2:
        raise DatasetError(
            f"{path} is a colour mask; this layout needs class-index masks (grey or palette PNG "
            "whose pixel values are class ids)"
        )
    if ignore_value is not None:
        mask = np.where(mask == ignore_value, IGNORE_LABEL, mask)
    return mask


class SemanticFolderSource(MaskFileSource):
    """Records from an ``images/`` + ``masks/`` folder; files are read on access.

    Args:
        root: the dataset folder.
        images_dir: image sub-folder name.
        masks_dir: mask sub-folder name.
        classes_file: optional class-name file inside ``root`` (used when it exists).
        ignore_value: mask value meaning "unlabeled" (None: no such value).
        name: source name (default: the folder name).

    Raises:
        DatasetError: a folder is missing, empty, or images and masks do not pair up by stem.
    """

    seg_types = frozenset({SegType.SEMANTIC})

    def __init__(
        self,
        root: str | Path,
        *,
        images_dir: str = "images",
        masks_dir: str = "masks",
        classes_file: str = "classes.txt",
        ignore_value: int | None = 255,
        name: str | None = None,
    ) -> None:
        root = Path(root)
        super().__init__(name or root.name)
        image_dir, mask_dir = root / images_dir, root / masks_dir
        self.pairs = pair_by_stem(
            list_images(image_dir), list_images(mask_dir), image_dir=image_dir, mask_dir=mask_dir
        )
        names_path = root / classes_file
        self.class_names = read_class_names(names_path) if names_path.is_file() else ()
        self.ignore_value = ignore_value
        logger.info("%s: %d image/mask pairs in %s", self.name, len(self.pairs), root)

    def __len__(self) -> int:
        return len(self.pairs)

    def _mask(self, index: int) -> np.ndarray:
        return read_index_mask(self.pairs[index][1], ignore_value=self.ignore_value)

    def load(self, index: int) -> SegRecord:
        image_path, mask_path = self.pairs[index]
        image = load_image(image_path)
        mask = self._mask(index)
        if mask.shape != image.shape[:2]:
            raise DatasetError(
                f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but image {image_path} is "
                f"{image.shape[1]}x{image.shape[0]}; masks must have the image's size"
            )
        return SegRecord(
            image=image,
            semantic=mask,
            class_names=self.class_names,
            source=self.name,
            key=image_path.stem,
        )
