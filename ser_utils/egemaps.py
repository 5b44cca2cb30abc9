"""eGeMAPS: the field's standard 88 acoustic parameters per clip, with openSMILE.

The extended Geneva Minimalistic Acoustic Parameter Set (eGeMAPS v02; Eyben
et al., IEEE Trans. Affective Computing 2016) was chosen by a group of
emotion researchers as a small, interpretable feature set: pitch, jitter,
shimmer, loudness, formants, spectral slope, harmonics-to-noise ratio, MFCC
1-4 and rate, each summarised over the clip by a few functionals (mean,
coefficient of variation, percentiles...), 88 values in all. It is the usual
baseline in speech emotion recognition papers, so chapter 9 sets it beside
the paper's 187 values and the 13 prosody values of :mod:`ser_utils.prosody`.

It needs the ``opensmile`` package (``pip install opensmile``); importing this
module works without it, and :func:`smile` raises
:class:`~ser_utils.errors.UserError` with the install command.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .cache import cache_key, check, read_valid
from .outputs import atomic_write
from .prosody import read_table
from .quiet import bar_hidden
from .workers import stop_if_orphaned, worker_executor

#: Number of eGeMAPSv02 functionals.
N_EGEMAPS = 88
#: openSMILE works on 16 kHz; every clip is resampled to this rate first.
EGEMAPS_SAMPLE_RATE = 16000


def available() -> bool:
    """True when the ``opensmile`` package can be imported."""
    try:
        import opensmile  # noqa: F401
    except ImportError:
        return False
    return True


def smile():
    """An ``opensmile.Smile`` computing the eGeMAPSv02 functionals (88 values per signal)."""
    try:
        import opensmile
    except ImportError as exc:
        from .errors import UserError

        raise UserError("eGeMAPS needs the opensmile package: pip install opensmile==2.6.0") from exc
    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                           feature_level=opensmile.FeatureLevel.Functionals)


def egemaps_names() -> list[str]:
    """The 88 feature names, in openSMILE's order."""
    return list(smile().feature_names)


def egemaps_vector(audio: np.ndarray, sr: int = EGEMAPS_SAMPLE_RATE, extractor=None) -> np.ndarray:
    """The 88 eGeMAPSv02 functionals of one mono clip, float32."""
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"expected a non-empty mono signal, got shape {audio.shape}")
    out = (extractor or smile()).process_signal(audio.astype(np.float32), sr)
    return out.to_numpy(dtype=np.float32).reshape(-1)


def extract_egemaps(path: str | os.PathLike, extractor=None) -> np.ndarray:
    """Load one file with the one acceptance rule (:func:`ser_utils.data.load_clip`) and return its eGeMAPS."""
    from .data import load_clip

    return egemaps_vector(load_clip(path, EGEMAPS_SAMPLE_RATE), EGEMAPS_SAMPLE_RATE, extractor)


def _chunk(paths: list[str], parent: int | None = None) -> list[np.ndarray | str]:
    extractor = smile()
    out: list[np.ndarray | str] = []
    for p in paths:
        stop_if_orphaned(parent)
        try:
            out.append(extract_egemaps(p, extractor))
        except Exception as exc:  # one bad clip must not stop the run: it is reported instead
            out.append(f"{type(exc).__name__}: {exc}")
    return out


def ensure_egemaps(manifest: pd.DataFrame, artifacts_dir: str | os.PathLike, *, jobs: int | None = None,
                   progress: bool = True) -> pd.DataFrame:
    """eGeMAPS of every usable clip (index ``clip_id``, 88 columns), cached like ``ensure_prosody``.

    Saved atomically as ``<artifacts_dir>/egemaps/<key>.csv``, keyed on every clip's id and whole
    content; a cached table that does not match the clips is recomputed with a warning. A clip that
    cannot be read or processed gets a row of NaN, and its reason is listed in
    ``table.attrs["failed"]`` (clip id -> reason) and in a ``.failed.csv`` beside
    the cache, so a bad clip is reported rather than crashing the run.
    """
    from tqdm.auto import tqdm

    from .data import usable

    ok = usable(manifest)
    cache = (Path(artifacts_dir) / "egemaps"
             / f"{cache_key({'egemaps': 'eGeMAPSv02', 'v': 2}, zip(ok['clip_id'], ok['path'], strict=True))}.csv")
    failed_csv = cache.with_suffix(".failed.csv")
    ids = list(ok["clip_id"])

    def read(path: Path) -> pd.DataFrame:
        table = read_table(path, ids, list(pd.read_csv(path, nrows=0, index_col="clip_id").columns))
        check(table.shape[1] == N_EGEMAPS, f"{table.shape[1]} columns, expected {N_EGEMAPS}")
        failed = pd.read_csv(failed_csv, index_col="clip_id")["reason"].to_dict() if failed_csv.exists() else {}
        check(set(failed) <= set(map(str, ids)), "its list of failed clips names other clips")
        table.attrs["failed"] = failed
        return table

    table = read_valid(cache, read, what="eGeMAPS cache")
    if table is not None:
        return table
    names = egemaps_names()
    paths = list(ok["path"])
    n_jobs = max(1, min(jobs or os.cpu_count() or 1, len(paths) or 1))
    chunks = [paths[i::n_jobs] for i in range(n_jobs)]  # one Smile object per worker, not per clip
    # openSMILE's native library always runs in worker processes, never in this one: loaded into a
    # process that already holds TensorFlow and torch it crashed it (a segmentation fault in the
    # test suite), and a worker that dies is reported as failed clips instead of ending the run.
    # joblib's own flavour of loky's process-wide executor: a later joblib.Parallel (the feature
    # extraction) reuses it; the bare loky one made Parallel fail ("no attribute _temp_folder_manager").
    executor = worker_executor(n_jobs)
    futures = [executor.submit(_chunk, c, os.getpid()) for c in chunks]
    parts = []
    for chunk, future in tqdm(zip(chunks, futures, strict=True), total=n_jobs, desc="eGeMAPS",
                              disable=bar_hidden(progress)):
        try:
            parts.append(future.result())
        except Exception as exc:  # noqa: BLE001 - e.g. TerminatedWorkerError after a native crash
            parts.append([f"openSMILE worker failed ({type(exc).__name__})"] * len(chunk))
    rows: list = [None] * len(paths)
    for i, part in enumerate(parts):
        rows[i::n_jobs] = part
    failed = {cid: r for cid, r in zip(ok["clip_id"], rows, strict=True) if isinstance(r, str)}
    values = np.array([np.full(len(names), np.nan, np.float32) if isinstance(r, str) else r for r in rows],
                      dtype=np.float32).reshape(-1, len(names))
    table = pd.DataFrame(values, columns=names, index=pd.Index(ok["clip_id"], name="clip_id"))
    # The failure list first: the table is what a later run looks for, so it is written last.
    with atomic_write(failed_csv, what="eGeMAPS failure list") as tmp:
        pd.DataFrame({"clip_id": list(failed), "reason": list(failed.values())}).to_csv(tmp, index=False)
    with atomic_write(cache, what="eGeMAPS cache") as tmp:
        table.to_csv(tmp)
    table.attrs["failed"] = failed
    return table
