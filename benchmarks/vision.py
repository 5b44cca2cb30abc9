"""CPU cost of the vision transformers: training images per second (forward + backward).

Prints, for the compact from-scratch ViT and BEiT of ``ser_utils.vision``
(:data:`~ser_utils.vision.COMPACT`), the throughput of one training epoch
over the random-split training images (forward, backward and AdamW step, no
validation), the time that epoch takes, and the evaluation (forward only)
throughput; SDPA and eager attention are measured side by side. With real
TESS (``SER_TESS_DIR`` or ``--data-dir``) it uses its training images;
otherwise the demo corpus. A script that prints figures, not a test::

    SER_TESS_DIR=/work/shared/data/tess-dev nice .venv/bin/python benchmarks/vision.py \\
        --artifacts-dir /tmp/vision/art-tess
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def epoch_throughput(family: str, images: np.ndarray, labels: np.ndarray, *, attn: str,
                     batch_size: int = 32, seed: int = 0) -> dict:
    """One training epoch of a compact model over ``images``: images/s and seconds, plus eval images/s."""
    import torch

    from ser_utils import vision

    vision.seed_everything(seed)
    model = vision.build_model(family, images.shape[-1])
    model.set_attn_implementation(attn)
    prep = vision.Preprocess.for_model(model)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
    vision.train_step(model, opt, prep(images[:batch_size]), labels[:batch_size])  # warm-up, not timed
    start = time.perf_counter()
    for i in range(0, len(images), batch_size):
        vision.train_step(model, opt, prep(images[i:i + batch_size]), labels[i:i + batch_size])
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    vision.evaluate(model, images, None, prep)
    eval_s = time.perf_counter() - start
    return {"model": family, "attention": attn, "params": vision.n_parameters(model),
            "tokens": (images.shape[-1] // model.config.patch_size) ** 2 + 1,
            "train img/s": len(images) / train_s, "epoch s": train_s, "eval img/s": len(images) / eval_s}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="TESS folder (default: SER_TESS_DIR, else demo corpus)")
    parser.add_argument("--artifacts-dir", default="/tmp/ser-bench/vision")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all usable cores)")
    args = parser.parse_args(argv)

    import pandas as pd
    import torch

    from ser_utils import vision
    from ser_utils.notebook import start_chapter

    ch = start_chapter("auto", args.data_dir, args.artifacts_dir, show_banner=False)
    fs = ch.features
    split = ch.splits("random", 0)[0]
    train = fs.index(split.train)
    images, labels = fs.images[train], fs.labels[train]
    threads = vision.set_threads()
    if args.threads:
        torch.set_num_threads(threads := args.threads)
    print(f"data: {ch.ctx.dataset} ({len(fs)} clips), {len(train)} training images of "
          f"{images.shape[-1]}x{images.shape[-1]}; torch {torch.__version__}, {threads} threads, "
          f"{os.cpu_count()} CPUs visible")
    rows = [epoch_throughput(f, images, labels, attn=a) for f in vision.VISION_MODELS for a in ("sdpa", "eager")]
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    for f in vision.VISION_MODELS:
        t = table[table["model"] == f].set_index("attention")["train img/s"]
        print(f"{f}: sdpa / eager training throughput = {t['sdpa'] / t['eager']:.2f}x")


if __name__ == "__main__":
    main()
