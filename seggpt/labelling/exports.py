"""The files a labelling run leaves, written from per-image records: one writer for
``tools.label`` (records read back from its manifest) and the app's Label tab (records of the
session in memory).

A record is a JSON-ready mapping: ``height``, ``width``, ``score`` and ``instances``
(:func:`seggpt.labelling.coco.encode_instance` records), as the manifest stores it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from painter.checkpoint import atomic_write
from seggpt.labelling import coco, labelstudio
from seggpt.labelling.inputs import ImageRef
from seggpt.labelling.review import write_review
from seggpt.labelling.scoring import Instance
from seggpt.outputs import output_paths

#: Where each labelled image's mask and overlay PNGs go, under the output folder.
MASKS_DIR = "masks"
COCO_FILE = "coco.json"
TASKS_FILE = "label_studio_tasks.json"
CONFIG_FILE = "label_studio_config.xml"
CLASSES_FILE = "classes.json"
#: Label Studio's URL of a file under its LOCAL_FILES_DOCUMENT_ROOT.
LOCAL_FILES_PREFIX = "/data/local-files/?d="


def image_record(
    height: int, width: int, score: float, instances: Sequence[Instance]
) -> dict[str, Any]:
    """The record of one labelled image."""
    return {
        "height": int(height),
        "width": int(width),
        "score": round(float(score), 4),
        "instances": [coco.encode_instance(i) for i in instances],
    }


def write_exports(
    out: Path,
    items: Sequence[tuple[ImageRef, Mapping[str, Any]]],
    class_names: Mapping[int, str],
    *,
    failed: Sequence[tuple[str, str]] = (),
    image_url_prefix: str = LOCAL_FILES_PREFIX,
) -> dict[str, Any]:
    """Write the COCO file, the Label Studio tasks and config, ``classes.json`` and the review
    files for ``items`` (in order; their PNGs already in ``out/masks``).

    Args:
        items: (image, record) per labelled image.
        class_names: class id -> name (the COCO categories and Label Studio labels).
        failed: (file name, error) per image that could not be read.
        image_url_prefix: prefix of each ``file_name`` in the Label Studio tasks.
    """
    coco.write_coco(
        out / COCO_FILE, ({"file_name": ref.file_name, **rec} for ref, rec in items), class_names
    )

    def tasks():
        for ref, record in items:
            h, w = record["height"], record["width"]
            masks = [
                (coco.decode_instance(inst, h, w), inst["class_id"], inst["score"])
                for inst in record["instances"]
            ]
            yield labelstudio.task(
                image_url_prefix + ref.file_name,
                masks,
                class_names,
                score=record["score"],
                key=ref.name,
            )

    labelstudio.write_tasks(out / TASKS_FILE, tasks())
    config = labelstudio.label_config(list(class_names.values()))
    atomic_write(out / CONFIG_FILE, lambda tmp: Path(tmp).write_text(config, encoding="utf-8"))
    summary = {"classes": {str(k): v for k, v in class_names.items()}, "failed": list(failed)}
    text = json.dumps(summary, indent=1)
    atomic_write(out / CLASSES_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    reviewed = [
        (ref.file_name, record["score"], output_paths(out / MASKS_DIR, ref.name)[1])
        for ref, record in items
    ]
    write_review(out, reviewed, failed)
    return {"labelled": len(items), "failed": list(failed)}
