"""Training loop for SegGPT/Painter models: one process or many under ``torchrun`` (DDP/FSDP).

Episode k of the data stream is a pure function of (data seed, k), so the data position is just
a counter: resuming and sharding across ranks are exact. Checkpoints hold model, optimiser,
scheduler, step and data position (random draws are
re-derived from the step), are written atomically by rank 0, and carry the
resolved config; a resume from another config is refused.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from tqdm.auto import tqdm

from data_mixtures.records import collate_episodes
from painter.checkpoint import atomic_write, file_sha256, save_native, torch_load
from painter.devices import autocast
from painter.errors import CheckpointError
from painter.model import PainterModel
from painter.ops import normalize
from painter.optim import build_optimizer
from painter.registry import get_config
from seggpt.evaluation.heldout import SetScores, held_out_photo_names, score_sets
from seggpt.evaluation.metrics import EvalReport, evaluate
from seggpt.loading import build_model
from seggpt.predictor import SegGPTPredictor, resolve_device
from seggpt.training.config import Parallel, Precision, TrainConfig, config_from_dict
from seggpt.training.data import build_eval_sets, build_train_dataset
from seggpt.training.distributed import setup_distributed
from seggpt.training.init_weights import initialise_from, set_parameters
from seggpt.training.logs import RunLogs, eval_row
from seggpt.training.objective import training_loss

logger = logging.getLogger(__name__)
CHECKPOINT_VERSION = 1


@dataclass
class TrainResult:
    step: int
    last_loss: float
    eval: EvalReport | None
    run_dir: Path


class Trainer:
    """Owns one run: model, optimiser, schedule, data position, logs and checkpoints."""

    def __init__(self, config: TrainConfig, run_dir: str | os.PathLike, *, device=None) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        device = resolve_device(device)
        self.env = setup_distributed(device)
        if device.type == "cuda":
            device = torch.device("cuda", self.env.local_rank)
            torch.cuda.set_device(device)
        self.device = device
        torch.manual_seed(config.seed)  # identical initial weights on every rank
        model_config = get_config(config.model)
        vit = model_config.vit.__class__(
            **{**model_config.vit.__dict__, "drop_path_rate": config.drop_path}
        )
        beta = model_config.loss_beta if config.loss_beta is None else config.loss_beta
        model_config = model_config.__class__(
            **{**model_config.__dict__, "vit": vit, "loss_beta": beta}
        )
        model = build_model(model_config)
        if config.init:
            report = initialise_from(model, config.init)
            logger.info(
                "initialised from %s: %d keys left at init (%s...)",
                config.init,
                len(report.missing),
                report.missing[:3],
            )
        set_parameters(model, config.set_parameters)
        model.set_grad_checkpointing(config.grad_checkpointing)
        self.model: PainterModel = model.to(device)
        self.wrapped = self._wrap(model)
        self.optimizer, self.scheduler = build_optimizer(model, config)
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=config.precision is Precision.FP16 and device.type == "cuda"
        )
        self.dataset = build_train_dataset(config, model_config)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self._eval_sets: dict[str, list] | None = None

    # -- setup -----------------------------------------------------------------------------------
    def _wrap(self, model: PainterModel) -> torch.nn.Module:
        if self.env.world_size == 1:
            return model
        if self.config.parallel is Parallel.FSDP:
            from torch.distributed.fsdp import fully_shard

            for block in model.backbone.blocks:
                fully_shard(block)
            return fully_shard(model)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = {
            Precision.FP32: torch.float32,
            Precision.BF16: torch.bfloat16,
            Precision.FP16: torch.float16,
        }[self.config.precision]
        return autocast(self.device, dtype)

    # -- data ------------------------------------------------------------------------------------
    def positions(self, step: int, micro: int) -> list[int]:
        """Data positions of this rank's micro-batch ``micro`` of optimiser step ``step``."""
        cfg = self.config
        global_batch = cfg.batch_size * self.env.world_size
        start = (step * cfg.accum_steps + micro) * global_batch + self.env.rank * cfg.batch_size
        return list(range(start, start + cfg.batch_size))

    def _batches(self, start_step: int) -> Iterator:
        cfg = self.config
        plan = [
            self.positions(s, m)
            for s in range(start_step, cfg.steps)
            for m in range(cfg.accum_steps)
        ]
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=plan,
            collate_fn=collate_episodes,
            num_workers=cfg.data.num_workers,
        )
        return iter(loader)

    # -- one step --------------------------------------------------------------------------------
    def train_step(self, batches: Iterator) -> float:
        cfg = self.config
        self.wrapped.train()
        # Drop path draws from the global RNG: reseed it per (step, rank), so a resumed run
        # draws what an uninterrupted one would. The data carries its own per-position seeds.
        torch.manual_seed((cfg.seed * 1_000_003 + self.step) * 1_009 + self.env.rank)
        total = 0.0
        for micro in range(cfg.accum_steps):
            batch = next(batches).to(self.device)
            last = micro == cfg.accum_steps - 1
            sync = (
                self.wrapped.no_sync()
                if (not last and hasattr(self.wrapped, "no_sync"))
                else contextlib.nullcontext()
            )
            with sync:
                images, targets = normalize(batch.image), normalize(batch.target)
                with self._autocast():
                    pred = self.wrapped(
                        images, targets, batch.patch_mask, raw=True, **self._type_kwargs(batch)
                    )
                loss = training_loss(self.model, self.config, pred, targets, batch)
                self.scaler.scale(loss / cfg.accum_steps).backward()
            total += loss.item() / cfg.accum_steps
        if cfg.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.scheduler.step_update(self.step)
        return total

    def _type_kwargs(self, batch) -> dict:
        return {"seg_type": batch.seg_type} if self.model.config.type_tokens else {}

    # -- evaluation ------------------------------------------------------------------------------
    def eval_model(self) -> PainterModel | None:
        """A full, unwrapped model for evaluation on rank 0 (a gathered copy under FSDP)."""
        if self.config.parallel is Parallel.FSDP and self.env.world_size > 1:
            state = get_model_state_dict(
                self.wrapped, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
            )
            if not self.env.is_main:
                return None
            copy = build_model(self.model.config)
            copy.load_state_dict(state)
            return copy
        return self.model if self.env.is_main else None

    def eval_sets(self) -> dict[str, list]:
        """The held-out episode sets (built once): see ``training_data.build_eval_sets``."""
        if self._eval_sets is None:
            self._eval_sets = build_eval_sets(self.config, self.model.config)
        return self._eval_sets

    def _score(self, score):
        """``score(predictor)`` on rank 0 with an fp32 predictor over the eval model (its
        train/eval mode restored); None on other ranks. Every rank meets at a barrier."""
        model = self.eval_model()
        result = None
        if model is not None:
            was_training = model.training
            result = score(SegGPTPredictor(model, device=self.device, dtype="float32"))
            model.train(was_training)
        if self.env.world_size > 1:
            dist.barrier()
        return result

    def evaluate_sets(self, *, few_shot: bool = False) -> dict[str, SetScores] | None:
        """One-shot mIoU with the prompt-ignoring baselines on every held-out set (and the
        4-shot feature-ensemble mIoU on the same episodes with ``few_shot``); None off rank 0."""
        return self._score(
            lambda predictor: score_sets(predictor, self.eval_sets(), shots=4, few_shot=few_shot)
        )

    def evaluate(self, *, shots: int = 1, baselines: bool = True) -> EvalReport | None:
        """Held-out mIoU of the first (primary) set with ``shots`` prompts per episode (feature
        ensemble); the episodes are the same for every ``shots`` up to 4."""

        def score(predictor: SegGPTPredictor) -> EvalReport:
            episodes = next(iter(self.eval_sets().values()))  # built on rank 0 only
            return evaluate(predictor, episodes, shots=shots, baselines=baselines)

        return self._score(score)

    def _full_states(self) -> tuple[dict, dict]:
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_state = get_model_state_dict(self.wrapped, options=options)
        optim_state = get_optimizer_state_dict(self.wrapped, self.optimizer, options=options)
        return model_state, optim_state

    def save(self) -> Path | None:
        model_state, optim_state = self._full_states()  # collective: every rank takes part
        path = self.run_dir / f"checkpoint_{self.step:07d}.pt"
        if self.env.is_main:
            payload = {
                "version": CHECKPOINT_VERSION,
                "config": self.config.to_dict(),
                "model_config": self.model.config.to_dict(),
                "step": self.step,
                "data_position": self.positions(self.step, 0)[0]
                - self.env.rank * self.config.batch_size,
                "model": model_state,
                "optimizer": optim_state,
                "scheduler": self.scheduler.state_dict(),
                "history": self.history,
            }
            atomic_write(path, lambda tmp: torch.save(payload, tmp))
            for old in sorted(self.run_dir.glob("checkpoint_*.pt"))[: -self.config.keep_last]:
                old.unlink()
        if self.env.world_size > 1:
            dist.barrier()
        return path

    def resume(self, path: str | os.PathLike) -> None:
        payload = torch_load(Path(path))
        if not isinstance(payload, dict) or payload.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(f"{path} is not a training checkpoint of this framework")
        theirs = config_from_dict(payload["config"]).fingerprint()
        ours = self.config.fingerprint()
        if theirs != ours:
            diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
            raise CheckpointError(
                f"{path} was trained with another config (differs in {diff}); resume with the "
                "config stored in the run folder, or start a new run"
            )
        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=False)
        set_model_state_dict(self.wrapped, payload["model"], options=options)
        set_optimizer_state_dict(
            self.wrapped, self.optimizer, payload["optimizer"], options=options
        )
        self.scheduler.load_state_dict(payload["scheduler"])
        self.step = int(payload["step"])
        self.history = list(payload.get("history", []))
        logger.info("resumed from %s at step %d", path, self.step)

    def latest_checkpoint(self) -> Path | None:
        found = sorted(self.run_dir.glob("checkpoint_*.pt"))
        return found[-1] if found else None

    # -- the loop --------------------------------------------------------------------------------
    def fit(self, *, stop_after: int | None = None) -> TrainResult:
        """Train to ``config.steps`` (or ``stop_after`` more steps, to simulate an interruption)."""
        cfg = self.config
        if self.env.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
        logs = RunLogs(self.run_dir) if self.env.is_main else None
        batches = self._batches(self.step)
        end = cfg.steps if stop_after is None else min(cfg.steps, self.step + stop_after)
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not self.env.is_main, desc="train")
        done = self.history[-1]["seconds"] if self.history else 0.0  # before a resume
        loss, report, t0 = float("nan"), None, time.time() - done
        while self.step < end:
            loss = self.train_step(batches)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            row = {
                "step": self.step,
                "loss": loss,
                "lr": self.optimizer.param_groups[-1]["lr"],
                "seconds": time.time() - t0,
            }
            if cfg.eval_every and self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                scores = self.evaluate_sets()
                if scores is not None:
                    row.update(eval_row(scores))
                    report = next(iter(scores.values())).one_shot
            self.history.append(row)
            if logs is not None and (self.step % cfg.log_every == 0 or "eval_miou" in row):
                logs.write(row)
            if cfg.save_every and self.step % cfg.save_every == 0 or self.step == end:
                self.save()
        bar.close()
        if logs is not None:
            logs.close(self.history)
        if self.env.world_size > 1:
            self._record_rank_checksums()
        return TrainResult(self.step, loss, report, self.run_dir)

    def _record_rank_checksums(self) -> None:
        """Every rank's parameter checksum, gathered into ``rank_checksums.json`` by rank 0:
        DDP ranks must end with identical weights."""
        # Every rank gathers the full weights (no CPU offload, which would leave them on rank 0).
        state = get_model_state_dict(self.wrapped, options=StateDictOptions(full_state_dict=True))
        total = torch.tensor(
            [
                sum(float(v.double().abs().sum()) for v in state.values()),
                sum(float(v.double().pow(2).sum()) for v in state.values()),
            ]
        )
        gathered = [torch.zeros(2, dtype=torch.float64) for _ in range(self.env.world_size)]
        dist.all_gather(gathered, total.double())
        if self.env.is_main:
            rows = [g.tolist() for g in gathered]
            (self.run_dir / "rank_checksums.json").write_text(json.dumps(rows))

    def export(self, path: str | os.PathLike) -> dict | None:
        """Write the final model in the native format (rank 0) and, beside it, its eval report
        (``.report.json``: per held-out set, one-shot mIoU with the prompt-ignoring baselines
        and 4-shot mIoU on the same episodes; the first set's numbers also at the top level) and
        the training curves (``.curves.png``)."""
        scores = self.evaluate_sets(few_shot=True)
        model = self.eval_model()
        if model is None or scores is None:
            return None
        path = Path(path)
        save_native(model, path, extra={"train_config": json.dumps(self.config.to_dict())})
        seconds = [row["seconds"] for row in self.history if "seconds" in row]
        primary, first = next(iter(scores.items()))
        report = {
            "step": self.step,
            "weights_sha256": file_sha256(path),
            "eval_seed": self.config.data.eval_seed,
            "primary_set": primary,
            **first.to_dict(),
            "sets": {name: s.to_dict() for name, s in scores.items()},
            "held_out_photos": held_out_photo_names(),
            "train_seconds": seconds[-1] if seconds else None,
        }
        text = json.dumps(report, indent=2)
        atomic_write(path.with_suffix(".report.json"), lambda tmp: Path(tmp).write_text(text))
        curves = self.run_dir / "curves.png"
        if curves.is_file():
            atomic_write(path.with_suffix(".curves.png"), lambda tmp: shutil.copyfile(curves, tmp))
        return report
