#!/usr/bin/env bash
# The GPU check: on a machine with one NVIDIA GPU, no internet and a copy of this repository,
# install the project into a virtualenv, run the tests marked `cuda`, time ViT-L fp32/bf16 ours
# against transformers on the GPU (benchmarks/bench_seggpt.py --device cuda), and gather it all
# into one JSON file, "${OUT:-gpu_check_out}/gpu_check.json", with every step's log beside it.
#
#   bash benchmarks/gpu_check.sh             # from the repository root or anywhere
#   bash benchmarks/gpu_check.sh --dry-run   # plumbing check on a CPU machine: no install, the
#                                            # cuda tests skip, bench_seggpt tiny on the CPU
#
# Environment: OUT (results folder), VENV (default .venv, as in the Makefile; made with
# --system-site-packages when missing, so a preinstalled torch is seen), WHEELHOUSE (a folder
# of wheels: pip installs from it alone, without an index), PYTHON (python3), INSTALL_LIMIT_S
# (120: enough when the packages are there already; a bare machine installing torch from a
# wheelhouse may need more, and then the whole check may not fit in 8 minutes).
#
# Budget: under 8 minutes on one H100 (BUDGET_S below). Every step runs under `timeout`; a step
# that fails or times out is recorded in the JSON and the next step still runs. Exit status 1
# when any did.
set -euo pipefail

DRY_RUN=0
if [[ "${1:-}" == "--dry-run" ]]; then
  DRY_RUN=1
