"""Shared fixtures: tiny configs and seeded inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: these tensors are small, and two threads only contend on a busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sam_tiny():
    """A seeded random ``sam_tiny`` promptable model in eval mode, shared by a module's tests:
    a test that changes its weights builds its own."""
    from painter.promptable import build_sam

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build_sam("sam_tiny")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """Native checkpoint of a seeded random ``seggpt_test`` model; copy it before changing it."""
    from painter.checkpoint import save_native  # imported late: the environment above comes first
    from seggpt.loading import build_model

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("seggpt_test")
    return save_native(model, tmp_path_factory.mktemp("tiny") / "seggpt_test.safetensors")


@pytest.fixture(autouse=True)
def _auto_dtype_is_float32(request, monkeypatch) -> None:
    """``dtype="auto"`` picks bfloat16 on CPUs with native bf16; the suite sees a CPU without it,
    so that its numbers are float32's on every machine. Tests marked ``host_cpu`` see this
    machine's real CPU flags."""
    if request.node.get_closest_marker("host_cpu") is None:
        from painter import devices

        monkeypatch.setattr(devices, "cpu_flags", lambda: frozenset({"avx2"}))
