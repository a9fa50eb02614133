"""The Promptable tab: clicked points or a box -> candidate masks with their predicted IoU.

Endpoints ``/promptable`` and ``/refine`` (a class-index mask refined by the promptable model).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from painter.errors import InvalidImageError
from painter.io import load_mask, save_index_mask
from tools.app.common import AppContext, gr, readable_errors

if TYPE_CHECKING:
    from painter.promptable.serving import PromptedMasks


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