elif [[ $# -gt 0 ]]; then
  echo "usage: bash benchmarks/gpu_check.sh [--dry-run]" >&2
  exit 2
fi

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
OUT="$(mkdir -p "${OUT:-gpu_check_out}" && cd "${OUT:-gpu_check_out}" && pwd)"
VENV="${VENV:-.venv}"
[[ "$VENV" == /* ]] || VENV="$REPO/$VENV"
PY="$VENV/bin/python"
LOGS="$OUT/logs"
STEPS="$OUT/steps.tsv"
mkdir -p "$LOGS"
: >"$STEPS"
export REPO OUT VENV PY DRY_RUN
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=10 PIP_RETRIES=0
if [[ -n "${WHEELHOUSE:-}" ]]; then
  export PIP_NO_INDEX=1 PIP_FIND_LINKS="$WHEELHOUSE"
fi
STARTED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
T0=$SECONDS

BUDGET_S=460 # all steps together; the report afterwards takes about a second

# run_step NAME SECONDS FUNCTION: run FUNCTION in a child bash under `timeout` (SECONDS, or what
# is left of BUDGET_S if less), its output in logs/NAME.log; append "NAME<TAB>rc<TAB>seconds
# <TAB>limit" to steps.tsv. Never fails itself.
run_step() {
  local name=$1 limit=$2 fn=$3 start=$SECONDS rc=0
  local left=$((BUDGET_S - (SECONDS - T0)))
  if [[ $left -lt $limit ]]; then
    limit=$left
  fi
  if [[ $limit -lt 5 ]]; then
    echo "[gpu_check] $name skipped: no time left of the ${BUDGET_S} s budget" \
      | tee "$LOGS/$name.log"
    printf '%s\t124\t0\t0\n' "$name" >>"$STEPS"
    return 0
  fi
  echo "[gpu_check] $name (at most ${limit} s) ..."
  timeout --kill-after=10 "$limit" bash -c "$fn" >"$LOGS/$name.log" 2>&1 || rc=$?
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" "$limit" >>"$STEPS"
  if [[ $rc -eq 0 ]]; then
    echo "[gpu_check] $name ok ($((SECONDS - start)) s)"
  else
    if [[ $rc -eq 124 || $rc -eq 137 ]]; then
      echo "[gpu_check] $name TIMED OUT after ${limit} s"
    fi
    echo "[gpu_check] $name failed with exit status $rc; the end of logs/$name.log:"
    tail -n 15 "$LOGS/$name.log" | sed 's/^/    /'
  fi
}

step_gpu() {
  set -euo pipefail
  if [[ $DRY_RUN -eq 1 ]] && ! command -v nvidia-smi >/dev/null; then
    echo "dry run: no nvidia-smi here"
    return 0
  fi
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader \
    | tee "$OUT/nvidia_smi.csv"
  nvidia-smi
}

step_install() {
  set -euo pipefail
  if [[ ! -x "$PY" ]]; then
    "${PYTHON:-python3}" -m venv --system-site-packages "$VENV"
  fi
  if [[ $DRY_RUN -eq 1 ]] || (cd /tmp && "$PY" -c "import importlib.metadata as m, torch, \
transformers, pytest; m.version('painter-seggpt')") 2>/dev/null; then
    echo "already installed (or dry run): nothing to do"
  else
    # The Makefile's install: every pip call goes through constraints.txt (the pinned torch).
    "$PY" -m pip install --quiet -c constraints.txt torch torchvision
    "$PY" -m pip install --quiet -c constraints.txt -e ".[test]"
  fi
  "$PY" -m pip list 2>/dev/null | grep -iE '^(torch|torchvision|transformers|pytest|painter)' \
    || true
}

step_torch() {
  set -euo pipefail
  "$PY" - <<'PYTHON'
import json, os, torch
from painter.devices import cpu_flags, resolve_dtype

info = {
    "torch": torch.__version__,
    "cuda_build": torch.version.cuda,
    "cuda_available": torch.cuda.is_available(),
    "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    "cpu_bf16_flags": sorted(cpu_flags() & {"avx512_bf16", "amx_bf16"}),
    "auto_dtype_cpu": str(resolve_dtype("auto", torch.device("cpu"))),
}
if torch.cuda.is_available():
    device = torch.device("cuda", 0)
    info.update(
        gpu=torch.cuda.get_device_name(device),
        capability=list(torch.cuda.get_device_capability(device)),
        gpu_memory_gib=round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1),
        bf16_native=torch.cuda.is_bf16_supported(including_emulation=False),
        auto_dtype_cuda=str(resolve_dtype("auto", device)),
        cudnn=torch.backends.cudnn.version(),
    )
print(json.dumps(info, indent=2))
with open(os.path.join(os.environ["OUT"], "torch_env.json"), "w") as f:
    json.dump(info, f, indent=2)
if not info["cuda_available"] and os.environ["DRY_RUN"] != "1":
    raise SystemExit("torch sees no CUDA device")
PYTHON
}

step_pytest_cuda() {
  set -euo pipefail
  # A test module elsewhere that fails to import must not stop the cuda tests from running.
  "$PY" -m pytest -m cuda -q -rA -p no:cacheprovider --continue-on-collection-errors \
    --junitxml="$OUT/pytest_cuda.xml" tests
}

step_bench() {
  set -euo pipefail
  if [[ $DRY_RUN -eq 1 ]]; then
    "$PY" benchmarks/bench_seggpt.py --config tiny --device cpu --repeats 1 --case-budget 1 \
      --out "$OUT/bench_seggpt.json"
  else
    "$PY" benchmarks/bench_seggpt.py --config large --device cuda --repeats 10 \
      --case-budget 20 --out "$OUT/bench_seggpt.json"
  fi
}

export -f step_gpu step_install step_torch step_pytest_cuda step_bench
rm -f "$OUT/nvidia_smi.csv" "$OUT/torch_env.json" "$OUT/pytest_cuda.xml" "$OUT/bench_seggpt.json"
# At most these seconds per step, and BUDGET_S (under 8 minutes) in all: the benchmark gets
# whatever the steps before it left, up to 300 s (about 2 minutes of it on an idle machine).
run_step gpu 15 step_gpu
run_step install "${INSTALL_LIMIT_S:-120}" step_install
run_step torch 30 step_torch
run_step pytest_cuda 120 step_pytest_cuda
run_step bench_seggpt 300 step_bench

# Gather: the system python, so that a failed install still gives a report.
export STARTED TOTAL_S=$((SECONDS - T0))
GIT_COMMIT="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
GIT_DIRTY=0
if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null || true)" ]]; then
  GIT_DIRTY=1
fi
export GIT_COMMIT GIT_DIRTY
"${PYTHON:-python3}" - <<'PYTHON'
import json, os, time
import xml.etree.ElementTree as ET
from pathlib import Path

out = Path(os.environ["OUT"])


def read_json(name):
    path = out / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


steps = {}
for line in (out / "steps.tsv").read_text().splitlines():
    name, rc, seconds, limit = line.split("\t")
    rc = int(rc)
    status = "ok" if rc == 0 else "failed"
    if rc in (124, 137):
        status = "no time left" if int(limit) == 0 else "timed out"
    steps[name] = {"status": status, "exit": rc, "seconds": int(seconds), "limit_s": int(limit),
                   "log": f"logs/{name}.log"}

tests = None
try:
    suite = ET.parse(out / "pytest_cuda.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    cases = []
    for case in suite.iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome, message = tag, (found.get("message") or "")[:500]
        cases.append({"test": case.get("name"), "outcome": outcome, "seconds":
                      float(case.get("time", 0)), "message": message})
    counts = {k: sum(c["outcome"] == k for c in cases)
              for k in ("passed", "failure", "error", "skipped")}
    tests = {"counts": counts, "cases": cases}
except (OSError, ET.ParseError, AttributeError):
    pass

smi = out / "nvidia_smi.csv"
bench = read_json("bench_seggpt.json")
report = {
    "check": "benchmarks/gpu_check.sh",
    "dry_run": os.environ["DRY_RUN"] == "1",
    "started": os.environ["STARTED"],
    "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "total_s": int(os.environ["TOTAL_S"]),
    "git": {"commit": os.environ["GIT_COMMIT"], "dirty": os.environ["GIT_DIRTY"] != "0"},
    "nvidia_smi": smi.read_text().strip() if smi.exists() else None,
    "torch": read_json("torch_env.json"),
    "steps": steps,
    "pytest_cuda": tests,
    "bench_seggpt": bench,
}
(out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")

print()
print(f"{'step':<14}{'status':<14}{'seconds':>8}{'limit':>7}")
for name, s in steps.items():
    print(f"{name:<14}{s['status']:<14}{s['seconds']:>8}{s['limit_s']:>7}")
if tests is not None:
    print("pytest -m cuda: " + ", ".join(f"{n} {k}" for k, n in tests["counts"].items()))
    for case in tests["cases"]:
        if case["outcome"] in ("failure", "error"):
            print(f"  {case['outcome']}: {case['test']}: {case['message'][:160]}")
if bench is not None:
    print(f"\nbench_seggpt {bench['config']} on {bench['machine'].get('device')}:")
    print(f"{'case':<18}{'ours s':>9}{'HF s':>9}{'ours/HF':>9}{'mem x':>7}{'rel d':>10}")
    for label, c in bench["cases"].items():
        print(f"{label:<18}{c['ours_s']:>9.4f}{c['hf_s']:>9.4f}{c['time_ratio']:>9.3f}"
              f"{c['memory_ratio']:>7.2f}{c['diff_vs_hf']['rel']:>10.1e}")
    bf16 = bench["cases"].get("1 prompt bf16", {})
    if "mask_agreement_pct" in bf16:
        print(f"bf16 mask pixels equal to our fp32: {bf16['mask_agreement_pct']:.2f} %")
print(f"\ntotal {report['total_s']} s; wrote {out / 'gpu_check.json'}")
PYTHON

# Exit status 1 when any step failed or timed out.
awk -F '\t' '$2 != 0 { failed = 1 } END { exit failed }' "$STEPS"
