"""The Label tab's steps as named endpoints: a script drives the review-and-correct loop with
``gradio_client``, each call naming the session ``/label_start`` returned.

``/label_start``, ``/label_add_example``, ``/label_all``, ``/label_page``, ``/label_click``,
``/label_brush``, ``/label_accept``, ``/label_export``. The UI calls the same methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from painter.errors import InputMismatchError
from painter.io import load_image, load_mask, save_image, save_index_mask
from painter.promptable.serving import parse_clicks
from seggpt.labelling.exports import CLASSES_FILE, COCO_FILE, CONFIG_FILE, TASKS_FILE
from seggpt.labelling.inputs import named_classes
from seggpt.labelling.sessions import (
    SessionStore,
    bundled_session,
    example_pairs,
    folder_session,
    labelled_overlay,
    review_page,
    session_summary,
)
from tools.app.common import AppContext, gr, readable_errors

BUNDLED = "bundled sample set"
FOLDER = "folder on the server"


def _path(file: object) -> str:
    return getattr(file, "name", file)


def tune_threshold(value: float | None) -> int | None:
    """The UI's "tune after N examples" (0 or empty: never) as ``LabelSession.tune_after``."""
    if value is None or int(value) == 0:
        return None
    if value < 0:
        raise InputMismatchError(f"tune after {value} examples? give 0 (never) or more")
    return int(value)


class LabelEndpoints:
    """The review loop's steps over a store of sessions; files go to request folders."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.store = SessionStore()

    def start(
        self,
        source: str,
        folder: str = "",
        example_images: Sequence[object] | None = None,
        example_masks: Sequence[object] | None = None,
        tune_after: float | None = 0,
        class_names: str = "",
    ) -> tuple[str, str]:
        """A new session over the bundled sample set or a folder's images -> (id, summary)."""
        images = [_path(f) for f in example_images or []]
        masks = [_path(f) for f in example_masks or []]
        examples = example_pairs(images, masks, required=source != BUNDLED)
        options = {"tune_after": tune_threshold(tune_after)}
        failed: list[tuple[str, str]] = []
        if source == BUNDLED:
            session = bundled_session(self.ctx.predictor, examples, **options)
        elif source == FOLDER:
            examples.class_names = named_classes(examples.class_names, class_names)
            session, failed = folder_session(self.ctx.predictor, folder, examples, **options)
        else:
            raise InputMismatchError(f"source {source!r}: choose {BUNDLED!r} or {FOLDER!r}")
        session_id = self.store.add(session, failed=failed)
        return session_id, session_summary(session, failed)

    def add_example(self, session_id: str, image: object, mask: object) -> str:
        """Add an example pair to a session -> its summary."""
        return self.add_example_arrays(session_id, load_image(_path(image)), load_mask(_path(mask)))

    def add_example_arrays(self, session_id: str, image: np.ndarray, mask: np.ndarray) -> str:
        with self.store.using(session_id) as served:
            served.session.add_example(image, mask)
            return session_summary(served.session, served.failed)

    def label_all(self, session_id: str, tune_after: float | None = 0) -> tuple[str, list]:
        """Label every image not accepted -> (summary, review order: index, name, score)."""
        with self.store.using(session_id) as served:
            session = served.session
            session.set_tune_after(tune_threshold(tune_after))
            session.label_all()
            order = [
                {"index": i, "name": session.names[i], "score": session.results[i].score}
                for i in session.order()
            ]
            return session_summary(session, served.failed), order

    def page(self, session_id: str, position: float) -> tuple[str, dict]:
        """The image at ``position`` of the review order -> (overlay PNG, its details)."""
        with self.store.using(session_id) as served:
            page = review_page(served.session, int(position))
        path = self.ctx.request_folder() / "overlay.png"
        save_image(path, page.overlay)
        details = {k: getattr(page, k) for k in ("position", "count", "index", "name", "score")}
        return str(path), details

    def click(self, session_id: str, index: float, class_id: float, points: str):
        """Redraw class ``class_id`` of image ``index`` from clicks ("x,y,label; ...", label 1
        on the object, 0 not) with the promptable model -> (overlay PNG, mask PNG)."""
        runner = self.ctx.promptable
        if runner is None:
            raise InputMismatchError(
                "no promptable model is loaded: start the app with --promptable demo (or a "
                "SAM checkpoint) to correct with clicks, or correct with the brush"
            )
        xy, labels = parse_clicks(points)
        if xy is None:
            raise InputMismatchError("click at least one point")
        with self.store.using(session_id) as served, runner.lock:
            served.session.correct(
                int(index),
                class_id=int(class_id),
                points=xy.tolist(),
                labels=labels.tolist(),
                refiner=runner.predictor,
            )
            return self._written(served.session, int(index))

    def brush(self, session_id: str, index: float, mask: object):
        """Set image ``index``'s mask to a class-id mask file -> (overlay PNG, mask PNG)."""
        return self.set_mask(session_id, int(index), load_mask(_path(mask)))

    def set_mask(self, session_id: str, index: int, mask: np.ndarray):
        with self.store.using(session_id) as served:
            served.session.set_mask(index, mask)
            return self._written(served.session, index)

    def current_mask(self, session_id: str, index: int) -> np.ndarray:
        """Image ``index``'s mask now: (H, W) int64."""
        with self.store.using(session_id) as served:
            result = served.session.results.get(index)
            if result is None:
                raise InputMismatchError(f"image {index} is not labelled yet; label it first")
            return result.mask.copy()

    def accept(self, session_id: str, index: float) -> str:
        """Accept image ``index``'s mask: it joins the examples -> the summary."""
        with self.store.using(session_id) as served:
            served.session.accept(int(index))
            return session_summary(served.session, served.failed)

    def export(self, session_id: str, folder: str = "") -> tuple[list[str], str]:
        """Write the files ``tools.label`` writes into ``folder`` (empty: a fresh one) ->
        (COCO, Label Studio tasks and config, classes files; an info line)."""
        out = Path(folder.strip()) if (folder or "").strip() else self.ctx.request_folder()
        with self.store.using(session_id) as served:
            done = served.session.export(out)
        files = [str(out / name) for name in (COCO_FILE, TASKS_FILE, CONFIG_FILE, CLASSES_FILE)]
        return files, f"exported {done['labelled']} labelled images to {out.resolve()}"

    def _written(self, session, index: int) -> tuple[str, str]:
        folder = self.ctx.request_folder()
        save_image(folder / "overlay.png", labelled_overlay(session, index))
        mask = session.results[index].mask
        save_index_mask(folder / "mask.png", mask, palette=session.labeller.palette)
        return str(folder / "overlay.png"), str(folder / "mask.png")


