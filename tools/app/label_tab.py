"""The Label tab: label an image set from examples, review it least sure first, correct with
clicks or the brush, accept (accepted images join the examples), relabel the rest, export.

The steps are the named endpoints of :mod:`tools.app.label_api`; the UI keeps its session id in
the browser's state and calls the same methods.
"""

from __future__ import annotations

import numpy as np

from painter.errors import InputMismatchError
from painter.io import load_image, save_image, save_index_mask
from seggpt.serving import mask_from_layers, prompt_from_slot
from tools.app.common import AppContext, brush_editor, gr, readable_errors
from tools.app.label_api import BUNDLED, FOLDER, LabelEndpoints, register_api

POSITIVE, NEGATIVE = "on the object", "not the object"
#: Images smaller than this (long side, pixels) are shown enlarged by a whole factor: Gradio
#: maps a click to image pixels only for images shown at most 1:1.
DISPLAY_SIDE = 512


def enlarged(path: str, folder) -> tuple[str, int]:
    """The overlay PNG at ``path`` enlarged (whole pixels) to about DISPLAY_SIDE: (PNG, factor)."""
    rgb = load_image(path)
    factor = max(1, -(-DISPLAY_SIDE // max(rgb.shape[:2])))  # ceil
    if factor == 1:
        return path, 1
    big = rgb.repeat(factor, axis=0).repeat(factor, axis=1)  # (H * f, W * f, 3)
    save_image(folder / "shown.png", big)
    return str(folder / "shown.png"), factor


def label_tab(ctx: AppContext) -> None:
    """The review-and-correct loop; endpoints /label_start, /label_all, /label_page, ..."""
    api = LabelEndpoints(ctx)
    with gr.Tab("Label"):
        gr.Markdown(
            "Label a set of images from a few examples, then review them **least sure first**: "
            "correct an image with clicks (the promptable model redraws the chosen class) or "
            "the brush, *Accept* it (it joins the examples), *Relabel the rest*, and *Export* "
            "the masks, a COCO file and Label Studio tasks (what `python -m tools.label` writes)."
        )
        sid, position, count, index = gr.State(""), gr.State(0), gr.State(0), gr.State(-1)
        zoom = gr.State(1)
        with gr.Row():
            with gr.Column(scale=1):
                source = gr.Radio([BUNDLED, FOLDER], value=BUNDLED, label="images")
                folder = gr.Textbox(label="folder of images on the server")
                ex_images = gr.File(label="example images", file_count="multiple")
                ex_masks = gr.File(label="example masks (same order)", file_count="multiple")
                painted = brush_editor("or paint an example (upload the image, brush the classes)")
                class_names = gr.Textbox(label="class names for ids 1, 2, ... (comma-separated)")
                tune_after = gr.Number(
                    0, precision=0, label="tune a prompt after N examples (0: never)"
                )
                with gr.Row():
                    start = gr.Button("Start", variant="primary")
                    label = gr.Button("Label all / relabel the rest")
                info = gr.Textbox(label="session", interactive=False, elem_id="label_info")
            with gr.Column(scale=2):
                view = gr.Image(
                    label="current image (click to correct)",
                    type="filepath",
                    interactive=False,
                    height=380,
                )
                details = gr.Textbox(label="image", interactive=False, elem_id="label_page")
                with gr.Row():
                    prev = gr.Button("< Previous", size="sm")
                    nxt = gr.Button("Next >", size="sm")
                    accept = gr.Button("Accept", variant="primary", size="sm")
                with gr.Row():
                    class_id = gr.Dropdown([], label="class to correct")
                    kind = gr.Radio([POSITIVE, NEGATIVE], value=POSITIVE, label="a click is")
                points = gr.Textbox(label="clicks x,y,label; ...", elem_id="label_points")
                brush = brush_editor("brush correction (paint over the current labels)")
                replace = gr.Checkbox(False, label="the painting replaces the whole mask")
                apply_brush = gr.Button("Apply brush", size="sm")
                out_folder = gr.Textbox(label="export folder on the server (empty: a new one)")
                export = gr.Button("Export")
                exported = gr.File(label="COCO and Label Studio files", file_count="multiple")

        @readable_errors
        def start_ui(src, folder_text, images, masks, drawing, tune, names):
            images, masks = list(images or []), list(masks or [])
            pair = prompt_from_slot(0, drawing, None)
            if pair is not None:  # the painted example joins the uploaded ones as files
                out = ctx.request_folder()
                save_image(out / "painted.png", pair[0])
                save_index_mask(out / "painted_mask.png", pair[1])
                images, masks = (
                    [*images, str(out / "painted.png")],
                    [*masks, str(out / "painted_mask.png")],
                )
            session_id, summary = api.start(src, folder_text, images, masks, tune, names)
            with api.store.using(session_id) as served:
                classes = served.session.labeller.class_names
            choices = [(f"{i}: {n}", i) for i, n in classes.items()]
            return session_id, summary, gr.Dropdown(choices=choices, value=choices[0][1])

        start.click(
            start_ui,
            inputs=[source, folder, ex_images, ex_masks, painted, tune_after, class_names],
            outputs=[sid, info, class_id],
            api_visibility="private",
        )

        def show(session_id, wanted):
            overlay, page = api.page(session_id, wanted)
            shown, factor = enlarged(overlay, ctx.request_folder())
            text = (
                f"{page['position'] + 1} of {page['count']} to review: image {page['index']} "
                f"({page['name']}), score {page['score']:.3f}"
            )
            at = page["position"], page["count"], page["index"]
            return shown, text, *at, "", shown, factor

        page_outputs = [view, details, position, count, index, points, brush, zoom]

        @readable_errors
        def label_ui(session_id, tune):
            summary, order = api.label_all(session_id, tune)
            return summary, *show(session_id, 0)

        label.click(
            label_ui,
            inputs=[sid, tune_after],
            outputs=[info, *page_outputs],
            api_visibility="private",
        )

        @readable_errors
        def step_ui(session_id, at, total, step):
            return show(session_id, max(0, min(at + step, total - 1)))

        for button, step in ((prev, -1), (nxt, 1)):
            button.click(
                lambda s, a, t, step=step: step_ui(s, a, t, step),
                inputs=[sid, position, count],
                outputs=page_outputs,
                api_visibility="private",
            )

        @readable_errors
        def click_ui(session_id, image, cid, click_kind, clicks, factor, evt: gr.SelectData):
            if image < 0:
                raise InputMismatchError("label the images first")
            x, y = (int(v) // factor for v in evt.index)
            flag = 1 if click_kind == POSITIVE else 0
            clicks = f"{clicks}; {x},{y},{flag}" if clicks else f"{x},{y},{flag}"
            shown, _ = enlarged(api.click(session_id, image, cid, clicks)[0], ctx.request_folder())
            return shown, clicks, shown

        view.select(
            click_ui,
            inputs=[sid, index, class_id, kind, points, zoom],
            outputs=[view, points, brush],
            api_visibility="private",
        )
        class_id.change(lambda: "", outputs=points, api_visibility="private")

        @readable_errors
        def brush_ui(session_id, image, drawing, whole):
            if image < 0:
                raise InputMismatchError("label the images first")
            current = api.current_mask(session_id, image)
            ids = mask_from_layers((drawing or {}).get("layers") or [], current.shape)
            if not ids.any() and not whole:
                raise InputMismatchError("paint on the image with the brush first")
            overlay, _ = api.set_mask(
                session_id, image, ids if whole else np.where(ids > 0, ids, current)
            )
            shown, _ = enlarged(overlay, ctx.request_folder())
            return shown, shown

        apply_brush.click(
            brush_ui,
            inputs=[sid, index, brush, replace],
            outputs=[view, brush],
            api_visibility="private",
        )

        @readable_errors
        def accept_ui(session_id, image, at, total):
            summary = api.accept(session_id, image)
            if total <= 1:
                return summary, None, "every image is accepted", 0, 0, -1, "", None, 1
            return summary, *show(session_id, min(at, total - 2))

        accept.click(
            accept_ui,
            inputs=[sid, index, position, count],
            outputs=[info, *page_outputs],
            api_visibility="private",
        )
        export.click(
            readable_errors(api.export),
            inputs=[sid, out_folder],
            outputs=[exported, info],
            api_visibility="private",
        )
        register_api(api)
