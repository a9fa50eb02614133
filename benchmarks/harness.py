"""The benchmarks' shared harness: timing, peak memory, the machine, tables and JSON.

Benchmarks run as scripts (``python benchmarks/bench_x.py``) and import this module by its name
from their own folder; tests import it as ``benchmarks.harness``.

>>> [ours, theirs] = measure([run_ours, run_theirs], repeats=5)
>>> print(machine_header(machine_info()))
>>> print(format_table(["case", "ours ms"], [["one point", f"{ours.median_s * 1e3:.1f}"]]))
>>> write_json(out, {"machine": machine_info(), "results": rows})
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


# -- timing --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    """Timed calls of one function: wall and process CPU seconds per call, the warm-up's wall
    seconds (0 without one), and what the last call returned."""

    wall_s: list[float]
    cpu_s: list[float]
    warmup_s: float = 0.0
    result: Any = field(default=None, repr=False, compare=False)

    @property
    def median_s(self) -> float:
        return statistics.median(self.wall_s)

    @property
    def median_cpu_s(self) -> float:
        """Median CPU time of this process: on a shared CPU it leaves out the time other
        processes held the cores, so it estimates the time on an idle machine."""
        return statistics.median(self.cpu_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "median_s": self.median_s,
            "median_cpu_s": self.median_cpu_s,
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "warmup_s": self.warmup_s,
        }


def synchronize(device: torch.device | str | None) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU does not)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    fns: Sequence[Callable[[], Any]],
    *,
    repeats: int,
    warmup: int = 1,
    budget_s: float | None = None,
    device: torch.device | str | None = None,
) -> list[Timing]:
    """Time each of ``fns``, their calls alternating so that all see the same machine load.

    ``warmup`` untimed rounds come first. With ``budget_s``, fewer timed rounds (at least one)
    when the first warm-up round shows that ``repeats`` rounds would take longer. On CUDA each
    call ends with a synchronize.
    """

    def call(fn: Callable[[], Any]) -> tuple[float, float, Any]:
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        synchronize(device)
        return time.perf_counter() - start, time.process_time() - start_cpu, result

    warmups = [0.0] * len(fns)
    results: list[Any] = [None] * len(fns)
    for round_ in range(warmup):
        for i, fn in enumerate(fns):
            wall, _, results[i] = call(fn)
            if round_ == 0:
                warmups[i] = wall
    rounds = repeats
    if budget_s is not None and warmup:
        rounds = max(1, min(repeats, int(budget_s // max(sum(warmups), 1e-9))))
    walls: list[list[float]] = [[] for _ in fns]
    cpus: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            wall, cpu, results[i] = call(fn)
            walls[i].append(wall)
            cpus[i].append(cpu)
    return [Timing(w, c, s, r) for w, c, s, r in zip(walls, cpus, warmups, results)]


def gemm_gflops(
    dtype: torch.dtype, size: int = 2048, runs: int = 8, device: torch.device | str = "cpu"
) -> float:
    """Best-of-``runs`` rate of one (size x size) @ (size x size) torch.mm, in GFLOP/s."""
    device = torch.device(device)
    a = torch.randn(size, size).to(device, dtype)
    b = torch.randn(size, size).to(device, dtype)
    best = min(measure([lambda: torch.mm(a, b)], repeats=runs, device=device)[0].wall_s)
    return 2 * size**3 / best / 1e9


# -- memory --------------------------------------------------------------------------------------
class PeakRss:
    """Peak resident set size of this process from ``reset()`` on, in bytes.

    Uses the kernel's own high-water mark (VmHWM, reset through /proc/self/clear_refs); where
    that is not allowed, samples VmRSS every 2 ms in a thread.
    """

    def __init__(self) -> None:
        self._sampled = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _status(name: str) -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(f"{name} missing from /proc/self/status")

    def current(self) -> int:
        return self._status("VmRSS")

    def reset(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")
        except OSError:
            self._sampled = self.current()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._sampled = max(self._sampled, self.current())

    def peak(self) -> int:
        if self._thread is None:
            return self._status("VmHWM")
        self._stop.set()
        self._thread.join()
        return self._sampled


class CudaPeak:
    """PeakRss's measure on a GPU: the peak of ``torch.cuda.max_memory_allocated``, in bytes."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def current(self) -> int:
        return torch.cuda.memory_allocated(self.device)

    def reset(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)

    def peak(self) -> int:
        return torch.cuda.max_memory_allocated(self.device)


def peak_memory(device: torch.device | str = "cpu") -> PeakRss | CudaPeak:
    """The peak-memory measure of ``device``: the process's RSS, or CUDA's allocator."""
    device = torch.device(device)
    return CudaPeak(device) if device.type == "cuda" else PeakRss()


def release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS, so a baseline is honest."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


MALLOC_MODES = ("default", "retain")
"""How a benchmark process's glibc malloc treats large blocks (``--malloc``): as it comes, or
:func:`retain_freed_memory`."""


def retain_freed_memory() -> bool:
    """Make glibc's malloc serve large blocks from its heap and keep what is freed there.

    By default every block above the mmap threshold (at most 32 MiB) is mapped fresh and unmapped
    on free, so a forward whose activations are that large page-faults them in again on every
    run; on some virtual machines that fault time is a large share of the run. With this, freed
    memory is reused instead. Returns False where it does not apply (not glibc).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # mallopt parameter numbers from malloc.h
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))


# -- the machine ---------------------------------------------------------------------------------
def cpu_count() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device | str = "cpu") -> str:
    """The CPU's name, or the GPU's for a CUDA device."""
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


def load_average() -> float:
    """The 1-minute load average (above the core count, other processes shared the CPU)."""
    return os.getloadavg()[0]


def machine_info(device: torch.device | str = "cpu") -> dict[str, Any]:
    """What a result depends on: processor, cores, threads, CPU kernels, versions, load."""
    return {
        "device": device_name(device),
        "cpu": cpu_name(),
        "cores": cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "load_average": load_average(),
    }


def machine_header(info: dict[str, Any]) -> str:
    """One line for the top of a report, from :func:`machine_info`."""
    return (
        f"{info['device']}; {info['cores']} cores, {info['torch_threads']} torch threads, "
        f"CPU kernels {info['cpu_capability']}, torch {info['torch']}; "
        f"load average {info['load_average']:.2f}"
    )


# -- output --------------------------------------------------------------------------------------
def format_table(
    columns: Sequence[str], rows: Sequence[Sequence[object]], *, markdown: bool = False
) -> str:
    """Cells as given (format numbers first); the first column left-aligned, the others right.
    With ``markdown`` a GitHub table instead of aligned text."""
    cells = [[str(c) for c in columns]] + [[str(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in cells]
        lines.insert(1, "|" + "|".join("---" for _ in columns) + "|")
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]

    def line(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        return "  ".join([first] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])

    rule = "-" * len(line(cells[0]))
    return "\n".join([line(cells[0]), rule] + [line(row) for row in cells[1:]])


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON (folders made as needed) and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def finish(result: dict[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    """The end of a one-table benchmark: add ``machine_info()`` under "machine", print its header
    line, write ``result`` as JSON to ``path``; returns ``result``."""
    result["machine"] = machine_info()
    print(machine_header(result["machine"]))
    write_json(path, result)
    return result
