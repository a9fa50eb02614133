"""Gradio app: segment images from example image+mask pairs, in the browser or through an API.

    python app_gradio.py [--checkpoint demo] [--host 127.0.0.1] [--port 7860] [--device auto]
        [--dtype auto] [--concurrency 1]

One predictor is loaded at start and every request runs on it through Gradio's queue. The UI is
thin: each endpoint calls a small function that takes arrays (or file paths) and returns arrays
(or file paths), so the logic is tested without Gradio. Scripts call the named endpoints
(``/segment``, ``/example_files``, ``/model_info``) with ``gradio_client``; see the README's
"App" section. A new tab is one function ``tab(ctx)`` appended to ``TABS``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from painter.errors import (
    InputMismatchError,
    InvalidImageError,
    InvalidMaskError,
    InvalidVideoError,
    PainterError,
)
from painter.io import (
    ImageSource,
    default_palette,
    load_image,
    load_mask,
    overlay,
    save_image,
    save_index_mask,
)
from seggpt import EnsembleMode, SegGPTPredictor, load_model
from seggpt.coloring import MaskKind, PromptColoring
from seggpt.loading import DEMO_TUNED_PROMPT
from seggpt.predictor import PreparedPrompts
from seggpt.samples import fixed_class_split
from seggpt.tuning import TunedPrompt
from seggpt.video import DEFAULT_MEMORY, VideoSegmenter
from seggpt.video_io import FRAME_SUFFIXES, OverlayWriter, VideoFrames
from tools.cli import add_dtype_argument

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio loads: no calls out

import gradio as gr  # noqa: E402

logger = logging.getLogger("app_gradio")

MAX_QUERIES = 32  # per request; more is a script's job (tools.infer)
PROMPT_SLOTS = 4  # example pairs the UI offers
BRUSH_COLOURS = default_palette(9)[1:]  # (8, 3): drawn colour k -> class id k + 1
OUTPUT_MAX_AGE_S = 3600.0  # request folders older than this are removed
MAX_VIDEO_FRAMES = 300  # per request; longer videos are tools.vos's job
MAX_MEMORY = 16  # memory frames the video tab offers


# --- pure functions: arrays / paths in, arrays / paths out ------------------------------------


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


def display_palette(coloring: PromptColoring) -> np.ndarray:
    """(K + 1, 3) uint8 colours for the output ids: the prompts' own for colour masks."""
    if coloring.kind is MaskKind.COLOR:
        return np.asarray(coloring.class_values, dtype=np.uint8)
    return default_palette(coloring.num_classes + 1)


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
    palette = display_palette(prompts.coloring)
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
    """Write ``<name>_mask.png`` (class ids), ``_overlay.png`` and ``_painted.png`` per query."""
    folder.mkdir(parents=True, exist_ok=True)
    written: tuple[list[str], list[str], list[str]] = ([], [], [])
    for name, mask, over, painted in zip(names, seg.masks, seg.overlays, seg.painted):
        paths = [folder / f"{name}_{kind}.png" for kind in ("mask", "overlay", "painted")]
        save_index_mask(paths[0], mask, palette=seg.palette)
        save_image(paths[1], over)
        save_image(paths[2], painted)
        for kept, path in zip(written, paths):
            kept.append(str(path))
    return written


def output_names(paths: Sequence[str | os.PathLike]) -> list[str]:
    """File stems, made distinct with a counter (``a``, ``a_2``)."""
    names: list[str] = []
    for path in paths:
        stem, k = Path(path).stem or "query", 1
        name = stem
        while name in names:
            k += 1
            name = f"{stem}_{k}"
        names.append(name)
    return names


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
    colours = BRUSH_COLOURS.astype(np.int64)  # (K, 3)
    for layer in layers:
        rgba = np.asarray(layer)
        if rgba.ndim != 3 or rgba.shape[-1] != 4:
            raise InvalidMaskError(f"drawing layer has shape {rgba.shape}; expected (H, W, 4)")
        if rgba.shape[:2] != size:
            resized = Image.fromarray(rgba.astype(np.uint8)).resize(size[::-1], Image.NEAREST)
            rgba = np.asarray(resized)
        drawn = rgba[..., 3] >= 128  # (H, W)
        rgb = rgba[drawn][:, :3].astype(np.int64)  # (M, 3)
        nearest = ((rgb[:, None, :] - colours[None]) ** 2).sum(-1).argmin(1)  # (M,)
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


