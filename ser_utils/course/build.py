"""Staging the book's sources and building the HTML with Jupyter Book (warnings are errors).

The runner (:mod:`.runner`) executes the chapters into the staging folder
``_build/src``; this module copies the rest of the book there (config, toc,
pages, bibliography, images), adapts the staged ``_config.yml`` to where it is
built, and runs ``jupyter-book build`` reading every warning from its log, so a
broken reference fails the build while notes on unexecuted pages do not.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .pages import repository_url
from .toc import TocEntry

#: Never copied from the book's folders into the staging copy.
_SKIP_STAGING = {".ipynb_checkpoints", "__pycache__", "_build", ".DS_Store"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: myst-nb's tag on the warning it logs for a cell with stderr output (``nb_output_stderr: remove-warn``).
_STDERR_WARNING = "[mystnb.stderr]"

Echo = Callable[[str], None]


class PipelineError(RuntimeError):
    """A chapter or the book build failed; the message says where and why."""


class BookBuildFailed(PipelineError):
    """``jupyter-book build`` failed or printed warnings (the build must be warning-free)."""

    def __init__(self, message: str, warnings: Sequence[str] = ()):
        self.warnings = list(warnings)
        super().__init__(message)


def stage_sources(book_root: Path, stage: Path, root: TocEntry, entries: Sequence[TocEntry],
                  echo: Echo = print) -> None:
    """Copy the book's non-notebook sources into ``stage``.

    That is ``_config.yml``, ``_toc.yml``, every file (Markdown pages,
    ``references.bib``, images) in the folders holding toc documents, and the
    bibliography/logo files the config names. A missing root page gets a
    minimal placeholder in the staging copy only, never in the repository.
    """
    import yaml

    stage.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(book_root / name, stage / name)
    stage_config(stage / "_config.yml", book_root)
    folders = {(book_root / e.docname).parent for e in (root, *entries)}
    for folder in sorted(folders):
        if folder.resolve() == book_root.resolve():
            # Only the top-level files the book uses; never the whole repository.
            continue
        shutil.copytree(folder, stage / folder.relative_to(book_root), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(*_SKIP_STAGING, "*.ipynb"))
    config = yaml.safe_load((book_root / "_config.yml").read_text(encoding="utf-8")) or {}
    html = config.get("html") or {}
    logos = [config.get(key) or html.get(key) for key in ("logo", "favicon")]
    for rel in [*(config.get("bibtex_bibfiles") or []), *filter(None, logos)]:
        src = book_root / rel
        if src.is_file():
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, stage / rel)
    for entry in (root, *entries):
        target = stage / entry.relpath()
        if entry.is_notebook:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.path.exists():
            shutil.copy2(entry.path, target)  # also pages at the top level, whose folder is not copied
        else:
            target.write_text(f"# ser-book\n\nThis page (`{entry.relpath()}`) has not been written yet.\n",
                              encoding="utf-8")
            echo(f"note: {entry.relpath()} is missing; staged a placeholder page (the repository is unchanged)")


def stage_config(config_file: Path, book_root: Path) -> None:
    """Adapt the staged ``_config.yml`` to where it is built: the package path, the repository URL.

    The API reference reads ``ser_utils`` from the book root (``autodoc2_packages``, a path
    relative to the source folder), not from the staging copy. The repository URL (the setting,
    or ``SER_BOOK_REPOSITORY_URL``) turns on the Colab launch button and the repository and
    issues buttons; without one (the default until the project has a public repository) the
    pages get none of them, never a dead link.
    """
    import yaml

    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    sphinx_config = (config.get("sphinx") or {}).get("config") or {}
    for package in sphinx_config.get("autodoc2_packages") or []:
        if isinstance(package, dict):  # autodoc2 wants it relative to the (staged) source folder
            package["path"] = os.path.relpath((book_root / package["path"]).resolve(), config_file.parent.resolve())
    url = repository_url(book_root)
    if url:
        config.setdefault("repository", {})["url"] = url
        html = config.setdefault("html", {})
        html["use_repository_button"] = html["use_issues_button"] = True
    else:  # sphinx-book-theme fails on a launch button without a repository
        (config.get("launch_buttons") or {}).pop("colab_url", None)
    config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def sphinx_warnings(log: str, stage: Path | None = None) -> list[str]:
    """The WARNING/ERROR lines of a Sphinx log, paths shown relative to the staging folder."""
    lines = []
    for line in _ANSI.sub("", log).splitlines():
        if re.search(r"(^|: )(WARNING|ERROR|CRITICAL|SEVERE)(:|\b)", line):
            if stage is not None:
                line = line.replace(str(stage) + os.sep, "")
            lines.append(line.strip())
    return lines


def build_html(stage: Path, output_root: Path, *, tolerate: Sequence[str] = ()) -> tuple[Path, list[str]]:
    """Build the staged book into ``<output_root>/_build/html``; return that folder and ignored warnings.

    Runs ``jupyter-book build --all`` (a full rebuild, so warnings of
    unchanged pages are reported every time) with ``-W -n --keep-going``:
    any Sphinx warning, including a broken cross-reference, citation or
    image, fails the build with :class:`BookBuildFailed` listing every
    warning. ``tolerate`` names documents (toc names, e.g. ``book/03_cnn``)
    staged unexecuted in a partial build: warnings located in them (say, a
    reference to a figure that only exists once the chapter has run) are
    returned instead of failing the build, as are myst-nb's notes on cells that
    wrote to stderr; any other warning fails it.
    """
    # No -W: the warnings are read from the log, so that stderr notes and tolerated pages can be told apart.
    # jupyter-book run by this Python, so the venv's Sphinx and extensions are used.
    jupyter_book = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())"]
    cmd = [*jupyter_book, "build", str(stage), "--path-output", str(output_root), "--all",
           "-n", "--keep-going"]
    env = dict(os.environ, PYTHONWARNINGS="ignore", NO_COLOR="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(stage))
    log = proc.stdout + proc.stderr
    html = output_root / "_build" / "html"
    found = sphinx_warnings(log, stage)
    located = tuple(f"{doc}{sep}" for doc in tolerate for sep in ".:")  # "book/03_cnn.ipynb:12: WARNING..."
    ignored = [w for w in found if w.startswith(located) or _STDERR_WARNING in w]
    errors = [w for w in found if w not in ignored]
    if proc.returncode != 0 or errors:
        detail = "\n".join(f"  {w}" for w in errors) or "\n".join(log.strip().splitlines()[-25:])
        raise BookBuildFailed(
            f"jupyter-book build failed ({len(errors)} warning(s); warnings are errors):\n{detail}", errors
        )
    if not (html / "index.html").exists():
        raise BookBuildFailed(f"jupyter-book build finished but {html / 'index.html'} is missing")
    return html, ignored
