"""The chapters' exercise solutions, executed, against their targets where a quick-mode target makes sense.

Chapters 1-4 and 9 are run in quick mode on the demo corpus with each exercise's solution appended as a cell
(the code of its collapsed Solution block, verbatim), followed by a cell that checks the target: a solution
that no longer runs, or no longer meets its target, fails here. The exercises of chapters 5-8 and 10 train
for minutes to hours on real data (see each chapter's objectives cell) and are not executed here; the exact
weight counts of 3.1 and 4.4 are also checked without training. book/course/exercises.md lists every
exercise with its compute and what is known about its solution (the real-TESS runs of chapters 1, 2 and 9
are recorded in results/reference/solutions/).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from pathlib import Path
from unittest import mock

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

_CODE = re.compile(r"^(```|~~~)python\n(.*?)^\1", re.S | re.M)


def exercises(chapter: str) -> dict[str, str]:
    """Exercise number -> the code of its solution (every python block of the Solution, in order)."""
    nb = nbformat.read(str(BOOK / f"{chapter}.ipynb"), as_version=4)
    out = {}
    for cell in nb.cells:
        m = re.match(r"\*\*Exercise (\d+\.\d+)\.\*\*", cell.source)
        if cell.cell_type == "markdown" and m and "Solution" in cell.source:
            solution = cell.source[cell.source.index("Solution"):]
            out[m.group(1)] = "\n".join(block for _, block in _CODE.findall(solution))
    return out


#: Target checks, run right after each solution in the solution's namespace.
TARGETS = {
    "01_data": {
        "1.1": 'assert {"logreg", "rf", "rf - logreg"} <= set(table.columns) and len(table) == 6\n'
               "assert table.notna().all().all()",
        "1.2": "from ser_utils.labels import EMOTIONS\n"
               'assert per_emotion.shape == (7, 2) and per_emotion["trimmed"].idxmax() in EMOTIONS\n'
               'assert (per_emotion["silence (s)"] >= 0).all()',
        "1.3": "assert len(leaked) == 2 and all(len(v) == 0 for v in leaked.values()), leaked",
        "1.4": 'assert shared["word"] == 0 and shared["random"] > 90, shared',
    },
    "02_features": {
        "2.1": 'assert table.shape == (5, 2) and "nothing" in table.index and table.notna().all().all()',
        "2.2": "assert len(uar_by) == 4 and all(0 <= v <= 100 for v in uar_by.values())\n"
               "assert len(untrimmed) == len(fs)",
        "2.3": 'import numpy as np\nassert np.isfinite([mean_within("word"), mean_within("emotion")]).all()',
        "2.4": "assert len(causal) == 2 and all(0 <= v <= 100 for v in causal.values()) and np.isfinite(gap)",
    },
    "03_cnn": {
        "3.1": "assert build_cnn_pooled().count_params() == 100_743\n"
               "assert len(uars) == 3 and all(0 <= u <= 1 for u in uars)",
        "3.2": "assert len(records) == 12 and {r['model'] for r in records} == {'cnn', 'logreg'}\n"
               "assert all(0 <= r['metrics']['uar'] <= 1 for r in records)",
        "3.3": "assert len(uars) == 3 and all(0 <= u <= 1 for u in uars)",
        "3.4": "assert len(records) == 6 and {r['model'] for r in records} == {'cnn', 'cnn-frames'}\n"
               "assert all(f['best_epoch'] >= 1 for r in records for f in r['folds'])",
    },
    "04_lstm": {
        "4.1": "assert len(uars) == 3 and all(0 <= u <= 1 for u in uars)",
        "4.2": "assert len(uars) == len(secs) == 3 and all(0 <= u <= 1 for u in uars)",
        "4.3": "assert len(records) == 6 and {r['model'] for r in records} == {'lstm', 'lstm-frames'}",
        "4.4": "assert layer.count_params() == 16_896",
    },
    "09_transfer": {
        "9.1": "assert 0 <= k4 <= 1 and 0 <= loo['metrics']['uar'] <= 1",
        "9.2": "assert len(per_corpus_uar) == 2 and all(0 <= v <= 100 for v in per_corpus_uar.values())",
        "9.3": "assert 0 <= hybrid_uar <= 100 and len(hyb.y_pred) == len(hyb.y_true) > 0",
    },
}


#: Quick mode trains 1-2 epochs; the solutions that call ``fit_model`` themselves get the same cap (a no-op otherwise).
QUICK_EPOCHS_CELL = """\
if ch.mode.quick:
    import functools
    import ser_utils.training
    fit_model = ser_utils.training.fit_model = functools.partial(ser_utils.training.fit_model,
                                                                 epochs=ser_utils.training.QUICK_EPOCHS)"""


def _cell(source: str, tag: str):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = [tag]
    return cell


def with_solutions(chapter: str) -> nbformat.NotebookNode:
    """The chapter up to its first exercise, then each solution and its target check."""
    nb = nbformat.read(str(BOOK / f"{chapter}.ipynb"), as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("**Exercise"))
    nb.cells = nb.cells[:first] + [_cell(QUICK_EPOCHS_CELL, "quick-epochs")]
    for number, code in exercises(chapter).items():
        nb.cells += [_cell(code, f"solution-{number}"), _cell(TARGETS[chapter][number], f"target-{number}")]
    return nb


def test_every_solution_of_the_executed_chapters_has_code_and_a_target():
    for chapter, targets in TARGETS.items():
        found = exercises(chapter)
        assert set(found) == set(targets), chapter
        assert all(code.strip() for code in found.values())


@pytest.mark.slow
@pytest.mark.parametrize("chapter", list(TARGETS))
def test_solutions_meet_their_quick_targets(chapter, tmp_path):
    import papermill

    from ser_utils.course.runner import _kernel_config, kernel_environment, quiet_environment

    source, out = tmp_path / f"{chapter}.ipynb", tmp_path / f"{chapter}.out.ipynb"
    nbformat.write(with_solutions(chapter), str(source))
    quiet_environment()
    art = os.environ.get("SER_ARTIFACTS_DIR") or str(tmp_path / "artifacts")
    with tempfile.TemporaryDirectory(prefix="ser-sol-") as sockets, \
            mock.patch.dict(os.environ, kernel_environment(), clear=True):
        papermill.execute_notebook(str(source), str(out), cwd=str(BOOK), progress_bar=False, log_output=False,
                                   parameters={"dataset": "demo", "quick": True, "artifacts_dir": art},
                                   config=_kernel_config(sockets))
    done = nbformat.read(str(out), as_version=4)
    for cell in done.cells:
        tags = cell.metadata.get("tags", [])
        if any(t.startswith("solution-") for t in tags):  # the measured time of each solution (pytest -s shows it)
            print(f"{tags[0]}: {cell.metadata.get('papermill', {}).get('duration', float('nan')):.1f} s")


def test_weight_counts_of_exercises_3_1_and_4_4():
    """3.1's pooled CNN has the 100,743 weights its solution derives; 4.4's layers 4,224 and 16,896."""
    import keras

    from ser_utils.labels import EMOTIONS
    from ser_utils.models import LAST_CONV, VECTOR_SHAPE, build_cnn, conv_block

    code = exercises("03_cnn")["3.1"]
    namespace = {"keras": keras, "conv_block": conv_block, "LAST_CONV": LAST_CONV, "VECTOR_SHAPE": VECTOR_SHAPE,
                 "EMOTIONS": EMOTIONS}
    exec(code[: code.index("\nfor build in")], namespace)  # the definition only: no training
    assert build_cnn().count_params() == 280_967
    assert namespace["build_cnn_pooled"]().count_params() == 100_743
    assert "100,743" in exercises_text("03_cnn", "3.1")

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(exercises("04_lstm")["4.4"], {"keras": keras})  # the solution itself: builds two layers, prints counts
    assert printed.getvalue().split() == ["SimpleRNN", "4224", "LSTM", "16896"]
    assert "4 x 4,224 =\n16,896" in exercises_text("04_lstm", "4.4")


def exercises_text(chapter: str, number: str) -> str:
    nb = nbformat.read(str(BOOK / f"{chapter}.ipynb"), as_version=4)
    return next(c.source for c in nb.cells if c.source.startswith(f"**Exercise {number}.**"))


def test_the_exercises_page_lists_every_exercise_and_what_was_executed():
    """book/course/exercises.md: one row per exercise of the book; "quick (CI)" only where this file checks the
    target, "real TESS" only where a record of the run is committed, and every recorded target check passed."""
    import json

    text = (BOOK / "course" / "exercises.md").read_text(encoding="utf-8")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| (\d+\.\d+) [^|]*\|[^|]*\| ([^|]*) \|", text, re.M)}
    in_book = {m.group(1) for path in sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
               for cell in nbformat.read(str(path), as_version=4).cells
               if (m := re.match(r"\*\*Exercise (\d+\.\d+)\.\*\*", cell.source))}
    assert set(rows) == in_book, sorted(set(rows) ^ in_book)
    quick = {n for targets in TARGETS.values() for n in targets} | {"3.1", "4.4"}
    assert {n for n, how in rows.items() if "quick (CI)" in how} == quick
    recorded = {}
    for path in sorted((ROOT / "results" / "reference" / "solutions").glob("*.json")):
        rec = json.loads(path.read_text(encoding="utf-8"))
        assert not rec["dataset"]["synthetic"] and not rec["dataset"]["quick"], path
        for number, run in rec["exercises"].items():
            assert run["error"] is None and run["target_check"] == "passed", (number, run)
            recorded[number] = run
    assert {n for n, how in rows.items() if "real TESS" in how} == set(recorded)
