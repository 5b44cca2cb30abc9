"""Chapter 9's pieces: the synthetic CREMA-D corpus, finding CREMA-D, eGeMAPS, and the transfer command's options.

Everything runs on tiny synthetic corpora; the real CREMA-D subset is never needed.
"""

from __future__ import annotations

import pandas as pd
import pytest

from ser_utils.data import build_manifest, detect_corpus, usable
from ser_utils.errors import UserError
from ser_utils.registry import ModelSpec
from ser_utils.run_context import resolve_crema
from ser_utils.synth import ensure_demo_crema, is_demo_corpus, write_demo_crema
from ser_utils.transfer import view_name

from .helpers import tone, write_wav


def test_demo_crema_has_crema_d_names_actors_and_emotions(tmp_path):
    root = write_demo_crema(tmp_path / "c", n_actors=3, n_sentences=1)
    m = build_manifest(root, corpus="crema-d", progress=False)
    ok = usable(m)
    assert len(ok) == len(m) == 3 * 1 * 6
    assert sorted(ok["speaker"].unique()) == ["9001", "9002", "9003"] and ok["word"].unique().tolist() == ["IEO"]
    assert set(ok["emotion"]) == {"angry", "disgust", "fear", "happy", "neutral", "sad"}
    assert set(ok["sample_rate"]) == {16000}
    assert detect_corpus(root).name == "crema-d" and is_demo_corpus(root)
    (root / "demo_corpus.json").unlink()  # without its marker, the actor ids still give it away
    assert is_demo_corpus(root)


def test_demo_crema_is_deterministic_and_not_rewritten(tmp_path):
    a = write_demo_crema(tmp_path / "a", n_actors=3, n_sentences=1, seed=0)
    b = write_demo_crema(tmp_path / "b", n_actors=3, n_sentences=1, seed=0)
    name = "AudioWAV/9002_IEO_SAD_XX.wav"
    assert (a / name).read_bytes() == (b / name).read_bytes()
    mtime = (a / name).stat().st_mtime_ns
    ensure_demo_crema(a, n_actors=3, n_sentences=1)
    assert (a / name).stat().st_mtime_ns == mtime
    ensure_demo_crema(a, n_actors=4, n_sentences=1)  # other parameters: rewritten, no stale clip
    assert len(list((a / "AudioWAV").glob("*.wav"))) == 4 * 6


def test_crema_is_found_by_parameter_then_environment_else_synthetic(tmp_path, monkeypatch):
    real = tmp_path / "crema"
    write_wav(real / "AudioWAV" / "1001_DFA_ANG_XX.wav", tone(0.3, 16000), 16000)
    monkeypatch.delenv("SER_CREMA_DIR", raising=False)
    found = resolve_crema(real, tmp_path / "art")
    assert found.path == real.resolve() and not found.synthetic
    monkeypatch.setenv("SER_CREMA_DIR", str(real))
    assert resolve_crema(None, tmp_path / "art").path == real.resolve()
    with pytest.raises(UserError, match="CheyneyComputerScience"):
        resolve_crema(tmp_path / "empty", tmp_path / "art")
    monkeypatch.delenv("SER_CREMA_DIR")
    demo = resolve_crema(None, tmp_path / "art", quick=True)
    assert demo.synthetic and demo.path == (tmp_path / "art" / "demo_crema").resolve()


def test_feature_views_are_baseline_model_names():
    assert view_name("logreg-spknorm", "egemaps") == "logreg-egemaps-spknorm"
    assert view_name("logreg", "vector") == "logreg"
    assert ModelSpec.parse("logreg-prosody").input == "prosody"
    with pytest.raises(ValueError):
        ModelSpec("cnn", input="egemaps")


def test_egemaps_on_tiny_clips_reports_a_bad_one(tmp_path):
    pytest.importorskip("opensmile")
    from ser_utils.egemaps import N_EGEMAPS, ensure_egemaps

    paths = [write_wav(tmp_path / f"c{i}.wav", tone(0.5, 16000, 150 + 60 * i), 16000) for i in range(2)]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEnot audio")
    manifest = pd.DataFrame({"clip_id": ["c0", "c1", "bad"], "path": [str(p) for p in paths] + [str(bad)],
                             "status": "ok"})
    table = ensure_egemaps(manifest, tmp_path / "art", jobs=1, progress=False)
    assert table.shape == (3, N_EGEMAPS) and table.loc[["c0", "c1"]].notna().all().all()
    assert table.loc["bad"].isna().all() and list(table.attrs["failed"]) == ["bad"]
    again = ensure_egemaps(manifest, tmp_path / "art", jobs=1, progress=False)  # from the cache
    assert again.shape == table.shape and list(again.attrs["failed"]) == ["bad"]


