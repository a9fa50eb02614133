"""Promptable training: object samples, simulated interactive prompting, and learning."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from data_mixtures.records import SegRecord
from painter.errors import ConfigError
from painter.promptable.losses import SimulatedPrompt
from painter.promptable.model import build_sam_from_config
from painter.promptable.prompt_encoder import PADDING_LABEL
from seggpt.training.promptable import (
    PromptableTrainConfig,
    _prompt_rows,
    evaluate_prompts,
    interactive_loss,
    train_promptable,
)
from seggpt.training.promptable_data import centre_point, object_sample
from tests.promptable_helpers import small_sam_config


def test_object_sample_splits_instances_into_components_and_pads_square():
    image = np.full((40, 80, 3), 50, dtype=np.uint8)
    instance = np.zeros((40, 80), dtype=np.int64)
    instance[2:12, 2:12] = 1  # one object in two parts
    instance[20:30, 60:70] = 1
    instance[25:27, 30:32] = 2  # too small once halved
    record = SegRecord(image=image, semantic=(instance > 0).astype(np.int64), instance=instance)
    sample = object_sample(record, 40, min_pixels=10)
    assert sample.image.shape == (40, 40, 3)
    assert sample.image[20:].max() == 0  # padded below the 20x40 resized image
    assert sample.masks.shape == (2, 40, 40)
    assert sorted(int(m.sum()) for m in sample.masks) == [25, 25]
    assert not sample.masks[:, 20:].any()


def test_prompt_rows_pad_to_the_longest_row():
    rows = [
        SimulatedPrompt(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([1, 0])),
        SimulatedPrompt(torch.tensor([[5.0, 6.0]]), torch.tensor([1])),
    ]
    args = _prompt_rows(rows, torch.device("cpu"))
    assert args["boxes"] is None
    assert args["points"].shape == (2, 2, 2)
    assert args["labels"].tolist() == [[1, 0], [1, PADDING_LABEL]]


def test_centre_point_is_the_deepest_pixel():
    mask = np.zeros((20, 30), dtype=bool)
    mask[2:9, 2:9] = True  # small square
    mask[5:18, 12:28] = True  # larger rectangle: its middle is deepest
    x, y = centre_point(mask)
    assert mask[int(y), int(x)]
    assert 17 <= x <= 22 and 10 <= y <= 12


def test_interactive_training_fits_a_batch():
    torch.manual_seed(0)
    model = build_sam_from_config(small_sam_config()).train()
    images = torch.rand(2, 3, 64, 64) * 255
    targets = []
    for b in range(2):
        t = torch.zeros(2, 64, 64, dtype=torch.bool)
        t[0, 8 + 4 * b : 30, 10:34] = True
        t[1, 40:58, 36 + 2 * b : 60] = True
        images[b][:, t[0]] = 240.0  # the objects are visible in the image
        images[b][:, t[1]] = 20.0
        targets.append(t)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = last = None
    for step in range(60):
        generator = torch.Generator().manual_seed(step)
        embeddings = model.encode_images(model.preprocess(images))
        losses = [
            interactive_loss(
                model,
                embeddings[b : b + 1],
                targets[b],
                rounds=2,
                box_prob=0.5,
                generator=generator,
            )[0]
            for b in range(2)
        ]
        loss = torch.stack(losses).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
        last = loss.item()
    assert last < 0.5 * first


def _tiny_run(**changes) -> PromptableTrainConfig:
    """A few steps of two images with two objects each (tests only)."""
    base = dict(batch_size=2, objects_per_image=2, warmup_steps=1)
    return PromptableTrainConfig(**{**base, **changes})


def test_train_promptable_writes_metrics_and_report(tmp_path):
    config = _tiny_run(steps=3, rounds=2, eval_images=3)
    model, report = train_promptable(
        config, tmp_path, sam_config=small_sam_config(), progress=False
    )
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 4
    held = report["held_out"]
    assert held["objects"] > 0 and 0 <= held["one_point_miou"] <= 1
    assert (tmp_path / "report.json").is_file()


def test_evaluation_of_a_perfect_oracle_is_one(monkeypatch):
    from painter.promptable import predictor as predictor_module
    from seggpt.training.promptable_data import demo_sources, object_samples

    _, _, held_out = demo_sources(64, 0)
    samples = object_samples(held_out, 3, 64)

    class Oracle:
        def __init__(self, *args, **kwargs):
            self.truth = None

        def set_image(self, image):
            [match] = [s for s in samples if np.array_equal(s.image, image)]
            self.truth = match.masks

        def predict(self, points=None, labels=None, box=None, multimask=True):
            masks = self.truth[:, None]
            return predictor_module.PromptPrediction(
                masks, np.ones((len(masks), 1)), np.zeros((len(masks), 1, 4, 4))
            )

    monkeypatch.setattr(predictor_module, "PromptablePredictor", Oracle)
    scores = evaluate_prompts(build_sam_from_config(small_sam_config()), samples)
    assert scores["one_point_miou"] == 1.0 and scores["box_miou"] == 1.0
    assert scores["objects"] == sum(len(s.masks) for s in samples)


def test_bad_training_config_is_refused():
    with pytest.raises(ConfigError, match="unknown promptable training keys"):
        PromptableTrainConfig.from_dict({"stepz": 3})
    with pytest.raises(ConfigError):
        dataclasses.replace(PromptableTrainConfig(), box_prob=1.5)


def test_fine_tuning_starts_from_a_checkpoint_and_reports_the_held_out_families(tmp_path):
    from painter.promptable.checkpoint import save_sam

    sam = small_sam_config()
    config = _tiny_run(steps=2, rounds=1, eval_images=2, photo_weight=0.0, openset_weight=0.5)
    config = dataclasses.replace(config, seed=1)
    model, report = train_promptable(config, tmp_path / "a", sam_config=sam, progress=False)
    held = report["held_out_families"]
    assert held["objects"] > 0 and 0 <= held["box_miou"] <= 1
    save_sam(model, tmp_path / "a.safetensors")
    # Another seed (another initialisation) and a learning rate that barely moves anything: the
    # result is the checkpoint's weights, not a fresh model's.
    tiny_steps = dict(lr=1e-8, min_lr=1e-9, seed=0, init=str(tmp_path / "a.safetensors"))
    again, _ = train_promptable(
        dataclasses.replace(config, **tiny_steps), tmp_path / "b", sam_config=sam, progress=False
    )
    trained = model.state_dict()
    for name, value in again.state_dict().items():
        assert torch.allclose(value, trained[name], atol=1e-5), name
    with pytest.raises(ConfigError, match="openset_weight"):
        dataclasses.replace(config, photo_weight=0.6, openset_weight=0.5)
