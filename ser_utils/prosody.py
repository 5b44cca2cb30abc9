"""A prosody view of each clip: pitch (F0), loudness and a speaking-rate proxy, with librosa.

The paper's 187 values describe the spectrum (timbre); how a voice *moves* -
pitch level and range, loudness, tempo - is what listeners hear first in
emotional speech, and it is what the field's standard sets (eGeMAPS) are
built around. This module computes 13 such functionals per clip:

================  ==============================================================
name              what it measures
================  ==============================================================
f0_mean, f0_sd    pitch level and variability, in semitones above 55 Hz (voiced frames)
f0_p5, f0_p95     low and high end of the pitch range (5th, 95th percentile)
f0_range          p95 - p5 in semitones
f0_slope          linear pitch trend over the clip, semitones per second
voiced_frac       share of frames judged voiced
rms_mean, rms_sd  loudness level and variability, dB below the clip's peak frame
rms_range         95th - 5th percentile of the frame loudness, dB
rms_slope         loudness trend, dB per second
onset_rate        energy onsets per second (a syllable-rate proxy)
pause_frac        share of frames 30 dB or more below the peak (pauses inside the clip)
================  ==============================================================

Pitch comes from ``librosa.yin`` (fast) or ``librosa.pyin`` (probabilistic,
with its own voicing decision, several times slower). With ``yin`` a frame
counts as voiced when it is within 30 dB of the loudest frame and its pitch
lies inside [fmin, fmax]. Absolute pitch and loudness differ from speaker to
speaker (and loudness from recording to recording), so these values are meant
to be used with per-speaker standardisation as well as without.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .cache import cache_key, check, read_valid
from .outputs import atomic_write
from .quiet import bar_hidden
from .workers import stop_if_orphaned, worker_pool

PROSODY_NAMES: tuple[str, ...] = (
    "f0_mean", "f0_sd", "f0_p5", "f0_p95", "f0_range", "f0_slope", "voiced_frac",
    "rms_mean", "rms_sd", "rms_range", "rms_slope", "onset_rate", "pause_frac",
)


@dataclass(frozen=True)
class ProsodyConfig:
    """Parameters of :func:`prosody_vector`; their hash names the cache file."""

    sample_rate: int = 16000  # pitch and loudness need no more, and every corpus here has at least this
    frame_length: int = 1024
    hop_length: int = 256
    fmin: float = 65.0  # C2: below any adult speaking voice
    fmax: float = 500.0  # B4: above most emotional speech
    method: str = "yin"  # or "pyin"
    trim_db: float = 30.0
    silence_db: float = 30.0

    def key(self) -> str:
        """Short stable hash of the parameters."""
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def prosody_vector(audio: np.ndarray, cfg: ProsodyConfig = ProsodyConfig()) -> np.ndarray:
    """The 13 prosodic functionals (:data:`PROSODY_NAMES`) of one mono clip at ``cfg.sample_rate``.

    >>> sr = 16000
    >>> t = np.arange(sr) / sr
    >>> v = prosody_vector((0.3 * np.sin(2 * np.pi * 220 * t)).astype("float32"))
    >>> v.shape, round(float(v[0]))  # 220 Hz is 24 semitones above 55 Hz
    ((13,), 24)

    A clip with no voiced frame gets NaN for the pitch values (and 0 voiced
    fraction); the caller decides how to fill them.
    """
    import librosa

    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"expected a non-empty mono signal, got shape {audio.shape}")
    sr, hop, n = cfg.sample_rate, cfg.hop_length, cfg.frame_length
    trimmed, _ = librosa.effects.trim(audio, top_db=cfg.trim_db, frame_length=n, hop_length=hop)
    y = trimmed if trimmed.size >= n else audio
    if y.size < n:
        y = np.pad(y, (0, n - y.size))
    rms = librosa.feature.rms(y=y, frame_length=n, hop_length=hop)[0]
    db = librosa.amplitude_to_db(rms, ref=np.max(rms) if np.max(rms) > 0 else 1.0, top_db=80.0)
    loud = db > -cfg.silence_db
    if cfg.method == "pyin":
        f0, voiced, _ = librosa.pyin(y, fmin=cfg.fmin, fmax=cfg.fmax, sr=sr, frame_length=n, hop_length=hop)
        voiced = voiced & np.isfinite(f0)
    elif cfg.method == "yin":
        from scipy.signal import medfilt

        # A 5-frame median removes most of yin's isolated octave jumps.
        f0 = medfilt(librosa.yin(y, fmin=cfg.fmin, fmax=cfg.fmax, sr=sr, frame_length=n, hop_length=hop), 5)
        m = min(len(f0), len(loud))
        f0, loud_f = f0[:m], loud[:m]
        voiced = loud_f & (f0 > cfg.fmin * 1.01) & (f0 < cfg.fmax * 0.99)
    else:
        raise ValueError(f"method must be 'yin' or 'pyin', not {cfg.method!r}")
    t = np.arange(len(db)) * hop / sr
    semis = 12 * np.log2(np.maximum(f0[voiced], 1e-3) / 55.0)
    tv = np.arange(len(f0))[voiced] * hop / sr
    if semis.size >= 2:
        p5, p95 = np.percentile(semis, [5, 95])
        pitch = [semis.mean(), semis.std(), p5, p95, p95 - p5, _slope(tv, semis)]
    else:
        pitch = [np.nan] * 6
    q5, q95 = np.percentile(db, [5, 95])
    onsets = librosa.onset.onset_detect(y=y, sr=sr, hop_length=hop, units="time")
    duration = y.size / sr
    return np.array(
        pitch + [voiced.mean(), db.mean(), db.std(), q95 - q5, _slope(t, db), len(onsets) / duration,
                 1.0 - loud.mean()],
        dtype=np.float32,
    )


def _slope(t: np.ndarray, v: np.ndarray) -> float:
    """Least-squares slope of v over t (0 when t does not vary)."""
    if len(t) < 2 or np.ptp(t) == 0:
        return 0.0
    return float(np.polyfit(t, v, 1)[0])


def extract_prosody(path: str | os.PathLike, cfg: ProsodyConfig = ProsodyConfig()) -> np.ndarray:
    """Load one file (any rate, channels or container) and return its :func:`prosody_vector`."""
    from .data import load_clip

    return prosody_vector(load_clip(path, cfg.sample_rate), cfg)


def ensure_prosody(
    manifest: pd.DataFrame,
    artifacts_dir: str | os.PathLike,
    cfg: ProsodyConfig = ProsodyConfig(),
    *,
    jobs: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Prosody of every usable clip as a DataFrame (index ``clip_id``, columns :data:`PROSODY_NAMES`), cached.

    The table is saved atomically under ``<artifacts_dir>/prosody/<cfg.key()>/<key>.csv``, the key
    covering every clip's id and whole content (:func:`ser_utils.cache.cache_key`); a cached table
    that is truncated or does not match the clips is recomputed with a warning. A clip that cannot
    be read gets a row of NaN.
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    from .data import usable

    ok = usable(manifest)
    cache = (Path(artifacts_dir) / "prosody" / cfg.key()
             / f"{cache_key({'prosody': cfg.key()}, zip(ok['clip_id'], ok['path'], strict=True))}.csv")
    ids = list(ok["clip_id"])
    table = read_valid(cache, lambda f: read_table(f, ids, PROSODY_NAMES), what="prosody cache")
    if table is not None:
        return table
    parent = os.getpid()

    def one(path: str) -> np.ndarray:
        stop_if_orphaned(parent)
        try:
            return extract_prosody(path, cfg)
        except Exception:  # one bad clip must not stop the run; it shows up as NaN
            return np.full(len(PROSODY_NAMES), np.nan, np.float32)

    paths = list(ok["path"])
    with worker_pool():  # Parallel reads the pool settings when it is made: inside
        runner = Parallel(n_jobs=jobs or os.cpu_count() or 1, return_as="generator")
        rows = list(tqdm(runner(delayed(one)(p) for p in paths), total=len(paths), desc="Prosody",
                         unit="clip", disable=bar_hidden(progress)))
    table = pd.DataFrame(np.array(rows).reshape(-1, len(PROSODY_NAMES)), columns=list(PROSODY_NAMES),
                         index=pd.Index(ok["clip_id"], name="clip_id"))
    with atomic_write(cache, what="prosody cache") as tmp:
        table.to_csv(tmp)
    return table


def read_table(path: Path, ids: list[str], columns) -> pd.DataFrame:
    """A cached per-clip table, checked: exactly ``ids`` in order (no row lost to a truncation), ``columns``.

    NaN is allowed (a clip without voiced frames has no pitch), infinities are not.
    """
    table = pd.read_csv(path, index_col="clip_id")
    check(list(table.columns) == list(columns), f"{len(table.columns)} columns, expected {len(columns)}")
    check([str(i) for i in table.index] == [str(i) for i in ids],
          f"{len(table)} rows for {len(ids)} clips (or other clips)")
    values = table.to_numpy(dtype=float)
    check(not np.isinf(values).any(), "infinite values")
    return table


def fill_missing(x: np.ndarray, value: float = 0.0) -> np.ndarray:
    """Replace NaN (a clip with no voiced frame) by a constant, so no statistic of other clips is used.

    ``voiced_frac`` is 0 for such clips, so a model can still tell them apart.
    """
    x = np.array(x, dtype=np.float32)
    x[~np.isfinite(x)] = value
    return x
