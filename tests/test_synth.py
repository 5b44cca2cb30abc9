"""The demo corpus: TESS-shaped, deterministic, learnable but not trivially."""

import hashlib

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from ser_utils.data import build_manifest, summarise_manifest, usable
from ser_utils.labels import EMOTIONS
from ser_utils.synth import synthesize_clip, write_demo_corpus


def test_same_seed_same_audio_other_seed_other_audio():
    a = synthesize_clip("bar", "angry", "SYNA", seed=3)
    b = synthesize_clip("bar", "angry", "SYNA", seed=3)
    c = synthesize_clip("bar", "angry", "SYNA", seed=4)
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_corpus_files_are_identical_across_runs(tmp_path):
    def digest(root):
        return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.wav"))}

    a = write_demo_corpus(tmp_path / "a", n_words=2, progress=False)
    b = write_demo_corpus(tmp_path / "b", n_words=2, progress=False)
    assert digest(a) == digest(b) and len(digest(a)) == 2 * 7 * 2


def test_corpus_is_tess_shaped(demo_dir):
    m = build_manifest(demo_dir, progress=False)
    s = summarise_manifest(m, expected_size=140)
    assert s.n_ok == 140 and s.problems.empty
    assert set(m["speaker"]) == {"SYNA", "SYNB"}  # clearly synthetic names
    assert (s.counts.to_numpy() == 10).all()
    assert any(p.name.endswith("_ps.wav") for p in demo_dir.rglob("*.wav"))  # TESS spelling


def test_duration_alone_does_not_separate_the_classes(demo_dir):
    ok = usable(build_manifest(demo_dir, progress=False))
    y = ok["emotion"].map(EMOTIONS.index).to_numpy()
    acc = cross_val_score(LogisticRegression(max_iter=1000), ok[["duration"]].to_numpy(), y, cv=5).mean()
    assert acc < 0.6, f"duration alone separates the demo corpus too well ({acc:.2f})"


def test_emotions_are_learnable_from_features(quick_chapter):
    fs = quick_chapter.features
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    acc = cross_val_score(clf, fs.vectors, fs.labels, cv=5).mean()
    assert acc > 0.5, f"the demo corpus should be learnable (got {acc:.2f}, chance 0.14)"


def test_speak_makes_a_readable_clip_or_says_it_cannot(tmp_path, monkeypatch):
    """chapter 10.12's new voice: espeak-ng's WAV when installed, None (never a crash) when not."""
    import shutil

    import soundfile as sf

    from ser_utils.synth import speak

    if shutil.which("espeak-ng"):
        out = speak("Say the word back", tmp_path / "v" / "x.wav")
        audio, sr = sf.read(out)
        assert sr > 8000 and 0.5 < len(audio) / sr < 5 and abs(audio).max() > 0.01
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert speak("Say the word back", tmp_path / "y.wav") is None and not (tmp_path / "y.wav").exists()


def test_two_processes_writing_one_demo_corpus_at_once_both_succeed(tmp_path):
    """Chapters executed in parallel (make test's nbval) may build the same demo corpus at the same time."""
    import subprocess
    import sys

    code = ("import sys; from ser_utils.synth import write_demo_corpus; "
            f"write_demo_corpus({str(tmp_path / 'corpus')!r}, n_words=4, progress=False)")
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(3)]
    errors = [p.communicate()[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    from ser_utils.data import build_manifest

    m = build_manifest(tmp_path / "corpus", progress=False)
    assert len(m) == 4 * 7 * 2 and (m["status"] == "ok").all()
    assert not [p for p in (tmp_path / "corpus").rglob("*") if ".tmp" in p.name]
