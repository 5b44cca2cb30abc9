"""The model registry: every model name the book and the reference results use is in the grammar."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import nbformat
import pytest

from ser_utils.registry import ModelSpec, all_bases

ALL_MODELS = all_bases()

ROOT = Path(__file__).resolve().parents[1]
_NAME = re.compile(rf"^({'|'.join(ALL_MODELS)})(-[a-z]+)+$|^({'|'.join(ALL_MODELS)})$")


def book_model_names() -> set[str]:
    """Every string literal in the chapters' code cells that is spelled like a model name."""
    names = set()
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        for cell in nbformat.read(str(path), as_version=4).cells:
            if cell.cell_type != "code":
                continue
            try:
                tree = ast.parse("\n".join(ln for ln in cell.source.splitlines() if not ln.lstrip().startswith(("%", "!"))))
            except SyntaxError:
                continue
            in_fstring = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
            names |= {n.value for n in ast.walk(tree)  # a piece of an f-string is not a name
                      if isinstance(n, ast.Constant) and isinstance(n.value, str) and _NAME.match(n.value)
                      and id(n) not in in_fstring}
    return names


def reference_model_names() -> set[str]:
    return {json.loads(p.read_text())["model"] for p in (ROOT / "results" / "reference").glob("*.json")}


def test_the_book_and_the_references_use_model_names():
    assert {"hybrid-frames-spknorm-aug", "logreg-spknorm"} <= book_model_names() | reference_model_names()


@pytest.mark.parametrize("name", sorted(book_model_names() | reference_model_names()))
def test_every_used_name_parses_and_round_trips(name):
    spec = ModelSpec.parse(name)
    assert spec.name == name
    assert ModelSpec.parse(spec.name) == spec


def test_the_name_spells_the_recipe():
    spec = ModelSpec.parse("hybrid-frames-spknorm-aug")
    assert (spec.family.name, spec.base, spec.input, spec.spknorm, spec.augment) == ("keras", "hybrid", "frames", True, True)
    vit = ModelSpec.parse("vit-pretrained-specaug")
    assert (vit.family.name, vit.pretrained, vit.augment) == ("vision", True, True)
    assert ModelSpec.parse("logreg-spknorm").uses_test_speaker
    assert ModelSpec.parse("hybrid-aug-frames").name == "hybrid-frames-aug"  # canonical order
    assert ModelSpec("hybrid").with_options({"input": "frames", "augment": 4, "batch_size": 8}).name == "hybrid-frames-aug"
    assert ModelSpec("beit").with_options({"pretrained": "some/folder"}).name == "beit-pretrained"


@pytest.mark.parametrize("bad", ["foo", "cnn-bogus", "duration-spknorm", "vit-frames", "logreg-aug"])
def test_names_outside_the_grammar_are_refused(bad):
    with pytest.raises(ValueError):
        ModelSpec.parse(bad)
    assert ModelSpec.parse_or_none(bad) is None


def test_the_grammar_is_read_in_one_module_only():
    """No other module splits model names on "-" (the registry is the only reader of the grammar)."""
    offenders = []
    for path in sorted((ROOT / "ser_utils").rglob("*.py")):
        if path.name == "registry.py":
            continue
        for n in ast.walk(ast.parse(path.read_text())):
            if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in {"split", "partition"}
                    and n.args and isinstance(n.args[0], ast.Constant) and n.args[0].value == "-"):
                offenders.append(f"{path.relative_to(ROOT)}:{n.lineno}")
    assert offenders == []


def test_the_package_has_no_import_cycle():
    """Module-level and function-level imports between ser_utils modules form no cycle."""
    pkg = ROOT / "ser_utils"
    mods = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in pkg.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        here = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for n in ast.walk(ast.parse(path.read_text())):
            if isinstance(n, ast.ImportFrom):
                parts = here.split(".")
                mod = ".".join(parts[: len(parts) - n.level + 1] + [n.module] if n.module else
                               parts[: len(parts) - n.level + 1]) if n.level else (n.module or "")
                for a in n.names:
                    deps |= {m for m in (f"{mod}.{a.name}", mod) if m in mods}
            elif isinstance(n, ast.Import):
                deps |= {a.name for a in n.names if a.name in mods}
        graph[name] = deps - {name}

    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*path, node, dep]
            if dep not in state and (cycle := visit(dep, [*path, node])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            assert visit(start, []) is None


def course_references(source: str) -> list[str]:
    """Every way ``source`` (one library module) reaches ``ser_utils.course``: imports of any kind
    (absolute, relative, inside ``TYPE_CHECKING`` or a function), ``importlib``/``__import__`` strings,
    and names in annotations, string annotations included."""
    tree = ast.parse(source)
    found = []

    def names_course(text: str) -> bool:
        return re.search(r"(^|[.\s'\"\[(,])course([.\s'\"\]),]|$)", text) is not None

    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom):
            mod = ("." * n.level) + (n.module or "")
            if names_course(mod) or (n.level and any(a.name == "course" for a in n.names)) \
                    or (mod in {"ser_utils", ".", ""} and any(a.name == "course" for a in n.names)):
                found.append(f"line {n.lineno}: from {mod} import ...")
        elif isinstance(n, ast.Import):
            found += [f"line {n.lineno}: import {a.name}" for a in n.names if names_course(a.name)]
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and re.search(r"\bser_utils\.course\b|^\.?course(\.|$)", n.value):
            found.append(f"line {n.lineno}: string {n.value[:40]!r}")
        elif isinstance(n, ast.Attribute) and n.attr == "course":
            found.append(f"line {n.lineno}: attribute .course")
    return found


def test_no_library_module_reaches_the_course_machinery():
    """The library (every ser_utils module outside course/) never imports or names ser_utils.course.

    The one exception is ``__main__.py``: the program that joins the library's commands and the book's.
    """
    offenders = {}
    for path in sorted((ROOT / "ser_utils").glob("*.py")):
        if path.name == "__main__.py":
            continue
        if refs := course_references(path.read_text(encoding="utf-8")):
            offenders[path.name] = refs
    assert offenders == {}


@pytest.mark.parametrize("line", [
    "from .course.chapter import Chapter",
    "from . import course",
    "from ser_utils.course import display",
    "import ser_utils.course.runner",
    "from ser_utils import course",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .course.chapter import Chapter",
    "def f():\n    from .course import comparison",
    "def f(ch: 'ser_utils.course.chapter.Chapter'): ...",
    "import importlib\nm = importlib.import_module('ser_utils.course.runner')",
    "import ser_utils\nx = ser_utils.course",
])
def test_the_guard_catches_every_form_of_course_import(line):
    assert course_references(line), line


def test_the_guard_lets_ordinary_words_pass():
    assert course_references("x = 1  # of course\ndef run(courses): return 'a course of action'") == []