def class_legend(names: Sequence[str], palette: np.ndarray) -> str:
    """Markdown legend: a colour swatch and the name of every class id (background first)."""
    rows = [
        f'<span style="display:inline-block;width:1em;height:1em;background:rgb({r},{g},{b});'
        f'border:1px solid #888"></span> {i}: {name}'
        for i, (name, (r, g, b)) in enumerate(zip(names, palette.tolist()))
    ]
    return "  \n".join(rows)


# --- app state and examples ------------------------------------------------------------------


@dataclass
class AppContext:
    """What every tab gets: the predictor, the bundled examples and a folder for outputs."""

    predictor: SegGPTPredictor
    examples: dict[str, dict[str, list[str]]]  # name -> prompt_images/prompt_masks/query_images
    workdir: Path
    video_example: dict[str, object] = field(default_factory=dict)  # frames, first_mask files
    tuned_prompts: dict[str, str] = field(default_factory=dict)  # name -> tuned prompt file
    tuned_queries: list[str] = field(default_factory=list)  # query files for tuned prompts
    promptable: PromptableRunner | None = None  # the promptable model, when one is loaded

    def request_folder(self) -> Path:
        """A fresh folder for one request's files; folders past OUTPUT_MAX_AGE_S are removed."""
        root = self.workdir / "outputs"
        root.mkdir(parents=True, exist_ok=True)
        for old in root.iterdir():
            if time.time() - old.stat().st_mtime > OUTPUT_MAX_AGE_S:
                shutil.rmtree(old, ignore_errors=True)
        folder = root / uuid.uuid4().hex
        folder.mkdir()
        return folder


def write_examples(folder: Path) -> dict[str, dict[str, list[str]]]:
    """Write the bundled sample episodes (seggpt.samples) as PNG files; name -> file lists."""
    from seggpt.samples import bundled_samples

    examples = {}
    for sample in bundled_samples():
        sub = folder / sample.name
        files: dict[str, list[str]] = {"prompt_images": [], "prompt_masks": []}
        for i, (image, mask) in enumerate(zip(sample.prompt_images, sample.prompt_masks)):
            save_image(sub / f"example{i + 1}.png", image)
            save_index_mask(sub / f"example{i + 1}_mask.png", mask)
            files["prompt_images"].append(str(sub / f"example{i + 1}.png"))
            files["prompt_masks"].append(str(sub / f"example{i + 1}_mask.png"))
        save_image(sub / "query.png", sample.query_image)
        files["query_images"] = [str(sub / "query.png")]
        examples[sample.name] = files
    return examples


def model_summary(predictor: SegGPTPredictor) -> dict:
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


# --- UI ----------------------------------------------------------------------------------------


