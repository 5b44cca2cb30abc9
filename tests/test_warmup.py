"""ser_utils.warmup: librosa's numba cache compiled once at install, and rebuilt when it crashes."""

from __future__ import annotations

from ser_utils import warmup


def test_a_crashing_cache_is_deleted_and_compiled_again(tmp_path, monkeypatch, capsys):
    stale = [tmp_path / "pitch._pi_wrapper-430.py311.nbi", tmp_path / "guf-pitch._pi_wrapper-430.py311.1.nbc"]
    for path in stale:
        path.write_bytes(b"x")
    codes = iter([-11, 0])  # the first child segfaults on the broken cache, the second compiles afresh
    monkeypatch.setattr(warmup, "_run_child", lambda: next(codes))
    monkeypatch.setattr(warmup, "librosa_cache_files", lambda: stale)
    assert warmup.main([]) == 0
    assert not any(p.exists() for p in stale)
    assert "crashed (signal 11); deleted 2 numba cache files" in capsys.readouterr().out


def test_a_child_that_fails_without_a_crash_is_reported_and_nothing_deleted(tmp_path, monkeypatch, capsys):
    kept = tmp_path / "utils._localmax-1035.py311.nbi"
    kept.write_bytes(b"x")
    monkeypatch.setattr(warmup, "_run_child", lambda: 1)
    monkeypatch.setattr(warmup, "librosa_cache_files", lambda: [kept])
    assert warmup.main([]) == 1 and kept.exists()
    assert "failed (exit 1)" in capsys.readouterr().out


def test_the_warmup_calls_the_books_compiled_librosa_paths():
    warmup.exercise_compiled_functions()  # features, yin, pyin on one synthetic second: no error
    assert all(p.suffix in (".nbi", ".nbc") for p in warmup.librosa_cache_files())
