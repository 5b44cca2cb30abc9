"""The comparison tables, the McNemar test and the README block, from synthetic results records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ser_utils.course import comparison
from ser_utils.__main__ import main
from ser_utils.evaluation import FoldResult, make_record, save_record, save_record_in

IDS = [f"SYN_w{i}_x" for i in range(70)]
TRUTH = np.arange(70) % 7


def _record(model: str, protocol: str = "random", seed: int = 0, *, wrong: int = 0, n_params=None,
            dataset: dict | None = None, folds: int = 1) -> dict:
    """A record whose model gets the first ``wrong`` of the 70 clips wrong (by predicting class+1)."""
    pred = TRUTH.copy()
    pred[:wrong] = (pred[:wrong] + 1) % 7
    parts = np.array_split(np.arange(70), folds)
    fold_results = [
        FoldResult(fold=f"f{k}", test_ids=[IDS[i] for i in idx], y_true=TRUTH[idx].tolist(),
                   y_pred=pred[idx].tolist(), n_train=100, n_val=10, epochs=3)
        for k, idx in enumerate(parts)
    ]
    dataset = dataset or {"name": "tess", "synthetic": False, "n_clips": 2800, "partial": False, "quick": False}
    return make_record(model, protocol, seed, fold_results, dataset=dataset, wall_time=1.5, n_params=n_params)


@pytest.fixture
def records():
    return [
        _record("logreg", wrong=7),
        _record("logreg", seed=1, wrong=14),
        _record("hybrid", wrong=1, n_params=12345),
        _record("hybrid", seed=1, wrong=3, n_params=12345),
        _record("cnn", wrong=10, n_params=999),
        _record("duration", wrong=40),
        _record("hybrid", "speaker", wrong=35, n_params=12345, folds=2),
        _record("logreg", "speaker", wrong=42, folds=2),
    ]


def test_comparison_table_means_and_sds_over_seeds(records):
    t = comparison.comparison_table(records)
    row = t[(t.model == "logreg") & (t.protocol == "random")].iloc[0]
    assert row["seeds"] == "0,1" and row["n_seeds"] == 2
    assert row["accuracy_mean"] == pytest.approx(100 * (63 / 70 + 56 / 70) / 2)
    assert row["accuracy_sd"] == pytest.approx(np.std([100 * 63 / 70, 100 * 56 / 70], ddof=1))
    assert row["dataset"] == "TESS, 2800 clips"
    assert {"precision_macro_mean", "recall_macro_mean", "f1_macro_mean", "uar_mean"} <= set(t.columns)
    single = t[(t.model == "cnn")].iloc[0]
    assert np.isnan(single["accuracy_sd"]) and single["n_params"] == 999
    # Reading order: baselines first, then deep models; random before speaker.
    assert t["model"].tolist()[:2] == ["duration", "logreg"]
    assert t[t.model == "hybrid"]["protocol"].tolist() == ["random", "speaker"]
    shown = comparison.formatted_table(t)
    assert "±" in shown.loc[(shown.model == "logreg") & (shown.protocol == "random"), "accuracy (%)"].iloc[0]


def test_datasets_are_never_mixed(records):
    demo = _record("hybrid", wrong=0, dataset={"name": "demo", "synthetic": True, "n_clips": 140,
                                               "partial": False, "quick": True})
    part = _record("hybrid", seed=5, dataset={"name": "tess", "synthetic": False, "n_clips": 1400,
                                              "partial": True, "quick": False})
    t = comparison.comparison_table([*records, demo])
    labels = set(t["dataset"])
    assert "demo corpus (synthetic, not TESS), 140 clips, quick mode" in labels
    assert comparison.dataset_label([part]) == "TESS, 1400 of 2800 clips (partial)"
    assert len(t[(t.model == "hybrid") & (t.protocol == "random")]) == 2


def test_paper_comparison_differences_and_missing_models(records):
    p = comparison.paper_comparison(records)
    hyb = p[p.model == "hybrid"].iloc[0]
    assert hyb["paper"] == pytest.approx(99.01)
    assert hyb["difference"] == pytest.approx(hyb["ours_mean"] - 99.01)
    assert p[p.model == "vit"].iloc[0]["status"] == "no results yet"
    assert "logreg" in set(p.model)  # our baselines are shown too, without a paper figure
    missing = comparison.missing_models(records)
    assert set(missing["model"]) == {"cnn", "lstm", "hybrid", "vit", "beit"}
    assert missing.set_index("model").loc["hybrid", "missing protocols"] == "word"
    assert "chapter 4" in missing.set_index("model").loc["lstm", "how to produce"]


def test_mcnemar_exact_counts_and_p_value():
    a = _record("hybrid", wrong=2)
    b = _record("logreg", wrong=12)
    res = comparison.mcnemar(a, b)
    assert (res.n, res.only_a, res.only_b, res.both_wrong) == (70, 10, 0, 2)
    assert res.p_value == pytest.approx(2 * 0.5**10)  # exact two-sided binomial
    same = comparison.mcnemar(a, _record("cnn", wrong=2))
    assert same.only_a == same.only_b == 0 and same.p_value == 1.0
    with pytest.raises(ValueError, match="same protocol and seed"):
        comparison.mcnemar(a, _record("cnn", seed=3))


def test_compare_best_two_pairs_per_seed(records):
    assert comparison.best_models(records, "random") == ["hybrid", "cnn"]
    out = comparison.compare_best_two(records, "random")
    assert len(out) == 1 and out.iloc[0]["model_a"] == "hybrid" and out.iloc[0]["model_b"] == "cnn"
    out = comparison.compare_best_two(records, "speaker")
    assert out.iloc[0]["n"] == 70  # both speaker folds pooled: every clip once


def test_cost_gap_and_confusions(records):
    cost = comparison.cost_table(records)
    assert cost.set_index(["model", "protocol"]).loc[("hybrid", "random"), "n_params"] == 12345
    gap = comparison.protocol_gap(records, "accuracy")
    row = gap[gap.model == "hybrid"].iloc[0]
    assert row["random - speaker"] == pytest.approx(row["random"] - row["speaker"])
    cms = comparison.confusions(records, "random")
    assert cms["logreg"].sum() == 140  # two seeds x 70 clips
    assert list(cms)[0] == "duration"


def test_markdown_table_names_dataset_protocol_and_seeds(records):
    md = comparison.markdown_table(records, source="artifacts/tess/results")
    assert "**Dataset: TESS, 2800 clips**" in md
    assert "| `hybrid` | random | 0,1 |" in md
    assert "| `hybrid` | speaker | 0 |" in md
    assert "99.01" in md  # the paper's figure beside ours, random split only
    assert md.count("99.01") == 1
    assert "artifacts/tess/results" in md
    assert "No results" in comparison.markdown_table([])


def test_update_readme_replaces_only_the_marked_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# T\n\nbefore\n<!-- results:start -->\nold table\n<!-- results:end -->\nafter\n")
    assert comparison.update_readme(readme, "NEW")
    text = readme.read_text()
    assert text == "# T\n\nbefore\n<!-- results:start -->\nNEW\n<!-- results:end -->\nafter\n"
    assert comparison.update_readme(readme, "NEW")  # idempotent
    assert readme.read_text() == text
    bare = tmp_path / "BARE.md"
    bare.write_text("no markers\n")
    assert not comparison.update_readme(bare, "NEW")
    assert bare.read_text() == "no markers\n"
    assert not comparison.update_readme(tmp_path / "missing.md", "NEW")


def test_report_command_regenerates_readme_from_results_files(tmp_path, records, capsys):
    art = tmp_path / "art"
    for r in records:
        save_record(r, art)
    (art / "results" / "junk__random__seed0.json").write_text("{not json")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nstale\n<!-- results:end -->\nend\n")
    with pytest.warns(UserWarning, match="unreadable"):
        assert main(["report", "--results", str(art / "results"), "--readme", str(readme),
                     "--figure", str(tmp_path / "fig" / "uar.png")]) == 0
    assert (tmp_path / "fig" / "uar.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = readme.read_text()
    assert "stale" not in text and text.startswith("intro\n") and text.endswith("end\n")
    expected = comparison.comparison_table(records)
    hyb = expected[(expected.model == "hybrid") & (expected.protocol == "random")].iloc[0]
    assert f"{hyb['accuracy_mean']:.1f} ± {hyb['accuracy_sd']:.1f}" in text
    out = capsys.readouterr().out
    assert "Updated the results block" in out


def test_report_command_without_markers_prints_and_says_so(tmp_path, records, capsys):
    art = tmp_path / "art"
    save_record(records[0], art)
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    assert main(["report", "--results", str(art / "results"), "--readme", str(readme)]) == 2  # a user error: one line, exit status 2
    captured = capsys.readouterr()
    assert "| `logreg` | random | 0 |" in captured.out
    assert "markers" in captured.err
    assert readme.read_text() == "no markers here\n"


def test_report_command_errors(tmp_path, capsys):
    empty = tmp_path / "results"
    empty.mkdir()
    assert main(["report", "--results", str(empty)]) == 2
    assert "no results files" in capsys.readouterr().err
    assert main(["report", "--results", str(tmp_path / "nope")]) == 2


def test_default_results_dir_prefers_tess(tmp_path, records):
    assert comparison.default_results_dir(tmp_path) is None
    save_record(records[0], tmp_path / "demo")
    assert comparison.default_results_dir(tmp_path) == tmp_path / "demo" / "results"
    save_record(records[0], tmp_path / "tess")
    assert comparison.default_results_dir(tmp_path) == tmp_path / "tess" / "results"


def test_ensure_cheap_results_runs_only_missing_baselines(quick_chapter):
    first = comparison.ensure_cheap_results(quick_chapter, ["random"], [0], models=("duration", "logreg"))
    assert set(first) == {"duration/random/seed0", "logreg/random/seed0"}
    assert comparison.ensure_cheap_results(quick_chapter, ["random"], [0], models=("duration", "logreg")) == []
    path = quick_chapter.artifacts_dir / "results" / "logreg__random__seed0.json"
    assert json.loads(path.read_text())["dataset"]["name"] == "demo"


def test_key_findings_read_their_numbers_from_the_records(records):
    lines = comparison.key_findings(records)
    text = "\n".join(lines)
    t = comparison.comparison_table(records).set_index(["model", "protocol"])
    assert lines[0] == "Dataset: TESS, 2800 clips."
    random_line = next(line for line in lines if line.startswith("Random split"))
    assert f"{t.loc[('hybrid', 'random'), 'accuracy_mean']:.1f} %" in random_line and "`hybrid`" in random_line
    assert f"duration-only baseline scores {t.loc[('duration', 'random'), 'accuracy_mean']:.1f} %" in text
    # one seed of a trained model: its seed spread is unmeasured, so the rule tells nothing apart
    speaker_line = next(line for line in lines if "speaker" in line.lower() and "`hybrid`" in line)
    assert "not told apart" in speaker_line and "the best is" not in speaker_line
    three = records + [_record("hybrid", "speaker", seed=s, wrong=35, n_params=12345, folds=2) for s in (1, 2)]
    text = "\n".join(comparison.key_findings(three))
    assert f"the best is `hybrid` with {t.loc[('hybrid', 'speaker'), 'uar_mean']:.1f} %" in text
    assert "Best simple baseline `logreg`" in text
    assert comparison.key_findings([]) == ["No results yet."]


def test_key_findings_call_models_the_seeds_cannot_tell_apart_a_tie(records):
    # hybrid-frames: 1.4 points below hybrid on average, but its two seeds lie 14 points apart: no "best".
    near = [_record("hybrid-frames", "speaker", seed=0, wrong=31, folds=2),
            _record("hybrid-frames", "speaker", seed=1, wrong=41, folds=2)]
    text = "\n".join(comparison.key_findings([*records, *near]))
    assert "Unseen speaker, UAR: not told apart by the book's rule" in text and "`hybrid-frames` 48.6 %" in text


def test_models_using_the_test_speaker_are_reported_apart_from_strict_ones(records):
    # A -spknorm variant that beats every strict model must not become "the best unseen-speaker model".
    both = [*records, _record("hybrid-spknorm", "speaker", wrong=20, folds=2)]
    text = "\n".join(comparison.key_findings(both))
    t = comparison.comparison_table(both).set_index(["model", "protocol"])
    three = both + [_record("hybrid", "speaker", seed=s, wrong=35, n_params=12345, folds=2) for s in (1, 2)]
    assert f"the best is `hybrid` with {t.loc[('hybrid', 'speaker'), 'uar_mean']:.1f} %" in "\n".join(
        comparison.key_findings(three))
    assert "test speaker's unlabelled statistics" in text and "`hybrid-spknorm`" in text
    assert comparison.best_models(both, "speaker", 1, metric="uar") == ["hybrid-spknorm"]
    assert comparison.best_models(both, "speaker", 2, metric="uar", strict=True) == ["hybrid", "logreg"]
    assert set(comparison.compare_best_two(both, "speaker", strict=True)[["model_a", "model_b"]].iloc[0]) == {"hybrid", "logreg"}


def test_compact_drops_a_single_dataset_column(records):
    t = comparison.formatted_table(comparison.comparison_table(records))
    assert "dataset" not in comparison.compact(t).columns
    assert "dataset" not in comparison.compact(comparison.paper_comparison(records)).columns  # blank rows ignored
    demo = _record("hybrid", dataset={"name": "demo", "synthetic": True, "n_clips": 140, "quick": True})
    both = comparison.comparison_table([*records, demo])
    assert "dataset" in comparison.compact(both).columns
    assert comparison.datasets_in([*records, demo]) == ["TESS, 2800 clips",
                                                    "demo corpus (synthetic, not TESS), 140 clips, quick mode"]


def test_runs_on_half_and_all_of_tess_are_never_pooled(records):
    """Seeds made on TESS's 1400-clip half and on all 2800 clips are two datasets, not one mean."""
    half = _record("hybrid", protocol="speaker", seed=2, dataset={"name": "tess", "synthetic": False, "n_clips": 1400,
                                                                   "partial": True, "quick": False})
    table = comparison.comparison_table([*records, half])
    rows = table[(table.model == "hybrid") & (table.protocol == "speaker")]
    assert sorted(rows["dataset"]) == ["TESS, 1400 of 2800 clips (partial)", "TESS, 2800 clips"]
    assert sorted(rows["seeds"]) == ["0", "2"]


