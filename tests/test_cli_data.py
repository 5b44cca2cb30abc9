"""The data commands of python -m ser_utils."""

import pandas as pd

from ser_utils.cli import main

from .helpers import tone, write_wav


def test_demo_corpus_command(tmp_path, capsys):
    assert main(["demo-corpus", str(tmp_path / "d"), "--words", "1"]) == 0
    assert len(list((tmp_path / "d").rglob("*.wav"))) == 14
    assert "synthetic" in capsys.readouterr().out


def test_manifest_command_reports_counts_and_bad_files(tmp_path, capsys):
    write_wav(tmp_path / "OAF_back_angry.wav", tone())
    (tmp_path / "OAF_back_sad.wav").write_text("not audio")
    out_csv = tmp_path / "m.csv"
    assert main(["manifest", str(tmp_path), "-o", str(out_csv)]) == 0
    out = capsys.readouterr().out
    assert "1 usable clips of 2 files" in out and "OAF_back_sad.wav: bad" in out
    assert len(pd.read_csv(out_csv)) == 2


def test_manifest_exit_codes(tmp_path, capsys):
    assert main(["manifest", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "OAF_x_angry.wav").write_text("junk")
    assert main(["manifest", str(tmp_path)]) == 1  # files found, none usable
