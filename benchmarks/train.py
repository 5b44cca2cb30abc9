"""Training time of the Keras models (and the logreg baseline) per model and seed, on this machine.

Usage::

    SER_TESS_DIR=/path/to/TESS .venv/bin/python benchmarks/train.py --artifacts /tmp/art-tess \
        --models cnn lstm hybrid --protocol random --seeds 0 1 2

For each model, protocol and seed it trains through
:func:`ser_utils.experiments.run_experiment` (results saved under the
artifacts folder, so the numbers are also in the results JSON files) and
prints: epochs run, best (restored) epoch, training time per fold and per
epoch, the ratio of time per epoch to the first model's, and the score. The
cores used are printed too: on a shared machine, times vary with the load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import pandas as pd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="auto", choices=("auto", "tess", "demo"))
    parser.add_argument("--data-dir")
    parser.add_argument("--artifacts")
    parser.add_argument("--models", nargs="+", default=["cnn", "lstm", "hybrid"])
    parser.add_argument("--protocol", default="random", choices=("random", "speaker", "word"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, help="maximum epochs (default: the library default)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)

    from ser_utils.experiments import run_experiment
    from ser_utils.workspace import RunMode, open_workspace

    ws = open_workspace(args.dataset, args.data_dir, args.artifacts,
                        mode=RunMode.resolve(True if args.quick else None, args.epochs))
    _ = ws.features  # extract (or load) features before any clock starts
    import tensorflow as tf

    print(ws.describe())
    print(f"cores: {os.cpu_count()} visible; TF intra-op threads "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'auto'}; load average "
          f"{os.getloadavg()[0]:.1f} at start")
    rows = []
    for model in args.models:
        for seed in args.seeds:
            start = time.perf_counter()
            rec = run_experiment(ws, model, args.protocol, seed, progress=False)
            wall = time.perf_counter() - start
            folds = rec["folds"]
            train_s = sum(f.get("train_time_s") or 0.0 for f in folds)
            epochs = sum(f.get("epochs") or 0 for f in folds)
            rows.append({
                "model": model, "seed": seed, "folds": len(folds),
                "epochs": "/".join(str(f.get("epochs")) for f in folds),
                "best_epoch": "/".join(str(f.get("best_epoch")) for f in folds),
                "train_s": round(train_s, 1), "s_per_epoch": round(train_s / epochs, 2) if epochs else None,
                "wall_s": round(wall, 1), "n_params": rec.get("n_params"),
                "accuracy_%": round(100 * rec["metrics"]["accuracy"], 2),
                "uar_%": round(100 * rec["metrics"]["uar"], 2),
                "results": rec.get("_path"),
            })
            print(f"  {model} seed {seed}: {wall:.0f} s", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    if df["s_per_epoch"].notna().any():
        ref = df["s_per_epoch"].dropna().iloc[0]
        df["epoch_time_vs_first"] = (df["s_per_epoch"] / ref).round(2)
    load = os.getloadavg()[0]
    print(f"\nTraining time per model and seed ({args.protocol} protocol, {load:.1f} load average at end):")
    print(df.drop(columns=["results"]).to_string(index=False))
    print("\nResults files:\n" + "\n".join(f"  {p}" for p in df["results"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