def test_chapter_tables_and_quoted_references_never_pool_half_and_all_of_tess(records, tmp_path, monkeypatch, capsys):
    """The chapters' protocol table, the runner's score table and the quoted reference runs keep datasets apart."""
    from ser_utils.course import display, plan
    from ser_utils.experiments import scores_table

    half_meta = {"name": "tess", "synthetic": False, "n_clips": 1400, "partial": True, "quick": False}
    half = [_record("hybrid", "speaker", seed=s, wrong=20, folds=2, dataset=half_meta) for s in (1, 2)]
    mixed = [*records, *half]
    table = display.protocol_table(mixed)
    rows = table[(table.model == "hybrid") & (table.protocol == "speaker")]
    assert sorted(rows["dataset"]) == ["tess (1400 clips)", "tess (2800 clips)"] and sorted(rows["seeds"]) == [1, 2]
    assert "dataset" not in display.protocol_table(records).columns  # one dataset: no column needed
    assert sorted(scores_table(mixed).query("model == 'hybrid' and protocol == 'speaker'")["data"]) == [
        "tess (1400 clips)", "tess (2800 clips)"]

    folder = tmp_path / "results" / "reference"
    for r in mixed:
        save_record_in(r, folder)
    monkeypatch.setattr("ser_utils.run_context.project_root", lambda: tmp_path)
    quoted = plan.reference_records(["hybrid"], ["speaker"])
    out = capsys.readouterr().out
    assert [r["dataset"]["n_clips"] for r in quoted] == [2800]
    assert "TESS, 2800 clips" in out and "Left out, not pooled with those: 2 run(s) on TESS, 1400 of 2800" in out


