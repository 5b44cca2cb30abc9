"""Shared fixtures: a tiny demo corpus and a quick-mode chapter, built once per test session.

Tests never need real TESS. When the development subset is present at
``../shared/data/tess-dev`` the ``tess_dev`` fixture offers it for extra checks;
otherwise those tests are skipped with that reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("SER_QUICK", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parents[1]
TESS_DEV = ROOT.parent / "shared" / "data" / "tess-dev"


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """A 10-word demo corpus (140 clips) written once per session."""
    from ser_utils.synth import write_demo_corpus

    return write_demo_corpus(tmp_path_factory.mktemp("demo") / "corpus", n_words=10, progress=False)


@pytest.fixture(scope="session")
def quick_chapter(tmp_path_factory):
    """A quick-mode chapter context on the demo corpus, with its own artifacts folder."""
    from ser_utils.course.chapter import start_chapter

    art = tmp_path_factory.mktemp("artifacts")
    return start_chapter("demo", None, str(art), quick=True, show_banner=False)


@pytest.fixture(scope="session")
def tess_dev() -> Path:
    """The real TESS development subset, when this machine has it (tests must not require it)."""
    if not TESS_DEV.is_dir():
        pytest.skip(f"real TESS development subset not found at {TESS_DEV}")
    return TESS_DEV
