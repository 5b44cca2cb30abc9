"""The built book in a real browser: headless Chromium over the DevTools protocol.

Builds the book in quick mode on the demo corpus with ``--only 01`` (the
introduction and chapter 1 executed; later chapters staged unexecuted), or
reuses a finished build when ``SER_BOOK_HTML`` points at its ``_build/html``
folder. Then, for the introduction and the first two chapters of ``_toc.yml``,
it loads the page in headless Chromium, checks that every image loaded
(``naturalWidth > 0``) and that no cell output shows a traceback, and saves a
screenshot under the test's tmp dir.

Why the DevTools protocol (through the small ``websocket-client`` package)
rather than ``chromium --dump-dom``: the serialised DOM cannot tell whether an
image actually decoded, while ``Runtime.evaluate`` can read ``naturalWidth``
in the live page; the same connection takes the screenshots. Skipped, with
the reason, only when no Chromium binary is found (``make browser-deps``
installs Debian's).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from ser_utils.course.runner import read_toc, resolve_parameters, run_book

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.browser

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]

# Waits for every image (lazy ones forced to load), then reports images, tracebacks and outputs.
PAGE_PROBE = """
(async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = "eager"; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(done => {
    i.addEventListener("load", done); i.addEventListener("error", done); setTimeout(done, 15000);
  })));
  const outputs = Array.from(document.querySelectorAll(".cell_output"));
  return JSON.stringify({
    title: document.title,
    images: imgs.map(i => ({src: i.currentSrc || i.src, width: i.naturalWidth})),
    outputs: outputs.length,
    tracebacks: document.querySelectorAll(".cell_output .traceback, .cell_output .output.error").length
      + outputs.filter(o => o.innerText.includes("Traceback (most recent call last)")).length,
  });
})()
"""


def find_chromium() -> str | None:
    """The Chromium binary: on PATH, or Debian's /usr/bin/chromium."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


class DevTools:
    """A minimal Chrome DevTools protocol client for one page (send a command, wait for an event)."""

    def __init__(self, exe: str, profile: Path, log: Path, timeout: float = 60):
        import websocket

        self.timeout = timeout
        self.log = log
        self.proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=log.open("wb"))
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail(f"Chromium did not start; its log ends with:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            pages = [t for t in json.load(resp) if t.get("type") == "page"]
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=timeout,
                                              suppress_origin=True)
        self.next_id, self.events = 0, []
        self.send("Page.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": False})

    def send(self, method: str, params: dict | None = None) -> dict:
        """Run one command and return its result (events seen meanwhile are kept)."""
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params or {}}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, name: str) -> dict:
        """Wait for the next event ``name``."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for i, ev in enumerate(self.events):
                if ev.get("method") == name:
                    return self.events.pop(i)
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(name)

    def visit(self, url: str) -> dict:
        """Load ``url``, wait for its images, and return the page probe (see ``PAGE_PROBE``)."""
        self.events.clear()
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")
        result = self.send("Runtime.evaluate", {"expression": PAGE_PROBE, "awaitPromise": True,
                                                "returnByValue": True})
        return json.loads(result["result"]["value"])

    def screenshot(self, path: Path) -> Path:
        """Save a PNG of the current viewport."""
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with_ws = getattr(self, "ws", None)
        if with_ws is not None:
            with_ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def book_html(tmp_path_factory) -> Path:
    """The ``_build/html`` folder: ``SER_BOOK_HTML`` if set, else a quick demo build of chapter 1."""
    given = os.environ.get("SER_BOOK_HTML")
    if given:
        html = Path(given).expanduser().resolve()
        html = html.parent if html.is_file() else html
        assert (html / "index.html").exists(), f"SER_BOOK_HTML={given} holds no index.html"
        return html
    out = tmp_path_factory.mktemp("book")
    # make test sets SER_ARTIFACTS_DIR (shared with nbval); otherwise keep the repository clean.
    art = None if os.environ.get("SER_ARTIFACTS_DIR") else str(out / "artifacts")
    params = resolve_parameters("demo", None, art, quick=True)
    report = run_book(ROOT, out, parameters=params, only="01", progress=False, echo=lambda s: None)
    return Path(report.html).parent


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    exe = find_chromium()
    if exe is None:
        pytest.skip("Chromium not found: install it with `make browser-deps` (Debian package chromium)")
    tmp = tmp_path_factory.mktemp("chromium")
    client = DevTools(exe, tmp / "profile", tmp / "chromium.log")
    yield client
    client.close()


def pages_to_check() -> list[tuple[str, str]]:
    """(name, html path) of the introduction and the first two chapters of ``_toc.yml``."""
    root, entries = read_toc(ROOT)
    chapters = [e for e in entries if e.is_notebook][:2]
    return [("intro", f"{root.docname}.html")] + [(e.stem, f"{e.docname}.html") for e in chapters]


def test_index_redirects_to_the_introduction(book_html):
    root, _ = read_toc(ROOT)
    index = (book_html / "index.html").read_text()
    assert f"{root.docname}.html" in index
    assert (book_html / f"{root.docname}.html").exists()


@pytest.mark.parametrize("name,page", pages_to_check())
def test_page_renders_with_images_and_no_traceback(book_html, browser, tmp_path, name, page):
    path = book_html / page
    assert path.exists(), f"{page} was not built"
    probe = browser.visit(path.as_uri())
    shot = browser.screenshot(tmp_path / f"{name}.png")

    broken = [img["src"] for img in probe["images"] if img["width"] == 0]
    assert not broken, f"{page}: images that did not load: {broken}"
    assert probe["tracebacks"] == 0, f"{page} shows a traceback in a cell output"
    if name == "01_data" or name.startswith("01"):
        # Chapter 1 is executed in every build: it must show its outputs and figures.
        assert probe["outputs"] > 0 and len(probe["images"]) >= 2, probe

    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[0] == 1000 and pixels.shape[1] == 1280
    assert pixels.std() > 0.01, f"the screenshot of {page} is blank"


def test_probe_catches_a_broken_image_and_a_traceback(browser, tmp_path):
    # The checks above must be able to fail: a page with a missing image and an error output.
    page = tmp_path / "bad.html"
    page.write_text(
        '<html><body><img src="missing.png"><div class="cell_output"><pre>Traceback (most recent call last):'
        '\n  File "x"\nZeroDivisionError</pre></div></body></html>'
    )
    probe = browser.visit(page.as_uri())
    assert [img["width"] for img in probe["images"]] == [0]
    assert probe["tracebacks"] == 1
