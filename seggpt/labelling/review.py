"""What a person checks first: the labelled images ordered by score, least sure first.

``review.html`` lists every labelled image (overlay thumbnail, file name, score) and the images
that could not be read; ``review.png`` is a contact sheet of the least sure overlays with their
scores, for a quick look without a browser.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from painter.checkpoint import atomic_write
from painter.io import save_image

REVIEW_HTML = "review.html"
REVIEW_SHEET = "review.png"
SHEET_IMAGES = 48
THUMB = 160


def write_review(
    out: Path,
    reviewed: Sequence[tuple[str, float, Path]],
    failed: Sequence[tuple[str, str]] = (),
    *,
    sheet_images: int = SHEET_IMAGES,
) -> list[Path]:
    """Write ``review.html`` and ``review.png`` into ``out``.

    Args:
        reviewed: (file name, score, overlay PNG path) per labelled image.
        failed: (file name, error) per image that could not be read.
        sheet_images: how many of the least sure images the contact sheet shows.
    """
    ordered = sorted(reviewed, key=lambda item: (item[1], item[0]))
    rows = "\n".join(
        f'<tr><td>{rank}</td><td><a href="{html.escape(_rel(path, out))}">'
        f'<img src="{html.escape(_rel(path, out))}" width="{THUMB}"></a></td>'
        f"<td>{html.escape(name)}</td><td>{score:.3f}</td></tr>"
        for rank, (name, score, path) in enumerate(ordered, start=1)
    )
    failures = "\n".join(
        f"<li>{html.escape(name)}: {html.escape(error)}</li>" for name, error in failed
    )
    page = (
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>Labelling review</title>"
        "</head><body>\n"
        f"<h1>Labelling review: {len(ordered)} images, least sure first</h1>\n"
        "<table border='1' cellpadding='4'>\n<tr><th>#</th><th>overlay</th><th>image</th>"
        f"<th>score</th></tr>\n{rows}\n</table>\n"
        f"<h2>Not labelled ({len(failed)})</h2>\n<ul>\n{failures}\n</ul>\n</body></html>\n"
    )
    html_path = atomic_write(out / REVIEW_HTML, lambda tmp: Path(tmp).write_text(page, "utf-8"))
    sheet_path = out / REVIEW_SHEET
    save_image(sheet_path, contact_sheet(ordered[:sheet_images]))
    return [html_path, sheet_path]


def contact_sheet(items: Sequence[tuple[str, float, Path]], columns: int = 8) -> np.ndarray:
    """(H, W, 3) uint8 grid of thumbnails, each captioned with its score and file name."""
    columns = max(1, min(columns, len(items)))
    rows = max(1, -(-len(items) // columns))
    cell = THUMB + 20
    sheet = Image.new("RGB", (columns * THUMB, rows * cell), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (name, score, path) in enumerate(items):
        x, y = (k % columns) * THUMB, (k // columns) * cell
        with Image.open(path) as overlay:
            thumb = overlay.convert("RGB")
            thumb.thumbnail((THUMB, THUMB))
        sheet.paste(thumb, (x, y))
        draw.text((x + 2, y + THUMB + 3), f"{score:.2f} {name[-18:]}", fill="black")
    return np.asarray(sheet)


def _rel(path: Path, out: Path) -> str:
    return Path(os.path.relpath(path, out)).as_posix()
