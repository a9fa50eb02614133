"""Device and compute-dtype choices shared by every predictor.

``dtype="auto"`` (the predictors' default) runs bfloat16 only where the device computes it
natively and fast: a CUDA GPU with bf16 (compute capability 8.0 and up), or a CPU with
AVX512-BF16 or AMX whose bf16 matrix products, measured once per process, beat float32's by at
least :data:`MIN_CPU_BF16_GAIN`. Elsewhere bf16 is emulated (several times slower than float32)
or no faster (an AVX512-BF16 CPU without AMX can run bf16 products slower than float32 ones), so
"auto" picks float32.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Collection
from pathlib import Path

import torch

from painter.errors import ConfigError, InputMismatchError

logger = logging.getLogger(__name__)

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
"""What the command-line tools offer for ``--dtype``."""

BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""Linux /proc/cpuinfo flags of x86 CPUs that compute bfloat16 natively."""

MIN_CPU_BF16_GAIN = 1.2
"""How much faster than float32 a CPU's bf16 matrix products must be for "auto" to pick bf16
(autocast adds casts around them, so a tie is a loss)."""


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" -> CUDA when available, else CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for but CUDA is not available; use cpu")
    return resolved


@functools.cache
def cpu_flags() -> frozenset[str]:
    """This machine's CPU feature flags, lower case (``avx2``, ``avx512_bf16``, ``amx_bf16``...).

    Read from /proc/cpuinfo on Linux. Elsewhere torch is asked whether the CPU has AVX512-BF16
    or AMX tiles (every AMX CPU so far has AMX-BF16), and the answer is given in the same flag
    names (empty if torch cannot say).
    ``torch.backends.cpu.get_cpu_capability()`` is no substitute: it names the vector ISA level
    ("AVX2", "AVX512") and says nothing about bf16.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.lower().split())
    checks = {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}
    return frozenset(
        flag for flag, name in checks.items() if getattr(torch.cpu, name, lambda: False)()
    )


def runs_bf16_natively(
    device: torch.device, *, cpu_flags: Collection[str], cuda_bf16: bool
) -> bool:
    """Whether ``device`` computes bfloat16 in hardware (a pure function of what it is given).

    Args:
        device: the resolved device.
        cpu_flags: the CPU's feature flags (see :func:`cpu_flags`); used for "cpu".
        cuda_bf16: whether the CUDA device has native bf16; used for "cuda".
    """
    if device.type == "cuda":
        return cuda_bf16
    if device.type == "cpu":
        return not BF16_CPU_FLAGS.isdisjoint(cpu_flags)
    return False


@functools.cache
def cpu_bf16_gain() -> float:
    """This CPU's bf16 matrix-product rate over its float32 rate: the best of five 1024 x 1024
    ``torch.mm`` in each dtype, measured once per process (0.15-0.4 s on 2 cores)."""
    rates = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(1024, 1024).to(dtype)
        b = torch.randn(1024, 1024).to(dtype)
        torch.mm(a, b)  # warm-up: kernel selection, first touch
        best = math.inf
        for _ in range(5):
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
        rates[dtype] = 1.0 / max(best, 1e-9)
    gain = rates[torch.bfloat16] / rates[torch.float32]
    logger.info("bf16 matrix products run at %.2fx the float32 rate on this CPU", gain)
    return gain


def auto_dtype(
    device: torch.device, *, cpu_flags: Collection[str], cuda_bf16: bool, cpu_gain: float
) -> torch.dtype:
    """What ``dtype="auto"`` means on ``device`` (a pure function of what it is given): bfloat16
    where it is native, on a CPU only when ``cpu_gain`` (:func:`cpu_bf16_gain`) is at least
    :data:`MIN_CPU_BF16_GAIN`; float32 otherwise."""
    native = runs_bf16_natively(device, cpu_flags=cpu_flags, cuda_bf16=cuda_bf16)
    fast = device.type != "cpu" or cpu_gain >= MIN_CPU_BF16_GAIN
    return torch.bfloat16 if native and fast else torch.float32


def _machine(device: torch.device) -> tuple[frozenset[str], bool, float]:
    """(CPU flags, whether the CUDA device has native bf16, the CPU's measured bf16 gain) of
    this machine, for ``device``. The gain is measured only on a CPU with native bf16."""
    cuda_bf16 = False
    if device.type == "cuda" and torch.cuda.is_available():
        with torch.cuda.device(device):
            cuda_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    flags = cpu_flags() if device.type == "cpu" else frozenset()
    native_cpu = device.type == "cpu" and not BF16_CPU_FLAGS.isdisjoint(flags)
    return flags, cuda_bf16, (cpu_bf16_gain() if native_cpu else 0.0)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The compute dtype on ``device``: ``None``/"auto" -> bfloat16 where the device runs it
    natively, else float32 (:func:`auto_dtype`); names and ``torch.dtype`` values as they are.

    Asking for bfloat16 on a device that only emulates it logs a warning: it runs, but slower than
    float32.
    """
    if dtype is None or (isinstance(dtype, str) and dtype.lower() == "auto"):
        flags, cuda_bf16, gain = _machine(device)
        return auto_dtype(device, cpu_flags=flags, cuda_bf16=cuda_bf16, cpu_gain=gain)
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    else:
        try:
            resolved = _DTYPES[str(dtype).lower()]
        except KeyError:
            choices = ["auto", *sorted(_DTYPES)]
            raise InputMismatchError(f"unknown dtype {dtype!r}; use one of {choices}") from None
    if resolved != torch.bfloat16 or device.type not in ("cpu", "cuda"):
        return resolved
    flags, cuda_bf16, gain = _machine(device)
    if not runs_bf16_natively(device, cpu_flags=flags, cuda_bf16=cuda_bf16):
        needs = "a GPU of compute capability 8.0+" if device.type == "cuda" else "AVX512-BF16/AMX"
        logger.warning(
            "bfloat16 asked for on %s, which has no native bf16 (that needs %s): it is emulated "
            "and will run slower than float32; use dtype='auto' or 'float32'",
            device,
            needs,
        )
    elif device.type == "cpu" and gain < 1.0:
        logger.warning(
            "bfloat16 asked for on a CPU whose bf16 matrix products run at %.2fx the float32 "
            "rate (measured): it will run slower than float32; use dtype='auto' or 'float32'",
            gain,
        )
    return resolved


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Mixed precision in ``dtype`` on ``device`` (the one autocast helper of the framework):
    a no-op for float32, ``torch.autocast`` otherwise."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
