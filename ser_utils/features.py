"""Chroma, mel, spectral contrast and MFCC from one STFT per clip, cached on disk.

Per clip we compute, from a single magnitude STFT:

========  =====  ==============================================================
group     size   what it measures
========  =====  ==============================================================
chroma    12     energy per pitch class (C, C#, ..., B), octaves folded: no pitch height
mel       128    dB in 128 mel-spaced bands, relative to the clip's peak (ref=max)
contrast  7      peak-minus-valley level in 6 octave bands + 1: how "peaky"
mfcc      40     DCT of the log-mel spectrum: a compact envelope description
========  =====  ==============================================================

and store three views of it:

- ``vectors`` (N, 187): the paper's time-averaged vector, columns named by
  :data:`FEATURE_NAMES` (``chroma_3``, ``mfcc_12``...).
- ``frames`` (N, T, 187): the frame sequence **time-normalised** to
  ``n_frames`` steps by linear interpolation. Padding with zeros would tell a
  model how long the clip was, and TESS clip length leaks the label (fear is
  short, disgust long), so every clip is stretched to the same length instead.
  The true frame count is kept in ``n_frames_raw`` for anyone who wants to add
  duration back on purpose.
- ``images`` (N, S, S) uint8: the log-mel spectrogram (row 0 = lowest band),
  time-normalised like the frames and resized to S x S, scaled from
  [max - 80 dB, max] to [0, 255]. :func:`as_rgb` repeats it to 3 channels for
  the vision models, whose own processors then apply their mean/std.

Extraction runs in parallel over chunks of clips (joblib), shows a tqdm bar,
and writes each finished chunk to ``<artifacts>/features/<config-hash>/``, so
a second run is near-instant and an interrupted run resumes at the first
missing chunk. A clip that fails is reported with its reason and left out.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
from PIL import Image

from .cache import cache_key, check, read_valid, write_json
from .labels import EMOTIONS
from .outputs import atomic_write
from .quiet import bar_hidden
from .workers import one_blas_thread, stop_if_orphaned, worker_pool

N_CHROMA, N_MELS, N_CONTRAST, N_MFCC = 12, 128, 7, 40
#: Column slices of the 187-d vector (and of each frame), by feature group.
FEATURE_GROUPS: dict[str, slice] = {
    "chroma": slice(0, N_CHROMA),
    "mel": slice(N_CHROMA, N_CHROMA + N_MELS),
    "contrast": slice(N_CHROMA + N_MELS, N_CHROMA + N_MELS + N_CONTRAST),
    "mfcc": slice(N_CHROMA + N_MELS + N_CONTRAST, N_CHROMA + N_MELS + N_CONTRAST + N_MFCC),
}
N_FEATURES = N_CHROMA + N_MELS + N_CONTRAST + N_MFCC
#: Name of each of the 187 positions, e.g. ``"chroma_1"`` ... ``"mfcc_40"`` (1-based within a group).
FEATURE_NAMES: tuple[str, ...] = tuple(
    f"{group}_{i + 1}" for group, sl in FEATURE_GROUPS.items() for i in range(sl.stop - sl.start)
)
_CHUNK = 50
# Bump when the extraction code changes in a way that alters its output.
_CODE_VERSION = 2


@dataclass(frozen=True)
class FeatureConfig:
    """Every parameter that changes the features; its hash names the cache folder."""

    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = N_MELS
    n_mfcc: int = N_MFCC
    trim_db: float | None = 30.0  # librosa.effects.trim threshold; None keeps silences
    n_frames: int = 64
    image_size: int = 128
    top_db: float = 80.0

    def key(self) -> str:
        """Short stable hash of the parameters (and the extraction code version)."""
        blob = json.dumps({**asdict(self), "_v": _CODE_VERSION}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ClipFeatures:
    """The three views of one clip (see the module docstring)."""

    vector: np.ndarray  # (187,)
    frames: np.ndarray  # (n_frames, 187)
    image: np.ndarray  # (image_size, image_size) uint8
    n_frames_raw: int
    trimmed_duration: float


def extract_from_audio(audio: np.ndarray, cfg: FeatureConfig = FeatureConfig()) -> ClipFeatures:
    """Compute all features of one mono clip already at ``cfg.sample_rate`` (one STFT).

    Saved from chapter 2, section 2.4 (book/02_features.ipynb).
    """
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"expected a non-empty mono signal, got shape {audio.shape}")
    if cfg.trim_db is not None:
        trimmed, _ = librosa.effects.trim(audio, top_db=cfg.trim_db)
        audio = trimmed if trimmed.size >= cfg.n_fft else audio  # keep a clip too short to trim
    if float(np.max(np.abs(audio))) < 1e-6:
        raise ValueError("the clip is silent")
    per_frame = per_frame_features(audio, cfg)  # (187, T)
    return ClipFeatures(
        vector=per_frame.mean(axis=1),
        frames=time_normalise(per_frame, cfg.n_frames).T,
        image=to_image(per_frame[FEATURE_GROUPS["mel"]], cfg),
        n_frames_raw=per_frame.shape[1],
        trimmed_duration=audio.size / cfg.sample_rate,
    )


def per_frame_features(audio: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """The (187, T) matrix of chroma, log-mel, contrast and MFCC frames, from one STFT.

    Rows, counted from 0: chroma 0-11, mel 12-139, contrast 140-146, MFCC 147-186.

    Saved from chapter 2, section 2.3 (book/02_features.ipynb).
    """
    sr, n_fft, hop = cfg.sample_rate, cfg.n_fft, cfg.hop_length
    mag = np.abs(librosa.stft(audio, n_fft=n_fft, hop_length=hop))
    power = mag**2
    # tuning 0: speech has no concert pitch to estimate, and the estimate is slow
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, n_fft=n_fft, tuning=0.0)
    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_fft=n_fft, n_mels=cfg.n_mels)
    mel_db = librosa.power_to_db(mel, ref=np.max, top_db=cfg.top_db)  # dB below the clip's peak
    contrast = librosa.feature.spectral_contrast(S=mag, sr=sr, n_fft=n_fft, hop_length=hop)
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=cfg.n_mfcc)
    return np.vstack([chroma, mel_db, contrast, mfcc]).astype(np.float32)


def extract_clip(path: str | os.PathLike, cfg: FeatureConfig = FeatureConfig()) -> ClipFeatures:
    """Load one file (any rate, channels or container) and compute its features."""
    from .data import load_clip

    return extract_from_audio(load_clip(path, cfg.sample_rate), cfg)


def time_normalise(x: np.ndarray, n: int) -> np.ndarray:
    """Linearly interpolate (features, T) to (features, n) along time.

    Saved from chapter 2, section 2.4 (book/02_features.ipynb).
    """
    if x.shape[1] == 1:
        return np.repeat(x, n, axis=1).astype(np.float32)
    pos = np.linspace(0.0, x.shape[1] - 1, n)  # n evenly spaced, fractional frame positions
    i0 = np.minimum(pos.astype(int), x.shape[1] - 2)  # left neighbour of each position
    w = (pos - i0).astype(np.float32)  # weight of the right neighbour
    return (x[:, i0] * (1 - w) + x[:, i0 + 1] * w).astype(np.float32)


def to_image(mel_db: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """The log-mel spectrogram as an S x S uint8 image, [peak - top_db, peak] -> [0, 255].

    Saved from chapter 2, section 2.4 (book/02_features.ipynb).
    """
    scaled = np.clip((mel_db - mel_db.max() + cfg.top_db) / cfg.top_db, 0.0, 1.0).astype(np.float32)
    img = Image.fromarray(scaled, mode="F").resize((cfg.image_size, cfg.image_size), Image.BILINEAR)
    return np.clip(np.asarray(img) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def as_rgb(images: np.ndarray) -> np.ndarray:
    """(N, S, S) uint8 spectrogram images -> (N, 3, S, S) float32 in [0, 1], channels repeated."""
    x = images.astype(np.float32) / 255.0
    return np.repeat(x[:, None], 3, axis=1)


@dataclass
class FeatureSet:
    """Features of every usable clip, aligned with ``meta`` (one row per clip)."""

    ids: np.ndarray
    vectors: np.ndarray
    frames: np.ndarray
    images: np.ndarray
    n_frames_raw: np.ndarray
    meta: pd.DataFrame
    failed: pd.DataFrame
    config: FeatureConfig
    cache_dir: Path | None = None
    data_key: str = ""  # changes with any clip's content or the extraction: what a saved model was trained on
    wall_time: float = 0.0
    chunks_computed: int = 0
    _pos: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._pos = {cid: i for i, cid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def labels(self) -> np.ndarray:
        """Class index of each clip (position in :data:`EMOTIONS`)."""
        return self.meta["emotion"].map(EMOTIONS.index).to_numpy()

    def index(self, ids) -> np.ndarray:
        """Row positions of the given clip ids; ids whose features failed are skipped."""
        return np.array([self._pos[i] for i in ids if i in self._pos], dtype=int)

    def vector_frame(self) -> pd.DataFrame:
        """The 187-d vectors as a DataFrame with named columns plus speaker/word/emotion."""
        df = pd.DataFrame(self.vectors, columns=list(FEATURE_NAMES))
        return pd.concat([self.meta[["clip_id", "speaker", "word", "emotion"]].reset_index(drop=True), df], axis=1)


# Our own chunked cache on purpose: a 2800-clip extraction can be interrupted and resumed chunk by chunk,
# and a changed extraction setting gets its own folder (joblib.Memory would cache one call, all or nothing).
def ensure_features(
    manifest: pd.DataFrame,
    artifacts_dir: str | os.PathLike,
    cfg: FeatureConfig = FeatureConfig(),
    *,
    jobs: int | None = None,
    progress: bool = True,
) -> FeatureSet:
    """Return the features of every usable clip, computing only what the cache lacks.

    Chunks of 50 clips are cached under ``<artifacts_dir>/features/<cfg.key()>/``
    by :func:`ser_utils.cache.cache_key` of their clip ids and whole file
    contents, so a clip replaced or edited in place is recomputed. A cached
    chunk that cannot be read or fails its checks (shapes, finite values,
    exactly its clips) is recomputed with a warning. ``jobs`` processes run in parallel (default: all cores). Failed
    clips are listed in ``failed``.
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    from .data import usable

    start = time.perf_counter()
    ok = usable(manifest)
    if ok["clip_id"].duplicated().any():  # two rows with one id would be scored twice, silently
        dup = ok.loc[ok["clip_id"].duplicated(), "clip_id"].iloc[0]
        raise ValueError(f"the manifest lists clip id {dup!r} more than once; build it with build_manifest")
    cache = Path(artifacts_dir) / "features" / cfg.key()
    cache.mkdir(parents=True, exist_ok=True)
    if not (cache / "config.json").exists():
        write_json(cache / "config.json", asdict(cfg), what="feature cache description")
    chunks = [ok.iloc[i : i + _CHUNK] for i in range(0, len(ok), _CHUNK)]
    paths = [cache / f"chunk_{_chunk_key(c, cfg)}.npz" for c in chunks]
    loaded: dict[Path, dict] = {}
    todo = []
    for c, p in zip(chunks, paths, strict=True):
        part = read_valid(p, lambda f, c=c: _load_chunk(f, list(c["clip_id"]), cfg), what="feature cache chunk")
        if part is not None:
            loaded[p] = part
        else:
            todo.append((c, p))
    if todo:
        jobs = jobs or os.cpu_count() or 1
        parent = os.getpid()
        with worker_pool():  # Parallel reads the pool settings when it is made: inside
            runner = Parallel(n_jobs=min(jobs, len(todo)), return_as="generator_unordered")
            work = runner(delayed(_extract_chunk)(c[["clip_id", "path"]], cfg, p, parent) for c, p in todo)
            for _ in tqdm(work, total=len(todo), desc="Extracting features", unit="chunk",
                          disable=bar_hidden(progress)):
                pass
        for c, p in todo:  # what the workers wrote passes the same checks as what a later run reads
            loaded[p] = _load_chunk(p, list(c["clip_id"]), cfg)
    fs = _assemble(ok, paths, cfg, loaded)
    fs.cache_dir = cache
    fs.data_key = cache_key({"features": cfg.key()}, [(p.name, p) for p in paths])
    fs.wall_time = time.perf_counter() - start
    fs.chunks_computed = len(todo)
    return fs


