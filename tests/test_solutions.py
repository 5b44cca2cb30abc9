"""The chapters' exercise solutions, executed, against their targets where a quick-mode target makes sense.

Every chapter's solutions are run in quick mode on the demo corpus with each exercise's solution appended as a cell
(the code of its collapsed Solution block, verbatim), followed by a cell that checks the target and, where a
solution only prints its numbers, a check of what it printed: a solution that no longer runs, or no longer
meets its target, fails here. Chapters 5-8 and 10 run from tests/test_solutions_deep.py (a file of its own, so
make test-slow's workers share the load). Quick mode caps training at 2 epochs, so on the demo corpus the
numbers only show that the code runs; the exact weight counts of 3.1 and 4.4 are also checked without
training. benchmarks/solutions.py runs the same cells on real TESS and records them in
results/reference/solutions/; book/course/exercises.md lists every exercise with its compute and result.
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
    "05_hybrid": {
        "5.1": "assert len(recs) == 12 and {r['model'] for r in recs} == set(names)\n"
               "assert {'model', 'best_epoch'} <= set(fold.columns) and (fold['best_epoch'] >= 1).all()",
        "5.2": "assert n == len(test_rows) and len(uars) == 5 and all(0 <= u <= 1 for u in uars)\n"
               "assert side['standardizer']['kind'] == 'spknorm'  # the reference clips' statistics are the ones used",
        "5.3": "assert pitch_shifted_frames([0], np.random.default_rng(0)).shape[1:] == fs.frames.shape[1:]",
        "5.4": "assert build.__name__ == 'build_hybrid_pooled' and len(uars) == 3 and all(0 <= u <= 1 for u in uars)\n"
               "assert build_hybrid_pooled().count_params() < build_hybrid(VECTOR_SHAPE).count_params()",
    },
    "06_transformers": {
        "6.1": "assert len(runs) == 12 and {r['model'] for r in runs} == {'vit', 'vit-specaug'}\n"
               "assert set(t['model']) == {'vit', 'vit-specaug'} and t['uar_mean'].between(0, 100).all()",
        "6.2": "assert p8['model'] == 'vit-patch8' and all(v > 0 for v in speed)\n"
               "assert vision.load_model(p8['folds'][0]['model_path'])[0].config.patch_size == 8",
        "6.3": "assert 0 <= after <= 1 and 0 <= before <= 1",
        "6.4": "assert len(runs) == 3 and {r['model'] for r in runs} == {'vit-pretrained'}\n"
               "assert all(f['best_epoch'] >= 1 for r in runs for f in r['folds'])\n"
               "os.chdir(cwd_before_6_4)",
        "6.5": "assert len(mean_maps) == len(max_maps) == len(before) > 0",
    },
    "07_comparison": {
        "7.1": "assert set(runs) == set(deep)",  # the pairs with no random-split run are skipped, as the solution says
        "7.2": "assert a['model'] == best != 'logreg' and b['model'] == 'logreg' and 0 <= mcnemar(a, b).p_value <= 1",
        "7.3": "assert 0 <= res.p_value <= 1 and 0 <= chi2_contingency(table)[1] <= 1",
        "7.4": "assert m.shape == (7, 7) and (np.diag(m) == 0).all() and ((m >= 0) & (m <= 1)).all()",
    },
    "08_gradcam": {
        "8.1": "assert np.isfinite(area) and len(ins_cam) == len(counts)",
        "8.2": "assert len(runs) == 3 and all(np.isfinite(r.summary()['area_between']) for r in runs.values())",
        "8.3": "assert len(rho) == len(pick)",
        "8.4": "assert spk.model is not None and len(a) == len(cams['hybrid']) and len(b) == len(spk_cams)",
    },
    "09_transfer": {
        "9.1": "assert 0 <= k4 <= 1 and 0 <= loo['metrics']['uar'] <= 1",
        "9.2": "assert len(per_corpus_uar) == 2 and all(0 <= v <= 100 for v in per_corpus_uar.values())",
        "9.3": "assert 0 <= hybrid_uar <= 100 and len(hyb.y_pred) == len(hyb.y_true) > 0",
    },
    "10_pretrained": {
        "10.1": "assert list(curve_rand.index) == list(curve_true.index) and curve_rand.between(0, 100).all()",
        "10.2": "assert with_std and len(uars) == len(speaker_folds) and all(0 <= u <= 100 for u in uars)",
        "10.3": "assert len(scores) == 4 * emb_crema.mean.shape[1] and C in (0.001, 0.01, 0.1, 1)",
    },
}

#: What a solution must print (regular expressions searched in its cell's output), where its numbers are only
#: printed: the target asks for them, so a solution that stops printing them misses it.
RULE_LINE = r"(beats|are not told apart) .*\((random|speaker)\): mean UAR difference [-+]\d"
PRINTED = {
    "3.2": [RULE_LINE],
    "3.4": [RULE_LINE],
    "5.1": [RULE_LINE],
    "6.1": [RULE_LINE],
    "5.3": [r"speaker: audio pitch-shift +UAR \d\.\d{3} ± ", r"speaker: hybrid-frames-aug +UAR", r"speaker: hybrid-frames +UAR",
            r"random: audio pitch-shift +UAR \d\.\d{3}"],
    "5.4": [r"build_hybrid random UAR", r"build_hybrid speaker UAR", r"build_hybrid_pooled random UAR",
            r"build_hybrid_pooled speaker UAR"],
    "6.2": [r"tokens: \d+ speed ratio: \d", r"accuracy: \d"],
    "6.3": [r"\d+\.\d % -> \d+\.\d %"],
    "6.5": [r"correlation: \[", r"mean-fused top 20 %: drop", r"max-fused top 20 %: drop", r"random 20 %: drop"],
    "7.1": [r"CNN sd: "],
    "7.4": [r"^\w+ -> \w+ 0\.\d+$"],
    "8.3": [r"randomised down to \S+ +mean Spearman"],
    "8.4": [r"^mel [-\d.]+ [-\d.]+ (different|same)$", r"^mfcc [-\d.]+ [-\d.]+ (different|same)$"],
    "10.3": [r"chosen on CREMA-D: \d+ "],
}

#: Run before a solution, in its namespace: what the exercise asks the student to bring. 6.4 needs a pretrained
#: ViT folder; none can be downloaded here, so a randomly initialised ViT saved with ``save_pretrained`` stands in
#: (the ``from_pretrained`` path runs; the accuracy target needs the real checkpoint).
SETUP = {
    "6.4": "import os, tempfile, transformers\n"
           "cwd_before_6_4 = os.getcwd()\n"
           "os.chdir(tempfile.mkdtemp(prefix='ser-vit-pretrained-'))\n"
           "transformers.ViTForImageClassification(transformers.ViTConfig(\n"
           "    image_size=size, patch_size=16, num_channels=3,\n"
           "    hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,\n"
           "    num_labels=7)).save_pretrained('models/vit-pretrained')",
}


#: Quick mode trains 1-2 epochs; the solutions that call ``fit_model`` themselves, or ask ``run_experiment`` for
#: more epochs (5.1: ``epochs=200``), get the same cap (a no-op otherwise).
QUICK_EPOCHS_CELL = """\
if ch.mode.quick:
    import functools
    import ser_utils.training
    fit_model = ser_utils.training.fit_model = functools.partial(ser_utils.training.fit_model,
                                                                 epochs=ser_utils.training.QUICK_EPOCHS)
    if "run_experiment" in globals():
        _run_experiment = run_experiment

        def run_experiment(*args, epochs=None, **kwargs):
            return _run_experiment(*args, **kwargs)"""


def _cell(source: str, tag: str):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = [tag]
    return cell


def with_solutions(chapter: str, skip: tuple[str, ...] = (), keep_going: bool = False) -> nbformat.NotebookNode:
    """The chapter up to its first exercise, then each solution (but ``skip``) and its target check.

    ``keep_going`` tags the solution and check cells ``raises-exception``: papermill records their error and goes on
    (the recorder of real-data runs, benchmarks/solutions.py); the test stops at the first error.
    """
    nb = nbformat.read(str(BOOK / f"{chapter}.ipynb"), as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("**Exercise"))
    nb.cells = nb.cells[:first] + [_cell(QUICK_EPOCHS_CELL, "quick-epochs")]
    for number, code in exercises(chapter).items():
        if number in skip:
            continue
        cells = [_cell(SETUP[number], f"setup-{number}")] if number in SETUP else []
        cells += [_cell(code, f"solution-{number}"), _cell(TARGETS[chapter][number], f"target-{number}")]
        for cell in cells:
            cell.metadata["tags"] += ["raises-exception"] if keep_going else []
        nb.cells += cells
    return nb


def printed(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def test_every_solution_of_the_executed_chapters_has_code_and_a_target():
    for chapter, targets in TARGETS.items():
        found = exercises(chapter)
        assert set(found) == set(targets), chapter
        assert all(code.strip() for code in found.values())


#: The chapters whose solutions train deep models, vision transformers or Grad-CAM models, or probe Whisper:
#: executed by tests/test_solutions_deep.py, a file of its own so that make test-slow's two workers share them.
DEEP = ("05_hybrid", "06_transformers", "07_comparison", "08_gradcam", "10_pretrained")


@pytest.mark.slow
@pytest.mark.parametrize("chapter", [c for c in TARGETS if c not in DEEP])
def test_solutions_meet_their_quick_targets(chapter, tmp_path):
    run_with_solutions(chapter, tmp_path)


def run_with_solutions(chapter: str, tmp_path: Path) -> None:
    """Execute ``chapter`` in quick mode on the demo corpus with its solutions and target checks appended."""
    art = os.environ.get("SER_ARTIFACTS_DIR") or str(tmp_path / "artifacts")
    done = execute_with_solutions(with_solutions(chapter), tmp_path / chapter,
                                  {"dataset": "demo", "quick": True, "artifacts_dir": art})
    for cell in done.cells:
        tags = cell.metadata.get("tags", [])
        if any(t.startswith("solution-") for t in tags):  # the measured time of each solution (pytest -s shows it)
            number = tags[0].removeprefix("solution-")
            print(f"{tags[0]}: {cell.metadata.get('papermill', {}).get('duration', float('nan')):.1f} s")
            for pattern in PRINTED.get(number, []):
                assert re.search(pattern, printed(cell), re.M), (number, pattern, printed(cell)[-2000:])


def execute_with_solutions(nb: nbformat.NotebookNode, stem: Path, parameters: dict) -> nbformat.NotebookNode:
    """Execute ``nb`` with papermill as the book runner does (its kernel environment; cwd ``book/``); the result."""
    import papermill

    from ser_utils.course.runner import _kernel_config, kernel_environment, quiet_environment

    source, out = stem.with_suffix(".ipynb"), stem.with_suffix(".out.ipynb")
    nbformat.write(nb, str(source))
    quiet_environment()
    with tempfile.TemporaryDirectory(prefix="ser-sol-") as sockets, \
            mock.patch.dict(os.environ, kernel_environment(), clear=True):
        papermill.execute_notebook(str(source), str(out), cwd=str(BOOK), progress_bar=False, log_output=False,
                                   parameters=parameters, config=_kernel_config(sockets))
    return nbformat.read(str(out), as_version=4)


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
            if "skipped" in run:  # left out of that run (hours of compute): not "real TESS" on the page
                continue
            assert run["error"] is None and run["target_check"] == "passed", (number, run)
            recorded[number] = run
    assert {n for n, how in rows.items() if "real TESS" in how} == set(recorded)


def _recorder():
    """benchmarks/solutions.py, imported as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("solutions_recorder", ROOT / "benchmarks" / "solutions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_merged_solutions_record_keeps_earlier_results_with_the_run_they_come_from():
    """--merge: an exercise this run skipped keeps the earlier record's result, marked with that run's commit and
    note; one this run executed replaces the earlier one; records of another chapter or other data are refused."""
    recorder = _recorder()
    data = {"name": "tess", "data_dir_name": "tess-dev", "synthetic": False, "quick": False, "n_clips": 2800}
    ran = {"wall_s": 1.0, "output": "", "error": None, "target_check": "passed"}
    skipped = {"skipped": "left out"}
    earlier = {"chapter": "04_lstm", "dataset": data, "git_commit": "aaa", "created": "2026-12-01",
               "machine": {"note": "busy"}, "exercises": {"4.1": ran, "4.2": skipped, "4.3": {**ran, "wall_s": 9.0}}}
    new = {"chapter": "04_lstm", "dataset": data, "git_commit": "bbb", "created": "2026-12-07",
           "machine": {"note": "idle"}, "exercises": {"4.1": skipped, "4.2": {**ran, "wall_s": 2.0}, "4.3": ran}}
    merged = recorder.merge(earlier, new)
    assert merged["exercises"]["4.1"] == {**ran, "run": {"git_commit": "aaa", "created": "2026-12-01", "note": "busy"}}
    assert merged["exercises"]["4.2"] == {**ran, "wall_s": 2.0} and merged["exercises"]["4.3"] == ran
    assert merged["git_commit"] == "bbb" and new["exercises"]["4.1"] == skipped  # the inputs are left as they were
    again = recorder.merge(merged, {**new, "git_commit": "ccc", "exercises": {n: skipped for n in new["exercises"]}})
    assert again["exercises"]["4.1"]["run"]["git_commit"] == "aaa" and again["exercises"]["4.2"]["run"]["git_commit"] == "bbb"
    with pytest.raises(ValueError, match="same data"):
        recorder.merge(earlier, {**new, "dataset": {**data, "n_clips": 1400}})
    with pytest.raises(ValueError, match="one chapter"):
        recorder.merge(earlier, {**new, "chapter": "05_hybrid"})
