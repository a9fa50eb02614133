"""SegGPT: in-context segmentation from example image+mask pairs.

>>> from seggpt import load_model, SegGPTPredictor
>>> predictor = SegGPTPredictor(load_model("demo"))
"""

from painter.config import SegType
from seggpt.ensemble import EnsembleMode
from seggpt.loading import build_model, load_model
from seggpt.predictor import Prediction, SegGPTPredictor

__all__ = ["EnsembleMode", "Prediction", "SegGPTPredictor", "SegType", "build_model", "load_model"]
