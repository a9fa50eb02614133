"""Gradio app: segment images from example image+mask pairs, in the browser or through an API.

    python app_gradio.py [--checkpoint demo] [--host 127.0.0.1] [--port 7860] [--device auto]
        [--dtype float32] [--concurrency 1]

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from painter.errors import InputMismatchError, InvalidImageError, InvalidMaskError, PainterError
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

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio loads: no calls out

import gradio as gr  # noqa: E402

logger = logging.getLogger("app_gradio")

MAX_QUERIES = 32  # per request; more is a script's job (tools.infer)
PROMPT_SLOTS = 4  # example pairs the UI offers
BRUSH_COLOURS = default_palette(9)[1:]  # (8, 3): drawn colour k -> class id k + 1
OUTPUT_MAX_AGE_S = 3600.0  # request folders older than this are removed


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
) -> Segmentation:
    """Segment every query from the example pairs; raises PainterError on bad input."""
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
    prompts = predictor.prepare_prompts(prompt_images, prompt_masks, ensemble=ensemble)
    queries = [load_image(query) for query in query_images]
    results = predictor.predict(None, None, queries, prompts=prompts)
    palette = display_palette(prompts.coloring)
    masks = [result.mask for result in results]
    found = sorted(set().union(*(np.unique(mask).tolist() for mask in masks)) - {0})
    info = (
        f"segmented {len(queries)} quer{'y' if len(queries) == 1 else 'ies'} from "
        f"{len(prompt_images)} example(s), {ensemble} ensemble, in "
        f"{time.perf_counter() - start:.2f} s; class ids found: {found or 'none'}"
    )
    return Segmentation(
        masks=masks,
        overlays=[overlay(q, m, palette) for q, m in zip(queries, masks)],
        painted=[result.painted for result in results],
        palette=palette,
        info=info,
    )


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


# --- app state and examples ------------------------------------------------------------------


@dataclass
class AppContext:
    """What every tab gets: the predictor, the bundled examples and a folder for outputs."""

    predictor: SegGPTPredictor
    examples: dict[str, dict[str, list[str]]]  # name -> prompt_images/prompt_masks/query_images
    workdir: Path

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


def write_examples(half_size: tuple[int, int], folder: Path) -> dict[str, dict[str, list[str]]]:
    """Write the bundled sample episodes (seggpt.samples) as PNG files; name -> file lists."""
    from seggpt.samples import photo_sample, synthetic_samples

    examples = {}
    for sample in synthetic_samples(half_size) + [photo_sample(max(half_size) * 2)]:
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
                                gr.ImageEditor(
                                    label=f"example {i + 1}: image (paint the mask on it)",
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
                                    height=340,
                                )
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
                queries = gr.Gallery(
                    label="query images",
                    type="filepath",
                    interactive=True,
                    format="png",
                    file_types=["image"],
                    columns=4,
                    height=240,
                    object_fit="contain",
                )
                ensemble = gr.Radio(
                    [mode.value for mode in EnsembleMode],
                    value="feature",
                    label="ensemble (how several examples combine)",
                )
                run = gr.Button("Segment", variant="primary")
            with gr.Column():
                info = gr.Textbox(label="info", interactive=False, elem_id="info")
                gallery = dict(format="png", columns=3, height=300, object_fit="contain")
                overlays = gr.Gallery(label="overlays (mask over the query)", **gallery)
                painted = gr.Gallery(label="painted output", **gallery)
                mask_files = gr.File(label="masks (class-index PNG)", file_count="multiple")

        @readable_errors
        def segment_ui(mode, query_items, *slot_values):
            pairs = [
                prompt_from_slot(i, slot_values[2 * i], slot_values[2 * i + 1])
                for i in range(PROMPT_SLOTS)
            ]
            pairs = [pair for pair in pairs if pair is not None]
            if not pairs:
                raise InputMismatchError("add at least one example: an image and its mask")
            paths = [item[0] for item in query_items or []]
            seg = segment_arrays(predictor, *zip(*pairs), paths, ensemble=mode)
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
            inputs=[ensemble, queries, *slots],
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


#: The app's tabs, in order; each builds its components and events inside ``gr.Blocks``.
TABS: list[Callable[[AppContext], None]] = [in_context_tab]


def build_app(predictor: SegGPTPredictor, *, workdir: Path | None = None) -> gr.Blocks:
    """The Blocks app around ``predictor``; bundled examples are written under ``workdir``."""
    if workdir is None:
        base = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")
        workdir = base / f"seggpt_app_{os.getpid()}"
    examples = write_examples(predictor.config.half_size, workdir / "examples")
    ctx = AppContext(predictor, examples, workdir)
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
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "float16"],
        default="float32",
        help="compute dtype",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="requests the model runs at once; the rest wait in the queue (default %(default)s)",
    )
    return parser


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
    demo = build_app(predictor)
    demo.queue(default_concurrency_limit=args.concurrency)
    demo.launch(server_name=args.host, server_port=args.port, ssr_mode=False, max_file_size="50mb")
    return 0


if __name__ == "__main__":
    sys.exit(main())