def test_transfer_command_runs_views_and_a_keras_model_and_records_them(tmp_path, capsys):
    from ser_utils.egemaps import available
    from ser_utils.evaluation import load_records
    from ser_utils.cli import main

    from .test_data import make_tess

    crema = write_demo_crema(tmp_path / "crema-demo", n_actors=4, n_sentences=1)
    tess = make_tess(tmp_path / "tess-mini", "flat", words=tuple(f"w{i}" for i in range(10)))
    views = ["vector", "egemaps" if available() else "prosody"]  # prosody alone: tests/test_prosody.py
    assert main(["transfer", "--crema", str(crema), "--tess", str(tess), "--artifacts", str(tmp_path / "art"),
                 "--out", str(tmp_path / "out"), "--jobs", "1", "--quick", "--feature-sets", *views,
                 "--models", "cnn", "--seeds", "0", "--folds", "2"]) == 0
    saved = {(r["model"], r["protocol"]): r for r in load_records(tmp_path / "out")}
    for view in views:
        name = view_name("logreg", view)
        assert {(name, p) for p in ("actor-kfold", "cross-tess-to-crema", "cross-crema-to-tess")} <= set(saved)
    cnn = saved[("cnn", "actor-kfold")]
    assert cnn["dataset"]["corpus"] == "crema-d" and cnn["dataset"]["synthetic"] and cnn["dataset"]["quick"]
    assert len(cnn["folds"]) == 2 and cnn["folds"][0]["classes"] == ["angry", "disgust", "fear", "happy", "neutral", "sad"]
    assert "SYNTHETIC" in cnn["dataset"]["subset"] and "cnn" in capsys.readouterr().out
    assert main(["transfer", "--crema", str(crema), "--tess", str(tess), "--artifacts", str(tmp_path / "art"),
                 "--models", "logreg"]) == 2  # a user error: one line on stderr, exit status 2
    assert "Keras" in capsys.readouterr().err


def test_transfer_module_runs_as_a_command_and_reports_user_errors_in_one_line(tmp_path):
    import os
    import subprocess
    import sys

    from ser_utils.run_context import project_root

    env = {**os.environ, "PYTHONPATH": str(project_root())}
    done = subprocess.run([sys.executable, "-m", "ser_utils", "transfer", "--crema", str(tmp_path), "--tess",
                           str(tmp_path), "--artifacts", str(tmp_path / "art"), "--models", "logreg"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and "Keras" in done.stderr and "Traceback" not in done.stderr


def test_reference_fold_is_quoted_only_for_exactly_the_same_clips():
    from ser_utils.evaluation import FoldResult, make_record
    from ser_utils.splits import Split
    from ser_utils.transfer import reference_fold

    split = Split("actor-loo", "test 1001", 0, ("a", "b", "c"), ("d",), ("x", "y"))
    fold = FoldResult("test 1001", ["x", "y"], [0, 1], [0, 0], n_train=3, n_val=1, epochs=7, classes=[0, 1, 2, 3, 4, 5])
    rec = make_record("cnn", "actor-loo", 0, [fold], dataset={"name": "crema-d"}, wall_time=1.0)
    got = reference_fold([rec], "cnn", split, 0)
    assert (got.fold, got.test_ids, got.y_pred, got.epochs, got.classes) == ("test 1001", ["x", "y"], [0, 0], 7,
                                                                             [0, 1, 2, 3, 4, 5])
    assert reference_fold([rec], "cnn", split, 1) is None  # another seed
    assert reference_fold([rec], "hybrid", split, 0) is None  # another model
    other_train = Split("actor-loo", "test 1001", 0, ("a", "b", "c", "e"), ("d",), ("x", "y"))
    assert reference_fold([rec], "cnn", other_train, 0) is None  # another copy of the corpus
    other_test = Split("actor-loo", "test 1001", 0, ("a", "b", "c"), ("d",), ("x", "z"))
    assert reference_fold([rec], "cnn", other_test, 0) is None
