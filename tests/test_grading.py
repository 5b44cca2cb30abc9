"""The graded assignments: the hidden tests on toy functions (fast), and `grade` on every notebook (slow).

The slow tests execute each assignment's reference solution (must pass) and a naive or leaky one (must fail,
with its reason) through ``python -m ser_utils grade``, in quick mode on the demo corpus.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser_utils.__main__ import main
from ser_utils.course import grading
from ser_utils.course.grading import ASSIGNMENTS, Clips, Report, data_reads, speaker_protocol_checks

ROOT = Path(__file__).resolve().parents[1]


def toy_clips(n_per: int = 28, seed: int = 0) -> Clips:
    """Two speakers, 7 emotions, one informative feature shifted per speaker."""
    rng = np.random.default_rng(seed)
    y = np.tile(np.arange(7), 2 * n_per // 7)
    speaker = np.repeat(["A", "B"], n_per)
    x = y[:, None] + rng.normal(0, 0.6, (len(y), 3)) + (speaker == "B")[:, None] * 0.2
    return Clips({"vector": x}, y, speaker, np.array([f"w{i % 4}" for i in range(len(y))]),
                 np.array([f"{s}_{i}" for i, s in enumerate(speaker)]))


def centroid(train: Clips, x: np.ndarray) -> np.ndarray:
    means = np.stack([train.features["vector"][train.y == c].mean(0) for c in range(7)])
    return np.argmin(((x[:, None] - means[None]) ** 2).sum(-1), axis=1)


def honest(clips, test_speaker):
    return centroid(clips.without_speaker(test_speaker), clips.of_speaker(test_speaker).features["vector"])


def leaky(clips, test_speaker):  # the test speaker's clips in training
    return centroid(clips, clips.of_speaker(test_speaker).features["vector"])


def transductive(clips, test_speaker):  # standardises the test speaker with her own statistics
    test = clips.of_speaker(test_speaker).features["vector"]
    train = clips.without_speaker(test_speaker)
    ref = train.features["vector"]
    z = (test - test.mean(0)) / test.std(0) * ref.std(0) + ref.mean(0)
    return centroid(train, z)


def unseeded(clips, test_speaker):
    return np.random.default_rng().integers(0, 7, int(np.sum(clips.speaker == test_speaker)))


def failing(name: str, report: Report) -> list[str]:
    return [c.name for c in report.checks if not c.passed]


def test_honest_function_passes_every_protocol_check():
    report = Report("toy")
    preds = speaker_protocol_checks(honest, toy_clips(), report)
    assert preds is not None and not failing("", report)
    assert {c.name for c in report.checks} == {"reproducible", "no test speaker in training or selection",
                                               "speaker-independent"}


@pytest.mark.parametrize("fn, check, reason", [
    (leaky, "no test speaker in training or selection", "a test speaker's clips are in training"),
    (transductive, "speaker-independent", "transductive"),
    (unseeded, "reproducible", "fix the seeds"),
])
def test_dishonest_functions_fail_with_their_reason(fn, check, reason):
    report = Report("toy")
    assert speaker_protocol_checks(fn, toy_clips(), report) is None
    bad = {c.name: c.detail for c in report.checks if not c.passed}
    assert check in bad and reason in bad[check], bad


def test_a_function_that_raises_or_returns_nonsense_is_a_failed_check():
    def broken(clips, test_speaker):
        raise KeyError("frames")

    def wrong_shape(clips, test_speaker):
        return np.zeros(3, int)

    for fn, words in ((broken, "raised KeyError"), (wrong_shape, "shape (3,)")):
        report = Report("toy")
        assert speaker_protocol_checks(fn, toy_clips(), report) is None
        assert report.checks[-1].name == "runs" and words in report.checks[-1].detail and not report.passed


def test_emotion_names_are_accepted_as_predictions():
    def by_name(clips, test_speaker):
        return np.array([grading.EMOTIONS[i] for i in honest(clips, test_speaker)])

    report = Report("toy")
    assert speaker_protocol_checks(by_name, toy_clips(), report) is not None and report.passed


NOTEBOOK = """
import numpy as np
import pandas as pd
fs = pd.DataFrame({"a": [1]})
helper_data = np.zeros(3)
K = 3

