"""Every chapter follows the literate rule: short cells, its own library calls, saved code, full exercises.

The rule (README, "Contributing"): a chapter writes, explains and runs the code it
teaches; a ``#@save <module>`` cell is kept verbatim in ``ser_utils`` (checked by
``test_saved_code.py``); no code cell is longer than 25 lines except papermill's
parameters cell; every exercise has a measurable target, a hint and a collapsed
worked solution.
"""

import ast
import re

import nbformat
import pytest

from ser_utils.run_context import project_root

BOOK = project_root() / "book"
CHAPTERS = {path.name[:2]: path for path in sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))}
# Chapters whose literate rewrite is not merged yet: their cases are expected to fail for now.
# Remove a chapter from this set once it is literate (then a failure fails the suite).
MAX_CELL_LINES = 25
# What each chapter must call itself, in its own code cells: every group needs one of its options.
LIBRARY_CALLS: dict[str, list[tuple[str, ...]]] = {
    "02": [("librosa.",)],
    "03": [("layers.Conv1D", "layers.LSTM"), (".compile(",), (".fit(",)],
    "04": [("layers.Conv1D", "layers.LSTM"), (".compile(",), (".fit(",)],
    "05": [("layers.Conv1D", "layers.LSTM"), (".compile(",), (".fit(",)],
    "06": [("ViTConfig", "BeitConfig")],
    "08": [("GradientTape",)],
    "09": [("actor_folds(",), ("cross_corpus_split(",), ("standardise_per_speaker(",), ("keras_fold(",)],
    "10": [("from_pretrained(",), ("output_hidden_states=True",), ("LogisticRegression(",), ("enc.extractor(",)],
}
SAVE_CHAPTERS = ("02", "03", "04", "05", "06", "07", "08", "09", "10")
EXERCISE = re.compile(r"\*\*Exercise \d+\.\d+\.\*\*")
# A MyST admonition fenced with backticks (longer than any fence inside it) or colons.
SOLUTION = re.compile(r"^(`{3,}|:{3,})\{admonition\} Solution\n:class: dropdown\n(?P<body>.*?)^\1\s*$", re.M | re.S)


def _cases(numbers) -> list:
    """One pytest param per chapter."""
    return [pytest.param(n, id=n) for n in numbers]


def _cells(number: str):
    return nbformat.read(CHAPTERS[number], as_version=4).cells


def counted_lines(source: str) -> int:
    """Lines of a code cell that count towards the limit: a ``#@save`` cell's marker and its leading imports
    do not (the saved-code check requires a saved cell to import what it uses, so they are not prose-free
    code the reader must follow)."""
    lines = source.splitlines()
    if not lines or not lines[0].startswith("#@save"):
        return len(lines)
    k = 1
    while k < len(lines) and (lines[k].startswith(("import ", "from ")) or not lines[k].strip()):
        k += 1
    return len(lines) - k


def long_code_cells(cells) -> list[str]:
    """Code cells over the line limit (the papermill parameters cell is exempt)."""
    return [
        f"cell {i}: {counted_lines(c.source)} lines"
        for i, c in enumerate(cells)
        if c.cell_type == "code"
        and "parameters" not in c.metadata.get("tags", [])
        and counted_lines(c.source) > MAX_CELL_LINES
    ]


def exercise_problems(cells) -> list[str]:
    """Exercise cells that lack a target, a hint or a dropdown solution, or hold two exercises."""
    problems = []
    for i, c in enumerate(cells):
        if c.cell_type != "markdown" or not EXERCISE.search(c.source):
            continue
        if len(EXERCISE.findall(c.source)) > 1:
            problems.append(f"cell {i}: more than one exercise in a cell")
        for needed in ("*Target:*", "*Hint:*"):
            if needed not in c.source:
                problems.append(f"cell {i}: no {needed}")
        match = SOLUTION.search(c.source)
        if not match:
            problems.append(f"cell {i}: no ```{{admonition}} Solution with :class: dropdown")
        elif match[1].startswith("`") and re.search(rf"^`{{{len(match[1])},}}", match["body"], re.M):
            # an inner ```python fence as long as the outer one closes the admonition early
            problems.append(f"cell {i}: the solution's outer fence must be longer than the fences inside it")
    return problems


