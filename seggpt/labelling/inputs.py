"""What a labelling run reads: the images to label and the examples to label them from.

Images (:func:`collect_images`) come from files, folders (recursive, sorted by path), text files
listing paths (one per line, relative to the list's folder; ``#`` comments), or a Hugging Face
``datasets`` dataset saved with ``save_to_disk`` (its first image column). Each becomes an
:class:`ImageRef` whose ``file_name`` (the path under the common root of the files, or
``<dataset>/<row>.png``) names it in the COCO and Label Studio files, and whose ``name`` names
its output PNGs (``seggpt.outputs.output_names``).

:class:`ImageDataset` decodes them for a ``torch.utils.data.DataLoader``; an image that cannot be
read comes back as its error message, so the run can skip it, count it and list it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from painter.errors import (
    DatasetError,
    InputMismatchError,
    InvalidImageError,
    InvalidMaskError,
    missing_dependency,
)
from painter.io import load_image, load_mask
from seggpt.outputs import output_names

LIST_SUFFIXES = (".txt", ".lst")


@dataclass(frozen=True)
class ImageRef:
    """One image to label.

    Attributes:
        key: the absolute path, or ``<dataset folder>#<row>`` for a dataset row.
        file_name: its name in the COCO and Label Studio files.
        name: the stem of its output files.
    """

    key: str
    file_name: str
    name: str


def is_image_file(path: Path) -> bool:
    return Image.registered_extensions().get(path.suffix.lower()) in Image.OPEN


def _is_dataset_dir(path: Path) -> bool:
    return (path / "state.json").is_file() and (path / "dataset_info.json").is_file()


def _folder_images(folder: Path) -> list[Path]:
    found = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and is_image_file(p) and not any(part.startswith(".") for part in p.parts)
    )
    if not found:
        raise InvalidImageError(f"folder {folder} holds no image files")
    return found


def _listed_images(list_file: Path) -> list[Path]:
    lines = list_file.read_text(encoding="utf-8").splitlines()
    entries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not entries:
        raise InvalidImageError(f"list file {list_file} names no images")
    return [p if p.is_absolute() else list_file.parent / p for p in map(Path, entries)]


def _load_dataset(folder: str | Path):
    """A ``datasets`` dataset saved with ``save_to_disk`` (the "train" extra's package)."""
    try:
        from datasets import load_from_disk
    except ImportError as err:
        raise missing_dependency("datasets", "train", "labelling a datasets folder") from err
    return load_from_disk(str(folder))


def _dataset_rows(folder: Path) -> list[str]:
    dataset = _load_dataset(folder)
    if not hasattr(dataset, "features"):
        raise DatasetError(f"{folder} is a dataset dict; give one split's folder")
    _image_column(dataset, folder)
    return [f"{folder.resolve()}#{row}" for row in range(len(dataset))]


def _image_column(dataset, where: object) -> str:
    for name, feature in dataset.features.items():
        if type(feature).__name__ == "Image":
            return name
    raise DatasetError(f"dataset {where} has no image column (features: {list(dataset.features)})")


def collect_images(entries: Sequence[str | os.PathLike]) -> list[ImageRef]:
    """The images named by ``entries`` in order, duplicates dropped (see the module doc)."""
    keys: list[str] = []
    for entry in map(Path, entries):
        if entry.is_dir() and _is_dataset_dir(entry):
            keys.extend(_dataset_rows(entry))
        elif entry.is_dir():
            keys.extend(str(p.resolve()) for p in _folder_images(entry))
        elif entry.is_file() and entry.suffix.lower() in LIST_SUFFIXES:
            keys.extend(str(p.resolve()) for p in _listed_images(entry))
        elif entry.is_file():
            keys.append(str(entry.resolve()))
        else:
            raise InvalidImageError(f"{entry}: no such file or folder; check the path")
    keys = list(dict.fromkeys(keys))
    if not keys:
        raise InvalidImageError("no images to label")
    stand_ins = [_stand_in_path(key) for key in keys]
    files = [Path(p) for p in stand_ins]
    root = Path(os.path.commonpath([str(p.parent) for p in files]))
    names = output_names(files)
    return [
        ImageRef(key, Path(os.path.relpath(p, root)).as_posix(), name)
        for key, p, name in zip(keys, stand_ins, names)
    ]


def _stand_in_path(key: str) -> str:
    """A file path for a key: itself, or ``<dataset folder>/<row:06d>.png`` for a dataset row."""
    if "#" in key and not os.path.exists(key):
        folder, row = key.rsplit("#", 1)
        return str(Path(folder) / f"{int(row):06d}.png")
    return key


def images_root(refs: Sequence[ImageRef]) -> Path:
    """The folder every ``file_name`` is relative to."""
    return Path(os.path.commonpath([str(Path(_stand_in_path(r.key)).parent) for r in refs]))


class ImageDataset:
    """``(position, image or None, error or None)`` for the refs at ``positions``; a map-style
    dataset for ``torch.utils.data.DataLoader`` (datasets are opened once per worker)."""

    def __init__(self, refs: Sequence[ImageRef]) -> None:
        self.refs = list(refs)
        self._datasets: dict[str, object] = {}

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, position: int) -> tuple[int, np.ndarray | None, str | None]:
        key = self.refs[position].key
        try:
            return position, self._load(key), None
        except (InvalidImageError, DatasetError, OSError) as err:
            return position, None, f"{type(err).__name__}: {err}"

    def _load(self, key: str) -> np.ndarray:
        if "#" in key and not os.path.exists(key):
            folder, row = key.rsplit("#", 1)
            if folder not in self._datasets:
                self._datasets[folder] = _load_dataset(folder)
            dataset = self._datasets[folder]
            return load_image(dataset[int(row)][_image_column(dataset, folder)])
        return load_image(key)


