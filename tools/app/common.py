"""What every tab shares: the app's state, readable errors and the upload widgets.

Importing this module imports Gradio (with its analytics off: the app never calls out).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from painter.errors import PainterError, missing_dependency
from seggpt.predictor import SegGPTPredictor
from seggpt.serving import BRUSH_COLORS

if TYPE_CHECKING:
    from painter.promptable.serving import PromptableRunner

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio loads: no calls out

try:
    import gradio as gr
except ImportError as _err:
    raise missing_dependency("gradio", "app", "the app") from _err

logger = logging.getLogger(__name__)

PROMPT_SLOTS = 4  # example pairs the UI offers
OUTPUT_MAX_AGE_S = 3600.0  # request folders older than this are removed


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
            colors=[f"rgb({r}, {g}, {b})" for r, g, b in BRUSH_COLORS],
            color_mode="fixed",
        ),
        height=height,
    )


def class_legend(names: Sequence[str], palette: np.ndarray) -> str:
    """Markdown legend: a colour swatch and the name of every class id (background first)."""
    rows = [
        f'<span style="display:inline-block;width:1em;height:1em;background:rgb({r},{g},{b});'
        f'border:1px solid #888"></span> {i}: {name}'
        for i, (name, (r, g, b)) in enumerate(zip(names, palette.tolist()))
    ]
    return "  \n".join(rows)
