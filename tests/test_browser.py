"""The leaderboard page in a real headless Chromium: table and charts render, a mouse click
on a column header sorts the rows, nothing is fetched from the network.

Chromium is driven over ``--remote-debugging-pipe`` (DevTools protocol on fds 3/4, JSON
messages separated by NUL bytes), so no websocket client or Playwright is needed. Skipped
with a message where no Chromium is installed (``apt-get install chromium``, or point
``MMBENCH_CHROMIUM`` at a Chrome/Chromium binary).
"""
import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from mmbench import leaderboard as lbm

from .test_leaderboard import board, built  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


def _chromium() -> str | None:
    for cand in (os.environ.get("MMBENCH_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return None


class DevTools:
    """A minimal DevTools client over Chromium's debugging pipe."""

    def __init__(self, exe: str, profile: Path, width=1280, height=900):
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()

        def fds():  # in the child: the pipe ends become fds 3 (commands) and 4 (replies)
            a, b = os.dup(to_r), os.dup(from_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
             f"--user-data-dir={profile}", "--remote-debugging-pipe", f"--window-size={width},{height}",
             "about:blank"],
            preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self._buf, self._id, self.session = b"", 0, None

    def send(self, method: str, params: dict | None = None, timeout: float = 30.0) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self.session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply to {method}")
            ready, _, _ = select.select([self._from_r], [], [], left)
            if ready:
                chunk = os.read(self._from_r, 1 << 16)
                if not chunk:
                    raise RuntimeError("Chromium closed the debugging pipe")
                self._buf += chunk

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Page.navigate", {"url": url})
        for _ in range(400):
            if self.js(f"document.readyState === 'complete' && location.href === {json.dumps(url)}"):
                return
            time.sleep(0.05)
        raise TimeoutError(f"{url} did not finish loading")

    def js(self, expr: str):
        res = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        if "exceptionDetails" in res:
            raise RuntimeError(res["exceptionDetails"])
        return res["result"].get("value")

    def click(self, selector: str) -> None:
        """A real left click (mouse down + up) at the centre of the element."""
        sel = json.dumps(selector)
        x, y = self.js(f"(() => {{ const e = document.querySelector({sel}); e.scrollIntoView({{block: 'center', "
                       f"inline: 'center'}}); const r = e.getBoundingClientRect(); "
                       f"return [r.x + r.width / 2, r.y + r.height / 2]; }})()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - already gone
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_w)
        os.close(self._from_r)


@pytest.fixture
def chrome(tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("headless Chromium not found: `apt-get install chromium` (or set MMBENCH_CHROMIUM to a "
                    "Chrome/Chromium binary) to run the page test")
    dt = DevTools(exe, tmp_path / "profile")
    yield dt
    dt.close()


ROWS = "[...document.querySelectorAll('#board tbody tr')].map(r => r.dataset.model)"


def test_page_renders_and_sorts_on_click(board, chrome, tmp_path):  # noqa: F811
    lb = lbm.build(board, board.results_dir())
    out = lbm.write(lb, board)
    chrome.open((out / "index.html").as_uri())
    # table and charts are in the rendered page and take space on screen
    assert chrome.js(ROWS) == [r.key for r in lb.rows]
    assert chrome.js("document.querySelector('#board').getBoundingClientRect().height") > 50
    n_charts = sum(1 for c in lb.columns if any(c in r.test for r in lb.rows))
    assert chrome.js("document.querySelectorAll('#charts figure svg').length") == n_charts
    assert chrome.js("document.querySelectorAll('#charts svg g.bar').length") == 3 * n_charts
    assert chrome.js("document.querySelectorAll('#scatter-plot g.point').length") == 3
    assert chrome.js("Math.min(...[...document.querySelectorAll('svg')].map(s => s.getBoundingClientRect()"
                     ".width))") > 100
    assert chrome.js("performance.getEntriesByType('resource').length") == 0  # nothing fetched
    # click "Model": alphabetical; click again: reversed
    chrome.click('th[data-key="model"]')
    assert chrome.js(ROWS) == sorted(r.key for r in lb.rows)
    assert chrome.js("document.querySelector('th[data-key=\"model\"]').getAttribute('aria-sort')") == "ascending"
    chrome.click('th[data-key="model"]')
    assert chrome.js(ROWS) == sorted((r.key for r in lb.rows), reverse=True)
    # a lower-is-better column sorts ascending on the first click
    chrome.click('th[data-key="gini@10"]')
    assert chrome.js(ROWS) == [r.key for r in sorted(lb.rows, key=lambda r: r.test["gini@10"].mean)]
    # higher-is-better: descending first, i.e. back to the leaderboard's ranking by the main metric
    chrome.click('th[data-key="ndcg@10"]')
    assert chrome.js(ROWS) == [r.key for r in lb.rows]
    png = base64.b64decode(chrome.send("Page.captureScreenshot", {"format": "png"})["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    (tmp_path / "page.png").write_bytes(png)


def test_sort_from_the_address(board, chrome):  # noqa: F811
    out = lbm.write(lbm.build(board, board.results_dir()), board)
    chrome.open((out / "index.html").as_uri() + "#sort=model")
    assert chrome.js(ROWS) == ["oracle", "oracle-test-noisy", "pop"]
