"""Shared fixtures: tiny configs and seeded inputs."""

from __future__ import annotations

import os
from collections.abc import Callable
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
def meta_pair(tmp_path_factory):
    """Meta's segment_anything SAM at a small size with every tensor random (192 px; a 96-wide,
    3-block encoder, 5 x 5 windows, block 1 global; a 64-wide decoder with 8 heads), its state
    dict saved as a .pth file, and ours loaded from that file: (sam, ours, path)."""
    pytest.importorskip("segment_anything")
    from benchmarks.references import random_meta_sam
    from painter.promptable import build_sam

    sam = random_meta_sam(
        3,
        image_size=192,
        embed_dim=96,
        depth=3,
        num_heads=3,
        window_size=5,
        global_blocks=(1,),
        prompt_embed_dim=64,
        decoder_mlp_dim=128,
        decoder_heads=8,
    )
    path = tmp_path_factory.mktemp("meta_sam") / "sam_small.pth"
    torch.save(sam.state_dict(), path)
    return sam, build_sam(checkpoint=path), path


@pytest.fixture
def error_line(capsys) -> Callable[[], str]:
    """Reads what a CLI wrote to stderr so far: exactly one ``error:`` line, no traceback."""

    def read() -> str:
        err = capsys.readouterr().err
        assert "Traceback" not in err
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, err
        return lines[0]

    return read


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """Native checkpoint of a seeded random ``seggpt_test`` model; copy it before changing it."""
    from painter.checkpoint import save_native  # imported late: the environment above comes first
    from seggpt.loading import build_model

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("seggpt_test")
    return save_native(model, tmp_path_factory.mktemp("tiny") / "seggpt_test.safetensors")


@pytest.fixture(scope="session")
def tuned_prompt_file(tiny_checkpoint, tmp_path_factory) -> Path:
    """A prompt tuned for a few steps for the tiny model on the fixed-class task."""
    from seggpt import load_model
    from seggpt.samples import FIXED_CLASS_NAMES, fixed_class_split
    from seggpt.tuning import tune_prompt, tuning_data

    model = load_model(tiny_checkpoint)
    images, masks = fixed_class_split(model.config.half_size, "train", 4)
    data = tuning_data(model, images, masks, len(FIXED_CLASS_NAMES) - 1)
    tuned = tune_prompt(model, data, FIXED_CLASS_NAMES, steps=3, batch_size=2, progress=False)
    return tuned.save(tmp_path_factory.mktemp("tuned") / "shapes.safetensors")


@pytest.fixture(scope="session")
def promptable_file(tmp_path_factory) -> Path:
    """A randomly initialised tiny promptable model (the app must serve it exactly)."""
    from painter.promptable import build_sam
    from painter.promptable.checkpoint import save_sam

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_sam("sam_tiny")
    return save_sam(model, tmp_path_factory.mktemp("sam") / "sam.safetensors")


@pytest.fixture(scope="session")
def server(tiny_checkpoint, tuned_prompt_file, promptable_file, tmp_path_factory):
    """The app in a subprocess with the tiny model, a tuned prompt and the tiny promptable
    model, shared by the app test modules (one start per run); yields its URL."""
    from tools.app.server import running_app

    workdir = tmp_path_factory.mktemp("app")
    extra = ("--tuned-prompt", str(tuned_prompt_file), "--promptable", str(promptable_file))
    with running_app(tiny_checkpoint, workdir, *extra) as url:
        yield url


@pytest.fixture(scope="module")
def tiny_predictor(tiny_checkpoint):
    """A float32 CPU predictor of the tiny model, shared by a module's tests."""
    from seggpt import SegGPTPredictor, load_model

    return SegGPTPredictor(load_model(tiny_checkpoint), device="cpu", dtype="float32")


@pytest.fixture
def client(server, tmp_path):
    """A gradio_client of the shared app server, downloading into the test's folder."""
    from gradio_client import Client

    return Client(server, download_files=str(tmp_path), analytics_enabled=False, verbose=False)


@pytest.fixture(autouse=True)
def _auto_dtype_is_float32(request, monkeypatch) -> None:
    """``dtype="auto"`` picks bfloat16 on CPUs with native bf16; the suite sees a CPU without it,
    so that its numbers are float32's on every machine. Tests marked ``host_cpu`` see this
    machine's real CPU flags."""
    if request.node.get_closest_marker("host_cpu") is None:
        from painter import devices

        monkeypatch.setattr(devices, "cpu_flags", lambda: frozenset({"avx2"}))
