"""Does a run that stopped at the epoch cap still change its answer? The test score along training.

On the speaker protocol the validation clips come from the training speaker: a frame model is
100 % right on them after a few epochs, its validation loss keeps shrinking by tiny amounts, and
early stopping never fires before the cap. Whether the cap then decides the result is a question
about the *test* speaker, which no training decision may look at. This module answers it as an
analysis only: it trains with the usual recipe (same callbacks, same restored weights for the
reported score) and, beside it, records the test speaker's UAR every few epochs. Nothing here
selects an epoch or a model.

Reference run (writes ``results/experiments/convergence/<model>__speaker.json``)::

    python -m ser_utils.course.convergence --data-dir ../shared/data/tess-dev --artifacts /tmp/conv \
        --model hybrid-frames --seeds 0 1 2 --epochs 150
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def test_uar_along_training(fs, split, model: str, *, seed: int, epochs: int, every: int = 10) -> dict:
    """Train ``model`` on one fold with the library's recipe; the test UAR every ``every`` epochs.

    Returns ``{"fold", "epochs_run", "best_epoch", "final_uar" (restored weights), "trajectory":
    [[epoch, test UAR], ...]}``. The trajectory is for reading only: it never stops or selects.
    """
    import keras
    from sklearn.metrics import balanced_accuracy_score

    from ..models import build_keras_model
    from ..registry import ModelSpec
    from ..standardise import standardise_fold
    from ..training import compile_model, fit_model, fold_rows, keras_options, set_seed

    spec = ModelSpec.parse(model)
    base, opts = spec.base, keras_options(spec)
    if opts["augment"]:
        raise ValueError("augmented variants are not supported here; use the plain or -spknorm ones")
    set_seed(seed)
    train, val, test = fold_rows(fs, split, seed=seed)
    x, _ = standardise_fold(fs, train, kind=opts["input"], spknorm=opts["spknorm"])
    y = fs.labels
    trajectory: list[list[float]] = []

    class Probe(keras.callbacks.Callback):  # reads the test speaker's score; never stops or selects
        def on_epoch_end(self, epoch, logs=None):
            if (epoch + 1) % every == 0:
                pred = self.model.predict(x[test], batch_size=256, verbose=0).argmax(axis=1)
                trajectory.append([epoch + 1, round(100 * balanced_accuracy_score(y[test], pred), 2)])

    net = build_keras_model(base, x.shape[1:])
    compile_model(net)
    history = fit_model(net, x[train], y[train], x[val], y[val], epochs=epochs, extra_callbacks=[Probe()])
    pred = net.predict(x[test], batch_size=256, verbose=0).argmax(axis=1)  # restored best weights
    return {"fold": split.fold, "epochs_run": len(history["loss"]), "best_epoch": history["best_epoch"],
            "final_uar": round(100 * balanced_accuracy_score(y[test], pred), 2), "trajectory": trajectory}


def trajectory_table(record: dict) -> "pd.DataFrame":  # noqa: F821
    """Test UAR (%) by epoch: one column per seed and fold, plus the mean over them."""
    import pandas as pd

    cols = {f"seed {run['seed']}, {run['fold']}": dict(run["trajectory"]) for run in record["runs"]}
    table = pd.DataFrame(cols).rename_axis("epoch")
    return table.assign(mean=table.mean(axis=1)).round(1)


def main(argv: list[str] | None = None) -> int:
    from ..workspace import RunMode, open_workspace
    from ..evaluation import git_commit
    from ..cache import write_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--artifacts", required=True)
    parser.add_argument("--model", default="hybrid-frames")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--out", default="results/experiments/convergence")
    args = parser.parse_args(argv)
    ch = open_workspace("tess", args.data_dir, args.artifacts, mode=RunMode(quick=False))
    runs = []
    for seed in args.seeds:
        for split in ch.splits("speaker", seed):
            run = test_uar_along_training(ch.features, split, args.model, seed=seed, epochs=args.epochs,
                                          every=args.every)
            runs.append({"seed": seed, **run})
            print(json.dumps(runs[-1]), flush=True)
    record = {"model": args.model, "protocol": "speaker", "epoch_cap": args.epochs, "every": args.every,
              "dataset": {"name": "tess", "n_clips": int(len(ch.features))}, "git_commit": git_commit(),
              "note": "test UAR along training, for analysis only: never used to stop or select", "runs": runs}
    write_json(Path(args.out) / f"{args.model}__speaker.json", record, what="convergence record")
    print(trajectory_table(record).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
