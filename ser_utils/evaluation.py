"""Metrics, results files and the tables built from them.

Every model, from the duration baseline to BEiT, is scored by the same
functions here and saved as one JSON per (model, protocol, seed) under
``<artifacts>/results/``. The comparison chapter and the README table read
those files; no number is ever typed by hand.

A results JSON holds (the schema in ARCHITECTURE.md): model, protocol, seed, dataset
(name, clips, whether it is synthetic or partial), ``metrics`` (mean over
folds: accuracy, macro precision/recall/F1, weighted F1, UAR), one entry per
fold with its own metrics, confusion matrix, per-class report and test
predictions (so paired tests can be run later), train/val/test sizes, epochs,
wall time, parameter count, library versions and the git commit.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)

from .data import FULL_TESS_SIZE
from .labels import EMOTIONS

METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted", "uar")
SCHEMA_VERSION = 1


def compute_metrics(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    n_classes: int = len(EMOTIONS),
    *,
    classes: Sequence[int] | None = None,
) -> dict:
    """Accuracy, macro precision/recall/F1, weighted F1 and UAR (= macro recall), via scikit-learn.

    Classes absent from both ``y_true`` and ``y_pred`` still count in the
    macro averages with a score of 0 (``zero_division=0``), over all
    ``n_classes`` labels, so scores are comparable across folds. ``classes``
    (class indices) narrows the label set, e.g. to the six emotions CREMA-D
    shares with TESS, so a class the corpus does not have is not scored as 0.
    """
    labels = list(classes) if classes is not None else list(range(n_classes))
    kw = dict(labels=labels, zero_division=0)
    recall = recall_score(y_true, y_pred, average="macro", **kw)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision_macro": float(precision_score(y_true, y_pred, average="macro", **kw)),
        "recall_macro": float(recall),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", **kw)),
        "f1_weighted": float(f1_score(y_true, y_pred, average="weighted", **kw)),
        "uar": float(recall),
    }


@dataclass
class FoldResult:
    """Predictions of one model on one fold's test clips."""

    fold: str
    test_ids: list[str]
    y_true: list[int]
    y_pred: list[int]
    n_train: int
    n_val: int
    epochs: int | None = None
    history: dict | None = None
    extra: dict = field(default_factory=dict)
    classes: list[int] | None = None  # class indices scored (None: all of EMOTIONS)

    def as_dict(self) -> dict:
        labels = list(self.classes) if self.classes is not None else list(range(len(EMOTIONS)))
        extra = {"classes": [EMOTIONS[i] for i in labels]} if self.classes is not None else {}
        return {
            "fold": self.fold,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "n_test": len(self.test_ids),
            "epochs": self.epochs,
            "metrics": compute_metrics(self.y_true, self.y_pred, classes=labels),
            "confusion": confusion_matrix(self.y_true, self.y_pred, labels=labels).tolist(),
            **extra,
            "report": classification_report(
                self.y_true, self.y_pred, labels=labels, target_names=[EMOTIONS[i] for i in labels],
                output_dict=True, zero_division=0,
            ),
            "history": self.history,
            "predictions": {"ids": list(self.test_ids), "y_true": list(map(int, self.y_true)),
                            "y_pred": list(map(int, self.y_pred))},
            **self.extra,
        }


