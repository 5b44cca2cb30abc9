"""Splits: no train/test overlap, stratified, deterministic, saved and reloaded."""

import pandas as pd
import pytest

from ser_utils.labels import EMOTIONS
from ser_utils.splits import ensure_splits, load_splits, make_splits, save_splits, split_path


def toy_manifest(n_words=20, speakers=("OAF", "YAF")) -> pd.DataFrame:
    rows = [
        {"clip_id": f"{s}_{w}_{e}", "speaker": s, "word": f"w{w}", "emotion": e, "status": "ok", "duration": 1.0}
        for s in speakers for w in range(n_words) for e in EMOTIONS
    ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("protocol", ["random", "speaker", "word"])
def test_no_overlap_and_full_coverage(protocol):
    m = toy_manifest()
    for s in make_splits(m, protocol, seed=1):
        train, val, test = set(s.train), set(s.val), set(s.test)
        assert not (train & test) and not (val & test) and not (train & val)
        assert train | val | test <= set(m["clip_id"])
        if protocol != "speaker":
            assert train | val | test == set(m["clip_id"])


def test_random_split_is_stratified_80_20():
    m = toy_manifest()
    (s,) = make_splits(m, "random", seed=0)
    emo = m.set_index("clip_id")["emotion"]
    counts = emo.loc[list(s.test)].value_counts()
    assert counts.min() == counts.max() == 8  # 20% of 40 clips per emotion
    assert len(s.test) == 0.2 * len(m)
    val_counts = emo.loc[list(s.val)].value_counts()
    assert val_counts.max() - val_counts.min() <= 1


def test_speaker_folds_are_speaker_disjoint_both_directions():
    m = toy_manifest().set_index("clip_id")
    folds = make_splits(m.reset_index(), "speaker", seed=0)
    assert sorted(f.fold for f in folds) == ["OAF->YAF", "YAF->OAF"]
    for f in folds:
        train_spk = set(m.loc[list(f.train + f.val), "speaker"])
        test_spk = set(m.loc[list(f.test), "speaker"])
        assert len(train_spk) == 1 and len(test_spk) == 1 and train_spk.isdisjoint(test_spk)


def test_word_split_is_word_disjoint_including_validation():
    m = toy_manifest().set_index("clip_id")
    (s,) = make_splits(m.reset_index(), "word", seed=0)
    words = {part: set(m.loc[list(getattr(s, part)), "word"]) for part in ("train", "val", "test")}
    assert words["train"].isdisjoint(words["test"]) and words["val"].isdisjoint(words["test"])
    assert words["train"].isdisjoint(words["val"])


def test_deterministic_by_seed_and_seed_matters():
    m = toy_manifest()
    assert make_splits(m, "random", 5) == make_splits(m, "random", 5)
    assert make_splits(m, "random", 5)[0].test != make_splits(m, "random", 6)[0].test


def test_bad_clips_are_never_split():
    m = toy_manifest()
    m.loc[0, "status"] = "bad"
    (s,) = make_splits(m, "random", 0)
    assert m.loc[0, "clip_id"] not in set(s.train + s.val + s.test)


def test_json_round_trip_and_ensure_reuses(tmp_path):
    m = toy_manifest()
    folds = make_splits(m, "speaker", 2)
    assert load_splits(save_splits(folds, tmp_path / "s.json")) == folds
    first = ensure_splits(m, tmp_path, "word", 0)
    assert split_path(tmp_path, "word", 0).exists()
    assert ensure_splits(m, tmp_path, "word", 0) == first


def test_unknown_protocol():
    with pytest.raises(ValueError, match="protocol"):
        make_splits(toy_manifest(), "session", 0)
    with pytest.raises(ValueError, match="two speakers"):
        make_splits(toy_manifest(speakers=("OAF",)), "speaker", 0)