@dataclass
class Examples:
    """Example pairs loaded and checked: images (H, W, 3) uint8, masks (H, W) ids or colours,
    and class names by id (from ``classes.txt`` where the folder has one)."""

    images: list[np.ndarray]
    masks: list[np.ndarray]
    class_names: dict[int, str]

    def digest(self) -> str:
        """sha256 of the pixels and class names: what a resumed run must share."""
        h = hashlib.sha256()
        for array in (*self.images, *self.masks):
            h.update(str(array.shape).encode())
            h.update(np.ascontiguousarray(array).tobytes())
        h.update(json.dumps(sorted(self.class_names.items())).encode())
        return h.hexdigest()


def load_examples(
    pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]] = (),
    folder: str | os.PathLike | None = None,
) -> Examples:
    """Examples from ``(image, mask)`` path pairs and/or a semantic folder (``images/`` +
    ``masks/`` with the same stems, optional ``classes.txt``, line k naming class k)."""
    pairs = [(Path(i), Path(m)) for i, m in pairs]
    names: dict[int, str] = {}
    if folder is not None:
        from data_mixtures.sources.folder import SemanticFolderSource

        source = SemanticFolderSource(folder, ignore_value=None)
        pairs.extend(source.pairs)
        names = dict(enumerate(source.class_names))
    if not pairs:
        raise InputMismatchError(
            "give at least one example: --example IMAGE MASK or --examples DIR"
        )
    images, masks = [], []
    for image_path, mask_path in pairs:
        image, mask = load_image(image_path), load_mask(mask_path)
        if image.shape[:2] != mask.shape[:2]:
            raise InputMismatchError(
                f"example {image_path} is {image.shape[1]}x{image.shape[0]} but its mask "
                f"{mask_path} is {mask.shape[1]}x{mask.shape[0]}; they must match"
            )
        if not mask.any():
            raise InvalidMaskError(
                f"example mask {mask_path} is empty (no labelled pixel); label the object or "
                "drop that example"
            )
        images.append(image)
        masks.append(mask)
    return Examples(images, masks, names)


def named_classes(names: dict[int, str], override: str | None = None) -> dict[int, str]:
    """``names`` with ids 1, 2, ... renamed by a comma-separated ``override``
    (``--class-names``, the app's class-name box): ``"cat, dog"`` names ids 1 and 2; a blank
    entry (``"cat,,bird"``) leaves its id's name as it was."""
    names = dict(names)
    for class_id, name in enumerate((override or "").split(","), start=1):
        if name.strip():
            names[class_id] = name.strip()
    return names
