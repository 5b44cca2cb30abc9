"""Benchmark: our feature extraction vs a naive per-feature librosa loop, side by side.

Ours (ser_utils.features.ensure_features): one load and one STFT per clip, all
four features from it, joblib processes over chunks, results cached (the
cache is empty for the timed run). The naive loop is the pattern common in
TESS notebooks: each librosa feature called on the waveform, each computing
its own STFT, one clip after another in one process; it computes only the
187-d vector, while ours also produces the frame sequences and images.

Warm-up is the same on both sides: numba/librosa JIT is triggered once
before timing (for ours, in the worker processes too, by a throwaway run).

    python benchmarks/features.py [--clips 280] [--jobs 2] [--data-dir DIR]

DIR defaults to SER_TESS_DIR, else a demo corpus written to a temp folder.
Prints both wall times, the ratio and peak memory (max RSS).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def naive_vector(path: str, sr: int = 22050) -> np.ndarray:
    """The per-feature loop: four librosa calls, four STFTs (what the paper-style code does)."""
    import librosa

    y, sr = librosa.load(path, sr=sr)
    y, _ = librosa.effects.trim(y, top_db=30)
    chroma = librosa.feature.chroma_stft(y=y, sr=sr).mean(axis=1)
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=128), ref=np.max).mean(axis=1)
    contrast = librosa.feature.spectral_contrast(y=y, sr=sr).mean(axis=1)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=40).mean(axis=1)
    return np.concatenate([chroma, mel, contrast, mfcc])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=280)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--data-dir", default=os.environ.get("SER_TESS_DIR"))
    args = parser.parse_args()

    from ser_utils.data import build_manifest, usable
    from ser_utils.features import FeatureConfig, ensure_features
    from ser_utils.synth import write_demo_corpus

    tmp = Path(tempfile.mkdtemp(prefix="ser-bench-"))
    data_dir = args.data_dir or write_demo_corpus(tmp / "demo", n_words=max(1, args.clips // 14 + 1), progress=False)
    manifest = usable(build_manifest(data_dir, progress=False))
    sample = manifest.sample(n=min(args.clips, len(manifest)), random_state=0).reset_index(drop=True)
    cfg = FeatureConfig()
    print(f"data: {data_dir} ({'real TESS' if args.data_dir else 'synthetic demo corpus'}), "
          f"{len(sample)} clips, {os.cpu_count()} cores, jobs={args.jobs}")

    # Warm-up, the same on both sides: JIT in this process and in the worker processes.
    naive_vector(sample["path"][0])
    # One chunk per worker, so that every worker process is started and warm (a chunk is 50 clips).
    ensure_features(sample.iloc[: 50 * args.jobs], tmp / "warmup", cfg, jobs=args.jobs, progress=False)

    t0 = time.perf_counter()
    naive = np.stack([naive_vector(p) for p in sample["path"]])
    t_naive = time.perf_counter() - t0

    t0 = time.perf_counter()
    fs = ensure_features(sample, tmp / "ours", cfg, jobs=args.jobs, progress=False)
    t_ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    ensure_features(sample, tmp / "ours", cfg, jobs=args.jobs, progress=False)
    t_cached = time.perf_counter() - t0

    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    mel = slice(12, 140)
    agree = np.corrcoef(naive[:, mel].ravel(), fs.vectors[:, mel].ravel())[0, 1]
    print(f"naive per-feature loop (1 process, vector only): {t_naive:7.2f} s  ({len(sample) / t_naive:6.1f} clips/s)")
    print(f"ser_utils.features ({args.jobs} jobs, vector+frames+images): {t_ours:7.2f} s  ({len(sample) / t_ours:6.1f} clips/s)")
    print(f"speed-up: {t_naive / t_ours:.2f}x")
    print(f"second run from cache: {t_cached:.2f} s ({t_ours / max(t_cached, 1e-9):.0f}x faster than extracting)")
    print(f"peak RSS: main process {self_mb:.0f} MB, largest worker {child_mb:.0f} MB")
    print(f"agreement of the mel part of the two vectors (correlation): {agree:.4f}")


if __name__ == "__main__":
    main()