def test_select_records_keeps_one_dataset_and_mode(records):
    demo = _record("hybrid", dataset={"name": "demo", "synthetic": True, "n_clips": 140, "quick": True})
    quick_tess = _record("cnn", dataset={"name": "tess", "synthetic": False, "n_clips": 2800, "quick": True})
    mixed = [*records, demo, quick_tess]
    assert comparison.select_records(mixed, "tess", False) == records
    assert comparison.select_records(mixed, "demo", True) == [demo]
    assert comparison.select_records(mixed, "tess") == [*records, quick_tess]
    assert comparison.select_records(mixed) == mixed


def test_other_features_lists_results_from_another_extraction(records):
    old = _record("lstm")
    old["config"] = {"features": "oldkey"}
    for r in records:
        r["config"] = {"features": "newkey"}
    records[5]["config"] = {"features": "oldkey"}  # the duration baseline uses no features
    assert comparison.other_features([*records, old], "newkey") == ["lstm/random/seed0"]
    cost = comparison.cost_table([*records, old])
    assert str(cost["n_params"].dtype) == "Int64"


def test_scores_figure_has_seed_error_bars_and_hatches_test_speaker_models(records):
    from matplotlib.collections import LineCollection

    from ser_utils import plots

    table = comparison.comparison_table(records + [_record("hybrid-spknorm", "speaker", wrong=20, folds=2)])
    fig = plots.scores_bar(table, metric="uar_mean")
    ax = fig.axes[0]
    bars = {(p.get_x(), p.get_height()): p for p in ax.patches}
    assert len(bars) == len(table)
    assert sum(bool(p.get_hatch()) for p in ax.patches) == 1  # only the -spknorm bar
    # one error bar per model run with more than one seed (logreg and hybrid, random split)
    assert sum(isinstance(c, LineCollection) for c in ax.collections) == 2