def _chunk_key(chunk: pd.DataFrame, cfg: FeatureConfig) -> str:
    """Key of one chunk: the extraction (config and code version) and every clip's id and full content."""
    return cache_key({"features": cfg.key()}, zip(chunk["clip_id"], chunk["path"], strict=True))


_CHUNK_KEYS = ("ids", "vectors", "frames", "images", "n_frames_raw", "failed")


def _load_chunk(path: Path, expected_ids: list[str], cfg: FeatureConfig) -> dict:
    """The arrays of one cached chunk, validated; raises when the file is damaged or not this chunk's.

    Checked: every array present (a truncated file or a zip without them fails
    here), shapes agree with ``cfg``, vectors and frames finite, ids unique,
    and the extracted plus failed ids are exactly the chunk's clips.
    """
    with np.load(path) as npz:
        part = {k: npz[k] for k in _CHUNK_KEYS}
    n, s = len(part["ids"]), cfg.image_size
    check(part["vectors"].shape == (n, N_FEATURES), f"vectors of shape {part['vectors'].shape}, expected ({n}, 187)")
    check(part["frames"].shape == (n, cfg.n_frames, N_FEATURES), f"frames of shape {part['frames'].shape}")
    check(part["images"].shape == (n, s, s), f"images of shape {part['images'].shape}")
    check(part["n_frames_raw"].shape == (n,), f"n_frames_raw of shape {part['n_frames_raw'].shape}")
    check(part["failed"].ndim == 2 and part["failed"].shape[1] == 2, "bad list of failed clips")
    check(bool(np.isfinite(part["vectors"]).all() and np.isfinite(part["frames"]).all()), "NaN or infinite values")
    ids = [str(i) for i in part["ids"]] + [str(r[0]) for r in part["failed"]]
    check(len(set(ids)) == len(ids), "a clip id appears twice")
    check(sorted(ids) == sorted(map(str, expected_ids)), "its clips are not the ones this chunk should hold")
    return part


