"""The built book in a real browser: headless Chromium over the DevTools protocol.

Builds the book in quick mode on the demo corpus with ``--only 01`` (the
introduction and chapter 1 executed; later chapters staged unexecuted), or
reuses a finished build when ``SER_BOOK_HTML`` points at its ``_build/html``
folder. Then, for the introduction and the first two chapters of ``_toc.yml``,
it loads the page in headless Chromium, checks that every image loaded
(``naturalWidth > 0``) and that no cell output shows a traceback, and saves a
screenshot under the test's tmp dir. The browser is driven over the DevTools
protocol (``tests/chromium.py``); the published book has its own file
(``test_browser_published.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ser_utils.course.runner import BookRun, read_toc, resolve_parameters, run_book

from .chromium import start_chromium

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.browser

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


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    client = start_chromium(tmp_path_factory, "chromium")
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
