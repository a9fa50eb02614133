"""The app in a real browser: headless Chromium, driven over the DevTools protocol.

Chromium talks CDP over a pipe (``--remote-debugging-pipe``: JSON messages ending in NUL on
file descriptors 3 and 4), so no websocket library is needed. The test clicks a bundled example
and *Segment* as a user would, checks the result and that no error shows, and saves a
screenshot (``$APP_SCREENSHOT`` if set, else in the test's tmp folder).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tools.app.server import running_app

CHROMIUM = "/usr/bin/chromium"


def ensure_chromium() -> str:
    """Debian's Chromium, installed with apt-get when missing; skips the test if that fails."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("Chromium is missing and cannot be installed here (needs root and apt-get)")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.skip(f"installing Chromium failed ({' '.join(command)}): {done.stderr[-500:]}")
    if not Path(CHROMIUM).exists():
        pytest.skip("apt-get installed chromium but /usr/bin/chromium is missing")
    return CHROMIUM


class Browser:
    """Headless Chromium with one page, spoken to in CDP over a pipe."""

    def __init__(self, binary: str, profile: Path, size: tuple[int, int] = (1280, 1400)):
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            f"--window-size={size[0]},{size[1]}",
        ]
        # The pipe must sit on descriptors 3 (commands in) and 4 (replies out).
        script = f'exec "$0" "$@" 3<&{to_browser} 4>&{from_browser}'
        self.process = subprocess.Popen(
            ["bash", "-c", script, binary, *flags, "about:blank"],
            pass_fds=(to_browser, from_browser),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.send("Page.enable", session=True)
        self.send("Runtime.enable", session=True)

    def send(self, method: str, *, session: bool = False, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _receive(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._read, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def evaluate(self, expression: str):
        result = self.send(
            "Runtime.evaluate", session=True, expression=expression, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0, what: str = ""):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout} s waiting for {what or expression}")

    def screenshot(self, path: Path) -> None:
        """The whole page, also what lies below the window."""
        size = self.send("Page.getLayoutMetrics", session=True)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = self.send(
            "Page.captureScreenshot",
            session=True,
            format="png",
            clip=clip,
            captureBeyondViewport=True,
        )["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._read)
        os.close(self._write)


# JavaScript run in the page.
INFO = "((document.querySelector('#info textarea') || {}).value || '')"
TOASTS = (
    "[...document.querySelectorAll('[data-testid=toast-body]')].map(t => t.innerText).join(' | ')"
)
CLOSE_TOASTS = "document.querySelectorAll('[data-testid=toast-close]').forEach(b => b.click())"


def button(text: str = "", label: str = "") -> str:
    """JavaScript for the first button with this text (or aria-label), or null."""
    if label:
        return f"document.querySelector('button[aria-label=\"{label}\"]')"
    return f"[...document.querySelectorAll('button')].find(b => b.textContent.trim() === '{text}')"


def click(browser: Browser, text: str = "", label: str = "") -> None:
    script = f"(() => {{ const b = {button(text, label)}; b && b.click(); return !!b; }})()"
    found = browser.evaluate(script)
    assert found, f"no button {text or label!r}"


def segment_and_wait(browser: Browser) -> str:
    """Press Segment; the info line once it reports a result, or the error toast's text."""
    click(browser, "Segment")
    return browser.wait_for(
        f"{TOASTS} || ({INFO}.startsWith('segmented') ? {INFO} : '')", what="Segment to finish"
    )


def draw_stroke(browser: Browser) -> None:
    """Drag the mouse across the middle of the first image editor's canvas."""
    box = browser.evaluate(
        "(() => { const r = document.querySelector('canvas').getBoundingClientRect();"
        " return [r.x, r.y, r.width, r.height]; })()"
    )
    x0, y = box[0] + box[2] * 0.3, box[1] + box[3] * 0.5
    points = [(x0 + box[2] * 0.04 * k, y + k) for k in range(11)]
    for kind, (x, yy), buttons in [
        ("mouseMoved", points[0], 0),
        ("mousePressed", points[0], 1),
        *(("mouseMoved", p, 1) for p in points[1:]),
        ("mouseReleased", points[-1], 0),
    ]:
        browser.send(
            "Input.dispatchMouseEvent",
            session=True,
            type=kind,
            x=x,
            y=yy,
            button="left",
            buttons=buttons,
            clickCount=1,
        )


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = ensure_chromium()
    chrome = Browser(binary, tmp_path_factory.mktemp("chromium-profile"))
    yield chrome
    chrome.close()


def test_bundled_example_and_a_drawn_mask_in_the_browser(browser, tiny_checkpoint, tmp_path):
    with running_app(tiny_checkpoint, tmp_path) as url:
        browser.send("Page.navigate", session=True, url=url)
        browser.wait_for(f"!!{button('Segment')}", what="the page")

        # Nothing given: a readable error, not a stack trace.
        message = segment_and_wait(browser)
        assert "add at least one example" in message and "Traceback" not in message
        browser.evaluate(CLOSE_TOASTS)

        # A bundled example, one click, then Segment.
        click(browser, "synthetic_multiclass")
        browser.wait_for(f"{INFO}.startsWith('loaded synthetic_multiclass')", what="example")
        browser.wait_for("document.querySelectorAll('img').length >= 3", what="example images")
        info = segment_and_wait(browser)
        assert info.startswith("segmented 1 query from 1 example(s)"), info
        browser.wait_for(
            "document.querySelectorAll('a[href*=query_mask]').length > 0", what="the mask download"
        )
        time.sleep(1.0)  # let the output images finish loading
        assert not browser.evaluate(TOASTS), "the page shows an error"
        shot = Path(os.environ.get("APP_SCREENSHOT") or tmp_path / "app.png")
        browser.screenshot(shot)
        assert shot.stat().st_size > 10_000

        # Drop the example's mask: the app asks for one; paint it with the brush: it runs.
        click(browser, "synthetic_1shot_a")
        browser.wait_for(f"{INFO}.startsWith('loaded synthetic_1shot_a')", what="example")
        click(browser, label="Remove Image")  # the uploaded mask of example 1
        message = segment_and_wait(browser)
        assert "example 1 has no mask" in message, message
        browser.evaluate(CLOSE_TOASTS)
        click(browser, label="Brush")
        draw_stroke(browser)
        info = segment_and_wait(browser)
        assert info.startswith("segmented 1 query from 1 example(s)"), info


def test_chromium_pipe_protocol(browser):
    """The CDP client itself: evaluates JavaScript in the page."""
    browser.send("Page.navigate", session=True, url="about:blank")
    assert browser.evaluate("1 + 2") == 3
