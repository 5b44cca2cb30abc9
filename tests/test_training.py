"""Training helper, fold runner, saved bundles and results files of the Keras models.

Most tests use a tiny synthetic :class:`FeatureSet` (84 clips whose class
shows in their feature means) so they run in seconds; one runs the real
pipeline on the quick demo chapter to check the results JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

from ser_utils.evaluation import METRICS, FoldResult, compute_metrics
from ser_utils.features import FeatureConfig, FeatureSet
from ser_utils.keras_io import load_model_bundle, prepare_inputs
from ser_utils.registry import ModelSpec
from ser_utils.standardise import standardise_fold, standardise_per_speaker
from ser_utils.labels import EMOTIONS
from ser_utils.splits import Split
from ser_utils.training import (
    balanced_class_weights,
    compile_model,
    fit_model,
    keras_fold,
    keras_options,
)

from .helpers import fold_job

N_FRAMES = 8


def toy_features(n_per_class: int = 6, seed: int = 0) -> FeatureSet:
    """Two speakers x 7 emotions x ``n_per_class`` clips; emotion ``c`` raises features 10c..10c+9."""
    rng = np.random.default_rng(seed)
    rows, vecs, frames = [], [], []
    for spk, offset in (("SPKA", 0.0), ("SPKB", 3.0)):
        for c, emo in enumerate(EMOTIONS):
            for i in range(n_per_class):
                f = rng.normal(offset, 1.0, size=(N_FRAMES, 187)).astype(np.float32)
                f[:, 10 * c : 10 * c + 10] += 2.5
                frames.append(f)
                vecs.append(f.mean(axis=0))
                rows.append({"clip_id": f"{spk}_w{i}_{emo}", "speaker": spk, "word": f"w{i}", "emotion": emo})
    meta = pd.DataFrame(rows)
    n = len(meta)
    return FeatureSet(
        ids=meta["clip_id"].to_numpy(), vectors=np.array(vecs), frames=np.array(frames),
        images=np.zeros((n, 4, 4), np.uint8), n_frames_raw=np.full(n, N_FRAMES), meta=meta,
        failed=pd.DataFrame(columns=["clip_id", "reason"]), config=FeatureConfig(n_frames=N_FRAMES),
    )


def toy_split(fs: FeatureSet, protocol: str = "random") -> Split:
    """Random: words w0-w3 train, w4 val, w5 test. Speaker: SPKA (w0-w4 train, w5 val) -> SPKB."""
    meta = fs.meta
    if protocol == "speaker":
        a = meta[meta["speaker"] == "SPKA"]
        pick = lambda words: tuple(a[a["word"].isin(words)]["clip_id"])  # noqa: E731
        test = tuple(meta[meta["speaker"] == "SPKB"]["clip_id"])
        return Split("speaker", "SPKA->SPKB", 0, pick(["w0", "w1", "w2", "w3", "w4"]), pick(["w5"]), test)
    pick = lambda words: tuple(meta[meta["word"].isin(words)]["clip_id"])  # noqa: E731
    return Split("random", "random", 0, pick(["w0", "w1", "w2", "w3"]), pick(["w4"]), pick(["w5"]))


@pytest.fixture(scope="module")
def toy():
    return toy_features()


# --- variants -----------------------------------------------------------------------------


def test_variant_names_round_trip():
    assert keras_options(ModelSpec.parse("hybrid")) == {"input": "vector", "spknorm": False, "class_weights": False,
                                                        "augment": False}
    assert keras_options(ModelSpec.parse("cnn-frames-cw")) == {"input": "frames", "spknorm": False,
                                                               "class_weights": True, "augment": False}
    assert ModelSpec("hybrid").with_options({"input": "frames", "spknorm": True}).name == "hybrid-frames-spknorm"
    assert ModelSpec("lstm").with_options({"input": "vector"}).name == "lstm"
    for name in ("cnn", "lstm-frames", "hybrid-frames-spknorm", "hybrid-spknorm-cw", "hybrid-frames-spknorm-aug"):
        spec = ModelSpec.parse(name)
        assert ModelSpec(spec.base).with_options(keras_options(spec)).name == name


@pytest.mark.parametrize("bad", ["hybrid-foo", "cnn-frames-xyz", "cnn-pretrained"])
def test_bad_variant_is_rejected(bad):
    with pytest.raises(ValueError):
        ModelSpec.parse(bad)


def test_unknown_option_is_rejected():
    with pytest.raises(ValueError, match="unknown option"):
        keras_options(ModelSpec("cnn"), {"pretrained": "x"})


# --- standardisation ----------------------------------------------------------------------


def test_standardiser_sees_training_rows_only(toy):
    split = toy_split(toy)
    train = toy.index(split.train)
    x1, recipe1 = standardise_fold(toy, train)
    changed = toy_features()
    changed.vectors[toy.index(split.test)] += 100.0  # wildly different test clips
    x2, recipe2 = standardise_fold(changed, train)
    np.testing.assert_allclose(recipe1["mean"], recipe2["mean"])
    np.testing.assert_allclose(x1[train], x2[train])
    assert x1.shape == (len(toy), 187, 1)
    np.testing.assert_allclose(x1[train, :, 0].mean(axis=0), 0.0, atol=1e-4)


def test_spknorm_standardises_each_speaker(toy):
    x, recipe = standardise_fold(toy, toy.index(toy_split(toy, "speaker").train), kind="frames", spknorm=True)
    assert recipe["kind"] == "spknorm" and list(recipe["speaker_stats"]) == ["SPKA"]
    expected = standardise_per_speaker(toy.frames, toy.meta["speaker"].to_numpy())
    np.testing.assert_allclose(x, expected, atol=1e-5)


def test_spknorm_recipe_reproduces_the_training_speakers(toy):
    from ser_utils.standardise import apply_recipe

    train = toy.index(toy_split(toy, "speaker").train)
    x, recipe = standardise_fold(toy, train, kind="frames", spknorm=True)
    speakers = toy.meta["speaker"].to_numpy()
    np.testing.assert_allclose(apply_recipe(toy.frames[train], recipe, speakers[train], kind="frames"),
                               x[train], atol=1e-5)


def test_fold_rows_caps_training_clips_in_quick_mode(toy, monkeypatch):
    import ser_utils.training as training_module

    split = toy_split(toy)
    train, val, test = training_module.fold_rows(toy, split)
    assert len(train) == len(split.train) and not set(train) & set(test) and not set(val) & set(test)
    monkeypatch.setattr(training_module, "QUICK_MAX_TRAIN", 5)
    small, _, _ = training_module.fold_rows(toy, split, quick=True, seed=1)
    assert len(small) == 5 and set(small) <= set(train)
    np.testing.assert_array_equal(small, training_module.fold_rows(toy, split, quick=True, seed=1)[0])


def test_balanced_class_weights():
    w = balanced_class_weights(np.array([0, 0, 0, 1]))
    assert w == {0: pytest.approx(4 / 6), 1: pytest.approx(2.0)}


# --- augmentation -------------------------------------------------------------------------


def test_warp_keeps_features_consistent():
    from scipy.fft import dct

    from ser_utils.features import FEATURE_GROUPS, extract_from_audio
    from ser_utils.training import warp_frequency

    t = np.arange(22050) / 22050
    audio = (0.1 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype("float32")
    frames = extract_from_audio(audio).frames
    np.testing.assert_array_equal(warp_frequency(frames, 1.0), frames)
    up = warp_frequency(frames, 1.12)
    mel, mfcc = FEATURE_GROUPS["mel"], FEATURE_GROUPS["mfcc"]
    # MFCCs are recomputed from the warped bands exactly as librosa derives them from log-mel
    np.testing.assert_allclose(dct(up[:, mel], type=2, norm="ortho", axis=-1)[:, :40], up[:, mfcc], atol=1e-2)
    np.testing.assert_allclose(dct(frames[:, mel], type=2, norm="ortho", axis=-1)[:, :40], frames[:, mfcc], atol=1e-2)
    # energy moves to higher bands: the spectral centroid over mel bands rises
    def centroid(f):
        power = np.exp(f[:, mel] / 10)
        return (power * np.arange(128)).sum(1) / power.sum(1)

    assert centroid(up).mean() > centroid(frames).mean()
    np.testing.assert_array_equal(up[:, FEATURE_GROUPS["contrast"]], frames[:, FEATURE_GROUPS["contrast"]])
    # a one-semitone warp rotates the chroma by one pitch class
    semitone = warp_frequency(frames, 2 ** (1 / 12))
    np.testing.assert_allclose(semitone[:, 1:12], frames[:, 0:11], atol=1e-5)


def test_warped_copies_are_seeded_and_indexed(toy):
    from ser_utils.training import warped_copies

    a, rows = warped_copies(toy.vectors[:5], 3, seed=1)
    b, _ = warped_copies(toy.vectors[:5], 3, seed=1)
    assert a.shape == (15, 187) and rows.tolist() == [0, 1, 2, 3, 4] * 3
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[:5], toy.vectors[:5])


def test_augment_option_adds_training_inputs(toy):
    res = keras_fold(toy, toy_split(toy, "speaker"), fold_job("cnn-spknorm-aug", seed=0, epochs=1, progress=False))
    assert res.n_train == 35 and res.extra["n_train_inputs"] == 35 * 5
    assert res.extra["hyperparameters"]["augment_copies"] == 4


# --- training -----------------------------------------------------------------------------


def test_tiny_training_run_lowers_the_loss(toy):
    from ser_utils.models import build_keras_model
    from ser_utils.training import set_seed

    set_seed(0)
    x, _ = standardise_fold(toy, np.arange(len(toy)))
    model = build_keras_model("cnn", x.shape[1:])
    compile_model(model)
    history = fit_model(model, x, toy.labels, epochs=6, patience=10)
    assert len(history["loss"]) == 6
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    assert 1 <= history["best_epoch"] <= 6


def test_early_stopping_waits_for_the_warmup(toy):
    from ser_utils.models import build_keras_model
    from ser_utils.training import WARMUP_EPOCHS, set_seed

    set_seed(0)
    split = toy_split(toy)
    x, _ = standardise_fold(toy, toy.index(split.train))
    model = build_keras_model("cnn", x.shape[1:])
    compile_model(model)
    tr, va = toy.index(split.train), toy.index(split.val)
    history = fit_model(model, x[tr], toy.labels[tr], x[va], toy.labels[va], epochs=30, patience=2)
    assert history["best_epoch"] > WARMUP_EPOCHS
    assert WARMUP_EPOCHS + 1 <= len(history["loss"]) <= history["best_epoch"] + 2


def test_two_seeded_runs_are_identical(toy, tmp_path):
    split = toy_split(toy)
    runs = [keras_fold(toy, split, fold_job("hybrid", seed=3, epochs=3, progress=False)) for _ in range(2)]
    assert runs[0].y_pred == runs[1].y_pred
    assert runs[0].history == runs[1].history
    assert compute_metrics(runs[0].y_true, runs[0].y_pred) == compute_metrics(runs[1].y_true, runs[1].y_pred)


def test_keras_fold_result_and_saved_bundle(toy, tmp_path):
    split = toy_split(toy)
    res = keras_fold(toy, split, fold_job("cnn", seed=0, epochs=12, options={"patience": 12}, model_dir=tmp_path,
                     progress=False))
    assert isinstance(res, FoldResult)
    assert res.n_train == 7 * 2 * 4 and res.n_val == 14 and len(res.test_ids) == 14
    assert res.epochs == len(res.history["loss"]) == 12
    assert res.extra["n_params"] > 0
    # the settings it trained with are recorded, the patience option included
    assert res.extra["hyperparameters"] == {
        "optimizer": "adam", "learning_rate": 1e-3, "batch_size": 32, "epoch_cap": 12, "patience": 12,
        "min_delta": 0.0, "warmup_epochs": 5, "lr_patience": 4, "augment_copies": 0, "max_train_clips": None}
    assert compute_metrics(res.y_true, res.y_pred)["accuracy"] > 2 / 7  # learnt something: twice chance
    # the model and its sidecar
    path = tmp_path / "cnn__random__random__seed0.keras"
    assert res.extra["model_path"] == str(path) and path.exists()
    model, side = load_model_bundle(path.with_suffix(".json"))
    assert side["model"] == "cnn" and side["input"] == "vector" and side["emotions"] == list(EMOTIONS)
    assert side["feature_config"]["n_frames"] == N_FRAMES and side["standardizer"]["kind"] == "train"
    assert (side["protocol"], side["fold"], side["seed"]) == ("random", "random", 0)
    # a reloaded model fed raw features through prepare_inputs predicts what the fold predicted
    test = toy.index(split.test)
    probs = model.predict(prepare_inputs(toy.vectors[test], side), verbose=0)
    assert probs.argmax(axis=1).tolist() == res.y_pred
    assert prepare_inputs(toy.vectors[test[0]], side).shape == (1, 187, 1)


def test_spknorm_frames_bundle_prepares_like_training(toy, tmp_path):
    split = toy_split(toy, "speaker")
    res = keras_fold(toy, split, fold_job("hybrid-frames-spknorm", seed=0, epochs=2, model_dir=tmp_path, progress=False))
    model, side = load_model_bundle(res.extra["model_path"])
    assert side["model"] == "hybrid-frames-spknorm" and side["input_shape"] == [N_FRAMES, 187]
    assert side["train_speakers"] == ["SPKA"]
    test = toy.index(split.test)
    # with the test speaker's own clips as reference, preparation matches training exactly
    x = prepare_inputs(toy.frames[test], side, reference=toy.frames[test])
    assert model.predict(x, verbose=0).argmax(axis=1).tolist() == res.y_pred
    with pytest.warns(UserWarning, match="per-speaker"):
        prepare_inputs(toy.frames[test[0]], side)
    with pytest.raises(ValueError, match="frames"):
        prepare_inputs(toy.frames[test][:, :4], side)


# --- metrics and the results file ---------------------------------------------------------


@pytest.mark.slow
def test_run_without_saving_writes_no_results_and_no_model(quick_chapter):
    from ser_utils.experiments import run_experiment

    art = quick_chapter.artifacts_dir

    def written():  # every file under models/ and results/, with its modification time
        return {p: p.stat().st_mtime_ns for d in ("models", "results") for p in (art / d).rglob("*")}

    before = written()
    rec = run_experiment(quick_chapter, "lstm", "random", 0, epochs=1, save=False, progress=False)
    assert written() == before
    assert "_path" not in rec and len(rec["folds"]) == 1
    assert all("model_path" not in f for f in rec["folds"])
    # The same run saved writes both (lstm: no other test of this session expects it untrained).
    saved = run_experiment(quick_chapter, "lstm", "random", 0, epochs=1, progress=False)
    assert Path(saved["_path"]).exists() and Path(saved["folds"][0]["model_path"]).exists()


def test_metrics_equal_scikit_learn_on_fixed_predictions():
    y_true = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 6]
    y_pred = [0, 1, 1, 1, 2, 0, 3, 3, 4, 6, 5, 5, 6, 6, 2]
    m = compute_metrics(y_true, y_pred)
    labels = list(range(7))
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred)) == pytest.approx(11 / 15)
    assert m["precision_macro"] == pytest.approx(precision_score(y_true, y_pred, average="macro", labels=labels))
    assert m["recall_macro"] == m["uar"] == pytest.approx(recall_score(y_true, y_pred, average="macro"))
    assert m["f1_macro"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert m["f1_weighted"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
    fold = FoldResult("random", [str(i) for i in range(15)], y_true, y_pred, 10, 2).as_dict()
    assert fold["confusion"] == confusion_matrix(y_true, y_pred, labels=labels).tolist()


@pytest.mark.slow
def test_results_json_schema(quick_chapter):
    from ser_utils.experiments import run_experiment

    rec = run_experiment(quick_chapter, "cnn", "speaker", 0, progress=False)
    path = quick_chapter.artifacts_dir / "results" / "cnn__speaker__seed0.json"
    assert rec["_path"] == str(path)
    saved = json.loads(path.read_text())
    for key in ("schema", "model", "protocol", "seed", "dataset", "metrics", "confusion", "folds", "n_params",
                "config", "wall_time_s", "versions", "git_commit", "created"):
        assert key in saved, key
    assert (saved["model"], saved["protocol"], saved["seed"]) == ("cnn", "speaker", 0)
    assert saved["dataset"]["name"] == "demo" and saved["dataset"]["synthetic"] is True
    assert saved["dataset"]["n_speakers"] == quick_chapter.manifest["speaker"].nunique()
    assert set(METRICS) <= set(saved["metrics"])
    assert np.array(saved["confusion"]).shape == (7, 7)
    assert saved["n_params"] > 0
    assert {"tensorflow-cpu", "tensorflow"} & set(saved["versions"]) and "keras" in saved["versions"]
    assert sorted(f["fold"] for f in saved["folds"]) == ["SYNA->SYNB", "SYNB->SYNA"]
    total_test = 0
    for fold in saved["folds"]:
        assert fold["epochs"] == 2 and len(fold["history"]["loss"]) == 2 and "val_loss" in fold["history"]
        assert fold["n_train"] > 0 and fold["n_val"] > 0 and fold["n_test"] == len(fold["predictions"]["ids"])
        assert set(fold["report"]) >= set(EMOTIONS)
        assert fold["metrics"] == compute_metrics(fold["predictions"]["y_true"], fold["predictions"]["y_pred"])
        total_test += fold["n_test"]
    assert np.sum(saved["confusion"]) == total_test


def test_best_epoch_names_the_weights_early_stopping_restored(toy):
    """With MIN_DELTA, the restored epoch is the last *significant* improvement, not the val-loss argmin."""
    from ser_utils.models import build_keras_model
    from ser_utils.training import MIN_DELTA, WARMUP_EPOCHS, set_seed

    set_seed(0)
    split = toy_split(toy)
    x, _ = standardise_fold(toy, toy.index(split.train))
    tr, va = toy.index(split.train), toy.index(split.val)
    model = build_keras_model("cnn", x.shape[1:])
    compile_model(model)
    history = fit_model(model, x[tr], toy.labels[tr], x[va], toy.labels[va], epochs=25, patience=3)
    losses = history["val_loss"]
    best, expected = float("inf"), None
    for epoch, loss in enumerate(losses[WARMUP_EPOCHS:], WARMUP_EPOCHS + 1):  # Keras's rule, written out
        if loss < best - MIN_DELTA:
            best, expected = loss, epoch
    assert history["best_epoch"] == expected
    restored = model.evaluate(x[va], toy.labels[va], verbose=0)[0]
    assert restored == pytest.approx(losses[expected - 1], rel=1e-3, abs=1e-5)


@pytest.mark.slow
def test_model_trained_in_the_chapter_is_recorded_not_trained_again(quick_chapter):
    """run_experiment(trained=...) gives the record a full run gives: the same weights, predictions, history."""
    from ser_utils.experiments import run_experiment
    from ser_utils.models import build_keras_model
    from ser_utils.training import QUICK_EPOCHS, compile_model, fit_model, fold_rows, set_seed

    ch, fs = quick_chapter, quick_chapter.features
    first = ch.splits("speaker", 0)[0]
    train, val, test = fold_rows(fs, first, seed=0, quick=True)
    x, _ = standardise_fold(fs, train, kind="vector")
    set_seed(0)
    net = build_keras_model("cnn", x.shape[1:])
    compile_model(net)
    history = fit_model(net, x[train], fs.labels[train], x[val], fs.labels[val], epochs=QUICK_EPOCHS)

    full = run_experiment(ch, "cnn", "speaker", 0, save=False, progress=False)
    reused = run_experiment(ch, "cnn", "speaker", 0, save=False, progress=False, trained=(net, history, 1.5))
    for a, b in zip(full["folds"], reused["folds"], strict=True):
        assert a["fold"] == b["fold"] and a["predictions"] == b["predictions"]
        assert a["history"] == b["history"] and a["best_epoch"] == b["best_epoch"]
        assert a["hyperparameters"] == b["hyperparameters"]
    assert reused["folds"][0]["train_time_s"] == 1.5
    with pytest.raises(ValueError, match="plain"):
        run_experiment(ch, "cnn-frames", "speaker", 0, save=False, trained=(net, history, 1.5))
