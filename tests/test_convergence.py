"""The convergence analysis (chapter 5.8) writes its record and reads it back as a table."""

from __future__ import annotations

import json
from types import SimpleNamespace

from ser_utils.course import convergence


def test_main_writes_the_record_atomically_and_the_table_reads_it(tmp_path, monkeypatch):
    """One record per model, every run's trajectory kept (main used to crash here, after all its training)."""
    import ser_utils.workspace as workspace

    splits = [SimpleNamespace(fold="YAF->OAF"), SimpleNamespace(fold="OAF->YAF")]
    fake = SimpleNamespace(features=list(range(2800)), splits=lambda protocol, seed: splits)
    monkeypatch.setattr(workspace, "open_workspace", lambda *a, **k: fake)
    monkeypatch.setattr(convergence, "test_uar_along_training", lambda fs, split, model, **k: {
        "fold": split.fold, "epochs_run": 20, "best_epoch": 10, "final_uar": 60.0,
        "trajectory": [[10, 58.0], [20, 61.0]]})
    assert convergence.main(["--data-dir", "x", "--artifacts", str(tmp_path), "--seeds", "0", "1",
                             "--out", str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "hybrid-frames__speaker.json").read_text())
    assert record["dataset"]["n_clips"] == 2800 and len(record["runs"]) == 4
    assert not list((tmp_path / "out").glob(".*.tmp*"))  # no temp file left
    table = convergence.trajectory_table(record)
    assert list(table.index) == [10, 20] and table["mean"].tolist() == [58.0, 61.0]