def test_recall_by_direction_pools_seeds_per_fold(records):
    table = comparison.recall_by_direction(records + [_record("hybrid", "speaker", seed=1, wrong=0, folds=2)])
    hybrid = table[table["model"] == "hybrid"].set_index("train -> test")
    assert list(hybrid.index) == ["f0", "f1"] and (hybrid["seeds"] == 2).all()
    # seed 0 got the first 35 clips (all of fold f0) wrong, seed 1 none: half of f0's clips, all of f1's
    from ser_utils.labels import EMOTIONS

    assert (hybrid.loc["f0", list(EMOTIONS)] == 50).all() and (hybrid.loc["f1", list(EMOTIONS)] == 100).all()


def test_key_findings_apply_the_paired_bootstrap_not_only_the_seed_spread():
    # Three seeds each, no spread at all, 2 clips of 70 apart: the seeds alone would crown `a`;
    # the paired bootstrap over the test clips does not.
    close = [_record(m, "speaker", seed=s, wrong=w, folds=2) for m, w in (("a", 20), ("b", 22)) for s in range(3)]
    assert "not told apart by the book's rule" in "\n".join(comparison.key_findings(close))
    far = [_record(m, "speaker", seed=s, wrong=w, folds=2) for m, w in (("a", 5), ("b", 40)) for s in range(3)]
    assert "the best is `a`" in "\n".join(comparison.key_findings(far))
    assert comparison.rule_verdict(far[:3], far[3:]) == "a" and comparison.rule_verdict(close[:3], close[3:]) == "tie"


