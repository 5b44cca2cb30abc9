"""Metrics, results files and the tables built from them.

Every model, from the duration baseline to BEiT, is scored by the same
functions here and saved as one JSON per (model, protocol, seed) under
``<artifacts>/results/``. The comparison chapter and the README table read
those files; no number is ever typed by hand.

A results JSON holds (DESIGN.md section 2): model, protocol, seed, dataset
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

from .labels import EMOTIONS

METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted", "uar")
SCHEMA_VERSION = 1


def compute_metrics(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int = len(EMOTIONS)) -> dict:
    """Accuracy, macro precision/recall/F1, weighted F1 and UAR (= macro recall), via scikit-learn.

    Classes absent from both ``y_true`` and ``y_pred`` still count in the
    macro averages with a score of 0 (``zero_division=0``), over all
    ``n_classes`` labels, so scores are comparable across folds.
    """
    labels = list(range(n_classes))
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

    def as_dict(self) -> dict:
        labels = list(range(len(EMOTIONS)))
        return {
            "fold": self.fold,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "n_test": len(self.test_ids),
            "epochs": self.epochs,
            "metrics": compute_metrics(self.y_true, self.y_pred),
            "confusion": confusion_matrix(self.y_true, self.y_pred, labels=labels).tolist(),
            "report": classification_report(
                self.y_true, self.y_pred, labels=labels, target_names=list(EMOTIONS),
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
    """The dataset block of a results record, from a :class:`~ser_utils.config.RunContext`."""
    return {
        "name": ctx.dataset,
        "synthetic": ctx.is_demo,
        "n_clips": int(n_clips),
        "partial": (not ctx.is_demo) and n_clips < 2800,
        "quick": ctx.quick,
    }


def result_path(artifacts_dir: str | os.PathLike, model: str, protocol: str, seed: int) -> Path:
    """``<artifacts>/results/<model>__<protocol>__seed<k>.json``."""
    return Path(artifacts_dir) / "results" / f"{model}__{protocol}__seed{seed}.json"


def save_record(record: dict, artifacts_dir: str | os.PathLike) -> Path:
    """Write a record to :func:`result_path`; returns the path."""
    from .outputs import atomic_write

    path = result_path(artifacts_dir, record["model"], record["protocol"], record["seed"])
    with atomic_write(path, what="results file") as tmp:  # an interrupted run never leaves half a JSON
        tmp.write_text(json.dumps(record, indent=1))
    return path


def load_records(results_dir: str | os.PathLike) -> list[dict]:
    """Every results JSON in a folder (sorted by file name); unreadable files are skipped with a warning."""
    import warnings

    records = []
    for path in sorted(Path(results_dir).glob("*__*__seed*.json")):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            warnings.warn(f"skipping unreadable results file {path.name}: {exc}", stacklevel=2)
            continue
        missing = [k for k in ("model", "protocol", "seed", "metrics") if not isinstance(rec, dict) or k not in rec]
        if missing:
            warnings.warn(f"skipping results file {path.name}: not a results record (missing "
                          f"{', '.join(missing)})", stacklevel=2)
            continue
        if not isinstance(rec.get("dataset"), dict) or rec["dataset"].get("name") not in ("tess", "demo"):
            # No provenance: keep the record, but never let it pass for a TESS result.
            rec["dataset"] = {**(rec.get("dataset") if isinstance(rec.get("dataset"), dict) else {}),
                              "name": "unknown", "synthetic": None}
        rec["dataset"].setdefault("n_clips", 0)
        rec["_path"] = str(path)
        records.append(rec)
    return records


def records_frame(records: list[dict]) -> pd.DataFrame:
    """One row per record: model, protocol, seed, dataset and the mean metrics."""
    rows = []
    for r in records:
        rows.append({
            "model": r["model"], "protocol": r["protocol"], "seed": r["seed"],
            "dataset": r["dataset"]["name"], "n_clips": r["dataset"]["n_clips"],
            "wall_time_s": r.get("wall_time_s"), "n_params": r.get("n_params"),
            **r["metrics"],
        })
    return pd.DataFrame(rows)


def summary_table(records: list[dict], metrics: Sequence[str] = ("accuracy", "f1_macro", "uar")) -> pd.DataFrame:
    """Mean and sd over seeds for each model x protocol (columns ``<metric>_mean``, ``<metric>_sd``, ``seeds``)."""
    df = records_frame(records)
    if df.empty:
        return df
    g = df.groupby(["model", "protocol"])
    out = g[list(metrics)].agg(["mean", "std"])
    out.columns = [f"{m}_{'sd' if s == 'std' else s}" for m, s in out.columns]
    out["seeds"] = g["seed"].nunique()
    return out.reset_index()


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
    from .config import project_root

    try:
        root = project_root()
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