def saved_docstring_problems(number: str, cells) -> list[str]:
    """Saved functions/classes whose docstring does not end by naming the chapter and section."""
    name = CHAPTERS[number].name
    pattern = re.compile(rf"Saved from chapter {int(number)}, section {int(number)}\.\d+ \(book/{re.escape(name)}\)\.")
    problems = []
    for i, c in enumerate(cells):
        if c.cell_type != "code" or not c.source.startswith("#@save"):
            continue
        for node in ast.parse(c.source).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                doc = ast.get_docstring(node) or ""
                last = doc.strip().splitlines()[-1] if doc.strip() else ""
                if not pattern.fullmatch(last.strip()):
                    problems.append(f"cell {i}: {node.name}: docstring does not end with 'Saved from chapter ...'")
    return problems


ALL = ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10"]


def test_all_ten_chapters_are_checked():
    assert sorted(CHAPTERS) == ALL


@pytest.mark.parametrize("number", _cases(ALL))
def test_sections_are_numbered_in_order_without_gaps(number):
    """"## N.k" headings run N.1, N.2, ... so a cross-reference such as "chapter 5.7" finds its section."""
    found = [int(m[1]) for c in _cells(number) if c.cell_type == "markdown"
             for m in re.finditer(rf"^#+ {int(number)}\.(\d+)\b", c.source, flags=re.M)]
    assert found == list(range(1, len(found) + 1)), found


@pytest.mark.parametrize("number", _cases(ALL))
def test_no_code_cell_is_longer_than_25_lines(number):
    assert not long_code_cells(_cells(number)), long_code_cells(_cells(number))


@pytest.mark.parametrize("number", _cases(sorted(LIBRARY_CALLS)))
def test_chapter_calls_the_library_it_teaches_in_its_own_cells(number):
    code = "\n".join(c.source for c in _cells(number) if c.cell_type == "code")
    missing = [options for options in LIBRARY_CALLS[number] if not any(o in code for o in options)]
    assert not missing, f"no call to any of {missing} in the chapter's code cells"


@pytest.mark.parametrize("number", _cases(SAVE_CHAPTERS))
def test_chapter_has_saved_code_with_its_origin_in_the_docstring(number):
    cells = _cells(number)
    assert any(c.cell_type == "code" and c.source.startswith("#@save ") for c in cells), "no #@save cell"
    assert not saved_docstring_problems(number, cells), saved_docstring_problems(number, cells)


@pytest.mark.parametrize("number", _cases(ALL))
def test_every_exercise_has_target_hint_and_collapsed_solution(number):
    cells = _cells(number)
    assert any(c.cell_type == "markdown" and EXERCISE.search(c.source) for c in cells), "no exercise cells"
    assert not exercise_problems(cells), exercise_problems(cells)


def test_the_checks_catch_what_they_are_for():
    nb = nbformat.v4.new_notebook()
    good = (
        "**Exercise 1.1.** Do it.\n\n*Target:* 50 %. *Hint:* try.\n\n"
        "````{admonition} Solution\n:class: dropdown\n\n```python\nprint(1)\n```\n````"
    )
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1\n" * 26, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("y = 2\n" * 25),
        nbformat.v4.new_markdown_cell(good),
    ]
    assert long_code_cells(nb.cells) == [] and exercise_problems(nb.cells) == []
    nb.cells.append(nbformat.v4.new_code_cell("z = 3\n" * 26))
    nb.cells.append(nbformat.v4.new_markdown_cell(good.replace("*Hint:* try.", "")))
    nb.cells.append(nbformat.v4.new_markdown_cell(good.replace(":class: dropdown\n", "")))
    nb.cells.append(nbformat.v4.new_markdown_cell(good.replace("````", "```")))
    assert long_code_cells(nb.cells) == ["cell 3: 26 lines"]
    assert exercise_problems(nb.cells) == [
        "cell 4: no *Hint:*", "cell 5: no ```{admonition} Solution with :class: dropdown",
        "cell 6: the solution's outer fence must be longer than the fences inside it"]


def checks_in(cells) -> int:
    """What nbval can fail on besides an error: `# NBVAL_CHECK_OUTPUT` cells and top-level asserts."""
    n = 0
    for c in cells:
        if c.cell_type != "code":
            continue
        n += "NBVAL_CHECK_OUTPUT" in c.source
        try:
            n += sum(isinstance(node, ast.Assert) for node in ast.parse(c.source).body)
        except SyntaxError:  # IPython magics: not a check
            continue
    return n


@pytest.mark.parametrize("number", _cases(sorted(CHAPTERS)))
def test_every_chapter_checks_at_least_two_things_in_quick_mode(number):
    assert checks_in(_cells(number)) >= 2, "add sanity asserts (shapes, finite scores, keys) or NBVAL_CHECK_OUTPUT"


