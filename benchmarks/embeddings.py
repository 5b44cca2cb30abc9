"""Benchmark: pretrained-encoder embeddings (chapter 10), clips per second, side by side.

Five ways to embed the same clips with the same encoder (the offline Whisper
tiny.en unless ``--pretrained`` names another checkpoint), all in one process
and one run so the ratios compare like with like:

- ``sliced, 1 thread``: positions sliced to the clip, ``torch.set_num_threads(1)``;
- ``sliced, N threads``: the same with torch's default thread count;
- ``sliced, batches of 32``: clips sorted by length and run 32 at a time, masked
  (``batch_layer_states``, what ``ensure_embeddings`` does for Whisper);
- ``30-s padding``: Whisper's own 30-s input (timed on ``--clips-30s`` clips only: it is slow);
- ``cache``: ``ensure_embeddings`` a second time on the same clips (reads the cache).

Audio loading (``load_clip`` at 16 kHz) is done once before timing and not counted, except in the
two ``ensure_embeddings`` rows, which include it.

    python benchmarks/embeddings.py [--data-dir DIR] [--clips 400] [--clips-30s 20]

DIR defaults to SER_TESS_DIR, else a demo corpus written to a temp folder. Prints clips/s per row,
the ratio to the first row, the machine's load average (other work on the machine slows every
row) and the projected time for 2800 clips.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("SER_TESS_DIR"))
    ap.add_argument("--pretrained", help="hub id or checkpoint folder (default: the offline Whisper tiny.en)")
    ap.add_argument("--clips", type=int, default=400)
    ap.add_argument("--clips-30s", type=int, default=20)
    args = ap.parse_args()

    import torch

    from ser_utils.data import build_manifest, load_clip, usable
    from ser_utils.encoders import BATCH_SIZE, SAMPLE_RATE, batch_layer_states, ensure_embeddings, layer_states, load_encoder
    from ser_utils.synth import write_demo_corpus
    from ser_utils.whisper_offline import CHECKPOINT_NAME, convert

    tmp = Path(tempfile.mkdtemp(prefix="bench-emb-"))
    data = Path(args.data_dir) if args.data_dir else write_demo_corpus(tmp / "demo")
    source = args.pretrained or str(convert(tmp / CHECKPOINT_NAME).folder)
    enc = load_encoder(source)
    manifest = usable(build_manifest(data, progress=False)).sample(frac=1, random_state=0).head(args.clips)
    audio = [load_clip(p, SAMPLE_RATE) for p in manifest["path"]]
    seconds = sum(len(a) for a in audio) / SAMPLE_RATE
    layer_states(enc, audio[0])  # warm-up
    rows = []

    def timed(label: str, clips: list, threads: int | None, padding: str = "clip") -> None:
        before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        start = time.perf_counter()
        for a in clips:
            layer_states(enc, a, padding=padding)
        wall = time.perf_counter() - start
        torch.set_num_threads(before)
        rows.append((label, len(clips), wall))

    timed("sliced, 1 thread", audio, 1)
    timed(f"sliced, {torch.get_num_threads()} threads", audio, None)
    by_length = sorted(audio, key=len)
    start = time.perf_counter()
    for i in range(0, len(by_length), BATCH_SIZE):
        batch_layer_states(enc, by_length[i: i + BATCH_SIZE])
    rows.append((f"sliced, batches of {BATCH_SIZE}", len(audio), time.perf_counter() - start))
    timed("30-s padding, 1 thread", audio[: args.clips_30s], 1, "30s")
    for label in ("ensure_embeddings (computes)", "ensure_embeddings (cache)"):
        start = time.perf_counter()
        ensure_embeddings(manifest, tmp / "art", enc, progress=False)
        rows.append((label, len(manifest), time.perf_counter() - start))

    base = rows[0][1] / rows[0][2]
    print(f"{len(manifest)} clips ({seconds / len(manifest):.2f} s each on average) from {data}; encoder {source}")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"{'way':32s} {'clips':>6s} {'wall s':>8s} {'clips/s':>8s} {'x first':>8s} {'2800 clips':>11s}")
    for label, n, wall in rows:
        rate = n / wall
        print(f"{label:32s} {n:6d} {wall:8.1f} {rate:8.1f} {rate / base:8.2f} {2800 / rate / 60:9.1f} min")


if __name__ == "__main__":
    main()
