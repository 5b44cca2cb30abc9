"""The pretrained-encoder family as a registry entry: ``whisper`` trains, saves, loads, predicts and reports
through run_experiment like any model (on a tiny random Whisper saved locally: the from_pretrained path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ser_utils.errors import UserError
from ser_utils.evaluation import load_record
from ser_utils.experiments import run_experiment, scores_table
from ser_utils.registry import ModelSpec

from .helpers import save_tiny_whisper

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> str:
    """A random 2-layer, 16-d Whisper with the full 30-s window, saved with save_pretrained."""
    return str(save_tiny_whisper(tmp_path_factory.mktemp("tiny-whisper-30s"), window_s=None))


def test_whisper_names_parse_into_the_encoder_family():
    spec = ModelSpec.parse("whisper-probe-layer2")
    assert spec.family.name == "encoder" and spec.flags == {"probe", "layer2"} and spec.name == "whisper-probe-layer2"
    assert ModelSpec.parse("whisper-select-probe30s").name == "whisper-probe30s-select"  # canonical order
    spec.family.check(spec, {"encoder": "some/folder"})
    for bad, why in (("whisper-probe-layer1-layer2", "one read-out and one layer"), ("whisper", "one read-out"),
                     ("whisper-probe-crema", "pretrained-reference"), ("whisper-weighted", "pretrained-reference")):
        with pytest.raises(ValueError, match=why):
            spec.family.check(ModelSpec.parse(bad), {})
    with pytest.raises(ValueError, match="unknown option"):
        spec.family.check(spec, {"epochs_per_layer": 3})


def test_a_fixed_layer_probe_trains_saves_loads_predicts_and_reports(quick_chapter, tiny_encoder):
    record = run_experiment(quick_chapter, "whisper-probe-layer1", "speaker", 0, options={"encoder": tiny_encoder},
                            progress=False)
    saved = load_record(Path(record["_path"]))
    assert saved["model"] == "whisper-probe-layer1" and saved["protocol"] == "speaker" and len(saved["folds"]) == 2
    assert saved["config"]["encoder"] == tiny_encoder
    family = ModelSpec.parse("whisper-probe-layer1").family
    emb = family.embeddings(quick_chapter, {"encoder": tiny_encoder}, "clip")
    for fold in saved["folds"]:
        assert fold["chosen_layer"] == 1
        probe, sidecar = family.load(fold["model_path"])
        assert probe.layer == 1 and sidecar["fold"] == fold["fold"] and len(sidecar["train_speakers"]) == 1
        assert sidecar["train_speakers"] == [fold["fold"].split("->")[0]]  # fold "A->B": trained on A only
        ids = fold["predictions"]["ids"]
        again = family.predict(probe, emb.mean[emb.index(ids), 1]).argmax(axis=1)
        assert again.tolist() == fold["predictions"]["y_pred"]  # the saved probe is the one that was scored
    table = scores_table([saved])
    assert table["model"].tolist() == ["whisper-probe-layer1"]


def test_choosing_the_layer_needs_two_training_speakers(quick_chapter, tiny_encoder):
    with pytest.raises(UserError, match="whisper-probe-layer2"):
        run_experiment(quick_chapter, "whisper-probe-select", "speaker", 0, options={"encoder": tiny_encoder},
                       save=False, progress=False)
    rec = run_experiment(quick_chapter, "whisper-probe-select", "random", 0, options={"encoder": tiny_encoder},
                         save=False, progress=False)
    fold = rec["folds"][0]
    assert fold["chosen_layer"] in (0, 1, 2) and len(fold["inner_uar"]) == 3  # embeddings + 2 layers
    assert int(np.argmax(fold["inner_uar"])) == fold["chosen_layer"]


def test_predict_command_reads_a_fold_probe(quick_chapter, tiny_encoder, capsys):
    from ser_utils.cli import main

    rec = run_experiment(quick_chapter, "whisper-probe-layer0", "speaker", 0, options={"encoder": tiny_encoder},
                         progress=False)
    fold = rec["folds"][0]
    clip = quick_chapter.manifest.set_index("clip_id").loc[fold["predictions"]["ids"][0], "path"]
    assert main(["predict", str(clip), "--model", fold["model_path"]]) == 0
    out = capsys.readouterr().out
    assert "probability" in out.lower() or "%" in out


def test_train_command_takes_the_name_and_the_encoder_option(demo_dir, tiny_encoder, tmp_path, capsys):
    from ser_utils.cli import main

    art = tmp_path / "art"
    assert main(["train", "whisper-probe30s-layer1", "--data-dir", str(demo_dir), "--dataset", "demo", "--quick",
                 "--protocol", "speaker", "--artifacts", str(art), "--option", f"encoder={tiny_encoder}"]) == 0
    rec = load_record(art / "results" / "whisper-probe30s-layer1__speaker__seed0.json")
    assert rec["config"]["encoder"] == tiny_encoder and rec["folds"][0]["padding"] == "30s"
    assert main(["train", "whisper-probe-layer1", "--option", "encoder"]) == 2
    assert main(["train", "whisper-probe-layer1", "--spknorm"]) == 2
    err = capsys.readouterr().err
    assert "--option takes KEY=VALUE" in err and "--spknorm applies only to" in err


def test_a_probe_runs_across_corpora_through_transfer(demo_dir, tiny_encoder, tmp_path):
    from ser_utils.cross_corpus import CrossCorpusRun, cross_corpus_records
    from ser_utils.run_context import RunMode
    from ser_utils.synth import write_demo_crema

    crema = write_demo_crema(tmp_path / "crema", n_actors=3, n_sentences=2)
    run = CrossCorpusRun("whisper-probe-layer1", (demo_dir,), crema, tmp_path / "out", tmp_path / "art",
                         options={"encoder": tiny_encoder}, mode=RunMode(quick=True))
    (rec,) = cross_corpus_records(run, progress=False)
    fold = rec["folds"][0]
    assert rec["protocol"] == "cross-tess-to-crema" and fold["chosen_layer"] == 1
    assert set(fold["predictions"]["y_pred"]) <= {0, 1, 2, 3, 4, 6}  # the probe never saw ps: it cannot answer it


@pytest.mark.slow  # about 40 s: Whisper over 30-s inputs
def test_the_reference_run_with_30s_padding_scores_both_corpora(tiny_encoder, tmp_path):
    """``pretrained-reference --padding-30s``: the padded read-outs of CREMA-D and of TESS's speaker protocol,
    TESS's layer chosen on CREMA-D's padded actors; every file names its padding."""
    import json

    from ser_utils.encoder_runs import ReferenceRun, reference_run
    from ser_utils.synth import write_demo_corpus, write_demo_crema

    tess = write_demo_corpus(tmp_path / "tess", n_words=9, progress=False)  # small (the speaker split needs 9): 30-s padding is slow
    crema = write_demo_crema(tmp_path / "crema", n_actors=3, n_sentences=1)
    run = ReferenceRun(tess, crema, tmp_path / "art", tmp_path / "out", source=tiny_encoder, seeds=(),
                       paddings=("clip", "30s"))  # seeds=(): no learned head, only the deterministic probes
    paths = reference_run(run, progress=False)
    records = {p.name: json.loads(p.read_text()) for p in paths}
    padded = {n for n in records if n.startswith("whisper-probe30s-")}
    assert "whisper-probe30s-crema__speaker__seed0.json" in padded
    assert "whisper-probe30s-layer0__actor-loo__seed0.json" in padded
    assert all(records[n]["config"]["padding"] == "30s" for n in padded)
    assert records["whisper-probe-crema__speaker__seed0.json"]["config"]["padding"] == "clip"
