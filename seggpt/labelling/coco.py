"""COCO instance annotations of labelled masks, through ``pycocotools``.

One annotation per connected component per class (``seggpt.labelling.scoring.instances_of``),
its mask as compressed RLE (``pycocotools.mask.encode``), ``area`` and ``bbox`` from
``pycocotools`` too, and the model's ``score``. The file is written as a stream, one image and
one annotation at a time, so its size does not bound memory; it loads with
``pycocotools.coco.COCO`` and with CVAT's and FiftyOne's COCO importers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from painter.checkpoint import atomic_write
from painter.errors import DatasetError, missing_dependency
from seggpt.labelling.scoring import Instance

try:
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
except ImportError as _err:
    raise missing_dependency("pycocotools", "label", "COCO export") from _err


def encode_instance(instance: Instance) -> dict[str, Any]:
    """The JSON-ready record of one instance: class id, score, RLE, area and bbox."""
    rle = mask_utils.encode(np.asfortranarray(instance.mask.astype(np.uint8)))
    return {
        "class_id": instance.class_id,
        "score": round(instance.score, 4),
        "rle": rle["counts"].decode("ascii"),
        "area": int(mask_utils.area(rle)),
        "bbox": [round(float(v), 2) for v in mask_utils.toBbox(rle)],
    }


def decode_instance(record: Mapping[str, Any], height: int, width: int) -> np.ndarray:
    """(H, W) bool pixels of an :func:`encode_instance` record."""
    rle = {"size": [height, width], "counts": record["rle"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def write_coco(
    path: str | os.PathLike,
    images: Iterable[Mapping[str, Any]],
    categories: Mapping[int, str],
) -> Path:
    """Write a COCO instances file, atomically.

    Args:
        path: where to write.
        images: labelled images in output order, each a mapping with ``file_name``, ``height``,
            ``width``, ``score`` and ``instances`` (records of :func:`encode_instance`).
        categories: class id -> name.
    """

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write('{"info": {"description": "labelled by tools.label"}, "licenses": [],\n')
            f.write('"categories": ' + json.dumps(_categories(categories)) + ",\n")
            f.write('"images": [')
            annotations_file = tmp + ".annotations"
            try:
                with open(annotations_file, "w", encoding="utf-8") as ann:
                    _write_images(f, ann, images)
                f.write('],\n"annotations": [')
                with open(annotations_file, encoding="utf-8") as ann:
                    for i, line in enumerate(ann):
                        f.write(("," if i else "") + "\n" + line.rstrip("\n"))
            finally:
                if os.path.exists(annotations_file):
                    os.unlink(annotations_file)
            f.write("]}\n")

    return atomic_write(path, write)


def _write_images(f, ann, images: Iterable[Mapping[str, Any]]) -> None:
    """Images into ``f`` as they come; their annotations, one JSON per line, into ``ann``."""
    annotation_id = 0
    for image_id, image in enumerate(images, start=1):
        entry = {
            "id": image_id,
            "file_name": image["file_name"],
            "height": image["height"],
            "width": image["width"],
            "score": image["score"],
        }
        f.write(("," if image_id > 1 else "") + "\n" + json.dumps(entry))
        for instance in image["instances"]:
            annotation_id += 1
            record = {
                "id": annotation_id,
                "image_id": image_id,
                "category_id": instance["class_id"],
                "segmentation": {
                    "size": [image["height"], image["width"]],
                    "counts": instance["rle"],
                },
                "area": instance["area"],
                "bbox": instance["bbox"],
                "iscrowd": 0,
                "score": instance["score"],
            }
            ann.write(json.dumps(record) + "\n")


def _categories(categories: Mapping[int, str]) -> list[dict[str, Any]]:
    return [{"id": int(i), "name": name, "supercategory": ""} for i, name in categories.items()]


def read_coco_masks(path: str | os.PathLike) -> Iterator[tuple[str, np.ndarray]]:
    """(file_name, (H, W) int64 class ids) per image of a COCO instances file, decoded with
    ``pycocotools.coco.COCO``; annotations later in the file win where they overlap."""
    try:
        coco = COCO(str(path))
    except (OSError, ValueError, KeyError) as err:
        raise DatasetError(f"{path} is not a readable COCO instances file: {err}") from err
    for image_id in sorted(coco.getImgIds()):
        info = coco.loadImgs(image_id)[0]
        mask = np.zeros((info["height"], info["width"]), dtype=np.int64)
        for annotation in coco.loadAnns(coco.getAnnIds(imgIds=image_id)):
            mask[coco.annToMask(annotation).astype(bool)] = annotation["category_id"]
        yield info["file_name"], mask