def _extract_chunk(chunk: pd.DataFrame, cfg: FeatureConfig, out: Path, parent: int | None = None) -> Path:
    """Worker: extract one chunk and save it atomically (tmp file, then rename).

    Stops at once, writing nothing, when the process that asked for it has died.
    BLAS runs on one thread, so a chunk's bytes do not depend on where it was
    computed: in a pool worker (loky gives each a share of the cores) or in this
    process (one chunk left, ``jobs=1``: all cores), where the summation order of
    the mel projection otherwise differs in the last bit (7.6e-6 at most in the
    vectors) and a resumed extraction differed from an uninterrupted one.
    """
    vecs, frames, images, raw, ids, failed = [], [], [], [], [], []
    for cid, path in zip(chunk["clip_id"], chunk["path"], strict=True):
        stop_if_orphaned(parent)
        try:
            with one_blas_thread():
                f = extract_clip(path, cfg)
        except Exception as exc:  # one bad clip must not stop a 2800-clip run
            failed.append((cid, f"{type(exc).__name__}: {exc}"[:200]))
            continue
        if not (np.isfinite(f.vector).all() and np.isfinite(f.frames).all()):
            failed.append((cid, "features hold NaN or infinite values"))
            continue
        ids.append(cid)
        vecs.append(f.vector)
        frames.append(f.frames)
        images.append(f.image)
        raw.append(f.n_frames_raw)
    s = cfg.image_size
    stop_if_orphaned(parent)
    with atomic_write(out, what="feature cache chunk") as tmp:
        np.savez(
            tmp,
            ids=np.array(ids, dtype=str),
            vectors=np.array(vecs, dtype=np.float32).reshape(-1, N_FEATURES),
            frames=np.array(frames, dtype=np.float32).reshape(-1, cfg.n_frames, N_FEATURES),
            images=np.array(images, dtype=np.uint8).reshape(-1, s, s),
            n_frames_raw=np.array(raw, dtype=np.int32),
            failed=np.array(failed, dtype=str).reshape(-1, 2),
        )
    return out


