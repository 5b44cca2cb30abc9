"""``python -m ser_utils predict``: a saved bundle classifies a new clip, and bad inputs get clear errors.

The bundles are trained for one epoch on the quick demo corpus through the
Keras helper's own API (:func:`ser_utils.training.keras_fold`), so the
sidecar format tested here is the one the chapters write.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from ser_utils.cli import main
from ser_utils.errors import UserError
from ser_utils.labels import EMOTIONS

from .helpers import fold_job, write_wav

training = pytest.importorskip("ser_utils.training", reason="ser_utils.training (Keras helper) not available")

from ser_utils import predict  # noqa: E402

PROB_LINE = re.compile(r"^\s+([a-z_]+)\s+([0-9.]+)$")


@pytest.fixture(scope="module")
def bundles(quick_chapter, tmp_path_factory):
    """{"vector": path, "frames": path} of two hybrids trained for one epoch, saved under a models folder."""
    root = tmp_path_factory.mktemp("art")
    split = quick_chapter.splits("random", 0)[0]
    out = {}
    for kind in ("vector", "frames"):
        res = training.keras_fold(quick_chapter.features, split, fold_job("hybrid", seed=0, epochs=1, quick=True,
                                  options={"input": kind}, model_dir=root / "demo" / "models", progress=False))
        out[kind] = res.extra["model_path"]
    out["root"] = root
    return out


@pytest.fixture(scope="module")
def new_clip(tmp_path_factory):
    """A clip not in the corpus: a new word and seed, 44.1 kHz stereo (the models work at 22.05 kHz mono)."""
    from scipy.signal import resample_poly

    from ser_utils.synth import synthesize_clip

    mono = synthesize_clip("zebra", "angry", "SYNA", seed=99, sr=22050)
    stereo = np.stack([resample_poly(mono, 2, 1)] * 2, axis=1) * 0.8
    return write_wav(tmp_path_factory.mktemp("clip") / "zebra.wav", stereo.astype("float32"), sr=44100)


def _parse_probs(text: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for line in text.splitlines() if (m := PROB_LINE.match(line))}


@pytest.mark.parametrize("kind", ["vector", "frames"])
def test_predict_clip_gives_seven_sorted_probabilities(bundles, new_clip, kind):
    pred = predict.predict_clip(new_clip, bundles[kind])
    probs = pred.probabilities
    assert set(probs.index) == set(EMOTIONS) and len(probs) == 7
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert (np.diff(probs.to_numpy()) <= 0).all()  # highest first
    assert pred.label == probs.index[0]
    assert pred.inputs.shape[0] == 1


def test_cli_prints_seven_probabilities_summing_to_one(bundles, new_clip, capsys):
    assert main(["predict", str(new_clip), "--model", str(bundles["vector"])]) == 0
    probs = _parse_probs(capsys.readouterr().out)
    assert set(probs) == set(EMOTIONS)
    assert sum(probs.values()) == pytest.approx(1.0, abs=0.01)  # printed with 3 decimals


@pytest.mark.parametrize("kind", ["vector", "frames"])
def test_cli_writes_a_gradcam_figure(bundles, new_clip, tmp_path, kind, capsys):
    out = tmp_path / f"cam_{kind}.png"
    assert main(["predict", str(new_clip), "--model", str(bundles[kind]), "--cam", str(out)]) == 0
    assert out.stat().st_size > 5000 and out.read_bytes()[:4] == b"\x89PNG"
    assert "Grad-CAM figure written" in capsys.readouterr().out


def test_default_model_is_the_newest_hybrid(bundles, new_clip, monkeypatch, capsys):
    monkeypatch.setenv("SER_ARTIFACTS_DIR", str(bundles["root"]))
    found = predict.find_models(bundles["root"])
    assert {str(p) for p in found} == {str(bundles["vector"]), str(bundles["frames"])}
    assert predict.newest_model() == found[0]
    assert main(["predict", str(new_clip)]) == 0
    out, err = capsys.readouterr()
    assert len(_parse_probs(out)) == 7
    # No --model: the choice, and that the model only knows the synthetic corpus, are said loudly.
    assert "no --model given" in err and "synthetic demo corpus, not on TESS" in err


def test_cam_without_extension_gets_png_and_prints_the_real_name(bundles, new_clip, tmp_path, capsys):
    out = tmp_path / "cam"
    assert main(["predict", str(new_clip), "--model", str(bundles["vector"]), "--cam", str(out)]) == 0
    assert (tmp_path / "cam.png").read_bytes()[:4] == b"\x89PNG" and not out.exists()
    assert f"written to {tmp_path / 'cam.png'}" in capsys.readouterr().out


def test_a_file_name_that_is_not_utf8_is_classified(bundles, new_clip, tmp_path, capsys):
    import os

    raw = os.fsencode(tmp_path) + b"/z\xe4bra.wav"  # Latin-1 byte: not valid UTF-8
    with open(raw, "wb") as fh:
        fh.write(Path(new_clip).read_bytes())
    assert main(["predict", os.fsdecode(raw), "--model", str(bundles["vector"])]) == 0
    out = capsys.readouterr().out
    assert "z\\xe4bra.wav" in out and len(_parse_probs(out)) == 7


def test_sidecar_of_another_model_is_a_clear_error(bundles, new_clip, tmp_path, capsys):
    import json
    import shutil

    model = tmp_path / "mixed.keras"
    shutil.copy(bundles["vector"], model)
    side = json.loads(Path(bundles["frames"]).with_suffix(".json").read_text())
    model.with_suffix(".json").write_text(json.dumps(side))  # a frames sidecar beside a vector model
    assert main(["predict", str(new_clip), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert "sidecar" in err and "Traceback" not in err


def test_no_model_anywhere_is_a_clear_error(tmp_path, new_clip, monkeypatch, capsys):
    monkeypatch.setenv("SER_ARTIFACTS_DIR", str(tmp_path))
    assert main(["predict", str(new_clip)]) == 2
    assert "train one with `python -m ser_utils train hybrid`" in capsys.readouterr().err
    assert main(["predict", str(new_clip), "--model", str(tmp_path / "none.keras")]) == 2
    assert "no saved model" in capsys.readouterr().err


def test_bad_clips_are_clear_errors(bundles, tmp_path, capsys):
    model = str(bundles["vector"])
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    silent = write_wav(tmp_path / "silent.wav", np.zeros(22050, dtype="float32"), sr=22050)
    for path, message in [(text, "not an audio file"), (empty, "empty"), (silent, "silent"),
                          (tmp_path / "missing.wav", "no such file")]:
        assert main(["predict", str(path), "--model", model]) == 2, path
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    with pytest.raises(UserError, match="silent"):
        predict.load_audio(silent, 22050)


def test_models_needing_speaker_statistics_are_not_the_default(tmp_path):
    import json
    import os

    for i, kind in enumerate(["train", "spknorm"]):
        path = tmp_path / "models" / f"hybrid-{i}.keras"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x")
        path.with_suffix(".json").write_text(json.dumps({"model": "hybrid", "base_model": "hybrid",
                                                         "standardizer": {"kind": kind}}))
        os.utime(path, (1000 + i, 1000 + i))  # the spknorm one is newer
    assert [p.name for p in predict.find_models(tmp_path)] == ["hybrid-0.keras", "hybrid-1.keras"]
    assert predict.find_models(tmp_path, "cnn") == []