def register_api(api: LabelEndpoints) -> None:
    """The hidden components and named endpoints of the Label tab."""
    with gr.Column(visible=False):
        text = {k: gr.Textbox(label=k) for k in ("session_id", "source", "points")}
        text.update({k: gr.Textbox("", label=k) for k in ("folder", "class_names")})  # optional
        numbers = {k: gr.Number(label=k) for k in ("position", "index", "class_id")}
        numbers["tune_after"] = gr.Number(0, label="tune_after")
        files = {k: gr.File(label=k) for k in ("image", "mask", "overlay")}
        many = {
            k: gr.File(file_count="multiple", label=k)
            for k in ("example_images", "example_masks", "files")
        }
        summary, details = gr.Textbox(label="summary"), gr.JSON(label="details")
        order = gr.JSON(label="order")
        button = gr.Button()
    endpoints = [
        (
            "label_start",
            api.start,
            ["source", "folder", "example_images", "example_masks", "tune_after", "class_names"],
            [text["session_id"], summary],
        ),
        ("label_add_example", api.add_example, ["session_id", "image", "mask"], [summary]),
        ("label_all", api.label_all, ["session_id", "tune_after"], [summary, order]),
        ("label_page", api.page, ["session_id", "position"], [files["overlay"], details]),
        (
            "label_click",
            api.click,
            ["session_id", "index", "class_id", "points"],
            [files["overlay"], files["mask"]],
        ),
        (
            "label_brush",
            api.brush,
            ["session_id", "index", "mask"],
            [files["overlay"], files["mask"]],
        ),
        ("label_accept", api.accept, ["session_id", "index"], [summary]),
        ("label_export", api.export, ["session_id", "folder"], [many["files"], summary]),
    ]
    components = {**text, **numbers, **files, **many}
    for name, fn, inputs, outputs in endpoints:
        button.click(
            readable_errors(fn),
            inputs=[components[k] for k in inputs],
            outputs=outputs,
            api_name=name,
        )
