"""Instance segmentation sources: instance-id PNG folders and COCO JSON annotations.

Instance-id folder layout::

    root/
      images/0001.jpg, ...
      instances/0001.png, ...   0 = no object, each other value one object (8- or 16-bit grey or
                                palette PNGs; or colour PNGs where each non-black colour is one
                                object)

COCO: an annotation JSON (``images``, ``annotations``, ``categories``) plus the image folder.
Categories are renumbered to contiguous class ids 1..K in order of their COCO id; crowd regions
keep their class in ``semantic`` and are ``IGNORE_LABEL`` in ``instance``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import numpy as np

from data_mixtures.records import IGNORE_LABEL, SegRecord, SegType
from data_mixtures.sources.base import RecordSource, list_images, pair_by_stem
from painter.errors import DatasetError
from painter.io import load_image, load_mask
from painter.masks import decode_segmentation

logger = logging.getLogger(__name__)


def colors_to_ids(mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 colour-coded instances -> (H, W) int64 ids; black is 0, others 1..N."""
    colors, ids = np.unique(mask.reshape(-1, 3), axis=0, return_inverse=True)  # (N, 3), (H*W,)
    ids = ids.reshape(mask.shape[:2]).astype(np.int64)  # (H, W)
    # unique rows are sorted, so black, when present, is colour 0 already
    return ids if not colors[0].any() else ids + 1


class InstanceFolderSource(RecordSource):
    """Records from ``images/`` + ``instances/`` id PNGs; files are read on access.

    Args:
        root: the dataset folder.
        images_dir: image sub-folder name.
        instances_dir: instance-id mask sub-folder name.
        name: source name (default: the folder name).
    """

    seg_types = frozenset({SegType.INSTANCE})

    def __init__(
        self,
        root: str | Path,
        *,
        images_dir: str = "images",
        instances_dir: str = "instances",
        name: str | None = None,
    ) -> None:
        root = Path(root)
        super().__init__(name or root.name)
        image_dir, mask_dir = root / images_dir, root / instances_dir
        self.pairs = pair_by_stem(
            list_images(image_dir), list_images(mask_dir), image_dir=image_dir, mask_dir=mask_dir
        )
        logger.info("%s: %d image/instance pairs in %s", self.name, len(self.pairs), root)

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> SegRecord:
        image_path, mask_path = self.pairs[index]
        image = load_image(image_path)
        mask = load_mask(mask_path)
        instance = colors_to_ids(mask) if mask.ndim == 3 else mask
        if instance.shape != image.shape[:2]:
            raise DatasetError(
                f"instance mask {mask_path} is {instance.shape[1]}x{instance.shape[0]} but image "
                f"{image_path} is {image.shape[1]}x{image.shape[0]}; they must have the same size"
            )
        return SegRecord(image=image, instance=instance, source=self.name, key=image_path.stem)


class CocoSource(RecordSource):
    """Records from a COCO annotation file; images and masks are decoded on access.

    Args:
        annotation_file: COCO JSON (``instances_*.json`` style, polygons and/or RLE).
        image_root: folder the images' ``file_name`` entries are relative to.
        use_pycocotools: decode with pycocotools; None = when it is installed.
        keep_empty: keep images without any annotation (default: drop them).
        name: source name (default: the JSON file stem).
    """

    seg_types = frozenset({SegType.SEMANTIC, SegType.INSTANCE})

    def __init__(
        self,
        annotation_file: str | Path,
        image_root: str | Path,
        *,
        use_pycocotools: bool | None = None,
        keep_empty: bool = False,
        name: str | None = None,
    ) -> None:
        annotation_file = Path(annotation_file)
        super().__init__(name or annotation_file.stem)
        if not annotation_file.is_file():
            raise DatasetError(f"COCO annotation file not found: {annotation_file}")
        try:
            data = json.loads(annotation_file.read_text(encoding="utf-8"))
            categories = sorted(data["categories"], key=lambda c: c["id"])
            images = sorted(data["images"], key=lambda im: im["id"])
            annotations = data["annotations"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise DatasetError(
                f"{annotation_file} is not a COCO annotation file (needs 'images', "
                f"'annotations' and 'categories'): {error}"
            ) from error
        if use_pycocotools is None:
            use_pycocotools = importlib.util.find_spec("pycocotools") is not None
        self.use_pycocotools = use_pycocotools
        self.image_root = Path(image_root)
        self.class_of_category = {c["id"]: k + 1 for k, c in enumerate(categories)}
        self.class_names = ("background", *(str(c["name"]) for c in categories))
        by_image: dict[int, list[dict]] = {}
        without_mask = 0
        for ann in annotations:
            if not ann.get("segmentation"):
                without_mask += 1
                continue
            if ann.get("category_id") not in self.class_of_category:
                raise DatasetError(
                    f"{annotation_file}: annotation {ann.get('id')} has unknown category "
                    f"{ann.get('category_id')}"
                )
            by_image.setdefault(ann["image_id"], []).append(ann)
        if without_mask:
            logger.warning("%s: %d annotations without a mask ignored", self.name, without_mask)
        self.images = [im for im in images if keep_empty or im["id"] in by_image]
        if not self.images:
            raise DatasetError(f"{annotation_file} has no annotated images")
        # larger objects first, so small ones drawn later stay visible where they overlap
        self.annotations = [
            sorted(by_image.get(im["id"], []), key=lambda a: -float(a.get("area", 0.0)))
            for im in self.images
        ]
        logger.info("%s: %d images, %d categories", self.name, len(self.images), len(categories))

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> SegRecord:
        info = self.images[index]
        path = self.image_root / info["file_name"]
        image = load_image(path)
        height, width = image.shape[:2]
        if (info.get("height", height), info.get("width", width)) != (height, width):
            raise DatasetError(
                f"image {path} is {width}x{height} but the annotation file says "
                f"{info.get('width')}x{info.get('height')}"
            )
        semantic = np.zeros((height, width), dtype=np.int64)
        instance = np.zeros((height, width), dtype=np.int64)
        next_id = 1
        for ann in self.annotations[index]:
            region = decode_segmentation(
                ann["segmentation"], height, width, use_pycocotools=self.use_pycocotools
            )
            semantic[region] = self.class_of_category[ann["category_id"]]
            if ann.get("iscrowd", 0):
                instance[region] = IGNORE_LABEL
            else:
                instance[region] = next_id
                next_id += 1
        return SegRecord(
            image=image,
            semantic=semantic,
            instance=instance,
            class_names=self.class_names,
            source=self.name,
            key=str(info["id"]),
        )

    def record_classes(self, index: int) -> tuple[int, ...]:
        """Classes annotated in record ``index`` (from the JSON; nothing is decoded)."""
        classes = {self.class_of_category[a["category_id"]] for a in self.annotations[index]}
        return tuple(sorted(classes))
