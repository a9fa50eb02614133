"""The bundled demo model: the claims in its report hold when recomputed (slow; run with
``pytest -m slow``). Skipped when the demo checkpoint has not been built."""

from __future__ import annotations

import json

import pytest

from seggpt.evaluation import evaluate
from seggpt.loading import DEMO_CHECKPOINT, load_model
from seggpt.predictor import SegGPTPredictor
from seggpt.train_config import config_from_dict
from seggpt.training_data import build_eval_episodes

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DEMO_CHECKPOINT.is_file(), reason="demo model not built"),
]


def test_demo_report_reproduces():
    report = json.loads(DEMO_CHECKPOINT.with_suffix(".report.json").read_text())
    model = load_model("demo")
    from safetensors import safe_open

    with safe_open(str(DEMO_CHECKPOINT), framework="pt") as handle:
        train_config = config_from_dict(json.loads(handle.metadata()["train_config"]))
    episodes = build_eval_episodes(train_config, model.config, shots=4)
    result = evaluate(SegGPTPredictor(model), episodes, shots=1)
    assert result.miou == pytest.approx(report["miou"], abs=1e-6)
    few = evaluate(SegGPTPredictor(model), episodes, shots=4, baselines=False)
    assert few.miou >= result.miou - 0.02  # few-shot at least as good, up to noise
