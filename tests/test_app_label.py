"""The Label tab: the session additions and the store in-process, then the whole review loop
(start, label all, page, click and brush corrections, accept, relabel, export) through
gradio_client against a server in a subprocess, checked against the same session run here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from painter.errors import InputMismatchError, InvalidMaskError
from painter.io import load_mask, save_image
from painter.promptable import PromptablePredictor, build_sam
from seggpt import SegGPTPredictor
from seggpt.labelling.sessions import SessionStore, bundled_session

gradio_client = pytest.importorskip("gradio_client")
pycocotools = pytest.importorskip("pycocotools")
from gradio_client import handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402

BUNDLED = "bundled sample set"


@pytest.fixture(scope="module")
def predictor(tiny_predictor) -> SegGPTPredictor:
    return tiny_predictor


# --- in-process --------------------------------------------------------------------------------


def test_session_adds_examples_and_checks_corrections(predictor, one_thread):
    session = bundled_session(predictor)
    image, mask = session.images[0], np.zeros(session.images[0].shape[:2], dtype=np.int64)
    with pytest.raises(InvalidMaskError, match="empty"):
        session.add_example(image, mask)
    with pytest.raises(InputMismatchError, match="must match"):
        session.add_example(image, mask[:10])
    mask[5:20, 5:20] = 2
    session.add_example(image, mask)
    assert len(session.example_images) == 4
    with pytest.raises(InputMismatchError, match="not labelled yet"):
        session.set_mask(0, mask)
    session.label_all()
    with pytest.raises(InvalidMaskError, match=r"\[7\] are not among"):
        session.set_mask(0, np.full_like(mask, 7))
    with pytest.raises(InputMismatchError, match="no image 99"):
        session.accept(99)
    session.set_mask(0, mask)
    session.accept(0)
    with pytest.raises(InputMismatchError, match="accepted already"):
        session.accept(0)
    session.set_tune_after(None)
    assert session.tuned is None


def test_store_keeps_the_last_sessions(predictor):
    store = SessionStore(capacity=2)
    session = bundled_session(predictor)
    ids = [store.add(session) for _ in range(3)]
    with pytest.raises(InputMismatchError, match="no labelling session"):
        with store.using(ids[0]):
            pass
    with store.using(ids[2]) as served:
        assert served.session is session


# --- the running app ---------------------------------------------------------------------------


def test_review_loop_through_the_api(client, predictor, promptable_file, tmp_path, one_thread):
    session_id, summary = client.predict(BUNDLED, api_name="/label_start")
    assert summary.startswith("24 images, 0 labelled") and "3 examples" in summary
    summary, order = client.predict(session_id, 0, api_name="/label_all")
    scores = [row["score"] for row in order]
    assert len(order) == 24 and scores == sorted(scores)
    _, first = client.predict(session_id, 0, api_name="/label_page")
    _, second = client.predict(session_id, 1, api_name="/label_page")
    assert first["index"] == order[0]["index"] and first["score"] <= second["score"]

    # The same session here: the server's labels and click corrections must equal it.
    reference = bundled_session(predictor)
    reference.label_all()
    worst = first["index"]
    sam = PromptablePredictor(build_sam(checkpoint=promptable_file), device="cpu")
    before = reference.results[worst].mask.copy()
    expected = reference.correct(worst, class_id=1, points=[[20, 30]], labels=[1], refiner=sam)
    _, mask_file = client.predict(session_id, worst, 1, "20,30,1", api_name="/label_click")
    clicked = load_mask(mask_file)
    np.testing.assert_array_equal(clicked, expected)
    assert (clicked != before).any()

    brushed = np.zeros_like(clicked)
    brushed[8:30, 10:40], brushed[35:50, 20:60] = 2, 3
    brush_file = tmp_path / "brushed.png"
    save_image(brush_file, brushed.astype(np.uint8))
    _, mask_file = client.predict(
        session_id, worst, handle_file(brush_file), api_name="/label_brush"
    )
    np.testing.assert_array_equal(load_mask(mask_file), brushed)

    summary = client.predict(session_id, worst, api_name="/label_accept")
    assert "1 accepted, 4 examples" in summary
    summary, order = client.predict(session_id, 0, api_name="/label_all")
    assert len(order) == 23 and worst not in [row["index"] for row in order]

    files, info = client.predict(session_id, str(tmp_path / "out"), api_name="/label_export")
    assert "exported 24 labelled images" in info
    assert {p.rsplit("/", 1)[-1] for p in files} >= {"coco.json", "label_studio_tasks.json"}
    coco = COCO(str(tmp_path / "out" / "coco.json"))
    assert len(coco.getImgIds()) == 24
    for image_id in coco.getImgIds():
        info = coco.loadImgs(image_id)[0]
        mask = np.zeros((info["height"], info["width"]), dtype=np.int64)
        for annotation in coco.loadAnns(coco.getAnnIds(imgIds=image_id)):
            mask[coco.annToMask(annotation).astype(bool)] = annotation["category_id"]
        stem = info["file_name"].rsplit(".", 1)[0]
        png = load_mask(tmp_path / "out" / "masks" / f"{stem}_mask.png")
        np.testing.assert_array_equal(mask, png)
        if info["file_name"] == f"sample_{worst:02d}.png":  # accepted: not relabelled
            np.testing.assert_array_equal(png, brushed)
    tasks = json.loads((tmp_path / "out" / "label_studio_tasks.json").read_text())
    assert len(tasks) == 24


def test_label_errors_are_readable(client, tmp_path):
    (tmp_path / "empty").mkdir()
    save_image(tmp_path / "example.png", np.zeros((32, 32, 3), dtype=np.uint8))
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[4:12, 4:12] = 1
    save_image(tmp_path / "mask.png", mask)
    pair = [handle_file(tmp_path / "example.png")], [handle_file(tmp_path / "mask.png")]
    folder = "folder on the server"
    cases = [
        ((folder, str(tmp_path / "empty"), *pair), "/label_start", "holds no image files"),
        ((folder, str(tmp_path / "empty")), "/label_start", "give at least one example"),
        ((folder, str(tmp_path / "nope"), *pair), "/label_start", "no such file or folder"),
        (("feedface", 0), "/label_all", "no labelling session 'feedface'"),
    ]
    for args, endpoint, message in cases:
        with pytest.raises(AppError, match=message) as caught:
            client.predict(*args, api_name=endpoint)
        assert "Traceback" not in str(caught.value)
    session_id, _ = client.predict(BUNDLED, api_name="/label_start")
    with pytest.raises(AppError, match="not labelled yet"):
        client.predict(session_id, 0, 1, "5,5,1", api_name="/label_click")
    client.predict(session_id, 0, api_name="/label_all")
    with pytest.raises(AppError, match=r"\[7\] are not among"):
        client.predict(session_id, 0, 7, "5,5,1", api_name="/label_click")
    with pytest.raises(AppError, match="no review position 40"):
        client.predict(session_id, 40, api_name="/label_page")
