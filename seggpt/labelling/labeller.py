"""Label images from examples: masks, instances and how sure the model is of each.

>>> labeller = Labeller.from_examples(SegGPTPredictor(load_model("demo")), images, masks)
>>> [result] = labeller.label([query])
>>> result.mask, result.score, [(i.class_id, i.score) for i in result.instances]
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from painter.io import ImageSource
from seggpt.coloring import MaskKind
from seggpt.ensemble import EnsembleMode
from seggpt.labelling.scoring import (
    Instance,
    certainty_map,
    class_names_for,
    image_score,
    instance_agreement,
    instances_of,
    mask_agreement,
)
from seggpt.outputs import display_palette
from seggpt.predictor import PreparedPrompts, SegGPTPredictor


@dataclass
class Labelled:
    """One image's labels.

    Attributes:
        mask: (H, W) int64 class ids (refined where the predictor refines).
        painted: (H, W, 3) uint8, what SegGPT painted.
        certainty: (H, W) float32 per-pixel certainty of the painting.
        score: the image's score (``seggpt.labelling.scoring.image_score``).
        instances: the mask's connected components per class, each with its score.
    """

    mask: np.ndarray
    painted: np.ndarray
    certainty: np.ndarray
    score: float
    instances: list[Instance]


class Labeller:
    """A predictor with its prompts prepared once, and the class names of their ids.

    Args:
        predictor: the SegGPT predictor (its refiner, dtype and device are used as they are).
        prompts: prepared prompts (``predictor.prepare_prompts`` or a tuned prompt's).
        class_names: names of the class ids (missing ones get ``class_<id>``).
        checks: the prompts of each example alone; with them every score is also multiplied by
            how well the lone examples agree with the ensemble (``scoring.mask_agreement``),
            at the cost of one more forward pass per example.
    """

    def __init__(
        self,
        predictor: SegGPTPredictor,
        prompts: PreparedPrompts,
        class_names: Mapping[int, str] | None = None,
        *,
        checks: Sequence[PreparedPrompts] = (),
    ) -> None:
        self.predictor = predictor
        self.prompts = prompts
        self.checks = list(checks)
        self._plain = copy.copy(predictor)  # the lone examples' masks are not refined
        self._plain.refiner = None
        coloring = prompts.coloring
        if coloring.kind is MaskKind.INDEX and coloring.shown_ids:
            ids = [int(i) for i in coloring.shown_ids if i != 0]
        else:
            ids = list(range(1, coloring.num_classes + 1))
        given = dict(class_names or {})
        if coloring.kind is MaskKind.COLOR:
            given = {
                i: given.get(i, "#{:02x}{:02x}{:02x}".format(*coloring.class_values[i]))
                for i in ids
            }
        self.class_names = class_names_for(ids, given)
        self.palette = display_palette(coloring)

    @classmethod
    def from_examples(
        cls,
        predictor: SegGPTPredictor,
        images: Sequence[ImageSource],
        masks: Sequence[ImageSource],
        *,
        class_names: Mapping[int, str] | None = None,
        ensemble: EnsembleMode | str = EnsembleMode.FEATURE,
        agreement: bool = False,
    ) -> Labeller:
        """A labeller of ``images``/``masks``; ``agreement`` (with two or more examples) also
        scores by how well each example alone agrees with them all."""
        prompts = predictor.prepare_prompts(images, masks, ensemble=ensemble)
        checks = []
        if agreement and len(images) > 1:
            checks = [predictor.prepare_prompts([i], [m]) for i, m in zip(images, masks)]
        return cls(predictor, prompts, class_names, checks=checks)

    def label(
        self, images: Sequence[np.ndarray], *, batch_size: int | None = None
    ) -> list[Labelled]:
        """Label ``images`` ((H, W, 3) uint8 arrays), in order."""
        if not images:
            return []
        batch = batch_size or len(images)
        predictions = self.predictor.predict(
            None, None, list(images), prompts=self.prompts, batch_size=batch
        )
        alone = [
            [self._ensemble_ids(p.mask, check) for p in self._plain.predict(
                None, None, list(images), prompts=check, batch_size=batch
            )]
            for check in self.checks
        ]  # fmt: skip
        out = []
        for k, prediction in enumerate(predictions):
            certainty = certainty_map(prediction.painted, self.prompts.coloring)
            mask = prediction.mask
            votes = [masks[k] for masks in alone]
            instances = [
                Instance(i.class_id, i.mask, i.score * instance_agreement(i, votes))
                for i in instances_of(mask, certainty)
            ]
            score = image_score(mask, certainty) * mask_agreement(mask, votes)
            out.append(Labelled(mask, prediction.painted, certainty, round(score, 4), instances))
        return out

    def _ensemble_ids(self, mask: np.ndarray, check: PreparedPrompts) -> np.ndarray:
        """A lone example's mask in the ensemble's class ids (colour prompts number their
        colours per call)."""
        if self.prompts.coloring.kind is not MaskKind.COLOR:
            return mask
        ids = {v: i for i, v in enumerate(self.prompts.coloring.class_values)}
        lookup = np.array([ids.get(v, 0) for v in check.coloring.class_values], dtype=np.int64)
        return lookup[mask]
