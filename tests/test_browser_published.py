"""The HTML built from ``published/`` (what the Pages workflow serves), read in an offline headless Chromium.

A file of its own so that ``make test``'s parallel workers build it while another worker builds
the demo book of ``test_browser.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ser_utils.course.runner import read_toc

from .chromium import start_chromium

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.browser

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
    client = start_chromium(tmp_path_factory, "chromium-offline", extra_flags=OFFLINE_FLAGS)
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


def test_published_book_has_the_api_reference(published_html):
    """The API page is in the built book (the build itself is warning-free: warnings fail it)."""
    api = published_html / "book" / "api.html"
    assert api.exists(), "book/api.html was not built"
    html = api.read_text()
    assert "ser_utils.device.torch_device" in html and "ser_utils.labels" in html
    assert 'href="api.html"' in (published_html / "book" / "01_data.html").read_text()  # in the navigation


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
