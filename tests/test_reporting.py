"""Tables the model chapters show (per-class scores, confusions, errors, protocols), from hand-made records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import precision_recall_fscore_support

from ser_utils.course import display, plan
from ser_utils.experiments import run_grid
from ser_utils.evaluation import FoldResult, make_record
from ser_utils.labels import EMOTIONS

Y_TRUE = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 3]
Y_PRED = [0, 1, 1, 1, 2, 0, 3, 5, 4, 4, 5, 5, 6, 6, 5]


def record(model="cnn", protocol="random", seed=0, y_pred=Y_PRED) -> dict:
    ids = [f"SPK_w{i}_{EMOTIONS[t]}" for i, t in enumerate(Y_TRUE)]
    fold = FoldResult(protocol, ids, Y_TRUE, list(y_pred), 30, 5, epochs=3,
                      history={"loss": [2.0, 1.0, 0.5], "val_loss": [2.1, 1.2, 0.9]})
    return make_record(model, protocol, seed, [fold], dataset={"name": "demo", "synthetic": True, "n_clips": 15},
                       wall_time=1.5)


def test_per_class_table_matches_scikit_learn():
    table = display.per_class_table(record())
    p, r, f, s = precision_recall_fscore_support(Y_TRUE, Y_PRED, labels=list(range(7)), zero_division=0)
    np.testing.assert_allclose(table["precision"], np.round(100 * p, 1))
    np.testing.assert_allclose(table["recall"], np.round(100 * r, 1))
    np.testing.assert_allclose(table["f1"], np.round(100 * f, 1))
    assert table["support"].tolist() == s.tolist() and list(table.index) == list(EMOTIONS)


def test_top_confusions_and_misclassified():
    top = display.top_confusions(record(), k=2)
    assert top.iloc[0][["true", "predicted", "clips"]].tolist() == ["happy", "pleasant_surprise", 2]
    assert len(top) == 2
    errors = display.misclassified(record())
    assert len(errors) == sum(t != p for t, p in zip(Y_TRUE, Y_PRED, strict=True))
    assert set(errors["true"]) == {"angry", "fear", "happy"}


def test_pick_error_takes_the_most_frequent_confusion():
    rec = record()
    manifest = pd.DataFrame({"clip_id": rec["folds"][0]["predictions"]["ids"], "speaker": "SPK",
                             "word": [f"w{i}" for i in range(15)], "duration": 1.0, "path": "x.wav",
                             "emotion": [EMOTIONS[t] for t in Y_TRUE], "status": "ok"})
    err = display.pick_error(rec, manifest)
    assert (err["true"], err["predicted"]) == ("happy", "pleasant_surprise")
    assert display.pick_error(record(y_pred=Y_TRUE), manifest) is None


def test_protocol_table_puts_the_paper_only_beside_random_rows():
    recs = [record("cnn", "random", 0), record("cnn", "random", 1, Y_TRUE), record("cnn", "speaker", 0)]
    table = display.protocol_table(recs).set_index("protocol")
    assert table.loc["random", "paper_accuracy"] == pytest.approx(95.37)
    assert pd.isna(table.loc["speaker", "paper_accuracy"])
    assert table.loc["random", "seeds"] == 2
    acc0 = 100 * np.mean(np.array(Y_TRUE) == np.array(Y_PRED))
    assert table.loc["random", "accuracy_mean"] == pytest.approx((acc0 + 100) / 2, abs=0.01)
    folds = display.fold_table(recs)
    assert len(folds) == 3 and set(folds.columns) >= {"fold", "epochs", "best_epoch", "accuracy", "uar"}


def test_run_protocols_reuses_done_records(quick_chapter):
    done = record("cnn", "random", 0)
    out = run_grid(quick_chapter, ["cnn"], ["random"], [0], done=[done], progress=False)
    assert out == [done]
    assert plan.default_protocols(quick_chapter) == ["random", "speaker"]
    assert plan.default_protocols(quick_chapter, ["word"]) == ["word"]
    assert plan.default_protocols(quick_chapter, deep=True) == ["random", "speaker"]  # quick: cheap


def test_default_protocols_of_a_real_run_quote_the_expensive_ones():
    from types import SimpleNamespace

    real = SimpleNamespace(mode=SimpleNamespace(quick=False), protocol="random")
    assert plan.default_protocols(real) == ["random", "speaker"]
    assert plan.default_protocols(real, deep=True) == ["random"]
    assert plan.default_protocols(real, full=True) == plan.default_protocols(real, full=True, deep=True) \
        == ["random", "speaker", "word"]


def test_reference_stand_ins_quote_only_runs_on_the_same_data(tmp_path):
    import json

    from ser_utils.course.comparison import reference_stand_ins

    real = {"name": "tess", "synthetic": False, "n_clips": 15, "partial": True, "quick": False}

    def on(rec, dataset, features="abc"):
        return {**rec, "dataset": dataset, "config": {"features": features}}

    ours = [on(record("cnn", "random"), real), on(record("logreg", "speaker"), real)]
    refs = {"lstm__speaker__seed0": on(record("lstm", "speaker"), real),
            "cnn__random__seed0": on(record("cnn", "random"), real),  # this run has it: not quoted
            "hybrid__speaker__seed0": on(record("hybrid", "speaker"), {**real, "n_clips": 2800}),  # other data
            "hybrid__word__seed0": on(record("hybrid", "word"), real, features="other"),  # other features
            "lstm__speaker__seed1": on(record("lstm", "speaker", seed=1), real)}  # a seed not asked for
    for name, rec in refs.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(rec))
    got = reference_stand_ins(ours, protocols=["random", "speaker", "word"], seeds=[0], folder=tmp_path)
    assert [(r["model"], r["protocol"], r["seed"], r["quoted"]) for r in got] == [("lstm", "speaker", 0, True)]
    demo = [record("cnn", "random")]  # the demo corpus: nothing is quoted
    assert reference_stand_ins(demo, protocols=["speaker"], seeds=[0], folder=tmp_path) == []
