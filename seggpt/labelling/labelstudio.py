"""Label Studio tasks with the labelled masks as pre-annotations (brush labels).

Each instance becomes one ``brushlabels`` result whose mask is Label Studio's brush RLE, encoded
and decoded by ``label_studio_sdk.converter.brush`` (``mask2rle`` / ``decode_rle``), never by
hand. The labelling config the tasks expect is :func:`label_config`: an ``Image`` named
``image`` and ``BrushLabels`` named ``label`` with one ``Label`` per class name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from painter.checkpoint import atomic_write
from painter.errors import DatasetError, missing_dependency

try:
    from label_studio_sdk.converter import brush
except ImportError as _err:
    raise missing_dependency("label-studio-sdk", "label", "Label Studio export") from _err

FROM_NAME = "label"
TO_NAME = "image"
MODEL_VERSION = "painter-seggpt"


def label_config(class_names: Sequence[str]) -> str:
    """The labelling config (XML) of the tasks: one brush label per class name."""
    labels = "".join(f"\n    <Label value={quoteattr(name)}/>" for name in class_names)
    return (
        f'<View>\n  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
        f'  <BrushLabels name="{FROM_NAME}" toName="{TO_NAME}">{labels}\n  </BrushLabels>\n'
        "</View>\n"
    )


def brush_result(
    mask: np.ndarray,
    class_name: str,
    *,
    result_id: str,
    from_name: str = FROM_NAME,
    to_name: str = TO_NAME,
) -> dict[str, Any]:
    """One brush-label result of a (H, W) bool mask; ``from_name`` and ``to_name`` are the
    names of the config's ``BrushLabels`` and ``Image`` tags."""
    height, width = mask.shape
    return {
        "id": result_id,
        "type": "brushlabels",
        "from_name": from_name,
        "to_name": to_name,
        "original_width": int(width),
        "original_height": int(height),
        "image_rotation": 0,
        "value": {
            "format": "rle",
            "rle": brush.mask2rle(mask.astype(np.uint8) * 255),
            "brushlabels": [class_name],
        },
    }


def task(
    image_ref: str,
    masks: Sequence[tuple[np.ndarray, int, float]],
    class_names: Mapping[int, str],
    *,
    score: float,
    key: str,
) -> dict[str, Any]:
    """One task: the image reference and a prediction holding a result per instance.

    Args:
        image_ref: what Label Studio loads the image from (a URL or ``/data/local-files/?d=...``).
        masks: (mask (H, W) bool, class id, score) per instance.
        class_names: class id -> label name.
        score: the image's score (the prediction's).
        key: a stable name of the image; result ids are made from it.
    """
    return {
        "data": {TO_NAME: image_ref},
        "meta": {"key": key},
        "predictions": [prediction(masks, class_names, score=score, key=key)],
    }


def prediction(
    masks: Sequence[tuple[np.ndarray, int, float]],
    class_names: Mapping[int, str],
    *,
    score: float,
    key: str,
    model_version: str = MODEL_VERSION,
    from_name: str = FROM_NAME,
    to_name: str = TO_NAME,
) -> dict[str, Any]:
    """One prediction: a brush result per instance (arguments as :func:`task` and
    :func:`brush_result` take them)."""
    results = [
        brush_result(
            mask,
            class_names[class_id],
            result_id=f"{key}-{i}",
            from_name=from_name,
            to_name=to_name,
        )
        for i, (mask, class_id, _) in enumerate(masks)
    ]
    return {"model_version": model_version, "score": score, "result": results}


def write_tasks(path: str | os.PathLike, tasks: Iterable[Mapping[str, Any]]) -> Path:
    """Write a JSON list of tasks, one at a time, atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("[")
            for i, entry in enumerate(tasks):
                f.write(("," if i else "") + "\n" + json.dumps(entry))
            f.write("\n]\n")

    return atomic_write(path, write)


def decode_results(
    results: Sequence[Mapping[str, Any]], class_ids: Mapping[str, int]
) -> np.ndarray | None:
    """(H, W) int64 class ids drawn from brush-label results (later ones win), or None when
    there are none."""
    mask = None
    for result in results:
        if result.get("type") != "brushlabels":
            continue
        value = result["value"]
        height, width = result["original_height"], result["original_width"]
        pixels = brush.decode_rle(value["rle"]).reshape(height, width, 4)[..., 3] > 127
        [name] = value["brushlabels"]
        if name not in class_ids:
            raise DatasetError(f"brush label {name!r} is not one of {sorted(class_ids)}")
        if mask is None:
            mask = np.zeros((height, width), dtype=np.int64)
        mask[pixels] = class_ids[name]
    return mask
