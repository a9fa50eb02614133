"""What a segmentation run writes, and in which colours: one policy for every front end.

``tools.infer``, the Gradio app and any later tool save a prediction through this module, so the
same prediction gives byte-identical files wherever it was made:

* :func:`display_palette`: the colour of each output class id. Colour prompts keep the user's
  own colours; binary and class-index prompts get the PASCAL VOC / DAVIS colour map
  (:func:`painter.io.default_palette`), the palette ``save_index_mask`` and the video tools use.
* :func:`output_names`: one distinct file name per query, the file's stem; clashing stems are
  told apart by their parent folders, then their extensions, then a counter.
* :func:`write_prediction`: ``<name>_mask.png`` (class ids as a palette PNG),
  ``<name>_overlay.png`` (the mask over the image) and ``<name>_painted.png`` (what the model
  painted).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from painter.io import default_palette, overlay, save_image, save_index_mask
from seggpt.coloring import MaskKind, PromptColoring

#: The files written per query, in this order: class-id mask, overlay, painted output.
OUTPUT_KINDS = ("mask", "overlay", "painted")


def display_palette(coloring: PromptColoring) -> np.ndarray:
    """Colours to show and save the output class ids in.

    Args:
        coloring: how the prompt masks of the call were painted (``PreparedPrompts.coloring``).

    Returns:
        (K + 1, 3) uint8, id 0 black: the prompts' own colours for colour masks, else
        ``default_palette(K + 1)``. Not the colours the model paints with
        (``coloring.palette``), which only serve the model.
    """
    if coloring.kind is MaskKind.COLOR:
        return np.asarray(coloring.class_values, dtype=np.uint8)
    return default_palette(coloring.num_classes + 1)


def output_names(paths: Sequence[str | os.PathLike]) -> list[str]:
    """A distinct name per input file for its output files, in order.

    The file's stem; where stems clash, prefixed with as many parent folders as tell the files
    apart (``x/img.png``, ``y/img.png`` -> ``x_img``, ``y_img``), and suffixed with the extension
    where files in one folder differ only in it (``a.png``, ``a.jpg`` -> ``a_png``, ``a_jpg``).
    Names still taken get a counter (``a``, ``a_2``). Folders are compared as absolute paths
    (the file system is not read), so bare file names share one folder:
    ``["x.png", "x.png"]`` -> ``x``, ``x_2``.
    """
    absolute = [Path(os.path.abspath(path)) for path in paths]
    names = [path.stem or "query" for path in absolute]
    groups: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(names):
        groups[name].append(i)
    for stem, members in groups.items():
        if len(members) < 2:
            continue
        depth = _telling_depth({absolute[i].parent.parts[1:] for i in members})
        for i in members:
            folder = absolute[i].parent
            name = "_".join((*folder.parts[1:][-depth:], stem)) if depth else stem
            suffixes = {absolute[j].suffix for j in members if absolute[j].parent == folder}
            if len(suffixes) > 1:
                name += "_" + absolute[i].suffix.lstrip(".")
            names[i] = name
    seen: set[str] = set()
    for i, name in enumerate(names):  # a made-up name may still equal another file's stem
        candidate, k = name, 1
        while candidate in seen:
            k += 1
            candidate = f"{name}_{k}"
        names[i] = candidate
        seen.add(candidate)
    return names


def output_paths(folder: str | os.PathLike, name: str) -> list[Path]:
    """``folder/<name>_<kind>.png`` for every kind of :data:`OUTPUT_KINDS`, in that order."""
    return [Path(folder) / f"{name}_{kind}.png" for kind in OUTPUT_KINDS]


def write_prediction(
    folder: str | os.PathLike,
    name: str,
    mask: np.ndarray,
    palette: np.ndarray,
    *,
    image: np.ndarray | None = None,
    overlay_rgb: np.ndarray | None = None,
    painted: np.ndarray | None = None,
) -> list[Path]:
    """Write one query's result files into ``folder`` (created if missing).

    Args:
        folder: the output folder.
        name: the query's name (see :func:`output_names`).
        mask: (H, W) integer class ids at the query's size.
        palette: (K + 1, 3) uint8 colours of the ids (see :func:`display_palette`).
        image: (H, W, 3) uint8 query; with it the overlay is drawn and written.
        overlay_rgb: (H, W, 3) uint8 overlay already drawn (instead of ``image``).
        painted: (H, W, 3) uint8 what the model painted; written when given.

    Returns:
        The paths written: the mask, then the overlay and the painted image where written.
    """
    mask_path, overlay_path, painted_path = output_paths(folder, name)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    save_index_mask(mask_path, mask, palette=palette)
    written = [mask_path]
    if overlay_rgb is None and image is not None:
        overlay_rgb = overlay(image, mask, palette)
    if overlay_rgb is not None:
        save_image(overlay_path, overlay_rgb)
        written.append(overlay_path)
    if painted is not None:
        save_image(painted_path, painted)
        written.append(painted_path)
    return written


def _telling_depth(folders: set[tuple[str, ...]]) -> int:
    """Fewest trailing folder names that tell ``folders`` apart; 0 for a single folder."""
    if len(folders) < 2:
        return 0
    longest = max(map(len, folders))
    for depth in range(1, longest):
        if len({folder[-depth:] for folder in folders}) == len(folders):
            return depth
    return longest  # the whole paths, which differ