def readable_errors(fn: Callable) -> Callable:
    """Turn every failure into a ``gr.Error`` with a readable message; the server keeps going."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except PainterError as err:
            raise gr.Error(" ".join(str(err).split()), print_exception=False) from None
        except Exception as err:
            logger.exception("request failed")
            raise gr.Error(
                f"unexpected error ({type(err).__name__}: {err}); the server log has the details",
                print_exception=False,
            ) from None

    return wrapper


def in_context_tab(ctx: AppContext) -> None:
    """Example pairs + query images -> masks; endpoints /segment and /example_files."""
    predictor = ctx.predictor
    with gr.Tab("In-context"):
        gr.Markdown(
            "Give one or more **examples** (an image and its mask: paint the object with the "
            "brush, one colour per class, or upload a mask image), add **query images**, and "
            "press *Segment*. Or load a bundled example with one click."
        )
        with gr.Row():
            with gr.Column():
                gr.Markdown("**Bundled examples** (one click fills the inputs):")
                with gr.Row():
                    buttons = {name: gr.Button(name, size="sm") for name in ctx.examples}
                slots = []
                with gr.Tabs():
                    for i in range(PROMPT_SLOTS):
                        with gr.Tab(f"Example {i + 1}"):
                            slots.append(
                                brush_editor(f"example {i + 1}: image (paint the mask on it)")
                            )
                            slots.append(
                                gr.Image(
                                    label=f"example {i + 1}: or upload its mask (class ids, "
                                    "0/255 or colours)",
                                    type="filepath",
                                    image_mode=None,
                                    format="png",
                                    sources=("upload", "clipboard"),
                                    height=180,
                                )
                            )
                queries = query_gallery()
                ensemble = gr.Radio(
                    [mode.value for mode in EnsembleMode],
                    value="feature",
                    label="ensemble (how several examples combine)",
                )
                refine = gr.Checkbox(
                    value=False,
                    label="refine the masks with the promptable model (box + point per region)",
                    visible=ctx.promptable is not None,
                )
                run = gr.Button("Segment", variant="primary")
            with gr.Column():
                info = gr.Textbox(label="info", interactive=False, elem_id="info")
                gallery = dict(format="png", columns=3, height=300, object_fit="contain")
                overlays = gr.Gallery(label="overlays (mask over the query)", **gallery)
                painted = gr.Gallery(label="painted output", **gallery)
                mask_files = gr.File(label="masks (class-index PNG)", file_count="multiple")

        @readable_errors
        def segment_ui(mode, refine_masks, query_items, *slot_values):
            pairs = [
                prompt_from_slot(i, slot_values[2 * i], slot_values[2 * i + 1])
                for i in range(PROMPT_SLOTS)
            ]
            pairs = [pair for pair in pairs if pair is not None]
            if not pairs:
                raise InputMismatchError("add at least one example: an image and its mask")
            paths = [item[0] for item in query_items or []]
            seg = segment_arrays(predictor, *zip(*pairs), paths, ensemble=mode)
            if refine_masks and ctx.promptable is not None:
                seg = refined_segmentation(seg, paths, ctx.promptable)
            files = write_segmentation(seg, output_names(paths), ctx.request_folder())
            captions = output_names(paths)
            return (
                list(zip(seg.overlays, captions)),
                list(zip(seg.painted, captions)),
                files[0],
                seg.info,
            )

        run.click(
            segment_ui,
            inputs=[ensemble, refine, queries, *slots],
            outputs=[overlays, painted, mask_files, info],
            api_visibility="private",
        )

        def fill(name: str):
            files = ctx.examples[name]
            values: list = []
            for i in range(PROMPT_SLOTS):
                has = i < len(files["prompt_images"])
                values.append(files["prompt_images"][i] if has else None)
                values.append(files["prompt_masks"][i] if has else None)
            count = len(files["prompt_images"])
            note = f"loaded {name}: {count} example(s), 1 query; press Segment"
            return [*values, files["query_images"], note]

        for name, button in buttons.items():
            button.click(
                functools.partial(fill, name),
                outputs=[*slots, queries, info],
                api_visibility="private",
            )

        # API-only endpoints: file paths in and out (gradio_client.handle_file).
        with gr.Column(visible=False):
            api_in = [
                gr.File(file_count="multiple", label=label)
                for label in ("prompt_images", "prompt_masks", "query_images")
            ]
            api_ensemble = gr.Textbox(value="feature", label="ensemble")
            api_out = [
                gr.File(file_count="multiple", label=label)
                for label in ("masks", "overlays", "painted")
            ]
            api_info = gr.Textbox(label="info")
            api_name = gr.Dropdown(list(ctx.examples), label="name", allow_custom_value=True)
            api_button = gr.Button()

        @readable_errors
        def segment(prompt_images, prompt_masks, query_images, ensemble="feature"):
            """Segment query image files from example image/mask files; returns the class-index
            mask PNGs, overlay PNGs, painted PNGs (one per query, in order) and an info line."""
            queries = query_images or []
            seg = segment_arrays(
                predictor, prompt_images or [], prompt_masks or [], queries, ensemble=ensemble
            )
            return (*write_segmentation(seg, output_names(queries), ctx.request_folder()), seg.info)

        @readable_errors
        def example_files(name):
            """The files of a bundled example: prompt images, prompt masks, query images."""
            if name not in ctx.examples:
                raise InputMismatchError(f"no example {name!r}; choose one of {list(ctx.examples)}")
            files = ctx.examples[name]
            return files["prompt_images"], files["prompt_masks"], files["query_images"]

        api_button.click(
            segment,
            inputs=[*api_in, api_ensemble],
            outputs=[*api_out, api_info],
            api_name="segment",
        )
        api_button.click(example_files, inputs=api_name, outputs=api_in, api_name="example_files")


def query_gallery() -> gr.Gallery:
    """An upload gallery for query images."""
    return gr.Gallery(
        label="query images",
        type="filepath",
        interactive=True,
        format="png",
        file_types=["image"],
        columns=4,
        height=240,
        object_fit="contain",
    )


def brush_editor(label: str, height: int = 340) -> gr.ImageEditor:
    """An image editor whose brush paints class ids (one fixed colour per id)."""
    return gr.ImageEditor(
        label=label,
        type="numpy",
        image_mode="RGBA",
        format="png",
        sources=("upload", "clipboard"),
        transforms=(),
        layers=False,
        brush=gr.Brush(
            colors=[f"rgb({r}, {g}, {b})" for r, g, b in BRUSH_COLOURS],
            color_mode="fixed",
        ),
        height=height,
    )


def video_tab(ctx: AppContext) -> None:
    """Frames (or a video) + a first-frame mask -> masks of every frame; endpoints /track and
    /video_example."""
    predictor = ctx.predictor
    with gr.Tab("Video"):
        gr.Markdown(
            "Upload a **video** file or its **frames** as images, press *Show first frame*, "
            "paint each object to track on it (one brush colour per object) or upload the "
            "first frame's mask, then press *Track*. Every frame is prompted with the first frame "
            "and the latest *memory* frames with their predicted masks."
        )
        with gr.Row():
            with gr.Column():
                example = gr.Button("Bundled synthetic video", size="sm")
                files = gr.File(label="video file or frames", file_count="multiple")
                show = gr.Button("Show first frame", size="sm")
                editor = brush_editor("first frame (paint the objects)")
                mask_file = gr.Image(
                    label="or upload the first frame's mask (ids, palette PNG or colours)",
                    type="filepath",
                    image_mode=None,
                    format="png",
                    sources=("upload",),
                    height=180,
                )
                memory = gr.Slider(0, MAX_MEMORY, value=DEFAULT_MEMORY, step=1, label="memory")
                run = gr.Button("Track", variant="primary")
            with gr.Column():
                info = gr.Textbox(label="info", interactive=False, elem_id="video_info")
                animation = gr.Image(label="overlay", type="filepath", format="gif")
                download = gr.File(label="per-frame masks (zip of palette PNGs)")

        def file_paths(items) -> list[str]:
            return [getattr(item, "name", item) for item in items or []]

        @readable_errors
        def first_frame(items):
            frames = video_frames(file_paths(items), ctx.request_folder() / "frames")
            frame = next(iter(frames))
            return frame, f"{len(frames)} frames of {frame.shape[1]}x{frame.shape[0]}"

        show.click(first_frame, inputs=files, outputs=[editor, info], api_visibility="private")

        def first_mask_of(frames: VideoFrames, editor_value, mask_path) -> np.ndarray | str:
            if mask_path:
                return mask_path
            layers = (editor_value or {}).get("layers") or []
            size = next(iter(frames)).shape[:2]
            mask = mask_from_layers(layers, size)
            if not mask.any():
                raise InvalidMaskError(
                    "no first-frame mask: press Show first frame and paint the objects, or "
                    "upload the mask of the first frame"
                )
            return mask

        @readable_errors
        def track_ui(items, editor_value, mask_path, frames_memory, progress=gr.Progress()):  # noqa: B008
            folder = ctx.request_folder()
            frames = video_frames(file_paths(items), folder / "frames")
            result = track_video(
                predictor,
                frames,
                first_mask_of(frames, editor_value, mask_path),
                folder,
                memory=int(frames_memory),
                progress=lambda done, total: progress((done, total), desc="propagating"),
            )
            return str(result.overlay), str(result.masks_zip), result.info

        run.click(
            track_ui,
            inputs=[files, editor, mask_file, memory],
            outputs=[animation, download, info],
            api_visibility="private",
        )

        @readable_errors
        def video_example():
            """The bundled synthetic video: its frame files and the first frame's mask file."""
            video = ctx.video_example
            return video["frames"], video["first_mask"]

        example.click(lambda: video_example(), outputs=[files, mask_file], api_visibility="private")

        with gr.Column(visible=False):
            api_frames = gr.File(file_count="multiple", label="frames")
            api_mask = gr.File(label="first_mask")
            api_memory = gr.Number(value=DEFAULT_MEMORY, precision=0, label="memory")
            api_out = [gr.File(label="overlay"), gr.File(label="masks_zip")]
            api_info = gr.Textbox(label="info")
            api_button = gr.Button()

        @readable_errors
        def track(frames, first_mask, memory=DEFAULT_MEMORY):
            """Track the objects of ``first_mask`` through ``frames`` (image files, or one video
            file); returns the overlay GIF, a zip of per-frame palette PNG masks, an info line."""
            if not first_mask:
                raise InvalidMaskError("give the first frame's mask (object ids or colours)")
            folder = ctx.request_folder()
            result = track_video(
                predictor,
                video_frames(file_paths(frames), folder / "frames"),
                getattr(first_mask, "name", first_mask),
                folder,
                memory=int(memory),
            )
            return str(result.overlay), str(result.masks_zip), result.info

        api_button.click(
            track,
            inputs=[api_frames, api_mask, api_memory],
            outputs=[*api_out, api_info],
            api_name="track",
        )
        api_button.click(video_example, outputs=[api_frames, api_mask], api_name="video_example")


