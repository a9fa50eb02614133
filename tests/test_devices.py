"""dtype="auto": bfloat16 only where the device runs it natively and faster than float32; a
warning where it is emulated or measured slower."""

from __future__ import annotations

import logging
import platform
import sys

import pytest
import torch

from painter import devices
from painter.devices import (
    MIN_CPU_BF16_GAIN,
    auto_dtype,
    cpu_bf16_gain,
    cpu_flags,
    resolve_dtype,
    runs_bf16_natively,
)
from painter.errors import InputMismatchError

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)
AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})  # e.g. an AMD EPYC before Zen 4
AVX512_NO_BF16 = AVX2_ONLY | {"avx512f", "avx512bw", "avx512vl"}


@pytest.mark.parametrize(
    "flags, expected",
    [
        (AVX2_ONLY, torch.float32),
        (AVX512_NO_BF16, torch.float32),
        (frozenset(), torch.float32),
        (AVX512_NO_BF16 | {"avx512_bf16"}, torch.bfloat16),
        (AVX2_ONLY | {"amx_tile", "amx_bf16"}, torch.bfloat16),
    ],
)
def test_auto_on_a_fast_cpu_follows_the_flags(flags, expected):
    assert auto_dtype(CPU, cpu_flags=flags, cuda_bf16=False, cpu_gain=3.0) == expected
    # the GPU is not asked
    assert auto_dtype(CPU, cpu_flags=flags, cuda_bf16=True, cpu_gain=3.0) == expected


@pytest.mark.parametrize(
    "gain, expected",
    [(0.54, torch.float32), (1.0, torch.float32), (1.19, torch.float32), (1.2, torch.bfloat16)],
)
def test_auto_on_a_native_cpu_needs_bf16_to_be_measured_faster(gain, expected):
    # An AVX512-BF16 Xeon without AMX measured 0.54x: native, yet slower than float32.
    flags = AVX512_NO_BF16 | {"avx512_bf16"}
    assert MIN_CPU_BF16_GAIN == 1.2
    assert auto_dtype(CPU, cpu_flags=flags, cuda_bf16=False, cpu_gain=gain) == expected


@pytest.mark.parametrize("cuda_bf16, expected", [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_on_cuda_follows_the_gpu_not_the_cpu(cuda_bf16, expected):
    for flags in (AVX2_ONLY, AVX512_NO_BF16 | {"avx512_bf16"}):
        for gain in (0.5, 3.0):  # the CPU's gain is not asked either
            got = auto_dtype(CUDA, cpu_flags=flags, cuda_bf16=cuda_bf16, cpu_gain=gain)
            assert got == expected


def test_other_devices_are_not_native():
    assert not runs_bf16_natively(torch.device("meta"), cpu_flags={"amx_bf16"}, cuda_bf16=True)


def test_auto_and_none_resolve_with_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(devices, "cpu_bf16_gain", lambda: 2.0)
    for flags, expected in [(AVX2_ONLY, torch.float32), ({"avx512_bf16"}, torch.bfloat16)]:
        monkeypatch.setattr(devices, "cpu_flags", lambda flags=flags: frozenset(flags))
        assert resolve_dtype("auto", CPU) == expected
        assert resolve_dtype("AUTO", CPU) == expected
        assert resolve_dtype(None, CPU) == expected


def test_explicit_dtypes_are_kept(monkeypatch):
    monkeypatch.setattr(devices, "cpu_flags", lambda: AVX2_ONLY)
    assert resolve_dtype("float32", CPU) == torch.float32
    assert resolve_dtype("bf16", CPU) == torch.bfloat16
    assert resolve_dtype(torch.float16, CPU) == torch.float16
    with pytest.raises(InputMismatchError, match="unknown dtype 'half8'.*'auto'"):
        resolve_dtype("half8", CPU)


def test_bfloat16_on_an_emulating_cpu_warns(monkeypatch, caplog):
    monkeypatch.setattr(devices, "cpu_flags", lambda: AVX2_ONLY)
    with caplog.at_level(logging.WARNING, logger="painter.devices"):
        assert resolve_dtype("bfloat16", CPU) == torch.bfloat16
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "slower than float32" in message and "AVX512-BF16/AMX" in message
    assert "dtype='auto' or 'float32'" in message


def test_bfloat16_on_a_native_cpu_and_auto_do_not_warn(monkeypatch, caplog):
    monkeypatch.setattr(devices, "cpu_bf16_gain", lambda: 2.0)
    with caplog.at_level(logging.WARNING, logger="painter.devices"):
        resolve_dtype("auto", CPU)  # the suite's CPU: no native bf16, and auto picks float32
        monkeypatch.setattr(devices, "cpu_flags", lambda: AVX512_NO_BF16 | {"avx512_bf16"})
        assert resolve_dtype("bfloat16", CPU) == torch.bfloat16
    assert not caplog.records


def test_bfloat16_on_a_native_but_slower_cpu_warns(monkeypatch, caplog):
    monkeypatch.setattr(devices, "cpu_flags", lambda: AVX512_NO_BF16 | {"avx512_bf16"})
    monkeypatch.setattr(devices, "cpu_bf16_gain", lambda: 0.54)
    with caplog.at_level(logging.WARNING, logger="painter.devices"):
        assert resolve_dtype("auto", CPU) == torch.float32
        assert not caplog.records
        assert resolve_dtype("bfloat16", CPU) == torch.bfloat16
    [record] = caplog.records
    assert "0.54x the float32 rate" in record.getMessage()
    assert "slower than float32" in record.getMessage()


def test_predictors_default_to_auto(tiny_checkpoint, monkeypatch):
    from painter.promptable import PromptablePredictor, build_sam
    from seggpt import SegGPTPredictor, load_model

    monkeypatch.setattr(devices, "cpu_bf16_gain", lambda: 2.0)
    monkeypatch.setattr(devices, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert SegGPTPredictor(load_model(tiny_checkpoint), device="cpu").dtype == torch.bfloat16
    assert PromptablePredictor(build_sam("sam_tiny"), device="cpu").dtype == torch.bfloat16


@pytest.mark.host_cpu
def test_auto_on_this_cpu_agrees_with_its_flags_and_its_measured_speed():
    flags = cpu_flags()
    native = not flags.isdisjoint({"avx512_bf16", "amx_bf16"})
    fast = native and cpu_bf16_gain() >= MIN_CPU_BF16_GAIN
    assert resolve_dtype("auto", CPU) == (torch.bfloat16 if fast else torch.float32)
    assert 0.0 < cpu_bf16_gain() < 100.0
    if sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64"):
        assert "sse2" in flags  # /proc/cpuinfo was read
        if hasattr(torch.cpu, "_is_avx512_bf16_supported"):  # torch's own CPUID check agrees
            assert ("avx512_bf16" in flags) == torch.cpu._is_avx512_bf16_supported()
