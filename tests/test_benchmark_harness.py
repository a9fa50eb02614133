"""The benchmarks' shared harness and reference builder (benchmarks/harness.py, references.py)."""

from __future__ import annotations

import json
import time

import torch

from benchmarks.harness import format_table, machine_header, machine_info, measure, write_json
from benchmarks.references import randomize_


def test_measure_alternates_warms_up_and_keeps_the_last_result():
    calls = []

    def first():
        calls.append("a")
        return len(calls)

    def second():
        calls.append("b")

    timings = measure([first, second], repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert [len(t.wall_s) for t in timings] == [3, 3] and timings[0].result == 7
    assert all(t.warmup_s > 0 and t.median_s >= 0 and t.median_cpu_s >= 0 for t in timings)
    assert set(timings[0].to_dict()) == {"median_s", "median_cpu_s", "wall_s", "cpu_s", "warmup_s"}


def test_the_budget_cuts_the_repeats_but_keeps_one():
    [timing] = measure([lambda: time.sleep(0.02)], repeats=50, budget_s=0.05)
    assert 1 <= len(timing.wall_s) <= 3
    [timing] = measure([lambda: time.sleep(0.02)], repeats=5, budget_s=0.0)
    assert len(timing.wall_s) == 1


def test_table_header_and_json(tmp_path, capsys):
    table = format_table(["case", "ms"], [["one point", "1.5"], ["16 points", "12.0"]])
    assert table.splitlines() == [
        "case         ms",
        "---------------",
        "one point   1.5",
        "16 points  12.0",
    ]
    markdown = format_table(["case", "ms"], [["one", 2]], markdown=True)
    assert markdown.splitlines() == ["| case | ms |", "|---|---|", "| one | 2 |"]
    info = machine_info()
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["cpu_capability"] in machine_header(info) and "load average" in machine_header(info)
    path = write_json(tmp_path / "deep" / "out.json", {"machine": info})
    assert json.loads(path.read_text())["machine"] == info
    assert f"wrote {path}" in capsys.readouterr().out


def test_randomize_touches_every_floating_tensor_with_sane_scales():
    module = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.LayerNorm(32))
    module.requires_grad_(False).register_buffer("steps", torch.zeros(3, dtype=torch.long))
    randomize_(module, seed=0)
    linear, norm = module[0], module[1]
    assert 0.5 < float(linear.weight.std() * 64**0.5) < 2  # about 1 / sqrt(fan_in)
    assert float((norm.weight - 1).abs().max()) < 0.5 and float(norm.weight.std()) > 0  # "1"
    assert float(linear.bias.abs().max()) > 0 and module.steps.eq(0).all()
    again = randomize_(torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.LayerNorm(32)), 0)
    assert torch.equal(again[0].weight, linear.weight)  # the seed decides everything
