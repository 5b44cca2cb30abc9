"""The book's table of contents: the chapters ``_toc.yml`` lists, and choosing some with ``--only``."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import BookSetupError


class ChapterSelectionError(BookSetupError):
    """``--only`` named a chapter that is not in ``_toc.yml``."""


@dataclass(frozen=True)
class TocEntry:
    """One document of ``_toc.yml``: its toc name (``book/01_data``) and source file."""

    docname: str
    path: Path

    @property
    def stem(self) -> str:
        """File name without suffix, e.g. ``01_data``."""
        return self.path.stem

    @property
    def key(self) -> str:
        """The chapter number as written in the file name (``"01"``), else the stem."""
        m = re.match(r"(\d+)", self.stem)
        return m.group(1) if m else self.stem

    @property
    def is_notebook(self) -> bool:
        return self.path.suffix == ".ipynb"

    def relpath(self) -> Path:
        """The source file relative to the book root (``book/01_data.ipynb``)."""
        return Path(self.docname).with_suffix(self.path.suffix)


def _entry(book_root: Path, docname: str) -> TocEntry:
    """The toc document ``docname`` (suffix optional) and its source file, ``.ipynb`` before ``.md``."""
    stem = docname.removesuffix(".ipynb").removesuffix(".md")
    if docname != stem:
        return TocEntry(stem, book_root / docname)
    for suffix in (".ipynb", ".md"):
        if (book_root / f"{stem}{suffix}").exists():
            return TocEntry(stem, book_root / f"{stem}{suffix}")
    return TocEntry(stem, book_root / f"{stem}.md")  # only the root page may be missing (a placeholder is staged)


def read_toc(book_root: str | os.PathLike) -> tuple[TocEntry, list[TocEntry]]:
    """The root page and the chapters (in reading order, parts and sections included) of ``_toc.yml``.

    Parsed by ``sphinx_external_toc``, the reader Jupyter Book itself uses;
    ``url``/``glob`` entries are ignored. A chapter file listed but absent
    raises :class:`BookSetupError` naming it.
    """
    from sphinx_external_toc.parsing import parse_toc_yaml

    book_root = Path(book_root)
    site = parse_toc_yaml(book_root / "_toc.yml")

    def walk(docname: str):
        for tree in site[docname].subtrees:
            for child in tree.files():
                yield child
                yield from walk(child)

    entries = [_entry(book_root, doc) for doc in walk(site.root.docname)]
    for entry in entries:
        if not entry.path.exists():
            raise BookSetupError(f"_toc.yml lists {entry.docname!r} but neither {entry.docname}.ipynb "
                                 f"nor {entry.docname}.md exists")
    return _entry(book_root, site.root.docname), entries


def _matches(entry: TocEntry, token: str) -> bool:
    if token in {entry.stem, entry.key, entry.docname}:
        return True
    return token.isdigit() and entry.key.isdigit() and int(token) == int(entry.key)


def select_chapters(entries: Sequence[TocEntry], only: str | Sequence[str] | None) -> list[TocEntry]:
    """The notebook chapters to execute: all of them, or those named by ``only``.

    Tokens match the chapter number (``3`` or ``03``), the file stem
    (``03_cnn``) or the toc name; a token matching nothing raises
    :class:`ChapterSelectionError` listing the chapters that exist.
    """
    notebooks = [e for e in entries if e.is_notebook]
    items = [] if only is None else [only] if isinstance(only, str) else list(only)  # "03,05" or ["03", "5,6"]
    tokens = [t.strip() for item in items for t in str(item).split(",") if t.strip()]
    if not tokens:
        return notebooks
    unknown = [t for t in tokens if not any(_matches(e, t) for e in notebooks)]
    if unknown:
        have = ", ".join(e.stem for e in notebooks) or "none"
        raise ChapterSelectionError(f"--only {','.join(unknown)}: no such chapter in _toc.yml (chapters: {have})")
    return [e for e in notebooks if any(_matches(e, t) for t in tokens)]


_GLUE_ROLE = re.compile(r"\{glue(?::[a-z]+)?\}`[^`]*`")


def write_placeholder(entry: TocEntry, output: Path, note: str) -> None:
    """Stage a chapter that was not executed: its source notebook with ``note`` after the title.

    Keeping the prose (and its labels) means the table of contents and every
    cross-reference into the chapter still resolve; ``{glue}`` roles, which
    need executed outputs, are replaced by a short text.
    """
    import nbformat

    nb = nbformat.read(str(entry.path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = _GLUE_ROLE.sub("*(not computed)*", cell.source)
    admonition = nbformat.v4.new_markdown_cell(f"```{{note}}\n{note}\n```")
    admonition["id"] = "ser-book-not-executed"
    first_is_title = bool(nb.cells) and nb.cells[0].cell_type == "markdown" and \
        nb.cells[0].source.lstrip().startswith("# ")
    nb.cells.insert(1 if first_is_title else 0, admonition)
    output.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(output))
