"""Discovery in every TESS layout, and bad input handled without crashing."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser_utils.data import (
    TessNotFoundError,
    build_manifest,
    load_clip,
    probe_audio,
    summarise_manifest,
    usable,
)
from ser_utils.labels import EMOTIONS

from .helpers import tone, write_wav

SPELLINGS = {"angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
             "neutral": "neutral", "pleasant_surprise": "ps", "sad": "sad"}
FOLDERS = {"OAF": {"fear": "OAF_Fear", "pleasant_surprise": "OAF_Pleasant_surprise", "sad": "OAF_Sad"},
           "YAF": {"pleasant_surprise": "YAF_pleasant_surprised"}}


def make_tess(root: Path, layout: str, words=("back", "bar")) -> Path:
    """A tiny TESS copy in one of the published layouts."""
    for spk in ("OAF", "YAF"):
        for emo, tag in SPELLINGS.items():
            for w in words:
                name = f"{spk}_{w}_{tag}.wav"
                folder = FOLDERS.get(spk, {}).get(emo, f"{spk}_{emo}")
                if layout == "flat":
                    path = root / name
                elif layout == "folders":
                    path = root / folder / name
                elif layout == "kaggle":  # the copy nested inside itself
                    path = root / "TESS Toronto emotional speech set data" / folder / name
                    write_wav(root / "tess toronto emotional speech set data" / "TESS Toronto emotional speech set data"
                              / folder / name, tone(0.5))
                write_wav(path, tone(0.5 + 0.1 * EMOTIONS.index(emo)))
    return root


@pytest.mark.parametrize("layout", ["flat", "folders", "kaggle"])
def test_every_layout_gives_the_same_manifest(tmp_path, layout):
    m = build_manifest(make_tess(tmp_path / layout, layout), progress=False)
    ok = usable(m)
    assert len(ok) == 2 * 7 * 2
    assert set(ok["emotion"]) == set(EMOTIONS)
    assert set(ok["speaker"]) == {"OAF", "YAF"}
    assert ok["clip_id"].is_unique
    if layout == "kaggle":  # the nested second copy is found but marked duplicate
        assert (m["status"] == "duplicate").sum() == 28
    s = summarise_manifest(m)
    assert not s.is_full and "PARTIAL SET" in " ".join(s.notes)
    assert (s.counts.to_numpy() == 2).all()


def test_full_set_is_recognised(tmp_path, monkeypatch):
    m = build_manifest(make_tess(tmp_path, "flat"), progress=False)
    assert summarise_manifest(m, expected_size=28).is_full


def test_missing_folder_says_where_and_how(tmp_path):
    with pytest.raises(TessNotFoundError, match="(?s)does not exist.*Dataverse"):
        build_manifest(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TessNotFoundError, match="no .wav files"):
        build_manifest(tmp_path / "empty")


def bad_corpus(root: Path) -> Path:
    write_wav(root / "OAF_good_angry.wav", tone(0.6))
    (root / "OAF_empty_angry.wav").write_bytes(b"")
    (root / "OAF_text_angry.wav").write_text("this is not audio")
    full = write_wav(root / "OAF_trunc_angry.wav", tone(0.8)).read_bytes()
    (root / "OAF_trunc_angry.wav").write_bytes(full[: len(full) // 3])
    write_wav(root / "OAF_short_angry.wav", tone(0.05))
    write_wav(root / "OAF_silent_angry.wav", np.zeros(20000, dtype=np.float32))
    write_wav(root / "OAF_stereo_happy.wav", tone(0.6, channels=2))
    write_wav(root / "OAF_food_fear.wav", tone(0.6, sr=96000), sr=96000)
    write_wav(root / "YAF_germ_angry.wav", tone(0.6), fmt="AIFF")  # AIFF under a .wav name
    write_wav(root / "OAF_word_bored.wav", tone(0.6))  # unknown label
    return root


def test_bad_files_are_listed_with_reasons_and_quirks_handled(tmp_path):
    m = build_manifest(bad_corpus(tmp_path), progress=False).set_index("clip_id")
    assert m.loc["OAF_good_angry", "status"] == "ok"
    reasons = {
        "OAF_empty_angry": "empty",
        "OAF_text_angry": "not readable as audio",
        "OAF_trunc_angry": "truncated",
        "OAF_short_angry": "too short",
        "OAF_silent_angry": "silent",
    }
    for cid, why in reasons.items():
        assert m.loc[cid, "status"] == "bad", cid
        assert why in m.loc[cid, "reason"], (cid, m.loc[cid, "reason"])
    assert m.loc["oaf_word_bored", "status"] == "unlabelled"
    assert "unknown emotion" in m.loc["oaf_word_bored", "reason"]
    # quirks kept, not lost
    assert m.loc["OAF_stereo_happy", "status"] == "ok" and m.loc["OAF_stereo_happy", "channels"] == 2
    assert m.loc["OAF_food_fear", "sample_rate"] == 96000 and m.loc["OAF_food_fear", "status"] == "ok"
    assert m.loc["YAF_germ_angry", "format"] == "AIFF" and m.loc["YAF_germ_angry", "status"] == "ok"
    text = str(summarise_manifest(m.reset_index()))
    assert "OAF_text_angry.wav: bad" in text and "AIFF data under a .wav name" in text


def test_load_clip_downmixes_and_resamples(tmp_path):
    path = write_wav(tmp_path / "x.wav", tone(1.0, sr=96000, channels=2), sr=96000)
    y = load_clip(path, 22050)
    assert y.ndim == 1 and abs(len(y) - 22050) <= 2 and y.dtype == np.float32


def test_probe_never_raises(tmp_path):
    p = tmp_path / "junk.wav"
    p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    probe = probe_audio(p)
    assert not probe.ok and probe.reason


def test_real_tess_dev_is_all_of_tess(tess_dev):
    """Extra check when the real TESS copy (all 2800 clips, WAV + FLAC) is on this machine."""
    m = build_manifest(tess_dev, progress=False)
    s = summarise_manifest(m)
    assert s.n_ok == 2800 and s.is_full and not s.notes
    assert (s.counts.to_numpy() == 200).all() and s.n_words == 200
    assert sorted(s.counts.index) == ["OAF", "YAF"]  # OA_bite_neutral belongs to OAF
    suffixes = {p.rsplit(".", 1)[-1].lower() for p in m["path"]}
    assert suffixes == {"wav", "flac"}  # ids are file stems, whatever the container
    quirks = " ".join(s.quirks["quirk"])
    assert "96000 Hz" in quirks and "AIFF" in quirks
    assert isinstance(m, pd.DataFrame)
