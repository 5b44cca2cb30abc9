"""The prosody view: pitch, loudness and tempo functionals on signals whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ser_utils.prosody import PROSODY_NAMES, ProsodyConfig, ensure_prosody, fill_missing, prosody_vector

from .helpers import tone, write_wav

SR = 16000


def col(v: np.ndarray, name: str) -> float:
    return float(v[PROSODY_NAMES.index(name)])


def glide(f_start: float, f_end: float, seconds: float = 1.0) -> np.ndarray:
    """A harmonic tone whose pitch moves from f_start to f_end (exponentially, i.e. linear in semitones)."""
    t = np.arange(int(seconds * SR)) / SR
    f = f_start * (f_end / f_start) ** (t / seconds)
    phase = 2 * np.pi * np.cumsum(f) / SR
    return sum(0.2 / k * np.sin(k * phase) for k in range(1, 4)).astype(np.float32)


def test_steady_tone_has_its_pitch_and_no_trend():
    v = prosody_vector(tone(1.0, SR, 220.0))
    assert v.shape == (len(PROSODY_NAMES),)
    assert col(v, "f0_mean") == pytest.approx(24.0, abs=0.5)  # 220 Hz = 2 octaves above 55 Hz
    assert col(v, "f0_range") < 1.0 and abs(col(v, "f0_slope")) < 1.0
    assert col(v, "voiced_frac") > 0.8


def test_rising_glide_has_a_positive_slope_and_a_wide_range():
    v = prosody_vector(glide(110.0, 220.0))  # one octave up in one second
    assert col(v, "f0_slope") == pytest.approx(12.0, abs=3.0)
    assert col(v, "f0_range") > 8.0
    down = prosody_vector(glide(220.0, 110.0))
    assert col(down, "f0_slope") < -8.0


def test_pauses_and_bursts_show_in_pause_fraction_and_onset_rate():
    burst, gap = tone(0.2, SR, 180.0), np.zeros(int(0.2 * SR), np.float32)
    choppy = np.concatenate([burst, gap, burst, gap, burst, gap, burst])
    smooth = tone(choppy.size / SR, SR, 180.0)
    vc, vs = prosody_vector(choppy), prosody_vector(smooth)
    assert col(vc, "pause_frac") > 0.3 > col(vs, "pause_frac")
    assert col(vc, "onset_rate") > col(vs, "onset_rate")
    assert col(vc, "rms_range") > col(vs, "rms_range")


def test_missing_pitch_is_filled_with_a_constant_and_bad_methods_are_refused():
    x = np.array([[np.nan, 1.0], [2.0, 3.0]], np.float32)
    assert fill_missing(x).tolist() == [[0.0, 1.0], [2.0, 3.0]]
    with pytest.raises(ValueError, match="method"):
        prosody_vector(tone(0.5, SR), ProsodyConfig(method="crepe"))
    with pytest.raises(ValueError, match="mono"):
        prosody_vector(np.zeros((10, 2), np.float32))


def test_ensure_prosody_caches_one_row_per_usable_clip(tmp_path):
    rows = []
    for i, f in enumerate((150.0, 300.0)):
        p = write_wav(tmp_path / f"OAF_w{i}_angry.wav", tone(0.6, SR, f), SR)
        rows.append({"clip_id": f"c{i}", "path": str(p), "status": "ok"})
    rows.append({"clip_id": "bad", "path": str(tmp_path / "x.wav"), "status": "bad"})
    m = pd.DataFrame(rows)
    table = ensure_prosody(m, tmp_path / "art", jobs=1, progress=False)
    assert list(table.index) == ["c0", "c1"] and list(table.columns) == list(PROSODY_NAMES)
    assert table.loc["c1", "f0_mean"] - table.loc["c0", "f0_mean"] == pytest.approx(12.0, abs=0.7)
    cached = list((tmp_path / "art" / "prosody").rglob("*.csv"))
    assert len(cached) == 1
    again = ensure_prosody(m, tmp_path / "art", jobs=1, progress=False)
    pd.testing.assert_frame_equal(table, again, check_dtype=False)


def test_prosody_comparison_scores_every_view_and_model(tmp_path):
    from ser_utils.transfer import prosody_comparison

    from .test_data import make_tess

    tess = make_tess(tmp_path / "tess", "flat", words=tuple(f"w{i}" for i in range(10)))  # 7 val clips per speaker
    table = prosody_comparison(tess, "tess", tmp_path / "art", jobs=1)
    assert set(table["features"]) == {"187 values", "prosody (13)", "187 + prosody"}
    assert set(table["model"]) == {"logreg", "logreg-spknorm"} and set(table["protocol"]) == {"speaker"}
    assert table["uar"].between(0, 100).all() and len(table) == 6
