"""CPU cost of the vision transformers: training images per second (forward + backward).

Prints, for the compact from-scratch ViT and BEiT of ``ser_utils.vision``
(:data:`~ser_utils.vision.COMPACT`), the throughput of one training epoch
over the random-split training images (forward, backward and AdamW step, no
validation), the time that epoch takes, the images per CPU-second (what an
idle machine would give per core) and the evaluation (forward-only)
throughput. Torch threads = all usable cores and = 1 are measured side by
side: on a machine shared with other busy processes one thread can be
several times faster (the load average is printed with each row). With real
TESS (``SER_TESS_DIR`` or ``--data-dir``) it uses its training images;
otherwise the demo corpus. A script that prints figures, not a test::

    SER_TESS_DIR=/work/shared/data/tess-dev nice .venv/bin/python benchmarks/vision.py \\
        --artifacts /tmp/vision/art-tess
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def epoch_throughput(family: str, images: np.ndarray, labels: np.ndarray, *, attn: str = "sdpa",
                     threads: int, batch_size: int = 32, seed: int = 0) -> dict:
    """One training epoch of a compact model over ``images``: wall and CPU throughput, plus eval images/s."""
    import torch

    from ser_utils import vision

    vision.set_threads(threads)
    vision.seed_everything(seed)
    model = vision.build_model(family, images.shape[-1])
    model.set_attn_implementation(attn)
    prep = vision.Preprocess.for_model(model)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
    vision.train_step(model, opt, prep(images[:batch_size]), labels[:batch_size])  # warm-up, not timed
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(images), batch_size):
        vision.train_step(model, opt, prep(images[i:i + batch_size]), labels[i:i + batch_size])
    train_s, train_cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    vision.evaluate(model, images, None, prep)
    eval_s = time.perf_counter() - start
    return {"model": family, "attention": attn, "threads": threads, "params": vision.n_parameters(model),
            "tokens": (images.shape[-1] // model.config.patch_size) ** 2 + 1,
            "train img/s": len(images) / train_s, "epoch s": train_s, "img/CPU-s": len(images) / train_cpu,
            "eval img/s": len(images) / eval_s, "load avg": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="TESS folder (default: SER_TESS_DIR, else demo corpus)")
    parser.add_argument("--artifacts", default="/tmp/ser-bench/vision")
    parser.add_argument("--threads", type=int, default=None,
                        help="measure only this many torch threads (default: all usable cores and 1)")
    parser.add_argument("--eager", action="store_true", help="also measure eager attention (default: SDPA only)")
    args = parser.parse_args(argv)

    import pandas as pd
    import torch

    from ser_utils import vision
    from ser_utils.workspace import RunMode, open_workspace

    ws = open_workspace("auto", args.data_dir, args.artifacts)
    fs = ws.features
    split = ws.splits("random", 0)[0]
    train = fs.index(split.train)
    images, labels = fs.images[train], fs.labels[train]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    thread_counts = [args.threads] if args.threads else sorted({cores, 1}, reverse=True)
    print(f"data: {ws.data.dataset} ({len(fs)} clips), {len(train)} training images of "
          f"{images.shape[-1]}x{images.shape[-1]}; torch {torch.__version__}, {cores} usable cores; "
          f"load average {os.getloadavg()[0]:.1f} (other processes share the CPU when it exceeds {cores})")
    attns = ("sdpa", "eager") if args.eager else ("sdpa",)
    rows = [epoch_throughput(f, images, labels, attn=a, threads=t)
            for f in vision.VISION_MODELS for a in attns for t in thread_counts]
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    if len(thread_counts) > 1:
        for f in vision.VISION_MODELS:
            t = table[(table["model"] == f) & (table["attention"] == "sdpa")].set_index("threads")["train img/s"]
            print(f"{f}: {cores} threads / 1 thread training throughput = {t[cores] / t[1]:.2f}x")
    for f in vision.VISION_MODELS:
        best = table[table["model"] == f]["train img/s"].max()
        print(f"{f}: one epoch of {len(train)} images at the best setting here: {len(train) / best:.0f} s")


if __name__ == "__main__":
    main()