def make_record(
    model: str,
    protocol: str,
    seed: int,
    folds: list[FoldResult],
    *,
    dataset: dict,
    wall_time: float,
    n_params: int | None = None,
    config: dict | None = None,
) -> dict:
    """Assemble the results JSON (as a dict) for one model, protocol and seed."""
    fold_dicts = [f.as_dict() for f in folds]
    mean = {m: float(np.mean([f["metrics"][m] for f in fold_dicts])) for m in METRICS}
    confusion = np.sum([f["confusion"] for f in fold_dicts], axis=0).tolist()
    return {
        "schema": SCHEMA_VERSION,
        "model": model,
        "protocol": protocol,
        "seed": int(seed),
        "dataset": dataset,
        "metrics": mean,
        "confusion": confusion,
        "folds": fold_dicts,
        "n_params": n_params,
        "config": config or {},
        "wall_time_s": round(float(wall_time), 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": library_versions(),
        "git_commit": git_commit(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }


def dataset_info(ctx, n_clips: int) -> dict:
    """The dataset block of a results record, from a :class:`~ser_utils.run_context.RunContext`."""
    return {
        "name": ctx.dataset,
        "synthetic": ctx.is_demo,
        "n_clips": int(n_clips),
        "partial": (not ctx.is_demo) and n_clips < FULL_TESS_SIZE,
        "quick": ctx.quick,
    }


def result_path(artifacts_dir: str | os.PathLike, model: str, protocol: str, seed: int) -> Path:
    """``<artifacts>/results/<model>__<protocol>__seed<k>.json``."""
    return Path(artifacts_dir) / "results" / f"{model}__{protocol}__seed{seed}.json"


def save_record(record: dict, artifacts_dir: str | os.PathLike) -> Path:
    """Write a record to :func:`result_path`; returns the path."""
    path = result_path(artifacts_dir, record["model"], record["protocol"], record["seed"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    return path


def load_record(path: str | os.PathLike) -> dict:
    """One results JSON, with its file path under ``"_path"``.

    Raises ``ValueError`` when the file is not a results record. A record
    without a dataset block (an old or hand-made file) is kept but labelled
    ``"unknown"``, so that it is never reported as TESS.
    """
    rec = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = [k for k in ("model", "protocol", "seed", "metrics") if not isinstance(rec, dict) or k not in rec]
    if missing:
        raise ValueError(f"not a results record (missing {', '.join(missing)})")
    dataset = rec.get("dataset") if isinstance(rec.get("dataset"), dict) else {}
    if not dataset.get("name"):
        dataset = {**dataset, "name": "unknown", "synthetic": None}
    rec["dataset"] = {"n_clips": 0, **dataset}
    rec["_path"] = str(path)
    return rec


def load_records(results_dir: str | os.PathLike) -> list[dict]:
    """Every results JSON in a folder (sorted by file name); unreadable files are skipped with a warning."""
    import warnings

    records = []
    for path in sorted(Path(results_dir).glob("*__*__seed*.json")):
        try:
            records.append(load_record(path))
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
            warnings.warn(f"skipping results file {path.name}: {exc}", stacklevel=2)
    return records


#: The metrics a score table shows unless told otherwise.
TABLE_METRICS = ("accuracy", "f1_macro", "uar")


def score_table(
    records: Sequence[dict],
    metrics: Sequence[str] = TABLE_METRICS,
    *,
    dataset: Callable[[dict], str] | None = None,
) -> pd.DataFrame:
    """The one score table: a row per dataset x model x protocol, metrics in %, mean and sd over seeds.

    Columns: ``dataset`` (``dataset(record)``, default the dataset name),
    ``model``, ``protocol``, ``<metric>_mean`` and ``<metric>_sd`` (sd over
    seeds, NaN for one seed) for each metric, ``seeds`` (e.g. ``"0,1,2"``),
    ``n_seeds``, ``n_params`` (Int64), ``wall_time_s`` (mean per seed),
    ``n_test`` (test clips per seed, summed over folds) and ``epochs`` (mean
    per fold). Rows keep the order in which their first record comes; every
    other table (chapter, comparison, README, costs) is a view of this one.
    """
    rows = []
    for r in sorted(records, key=lambda r: r["seed"]):
        epochs = [f.get("epochs") for f in r.get("folds", []) if f.get("epochs")]
        rows.append({
            "dataset": dataset(r) if dataset else r["dataset"]["name"], "model": r["model"],
            "protocol": r["protocol"], "seed": r["seed"], **{m: 100 * r["metrics"].get(m, np.nan) for m in metrics},
            "n_params": r.get("n_params"), "wall_time_s": r.get("wall_time_s"),
            "n_test": sum(f.get("n_test", 0) for f in r.get("folds", [])),
            "epochs": float(np.mean(epochs)) if epochs else np.nan,
        })
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    # Seeds are listed in order ("0,1,2"); rows keep the order of the input records.
    order = pd.DataFrame([{"dataset": dataset(r) if dataset else r["dataset"]["name"], "model": r["model"],
                           "protocol": r["protocol"]} for r in records]).drop_duplicates()
    g = df.groupby(["dataset", "model", "protocol"], sort=False)
    out = g.agg(**{f"{m}_{stat}": (m, "mean" if stat == "mean" else "std") for m in metrics
                   for stat in ("mean", "sd")},
                seeds=("seed", lambda s: ",".join(map(str, s))), n_seeds=("seed", "nunique"),
                n_params=("n_params", "first"), wall_time_s=("wall_time_s", "mean"),
                n_test=("n_test", "mean"), epochs=("epochs", "mean")).reset_index()
    out["n_params"] = pd.to_numeric(out["n_params"], errors="coerce").astype("Int64")
    out["n_test"] = out["n_test"].round().astype(int)
    return order.merge(out, on=["dataset", "model", "protocol"], how="left")


def run_folds(
    splits,
    fit_predict: Callable[[object], FoldResult],
    *,
    progress: bool = True,
) -> tuple[list[FoldResult], float]:
    """Call ``fit_predict(split)`` on every fold; return the fold results and the wall time."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    folds = [fit_predict(s) for s in tqdm(splits, desc="Folds", disable=not progress or len(splits) < 2)]
    return folds, time.perf_counter() - start


def library_versions() -> dict:
    """Versions of the libraries that shape the results (those that are installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("numpy", "librosa", "scikit-learn", "tensorflow-cpu", "tensorflow", "keras", "torch",
                "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def git_commit() -> str | None:
    """The current git commit of the project (with ``-dirty`` if it has local changes), if any."""
    from .run_context import project_root

    try:
        root = project_root()
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
