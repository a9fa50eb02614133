"""What the app does per request, without any UI: arrays or files in, arrays or files out.

Every function here is plain Python over the predictor, so it is tested without Gradio and a
script can call it: segment a batch of queries from example pairs (or a tuned prompt), write the
results through :mod:`seggpt.outputs`, read brush strokes as class ids, and track the objects of a
first-frame mask through a video. The limits below are the app's per-request ones; longer jobs
are the command-line tools' (``tools.infer``, ``tools.vos``).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from painter.errors import (
    InputMismatchError,
    InvalidImageError,
    InvalidMaskError,
    InvalidVideoError,
    PainterError,
)
from painter.io import ImageSource, default_palette, load_image, load_mask, overlay, save_index_mask
from seggpt.ensemble import EnsembleMode
from seggpt.outputs import display_palette, output_names, write_prediction
from seggpt.predictor import PreparedPrompts, SegGPTPredictor
from seggpt.tuning import TunedPrompt
from seggpt.video import DEFAULT_MEMORY, VideoSegmenter
from seggpt.video_io import FRAME_SUFFIXES, OverlayWriter, VideoFrames

if TYPE_CHECKING:
    from painter.promptable.serving import PromptableRunner

logger = logging.getLogger(__name__)

MAX_QUERIES = 32  # per request; more is a script's job (tools.infer)
BRUSH_COLORS = default_palette(9)[1:]  # (8, 3): drawn colour k -> class id k + 1
MAX_VIDEO_FRAMES = 300  # per request; longer videos are tools.vos's job
MAX_MEMORY = 16  # memory frames a video request may ask for


@dataclass
class Segmentation:
    """One request's result.

    Attributes:
        masks: per query, (H, W) int64 class ids at the query's size.
        overlays: per query, (H, W, 3) uint8 mask colours blended over the query.
        painted: per query, (H, W, 3) uint8 what the model painted.
        palette: (K + 1, 3) uint8 display colour of each class id (the user's own colours for
            colour prompts).
        info: one line for people: counts, classes found, time.
    """

    masks: list[np.ndarray]
    overlays: list[np.ndarray]
    painted: list[np.ndarray]
    palette: np.ndarray
    info: str


def segment_arrays(
    predictor: SegGPTPredictor,
    prompt_images: Sequence[ImageSource],
    prompt_masks: Sequence[ImageSource],
    query_images: Sequence[ImageSource],
    *,
    ensemble: str = "feature",
    prompts: PreparedPrompts | None = None,
) -> Segmentation:
    """Segment every query from the example pairs (or from already ``prompts``, e.g. a tuned
    prompt's); raises PainterError on bad input."""
    if not query_images:
        raise InputMismatchError("add at least one query image to segment")
    if len(query_images) > MAX_QUERIES:
        raise InputMismatchError(
            f"{len(query_images)} query images; at most {MAX_QUERIES} per request"
        )
    modes = [mode.value for mode in EnsembleMode]
    if ensemble not in modes:
        raise InputMismatchError(f"unknown ensemble {ensemble!r}; use one of {modes}")
    start = time.perf_counter()
    if prompts is None:
        prompts = predictor.prepare_prompts(prompt_images, prompt_masks, ensemble=ensemble)
    queries = [load_image(query) for query in query_images]
    results = predictor.predict(None, None, queries, prompts=prompts)
    palette = display_palette(prompts.coloring)  # the same colours tools.infer saves in
    masks = [result.mask for result in results]
    found = sorted(set().union(*(np.unique(mask).tolist() for mask in masks)) - {0})
    info = (
        f"segmented {len(queries)} quer{'y' if len(queries) == 1 else 'ies'} from "
        f"{len(prompt_images) or 'a tuned prompt as'} example(s), {ensemble} ensemble, in "
        f"{time.perf_counter() - start:.2f} s; class ids found: {found or 'none'}"
    )
    return Segmentation(
        masks=masks,
        overlays=[overlay(q, m, palette) for q, m in zip(queries, masks)],
        painted=[result.painted for result in results],
        palette=palette,
        info=info,
    )


def refined_segmentation(
    seg: Segmentation, queries: Sequence[ImageSource], runner: PromptableRunner
) -> Segmentation:
    """``seg`` with every mask refined by the promptable model (overlays redrawn)."""
    masks = [runner.refine(query, mask) for query, mask in zip(queries, seg.masks)]
    overlays = [overlay(load_image(q), m, seg.palette) for q, m in zip(queries, masks)]
    return Segmentation(masks, overlays, seg.painted, seg.palette, seg.info + "; refined")


def write_segmentation(
    seg: Segmentation, names: Sequence[str], folder: Path
) -> tuple[list[str], list[str], list[str]]:
    """Write ``<name>_mask.png`` (class ids), ``_overlay.png`` and ``_painted.png`` per query
    (:func:`seggpt.outputs.write_prediction`); returns the three lists of paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written: tuple[list[str], list[str], list[str]] = ([], [], [])
    for name, mask, over, painted in zip(names, seg.masks, seg.overlays, seg.painted):
        paths = write_prediction(folder, name, mask, seg.palette, overlay_rgb=over, painted=painted)
        for kept, path in zip(written, paths):
            kept.append(str(path))
    return written


def upload_names(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Output names of uploaded files: :func:`seggpt.outputs.output_names` of the file names alone
    (the folders a server keeps uploads in mean nothing to the user): ``a``, ``a_2``."""
    return output_names([Path(path).name for path in paths])


def mask_from_layers(layers: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Class ids of brush strokes: drawn pixels (alpha >= 128) get the id of the nearest brush
    colour (``BRUSH_COLOURS[k]`` -> id k + 1); later layers cover earlier ones.

    Args:
        layers: (H', W', 4) uint8 RGBA layers as the image editor returns them.
        size: (H, W) of the image; layers of another size are resized (nearest).
    Returns:
        (H, W) int64, 0 where nothing is drawn.
    """
    ids = np.zeros(size, dtype=np.int64)  # (H, W)
    colors = BRUSH_COLORS.astype(np.int64)  # (K, 3)
    for layer in layers:
        rgba = np.asarray(layer)
        if rgba.ndim != 3 or rgba.shape[-1] != 4:
            raise InvalidMaskError(f"drawing layer has shape {rgba.shape}; expected (H, W, 4)")
        if rgba.shape[:2] != size:
            resized = Image.fromarray(rgba.astype(np.uint8)).resize(size[::-1], Image.NEAREST)
            rgba = np.asarray(resized)
        drawn = rgba[..., 3] >= 128  # (H, W)
        rgb = rgba[drawn][:, :3].astype(np.int64)  # (M, 3)
        nearest = ((rgb[:, None, :] - colors[None]) ** 2).sum(-1).argmin(1)  # (M,)
        ids[drawn] = nearest + 1
    return ids


def prompt_from_slot(
    index: int, editor: dict | None, mask_path: str | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """(image, mask) of UI example slot ``index``: the uploaded mask if there is one, else the
    drawing; None for an empty slot."""
    background = None if editor is None else editor.get("background")
    if background is None:
        drawn = any(
            np.asarray(layer)[..., -1].any() for layer in (editor or {}).get("layers") or []
        )
        if mask_path or drawn:
            raise InvalidImageError(f"example {index + 1} has a mask but no image; add the image")
        return None
    image = load_image(background)
    if mask_path:
        return image, load_mask(mask_path)
    mask = mask_from_layers(editor.get("layers") or [], image.shape[:2])
    if not mask.any():
        raise InvalidMaskError(
            f"example {index + 1} has no mask: paint the object on the image with the brush, "
            "or upload a mask image below it"
        )
    return image, mask


def video_frames(files: Sequence[str | os.PathLike], folder: Path) -> VideoFrames:
    """The frames of one uploaded video file, or of several image files (copied into ``folder``
    and ordered by name, numbers in numeric order)."""
    paths = [Path(f) for f in files or []]
    if not paths:
        raise InvalidVideoError("upload a video file, or the frames as image files")
    if len(paths) == 1 and paths[0].suffix.lower() not in FRAME_SUFFIXES:
        return VideoFrames(paths[0])
    others = [p.name for p in paths if p.suffix.lower() not in FRAME_SUFFIXES]
    if others:
        raise InvalidVideoError(
            f"{others} are not image frames ({', '.join(FRAME_SUFFIXES)}); upload one video "
            "file, or image frames only"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        target = folder / path.name
        if target.exists():
            raise InvalidVideoError(f"two frames are named {path.name}; frame names must differ")
        shutil.copyfile(path, target)
    return VideoFrames(folder)


@dataclass
class Tracking:
    """One video request's result: overlay animation, zip of per-frame masks, an info line."""

    overlay: Path
    masks_zip: Path
    info: str


def track_video(
    predictor: SegGPTPredictor,
    frames: VideoFrames,
    first_mask: ImageSource,
    folder: Path,
    *,
    memory: int = DEFAULT_MEMORY,
    progress: Callable[[int, int], None] | None = None,
) -> Tracking:
    """Propagate ``first_mask`` (object ids or colours, at the frames' size) through ``frames``.

    Writes ``<folder>/masks/<frame>.png`` (palette PNGs), ``masks.zip`` and ``overlay.gif``.
    ``progress(done, total)`` is called after every frame.
    """
    total = len(frames)
    if total > MAX_VIDEO_FRAMES:
        raise InvalidVideoError(
            f"the video has {total} frames; the app takes at most {MAX_VIDEO_FRAMES} (use "
            "`python -m tools.vos` for longer ones, or upload fewer frames)"
        )
    if not 0 <= memory <= MAX_MEMORY:
        raise InputMismatchError(f"memory must be 0..{MAX_MEMORY} frames, got {memory}")
    segmenter = VideoSegmenter(predictor, memory_size=memory)
    masks_dir = folder / "masks"
    masks_dir.mkdir(parents=True, exist_ok=True)
    writer = OverlayWriter(folder / "overlay.gif", "gif", fps=8.0)
    start = time.perf_counter()
    state = None
    for index, frame in enumerate(frames):  # each frame is decoded once
        if state is None:
            state = segmenter.start(frame, first_mask)
            mask = state.first.mask
        else:
            mask = segmenter.step(state, frame)
        palette = state.display_palette
        save_index_mask(masks_dir / f"{frames.name(index)}.png", mask, palette=palette)
        writer.add(overlay(frame, mask, palette))
        if progress is not None:
            progress(index + 1, total)
    overlay_path = writer.close()
    archive = shutil.make_archive(str(folder / "masks"), "zip", masks_dir)
    seconds = time.perf_counter() - start
    info = (
        f"tracked objects {list(state.object_ids)} through {total} frames with a memory of "
        f"{memory} in {seconds:.1f} s ({total / max(seconds, 1e-9):.2f} frames/s)"
    )
    if memory:
        info += f"; {state.admitted} of {total - 1} predicted frames joined the memory"
    return Tracking(overlay_path, Path(archive), info)


def tuned_prompt_predictor(predictor: SegGPTPredictor, tuned: TunedPrompt) -> SegGPTPredictor:
    """``predictor`` itself, or one on the same model with the tuned prompt's type token;
    refuses a prompt tuned for another model."""
    tuned.check_model(predictor.model)
    if predictor.seg_type is tuned.seg_type:
        return predictor
    return SegGPTPredictor(
        predictor.model, device=predictor.device, dtype=predictor.dtype, seg_type=tuned.seg_type
    )


def usable_tuned_prompts(
    predictor: SegGPTPredictor, paths: Sequence[str | os.PathLike]
) -> dict[str, str]:
    """name -> path of the tuned prompts that fit the loaded model (others are logged)."""
    found = {}
    for path in paths:
        try:
            TunedPrompt.load(path).check_model(predictor.model)
        except PainterError as err:
            logger.warning("tuned prompt %s skipped: %s", path, err)
            continue
        found[Path(path).stem] = str(path)
    return found


def model_summary(predictor: SegGPTPredictor) -> dict:
    """The model, its canvas, device, dtype and the request limits, as JSON-ready values."""
    config = predictor.config
    return {
        "model": config.name or "custom",
        "embed_dim": config.vit.embed_dim,
        "depth": config.vit.depth,
        "canvas_size": list(config.canvas_size),
        "device": str(predictor.device),
        "dtype": str(predictor.dtype).removeprefix("torch."),
        "ensembles": [mode.value for mode in EnsembleMode],
        "max_queries": MAX_QUERIES,
    }