def tuned_tab(ctx: AppContext) -> None:
    """A saved tuned prompt + query images -> class masks; endpoint /segment_tuned."""
    with gr.Tab("Tuned prompt"):
        gr.Markdown(
            "Segment queries with a **tuned prompt** (a learned example pair for a fixed class "
            "set, made by `python -m tools.tune`). Choose a loaded one or upload a "
            "`.safetensors` tuned prompt; it must have been tuned for the loaded model."
        )
        with gr.Row():
            with gr.Column():
                choice = gr.Dropdown(
                    list(ctx.tuned_prompts),
                    value=next(iter(ctx.tuned_prompts), None),
                    label="tuned prompt",
                )
                upload = gr.File(label="or upload a tuned prompt (.safetensors)")
                queries = query_gallery()
                example = gr.Button("Bundled query", size="sm")
                run = gr.Button("Segment", variant="primary")
            with gr.Column():
                info = gr.Textbox(label="info", interactive=False, elem_id="tuned_info")
                legend = gr.Markdown()
                overlays = gr.Gallery(label="overlays", format="png", columns=3, height=300)
                mask_files = gr.File(label="masks (class-index PNG)", file_count="multiple")

        def segment_with(tuned_path: str | None, query_paths: Sequence[str]):
            if not tuned_path:
                raise InputMismatchError("choose or upload a tuned prompt")
            tuned = TunedPrompt.load(tuned_path)
            runner = tuned_prompt_predictor(ctx.predictor, tuned)
            seg = segment_arrays(runner, [], [], query_paths, prompts=tuned.prepared(runner.device))
            files = write_segmentation(seg, output_names(query_paths), ctx.request_folder())
            return seg, files, tuned

        @readable_errors
        def segment_ui(name, uploaded, query_items):
            path = getattr(uploaded, "name", uploaded) or ctx.tuned_prompts.get(name)
            paths = [item[0] for item in query_items or []]
            seg, files, tuned = segment_with(path, paths)
            legend = class_legend(tuned.class_names, seg.palette)
            return list(zip(seg.overlays, output_names(paths))), files[0], legend, seg.info

        run.click(
            segment_ui,
            inputs=[choice, upload, queries],
            outputs=[overlays, mask_files, legend, info],
            api_visibility="private",
        )
        example.click(lambda: ctx.tuned_queries, outputs=queries, api_visibility="private")

        with gr.Column(visible=False):
            api_queries = gr.File(file_count="multiple", label="query_images")
            api_name = gr.Textbox(label="name")
            api_prompt = gr.File(label="tuned_prompt_file")
            api_out = [gr.File(file_count="multiple", label=k) for k in ("masks", "overlays")]
            api_legend = gr.Textbox(label="legend")
            api_button = gr.Button()

        @readable_errors
        def segment_tuned(query_images, name="", tuned_prompt_file=None):
            """Segment query image files with the tuned prompt the app offers under ``name``, or
            with an uploaded ``tuned_prompt_file``; returns class-index mask PNGs, overlay PNGs
            and a legend of class ids."""
            path = getattr(tuned_prompt_file, "name", tuned_prompt_file)
            if not path:
                if name not in ctx.tuned_prompts:
                    raise InputMismatchError(
                        f"no tuned prompt named {name!r}; the app offers "
                        f"{list(ctx.tuned_prompts)}, or upload a tuned prompt file"
                    )
                path = ctx.tuned_prompts[name]
            queries = [getattr(q, "name", q) for q in query_images or []]
            seg, files, tuned = segment_with(path, queries)
            names = ", ".join(f"{i}={name}" for i, name in enumerate(tuned.class_names))
            return files[0], files[1], f"{names}; {seg.info}"

        api_button.click(
            segment_tuned,
            inputs=[api_queries, api_name, api_prompt],
            outputs=[*api_out, api_legend],
            api_name="segment_tuned",
        )


