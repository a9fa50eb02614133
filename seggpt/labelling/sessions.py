"""Labelling sessions behind a server (the app's Label tab): where their images come from, a
bounded store keyed by id, and the page of one image under review.

>>> store = SessionStore()
>>> session_id = store.add(bundled_session(predictor), failed=[])
>>> with store.using(session_id) as served:
...     served.session.label_all()
...     first = review_page(served.session, 0)     # the least sure image
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from painter.errors import InputMismatchError, InvalidImageError
from painter.io import overlay
from seggpt.labelling.inputs import Examples, ImageDataset, collect_images, load_examples
from seggpt.labelling.session import LabelSession
from seggpt.predictor import SegGPTPredictor
from seggpt.samples import FIXED_CLASS_NAMES, fixed_class_split

MAX_SESSIONS = 8  # sessions a server keeps; the least recently used one goes first
MAX_IMAGES = 500  # images one session may hold (they stay in memory); more is tools.label's job
BUNDLED_IMAGES = 24  # held-out images of the bundled fixed-class task to label
BUNDLED_EXAMPLES = 3  # its training images given as examples


def bundled_session(
    predictor: SegGPTPredictor, examples: Examples | None = None, **options: object
) -> LabelSession:
    """A session over the bundled fixed-class task: :data:`BUNDLED_IMAGES` held-out images,
    :data:`BUNDLED_EXAMPLES` training pairs as examples (plus ``examples``), at the model's
    half-canvas size. ``options``: ``LabelSession`` keywords (``tune_after``, ...)."""
    size = predictor.config.half_size
    images, _ = fixed_class_split(size, "held_out", BUNDLED_IMAGES)
    example_images, example_masks = fixed_class_split(size, "train", BUNDLED_EXAMPLES)
    if examples is not None:
        example_images, example_masks = (
            example_images + examples.images,
            example_masks + examples.masks,
        )
    names = [f"sample_{i:02d}.png" for i in range(len(images))]
    class_names = dict(enumerate(FIXED_CLASS_NAMES))
    del class_names[0]
    return LabelSession(
        predictor, images, names, example_images, example_masks, class_names=class_names, **options
    )


def folder_session(
    predictor: SegGPTPredictor, folder: str, examples: Examples, **options: object
) -> tuple[LabelSession, list[tuple[str, str]]]:
    """A session over the images of ``folder`` (or an image list file, or a dataset folder:
    what ``tools.label`` reads) labelled from ``examples``; also (file name, error) per image
    that could not be read. ``options``: ``LabelSession`` keywords."""
    if not (folder or "").strip():
        raise InvalidImageError("give the folder of images to label")
    refs = collect_images([folder.strip()])
    if len(refs) > MAX_IMAGES:
        raise InputMismatchError(
            f"{folder} holds {len(refs)} images; a session takes at most {MAX_IMAGES} "
            "(label larger sets with python -m tools.label)"
        )
    images, names, failed = [], [], []
    dataset = ImageDataset(refs)
    for position in range(len(dataset)):
        _, image, error = dataset[position]
        if image is None:
            failed.append((refs[position].file_name, error))
        else:
            images.append(image)
            names.append(refs[position].file_name)
    if not images:
        raise InvalidImageError(f"no image of {folder} could be read: {failed[0][1]}")
    session = LabelSession(
        predictor,
        images,
        names,
        examples.images,
        examples.masks,
        class_names=examples.class_names,
        **options,
    )
    return session, failed


def example_pairs(
    images: Sequence[str], masks: Sequence[str], *, required: bool
) -> Examples | None:
    """Example files loaded and checked (``load_examples``); None when none are given and
    ``required`` is false."""
    if len(images) != len(masks):
        raise InputMismatchError(
            f"{len(images)} example images but {len(masks)} example masks; give one mask each"
        )
    if not images:
        if required:
            raise InputMismatchError("give at least one example: an image and its mask")
        return None
    return load_examples(list(zip(images, masks)))


@dataclass
class Served:
    """A session in the store, with the lock its requests take turns on."""

    session: LabelSession
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file name, error)
    lock: threading.Lock = field(default_factory=threading.Lock)


class SessionStore:
    """Sessions by id, at most ``capacity`` (the least recently used one is dropped)."""

    def __init__(self, capacity: int = MAX_SESSIONS) -> None:
        self.capacity = capacity
        self._served: OrderedDict[str, Served] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, session: LabelSession, *, failed: Sequence[tuple[str, str]] = ()) -> str:
        """Keep ``session``; returns its new id."""
        session_id = uuid.uuid4().hex[:12]
        with self._lock:
            self._served[session_id] = Served(session, list(failed))
            while len(self._served) > self.capacity:
                self._served.popitem(last=False)
        return session_id

    @contextlib.contextmanager
    def using(self, session_id: str) -> Iterator[Served]:
        """The session ``session_id``, held for this request alone."""
        with self._lock:
            served = self._served.get((session_id or "").strip())
            if served is None:
                raise InputMismatchError(
                    f"no labelling session {session_id!r}: start one first (the app keeps the "
                    f"last {self.capacity} sessions)"
                )
            self._served.move_to_end(session_id.strip())
        with served.lock:
            yield served


@dataclass
class ReviewPage:
    """One image under review: its place in the review order and how it is labelled now."""

    position: int  # in ``session.order()``, least sure first
    count: int  # images left to review
    index: int  # the image's index in the session
    name: str
    score: float
    overlay: np.ndarray  # (H, W, 3) uint8


def labelled_overlay(session: LabelSession, index: int) -> np.ndarray:
    """(H, W, 3) uint8: image ``index`` with its current mask in the session's colours."""
    return overlay(session.images[index], session.results[index].mask, session.labeller.palette)


def review_page(session: LabelSession, position: int) -> ReviewPage:
    """The image at ``position`` of the review order (least sure first)."""
    order = session.order()
    if not order:
        raise InputMismatchError("no image to review: label the images first (or all are accepted)")
    if not 0 <= position < len(order):
        raise InputMismatchError(f"no review position {position}; there are {len(order)} (0 first)")
    index = order[position]
    result = session.results[index]
    return ReviewPage(
        position,
        len(order),
        index,
        session.names[index],
        result.score,
        labelled_overlay(session, index),
    )


def session_summary(session: LabelSession, failed: Sequence[tuple[str, str]] = ()) -> str:
    """One line: images, labelled, accepted, examples, classes (and unreadable files)."""
    classes = ", ".join(f"{i}={n}" for i, n in session.labeller.class_names.items())
    tuned = "; labelling with a tuned prompt" if session.tuned is not None else ""
    unread = f"; {len(failed)} file(s) could not be read" if failed else ""
    return (
        f"{len(session.images)} images, {len(session.results)} labelled, "
        f"{len(session.accepted)} accepted, {len(session.example_images)} examples; "
        f"classes {classes}{tuned}{unread}"
    )
