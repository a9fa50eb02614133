"""Few-shot benchmarks from their usual on-disk layouts: PASCAL-5i, COCO-20i and FSS-1000.

Class splits and episode counts follow the HSNet evaluation code (juhongm999/hsnet, reused by
Matcher; summarised in shared/reference/sam_and_peers.md §5):

* PASCAL-5i: 20 VOC classes, fold ``i`` tests classes ``5i+1 .. 5i+5``; 1000 episodes cycling
  through the fold's query list; the VOC border (255) is ignored.
* COCO-20i: 80 classes, fold ``i`` tests ``{4k + i + 1 : k = 0..19}``, HSNet's interleaved split
  (PFENet-style papers use the contiguous 1-20, 21-40, ...; their numbers are not comparable);
  1000 episodes, each a uniform class, then a query showing it.
* FSS-1000: every image of the test classes is a query once (2,400 for the 240 test classes).

Layouts (``root`` is the folder given on the command line)::

    PASCAL  root/JPEGImages/<name>.jpg
            root/SegmentationClassAug/<name>.png     class ids 1..20, 0 background, 255 border
            root/splits/pascal/val/fold<i>.txt       HSNet's fold lists, lines "<name>__<class>";
                                                     without them every image named in
            root/ImageSets/Segmentation/val.txt      is a query for each fold class it shows
    COCO    root/val2014/<name>.jpg
            root/annotations/val2014/<name>.png      class ids 1..80 per pixel (HSNet's layout)
            root/splits/coco/val/fold<i>.txt         optional "<name>__<class>" lists; without
                                                     them the annotations are scanned once. HSNet
                                                     ships pickles, which are never unpickled here
    FSS     root/<class>/<n>.jpg + <n>.png           masks 0/255, thresholded at 128 (as HSNet)
            root/splits/test.txt                     test class names, one a line (HSNet's
                                                     splits/fss/test.txt is read too); without it
                                                     every class folder is a test class

Supports come from the same images as the queries (the fold's list, or the scanned split).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from data_mixtures.fewshot_folds import FewShotFold
from data_mixtures.records import IGNORE_LABEL, SegRecord, SegType
from data_mixtures.sources.base import MaskFileSource, RecordSource
from data_mixtures.sources.folder import SemanticFolderSource
from painter.errors import ConfigError, DatasetError, InvalidMaskError
from painter.io import load_image

logger = logging.getLogger(__name__)

NUM_FOLDS = 4
PASCAL_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip
_MASK_MODES = ("1", "L", "P", "I", "I;16")


def pascal5i_classes(fold: int) -> tuple[int, ...]:
    """Test classes of PASCAL-5i fold ``fold``: VOC ids ``5 * fold + 1 .. 5 * fold + 5``."""
    _check_fold(fold)
    return tuple(range(5 * fold + 1, 5 * fold + 6))


def coco20i_classes(fold: int) -> tuple[int, ...]:
    """Test classes of COCO-20i fold ``fold``: ``4k + fold + 1`` for k = 0..19 (HSNet's split)."""
    _check_fold(fold)
    return tuple(4 * k + fold + 1 for k in range(20))


def read_class_ids(path: Path) -> np.ndarray:
    """A single-channel class-id PNG as (H, W) int64, values as stored (no 0/255 -> 0/1 rule)."""
    try:
        with Image.open(path) as image:
            if image.mode not in _MASK_MODES:
                raise DatasetError(
                    f"{path} is a {image.mode} image; this layout needs single-channel masks "
                    "whose pixel values are class ids"
                )
            ids = np.asarray(image)
    except FileNotFoundError:
        raise InvalidMaskError(
            f"{path}: no such file; the split names an image without mask"
        ) from None
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        raise InvalidMaskError(f"{path}: unreadable mask ({error})") from error
    return ids.astype(np.int64)


class PairedFileSource(MaskFileSource):
    """Records from explicit (image, mask) file pairs; masks hold class ids.

    Args:
        pairs: (image path, mask path) per record.
        name: source name.
        ignore_value: mask value meaning "unlabelled" (becomes ``IGNORE_LABEL``), or None.
        class_names: names indexed by class id, or ``()``.
    """

    seg_types = frozenset({SegType.SEMANTIC})

    def __init__(
        self,
        pairs: list[tuple[Path, Path]],
        *,
        name: str,
        ignore_value: int | None = None,
        class_names: tuple[str, ...] = (),
    ) -> None:
        super().__init__(name)
        self.pairs = pairs
        self.ignore_value = ignore_value
        self.class_names = class_names

    def __len__(self) -> int:
        return len(self.pairs)

    def _mask(self, index: int) -> np.ndarray:
        ids = read_class_ids(self.pairs[index][1])
        if self.ignore_value is not None:
            ids = np.where(ids == self.ignore_value, IGNORE_LABEL, ids)
        return ids

    def load(self, index: int) -> SegRecord:
        image_path, mask_path = self.pairs[index]
        image, mask = load_image(image_path), self._mask(index)
        if mask.shape != image.shape[:2]:
            raise DatasetError(
                f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but image {image_path} is "
                f"{image.shape[1]}x{image.shape[0]}; masks must have the image's size"
            )
        return SegRecord(image, mask, None, self.class_names, self.name, image_path.stem)


class FSS1000Source(RecordSource):
    """FSS-1000 class folders: record masks are ``class id`` where the 0/255 mask is >= 128.

    Class ids are 1.. in the order of ``classes``; a record's class is known without reading it.
    """

    seg_types = frozenset({SegType.SEMANTIC})

    def __init__(self, root: Path, classes: list[str], *, name: str = "fss-1000") -> None:
        super().__init__(name)
        self.items: list[tuple[Path, Path, int]] = []
        for class_id, folder_name in enumerate(classes, start=1):
            folder = root / folder_name
            if not folder.is_dir():
                raise DatasetError(f"FSS-1000 class folder missing: {folder}")
            for image_path in sorted(folder.glob("*.jpg"), key=_natural_key):
                mask_path = image_path.with_suffix(".png")
                if not mask_path.is_file():
                    raise DatasetError(f"{image_path} has no mask {mask_path.name} beside it")
                self.items.append((image_path, mask_path, class_id))
        if not self.items:
            raise DatasetError(f"no <class>/<n>.jpg images found under {root}")
        self.class_names = ("background", *classes)

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> SegRecord:
        image_path, mask_path, class_id = self.items[index]
        image = load_image(image_path)
        try:
            with Image.open(mask_path) as mask_image:
                grey = np.asarray(mask_image.convert("L"))  # (H, W)
        except (OSError, UnidentifiedImageError, SyntaxError) as error:
            raise InvalidMaskError(f"{mask_path}: unreadable mask ({error})") from error
        if grey.shape != image.shape[:2]:
            raise DatasetError(f"mask {mask_path} and image {image_path} differ in size")
        semantic = np.where(grey >= 128, class_id, 0).astype(np.int64)
        return SegRecord(image, semantic, None, self.class_names, self.name, image_path.stem)

    def record_classes(self, index: int) -> tuple[int, ...]:
        return (self.items[index][2],)


def pascal5i_fold(
    root: str | Path, fold: int, *, num_episodes: int = 1000, seed: int = 0
) -> FewShotFold:
    """Fold ``fold`` of PASCAL-5i from a VOC2012 folder with SegmentationClassAug (see above)."""
    root = Path(root)
    images, masks = _require_dir(root, "JPEGImages"), _require_dir(root, "SegmentationClassAug")
    classes = pascal5i_classes(fold)
    listed = root / "splits" / "pascal" / "val" / f"fold{fold}.txt"
    if listed.is_file():
        entries = _read_listed_queries(listed)
    else:
        names_file = root / "ImageSets" / "Segmentation" / "val.txt"
        if not names_file.is_file():
            raise DatasetError(
                f"{root} has neither the fold list {listed.relative_to(root)} nor "
                f"{names_file.relative_to(root)}; add one (HSNet's data/splits folder, or VOC's "
                "ImageSets) to say which images are queries"
            )
        entries = [(name, None) for name in _read_lines(names_file)]
    names = sorted({name for name, _ in entries})
    pairs = [(images / f"{n}.jpg", masks / f"{n}.png") for n in names]
    source = PairedFileSource(
        pairs, name="pascal-5i", ignore_value=255, class_names=("background", *PASCAL_CLASSES)
    )
    queries = _queries(source, names, entries, classes)
    return FewShotFold(
        source,
        classes,
        name=f"pascal-5i/{fold}",
        queries=queries,
        members=_members(queries),
        num_episodes=num_episodes,
        seed=seed,
        class_names={c: PASCAL_CLASSES[c - 1] for c in classes},
    )


def coco20i_fold(
    root: str | Path,
    fold: int,
    *,
    split: str = "val2014",
    num_episodes: int = 1000,
    seed: int = 0,
) -> FewShotFold:
    """Fold ``fold`` of COCO-20i from HSNet's COCO2014 layout (see the module docstring)."""
    root = Path(root)
    images = _require_dir(root, split)
    masks = _require_dir(root, f"annotations/{split}")
    classes = coco20i_classes(fold)
    listed = root / "splits" / "coco" / "val" / f"fold{fold}.txt"
    if listed.is_file():
        entries = _read_listed_queries(listed)
        names = sorted({name for name, _ in entries})
    else:
        names = sorted(p.stem for p in masks.glob("*.png"))
        if not names:
            raise DatasetError(f"no class-index PNG annotations found in {masks}")
        entries = [(name, None) for name in names]
    pairs = [(images / f"{n}.jpg", masks / f"{n}.png") for n in names]
    source = PairedFileSource(pairs, name="coco-20i")
    members = _members(_queries(source, names, entries, classes))
    return FewShotFold(
        source,
        classes,
        name=f"coco-20i/{fold}",
        members=members,
        num_episodes=num_episodes,
        seed=seed,
    )


def fss1000_fold(
    root: str | Path, *, num_episodes: int | None = None, seed: int = 0
) -> FewShotFold:
    """The FSS-1000 test fold: classes from ``splits/test.txt`` when present, else all folders."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"FSS-1000 folder not found: {root}")
    for split_file in (root / "splits" / "test.txt", root / "splits" / "fss" / "test.txt"):
        if split_file.is_file():
            classes = sorted(_read_lines(split_file))
            break
    else:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "splits")
        logger.info("%s: no splits/test.txt, every class folder (%d) is tested", root, len(classes))
    source = FSS1000Source(root, classes)
    queries = [(i, class_id) for i, (_, _, class_id) in enumerate(source.items)]
    ids = tuple(range(1, len(classes) + 1))
    return FewShotFold(
        source,
        ids,
        name="fss-1000",
        queries=queries,
        members=_members(queries),
        num_episodes=num_episodes,
        seed=seed,
        class_names=dict(zip(ids, classes)),
    )


def folder_fold(
    root: str | Path | RecordSource, *, num_episodes: int = 1000, seed: int = 0
) -> FewShotFold:
    """One fold over every class of a user dataset: an ``images/`` + ``masks/`` folder (see
    :class:`SemanticFolderSource`) or any semantic ``RecordSource``; classes drawn first."""
    source = root if isinstance(root, RecordSource) else SemanticFolderSource(root)
    index = source.class_index()
    names = getattr(source, "class_names", ())
    return FewShotFold(
        source,
        sorted(index),
        name=source.name,
        members=index,
        num_episodes=num_episodes,
        seed=seed,
        class_names={c: names[c] for c in index if c < len(names)},
    )


# -- helpers -------------------------------------------------------------------------------------
def _check_fold(fold: int) -> None:
    if not 0 <= fold < NUM_FOLDS:
        raise ConfigError(f"fold must be 0..{NUM_FOLDS - 1}, got {fold}")


def _require_dir(root: Path, relative: str) -> Path:
    folder = root / relative
    if not folder.is_dir():
        raise DatasetError(f"{root} lacks the folder {relative}/ ({folder}); check the root")
    return folder


def _read_lines(path: Path) -> list[str]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def _read_listed_queries(path: Path) -> list[tuple[str, int]]:
    """HSNet's "<name>__<class id>" lines (the name may carry a folder and an extension)."""
    entries = []
    for number, line in enumerate(_read_lines(path), start=1):
        name, sep, class_text = line.rpartition("__")
        if not sep or not class_text.isdigit():
            raise DatasetError(
                f"{path}:{number}: expected '<image name>__<class id>', got {line!r}"
            )
        entries.append((Path(name).stem, int(class_text)))
    return entries


def _queries(
    source: PairedFileSource,
    names: list[str],
    entries: list[tuple[str, int | None]],
    classes: tuple[int, ...],
) -> list[tuple[int, int]]:
    """(record, class) pairs of the fold's classes; a None class means every class it shows."""
    position = {name: i for i, name in enumerate(names)}
    queries = []
    scanning = sum(class_id is None for _, class_id in entries)
    progress = tqdm(entries, desc=f"scan {source.name} masks", disable=scanning < 1000)
    for name, class_id in progress:
        index = position[name]
        shown = source.record_classes(index) if class_id is None else (class_id,)
        queries.extend((index, c) for c in shown if c in classes)
    return queries


def _members(queries: list[tuple[int, int]]) -> dict[int, list[int]]:
    members: dict[int, list[int]] = {}
    for index, class_id in queries:
        members.setdefault(class_id, []).append(index)
    return members


def _natural_key(path: Path) -> tuple:
    stem = path.stem
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)
