"""Training throughput of the Keras models: seconds per epoch and clips per second, per lever.

Usage::

    .venv/bin/python benchmarks/throughput.py --data-dir ../shared/data/tess-dev
    .venv/bin/python benchmarks/throughput.py --compare results/reference /tmp/new/results

The first form trains every model (CNN, LSTM, hybrid on the 187-value vector,
LSTM and hybrid on frame sequences, and the augmented hybrid) for a few timed
epochs on the random split's training clips, once per *lever*, each lever in
its own Python process (thread settings, XLA and op determinism are fixed when
TensorFlow starts):

- ``current``: the library's settings (NumPy arrays, batch 32, deterministic kernels, no XLA);
- ``batch64``: batch size 64;
- ``tf.data``: a shuffled, batched, prefetched ``tf.data.Dataset`` instead of NumPy arrays;
- ``threads``: TensorFlow limited to 2 intra-op and 1 inter-op threads (2 cores here);
- ``no-determinism``: ``enable_op_determinism`` left off;
- ``xla``: ``jit_compile=True`` (needs determinism off: XLA refuses deterministic mode).

One warm-up epoch (graph tracing, XLA compilation) is run and not timed.

Speed alone says nothing about accuracy: ``--compare OLD NEW`` reads two folders
of results files (same models, protocols and seeds) and prints, per model and
protocol, the mean score, sd over seeds, training time, epochs run and folds
that stopped at the epoch cap, before and after. That is how a change of
training settings is shown not to cost accuracy beyond the seed spread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

LEVERS = ("current", "batch64", "tf.data", "threads", "no-determinism", "xla")
MODELS = ("cnn", "lstm", "hybrid", "lstm-frames", "hybrid-frames", "hybrid-frames-aug")


def _worker(args) -> int:
    """Time each model under one lever; print one JSON line per model."""
    lever = args.worker
    if lever == "threads":
        os.environ["TF_NUM_INTRAOP_THREADS"], os.environ["TF_NUM_INTEROP_THREADS"] = "2", "1"
    from ser_utils.workspace import RunMode, open_workspace
    from ser_utils.quiet import quiet_libraries

    quiet_libraries()
    import numpy as np
    import tensorflow as tf

    from ser_utils import training
    from ser_utils.models import build_keras_model
    from ser_utils.registry import ModelSpec
    from ser_utils.standardise import apply_recipe, raw_inputs, standardise_fold

    if lever == "threads":
        tf.config.threading.set_intra_op_parallelism_threads(2)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    ws = open_workspace(args.dataset, args.data_dir, args.artifacts, mode=RunMode(quick=False))
    fs = ws.features
    split = ws.splits("random", 0)[0]
    if lever in ("no-determinism", "xla"):
        np.random.seed(0)
        tf.random.set_seed(0)
    else:
        training.set_seed(0)
    batch = 64 if lever == "batch64" else training.BATCH_SIZE
    for name in args.models:
        spec = ModelSpec.parse(name)
        base, opts = spec.base, training.keras_options(spec)
        train, _, _ = training.fold_rows(fs, split, seed=0)
        x, recipe = standardise_fold(fs, train, kind=opts["input"], spknorm=False)
        x_train, y_train = x[train], fs.labels[train]
        if opts["augment"]:
            raw = raw_inputs(fs, opts["input"])[train]
            copies, rows = training.warped_copies(raw, training.AUGMENT_COPIES, seed=0, cfg=fs.config)
            x_train = np.concatenate([x_train, apply_recipe(copies, recipe, None, kind=opts["input"])])
            y_train = np.concatenate([y_train, y_train[rows]])
        net = build_keras_model(base, x.shape[1:])
        net.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                    jit_compile=(lever == "xla"))
        if lever == "tf.data":
            data = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
                    .shuffle(len(x_train), seed=0).batch(batch).prefetch(tf.data.AUTOTUNE))
            fit = lambda n: net.fit(data, epochs=n, verbose=0)  # noqa: E731
        else:
            fit = lambda n: net.fit(x_train, y_train, epochs=n, batch_size=batch, shuffle=True, verbose=0)  # noqa: E731
        fit(1)  # warm-up: tracing / compilation
        start = time.perf_counter()
        fit(args.epochs)
        per_epoch = (time.perf_counter() - start) / args.epochs
        print(json.dumps({"lever": lever, "model": name, "clips": int(len(x_train)),
                          "s_per_epoch": round(per_epoch, 3), "clips_per_s": round(len(x_train) / per_epoch)}),
              flush=True)
    return 0


def _throughput(args) -> int:
    import pandas as pd

    rows = []
    for lever in args.levers:
        cmd = [sys.executable, __file__, "--worker", lever, "--dataset", args.dataset, "--epochs", str(args.epochs),
               "--models", *args.models]
        for flag, value in (("--data-dir", args.data_dir), ("--artifacts", args.artifacts)):
            if value:
                cmd += [flag, value]
        print(f"  lever {lever} ...", file=sys.stderr, flush=True)
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        if out.returncode:
            print(out.stderr[-2000:], file=sys.stderr)
            continue
        rows += [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    df = pd.DataFrame(rows)
    table = df.pivot(index="model", columns="lever", values="s_per_epoch").reindex(args.models)
    table = table[[lever for lever in args.levers if lever in table.columns]]
    clips = df.groupby("model")["clips"].first().reindex(args.models)
    print(f"\nSeconds per epoch on the random split's training clips ({os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at end; {args.epochs} timed epochs after one warm-up):")
    print(table.assign(clips=clips).to_string())
    print("\nSpeed-up over 'current' (x):")
    print(table.rdiv(table["current"], axis=0).round(2).to_string())
    return 0


def _summarise(folder: Path) -> dict:
    """(model, protocol) -> scores, seconds, epochs and capped folds over the seeds in ``folder``."""
    out: dict = {}
    for path in sorted(folder.glob("*__*__seed*.json")):
        rec = json.loads(path.read_text())
        folds = rec.get("folds", [])
        key = (rec["model"], rec["protocol"])
        entry = out.setdefault(key, {"uar": [], "train_s": [], "epochs": [], "capped": 0, "folds": 0})
        entry["uar"].append(100 * rec["metrics"]["uar"])
        entry["train_s"].append(sum(f.get("train_time_s") or 0.0 for f in folds) or rec.get("wall_time_s") or 0.0)
        for f in folds:
            if f.get("epochs") is None:
                continue
            cap = (f.get("hyperparameters") or {}).get("epoch_cap", 100)
            entry["epochs"].append(f["epochs"])
            entry["folds"] += 1
            entry["capped"] += int(f["epochs"] >= cap and f.get("best_epoch") == f["epochs"])
    return out


def _compare(old: Path, new: Path) -> int:
    import pandas as pd

    before, after = _summarise(old), _summarise(new)
    rows = []
    for key in sorted(set(before) & set(after)):
        row = {"model": key[0], "protocol": key[1]}
        for tag, entry in (("before", before[key]), ("after", after[key])):
            uar = entry["uar"]
            sd = statistics.stdev(uar) if len(uar) > 1 else float("nan")
            row[f"UAR {tag}"] = f"{statistics.mean(uar):.1f} ± {sd:.1f} (n={len(uar)})"
            row[f"s/run {tag}"] = round(statistics.mean(entry["train_s"]))
            row[f"epochs {tag}"] = round(statistics.mean(entry["epochs"])) if entry["epochs"] else None
            row[f"capped {tag}"] = f"{entry['capped']}/{entry['folds']}"
        rows.append(row)
    print(f"Before: {old}\nAfter:  {new}\n(UAR % mean ± sd over seeds; s/run = training seconds per seed, all folds)")
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="auto", choices=("auto", "tess", "demo"))
    parser.add_argument("--data-dir")
    parser.add_argument("--artifacts")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=LEVERS)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per model and lever")
    parser.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"), type=Path,
                        help="compare two folders of results files instead of timing")
    parser.add_argument("--worker", choices=LEVERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compare:
        return _compare(*args.compare)
    return _worker(args) if args.worker else _throughput(args)


if __name__ == "__main__":
    sys.exit(main())
