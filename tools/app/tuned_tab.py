"""The Tuned-prompt tab: a saved tuned prompt (``tools.tune``) + query images -> class masks.

Endpoint ``/segment_tuned``.
"""

from __future__ import annotations

from collections.abc import Sequence

from painter.errors import InputMismatchError
from seggpt.serving import segment_arrays, tuned_prompt_predictor, upload_names, write_segmentation
from seggpt.tuning import TunedPrompt
from tools.app.common import AppContext, class_legend, gr, query_gallery, readable_errors


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
            files = write_segmentation(seg, upload_names(query_paths), ctx.request_folder())
            return seg, files, tuned

        @readable_errors
        def segment_ui(name, uploaded, query_items):
            path = getattr(uploaded, "name", uploaded) or ctx.tuned_prompts.get(name)
            paths = [item[0] for item in query_items or []]
            seg, files, tuned = segment_with(path, paths)
            legend = class_legend(tuned.class_names, seg.palette)
            return list(zip(seg.overlays, upload_names(paths))), files[0], legend, seg.info

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
