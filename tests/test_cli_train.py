"""``python -m ser_utils train``: bad arguments exit with status 2 and a message; a quick run writes results."""

from __future__ import annotations

import json

import pytest

from ser_utils.cli import main


def test_unknown_model_exits_2(capsys):
    assert main(["train", "gpt"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'gpt'" in err and "whisper" in err  # the error lists the bases


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "cnn", "--epochs", "0"], "--epochs"),
        (["train", "logreg", "--input", "frames"], "--input applies only"),
        (["train", "hybrid", "--pretrained", "google/vit-base"], "--pretrained applies only"),
        (["train", "rf", "--augment"], "--augment applies only"),
        (["train", "duration", "--spknorm"], "duration"),
        (["train", "cnn", "--seeds", "-1"], "--seeds"),
    ],
)
def test_bad_arguments_exit_2_without_traceback(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and "Traceback" not in err


def test_missing_tess_exits_2(tmp_path, capsys):
    assert main(["train", "cnn", "--dataset", "tess", "--data-dir", str(tmp_path / "nowhere"),
                 "--artifacts", str(tmp_path / "art")]) == 2
    assert "no TESS audio found" in capsys.readouterr().err


def test_quick_keras_run_prints_table_and_writes_results(quick_chapter, capsys):
    art = quick_chapter.artifacts_dir  # reuse the fixture's cached features
    assert main(["train", "cnn", "--dataset", "demo", "--artifacts", str(art), "--quick", "--input", "frames",
                 "--seeds", "0", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("DEMO DATA") and "cnn-frames" in out and "accuracy %" in out
    for seed in (0, 1):
        path = art / "results" / f"cnn-frames__random__seed{seed}.json"
        assert str(path) in out
        rec = json.loads(path.read_text())
        assert rec["config"]["input"] == "frames" and rec["dataset"]["quick"] is True


def test_baseline_spknorm_name(quick_chapter, capsys):
    art = quick_chapter.artifacts_dir
    assert main(["train", "logreg", "--dataset", "demo", "--artifacts", str(art), "--quick", "--protocol", "speaker",
                 "--spknorm"]) == 0
    assert (art / "results" / "logreg-spknorm__speaker__seed0.json").exists()
