"""Saved code: the chapters' ``#@save`` cells and their copies in the package, kept identical.

The book is literate, like d2l: a chapter writes and explains the code it
teaches, and a code cell whose first line is ``#@save <module>`` (for example
``#@save features``) is also kept, verbatim, in ``ser_utils/<module>.py`` so
that later chapters, the CLI and the tests reuse what the reader saw.

The check runs both ways. ``check_saved_code`` lists every difference
(``tests/test_saved_code.py`` fails on any):

- every top-level function, class or assignment of a saved cell must appear in
  the named module with exactly the same source text;
- every definition the package says is saved (its docstring says "Saved from
  chapter", or it sits in the module's saved region, between
  :data:`REGION_START` and :data:`REGION_END`) must still be defined by a
  chapter's saved cell: a cell deleted from the book leaves no orphan behind;
- a saved cell imports what its definitions use (names of other saved cells
  of the same module aside), and the module binds every name the cell imports,
  so the cell runs on its own and the module's copy compiles the same way.

``write_saved_code`` (``python -m ser_utils saved-code --write``) copies the
chapters' versions into the package after a chapter was edited; a new
definition lands in the module's saved region (created at the end of the
module, before any ``if __name__ == "__main__":`` block), as d2l's saved code
lands in its generated ``d2l/torch.py``.
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import re
import symtable
from dataclasses import dataclass
from pathlib import Path

SAVE_MARKER = re.compile(r"^#@save\s+(?P<module>[a-z_][a-z0-9_.]*)\s*$")
#: The region of a module that holds code saved from the chapters (new saved definitions land here).
REGION_START = "# --- saved from the chapters (#@save): edit the chapter, then `python -m ser_utils saved-code --write` ---"
REGION_END = "# --- end of the code saved from the chapters ---"
#: The line a saved definition's docstring carries (see the package's saved functions).
SAVED_NOTE = "Saved from chapter"


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


def _cell_code(notebook: Path, cell: int) -> str:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return "".join(cells[cell]["source"]).partition("\n")[2]


def _top_level(nodes):
    """Module-level statements, looking inside ``with``/``if``/``try`` blocks (not into functions or classes)."""
    for node in nodes:
        yield node
        for block in ("body", "orelse", "finalbody", "handlers"):
            if isinstance(node, (ast.With, ast.If, ast.Try, ast.ExceptHandler)) and hasattr(node, block):
                yield from _top_level(getattr(node, block))


def _bound_by_imports(code: str) -> set[str]:
    """Names ``code``'s module-level imports bind."""
    names = set()
    for node in _top_level(ast.parse(code).body):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            names |= {a.asname or a.name for a in node.names}
    return names


def _free_names(code: str) -> set[str]:
    """Global names the definitions of ``code`` read that ``code`` itself does not bind (builtins aside)."""
    top = symtable.symtable(code, "<cell>", "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    used: set[str] = set()

    def walk(table) -> None:
        for sym in table.get_symbols():
            if sym.is_referenced() and (table.get_type() == "module" or sym.is_global()) and not sym.is_assigned():
                used.add(sym.get_name())
        for child in table.get_children():
            walk(child)

    walk(top)
    return used - bound - set(dir(builtins))


def _module_bindings(code: str) -> set[str]:
    """Every top-level name a module binds: definitions, assignments and imports."""
    return set(_definitions(code)) | _bound_by_imports(code)


def _claimed_saved(code: str) -> list[str]:
    """Definitions of a module that say they are saved from a chapter (docstring note, or in the saved region)."""
    tree = ast.parse(code)
    lines = code.splitlines()
    start = next((i + 1 for i, ln in enumerate(lines) if ln.strip() == REGION_START), None)
    end = next((i + 1 for i, ln in enumerate(lines) if ln.strip() == REGION_END), len(lines) + 1)
    claimed = []
    for node in tree.body:
        in_region = start is not None and start < node.lineno < end
        doc = ast.get_docstring(node) if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else None
        if in_region or (doc and SAVED_NOTE in doc):
            claimed += list(_definitions(ast.get_source_segment(code, node) or ""))
    return claimed


def check_saved_code(book_dir: str | os.PathLike, package_dir: str | os.PathLike) -> list[str]:
    """One line per saved definition that is missing from, or differs from, its package copy."""
    package_dir = Path(package_dir)
    problems = []
    saved: dict[str, set[str]] = {}  # module -> names its saved cells define
    cells: dict[tuple[Path, int], str] = {}  # (notebook, cell) -> module
    for notebook in sorted(Path(book_dir).glob("*.ipynb")):
        for d in saved_definitions(notebook):
            saved.setdefault(d.module, set()).add(d.name)
            cells[(notebook, d.cell)] = d.module
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
    # The other way: nothing in the package claims to come from a chapter that no longer defines it.
    for path in sorted(package_dir.rglob("*.py")):
        module = ".".join(path.relative_to(package_dir).with_suffix("").parts)
        for name in _claimed_saved(path.read_text(encoding="utf-8")):
            if name not in saved.get(module, set()):
                problems.append(f"{path.relative_to(package_dir)}: {name} is marked as saved from a chapter, "
                                "but no #@save cell defines it (delete it, or unmark it if it is plumbing)")
    # Imports: a saved cell runs on its own, and the module binds what the cell imports.
    for (notebook, cell), module in cells.items():
        code = _cell_code(notebook, cell)
        target = _module_path(package_dir, module)
        missing = sorted(_free_names(code) - saved.get(module, set()) - _bound_by_imports(code))
        if missing:
            problems.append(f"{notebook.name} cell {cell}: uses {', '.join(missing)} without importing "
                            "it in the cell")
        if target.exists():
            unbound = sorted(_bound_by_imports(code) - _module_bindings(target.read_text(encoding="utf-8")))
            if unbound:
                problems.append(f"{notebook.name} cell {cell}: imports {', '.join(unbound)}, which "
                                f"ser_utils.{module} does not import")
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
            text = text.replace(old, d.source, 1) if old is not None else _add_to_region(text, d.source)
            changed.append(f"{module}:{d.name}")
        target.write_text(text, encoding="utf-8")
    return changed


def _add_to_region(text: str, source: str) -> str:
    """``text`` with ``source`` appended to its saved region (the region is created at the end when missing,
    before an ``if __name__ == "__main__":`` block)."""
    if REGION_END not in text:
        main = re.search(r"^if __name__ == .__main__.:", text, flags=re.M)
        head, tail = (text[: main.start()], text[main.start():]) if main else (text, "")
        text = f"{head.rstrip()}\n\n\n{REGION_START}\n\n\n{REGION_END}\n" + (f"\n\n{tail}" if tail else "")
    before, _, after = text.partition(REGION_END)
    return f"{before.rstrip()}\n\n\n{source}\n\n\n{REGION_END}{after}"