@pytest.mark.parametrize("number", _cases(sorted(CHAPTERS)))
def test_chapter_opens_with_the_colab_cell_and_collapsed_parameters(number):
    from ser_utils.course.pages import chapter_problems, repository_url

    nb = nbformat.read(CHAPTERS[number], as_version=4)
    problems = chapter_problems(nb, repository_url(project_root()))
    assert not problems, problems


@pytest.mark.parametrize("number", _cases(sorted(CHAPTERS)))
def test_papermill_reads_every_parameter_of_the_chapter(number):
    """papermill's parameter inspection skips (with a warning in every run) a line holding two ``=``, e.g. in its comment."""
    import papermill

    nb = nbformat.read(CHAPTERS[number], as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assigned = [ln.split("=")[0].strip() for ln in cell.source.splitlines() if "=" in ln and not ln.lstrip().startswith("#")]
    found = list(papermill.inspect_notebook(str(CHAPTERS[number])))
    assert found == assigned, f"papermill cannot parse {sorted(set(assigned) - set(found))}: one '=' per line"


def test_the_check_counter_counts_asserts_and_checked_outputs_only():
    cells = [nbformat.v4.new_code_cell("x = 1\nassert x == 1"), nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nx"),
             nbformat.v4.new_code_cell("def f():\n    assert True"), nbformat.v4.new_markdown_cell("assert 1")]
    assert checks_in(cells) == 2


def test_api_page_lists_every_library_module():
    page = (BOOK / "api.md").read_text()
    listed = set(re.findall(r"\{autodoc2-object\} ser_utils\.(\w+)", page))
    modules = {p.stem for p in (BOOK.parent / "ser_utils").glob("*.py") if not p.stem.startswith("_")}
    assert listed == modules, f"missing: {sorted(modules - listed)}; not modules: {sorted(listed - modules)}"


def _assigned_names(source: str) -> set[str]:
    """Names a cell binds in the notebook's namespace: assignments, for/with targets and imports at its top
    level or inside if/for/while/with/try blocks (not inside functions, classes or comprehensions)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics: not a parameter reassignment
        return set()
    names: set[str] = set()

    def targets(node):
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                names.add(n.id)

    def visit(statements):
        for st in statements:
            if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(st.name)
                continue
            if isinstance(st, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                for t in (st.targets if isinstance(st, ast.Assign) else [st.target]):
                    targets(t)
            elif isinstance(st, (ast.For, ast.AsyncFor)):
                targets(st.target)
            elif isinstance(st, (ast.With, ast.AsyncWith)):
                for item in st.items:
                    if item.optional_vars is not None:
                        targets(item.optional_vars)
            elif isinstance(st, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in st.names)
            for field in ("body", "orelse", "finalbody"):
                visit(getattr(st, field, []))
            for handler in getattr(st, "handlers", []):
                visit(handler.body)
        for st in statements:  # walrus targets anywhere at this level bind in the namespace too
            for n in ast.walk(st):
                if isinstance(n, ast.NamedExpr):
                    names.add(n.target.id)

    visit(tree.body)
    return names


# Parameters a chapter deliberately normalises in place (same meaning, a list instead of None).
NORMALISED_PARAMETERS = {"07": {"protocols", "seeds"}}


@pytest.mark.parametrize("path", CHAPTERS.values(), ids=CHAPTERS.keys())
def test_no_cell_rebinds_a_papermill_parameter(path):
    """A parameter (``full``, ``quick``, ``seed``...) keeps the value papermill gave it: chapter 10 once reused
    ``full`` for a model output, which made every default run fine-tune Whisper for an hour."""
    nb = nbformat.read(str(path), as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    params = _assigned_names(nb.cells[at].source) - NORMALISED_PARAMETERS.get(path.name[:2], set())
    later = {(i, name) for i, c in enumerate(nb.cells[at + 1:], at + 1) if c.cell_type == "code"
             for name in _assigned_names(c.source) & params}
    assert not later, f"cells rebinding a parameter: {sorted(later)}"


@pytest.mark.parametrize("number", _cases(ALL))
def test_saved_code_names_the_section_it_is_saved_from(number):
    """A ``#@save`` cell's "Saved from chapter N, section N.M" names the section the cell sits in."""
    section, wrong = None, []
    for i, cell in enumerate(_cells(number)):
        text = "".join(cell["source"])
        heading = re.search(r"^## (\d+\.\d+) ", text, re.M)
        if cell["cell_type"] == "markdown" and heading:
            section = heading[1]
        for said in re.findall(r"Saved from chapter \d+, section (\d+\.\d+)", text):
            if said != section:
                wrong.append(f"cell {i}: says section {said}, sits in {section}")
    assert not wrong, wrong
