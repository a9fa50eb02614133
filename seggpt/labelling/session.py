"""The review-and-correct loop over an image set held in memory (the app's Label tab, scripts).

>>> session = LabelSession(predictor, images, names, example_images, example_masks)
>>> session.label_all()                         # every image not yet accepted
>>> worst = session.order()[0]                  # least sure first
>>> session.correct(worst, class_id=1, points=[[40, 30]], labels=[1], refiner=promptable)
>>> session.accept(worst)                       # joins the examples
>>> session.label_all()                         # relabels only the images not accepted
>>> session.export("labels/")                   # the files tools.label writes

Accepted images join the example set; past ``tune_after`` examples the session tunes a prompt on
all of them (``seggpt.tuning``, model frozen) and labels with it instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from painter.errors import InputMismatchError, InvalidMaskError
from seggpt.labelling.exports import MASKS_DIR, image_record, write_exports
from seggpt.labelling.inputs import ImageRef
from seggpt.labelling.labeller import Labelled, Labeller
from seggpt.labelling.scoring import instances_of
from seggpt.outputs import output_names, write_prediction
from seggpt.predictor import SegGPTPredictor
from seggpt.tuning import TunedPrompt, tune_prompt, tuning_data

if TYPE_CHECKING:
    from painter.promptable.predictor import PromptablePredictor

logger = logging.getLogger(__name__)


class LabelSession:
    """Images, their current labels, and the examples they are labelled from.

    Args:
        predictor: the SegGPT predictor.
        images: (H, W, 3) uint8 images to label.
        names: a file name per image (``a.png``, ``sub/b.jpg``), used in the exported files.
        example_images, example_masks: the starting examples (class-id masks).
        class_names: names of the class ids.
        tune_after: with more examples than this, tune a prompt on them (None: never).
        tune_steps: steps of that tuning.
        tune_foreground_weight: its loss weight of coloured pixels (3: as the bundled models
            were trained; ``seggpt.tuning.tune_prompt``).
        agreement: also score by how well each example alone agrees with them all
            (``Labeller.from_examples``; one more forward pass per example).
    """

    def __init__(
        self,
        predictor: SegGPTPredictor,
        images: Sequence[np.ndarray],
        names: Sequence[str],
        example_images: Sequence[np.ndarray],
        example_masks: Sequence[np.ndarray],
        *,
        class_names: Mapping[int, str] | None = None,
        tune_after: int | None = None,
        tune_steps: int = 100,
        tune_foreground_weight: float = 3.0,
        agreement: bool = False,
    ) -> None:
        if len(images) != len(names):
            raise InputMismatchError(f"{len(images)} images but {len(names)} names")
        if not images:
            raise InputMismatchError("give at least one image to label")
        self.predictor = predictor
        self.images = list(images)
        self.names = list(names)
        self.example_images = list(example_images)
        self.example_masks = list(example_masks)
        self.given_names = dict(class_names or {})
        self.tune_after = tune_after
        self.tune_steps = tune_steps
        self.tune_foreground_weight = tune_foreground_weight
        self.agreement = agreement
        self.results: dict[int, Labelled] = {}
        self.accepted: set[int] = set()
        self.tuned: TunedPrompt | None = None
        self._labeller_now: Labeller | None = self._labeller()  # checks the examples now

    # -- examples --------------------------------------------------------------------------------
    def add_example(self, image: np.ndarray, mask: np.ndarray) -> None:
        """Add an example pair ((H, W, 3) uint8 image, (H, W) class ids); the next labelling
        uses it."""
        image, mask = np.asarray(image), np.asarray(mask)
        if image.shape[:2] != mask.shape[:2]:
            raise InputMismatchError(
                f"example image is {image.shape[1]}x{image.shape[0]} but its mask is "
                f"{mask.shape[1]}x{mask.shape[0]}; they must match"
            )
        if not mask.any():
            raise InvalidMaskError("example mask is empty; an example must show a class")
        self.example_images.append(image)
        self.example_masks.append(mask)
        self._labeller_now = None  # rebuilt (and tuned) when next needed

    def set_tune_after(self, tune_after: int | None) -> None:
        """Tune a prompt once there are more examples than ``tune_after`` (None: never)."""
        if tune_after != self.tune_after:
            self.tune_after = tune_after
            self.tuned = None
            self._labeller_now = None

    # -- labelling -------------------------------------------------------------------------------
    @property
    def labeller(self) -> Labeller:
        """The labeller of the current examples (a tuned prompt past ``tune_after``), built when
        first needed after they change."""
        if self._labeller_now is None:
            self._labeller_now = self._labeller()
        return self._labeller_now

    def _labeller(self) -> Labeller:
        if self.tune_after is not None and len(self.example_images) > self.tune_after:
            return self._tuned_labeller()
        return Labeller.from_examples(
            self.predictor,
            self.example_images,
            self.example_masks,
            class_names=self.given_names,
            agreement=self.agreement,
        )

    def _tuned_labeller(self) -> Labeller:
        model = self.predictor.model
        k = max(int(np.max(m)) for m in self.example_masks)
        names = ["background"] + [self.given_names.get(i, f"class_{i}") for i in range(1, k + 1)]
        data = tuning_data(model, self.example_images, self.example_masks, k)
        self.tuned = tune_prompt(
            model,
            data,
            names,
            steps=self.tune_steps,
            seg_type=self.predictor.seg_type,  # tuned with the token it is used with
            foreground_weight=self.tune_foreground_weight,
            progress=False,
        )
        model.eval()
        return Labeller(
            self.predictor, self.tuned.prepared(self.predictor.device), self.given_names
        )

    def label_all(self, *, batch_size: int = 4) -> list[int]:
        """Label every image not accepted; returns their indices."""
        todo = [i for i in range(len(self.images)) if i not in self.accepted]
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            for i, result in zip(chunk, self.labeller.label([self.images[j] for j in chunk])):
                self.results[i] = result
        return todo

    def order(self) -> list[int]:
        """Labelled images not accepted yet, least sure first."""
        pending = [i for i in self.results if i not in self.accepted]
        return sorted(pending, key=lambda i: (self.results[i].score, i))

    # -- corrections -----------------------------------------------------------------------------
    def correct(
        self,
        index: int,
        *,
        class_id: int,
        points: Sequence[Sequence[float]],
        labels: Sequence[int],
        refiner: PromptablePredictor,
    ) -> np.ndarray:
        """Redraw one class of image ``index`` from clicks (x, y; label 1 = on the object, 0 =
        not) with the promptable model; other classes keep their pixels. Returns the mask."""
        if len(points) != len(labels) or not points:
            raise InputMismatchError("give one label (1 or 0) per click, and at least one click")
        current = self._current(index)
        self._check_ids(np.asarray([class_id]))
        refiner.set_image(self.images[index])
        prediction = refiner.predict(points=[list(points)], labels=[list(labels)], multimask=True)
        drawn = prediction.best()[0]
        mask = np.where(current == class_id, 0, current)
        mask[drawn] = class_id
        self.set_mask(index, mask)
        return mask

    def set_mask(self, index: int, mask: np.ndarray) -> None:
        """Replace image ``index``'s mask (a brush correction), keeping its painting's score."""
        current = self._current(index)
        mask = np.asarray(mask)
        if mask.shape != current.shape:
            raise InvalidMaskError(
                f"corrected mask is {mask.shape[1]}x{mask.shape[0]} but image {index} is "
                f"{current.shape[1]}x{current.shape[0]}"
            )
        self._check_ids(mask)
        old = self.results[index]
        self.results[index] = Labelled(
            mask.astype(np.int64),
            old.painted,
            old.certainty,
            old.score,
            instances_of(mask.astype(np.int64), old.certainty),
        )

    def accept(self, index: int) -> None:
        """Mark image ``index``'s mask correct: it joins the examples (and, past ``tune_after``,
        the next labelling tunes a prompt on all examples)."""
        mask = self._current(index)
        if index in self.accepted:
            raise InputMismatchError(f"image {index} is accepted already")
        if not mask.any():
            raise InvalidMaskError(f"image {index} has an empty mask; an example must show a class")
        self.accepted.add(index)
        self.example_images.append(self.images[index])
        self.example_masks.append(mask)
        self._labeller_now = None  # rebuilt (and tuned) when next needed

    def _check_ids(self, ids: np.ndarray) -> None:
        """Every id is background or one of the examples' classes."""
        known = sorted(self.labeller.class_names)
        unknown = sorted(set(np.unique(ids).tolist()) - {0, *known})
        if unknown:
            raise InvalidMaskError(
                f"class id(s) {unknown} are not among the examples' classes {known}"
            )

    def _current(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self.images):
            raise InputMismatchError(f"no image {index}; the session has {len(self.images)}")
        if index not in self.results:
            raise InputMismatchError(f"image {index} is not labelled yet; label it first")
        return self.results[index].mask

    # -- export ----------------------------------------------------------------------------------
    def export(self, out: str | Path, *, image_url_prefix: str | None = None) -> dict:
        """Write every labelled image's PNGs, the COCO file, the Label Studio tasks and the
        review files into ``out``, as ``tools.label`` does. Accepted images score 1."""
        out = Path(out)
        stems = output_names(self.names)
        items = []
        palette = self.labeller.palette
        for i in sorted(self.results):
            result = self.results[i]
            ref = ImageRef(key=self.names[i], file_name=self.names[i], name=stems[i])
            write_prediction(out / MASKS_DIR, ref.name, result.mask, palette, image=self.images[i])
            score = 1.0 if i in self.accepted else result.score
            h, w = result.mask.shape
            items.append((ref, image_record(h, w, score, result.instances)))
        kwargs = {} if image_url_prefix is None else {"image_url_prefix": image_url_prefix}
        return write_exports(out, items, self.labeller.class_names, **kwargs)
