"""Small audio factories shared by the tests (tiny synthetic signals, written to tmp folders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def tone(seconds: float = 0.6, sr: int = 24414, freq: float = 220.0, channels: int = 1) -> np.ndarray:
    """A voiced-like tone with harmonics and a fade, shape (n,) or (n, channels)."""
    t = np.arange(int(seconds * sr)) / sr
    y = sum(0.2 / k * np.sin(2 * np.pi * freq * k * t) for k in range(1, 6))
    y *= np.minimum(1, np.minimum(t, t[::-1]) / 0.05)
    y = y.astype(np.float32)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


def write_wav(path: Path, audio: np.ndarray, sr: int = 24414, fmt: str = "WAV") -> Path:
    """Write audio with soundfile (16-bit PCM), creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sr, format=fmt, subtype="PCM_16")
    return path


def fold_job(model: str, *, seed: int = 0, epochs: int | None = None, quick: bool = False, options=None,
             model_dir=None, progress: bool = False):
    """A :class:`~ser_utils.registry.FoldJob` from the keywords the tests spell (a name, an epoch cap, quick)."""
    from ser_utils.registry import FoldJob
    from ser_utils.run_context import RunMode

    return FoldJob.of(model, seed=seed, mode=RunMode(quick=quick, epochs=epochs), options=dict(options or {}),
                      model_dir=model_dir, progress=progress)


def save_tiny_whisper(folder: Path, *, window_s: int | None = 2) -> Path:
    """A random 2-layer, 16-d Whisper saved with ``save_pretrained`` (the ``from_pretrained`` path, no hub).

    ``window_s=2``: 2-s windows (100 positions); ``None``: Whisper's full 30-s window.
    """
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    window = {} if window_s is None else {"max_source_positions": 50 * window_s}
    cfg = WhisperConfig(vocab_size=60, num_mel_bins=80, d_model=16, encoder_layers=2, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                        decoder_ffn_dim=32, max_target_positions=20, pad_token_id=1, bos_token_id=2,
                        eos_token_id=1, decoder_start_token_id=2, **window)
    WhisperModel(cfg).save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=80, **({} if window_s is None else {"chunk_length": window_s})
                            ).save_pretrained(folder)
    return folder
