"""CREMA-D and RAVDESS by their official file names, their folds and the cross-corpus label set.

Every corpus here is a handful of short synthetic WAV files named by the
official scheme; the real 12-actor CREMA-D subset is only used, when present,
for one extra check.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser_utils.cli import main
from ser_utils.corpora import (
    ExcludedClipError,
    get_corpus,
    parse_crema_name,
    parse_ravdess_name,
    read_crema_speakers,
    read_ravdess_speakers,
    shared_emotions,
)
from ser_utils.data import MANIFEST_COLUMNS, build_manifest, detect_corpus, summarise_corpus, usable
from ser_utils.evaluation import FoldResult, compute_metrics
from ser_utils.features import FeatureConfig, FeatureSet
from ser_utils.labels import EMOTIONS, UnknownLabelError
from ser_utils.splits import actor_folds, cross_corpus_protocol, cross_corpus_split
from ser_utils.transfer import baseline_folds, combine_features

from .helpers import tone, write_wav

SR = 16000
CREMA_ACTORS = ("1001", "1002", "1091")
CREMA_CODES = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
CREMA_DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "crema-d-dev"


def make_crema(root: Path) -> Path:
    """3 actors x 2 sentences x 6 emotions in ``AudioWAV/``, a demographics file, one bad and one odd name."""
    for i, actor in enumerate(CREMA_ACTORS):
        for sentence, level in (("DFA", "XX"), ("IEO", "HI")):
            for k, emo in enumerate(CREMA_CODES):
                write_wav(root / "AudioWAV" / f"{actor}_{sentence}_{emo}_{level}.wav",
                          tone(0.3, SR, 150 + 20 * k + 5 * i), SR)
    (root / "AudioWAV" / "1001_TIE_SAD_XX.wav").write_bytes(b"")  # an empty file, as bad files come
    write_wav(root / "AudioWAV" / "1001_DFA_XYZ_XX.wav", tone(0.3, SR), SR)  # an unknown emotion code
    pd.DataFrame({"ActorID": [int(a) for a in CREMA_ACTORS], "Age": [51, 21, 30],
                  "Sex": ["Male", "Female", "Female"], "Race": ["Caucasian"] * 3,
                  "Ethnicity": ["Not Hispanic"] * 3}).to_csv(root / "VideoDemographics.csv", index=False)
    return root


def make_ravdess(root: Path, actors=(1, 2, 3)) -> Path:
    """Speech audio-only files of all 8 emotions (normal intensity, both statements), plus one song file."""
    for a in actors:
        for e in range(1, 9):
            for statement in ("01", "02"):
                name = f"03-01-{e:02d}-01-{statement}-01-{a:02d}.wav"
                write_wav(root / f"Actor_{a:02d}" / name, tone(0.3, SR, 120 + 15 * e + 3 * a), SR)
    write_wav(root / "Actor_01" / "03-02-03-01-01-01-01.wav", tone(0.3, SR), SR)  # song: excluded
    return root


# --- file names ---------------------------------------------------------------------------


@pytest.mark.parametrize("code,emotion", [("ANG", "angry"), ("DIS", "disgust"), ("FEA", "fear"),
                                          ("HAP", "happy"), ("NEU", "neutral"), ("SAD", "sad")])
def test_crema_codes_map_to_the_shared_names(code, emotion):
    name = parse_crema_name(f"1076_MTI_{code}_LO.wav")
    assert (name.speaker, name.word, name.emotion, name.clip_id) == ("1076", "MTI", emotion, f"1076_MTI_{code}_LO")


@pytest.mark.parametrize("bad", ["1076_MTI_XYZ_LO.wav", "OAF_back_angry.wav", "76_MTI_ANG_LO.wav", "notes.wav"])
def test_crema_rejects_other_names(bad):
    with pytest.raises(UnknownLabelError):
        parse_crema_name(bad)


@pytest.mark.parametrize("code,emotion", [("01", "neutral"), ("03", "happy"), ("04", "sad"), ("05", "angry"),
                                          ("06", "fear"), ("07", "disgust")])
def test_ravdess_codes_map_to_the_shared_names(code, emotion):
    name = parse_ravdess_name(f"03-01-{code}-02-02-01-07.wav")
    assert (name.speaker, name.word, name.emotion) == ("Actor_07", "dogs", emotion)
    assert name.clip_id == f"03-01-{code}-02-02-01-07"


@pytest.mark.parametrize("name,why", [("03-01-02-01-01-01-01.wav", "calm"), ("03-01-08-02-01-02-24.wav", "surprised"),
                                      ("03-02-03-01-01-01-01.wav", "song"), ("01-01-03-01-01-01-01.wav", "modality")])
def test_ravdess_calm_surprised_song_and_video_are_excluded_with_a_reason(name, why):
    with pytest.raises(ExcludedClipError, match=why):
        parse_ravdess_name(name)


@pytest.mark.parametrize("bad", ["03-01-09-01-01-01-01.wav", "03-01-05-01-01-01-25.wav", "3-1-5-1-1-1-1.wav"])
def test_ravdess_rejects_malformed_names_as_unlabelled(bad):
    with pytest.raises(UnknownLabelError) as info:
        parse_ravdess_name(bad)
    assert not isinstance(info.value, ExcludedClipError)


def test_shared_emotions_are_the_six_without_pleasant_surprise():
    six = ("angry", "disgust", "fear", "happy", "neutral", "sad")
    assert shared_emotions("tess", "crema-d") == six
    assert shared_emotions("tess", "ravdess") == six
    assert shared_emotions("tess") == EMOTIONS
    assert get_corpus("ravdess").native_labels["calm"] == "" and get_corpus("ravdess").native_labels["surprised"] == ""


# --- manifests ----------------------------------------------------------------------------


def test_crema_manifest_counts_and_bad_files(tmp_path):
    m = build_manifest(make_crema(tmp_path / "crema"), corpus="crema-d", progress=False)
    assert list(m.columns) == MANIFEST_COLUMNS
    ok = usable(m)
    assert len(ok) == 3 * 2 * 6 and ok["clip_id"].is_unique
    assert sorted(ok["speaker"].unique()) == list(CREMA_ACTORS)
    assert set(ok["emotion"]) == set(get_corpus("crema-d").emotions)
    status = m.set_index(m["path"].map(lambda p: Path(p).name))["status"]
    assert status["1001_TIE_SAD_XX.wav"] == "bad" and status["1001_DFA_XYZ_XX.wav"] == "unlabelled"
    assert ok["sample_rate"].eq(SR).all()
    s = summarise_corpus(m, "crema-d")
    assert s.n_ok == 36 and list(s.counts.columns) == list(get_corpus("crema-d").emotions)
    assert len(s.problems) == 2 and not s.is_full
    assert any("3 clips" not in n and "3 of the 91 actors" in n for n in s.notes)


def test_ravdess_manifest_drops_calm_surprised_and_song_explicitly(tmp_path):
    m = build_manifest(make_ravdess(tmp_path / "rav"), corpus="ravdess", progress=False)
    ok = usable(m)
    assert len(ok) == 3 * 6 * 2
    assert set(ok["emotion"]) == {"angry", "disgust", "fear", "happy", "neutral", "sad"}
    excluded = m[m["status"] == "excluded"]
    assert len(excluded) == 3 * 2 * 2 + 1  # calm and surprised of 3 actors x 2 statements, and the song file
    assert excluded["reason"].str.contains("calm").sum() == 6
    assert excluded["reason"].str.contains("surprised").sum() == 6
    s = summarise_corpus(m, "ravdess")
    assert s.problems.empty  # dropped by design is not a problem...
    assert sum("Excluded by design" in n for n in s.notes) == 3  # ...but is said, once per reason


def test_tess_stays_the_default_corpus(tmp_path):
    write_wav(tmp_path / "OAF_back_ps.wav", tone(0.3))
    m = build_manifest(tmp_path, progress=False)
    assert m.loc[0, "clip_id"] == "OAF_back_pleasant_surprise" and m.loc[0, "status"] == "ok"


def test_speaker_metadata(tmp_path):
    crema = read_crema_speakers(make_crema(tmp_path / "crema"))
    assert crema.set_index("speaker").loc["1002", "sex"] == "female"
    assert crema.set_index("speaker").loc["1001", "age"] == 51
    assert read_crema_speakers(tmp_path / "nothing_here").empty
    rav = read_ravdess_speakers(tmp_path).set_index("speaker")
    assert rav.loc["Actor_01", "sex"] == "male" and rav.loc["Actor_24", "sex"] == "female" and len(rav) == 24


def test_corpus_is_detected_from_the_names(tmp_path):
    assert detect_corpus(make_crema(tmp_path / "c")).name == "crema-d"
    assert detect_corpus(make_ravdess(tmp_path / "r", actors=(1,))).name == "ravdess"
    write_wav(tmp_path / "t" / "YAF_germ_angry.wav", tone(0.3))
    assert detect_corpus(tmp_path / "t").name == "tess"
    assert detect_corpus(tmp_path / "missing").name == "tess"


def test_manifest_command_autodetects_and_names_the_corpus(tmp_path, capsys):
    assert main(["manifest", str(make_crema(tmp_path / "c"))]) == 0
    out = capsys.readouterr().out
    assert "Corpus: CREMA-D" in out and "detected" in out and "36 clips, 3 actors, 6 emotions" in out
    assert main(["manifest", str(make_ravdess(tmp_path / "r", actors=(2,))), "--corpus", "ravdess"]) == 0
    out = capsys.readouterr().out
    assert "Corpus: RAVDESS" in out and "detected" not in out and "Excluded by design" in out


# --- protocols ----------------------------------------------------------------------------


def toy_manifest(actors, emotions=EMOTIONS[:6], per=3, prefix="") -> pd.DataFrame:
    rows = [{"clip_id": f"{prefix}{a}_{k}_{e}", "speaker": a, "word": f"s{k}", "emotion": e, "status": "ok"}
            for a in actors for e in emotions for k in range(per)]
    return pd.DataFrame(rows)


def _actors(m: pd.DataFrame, ids) -> set:
    return set(m.set_index("clip_id").loc[list(ids), "speaker"])


def test_leave_one_actor_out_keeps_every_actor_on_one_side():
    actors = [f"A{i:02d}" for i in range(12)]
    m = toy_manifest(actors)
    folds = actor_folds(m, seed=0)
    assert len(folds) == 12 and {f.protocol for f in folds} == {"actor-loo"}
    assert sorted(f.fold for f in folds) == [f"test {a}" for a in actors]
    for f in folds:
        train, val, test = _actors(m, f.train), _actors(m, f.val), _actors(m, f.test)
        assert len(test) == 1 and not (train & test) and not (val & test) and not (train & val)
        assert len(val) == 1  # 10 % of the 11 training actors, rounded, at least one
        assert set(f.train) | set(f.val) | set(f.test) == set(m["clip_id"])
    assert actor_folds(m, seed=0) == folds  # deterministic
    assert [f.val for f in actor_folds(m, seed=1)] != [f.val for f in folds]


def test_actor_kfold_groups_actors_and_stratifies():
    actors = [f"A{i:02d}" for i in range(10)]
    m = toy_manifest(actors)
    folds = actor_folds(m, n_folds=5, seed=3)
    assert len(folds) == 5 and {f.protocol for f in folds} == {"actor-kfold"}
    tested = [a for f in folds for a in _actors(m, f.test)]
    assert sorted(tested) == actors  # each actor tested exactly once
    for f in folds:
        assert not (_actors(m, f.train + f.val) & _actors(m, f.test))
    with pytest.raises(ValueError, match="at least 3 actors"):
        actor_folds(toy_manifest(["A", "B"]))


def test_cross_corpus_split_uses_only_shared_emotions_and_the_right_corpus():
    tess = toy_manifest(["OAF", "YAF"], EMOTIONS, per=10)
    crema = toy_manifest([f"10{i:02d}" for i in range(12)], EMOTIONS[:4] + EMOTIONS[6:], per=2)
    shared = shared_emotions("tess", "crema-d")
    s = cross_corpus_split(tess, crema, train_corpus="tess", test_corpus="crema-d", emotions=shared)
    assert s.protocol == "cross-tess-to-crema" == cross_corpus_protocol("tess", "crema-d")
    labels = pd.concat([tess, crema]).set_index("clip_id")["emotion"]
    assert set(labels.loc[list(s.train + s.val + s.test)]) == set(shared)
    assert "pleasant_surprise" not in set(labels.loc[list(s.train)])
    assert set(s.test) == set(crema["clip_id"])
    assert _actors(tess, s.train) == {"OAF", "YAF"}  # two speakers: validation is a slice of clips
    back = cross_corpus_split(crema, tess, train_corpus="crema-d", test_corpus="tess", emotions=shared)
    assert back.protocol == "cross-crema-to-tess" and len(_actors(crema, back.val)) == 1  # whole actors
    assert not (_actors(crema, back.val) & _actors(crema, back.train))
    with pytest.raises(ValueError, match="both corpora"):
        cross_corpus_split(tess, tess, train_corpus="tess", test_corpus="tess", emotions=shared)


# --- scoring over the shared label set ----------------------------------------------------


def test_uar_over_a_class_subset_does_not_count_absent_classes():
    six = [EMOTIONS.index(e) for e in shared_emotions("tess", "crema-d")]
    y = six * 3
    assert compute_metrics(y, y)["uar"] == pytest.approx(6 / 7)  # all 7 classes: the absent one scores 0
    assert compute_metrics(y, y, classes=six)["uar"] == 1.0
    d = FoldResult("f", [str(i) for i in range(len(y))], y, y, 10, 0, classes=six).as_dict()
    assert d["metrics"]["uar"] == 1.0 and len(d["confusion"]) == 6 and "pleasant_surprise" not in d["classes"]


def toy_features(m: pd.DataFrame, shift: float, seed: int) -> FeatureSet:
    """187-value vectors whose first columns say the emotion, plus a per-corpus offset and noise."""
    rng = np.random.default_rng(seed)
    y = m["emotion"].map(EMOTIONS.index).to_numpy()
    x = rng.normal(0, 0.5, (len(m), 187)).astype(np.float32) + shift
    x[np.arange(len(m)), y] += 4.0
    n = len(m)
    return FeatureSet(ids=m["clip_id"].to_numpy(), vectors=x, frames=np.zeros((n, 2, 187), np.float32),
                      images=np.zeros((n, 2, 2), np.uint8), n_frames_raw=np.ones(n, np.int32),
                      meta=m.reset_index(drop=True), failed=pd.DataFrame(columns=["clip_id", "reason"]),
                      config=FeatureConfig())


def test_cross_corpus_baseline_answers_only_with_shared_labels():
    tess = toy_manifest(["OAF", "YAF"], EMOTIONS, per=10)
    crema = toy_manifest(["1001", "1002", "1003"], shared_emotions("tess", "crema-d"), per=4)
    fs = combine_features(toy_features(tess, 0.0, 0), toy_features(crema, 3.0, 1))
    shared = shared_emotions("tess", "crema-d")
    split = cross_corpus_split(tess, crema, train_corpus="tess", test_corpus="crema-d", emotions=shared)
    for kind in ("logreg", "logreg-spknorm"):
        (fold,) = baseline_folds(fs, [split], kind, shared)
        assert set(fold.y_pred) <= {EMOTIONS.index(e) for e in shared}
        d = fold.as_dict()
        assert d["n_test"] == len(crema) and d["classes"] == list(shared)
    # per-speaker standardisation removes the corpus offset the raw model trips over
    raw = baseline_folds(fs, [split], "logreg", shared)[0].as_dict()["metrics"]["uar"]
    norm = baseline_folds(fs, [split], "logreg-spknorm", shared)[0].as_dict()["metrics"]["uar"]
    assert norm > 0.9 and norm > raw


@pytest.mark.skipif(not CREMA_DEV.is_dir(), reason="the real CREMA-D subset ../shared/data/crema-d-dev is absent")
def test_manifest_on_the_real_crema_d_subset(capsys):
    assert main(["manifest", str(CREMA_DEV)]) == 0
    out = capsys.readouterr().out
    assert "978 clips, 12 actors, 6 emotions" in out and "Bad or skipped files: none" in out


def test_reference_runs_write_records_naming_corpus_protocol_and_subset(tmp_path):
    from ser_utils.evaluation import load_records
    from ser_utils.transfer import reference_runs

    from .test_data import make_tess

    crema = make_crema(tmp_path / "crema-mini")
    # 10 words: the stratified validation slice of two-speaker TESS needs a clip of each emotion
    tess = make_tess(tmp_path / "tess-mini", "flat", words=tuple(f"w{i}" for i in range(10)))
    records = reference_runs(crema, tess, tmp_path / "art", tmp_path / "out", jobs=1)
    saved = {(r["model"], r["protocol"]): r for r in load_records(tmp_path / "out")}
    protocols = {"actor-loo", "cross-tess-to-crema", "cross-crema-to-tess"}
    assert set(saved) == {(m, p) for m in ("logreg", "logreg-spknorm") for p in protocols}
    assert len(records) == 6
    loo = saved[("logreg", "actor-loo")]
    assert loo["dataset"]["name"] == "crema-d" and "3-actor subset" in loo["dataset"]["subset"]
    assert [f["fold"] for f in loo["folds"]] == [f"test {a}" for a in CREMA_ACTORS]
    cross = saved[("logreg-spknorm", "cross-tess-to-crema")]
    assert cross["dataset"]["train_corpus"] == "tess" and cross["dataset"]["test_corpus"] == "crema-d"
    assert cross["folds"][0]["classes"] == list(shared_emotions("tess", "crema-d"))
    assert cross["folds"][0]["n_test"] == 36 and cross["folds"][0]["n_train"] == 2 * 10 * 6  # ps left out
    assert 0.0 <= cross["metrics"]["uar"] <= 1.0 and "git_commit" in cross


# --- a corpus whose labels sit in a file beside the audio (as IEMOCAP's do) -------------------


def _read_label_beside(path: Path):
    """``<clip>.txt`` next to ``<clip>.wav``: ``speaker<TAB>emotion<TAB>text``."""
    from ser_utils.corpora import ClipName

    label = path.with_suffix(".txt")
    if not label.is_file():
        raise UnknownLabelError(f"no label file {label.name} beside {path.name}")
    speaker, emotion, text = label.read_text(encoding="utf-8").strip().split("\t")
    if emotion not in EMOTIONS:
        raise UnknownLabelError(f"{label.name}: unknown emotion {emotion!r}")
    return ClipName(speaker, text, emotion, f"{speaker}_{path.stem}".lower())


def test_a_corpus_can_read_its_labels_from_a_file_beside_the_audio(tmp_path):
    from dataclasses import replace

    from ser_utils.corpora import get_corpus

    toy = replace(get_corpus("crema-d"), name="toy-beside", title="toy corpus", read_label=_read_label_beside)
    for stem, line in (("utt1", "S1\tangry\tkids are talking"), ("utt2", "S2\tsad\tdogs are sitting"),
                       ("utt3", None), ("utt4", "S1\tbored\tnot a class")):
        write_wav(tmp_path / f"{stem}.wav", tone())  # the names say nothing about the labels
        if line is not None:
            (tmp_path / f"{stem}.txt").write_text(line + "\n", encoding="utf-8")
    m = build_manifest(tmp_path, corpus=toy, progress=False).set_index("path")
    row = {Path(p).stem: r for p, r in m.iterrows()}
    assert (row["utt1"]["speaker"], row["utt1"]["emotion"], row["utt1"]["word"]) == ("S1", "angry", "kids are talking")
    assert (row["utt2"]["status"], row["utt2"]["emotion"]) == ("ok", "sad")
    assert row["utt3"]["status"] == "unlabelled" and "no label file utt3.txt" in row["utt3"]["reason"]
    assert row["utt4"]["status"] == "unlabelled" and "bored" in row["utt4"]["reason"]
    # a corpus without the hook still reads the file name: these names are no CREMA-D names
    plain = build_manifest(tmp_path, corpus=get_corpus("crema-d"), progress=False)
    assert set(plain["status"]) == {"unlabelled"}