def _assemble(ok: pd.DataFrame, paths: list[Path], cfg: FeatureConfig, loaded: dict) -> FeatureSet:
    parts = [loaded[p] for p in paths]
    s = cfg.image_size
    ids = np.concatenate([p["ids"] for p in parts]) if parts else np.array([], dtype=str)
    if len(set(ids)) != len(ids):  # pragma: no cover - the manifest's ids are unique and each chunk is checked
        raise ValueError("a clip id appears in two feature chunks")
    failed_rows = [tuple(r) for p in parts for r in p["failed"]]
    meta = ok.set_index("clip_id").loc[ids].reset_index() if len(ids) else ok.iloc[:0]
    return FeatureSet(
        ids=ids,
        vectors=np.concatenate([p["vectors"] for p in parts]) if parts else np.zeros((0, N_FEATURES), np.float32),
        frames=np.concatenate([p["frames"] for p in parts]) if parts else np.zeros((0, cfg.n_frames, N_FEATURES), np.float32),
        images=np.concatenate([p["images"] for p in parts]) if parts else np.zeros((0, s, s), np.uint8),
        n_frames_raw=np.concatenate([p["n_frames_raw"] for p in parts]) if parts else np.zeros(0, np.int32),
        meta=meta,
        failed=pd.DataFrame(failed_rows, columns=["clip_id", "reason"]),
        config=cfg,
    )


def quick_config(cfg: FeatureConfig = FeatureConfig()) -> FeatureConfig:
    """The same extraction with smaller images and sequences, for quick (CI) runs."""
    return replace(cfg, n_frames=32, image_size=64)
