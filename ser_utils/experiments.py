"""One entry point to train and score any model under any protocol and seed.

:func:`run_experiment` is what the chapters and ``python -m ser_utils train``
call. It loads the folds of the protocol from the workspace, asks the model's
family (:attr:`ModelSpec.family <ser_utils.registry.ModelSpec.family>`, an
entry of :mod:`ser_utils.registry`) to train each fold, and writes one
results JSON through :mod:`ser_utils.evaluation`. It knows no family by name:
a new family registered in the registry runs here unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from .cache import read_valid
from .evaluation import dataset_info, load_record, make_record, result_path, run_folds, save_record, score_summary
from .registry import FoldJob, ModelSpec
from .settings import parse_epochs
from .workspace import Workspace


def run_experiment(
    ws: Workspace,
    model: str,
    protocol: str,
    seed: int,
    *,
    epochs: int | None = None,
    options: dict | None = None,
    save: bool = True,
    progress: bool = True,
    trained: tuple | None = None,
) -> dict:
    """Train and score ``model`` on every fold of ``protocol`` with ``seed``; return the results record.

    ``options`` go to the model family (e.g. ``{"input": "frames"}`` for the
    Keras models, ``{"pretrained": "..."}`` for the vision ones). The record
    is saved to ``<artifacts>/results/`` and the trained models to
    ``<artifacts>/models/`` unless ``save`` is false: then nothing is written,
    so an exercise can never overwrite the model a later chapter loads.

    ``trained`` is ``(net, history, seconds)`` for a plain Keras model the
    chapter already trained on the protocol's first fold with the runner's
    recipe (``fold_rows``, ``standardise_fold``, ``set_seed(seed)``, chapter 3's
    callbacks, the chapter's epoch cap; ``history`` from ``fit_model``): that
    fold is scored and saved from ``net`` instead of being trained again (it
    would get the same weights); the other folds are trained.
    """
    options = dict(options or {})
    spec = ModelSpec.parse(model)
    family = spec.family
    family.check(spec, options)
    score_trained = getattr(family, "score_trained", None)
    if trained is not None and (score_trained is None or options):
        raise ValueError(f"trained= records a plain Keras model the chapter trained itself, not {model!r} "
                         f"with options {options}")
    mode = ws.mode if epochs is None else replace(ws.mode, epochs=parse_epochs(epochs))  # at least 1, or one line
    job = FoldJob(spec, seed=seed, mode=mode, options=options, model_dir=ws.models_dir if save else None,
                  progress=progress)
    splits = ws.splits(protocol, seed)

    def fit_predict(split):
        if trained is not None and split is splits[0]:
            return score_trained(ws, split, job, trained)
        return family.train_fold(ws, split, job)

    folds, wall = run_folds(splits, fit_predict, progress=progress)
    if trained is not None:
        wall += trained[2]  # the first fold's training time, spent in the chapter
    n_params = next((f.extra.get("n_params") for f in folds if f.extra.get("n_params")), None)
    record = make_record(
        model, protocol, seed, folds,
        dataset=dataset_info(ws.data, quick=mode.quick, n_clips=family.n_clips(ws, spec), n_speakers=len(ws.summary.counts)),
        wall_time=wall, n_params=n_params,
        config={"features": ws.feature_config.key(), "epochs": mode.epochs, **options},
    )
    if save:
        record["_path"] = str(save_record(record, ws.artifacts_dir))
    return record


def saved_records(ws: Workspace, models: Sequence[str], protocols: Sequence[str],
                  seeds: Sequence[int]) -> list[dict]:
    """The results files of these runs already in the artifacts folder, read back and checked.

    A truncated or malformed file is warned about and left out, so
    ``run_grid(..., done=saved_records(...))`` trains it again; a chapter
    opened on its own computes only what is missing.
    """
    records = []
    for m in models:
        for p in protocols:
            for s in seeds:
                path = result_path(ws.artifacts_dir, m, p, s)
                if (rec := read_valid(path, load_record, what="results file")) is not None:
                    records.append(rec)
    return records


def run_grid(
    ws: Workspace,
    models: Sequence[str],
    protocols: Sequence[str],
    seeds: Sequence[int],
    *,
    done: Sequence[dict] = (),
    **kwargs,
) -> list[dict]:
    """:func:`run_experiment` over every model x protocol x seed; returns the records in that order.

    Records in ``done`` (e.g. the run a chapter trained a few cells earlier,
    or the :func:`saved_records` of an earlier session) are reused for their
    (model, protocol, seed) instead of trained again.
    """
    have = {(r["model"], r["protocol"], r["seed"]): r for r in done}
    records = []
    for m in models:
        for p in protocols:
            for s in seeds:
                if (m, p, s) in have:
                    records.append(have[(m, p, s)])
                else:
                    records.append(run_experiment(ws, m, p, s, **kwargs))
    return records


def scores_table(records: list[dict], paper: dict[str, float] | None = None) -> pd.DataFrame:
    """A readable score table: accuracy, macro-F1 and UAR in %, "mean ± sd" over seeds, per model and protocol.

    With ``paper`` (e.g. :data:`ser_utils.paper.PAPER_ACCURACY`) a column gives the
    paper's accuracy for the same model, on the random split only (the only
    protocol the paper reports).
    """
    table = score_summary(records)
    if table.empty:
        return table

    def fmt(mean: float, sd: float) -> str:
        return f"{mean:.1f}" if pd.isna(sd) else f"{mean:.1f} ± {sd:.1f}"

    out = table[["model", "protocol"]].copy()
    for metric, label in (("accuracy", "accuracy %"), ("f1_macro", "macro-F1 %"), ("uar", "UAR %")):
        out[label] = [fmt(m, s) for m, s in zip(table[f"{metric}_mean"], table[f"{metric}_sd"], strict=True)]
    out["seeds"] = table["n_seeds"]
    out["data"] = table["dataset"]  # one row per dataset: runs on different data are never pooled
    if paper is not None:
        out["paper accuracy %"] = [
            # exact model name only: a variant (hybrid-frames) is not what the paper measured
            paper.get(m, float("nan")) if p == "random" else float("nan")
            for m, p in zip(out["model"], out["protocol"], strict=True)
        ]
    return out


def results_dir(ws: Workspace) -> Path:
    """Where this workspace's results files live."""
    return ws.results_dir
