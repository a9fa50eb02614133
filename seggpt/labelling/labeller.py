"""Label images from examples: masks, instances and how sure the model is of each.

>>> labeller = Labeller.from_examples(SegGPTPredictor(load_model("demo")), images, masks)
>>> [result] = labeller.label([query])
>>> result.mask, result.score, [(i.class_id, i.score) for i in result.instances]
"""

from __future__ import annotations

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
    instances_of,
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
    """

    def __init__(
        self,
        predictor: SegGPTPredictor,
        prompts: PreparedPrompts,
        class_names: Mapping[int, str] | None = None,
    ) -> None:
        self.predictor = predictor
        self.prompts = prompts
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
    ) -> Labeller:
        prompts = predictor.prepare_prompts(images, masks, ensemble=ensemble)
        return cls(predictor, prompts, class_names)

    def label(
        self, images: Sequence[np.ndarray], *, batch_size: int | None = None
    ) -> list[Labelled]:
        """Label ``images`` ((H, W, 3) uint8 arrays), in order."""
        if not images:
            return []
        predictions = self.predictor.predict(
            None, None, list(images), prompts=self.prompts, batch_size=batch_size or len(images)
        )
        out = []
        for prediction in predictions:
            certainty = certainty_map(prediction.painted, self.prompts.coloring)
            mask = prediction.mask
            out.append(
                Labelled(
                    mask=mask,
                    painted=prediction.painted,
                    certainty=certainty,
                    score=round(image_score(mask, certainty), 4),
                    instances=instances_of(mask, certainty),
                )
            )
        return out
