"""Trainer: exact resume, config checks, torchrun DDP, and learning on a small task."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from painter.errors import CheckpointError, ConfigError
from painter.optim import warmup_cosine
from painter.registry import get_config
from seggpt.loading import load_model
from seggpt.training.config import load_train_config
from seggpt.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_resume_continues_exactly(tmp_path):
    overrides = ["steps=4", "eval_every=0", "save_every=2", "model=seggpt_test", "drop_path=0.1"]
    config = load_train_config(SMOKE, overrides)
    straight = Trainer(config, tmp_path / "straight", device="cpu")
    straight.fit()
    interrupted = Trainer(config, tmp_path / "resumed", device="cpu")
    interrupted.fit(stop_after=2)  # "killed" after step 2; its checkpoint is on disk
    resumed = Trainer(config, tmp_path / "resumed", device="cpu")
    resumed.resume(resumed.latest_checkpoint())
    assert resumed.step == 2
    resumed.fit()
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    before = Trainer(config, tmp_path / "fresh", device="cpu")
    assert any(not torch.allclose(a[k], before.model.state_dict()[k]) for k in a)
    # a run folder's checkpoint loads as a model (for evaluating a run while it trains)
    loaded = load_model(straight.latest_checkpoint())
    assert loaded.config == straight.model.config
    assert all(torch.equal(v, a[k]) for k, v in loaded.state_dict().items())


def test_a_run_of_zero_steps_exports_its_init_unchanged(tmp_path):
    """steps=0 trains nothing: the run reads its init as its model (a later recipe stage that
    only changes a setting), and exports it with its report; no curves without steps."""
    config = load_train_config(SMOKE, ["steps=2", "eval_every=0", "model=seggpt_test"])
    first = Trainer(config, tmp_path / "first", device="cpu")
    first.fit()
    init = str(first.latest_checkpoint())
    zero = load_train_config(
        SMOKE, ["steps=0", "warmup_steps=0", "eval_every=0", "model=seggpt_test", f"init={init}"]
    )
    trainer = Trainer(zero, tmp_path / "zero", device="cpu")
    assert trainer.fit().step == 0
    report = trainer.export(tmp_path / "zero.safetensors")
    assert report["step"] == 0 and report["train_seconds"] is None
    assert not (tmp_path / "zero" / "curves.png").exists()
    exported = load_model(tmp_path / "zero.safetensors").state_dict()
    assert all(torch.equal(v, exported[k]) for k, v in _weights(first).items())
    with pytest.raises(ConfigError, match="warmup_steps"):
        load_train_config(SMOKE, ["steps=0", "warmup_steps=1"])


def test_the_dice_term_joins_the_loss_and_pushes_painting_towards_the_target(tmp_path):
    """dice_weight adds the soft Dice of the painted intensities over hidden pixels (no
    foreground weighting) to the model's loss, and its gradient raises painting on target
    pixels and lowers it on black ones."""
    from painter.losses import masked_soft_dice
    from painter.ops import denormalize, normalize
    from seggpt.training.objective import training_loss

    config = load_train_config(SMOKE, ["steps=2", "model=seggpt_test", "dice_weight=0.5"])
    trainer = Trainer(config, tmp_path, device="cpu")
    batch = next(trainer._batches(0))
    targets = normalize(batch.target)
    pred = torch.zeros(targets.shape, requires_grad=True)  # raw output: a uniform grey
    loss = training_loss(trainer.model, config, pred, targets, batch)
    plain = training_loss(
        trainer.model, dataclasses.replace(config, dice_weight=0.0), pred, targets, batch
    )
    patch = trainer.model.config.vit.patch_size
    painted = denormalize(trainer.model.to_canvas(pred).float()).clamp(0, 1)
    dice = masked_soft_dice(
        painted, batch.target, batch.patch_mask, patch_size=patch, valid=batch.valid
    )
    assert float((loss - plain).detach()) == pytest.approx(0.5 * float(dice.detach()), rel=1e-5)
    (grad,) = torch.autograd.grad(loss - plain, pred)
    hidden = batch.patch_mask.view(len(targets), 1, *[n // patch for n in targets.shape[2:]])
    hidden = hidden.repeat_interleave(patch, 2).repeat_interleave(patch, 3).expand_as(grad)
    lit = (batch.target > 0.5) & hidden
    dark = (batch.target < 0.01) & hidden
    assert lit.any() and dark.any()
    assert float(grad[lit].mean()) < 0 < float(grad[dark].mean())
    with pytest.raises(ConfigError, match="dice_weight"):
        load_train_config(SMOKE, ["dice_weight=-1"])


def test_set_parameters_recalibrates_named_parameters_after_init(tmp_path):
    """set_parameters writes values into named parameters after init (how the demo recipe's
    last stage sets the match head's gate and temperature); wrong names and shapes are config
    errors that say what the model has."""
    base = load_train_config(SMOKE, ["steps=2", "eval_every=0", "model=seggpt_smoke_match"])
    trainer = Trainer(base, tmp_path / "base", device="cpu")
    names = dict(trainer.model.named_parameters())
    assert "matcher.log_scale" in names and "matcher.gain" in names
    values = {"matcher.log_scale": 3.5, "matcher.gain": [1.0, 2.0, 3.0]}
    config = dataclasses.replace(base, set_parameters=values)
    model = Trainer(config, tmp_path / "set", device="cpu").model
    assert model.matcher.log_scale.item() == 3.5
    assert model.matcher.gain.tolist() == [1.0, 2.0, 3.0]
    untouched = {k: v for k, v in model.state_dict().items() if k not in values}
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in untouched.items())
    for wrong, message in [
        ({"matcher.log_scal": 1.0}, "no parameter 'matcher.log_scal'.*matcher.log_scale"),
        ({"matcher.gain": [1.0, 2.0]}, r"matcher.gain has shape \(3,\)"),
        ({"matcher.gain": "high"}, "wants numbers"),
    ]:
        with pytest.raises(ConfigError, match=message):
            Trainer(dataclasses.replace(base, set_parameters=wrong), tmp_path / "x", device="cpu")
    with pytest.raises(ConfigError, match="set_parameters"):
        load_train_config(SMOKE, ["set_parameters=3"])


def test_resume_refuses_another_config(tmp_path):
    config = load_train_config(SMOKE, ["steps=2", "eval_every=0"])
    trainer = Trainer(config, tmp_path, device="cpu")
    trainer.fit()
    other = Trainer(load_train_config(SMOKE, ["steps=2", "eval_every=0", "lr=0.5"]), tmp_path)
    with pytest.raises(CheckpointError, match="lr"):
        other.resume(trainer.latest_checkpoint())


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown config keys"):
        load_train_config(SMOKE, ["stepz=3"])
    with pytest.raises(ConfigError, match="warmup_steps"):
        load_train_config(SMOKE, ["steps=3", "warmup_steps=5"])
    with pytest.raises(ConfigError, match="key=value"):
        load_train_config(SMOKE, ["steps"])


def test_torchrun_ddp_ranks_agree(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "tools.train",
        "--config",
        str(SMOKE),
        "--out",
        str(tmp_path / "ddp"),
        "--device",
        "cpu",
        "steps=3",
        "eval_every=0",
        "drop_path=0.1",
    ]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    problems = [line for line in done.stderr.splitlines() if not line.startswith("INFO")]
    assert done.returncode == 0, "\n".join(problems[-40:])
    sums = json.loads((tmp_path / "ddp" / "rank_checksums.json").read_text())
    assert len(sums) == 2 and sums[0] == pytest.approx(sums[1], rel=1e-9)
    assert sorted(p.name for p in (tmp_path / "ddp").glob("checkpoint_*.pt")) == [
        "checkpoint_0000003.pt"
    ]


def test_a_short_run_learns_open_set_episodes(tmp_path):
    """The training smoke test: the tiny seggpt_smoke_match model trained from scratch for
    about two minutes on open-set same-look episodes of the training families; the loss falls
    and one-shot mIoU on episodes of the held-out families clears both the prompt-ignoring
    baselines that a small model can be asked to beat (painting all foreground, following
    someone else's prompt) by 0.1."""
    config = load_train_config(ROOT / "configs" / "smoke_openset.yaml")
    trainer = Trainer(config, tmp_path, device="cpu")
    result = trainer.fit()
    losses = [row["loss"] for row in trainer.history]
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < 0.75 * first, (first, last)
    report = result.eval
    assert report is not None and result.step == config.steps
    baselines = report.baselines
    beaten = max(baselines["all_foreground"], baselines["wrong_prompt"])
    assert report.miou > beaten + 0.1, (report.miou, baselines)


def test_warmup_cosine_schedule_shared_by_the_trainers():
    """Linear warm-up from min_lr, cosine down to min_lr at the last step, and every parameter
    group keeps its own peak (layer-wise decay ratios survive the schedule)."""
    weights = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    optimizer = torch.optim.AdamW(
        [{"params": [weights[0]], "lr": 1e-3}, {"params": [weights[1]], "lr": 5e-4}]
    )
    schedule = warmup_cosine(optimizer, steps=100, warmup_steps=10, min_lr=1e-5)
    lrs = []
    for step in range(101):
        schedule.step_update(step)
        lrs.append([group["lr"] for group in optimizer.param_groups])
    assert lrs[0] == pytest.approx([1e-5, 1e-5])
    assert lrs[5][0] == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))  # halfway up the warm-up
    for step in (10, 50, 80):  # after the warm-up: the cosine over all steps, per group
        factor = 0.5 * (1 + math.cos(math.pi * step / 100))
        assert lrs[step] == pytest.approx([1e-5 + (peak - 1e-5) * factor for peak in (1e-3, 5e-4)])
    assert lrs[100] == pytest.approx([1e-5, 1e-5])
    tail = [lr[0] for lr in lrs[10:]]
    assert all(a >= b for a, b in zip(tail, tail[1:]))  # monotone decay after the warm-up


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_parses_and_names_a_registered_model(path):
    """A typo in a shipped recipe (a key, a model name) fails here, not an hour into make."""
    from painter.promptable.config import get_sam_config
    from seggpt.training.config import read_config_mapping
    from seggpt.training.promptable import PromptableTrainConfig

    if "promptable" in path.name:
        config = PromptableTrainConfig.from_dict(read_config_mapping(path))
        get_sam_config(config.model)
    else:
        config = load_train_config(path)
        get_config(config.model)
