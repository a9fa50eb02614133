"""The CUDA paths: forwards equal to the CPU's, bf16 training and the bf16 predictor.

Marked ``cuda``: left out of the default run, and skipped where CUDA is not available. Run them
with ``pytest -m cuda`` (benchmarks/gpu_check.sh does, on a GPU machine).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from painter.config import SegType
from painter.ops import query_half_mask
from painter.promptable import build_sam
from seggpt import SegGPTPredictor, load_model
from seggpt.loading import build_model
from seggpt.samples import synthetic_samples
from seggpt.training.config import load_train_config
from seggpt.training.trainer import Trainer
from tests.promptable_helpers import rel_diff

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"


@pytest.fixture
def ieee_float32() -> Iterator[None]:
    """Plain float32 on the GPU: cuDNN convolutions default to TF32 (10-bit mantissa)."""
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    before = conv.fp32_precision, matmul.fp32_precision
    conv.fp32_precision = matmul.fp32_precision = "ieee"
    yield
    conv.fp32_precision, matmul.fp32_precision = before


def _seeded(build, *args):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build(*args).eval()


def test_seggpt_forward_on_cuda_equals_cpu(ieee_float32):
    model = _seeded(build_model, "seggpt_test")
    gen = torch.Generator().manual_seed(0)
    height, width = model.config.canvas_size
    images, targets = (torch.randn(2, 3, height, width, generator=gen) for _ in range(2))
    mask = query_half_mask(2, model.config.grid)  # (B, h * w)
    half = (height // 2, width)
    prompts, prompt_targets = images[:, :, : half[0]][None], targets[:, :, : half[0]][None]
    queries = images[:1, :, half[0] :]  # (1, 3, H/2, W)
    with torch.inference_mode():
        cpu = model(images, targets, mask, seg_type=SegType.SEMANTIC)  # (B, 3, H, W)
        cpu_painted = model.paint_queries(prompts, prompt_targets, queries)  # (1, 3, H/2, W)
    model.to("cuda")
    with torch.inference_mode():
        gpu = model(images.cuda(), targets.cuda(), mask.cuda(), seg_type=SegType.SEMANTIC)
        gpu_painted = model.paint_queries(prompts.cuda(), prompt_targets.cuda(), queries.cuda())
    assert gpu.device.type == "cuda"
    assert rel_diff(gpu.cpu(), cpu) < 1e-4
    assert rel_diff(gpu_painted.cpu(), cpu_painted) < 1e-4


def test_promptable_forward_on_cuda_equals_cpu(ieee_float32):
    model = _seeded(build_sam, "sam_tiny")
    gen = torch.Generator().manual_seed(0)
    size = model.config.image_size
    images = torch.randn(2, 3, size, size, generator=gen)  # (B, 3, S, S)
    points = torch.rand(2, 3, 2, generator=gen) * size  # (B, N, 2)
    labels = torch.tensor([[1, 0, 1], [1, 1, -1]])  # (B, N)
    boxes = torch.tensor([[10.0, 20.0, 120.0, 200.0], [0.0, 0.0, size - 1.0, size - 1.0]])
    prompts = dict(points=points, labels=labels, boxes=boxes)
    with torch.inference_mode():
        cpu_logits, cpu_iou = model(images, **prompts)  # (B, K, 4h, 4w), (B, K)
    model.to("cuda")
    on_gpu = {key: value.cuda() for key, value in prompts.items()}
    with torch.inference_mode():
        gpu_logits, gpu_iou = model(images.cuda(), **on_gpu)
    assert rel_diff(gpu_logits.cpu(), cpu_logits) < 1e-4
    assert rel_diff(gpu_iou.cpu(), cpu_iou) < 1e-4


def test_two_bf16_training_steps_on_cuda(tmp_path):
    overrides = ["steps=2", "eval_every=0", "save_every=0", "precision=bf16"]
    config = load_train_config(SMOKE, overrides)
    trainer = Trainer(config, tmp_path, device="cuda")
    assert trainer.device.type == "cuda"
    result = trainer.fit()
    assert result.step == 2
    losses = [row["loss"] for row in trainer.history]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses), losses
    weights = trainer.model.state_dict().values()
    assert all(bool(torch.isfinite(w.float()).all()) for w in weights)


def test_bf16_predictor_on_cuda_agrees_with_float32(ieee_float32):
    model = load_model("demo")
    full = SegGPTPredictor(model, device="cuda", dtype="float32")
    half = SegGPTPredictor(model, device="cuda", dtype="bfloat16")
    assert half.dtype == torch.bfloat16
    agree = total = both = either = 0
    for sample in synthetic_samples()[:4]:  # one-shot, 4-shot and colour-independent episodes
        episode = (sample.prompt_images, sample.prompt_masks, [sample.query_image])
        [a], [b] = full.predict(*episode), half.predict(*episode)
        assert a.mask.shape == b.mask.shape == sample.query_mask.shape
        agree += int((a.mask == b.mask).sum())
        total += a.mask.size
        both += int(np.count_nonzero((a.mask > 0) & (b.mask > 0)))
        either += int(np.count_nonzero((a.mask > 0) | (b.mask > 0)))
    assert either > 0.01 * total  # real masks, not empty ones that agree trivially
    assert agree / total >= 0.99, agree / total
    assert both / either >= 0.9, both / either  # and the objects themselves agree
