"""``transfer MODEL --train DIR... --test DIR -o OUT``: any registry model across corpus folders, bad input refused."""

from __future__ import annotations

import json

import pytest

from ser_utils.cli import main


@pytest.fixture(scope="module")
def crema_dir(tmp_path_factory):
    from ser_utils.synth import write_demo_crema

    return write_demo_crema(tmp_path_factory.mktemp("crema") / "crema", n_actors=4, n_sentences=2)


def test_logreg_trains_on_tess_scores_crema_over_the_shared_emotions(demo_dir, crema_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["transfer", "logreg", "--train", str(demo_dir), "--test", str(crema_dir), "-o", str(out),
                 "--artifacts", str(tmp_path / "art"), "--quick"]) == 0
    rec = json.loads((out / "logreg__cross-tess-to-crema__seed0.json").read_text())
    d = rec["dataset"]
    assert d["synthetic"] and d["train"][0]["corpus"] == "tess" and d["test"]["corpus"] == "crema-d"
    assert d["emotions"] == ["angry", "disgust", "fear", "happy", "neutral", "sad"]  # TESS's ps is not scored
    assert d["test"]["n_speakers"] == 4 and d["test"]["n_clips"] == len(rec["folds"][0]["predictions"]["ids"])
    assert set(rec["per_class_recall"]) == set(d["emotions"]) and "uar" in rec["metrics"]
    assert "DEMO DATA" in capsys.readouterr().out


def test_two_training_corpora_and_a_keras_model(demo_dir, crema_dir, tmp_path):
    from ser_utils.cross_corpus import CrossCorpusRun, cross_corpus_records
    from ser_utils.run_context import RunMode

    run = CrossCorpusRun("cnn", (demo_dir, crema_dir), crema_dir, tmp_path / "out", tmp_path / "art",
                         mode=RunMode(quick=True))
    with pytest.raises(Exception, match="more than one folder"):  # a test folder that is also trained on
        cross_corpus_records(run, progress=False)
    from ser_utils.synth import write_demo_crema

    other = write_demo_crema(tmp_path / "crema2", n_actors=3, n_sentences=2, seed=1)
    run = CrossCorpusRun("cnn", (demo_dir,), other, tmp_path / "out", tmp_path / "art", mode=RunMode(quick=True))
    (rec,) = cross_corpus_records(run, progress=False)
    assert rec["protocol"] == "cross-tess-to-crema" and rec["folds"][0]["n_params"] > 0


@pytest.mark.parametrize("argv, message", [
    (["transfer", "logreg", "--train", "{empty}", "--test", "{crema}", "-o", "{out}"], "no audio file in"),
    (["transfer", "logreg", "--train", "{demo}", "--test", "{missing}", "-o", "{out}"], "is not a folder"),
    (["transfer", "logreg", "--train", "{demo}", "--test", "{crema}"], "needs --train"),
    (["transfer", "gpt", "--train", "{demo}", "--test", "{crema}", "-o", "{out}"], "unknown model 'gpt'"),
    (["transfer", "logreg", "--train", "{demo}", "--test", "{crema}", "-o", "{out}", "--corpus", "ravdess"],
     "no usable RAVDESS"),
])
def test_bad_input_is_one_clear_line_and_nothing_is_written(argv, message, demo_dir, crema_dir, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.wav").write_bytes(b"RIFF")
    paths = {"empty": empty, "crema": crema_dir, "demo": demo_dir, "missing": tmp_path / "nope", "out": tmp_path / "out"}
    assert main([a.format(**paths) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert not (tmp_path / "out").exists()


def test_corpora_without_a_shared_emotion_are_refused(tmp_path, monkeypatch):
    from ser_utils import cross_corpus
    from ser_utils.errors import UserError

    monkeypatch.setattr(cross_corpus, "shared_emotions", lambda *c: ())
    run = cross_corpus.CrossCorpusRun("logreg", (tmp_path,), tmp_path, tmp_path / "out", tmp_path / "art",
                                      corpus="tess")
    with pytest.raises(UserError, match="no emotion in common"):
        cross_corpus.cross_corpus_records(run, progress=False)
    assert not (tmp_path / "out").exists()


# --- train MODEL --data-dir DIR --protocol actors: leave-actors-out within one many-speaker corpus -----------


def test_train_protocol_actors_leaves_each_actor_out_once(crema_dir, tmp_path, capsys):
    art = tmp_path / "art"
    assert main(["train", "logreg", "--data-dir", str(crema_dir), "--protocol", "actors", "--artifacts", str(art),
                 "--quick"]) == 0
    rec = json.loads((art / "results" / "logreg__actor-loo__seed0.json").read_text())
    d = rec["dataset"]
    assert d["synthetic"] and d["name"] == "demo-crema-d" and d["n_speakers"] == 4 and len(d["actors"]) == 4
    tested = [f["fold"] for f in rec["folds"]]
    assert sorted(tested) == [f"test {a}" for a in d["actors"]]  # every actor is the test set exactly once
    ids = [i for f in rec["folds"] for i in f["predictions"]["ids"]]
    assert len(ids) == len(set(ids)) == d["n_clips"]
    assert set(rec["per_class_recall"]) == set(d["emotions"]) and len(d["emotions"]) == 6
    out = capsys.readouterr().out
    assert "DEMO DATA" in out and "actor-loo" in out


def test_train_protocol_actors_kfold(crema_dir, tmp_path):
    from ser_utils.cross_corpus import ActorFoldsRun, actor_fold_records
    from ser_utils.run_context import RunMode

    run = ActorFoldsRun("logreg", crema_dir, tmp_path / "art", seeds=(0, 1), n_folds=2, mode=RunMode(quick=True))
    recs = actor_fold_records(run, progress=False)
    assert [r["protocol"] for r in recs] == ["actor-kfold"] * 2 and all(len(r["folds"]) == 2 for r in recs)


@pytest.mark.parametrize("argv, message", [
    (["train", "logreg", "--data-dir", "{demo}", "--protocol", "actors"], "at least 3 speakers"),
    (["train", "logreg", "--data-dir", "{crema}", "--protocol", "actors", "--folds", "1"], "--folds must be"),
    (["train", "logreg", "--data-dir", "{crema}", "--protocol", "actors", "--dataset", "tess"], "--dataset applies"),
    (["train", "logreg", "--protocol", "speaker", "--folds", "3"], "apply to --protocol actors"),
    (["train", "logreg", "--data-dir", "{missing}", "--protocol", "actors"], "no CREMA-D audio"),
])
def test_train_protocol_actors_bad_input(argv, message, demo_dir, crema_dir, tmp_path, capsys):
    paths = {"crema": crema_dir, "demo": demo_dir, "missing": tmp_path / "nope"}
    art = tmp_path / "art"
    assert main([a.format(**paths) for a in argv] + ["--artifacts", str(art), "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert not (art / "results").exists()
