"""Grad-CAM on tiny hand-built Keras models whose important inputs are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from ser_utils import deletion, gradcam, gradcam_reference  # noqa: E402
from ser_utils.features import FEATURE_GROUPS, N_FEATURES  # noqa: E402

SIGNAL = np.arange(100, 111)  # the only positions the toy models read


def _bump_data(n: int = 40, seed: int = 0, length: int = N_FEATURES):
    """Class 1: noise plus a bump of +2 at SIGNAL; class 0: noise only. Shape (n, length, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.3, size=(n, length, 1)).astype("float32")
    y = np.arange(n) % 2
    x[y == 1, SIGNAL[0] : SIGNAL[-1] + 1, 0] += 2.0
    return x, y


def _toy_model(*, pool: bool = False, sequential: bool = False):
    """conv (identity, ReLU) -> flatten -> dense whose class-1 logit sums the activations at SIGNAL.

    The class-1 logit is ``sum_{t in SIGNAL} relu(x_t) - 11`` and the class-0
    logit is 0, so only SIGNAL matters. With ``pool`` an average pooling
    halves the axis before the conv, so the map must be upsampled back.
    """
    from keras import layers

    stack = [keras.Input((N_FEATURES, 1))]
    if pool:
        stack.append(layers.AveragePooling1D(2))
    stack += [
        layers.Conv1D(1, 3, padding="same", use_bias=False, activation="relu", name="last_conv"),
        layers.Flatten(),
        layers.Dense(2, activation="softmax", name="out"),
    ]
    if sequential:
        model = keras.Sequential(stack)
    else:
        h = stack[0]
        for layer in stack[1:]:
            h = layer(h)
        model = keras.Model(stack[0], h)
    conv = model.get_layer("last_conv")
    conv.set_weights([np.array([0.0, 1.0, 0.0], dtype="float32").reshape(3, 1, 1)])
    steps = conv.output.shape[1]
    w = np.zeros((steps, 2), dtype="float32")
    sig = np.unique(SIGNAL // 2) if pool else SIGNAL
    w[sig, 1] = 1.0
    model.get_layer("out").set_weights([w, np.array([0.0, -float(len(sig))], "float32")])
    return model


@pytest.mark.parametrize("sequential", [False, True])
def test_cam_shape_range_and_peak_on_the_known_signal(sequential):
    model = _toy_model(sequential=sequential)
    x, y = _bump_data()
    cams, probs = gradcam.grad_cam(model, x, class_idx=1)
    assert cams.shape == (len(x), N_FEATURES)
    assert probs.shape == (len(x), 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (cams >= 0).all() and (cams <= 1 + 1e-6).all()
    # Every clip with the bump: the map's maximum lies on the signal positions.
    peaks = cams[y == 1].argmax(axis=1)
    assert np.isin(peaks, SIGNAL).all(), peaks
    # And the signal holds most of the mass on average.
    assert cams[y == 1][:, SIGNAL].mean() > 3 * np.delete(cams[y == 1], SIGNAL, axis=1).mean()


def test_upsampling_maps_pooled_conv_back_to_input_positions():
    model = _toy_model(pool=True)
    x, y = _bump_data()
    raw, _ = gradcam.conv_cam(model, x, class_idx=1)
    assert raw.shape == (len(x), N_FEATURES // 2)
    cams, _ = gradcam.grad_cam(model, x, class_idx=1)
    assert cams.shape == (len(x), N_FEATURES)
    peaks = cams[y == 1].argmax(axis=1)
    assert ((peaks >= SIGNAL[0] - 1) & (peaks <= SIGNAL[-1] + 1)).all(), peaks


def test_default_class_is_the_predicted_one():
    model = _toy_model()
    x, y = _bump_data()
    probs = model.predict(x, verbose=0)
    assert (probs.argmax(axis=1) == y).all()  # the toy model is right on every clip
    cams_pred, _ = gradcam.grad_cam(model, x)
    cams_true, _ = gradcam.grad_cam(model, x, class_idx=y)
    np.testing.assert_allclose(cams_pred, cams_true, atol=1e-6)


def test_frame_input_gives_a_map_over_time():
    from keras import layers

    t, f = 16, 5
    model = keras.Sequential([
        keras.Input((t, f)),
        layers.Conv1D(4, 3, padding="same", activation="relu", name="last_conv"),
        layers.MaxPooling1D(2),
        layers.LSTM(3),
        layers.Dense(7, activation="softmax"),
    ])
    x = np.random.default_rng(0).normal(size=(6, t, f)).astype("float32")
    cams, probs = gradcam.grad_cam(model, x)
    assert cams.shape == (6, t)
    assert (cams >= 0).all()
    np.testing.assert_allclose(probs, model.predict(x, verbose=0), atol=1e-5)


def test_missing_layer_is_a_clear_error():
    from keras import layers

    model = keras.Sequential([keras.Input((10, 1)), layers.Conv1D(2, 3, name="conv"), layers.Flatten(),
                              layers.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match="no layer named 'last_conv'"):
        gradcam.grad_cam(model, np.zeros((1, 10, 1), "float32"))


def test_deletion_curves_favour_a_faithful_map_and_not_a_random_one():
    model = _toy_model()
    x, y = _bump_data(n=20)
    keep = y == 1  # the bump is the evidence for class 1
    x, y = x[keep], y[keep]
    cams, _ = gradcam.grad_cam(model, x, class_idx=y)
    res = deletion.deletion_test(model, x, y, cams, steps=10, n_random=3)
    assert res.fractions[0] == 0 and res.fractions[-1] == 1
    assert res.cam.shape == res.random.shape == res.fractions.shape
    assert res.cam[0] == pytest.approx(res.random[0])  # nothing masked yet: same start
    assert res.cam[0] > 0.9
    # Grad-CAM order removes the bump first: the probability collapses far sooner than at random.
    assert res.area_between > 0.3
    lo, hi = res.area_between_ci()
    assert lo > 0
    # A map that knows nothing is no better than random.
    noise = np.random.default_rng(1).random(cams.shape)
    res_noise = deletion.deletion_test(model, x, y, noise, steps=10, n_random=3)
    assert abs(res_noise.area_between) < 0.15
    assert set(res.summary()) >= {"area_cam", "area_random", "area_between"}


def test_deletion_masks_whole_frames_for_sequence_input():
    from keras import layers

    model = keras.Sequential([keras.Input((8, 3)), layers.Conv1D(2, 3, padding="same", name="last_conv"),
                              layers.GlobalAveragePooling1D(), layers.Dense(7, activation="softmax")])
    x = np.random.default_rng(0).normal(size=(4, 8, 3)).astype("float32")
    cams, _ = gradcam.grad_cam(model, x)
    res = deletion.deletion_test(model, x, np.zeros(4, int), cams, steps=4, n_random=2)
    assert res.per_sample_cam.shape == (4, len(res.fractions))
    # Everything masked: both orders end on the same all-baseline input.
    assert res.cam[-1] == pytest.approx(res.random[-1], abs=1e-6)


def test_group_and_band_importance():
    cams = np.zeros((3, N_FEATURES))
    cams[:, FEATURE_GROUPS["mfcc"]] = 1.0
    cams[:, FEATURE_GROUPS["chroma"]] = 0.5
    groups = gradcam.group_importance(cams)
    assert set(groups) == set(FEATURE_GROUPS)
    assert groups["mfcc"] == pytest.approx(np.ones(3))
    assert groups["mel"] == pytest.approx(np.zeros(3))
    share = gradcam.group_importance(cams, share=True)
    assert sum(v[0] for v in share.values()) == pytest.approx(1.0)
    bands = gradcam.band_importance(cams)
    assert {"group", "band", "importance"} <= set(bands.columns)
    assert bands.loc[bands.group == "mfcc", "importance"].eq(1.0).all()
    assert (bands.loc[bands.group == "mel", "importance"] == 0).all()
    with pytest.raises(ValueError):
        gradcam.group_importance(np.zeros((1, 10)))


def test_class_average_maps():
    cams = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    avg = gradcam.class_average_maps(cams, np.array([0, 0, 2]))
    assert avg.shape == (7, 2)
    np.testing.assert_allclose(avg[0], [0.5, 0.5])
    np.testing.assert_allclose(avg[2], [1.0, 1.0])
    assert np.isnan(avg[1]).all()


def test_upsample_and_normalise():
    up = gradcam.upsample(np.array([[0.0, 1.0]]), 4)
    assert up.shape == (1, 4)
    assert up[0, 0] == pytest.approx(0.0) and up[0, -1] == pytest.approx(1.0)
    assert np.all(np.diff(up[0]) >= 0)
    norm = gradcam.normalise(np.array([[0.0, 2.0], [0.0, 0.0]]))
    np.testing.assert_allclose(norm, [[0.0, 1.0], [0.0, 0.0]])


def test_verdicts_follow_the_interval_and_the_effect_size():
    f = np.linspace(0, 1, 5)

    def result(cam_curves, rand_curves):
        cam_curves, rand_curves = np.asarray(cam_curves, float), np.asarray(rand_curves, float)
        return deletion.DeletionResult(f, cam_curves.mean(0), rand_curves.mean(0), np.zeros(5), len(cam_curves), 1,
                                      cam_curves, rand_curves)

    flat = np.full((4, 5), 0.9)
    drop = np.array([[0.9, 0.1, 0.1, 0.1, 0.1]] * 2 + [[0.9, 0.2, 0.1, 0.1, 0.1]] * 2)
    assert result(drop, flat).verdict == "better than random"
    assert result(flat, drop).verdict == "worse than random"
    noisy = flat + np.array([[0.05], [-0.05], [0.05], [-0.05]])
    assert result(noisy, flat).verdict == "no better than random"
    tiny = flat - np.array([[0.0, 0.01, 0.011, 0.012, 0.0]])
    assert result(tiny, flat).verdict == "barely better than random"
    assert result(drop, flat).summary()["relative_gain"] > 0.5


def test_pick_examples_and_group_table():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.7, 0.3]])
    y = np.array([0, 0, 1, 1])
    picks = gradcam.pick_examples(y, probs, k=1)
    assert picks == {"correct": [0], "wrong": [3]}
    cams = np.zeros((2, N_FEATURES))
    cams[:, FEATURE_GROUPS["mel"]] = 1.0
    table = gradcam.group_table({"m": cams})
    assert set(table["group"]) == set(FEATURE_GROUPS)
    assert table.set_index("group").loc["mel", "share"] == pytest.approx(1.0)


def test_ensure_model_trains_once_then_loads(quick_chapter):
    pytest.importorskip("ser_utils.training")
    first = gradcam_reference.ensure_model(quick_chapter, "cnn", "random", 0)
    assert first.trained_now and first.path.exists() and first.record["model"] == "cnn"
    assert first.x_test.shape[1:] == (N_FEATURES, 1) and len(first.x_test) == len(first.y_test)
    # Standardised with the training statistics: the test clips are near, not exactly at, zero mean.
    assert abs(float(first.x_test.mean())) < 1.0
    again = gradcam_reference.ensure_model(quick_chapter, "cnn", "random", 0)
    assert not again.trained_now
    np.testing.assert_allclose(again.model.predict(again.x_test, verbose=0),
                               first.model.predict(first.x_test, verbose=0), atol=1e-5)
    cams, probs = gradcam.grad_cam(again.model, again.x_test, class_idx=again.y_test)
    assert cams.shape == (len(again.x_test), N_FEATURES) and np.isfinite(cams).all()


def test_case02_03_18_ensure_model_retrains_a_cut_foreign_or_unscored_model(quick_chapter):
    """Issue #24, cases 2, 3 and 18 where chapter 8 and ``gradcam-reference`` meet them (``ensure_model``).

    A ``.keras`` cut short by a kill (13,186 bytes beside the old sidecar: "File not found" on every rerun;
    0 bytes is checked in tests/test_integrity.py without training), a model trained on another corpus (reused with ``trained_now`` false) and a truncated results
    file (a traceback) are each trained again, with a warning where a file was bad, and then load.
    """
    import json
    import warnings

    from ser_utils.evaluation import result_path

    pytest.importorskip("ser_utils.training")
    em = gradcam_reference.ensure_model(quick_chapter, "cnn", "random", 0)
    side = em.path.with_suffix(".json")
    rec_path = result_path(quick_chapter.artifacts_dir, "cnn", "random", 0)
    damages = {
        "cut at 13186 bytes": lambda: em.path.write_bytes(em.path.read_bytes()[:13186]),
        "trained on other data": lambda: side.write_text(json.dumps({**json.loads(side.read_text()),
                                                                     "data_key": "another-corpus"})),
        "truncated results": lambda: rec_path.write_text(rec_path.read_text()[:200]),
    }
    for what, damage in damages.items():
        damage()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            again = gradcam_reference.ensure_model(quick_chapter, "cnn", "random", 0)
        assert again.trained_now, what
        assert again.record["model"] == "cnn" and json.loads(rec_path.read_text())["model"] == "cnn", what
        if what == "truncated results":
            assert any("results file" in str(w.message) for w in caught), what
        assert not gradcam_reference.ensure_model(quick_chapter, "cnn", "random", 0).trained_now, what


# --- the randomised-weights control and the reference run ---------------------------------------------


def test_randomised_copy_redraws_every_weight_and_keeps_last_conv():
    model = _toy_model()
    copy = deletion.randomised_copy(model, seed=3)
    named = lambda m: [layer.name for layer in m.layers if layer.weights]  # noqa: E731 (the input layer is renamed)
    assert named(copy) == named(model) == ["last_conv", "out"]
    assert copy.get_layer("last_conv") is not model.get_layer("last_conv")
    kernel_old, kernel_new = model.get_layer("last_conv").get_weights()[0], copy.get_layer("last_conv").get_weights()[0]
    assert not np.allclose(kernel_old, kernel_new)
    assert not np.allclose(model.get_layer("out").get_weights()[0], copy.get_layer("out").get_weights()[0])
    model_weights = model.get_weights()  # the trained model is untouched
    assert np.array_equal(model_weights[0].ravel(), [0.0, 1.0, 0.0])
    again = deletion.randomised_copy(model, seed=3)  # the seed makes the draw repeatable
    for a, b in zip(copy.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    cams, _ = gradcam.grad_cam(copy, _bump_data(n=4)[0], class_idx=1)  # Grad-CAM still finds its layer
    assert cams.shape == (4, N_FEATURES)


def test_deletion_with_a_control_map_grades_both_orders():
    model = _toy_model()
    x, y = _bump_data(n=20)
    x, y = x[y == 1], y[y == 1]
    cams, _ = gradcam.grad_cam(model, x, class_idx=y)
    noise = np.random.default_rng(1).random(cams.shape)
    res = deletion.deletion_test(model, x, y, cams, control_cams=noise, steps=10, n_random=3)
    plain = deletion.deletion_test(model, x, y, cams, steps=10, n_random=3)
    np.testing.assert_allclose(res.random, plain.random)  # same random orders with or without the control
    assert res.control.shape == res.cam.shape
    s = res.summary()
    assert s["cam_vs_control_area_between"] > 0.3 and s["cam_vs_control_ci95_low"] > 0
    assert s["cam_vs_control_verdict"] == "better than the randomised-model maps"
    assert abs(s["control_area_between"]) < 0.15
    assert plain.control is None and plain.control_summary() is None
    with pytest.raises(ValueError):
        deletion.deletion_test(model, x, y, cams, control_cams=noise[:, :10])


def test_map_similarity_is_spearman_per_clip():
    a = np.array([[0.0, 1, 2, 3], [1, 1, 1, 1], [3, 2, 1, 0]])
    rho = deletion.map_similarity(a, a[[0, 0, 0]])
    assert rho[0] == pytest.approx(1.0) and np.isnan(rho[1]) and rho[2] == pytest.approx(-1.0)


def test_reference_run_writes_valid_json_and_a_summary(quick_chapter, tmp_path):
    import json

    from ser_utils.course import display

    settings = gradcam_reference.ReferenceSettings(n_clips=14, steps=4, n_random=2)
    paths = gradcam_reference.gradcam_reference(quick_chapter, tmp_path, [0], ["cnn"], settings, progress=False)
    rec = json.loads((tmp_path / "cnn__random__seed0.json").read_text())
    assert rec["kind"] == "gradcam-reference" and rec["dataset"]["synthetic"] and rec["input"] == "vector"
    assert {"created", "git_commit", "versions"} <= set(rec)
    d = rec["deletion"]
    assert d["n_samples"] == 14 and len(d["curves"]["control"]) == len(d["curves"]["fractions"])
    assert {"verdict", "control_verdict", "cam_vs_control_verdict"} <= set(d)
    assert set(rec["groups"]["trained"]) == set(FEATURE_GROUPS)
    rows = json.loads((tmp_path / "summary.json").read_text())
    assert rows[0]["model"] == "cnn" and rows[0]["seeds"] == [0]
    assert (tmp_path / "summary.md") in paths and "| cnn | 1 |" in (tmp_path / "summary.md").read_text()
    assert "synthetic demo corpus" in display.gradcam_reference_findings(rows, "cnn")


def _fake_reference(model: str, seed: int, area: float, verdict: str) -> dict:
    spread = {"mean": 0.1, "sd": 0.0, "n": 10}
    deletion = {"n_samples": 300, "area_between": area, "relative_gain": area / 0.7, "verdict": verdict,
                "control_area_between": 0.05, "control_relative_gain": 0.07, "control_verdict": "better than random",
                "cam_vs_control_area_between": area - 0.05, "cam_vs_control_relative_gain": 0.2,
                "cam_vs_control_verdict": "better than the randomised-model maps"}
    return {"kind": "gradcam-reference", "model": model, "protocol": "random", "seed": seed, "input": "vector",
            "dataset": {"name": "tess", "synthetic": False, "n_clips": 1400}, "test_accuracy": 0.99,
            "deletion": deletion, "control": {"spearman_trained_vs_randomised": spread},
            "groups": {"trained": {g: spread for g in FEATURE_GROUPS}}}


def test_reference_display_on_fabricated_records(tmp_path):
    import json

    from ser_utils.course import display

    for seed, area in ((0, 0.2), (1, 0.3)):
        (tmp_path / f"hybrid__random__seed{seed}.json").write_text(json.dumps(
            _fake_reference("hybrid", seed, area, "better than random")))
    (tmp_path / "notes.json").write_text("{}")  # ignored: not a reference record
    rows = gradcam_reference.reference_summary(gradcam_reference.load_references(tmp_path))
    assert len(rows) == 1 and rows[0]["area_between"]["mean"] == pytest.approx(0.25)
    assert rows[0]["verdicts"] == {"better than random": 2}
    table = display.gradcam_reference_table(rows)
    assert table.loc["hybrid", "area between (random − Grad-CAM)"] == "+0.250 ± 0.071"
    assert table.loc["hybrid", "mel share"] == "+0.100 ± 0.000"
    display.gradcam_reference_figure(rows)
    text = display.gradcam_reference_findings(rows)
    assert "real TESS" in text and "2 of 2 seeds" in text and "is supported" in text
    assert "no `cnn-x` records" in display.gradcam_reference_findings(rows, "cnn-x")
    assert display.gradcam_reference_table([]).empty
