"""How a chapter's first cells look on a page, in Colab and in JupyterLab: one pattern, applied by code.

Every chapter notebook follows the same opening (ARCHITECTURE.md, "Chapter parameters"):

1. the title cell (and any markdown after it, e.g. learning objectives);
2. the **Colab cell** (:func:`colab_cell`, tag ``remove-cell``): on Google Colab it fetches the
   course and installs it, anywhere else it does nothing; the book never shows it;
3. the papermill ``parameters`` cell, tagged ``hide-cell`` (collapsed on the page);
4. the setup cell calling ``start_chapter(...)``, tagged ``hide-input``: its output, the
   demo/real-data banner, is the first thing a reader sees under the introduction.

:func:`apply_chapter_pattern` puts a notebook in that shape (idempotent; run
``python -m ser_utils.course.pages --write`` after adding a chapter), :func:`chapter_problems`
says what is missing (``tests/test_chapters.py``). :func:`prepare_page` is applied by the book
runner to every staged copy before the HTML build, published runs included: it removes
papermill's ``injected-parameters`` cell (which holds local paths) from the page, applies the
same tags, and shortens absolute paths in outputs to their last two parts.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

#: The id of the Colab cell, so it is found (and regenerated) whatever its position.
COLAB_CELL_ID = "ser-book-colab"
#: Environment variable that overrides ``repository: url`` of ``_config.yml`` (the Pages workflow sets it).
REPOSITORY_ENV = "SER_BOOK_REPOSITORY_URL"
_SETUP_CALL = "start_chapter("
# An absolute POSIX path of at least two folders in an output: after a start, a space, a quote, > ( or =.
_ABS_PATH = re.compile(r"""(?:^|(?<=[\s"'>(=]))(?:/[\w.@+-]+){2,}""", re.M)

_COLAB_TEMPLATE = '''\
# On Google Colab only: fetch the course and install it (anywhere else this does nothing).
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    REPOSITORY = "{url}"  # _config.yml, repository: url
    if not REPOSITORY:
        raise SystemExit("set repository: url in _config.yml, then run "
                         "python -m ser_utils.course.pages --write")
    if not os.path.isdir("/content/ser-book"):
        subprocess.run(["git", "clone", "--depth", "1", REPOSITORY, "/content/ser-book"],
                       check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e",
                    "/content/ser-book[book]"], check=True)
    sys.path.insert(0, "/content/ser-book")
    os.chdir("/content/ser-book/book")'''


def repository_url(book_root: str | os.PathLike) -> str:
    """The public repository of the book: ``SER_BOOK_REPOSITORY_URL``, else ``repository: url`` of ``_config.yml``."""
    import yaml

    if os.environ.get(REPOSITORY_ENV, "").strip():
        return os.environ[REPOSITORY_ENV].strip().rstrip("/")
    config = yaml.safe_load((Path(book_root) / "_config.yml").read_text(encoding="utf-8")) or {}
    return str((config.get("repository") or {}).get("url") or "").strip().rstrip("/")


def colab_cell(url: str):
    """The Colab install cell for repository ``url`` (tag ``remove-cell``: never shown in the book)."""
    import nbformat

    cell = nbformat.v4.new_code_cell(_COLAB_TEMPLATE.format(url=url))
    cell["id"] = COLAB_CELL_ID
    cell.metadata["tags"] = ["remove-cell"]
    return cell


def _tags(cell) -> list[str]:
    return cell.setdefault("metadata", {}).setdefault("tags", [])


def _add_tag(cell, tag: str) -> bool:
    tags = _tags(cell)
    if tag in tags:
        return False
    tags.append(tag)
    return True


def _index(nb, tag: str) -> int | None:
    return next((i for i, c in enumerate(nb.cells) if tag in c.get("metadata", {}).get("tags", [])), None)


def _setup_index(nb, after: int) -> int | None:
    """The first code cell after ``after`` that calls ``start_chapter`` (papermill's injected cell skipped)."""
    for i in range(after + 1, len(nb.cells)):
        cell = nb.cells[i]
        if cell.cell_type == "code" and "injected-parameters" not in _tags(cell):
            return i if _SETUP_CALL in cell.source else None
    return None


def _tag_opening(nb) -> bool:
    """Tags of the parameters, injected-parameters and setup cells; True when something changed."""
    changed = False
    params = _index(nb, "parameters")
    if params is None:
        return False
    changed |= _add_tag(nb.cells[params], "hide-cell")
    injected = _index(nb, "injected-parameters")
    if injected is not None:
        changed |= _add_tag(nb.cells[injected], "remove-cell")
    setup = _setup_index(nb, params)
    if setup is not None:
        changed |= _add_tag(nb.cells[setup], "hide-input")
    return changed


def apply_chapter_pattern(nb, url: str) -> bool:
    """Put chapter notebook ``nb`` in the shape of the module docstring; returns True when it changed.

    The Colab cell is (re)written right before the ``parameters`` cell, wherever it was.
    A notebook without a ``parameters`` cell is left alone.
    """
    params = _index(nb, "parameters")
    if params is None:
        return False
    wanted = colab_cell(url)
    old = next((i for i, c in enumerate(nb.cells) if c.get("id") == COLAB_CELL_ID), None)
    changed = False
    if old is None or old != params - 1 or nb.cells[old].source != wanted.source \
            or _tags(nb.cells[old]) != ["remove-cell"]:
        if old is not None:
            nb.cells.pop(old)
        params = _index(nb, "parameters")
        nb.cells.insert(params, wanted)
        changed = True
    return _tag_opening(nb) or changed


def chapter_problems(nb, url: str) -> list[str]:
    """What keeps ``nb`` from the chapter pattern (empty when it follows it)."""
    import copy

    params = _index(nb, "parameters")
    if params is None:
        return ["no cell tagged `parameters`"]
    problems = []
    if params == 0 or nb.cells[params - 1].get("id") != COLAB_CELL_ID:
        problems.append("no Colab cell right before the parameters cell")
    elif nb.cells[params - 1].source != colab_cell(url).source:
        problems.append("the Colab cell differs from ser_utils.course.pages.colab_cell (repository URL changed?)")
    if _setup_index(nb, params) is None:
        problems.append("the cell after the parameters cell does not call start_chapter(...)")
    if not problems and apply_chapter_pattern(copy.deepcopy(nb), url):
        problems.append("tags missing (parameters: hide-cell, setup: hide-input, Colab: remove-cell)")
    if problems:
        problems.append("fix: python -m ser_utils.course.pages --write")
    return problems


def shorten_paths(text: str) -> str:
    """Absolute paths of three parts or more in ``text`` cut to the last two.

    ``/home/me/data/tess`` becomes ``…/data/tess``; URLs, relative and two-part paths are left alone.
    """
    def cut(m: re.Match) -> str:
        parts = m.group(0).split("/")[1:]
        return m.group(0) if len(parts) <= 2 else "…/" + "/".join(parts[-2:])

    return _ABS_PATH.sub(cut, text)


def _scrub_outputs(cell) -> int:
    n = 0
    for out in cell.get("outputs", []):
        if "text" in out:
            new = shorten_paths(out["text"])
            n += new != out["text"]
            out["text"] = new
        for mime in ("text/plain", "text/html", "text/markdown"):
            value = out.get("data", {}).get(mime)
            if value is None:
                continue
            text = "".join(value) if isinstance(value, list) else value
            new = shorten_paths(text)
            n += new != text
            out["data"][mime] = new
    return n


def prepare_page(nb) -> int:
    """Ready an executed chapter for its page (see the module docstring); returns the outputs shortened."""
    _tag_opening(nb)
    return sum(_scrub_outputs(c) for c in nb.cells if c.cell_type == "code")


def prepare_staged_pages(stage: Path) -> int:
    """:func:`prepare_page` on every notebook under the staging folder ``stage``; returns how many it rewrote."""
    import nbformat

    rewritten = 0
    for path in sorted(stage.rglob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        before = nbformat.writes(nb)
        prepare_page(nb)
        if nbformat.writes(nb) != before:
            nbformat.write(nb, str(path))
            rewritten += 1
    return rewritten


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ser_utils.course.pages [--write] [NOTEBOOK ...]``: check (or apply) the chapter pattern."""
    import nbformat

    from ..run_context import project_root

    parser = argparse.ArgumentParser(prog="python -m ser_utils.course.pages", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="chapter notebooks (default: book/*.ipynb)")
    parser.add_argument("--write", action="store_true", help="apply the pattern instead of checking it")
    args = parser.parse_args(argv)
    root = project_root()
    paths = [Path(p) for p in args.notebooks] or sorted((root / "book").glob("*.ipynb"))
    if not paths:
        print(f"error: no chapter notebooks under {root / 'book'}; run this from a checkout of ser-book",
              file=sys.stderr)
        return 2
    url, bad = repository_url(root), 0
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        if args.write:
            if apply_chapter_pattern(nb, url):
                nbformat.write(nb, str(path))
                print(f"updated {path}")
        elif problems := chapter_problems(nb, url):
            bad += 1
            print(f"{path}: " + "; ".join(problems))
    return 1 if bad else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
