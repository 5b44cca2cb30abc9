"""Resolving a chapter's dataset: real TESS when found, the demo corpus otherwise, never confused."""

import pytest

from ser_utils.run_context import resolve_data, tess_candidates
from ser_utils.data import TessNotFoundError
from ser_utils.course.chapter import banner_html, start_chapter

from .helpers import tone, write_wav


def test_auto_without_tess_uses_demo_and_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("SER_TESS_DIR", raising=False)
    monkeypatch.delenv("SER_DATASET", raising=False)
    monkeypatch.setattr("ser_utils.run_context.project_root", lambda: tmp_path)
    ctx = resolve_data("auto", artifacts_dir=tmp_path / "art", quick=True)
    assert ctx.is_demo and ctx.dataset == "demo"
    assert (ctx.data_dir / "demo_corpus.json").exists()
    assert "DEMO DATA" in banner_html(ctx, quick=True) and "Quick mode" in banner_html(ctx, quick=True)


def test_env_variable_points_at_tess(tmp_path, monkeypatch):
    write_wav(tmp_path / "tess" / "OAF_back_angry.wav", tone())
    monkeypatch.setenv("SER_TESS_DIR", str(tmp_path / "tess"))
    monkeypatch.delenv("SER_DATASET", raising=False)
    ctx = resolve_data("auto", artifacts_dir=tmp_path / "art")
    assert ctx.dataset == "tess" and ctx.data_dir == (tmp_path / "tess").resolve()
    assert "Real data: TESS" in banner_html(ctx) and "Quick mode" not in banner_html(ctx)


def test_forced_tess_without_data_lists_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("SER_TESS_DIR", raising=False)
    with pytest.raises(TessNotFoundError, match="(?s)Looked in.*nothing-here.*SER_TESS_DIR"):
        resolve_data("tess", data_dir=tmp_path / "nothing-here", artifacts_dir=tmp_path / "art")


def test_explicit_data_dir_that_is_empty_is_an_error_not_a_silent_demo(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TessNotFoundError):
        resolve_data("auto", data_dir=tmp_path / "empty", artifacts_dir=tmp_path / "art")


def test_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="dataset"):
        resolve_data("imagenet", artifacts_dir=tmp_path)
    with pytest.raises(ValueError, match="protocol"):
        start_chapter("demo", None, str(tmp_path), "leave-one-out", show_banner=False)


def test_candidate_order(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_TESS_DIR", "/env/tess")
    c = tess_candidates(tmp_path)
    assert c[0] == tmp_path and str(c[1]) == "/env/tess" and c[2].parts[-2:] == ("data", "TESS")