def test_the_committed_results_page_is_what_report_writes_from_the_reference_files():
    """results/README.md's block is generated from results/reference/ (`report --results results/reference`), never
    typed: a reference file added, remade or removed without regenerating the page fails here."""
    root = Path(__file__).resolve().parents[1]
    page = (root / "results" / "README.md").read_text(encoding="utf-8")
    _, block = comparison.build_report(root / "results" / "reference")
    start, end = page.index(comparison.README_START), page.index(comparison.README_END)
    assert page[start + len(comparison.README_START):end].strip() == block.strip()


def test_per_emotion_tables_refuse_mixed_data_and_largest_dataset_picks_all_of_tess(records):
    half = _record("hybrid", "speaker", seed=2, folds=2, dataset={"name": "tess", "synthetic": False, "n_clips": 1400,
                                                                  "partial": True, "quick": False})
    with pytest.raises(ValueError, match="never pooled"):
        comparison.recall_by_direction([*records, half])
    with pytest.raises(ValueError, match="never pooled"):
        comparison.confusions([*records, half], "speaker")
    kept = comparison.largest_dataset([*records, half])
    assert half not in kept and len(kept) == len(records)
    assert set(comparison.recall_by_direction(kept)["seeds"]) == {1}


def test_committed_tess_references_are_all_2800_clips():
    """Every TESS file in results/reference/ is a full-corpus run: 2800 clips, 2 speakers, no ``partial`` flag."""
    folder = Path(__file__).resolve().parents[1] / "results" / "reference"
    files = sorted(folder.glob("*.json"))
    assert len(files) >= 70, "the reference grid is missing"
    wrong = [(f.name, d["dataset"].get("n_clips"), d["dataset"].get("partial"))
             for f in files if (d := json.loads(f.read_text()))["dataset"].get("n_clips") != 2800
             or d["dataset"].get("partial") or d["dataset"].get("quick")]
    assert not wrong, f"reference files not on all 2800 TESS clips: {wrong}"


def test_records_name_the_cpu_they_ran_on():
    """A record says which CPU made it: the same seed can flip a few predictions on another CPU model."""
    from ser_utils.evaluation import machine_info

    info = machine_info()
    assert set(info) == {"platform", "cpus", "cpu", "simd"} and info["cpu"] and info["simd"]
    assert _record("logreg")["machine"] == info


def test_committed_crema_references_name_their_actors():
    """Every CREMA-D file in results/reference/crema-d-dev/ names the 12 actors of the subset it ran on."""
    folder = Path(__file__).resolve().parents[1] / "results" / "reference" / "crema-d-dev"
    files = sorted(folder.glob("*.json"))
    assert files, "the CREMA-D reference runs are missing"
    named = {f.name: (d := json.loads(f.read_text())["dataset"]).get("actors") or d.get("crema_actors") for f in files}
    assert all(a and len(a) == 12 for a in named.values()), {n: a for n, a in named.items() if not a or len(a) != 12}
    assert len({tuple(a) for a in named.values()}) == 1, "the files ran on different actor subsets"