def parse_clicks(text: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Points typed as ``x,y[,label]`` separated by ``;`` -> (N, 2) float and (N,) int labels
    (label 1 when omitted); (None, None) for an empty string."""
    rows = [part.strip() for part in (text or "").split(";") if part.strip()]
    if not rows:
        return None, None
    points, labels = [], []
    for row in rows:
        values = row.split(",")
        try:
            numbers = [float(v) for v in values]
        except ValueError:
            numbers = []
        if len(numbers) not in (2, 3):
            raise InputMismatchError(f"point {row!r} must be x,y or x,y,label (label 1 or 0)")
        points.append(numbers[:2])
        labels.append(int(numbers[2]) if len(numbers) == 3 else 1)
    return np.asarray(points, dtype=np.float32), np.asarray(labels, dtype=np.int64)


def parse_box(text: str) -> np.ndarray | None:
    """``x0,y0,x1,y1`` -> (4,) float; None for an empty string."""
    if not (text or "").strip():
        return None
    try:
        box = np.asarray([float(v) for v in text.split(",")], dtype=np.float32)
    except ValueError:
        box = np.zeros(0)
    if box.shape != (4,):
        raise InputMismatchError(f"box {text!r} must be x0,y0,x1,y1 in pixels")
    return box


@dataclass
class PromptedMasks:
    """Candidate masks for one prompted object, best first."""

    masks: list[np.ndarray]  # (H, W) bool each
    scores: list[float]
    overlays: list[np.ndarray]


class PromptableRunner:
    """The promptable model behind a lock (its predictor holds the current image)."""

    def __init__(self, predictor) -> None:
        import threading

        self.predictor = predictor
        self.lock = threading.Lock()

    def segment(
        self, image: ImageSource, points_text: str = "", box_text: str = ""
    ) -> PromptedMasks:
        """Candidates for the object given by clicked points and/or a box, best score first."""
        rgb = load_image(image)
        points, labels = parse_clicks(points_text)
        box = parse_box(box_text)
        if points is None and box is None:
            raise InputMismatchError("click at least one point on the object, or draw a box")
        multimask = box is None and len(points) == 1  # one click is ambiguous
        with self.lock:
            self.predictor.set_image(rgb)
            result = self.predictor.predict(
                points=points, labels=labels, box=box, multimask=multimask
            )
        order = np.argsort(-result.scores[0])
        masks = [result.masks[0, k] for k in order]
        colours = np.array([[0, 0, 0], [30, 144, 255]], dtype=np.uint8)
        return PromptedMasks(
            masks=masks,
            scores=[float(result.scores[0, k]) for k in order],
            overlays=[overlay(rgb, m.astype(np.int64), colours) for m in masks],
        )

    def refine(self, image: ImageSource, mask: np.ndarray) -> np.ndarray:
        """An in-context class mask refined per connected component (same ids)."""
        from painter.promptable import refine_mask

        with self.lock:
            return refine_mask(self.predictor, image, mask)


def promptable_tab(ctx: AppContext) -> None:
    """Clicked points / a box -> candidate masks with scores; endpoint /promptable."""
    with gr.Tab("Promptable"):
        if ctx.promptable is None:
            gr.Markdown(
                "No promptable model is loaded. Start the app with `--promptable demo` (the "
                "bundled one, after `make demo-promptable`) or `--promptable sam_vit_b.pth`."
            )
            return
        runner = ctx.promptable
        gr.Markdown(
            "Upload an image and **click** on the object (choose foreground or background "
            "first), or choose *box* and click two opposite corners. *Segment* shows the "
            "candidate masks with the model's predicted IoU."
        )
        with gr.Row():
            with gr.Column():
                image = gr.Image(label="image (click on it)", type="filepath", height=360)
                mode = gr.Radio(
                    ["foreground point", "background point", "box corner"],
                    value="foreground point",
                    label="a click adds",
                )
                points = gr.Textbox(label="points x,y,label; ...", elem_id="points")
                box = gr.Textbox(label="box x0,y0,x1,y1", elem_id="box")
                with gr.Row():
                    clear = gr.Button("Clear", size="sm")
                    run = gr.Button("Segment", variant="primary")
            with gr.Column():
                info = gr.Textbox(label="info", interactive=False, elem_id="promptable_info")
                candidates = gr.Gallery(label="candidates (best first)", columns=3, height=320)
                best_file = gr.File(label="best mask (0/1 PNG)")

        def add_click(kind, points_text, box_text, corners, evt: gr.SelectData):
            x, y = (int(v) for v in evt.index)
            if kind == "box corner":
                corners = [*corners[-1:], (x, y)]
                if len(corners) == 2:
                    (x0, y0), (x1, y1) = corners
                    box_text = f"{min(x0, x1)},{min(y0, y1)},{max(x0, x1)},{max(y0, y1)}"
                return points_text, box_text, corners
            label = 1 if kind == "foreground point" else 0
            joined = f"{points_text}; {x},{y},{label}" if points_text else f"{x},{y},{label}"
            return joined, box_text, corners

        corners = gr.State([])
        image.select(
            add_click,
            inputs=[mode, points, box, corners],
            outputs=[points, box, corners],
            api_visibility="private",
        )
        clear.click(lambda: ("", "", []), outputs=[points, box, corners], api_visibility="private")

        @readable_errors
        def segment_ui(path, points_text, box_text):
            if not path:
                raise InvalidImageError("upload an image first")
            found = runner.segment(path, points_text, box_text)
            files = write_masks(found, ctx.request_folder())
            captions = [f"score {s:.2f}" for s in found.scores]
            info_line = ", ".join(captions)
            return list(zip(found.overlays, captions)), files[0], info_line

        run.click(
            segment_ui,
            inputs=[image, points, box],
            outputs=[candidates, best_file, info],
            api_visibility="private",
        )

        def write_masks(found: PromptedMasks, folder: Path) -> list[str]:
            paths = []
            for k, mask in enumerate(found.masks):
                paths.append(str(folder / f"mask_{k}.png"))
                save_index_mask(paths[-1], mask.astype(np.int64))
            return paths

        with gr.Column(visible=False):
            api_image = gr.File(label="image")
            api_points = gr.Textbox(label="points")
            api_box = gr.Textbox(label="box")
            api_masks = gr.File(file_count="multiple", label="masks")
            api_scores = gr.JSON(label="scores")
            api_mask = gr.File(label="mask")
            api_refined = gr.File(label="refined")
            api_button = gr.Button()

        @readable_errors
        def promptable(image, points="", box=""):
            """Candidate masks (0/1 PNGs, best first) and their predicted IoUs for the object
            given by ``points`` ("x,y,label; ...") and/or ``box`` ("x0,y0,x1,y1")."""
            found = runner.segment(getattr(image, "name", image), points, box)
            return write_masks(found, ctx.request_folder()), found.scores

        @readable_errors
        def refine(image, mask):
            """Refine a class-index mask of ``image`` (e.g. an in-context result) with the
            promptable model; returns the refined class-index PNG."""
            path = getattr(image, "name", image)
            refined = runner.refine(path, load_mask(getattr(mask, "name", mask)))
            out = ctx.request_folder() / "refined_mask.png"
            save_index_mask(out, refined)
            return str(out)

        api_button.click(
            promptable,
            inputs=[api_image, api_points, api_box],
            outputs=[api_masks, api_scores],
            api_name="promptable",
        )
        api_button.click(
            refine, inputs=[api_image, api_mask], outputs=api_refined, api_name="refine"
        )


#: The app's tabs, in order; each builds its components and events inside ``gr.Blocks``.
TABS: list[Callable[[AppContext], None]] = [in_context_tab, video_tab, tuned_tab, promptable_tab]


def write_video_example(folder: Path, size: tuple[int, int]) -> dict[str, object]:
    """Write the bundled synthetic video (frames and first-frame mask) as PNG files."""
    from data_mixtures.synthetic_video import SyntheticVideoConfig, synthetic_video

    video = synthetic_video(SyntheticVideoConfig(num_frames=12, image_size=size), seed=0)
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for index, frame in enumerate(video.frames):
        frames.append(str(folder / f"{index:05d}.png"))
        save_image(frames[-1], frame)
    first_mask = folder / "first_mask.png"
    save_index_mask(first_mask, video.masks[0], palette=default_palette(len(video.object_ids) + 1))
    return {"frames": frames, "first_mask": str(first_mask)}


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


def build_app(
    predictor: SegGPTPredictor,
    *,
    workdir: Path | None = None,
    tuned_prompts: Sequence[str | os.PathLike] = (),
    promptable=None,
) -> gr.Blocks:
    """The Blocks app around ``predictor``; bundled examples are written under ``workdir``.

    ``tuned_prompts``: tuned prompt files offered in the Tuned-prompt tab (besides the bundled
    one, when it fits the model). ``promptable``: a ``PromptablePredictor`` for the Promptable
    tab and the refinement option (None: the tab says how to load one).
    """
    if workdir is None:
        base = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")
        workdir = base / f"seggpt_app_{os.getpid()}"
    examples = write_examples(workdir / "examples")
    tuned_queries = []
    if DEMO_TUNED_PROMPT.is_file():
        tuned_prompts = [DEMO_TUNED_PROMPT, *tuned_prompts]
        images, _ = fixed_class_split(predictor.config.half_size, "held_out", 2)
        for i, image in enumerate(images):
            tuned_queries.append(str(workdir / "examples" / "tuned" / f"query{i + 1}.png"))
            save_image(tuned_queries[-1], image)
    ctx = AppContext(
        predictor,
        examples,
        workdir,
        video_example=write_video_example(workdir / "examples" / "video", (96, 128)),
        tuned_prompts=usable_tuned_prompts(predictor, tuned_prompts),
        tuned_queries=tuned_queries,
        promptable=PromptableRunner(promptable) if promptable is not None else None,
    )
    summary = model_summary(predictor)
    with gr.Blocks(title="SegGPT in-context segmentation") as demo:
        gr.Markdown(
            "# SegGPT: in-context segmentation\n"
            f"Model `{summary['model']}` ({summary['embed_dim']}-wide, {summary['depth']} blocks, "
            f"canvas {summary['canvas_size'][0]}x{summary['canvas_size'][1]}) on "
            f"{summary['device']}, {summary['dtype']}."
        )
        with gr.Tabs():
            for tab in TABS:
                tab(ctx)
        with gr.Column(visible=False):
            info_out = gr.JSON(label="model_info")
            info_button = gr.Button()
        info_button.click(lambda: summary, outputs=info_out, api_name="model_info")
    return demo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="app_gradio", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint",
        default="demo",
        help="'demo' (bundled, default), a .safetensors/.pth file, a transformers folder or a "
        "hub id",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (%(default)s)")
    parser.add_argument("--port", type=int, default=7860, help="port (default %(default)s)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    add_dtype_argument(parser)
    parser.add_argument(
        "--promptable",
        default="auto",
        help="promptable model for the Promptable tab: 'demo' (bundled), a SAM .pth, a "
        "transformers folder or our .safetensors; 'none' to leave it out; 'auto' (default): the "
        "bundled one when it is there",
    )
    parser.add_argument(
        "--tuned-prompt",
        action="append",
        default=[],
        metavar="FILE",
        help="a tuned prompt (tools.tune) to offer in the Tuned-prompt tab; repeatable",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="requests the model runs at once; the rest wait in the queue (default %(default)s)",
    )
    return parser


def load_promptable(choice: str, device: str, dtype: str):
    """The PromptablePredictor that ``--promptable`` names, or None."""
    from painter.promptable import PromptablePredictor, build_sam
    from painter.promptable.model import DEMO_PROMPTABLE

    if choice == "none" or (choice == "auto" and not DEMO_PROMPTABLE.is_file()):
        return None
    checkpoint = "demo" if choice == "auto" else choice
    return PromptablePredictor(build_sam(checkpoint=checkpoint), device=device, dtype=dtype)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.concurrency < 1:
        print("error: --concurrency must be >= 1", file=sys.stderr)
        return 2
    try:
        predictor = SegGPTPredictor(
            load_model(args.checkpoint), device=args.device, dtype=args.dtype
        )
    except PainterError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    try:
        promptable = load_promptable(args.promptable, args.device, args.dtype)
    except PainterError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    demo = build_app(predictor, tuned_prompts=args.tuned_prompt, promptable=promptable)
    demo.queue(default_concurrency_limit=args.concurrency)
    demo.launch(server_name=args.host, server_port=args.port, ssr_mode=False, max_file_size="50mb")
    return 0


if __name__ == "__main__":
    sys.exit(main())
