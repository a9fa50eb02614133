"""The In-context tab: example pairs + query images -> class masks.

Endpoints ``/segment`` (files in, mask / overlay / painted PNGs out) and ``/example_files`` (the
files of a bundled example).
"""

from __future__ import annotations

import functools

from painter.errors import InputMismatchError
from seggpt.ensemble import EnsembleMode
from seggpt.serving import (
    prompt_from_slot,
    refined_segmentation,
    segment_arrays,
    upload_names,
    write_segmentation,
)
from tools.app.common import (
    PROMPT_SLOTS,
    AppContext,
    brush_editor,
    gr,
    query_gallery,
    readable_errors,
)


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
            files = write_segmentation(seg, upload_names(paths), ctx.request_folder())
            captions = upload_names(paths)
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
            return (*write_segmentation(seg, upload_names(queries), ctx.request_folder()), seg.info)

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
