"""Saved code: the chapters' ``#@save`` cells and their copies in the package, kept identical.

The book is literate, like d2l: a chapter writes and explains the code it
teaches, and a code cell whose first line is ``#@save <module>`` (for example
``#@save features``) is also kept, verbatim, in ``ser_utils/<module>.py`` so
that later chapters, the CLI and the tests reuse what the reader saw.

Every top-level function, class or assignment in a saved cell must appear in
the named module with exactly the same source text. ``check_saved_code`` lists
every difference (``tests/test_saved_code.py`` fails on any), and
``write_saved_code`` copies the chapters' versions into the package
(``python -m ser_utils saved-code --write``) after a chapter was edited.
Imports in a saved cell are not compared: the module has its own.
"""

from __future__ import annotations

import ast
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

SAVE_MARKER = re.compile(r"^#@save\s+(?P<module>[a-z_][a-z0-9_.]*)\s*$")


@dataclass(frozen=True)
class SavedDefinition:
    """One top-level definition of a ``#@save`` cell: where it comes from and where it must live."""

    notebook: Path
    cell: int  # index among the notebook's cells, counted from 0
    module: str  # dotted name below ser_utils, e.g. "features" or "course.chapter"
    name: str
    source: str


def _definitions(code: str) -> dict[str, str]:
    """Top-level ``def``/``class``/assignment names of ``code`` mapped to their exact source text."""
    tree = ast.parse(code)
    lines = code.splitlines(keepends=True)
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        else:
            continue  # imports, expressions: not compared
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        text = "".join(lines[first - 1: node.end_lineno]).rstrip()
        for name in names:
            found[name] = text
    return found


def saved_definitions(notebook: str | os.PathLike) -> list[SavedDefinition]:
    """Every definition in the ``#@save`` cells of ``notebook``, in order."""
    path = Path(notebook)
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    out = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        first, _, rest = source.partition("\n")
        match = SAVE_MARKER.match(first)
        if match:
            for name, text in _definitions(rest).items():
                out.append(SavedDefinition(path, i, match["module"], name, text))
    return out


def _module_path(package_dir: Path, module: str) -> Path:
    return package_dir.joinpath(*module.split(".")).with_suffix(".py")


def check_saved_code(book_dir: str | os.PathLike, package_dir: str | os.PathLike) -> list[str]:
    """One line per saved definition that is missing from, or differs from, its package copy."""
    package_dir = Path(package_dir)
    problems = []
    for notebook in sorted(Path(book_dir).glob("*.ipynb")):
        for d in saved_definitions(notebook):
            target = _module_path(package_dir, d.module)
            where = f"{notebook.name} cell {d.cell}: {d.name}"
            if not target.exists():
                problems.append(f"{where}: #@save names ser_utils.{d.module}, which does not exist")
                continue
            copy = _definitions(target.read_text(encoding="utf-8")).get(d.name)
            if copy is None:
                problems.append(f"{where}: not defined in {target.name}")
            elif copy != d.source:
                problems.append(f"{where}: differs from its copy in {target.name}")
    return problems


def write_saved_code(book_dir: str | os.PathLike, package_dir: str | os.PathLike) -> list[str]:
    """Copy every saved definition into its module (replacing the old copy, or appending it).

    Returns the ``module:name`` pairs that changed. Run it after editing a
    chapter's ``#@save`` cell, then review the diff: the package follows the book.
    """
    package_dir = Path(package_dir)
    changed = []
    by_module: dict[str, list[SavedDefinition]] = {}
    for notebook in sorted(Path(book_dir).glob("*.ipynb")):
        for d in saved_definitions(notebook):
            by_module.setdefault(d.module, []).append(d)
    for module, defs in by_module.items():
        target = _module_path(package_dir, module)
        text = target.read_text(encoding="utf-8") if target.exists() else ""
        for d in defs:
            old = _definitions(text).get(d.name)
            if old == d.source:
                continue
            text = text.replace(old, d.source, 1) if old is not None else text.rstrip() + "\n\n\n" + d.source + "\n"
            changed.append(f"{module}:{d.name}")
        target.write_text(text, encoding="utf-8")
    return changed
