"""Feature extraction: shapes and names, determinism, cache behaviour, bad clips, resampling, scaling."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ser_utils.data import build_manifest
from ser_utils.features import (
    FEATURE_GROUPS,
    FEATURE_NAMES,
    N_FEATURES,
    FeatureConfig,
    as_rgb,
    ensure_features,
    extract_clip,
    extract_from_audio,
)

from ser_utils.standardise import feature_stats, fit_standardiser, standardise_per_speaker

from .helpers import tone, write_wav

SMALL = FeatureConfig(n_frames=16, image_size=32)


def test_names_and_groups_cover_187_positions():
    assert N_FEATURES == 187 == len(FEATURE_NAMES)
    sizes = {g: s.stop - s.start for g, s in FEATURE_GROUPS.items()}
    assert sizes == {"chroma": 12, "mel": 128, "contrast": 7, "mfcc": 40}
    assert FEATURE_NAMES[0] == "chroma_1" and FEATURE_NAMES[11 + 128 + 7 + 12] == "mfcc_12"
    assert all(FEATURE_NAMES[s][0].startswith(g) for g, s in FEATURE_GROUPS.items())


def test_shapes_and_types():
    f = extract_from_audio(tone(1.0, sr=22050), SMALL)
    assert f.vector.shape == (187,) and f.frames.shape == (16, 187) and f.image.shape == (32, 32)
    assert f.image.dtype == np.uint8 and f.image.max() > 100  # scaled from the clip's own peak
    assert np.isfinite(f.vector).all()
    rgb = as_rgb(f.image[None])
    assert rgb.shape == (1, 3, 32, 32) and 0 <= rgb.min() and rgb.max() <= 1


def test_frames_are_time_normalised_so_length_is_not_visible():
    short = extract_from_audio(tone(0.5, sr=22050), SMALL)
    long = extract_from_audio(tone(2.0, sr=22050), SMALL)
    assert short.frames.shape == long.frames.shape
    assert long.n_frames_raw > 2 * short.n_frames_raw


def test_identical_input_gives_identical_output(tmp_path):
    p = write_wav(tmp_path / "OAF_back_angry.wav", tone(0.8))
    a, b = extract_clip(p, SMALL), extract_clip(p, SMALL)
    assert np.array_equal(a.vector, b.vector) and np.array_equal(a.image, b.image)


def test_96khz_clip_is_resampled_to_the_same_features(tmp_path):
    lo = extract_clip(write_wav(tmp_path / "a.wav", tone(1.0, sr=24414), sr=24414), SMALL)
    hi = extract_clip(write_wav(tmp_path / "b.wav", tone(1.0, sr=96000), sr=96000), SMALL)
    mel = FEATURE_GROUPS["mel"]
    assert np.corrcoef(lo.vector[mel], hi.vector[mel])[0, 1] > 0.99
    assert np.allclose(lo.vector[mel], hi.vector[mel], atol=3.0)  # dB


def test_silent_audio_is_refused():
    with pytest.raises(ValueError, match="silent"):
        extract_from_audio(np.zeros(22050, dtype=np.float32), SMALL)


def small_corpus(root, n=6):
    for i in range(n):
        write_wav(root / f"OAF_w{i}_angry.wav", tone(0.5 + 0.05 * i, freq=180 + 10 * i))
    return build_manifest(root, progress=False)


def test_cache_hit_then_miss_after_parameter_change_and_resume(tmp_path):
    m = small_corpus(tmp_path / "audio")
    first = ensure_features(m, tmp_path / "art", SMALL, jobs=1, progress=False)
    assert first.chunks_computed == 1 and len(first) == 6
    again = ensure_features(m, tmp_path / "art", SMALL, jobs=1, progress=False)
    assert again.chunks_computed == 0 and np.array_equal(first.vectors, again.vectors)
    changed = ensure_features(m, tmp_path / "art", replace(SMALL, n_mfcc=40, trim_db=None), jobs=1, progress=False)
    assert changed.chunks_computed == 1 and changed.cache_dir != first.cache_dir
    # an interrupted run leaves some chunks missing: only those are recomputed
    for chunk in first.cache_dir.glob("chunk_*.npz"):
        chunk.unlink()
    resumed = ensure_features(m, tmp_path / "art", SMALL, jobs=1, progress=False)
    assert resumed.chunks_computed == 1 and np.array_equal(resumed.vectors, first.vectors)


def test_a_clip_that_fails_is_reported_and_skipped(tmp_path):
    m = small_corpus(tmp_path / "audio")
    broken = m.loc[2, "path"]
    open(broken, "wb").write(b"corrupted after the manifest was built")
    fs = ensure_features(m, tmp_path / "art", SMALL, jobs=1, progress=False)
    assert len(fs) == 5 and list(fs.failed["clip_id"]) == [m.loc[2, "clip_id"]]
    assert fs.failed["reason"].iloc[0]
    assert m.loc[2, "clip_id"] not in set(fs.ids)
    assert len(fs.index(list(m["clip_id"]))) == 5
    assert list(fs.meta["clip_id"]) == list(fs.ids)


def test_standardisation_uses_training_rows_only():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (100, 3, 187)).astype(np.float32)
    x[80:] += 50  # test rows far away: they must not move the statistics
    train = np.arange(80)
    scaler = fit_standardiser(x, train)
    assert np.allclose(scaler.mean_, x[train].reshape(-1, 187).mean(axis=0), atol=1e-5)
    z = scaler.transform(x.reshape(-1, 187)).reshape(x.shape)
    assert z.shape == x.shape and abs(z[train].mean()) < 0.05 and z[80:].mean() > 10


def test_per_speaker_standardisation():
    x = np.concatenate([np.full((4, 187), 1.0), np.full((4, 187), 5.0)]) + np.arange(8)[:, None]
    z = standardise_per_speaker(x, np.array(["A"] * 4 + ["B"] * 4))
    assert np.allclose(z[:4].mean(axis=0), 0, atol=1e-5) and np.allclose(z[4:].mean(axis=0), 0, atol=1e-5)


def test_per_speaker_standardisation_with_given_statistics():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, (10, 6, 187)).astype(np.float32)
    speakers = np.array(["A"] * 5 + ["B"] * 5)
    mean, scale = feature_stats(x[:5])
    assert mean.shape == scale.shape == (187,) and np.all(scale > 0)
    np.testing.assert_allclose(mean, x[:5].reshape(-1, 187).mean(axis=0), rtol=1e-5)
    # statistics given for both speakers (here A's for everyone) replace B's own
    z = standardise_per_speaker(x, speakers, {"A": (mean, scale), "B": (mean, scale)})
    np.testing.assert_allclose(z, (x - mean) / scale, rtol=1e-5, atol=1e-5)
    assert not np.allclose(z[5:], standardise_per_speaker(x, speakers)[5:])
    # a constant feature does not divide by zero
    assert np.isfinite(standardise_per_speaker(np.ones((4, 187)), np.array(["A"] * 4))).all()


def test_vector_frame_has_named_columns(quick_chapter):
    df = quick_chapter.features.vector_frame()
    assert isinstance(df, pd.DataFrame) and list(df.columns[4:]) == list(FEATURE_NAMES)
    assert set(df["emotion"]) == set(quick_chapter.manifest["emotion"])
