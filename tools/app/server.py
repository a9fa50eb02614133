"""Start ``app_gradio.py`` in a subprocess on a free port: for the app tests and the load test.

Imports nothing of Gradio, so a client process stays light.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app(
    checkpoint: Path, workdir: Path, *extra: str, timeout: float = 180.0
) -> Iterator[str]:
    """Serve the app with ``checkpoint`` on the CPU in float32 until the block ends; yields its
    URL. ``extra``: more ``app_gradio.py`` arguments (``--concurrency 4``, ...).

    Gradio's temporary files go under ``workdir``; the server log is ``workdir/server.log``.
    Raises RuntimeError with the log's tail when the app exits or does not answer in ``timeout``.
    """
    port = free_port()
    env = dict(
        os.environ,
        GRADIO_TEMP_DIR=str(workdir / "gradio"),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
    )
    log = (workdir / "server.log").open("w")
    command = [sys.executable, str(REPO / "app_gradio.py"), "--checkpoint", str(checkpoint)]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--device", "cpu", "--dtype", "float32", *extra],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"app exited with {process.returncode}:\n{_tail(workdir)}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"app did not answer within {timeout} s:\n{_tail(workdir)}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _tail(workdir: Path, lines: int = 40) -> str:
    text = (workdir / "server.log").read_text(errors="replace")
    return "\n".join(text.splitlines()[-lines:])
