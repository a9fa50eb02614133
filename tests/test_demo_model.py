"""The bundled demo model: its report is reproduced exactly by re-evaluating it, and it clears
the issue's bars on the held-out families (slow; run with ``pytest -m slow``). Skipped when the
demo checkpoint has not been built."""

from __future__ import annotations

import json

import pytest

from seggpt.eval_sets import held_out_photo_names, score_sets
from seggpt.loading import DEMO_CHECKPOINT, load_model
from seggpt.predictor import SegGPTPredictor
from seggpt.train_config import config_from_dict
from seggpt.training_data import build_eval_sets

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DEMO_CHECKPOINT.is_file(), reason="demo model not built"),
]


@pytest.fixture(scope="module")
def reproduced():
    report = json.loads(DEMO_CHECKPOINT.with_suffix(".report.json").read_text())
    model = load_model("demo")
    from safetensors import safe_open

    with safe_open(str(DEMO_CHECKPOINT), framework="pt") as handle:
        train_config = config_from_dict(json.loads(handle.metadata()["train_config"]))
    sets = build_eval_sets(train_config, model.config)
    if held_out_photo_names() != report.get("held_out_photos"):
        sets.pop("photos", None)  # other packages installed: other held-out photos
    sets = {name: episodes for name, episodes in sets.items() if name in report["sets"]}
    return report, score_sets(SegGPTPredictor(model), sets, shots=4)


def test_demo_report_reproduces(reproduced):
    report, scores = reproduced
    assert "same-look" in scores and "colour-independent" in scores
    for name, found in scores.items():
        expected = report["sets"][name]
        assert found.one_shot.miou == pytest.approx(expected["miou"], abs=1e-6), name
        assert found.few_shot == pytest.approx(expected["few_shot"]["miou"], abs=1e-6), name
        for baseline, value in found.one_shot.baselines.items():
            assert value == pytest.approx(expected["baselines"][baseline], abs=1e-6), name


def test_demo_model_segments_from_the_prompt_on_held_out_families(reproduced):
    """Same-look episodes of families it never saw: one-shot >= 0.6 and >= the all-objects
    baseline + 0.2; four prompts at least as good as one."""
    _, scores = reproduced
    same = scores["same-look"]
    assert same.one_shot.miou >= 0.6
    assert same.one_shot.miou >= same.one_shot.baselines["all_objects"] + 0.2
    assert same.few_shot >= same.one_shot.miou
