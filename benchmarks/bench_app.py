"""Load test of the Gradio app: many gradio_client clients calling /segment at once.

The app runs in a subprocess (``tools.app.server.running_app``, as in the app tests; a seeded
random ``seggpt_test`` model unless ``--checkpoint`` is given) with its queue's concurrency
limit. Measured in the same run, on the same bundled example:

1. peer: the in-process ``SegGPTPredictor.predict`` (the model's own time, no app);
2. one client calling /segment one request at a time (the app's overhead);
3. ``--clients`` clients at once, each sending ``--requests`` requests (queueing under load).

Every returned mask is compared with the in-process one; a wrong mask counts as a failure.
Prints a table and writes JSON.

    python benchmarks/bench_app.py [--clients 20] [--requests 5] [--concurrency 1]
        [--checkpoint PATH] [--example synthetic_1shot_a] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from tools.app.server import REPO, running_app


def percentiles(latencies: list[float]) -> dict:
    if not latencies:
        return {"p50_s": None, "p90_s": None, "p99_s": None, "max_s": None, "mean_s": None}
    values = np.asarray(latencies)
    return {
        "p50_s": float(np.percentile(values, 50)),
        "p90_s": float(np.percentile(values, 90)),
        "p99_s": float(np.percentile(values, 99)),
        "max_s": float(values.max()),
        "mean_s": float(values.mean()),
    }


def run_client(url: str, inputs: tuple, expected: np.ndarray, requests: int, out: dict) -> None:
    """One client: ``requests`` sequential /segment calls; latencies and failures into ``out``."""
    from gradio_client import Client, handle_file

    from painter.io import load_mask

    start = time.perf_counter()
    client = Client(url, verbose=False, analytics_enabled=False, download_files=out["dir"])
    out["connect_s"] = time.perf_counter() - start
    files = [[handle_file(p) for p in paths] for paths in inputs]
    for _ in range(requests):
        start = time.perf_counter()
        try:
            masks, _, _, _ = client.predict(*files, "feature", api_name="/segment")
            ok = np.array_equal(load_mask(masks[0]), expected)
            out["latencies"].append(time.perf_counter() - start)
            if not ok:
                out["errors"].append("mask differs from the in-process prediction")
        except Exception as err:  # every failure is counted, none stops the run
            out["errors"].append(f"{type(err).__name__}: {err}")


def load_phase(url: str, inputs: tuple, expected, clients: int, requests: int, tmp: Path) -> dict:
    results = [
        {"latencies": [], "errors": [], "dir": str(tmp / f"client{i}")} for i in range(clients)
    ]
    threads = [
        threading.Thread(target=run_client, args=(url, inputs, expected, requests, result))
        for result in results
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    latencies = [lat for result in results for lat in result["latencies"]]
    errors = [err for result in results for err in result["errors"]]
    return {
        "clients": clients,
        "requests_per_client": requests,
        "requests": clients * requests,
        "failures": len(errors) + clients * requests - len(latencies),
        "errors": sorted(set(errors))[:5],
        "wall_s": wall,
        "throughput_rps": len(latencies) / wall,
        "connect_p50_s": float(np.median([r.get("connect_s", np.nan) for r in results])),
        **percentiles(latencies),
    }


def peer_phase(checkpoint: Path, inputs: tuple, repeats: int) -> tuple[dict, np.ndarray]:
    """In-process predictor on the same files: the model's own time per request."""
    from seggpt import SegGPTPredictor, load_model

    predictor = SegGPTPredictor(load_model(checkpoint), device="cpu", dtype="float32")
    [result] = predictor.predict(*inputs)
    latencies = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict(*inputs)
        latencies.append(time.perf_counter() - start)
    row = {"requests": repeats, "failures": 0, **percentiles(latencies)}
    row["throughput_rps"] = repeats / sum(latencies)
    return row, result.mask


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (20)")
    parser.add_argument("--requests", type=int, default=5, help="requests per client (5)")
    parser.add_argument("--concurrency", type=int, default=1, help="app's --concurrency (1)")
    parser.add_argument("--checkpoint", type=Path, help="default: a random seggpt_test model")
    parser.add_argument("--example", default="synthetic_1shot_a", help="bundled example to send")
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_app.json"
    )
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)  # the server runs on one thread too
    with tempfile.TemporaryDirectory(prefix="bench_app_") as tmp_name:
        tmp = Path(tmp_name)
        checkpoint = args.checkpoint
        if checkpoint is None:
            from painter.checkpoint import save_native
            from seggpt import build_model

            torch.manual_seed(0)
            checkpoint = save_native(build_model("seggpt_test"), tmp / "seggpt_test.safetensors")
        with running_app(checkpoint, tmp, "--concurrency", str(args.concurrency)) as url:
            from gradio_client import Client

            client = Client(url, verbose=False, analytics_enabled=False, download_files=str(tmp))
            inputs = tuple(client.predict(args.example, api_name="/example_files"))
            peer, expected = peer_phase(checkpoint, inputs, repeats=20)
            single = load_phase(url, inputs, expected, 1, 10, tmp / "single")
            loaded = load_phase(url, inputs, expected, args.clients, args.requests, tmp / "load")
    report = {
        "example": args.example,
        "checkpoint": str(args.checkpoint or "random seggpt_test"),
        "app_concurrency": args.concurrency,
        "machine": {
            "cpu_threads": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "gradio_client": _version("gradio_client"),
            "gradio": _version("gradio"),
        },
        "in_process_predict": peer,
        "app_one_client": single,
        "app_under_load": loaded,
    }
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return report


def print_table(report: dict) -> None:
    rows = [
        ("in-process predict (peer)", report["in_process_predict"]),
        ("app, 1 client sequential", report["app_one_client"]),
        (
            f"app, {report['app_under_load']['clients']} clients x "
            f"{report['app_under_load']['requests_per_client']}",
            report["app_under_load"],
        ),
    ]
    header = f"{'case':28s} {'req':>5s} {'fail':>5s} {'p50 ms':>8s} {'p90 ms':>8s} "
    print(header + f"{'p99 ms':>8s} {'max ms':>8s} {'req/s':>7s}")
    for name, row in rows:
        ms = [row[key] * 1000 if row[key] is not None else float("nan") for key in _KEYS]
        print(
            f"{name:28s} {row['requests']:5d} {row['failures']:5d} "
            + " ".join(f"{value:8.1f}" for value in ms)
            + f" {row['throughput_rps']:7.1f}"
        )


_KEYS = ("p50_s", "p90_s", "p99_s", "max_s")


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "missing"


if __name__ == "__main__":
    failures = main()["app_under_load"]["failures"]
    sys.exit(1 if failures else 0)
