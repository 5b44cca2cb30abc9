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
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import pytest

from ser_utils.course.runner import BookRun, read_toc, resolve_parameters, run_book

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

    def __init__(self, exe: str, profile: Path, log: Path, timeout: float = 60, extra_flags: Sequence[str] = ()):
        import websocket

        self.timeout = timeout
        self.log = log
        self.proc = subprocess.Popen([exe, *FLAGS, *extra_flags, f"--user-data-dir={profile}", "about:blank"],
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
    report = run_book(ROOT, out, run=BookRun(params, only="01"), progress=False, echo=lambda s: None)
    return Path(report.html).parent


def _chromium(tmp_path_factory, name: str, **options) -> DevTools:
    """A headless Chromium in its own profile folder; the test skips with the reason when there is none."""
    exe = find_chromium()
    if exe is None:
        pytest.skip("Chromium not found: install it with `make browser-deps` (Debian package chromium)")
    tmp = tmp_path_factory.mktemp(name)
    return DevTools(exe, tmp / "profile", tmp / "chromium.log", **options)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    client = _chromium(tmp_path_factory, "chromium")
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


# --- the published book, offline --------------------------------------------------------------

#: The build the Pages workflow runs (tests/test_env.py checks the workflow says the same).
PUBLISHED_BUILD = "python -m ser_utils book --from-published published"
#: Every request leaves through a proxy that does not exist: a page needing the network shows it.
OFFLINE_FLAGS = ["--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]
# An absolute path of three parts or more, not inside a URL (those follow a host name or a scheme).
LOCAL_PATH = r"(?<![\w/:.~-])/(?!path/to/)(?:[\w.@+-]+/){2,}[\w.@+-]+"

# Waits for MathJax, then reports formulas, hidden cells, local paths and code wider than its column.
OFFLINE_PROBE = """
(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const math = Array.from(document.querySelectorAll("span.math, div.math"));
  const wide = sel => Array.from(document.querySelectorAll(sel))
    .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1).length;
  const visible = Array.from(document.querySelectorAll("div.cell_output")).filter(e => e.offsetParent !== null);
  const main = document.querySelector("main") || document.body;
  return JSON.stringify({
    math: math.length,
    unrendered: math.filter(m => !m.querySelector("mjx-container")).length,
    mathjax: !!(window.MathJax && MathJax.version), mathjax_version: window.MathJax && MathJax.version,
    injected: document.querySelectorAll(".tag_injected-parameters").length,
    colab_cells: Array.from(document.querySelectorAll("div.cell")).filter(
      c => c.innerText.includes("google.colab")).length,
    local_paths: (main.innerText.match(new RegExp(%s, "g")) || []).slice(0, 5),
    wide_code: wide("div.cell_input pre, div.cell_output pre"),
    wide_tables: wide("div.cell_output table"),
    first_output: visible.length ? visible[0].innerText.slice(0, 200) : "",
  });
})()
""" % json.dumps(LOCAL_PATH)


@pytest.fixture(scope="module")
def published_html(tmp_path_factory) -> Path:
    """The HTML built from ``published/`` by :data:`PUBLISHED_BUILD` (``SER_PUBLISHED_HTML`` reuses a build)."""
    given = os.environ.get("SER_PUBLISHED_HTML")
    if given:
        return Path(given).expanduser().resolve()
    out = tmp_path_factory.mktemp("published")
    demo_artifacts = ROOT / "artifacts" / "demo"
    had_demo = demo_artifacts.exists()
    cmd = [sys.executable, *PUBLISHED_BUILD.split()[1:], "--path-output", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # Honest messages: nothing executed, the recorded run named, no demo data set up for nothing.
    assert "executing none" in proc.stdout and "DEMO" not in proc.stdout
    assert had_demo or not demo_artifacts.exists()
    return out / "_build" / "html"


@pytest.fixture(scope="module")
def offline_browser(tmp_path_factory):
    client = _chromium(tmp_path_factory, "chromium-offline", extra_flags=OFFLINE_FLAGS)
    client.send("Network.enable")
    yield client
    client.close()


def published_chapters() -> list[str]:
    _, entries = read_toc(ROOT)
    return [e.docname for e in entries if e.is_notebook and (ROOT / "published" / f"{e.stem}.ipynb").exists()]


@pytest.mark.parametrize("docname", published_chapters())
def test_published_chapter_reads_offline(published_html, offline_browser, tmp_path, docname):
    """Formulas typeset from the local MathJax, no papermill cell or local path, code fits at 1280 px."""
    page = published_html / f"{docname}.html"
    offline_browser.visit(page.as_uri())
    probe = json.loads(offline_browser.send("Runtime.evaluate", {
        "expression": OFFLINE_PROBE, "awaitPromise": True, "returnByValue": True})["result"]["value"])
    requests = [e["params"]["request"]["url"] for e in offline_browser.events
                if e.get("method") == "Network.requestWillBeSent"]
    shots = Path(os.environ.get("SER_SHOTS_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    offline_browser.screenshot(shots / f"{Path(docname).name}.png")

    assert not [u for u in requests if not u.startswith(("file:", "data:", "blob:"))], requests
    assert probe["unrendered"] == 0 and (probe["mathjax"] or not probe["math"]), probe
    assert probe["injected"] == 0 and probe["colab_cells"] == 0, probe
    assert probe["local_paths"] == [], probe
    assert probe["wide_code"] == 0 and probe["wide_tables"] == 0, probe
    assert ("Real data" in probe["first_output"]) or ("DEMO" in probe["first_output"].upper()), probe


def test_chapter_8_has_formulas_to_render(published_html, offline_browser, tmp_path):
    offline_browser.visit((published_html / "book" / "08_gradcam.html").as_uri())
    probe = json.loads(offline_browser.send("Runtime.evaluate", {
        "expression": OFFLINE_PROBE, "awaitPromise": True, "returnByValue": True})["result"]["value"])
    assert probe["math"] >= 3 and probe["unrendered"] == 0, probe
    offline_browser.send("Runtime.evaluate", {"expression": (
        "document.querySelector('span.math').closest('p').scrollIntoView({block: 'center'})")})
    time.sleep(0.5)
    offline_browser.screenshot(Path(os.environ.get("SER_SHOTS_DIR") or tmp_path) / "08_gradcam-formulas.png")


def test_offline_probe_sees_raw_math_paths_and_wide_code(offline_browser, tmp_path):
    # The checks above must be able to fail: no MathJax, a local path, a line wider than its column.
    page = tmp_path / "bad.html"
    page.write_text(
        '<html><body><main><span class="math">\\\\(x^2\\\\)</span><div class="cell tag_injected-parameters">'
        '<div class="cell_input"><pre style="width:200px;overflow:auto">' + "x = 1; " * 80 + '</pre></div>'
        '<div class="cell_output"><pre>saved to /home/someone/artifacts/model.keras</pre></div></div>'
        '</main></body></html>')
    offline_browser.visit(page.as_uri())
    probe = json.loads(offline_browser.send("Runtime.evaluate", {
        "expression": OFFLINE_PROBE, "awaitPromise": True, "returnByValue": True})["result"]["value"])
    assert probe["unrendered"] == 1 and not probe["mathjax"]
    assert probe["injected"] == 1 and probe["wide_code"] == 1
    assert probe["local_paths"] == ["/home/someone/artifacts/model.keras"]