def helper(x):
    return x + helper_data

def uses_global(clips, s):
    return np.asarray(fs["a"]) * K

def uses_helper(clips, s):
    return [helper(v) for v in clips]  # through a notebook function, inside a comprehension

def clean(clips, s, k=3, names=("a", "b")):
    return np.mean(clips) * k * K

def smuggles(clips, s, data=fs):
    return data

class Model:
    def fit(self, x):
        return helper_data
"""


def test_data_reads_names_notebook_data_but_allows_modules_functions_and_constants():
    namespace = {"__name__": "__main__"}
    exec(compile(NOTEBOOK, "<notebook>", "exec"), namespace)  # as a kernel runs a notebook's cells
    assert data_reads(namespace["uses_global"], namespace) == ["`fs` (DataFrame)"]
    assert data_reads(namespace["uses_helper"], namespace) == ["`helper_data` (ndarray)"]
    assert data_reads(namespace["clean"], namespace) == []
    assert data_reads(namespace["smuggles"], namespace) == ["a default argument of smuggles (DataFrame)"]
    assert data_reads(namespace["Model"], namespace) == ["`helper_data` (ndarray)"]


def test_report_json_round_trip_keeps_the_verdict():
    r = Report("speakers", dataset="demo")
    r.add("score", False, "mean UAR 20.0 %; needs 30.0 %")
    r.score, r.threshold = 20.0, 30.0
    back = Report.from_json(json.loads(json.dumps(r.to_json())))
    assert back == r and not back.passed and "FAILED: score" in back.text()


def test_stand_in_encoder_is_a_function_of_each_clip():
    frames = np.random.default_rng(0).normal(-40, 20, (5, 16, 187)).astype(np.float32)
    alone = grading.stand_in_encoder(frames[:1])
    together = grading.stand_in_encoder(frames)
    assert together.shape == (5, 6, 256) and np.allclose(alone[0], together[0])


def test_every_assignment_has_a_starter_and_both_solutions():
    for name, a in ASSIGNMENTS.items():
        assert (ROOT / a.starter).is_file(), a.starter
        for kind in ("reference", "naive"):
            assert (ROOT / "assignments" / "solutions" / f"{name}-{kind}.ipynb").is_file()
        starter = (ROOT / a.starter).read_text(encoding="utf-8")
        assert "TODO" in starter and f"def {a.function}(" in starter


def test_grade_list_and_usage_errors(capsys, tmp_path):
    assert main(["grade", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ASSIGNMENTS)
    assert main(["grade", "nope", "x.ipynb"]) == 2
    assert "unknown assignment 'nope'" in capsys.readouterr().err
    assert main(["grade", "speakers", str(tmp_path / "missing.ipynb")]) == 2
    assert "no notebook at" in capsys.readouterr().err
    junk = tmp_path / "junk.ipynb"
    junk.write_text("not json", encoding="utf-8")
    assert main(["grade", "speakers", str(junk)]) == 2
    assert "is not a Jupyter notebook" in capsys.readouterr().err
    assert main(["grade", "speakers"]) == 2
    assert main(["grade", "speakers", str(junk), "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "no TESS audio there" in capsys.readouterr().err
    probe = str(ROOT / "assignments" / "probe.ipynb")
    assert main(["grade", "probe", probe, "--encoder", "nope"]) == 2
    assert "unknown encoder 'nope'; choose from stand-in, whisper-tiny" in capsys.readouterr().err
    assert junk.read_text(encoding="utf-8") == "not json"


def test_real_data_grading_needs_real_crema_and_probes_a_pretrained_encoder(capsys, monkeypatch):
    """corpus-change on real TESS without SER_CREMA_DIR is refused before the notebook runs (it once graded real
    TESS against the synthetic CREMA-D); the probe on real data defaults to the pretrained Whisper tiny.en, whose
    layers its threshold (the logistic regression's score) assumes; the demo corpus keeps the stand-in."""
    monkeypatch.delenv("SER_CREMA_DIR", raising=False)
    starter = str(ROOT / "assignments" / "corpus-change.ipynb")
    assert main(["grade", "corpus-change", starter, "--data-dir", str(ROOT)]) == 2
    assert "corpus-change on real TESS needs real CREMA-D: set SER_CREMA_DIR" in capsys.readouterr().err
    assert grading.default_encoder("/data/tess") == "whisper-tiny" and grading.default_encoder(None) == "stand-in"


@pytest.fixture(scope="module")
def grade_artifacts(tmp_path_factory) -> Path:
    """One artifacts folder for every grading run of this module (demo corpus and features built once)."""
    return tmp_path_factory.mktemp("grade-artifacts")


#: What the naive solution of each assignment must fail on, and words of its reason.
NAIVE = {
    "speakers": ("no test speaker in training or selection", "a test speaker's clips are in training"),
    "probe": ("no test speaker in training or selection", "test-set selection"),
    "corpus-change": ("score", "needs"),
    "faithful": ("faithful", "no better than random"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ASSIGNMENTS))
def test_reference_solution_passes_and_naive_fails(name, grade_artifacts, tmp_path, capsys):
    solutions = ROOT / "assignments" / "solutions"
    report_file = tmp_path / "report.json"
    rc = main(["grade", name, str(solutions / f"{name}-reference.ipynb"), "--artifacts", str(grade_artifacts),
               "--report", str(report_file)])
    out = capsys.readouterr().out
    assert rc == 0, out
    report = json.loads(report_file.read_text(encoding="utf-8"))
    assert report["passed"] and (report["threshold"] is None or report["score"] >= report["threshold"])

    assert main(["grade", name, str(solutions / f"{name}-naive.ipynb"), "--artifacts", str(grade_artifacts)]) == 1
    out = capsys.readouterr().out
    check, reason = NAIVE[name]
    assert f"[FAIL] {check}:" in out and reason in out, out


@pytest.mark.slow
def test_the_untouched_starter_fails_at_its_todo(grade_artifacts, capsys):
    assert main(["grade", "speakers", str(ROOT / "assignments" / "speakers.ipynb"),
                 "--artifacts", str(grade_artifacts)]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] notebook runs" in out and "NotImplementedError" in out


def test_a_grader_that_crashes_writes_a_failing_report(tmp_path, monkeypatch):
    """A grader error after the first checks passed (a missing encoder, a bad CREMA-D folder) is a failed check in
    the written report, never a pass: the report once held only 'reads only its arguments: pass' and graded PASSED."""
    def fit_predict(clips, test_speaker):
        return np.zeros(len(clips), int)

    def broken_grader(fn, ch, report, params):
        raise RuntimeError("no encoder weights here")

    monkeypatch.setitem(grading.ASSIGNMENTS, "speakers", dataclasses.replace(
        grading.ASSIGNMENTS["speakers"], grade=broken_grader))
    path = tmp_path / "report.json"
    with pytest.raises(RuntimeError, match="no encoder weights"):
        grading.hidden_tests("speakers", {"fit_predict": fit_predict}, str(path),
                             {"dataset": "demo", "artifacts_dir": str(tmp_path / "art"), "quick": True})
    report = Report.from_json(json.loads(path.read_text(encoding="utf-8")))
    assert not report.passed and report.checks[-1].name == "grader ran"
    assert "RuntimeError: no encoder weights here" in report.checks[-1].detail


@pytest.mark.slow
def test_a_notebook_whose_kernel_dies_fails_with_the_reason(tmp_path, capsys):
    """A kernel that dies (a segfault in a compiled library, out of memory) is a failed 'notebook runs' check with
    what to do, not a traceback of the grader."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")]  # no kernelspec: python3
    path = tmp_path / "dies.ipynb"
    nbformat.write(nb, str(path))
    assert main(["grade", "speakers", str(path), "--artifacts", str(tmp_path / "art")]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] notebook runs: the notebook's kernel died" in out and "numba issue 10128" in out
