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
from dataclasses import asdict, dataclass, field
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
from .quiet import bar_hidden

METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted", "uar")
SCHEMA_VERSION = 1


def compute_metrics(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int = len(EMOTIONS), *,
                    classes: Sequence[int] | None = None) -> dict:
    """Accuracy, macro precision/recall/F1, weighted F1 and UAR (= macro recall), via scikit-learn.

    Every macro average runs over all ``n_classes`` labels, a class absent from a
    fold scoring 0 (``zero_division=0``), so scores are comparable across folds.
    ``classes`` (class indices) narrows the label set, e.g. to the six emotions
    CREMA-D shares with TESS, so a class a corpus does not have is not scored as 0.
    Saved from chapter 7, section 7.2 (book/07_comparison.ipynb).
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
    """Assemble the results JSON (as a dict) for one model, protocol and seed.

    When the data hold fewer emotions than the label set (a TESS folder with only
    3 of the 7), macro scores are averaged over the emotions present in the test
    clips, not over absent classes that would count as 0 (21 % UAR for 50 %
    accuracy), with a warning; the record lists them under ``scored_classes``.
    """
    fold_dicts = [f.as_dict() for f in folds]
    present = sorted({int(y) for f in folds for y in f.y_true})
    scored = None
    if folds and all(f.classes is None for f in folds) and 0 < len(present) < len(EMOTIONS):
        import warnings

        scored = [EMOTIONS[i] for i in present]
        warnings.warn(f"{model} {protocol}: only {len(present)} of the {len(EMOTIONS)} emotions occur in the data "
                      f"({', '.join(scored)}); macro scores are averaged over these {len(present)}", UserWarning,
                      stacklevel=2)
        for f, d in zip(folds, fold_dicts, strict=True):
            d["metrics"] = compute_metrics(f.y_true, f.y_pred, classes=present)
            d["scored_classes"] = scored
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
        **({"scored_classes": scored} if scored else {}),
        "n_params": n_params,
        "config": config or {},
        "wall_time_s": round(float(wall_time), 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": library_versions(),
        "git_commit": git_commit(),
        "machine": machine_info(),
    }


def machine_info() -> dict:
    """Where a run was made: OS platform, core count, CPU model and its widest SIMD instruction set.

    The CPU model matters for reproducing a run: the same code, seed and library versions can
    flip a few test predictions on another CPU, whose BLAS kernels sum in a different order.
    """
    cpu, flags = platform.processor() or "", set()
    try:  # Linux names the model and its instruction sets in /proc/cpuinfo; platform.processor() is often empty
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            first = f.read().split("\n\n")[0]  # the first core's block
        info = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first.splitlines() if ":" in line)}
        cpu, flags = info.get("model name", cpu), set(info.get("flags", "").split())
    except (OSError, ValueError):
        pass
    simd = next((f for f in ("avx512f", "avx2", "avx", "neon", "asimd") if f in flags), "unknown")
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "cpu": cpu or "unknown", "simd": simd}


def dataset_info(data, *, n_clips: int, quick: bool, n_speakers: int | None = None) -> dict:
    """The dataset block of a results record, from a :class:`~ser_utils.run_context.DataContext`.

    ``n_speakers``: the speakers of the usable clips (both TESS actresses on the full corpus).
    """
    return {
        "name": data.dataset,
        "synthetic": data.is_demo,
        "n_clips": int(n_clips),
        **({"n_speakers": int(n_speakers)} if n_speakers is not None else {}),
        "partial": (not data.is_demo) and n_clips < FULL_TESS_SIZE,
        "quick": bool(quick),
    }


def result_path(artifacts_dir: str | os.PathLike, model: str, protocol: str, seed: int) -> Path:
    """``<artifacts>/results/<model>__<protocol>__seed<k>.json``."""
    return Path(artifacts_dir) / "results" / f"{model}__{protocol}__seed{seed}.json"


def save_record(record: dict, artifacts_dir: str | os.PathLike) -> Path:
    """Write a record to :func:`result_path` (``<artifacts>/results/``); returns the path."""
    return save_record_in(record, Path(artifacts_dir) / "results")


def save_record_in(record: dict, folder: str | os.PathLike) -> Path:
    """Write a record as ``<folder>/<model>__<protocol>__seed<k>.json``, atomically; returns the path.

    Keys starting with ``_`` (e.g. ``_path``, added after saving) are not written.
    """
    from .outputs import atomic_write

    path = Path(folder) / result_path(".", record["model"], record["protocol"], record["seed"]).name
    with atomic_write(path, what="results file") as tmp:  # an interrupted run never leaves half a JSON
        tmp.write_text(json.dumps({k: v for k, v in record.items() if not k.startswith("_")}, indent=1))
    return path


def load_record(path: str | os.PathLike) -> dict:
    """One results JSON, with its file path under ``"_path"``.

    Raises ``ValueError`` when the file is not a results record (keys missing,
    a metric that is not a finite number in [0, 1], a seed that is not an integer). A record
    without a dataset block (an old or hand-made file) is kept but labelled
    ``"unknown"``, so that it is never reported as TESS.
    """
    rec = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = [k for k in ("model", "protocol", "seed", "metrics") if not isinstance(rec, dict) or k not in rec]
    if missing:
        raise ValueError(f"not a results record (missing {', '.join(missing)})")
    if not isinstance(rec["model"], str) or not isinstance(rec["protocol"], str):
        raise ValueError("not a results record (model and protocol must be names)")
    if isinstance(rec["seed"], bool) or not isinstance(rec["seed"], int):
        raise ValueError(f"not a results record (seed {rec['seed']!r} is not an integer)")
    metrics = rec["metrics"]
    bad = ([k for k, v in metrics.items() if isinstance(v, bool) or not isinstance(v, int | float)
            or not np.isfinite(v) or not 0 <= v <= 1] if isinstance(metrics, dict) else ["metrics"])
    if bad or not metrics:
        raise ValueError(f"not a results record (metrics {', '.join(bad) or 'empty'} not numbers between 0 and 1)")
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
            warnings.warn(f"skipping unreadable results file {path.name}: {exc}", stacklevel=2)
    return records


#: The metrics a score table shows unless told otherwise.
SUMMARY_METRICS = ("accuracy", "f1_macro", "uar")


def dataset_key(record: dict) -> tuple[str, bool, int]:
    """(dataset name, quick mode, clip count): records sharing it are comparable.

    The clip count keeps runs on different parts of one corpus apart (TESS's
    1400-clip half and all 2800 clips): their seeds are never pooled.
    """
    d = record.get("dataset") or {}
    return d.get("name", "?"), bool(d.get("quick", False)), int(d.get("n_clips") or 0)


def data_name(record: dict) -> str:
    """Short name of a record's comparable dataset, e.g. ``"tess (2800 clips)"`` or ``"demo (120 clips, quick)"``."""
    name, quick, n = dataset_key(record)
    return f"{name} ({n} clips{', quick' if quick else ''})"


def score_summary(
    records: Sequence[dict],
    metrics: Sequence[str] = SUMMARY_METRICS,
    *,
    dataset: Callable[[dict], str] | None = None,
) -> pd.DataFrame:
    """The one score table: a row per dataset x model x protocol, metrics in %, mean and sd over seeds.

    Columns: ``dataset`` (``dataset(record)``, default :func:`data_name`: runs on
    different data, e.g. TESS's 1400-clip half and all 2800 clips, are never pooled),
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
            "dataset": (dataset or data_name)(r), "model": r["model"],
            "protocol": r["protocol"], "seed": r["seed"], **{m: 100 * r["metrics"].get(m, np.nan) for m in metrics},
            "n_params": r.get("n_params"), "wall_time_s": r.get("wall_time_s"),
            "n_test": sum(f.get("n_test", 0) for f in r.get("folds", [])),
            "epochs": float(np.mean(epochs)) if epochs else np.nan,
        })
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    # Seeds are listed in order ("0,1,2"); rows keep the order of the input records.
    order = pd.DataFrame([{"dataset": (dataset or data_name)(r), "model": r["model"],
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
    folds = [fit_predict(s) for s in tqdm(splits, desc="Folds", disable=bar_hidden(progress and len(splits) >= 2))]
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
    """The project's git commit (with ``-dirty`` if it had local changes) when this process loaded the package.

    Read once per process, at the first call (this module calls it when it is
    imported): a long run records the code it imported, not a commit checked
    out while it ran (a grid of many runs once recorded four commits and a
    ``-dirty`` tree for code loaded at one commit).
    """
    global _PROCESS_COMMIT
    if _PROCESS_COMMIT is _UNREAD:
        _PROCESS_COMMIT = _read_git_commit()
    return _PROCESS_COMMIT


_UNREAD = object()
_PROCESS_COMMIT: object = _UNREAD


def _read_git_commit() -> str | None:
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


git_commit()  # at import: the commit of the code this process runs


# --- paired comparisons of two models on the same test clips ----------------------------------


def paired_predictions(rec_a: dict, rec_b: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True labels and both models' predictions on the test clips two results records share.

    Clips are matched by (fold, clip id). Raises ``ValueError`` when the records
    differ in protocol or seed, share no clip, or disagree on a true label.
    Saved from chapter 7, section 7.7 (book/07_comparison.ipynb).
    """
    if (rec_a["protocol"], rec_a["seed"]) != (rec_b["protocol"], rec_b["seed"]):
        raise ValueError("a paired comparison needs two records of the same protocol and seed")
    pa, pb = ({(f["fold"], cid): (t, p) for f in r["folds"]
               for cid, t, p in zip(*(f["predictions"][k] for k in ("ids", "y_true", "y_pred")), strict=True)}
              for r in (rec_a, rec_b))
    shared = sorted(set(pa) & set(pb))
    if not shared:
        raise ValueError(f"{rec_a['model']} and {rec_b['model']} share no test clips")
    y = np.array([pa[k][0] for k in shared])
    if not np.array_equal(y, [pb[k][0] for k in shared]):
        raise ValueError("the two records disagree on the true labels of shared clips")
    return y, np.array([pa[k][1] for k in shared]), np.array([pb[k][1] for k in shared])


@dataclass
class McNemarResult:
    """Exact McNemar test of two models on the same clips: counts, accuracies and the p-value.

    Saved from chapter 7, section 7.7 (book/07_comparison.ipynb).
    """

    model_a: str
    model_b: str
    protocol: str
    seed: int
    n: int
    both_right: int
    only_a: int
    only_b: int
    both_wrong: int
    accuracy_a: float
    accuracy_b: float
    p_value: float

    def as_dict(self) -> dict:
        return asdict(self)


def mcnemar(rec_a: dict, rec_b: dict) -> McNemarResult:
    """Exact McNemar test :cite:p:`mcnemar1947note` between two records of the same protocol and seed.

    Only the discordant clips count: under equal error rates each is a fair coin,
    so the p-value is the two-sided binomial test of ``only_a`` of them at 0.5.
    Saved from chapter 7, section 7.7 (book/07_comparison.ipynb).
    """
    from scipy.stats import binomtest

    y, pred_a, pred_b = paired_predictions(rec_a, rec_b)
    ra, rb = pred_a == y, pred_b == y
    only_a, only_b = int(np.sum(ra & ~rb)), int(np.sum(~ra & rb))
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return McNemarResult(
        model_a=rec_a["model"], model_b=rec_b["model"], protocol=rec_a["protocol"], seed=int(rec_a["seed"]),
        n=len(y), both_right=int(np.sum(ra & rb)), only_a=only_a, only_b=only_b,
        both_wrong=int(np.sum(~ra & ~rb)), accuracy_a=float(ra.mean()), accuracy_b=float(rb.mean()),
        p_value=float(p),
    )


def uar(y_true, y_pred, n_classes: int = len(EMOTIONS)) -> float:
    """Unweighted average recall in NumPy: ``compute_metrics(...)["uar"]`` without scikit-learn's overhead.

    The mean recall over the classes present in ``y_true``, as ``compute_metrics`` does for a
    corpus with fewer emotions. The bootstrap scores thousands of resamples, where input checks
    would dominate.
    Saved from chapter 7, section 7.7 (book/07_comparison.ipynb).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    support = np.bincount(y_true, minlength=n_classes)
    hits = np.bincount(y_true[y_true == y_pred], minlength=n_classes)
    present = support > 0  # a corpus with six of the seven emotions is scored over its six
    return float(np.mean(hits[present] / support[present]))


def bootstrap_difference(y_true, pred_a, pred_b, score: Callable = uar, *, n_boot: int = 2000,
                         level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Paired bootstrap confidence interval of ``score(A) - score(B)`` on the same test clips.

    Resamples the clips with replacement ``n_boot`` times (the same resample for
    both models, so clip difficulty cancels) and returns the difference on all
    clips with the percentile interval at ``level``: ``(difference, low, high)``.
    Saved from chapter 7, section 7.7 (book/07_comparison.ipynb).
    """
    y_true, pred_a, pred_b = (np.asarray(v) for v in (y_true, pred_a, pred_b))
    rng = np.random.default_rng(seed)

    def diff(idx):
        return score(y_true[idx], pred_a[idx]) - score(y_true[idx], pred_b[idx])

    boots = [diff(rng.integers(0, len(y_true), len(y_true))) for _ in range(n_boot)]
    low, high = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return float(diff(np.arange(len(y_true)))), float(low), float(high)


def uar_interval(record: dict, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """One run's UAR with a percentile bootstrap interval over its test clips: ``(uar, low, high)``.

    Clips are resampled within each fold and the fold UARs averaged, as the record's own UAR
    is. The interval covers test-set sampling only: a single run (a deterministic model, one
    cross-corpus split) has no seed spread to add.
    """
    folds = [(np.asarray(f["predictions"]["y_true"]), np.asarray(f["predictions"]["y_pred"])) for f in record["folds"]]
    if not folds or any(len(y) == 0 for y, _ in folds):
        raise ValueError(f"{record.get('model')}: the record has a fold without test predictions")
    rng = np.random.default_rng(seed)

    def score(draw: bool) -> float:
        out = []
        for y, p in folds:
            idx = rng.integers(0, len(y), len(y)) if draw else np.arange(len(y))
            out.append(uar(y[idx], p[idx]))
        return float(np.mean(out))

    boots = [score(True) for _ in range(n_boot)]
    low, high = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return score(False), float(low), float(high)


# --- the book's one inference rule ----------------------------------------------------------------

#: The rule every comparison of the book states (chapter 7.7): A beats B when, on every seed both were
#: run with, the paired bootstrap interval of UAR(A) - UAR(B) over the test clips lies above 0 (test-set
#: sampling), and the mean difference over seeds exceeds twice the larger seed sd (training randomness).
INFERENCE_RULE = ("A beats B when every seed's 95 % paired-bootstrap interval of the UAR difference lies above 0 "
                  "and the mean difference exceeds twice the larger of their seed sds; a trained model run with "
                  "one seed has no seed sd, so against it nothing is told apart")


@dataclass
class SeededComparison:
    """Two models under one protocol, compared by :data:`INFERENCE_RULE`; differences in UAR points."""

    model_a: str
    model_b: str
    protocol: str
    seeds: list[int]
    per_seed: list[tuple[float, float, float]]  # (difference, low, high) of each seed's paired bootstrap
    mean_difference: float
    sd_a: float
    sd_b: float
    verdict: str  # "a", "b" or "tie"
    one_seed: tuple[str, ...] = ()  # trained models run with one seed: their seed spread is unmeasured

    def sentence(self) -> str:
        """One line: the verdict with the numbers it rests on."""
        who = {"a": f"{self.model_a} beats {self.model_b}", "b": f"{self.model_b} beats {self.model_a}",
               "tie": f"{self.model_a} and {self.model_b} are not told apart"}[self.verdict]
        intervals = ", ".join(f"[{lo:+.1f}, {hi:+.1f}]" for _, lo, hi in self.per_seed)
        sds = (f"seed sd of {' and '.join(self.one_seed)} unmeasured (one seed)" if self.one_seed
               else f"seed sds {self.sd_a:.1f} and {self.sd_b:.1f}")
        return (f"{who} ({self.protocol}): mean UAR difference {self.mean_difference:+.1f} points over "
                f"{len(self.seeds)} seed(s), {sds}, paired-bootstrap 95 % intervals {intervals}")


def seeded_comparison(records_a: Sequence[dict], records_b: Sequence[dict], *, n_boot: int = 2000,
                      boot_seed: int = 0) -> SeededComparison:
    """Compare two models' records of one protocol by the book's rule (:data:`INFERENCE_RULE`).

    Records are paired by seed. A side with a single record (a deterministic
    model, run once) is paired with every seed of the other, provided its test
    clips are the other's (true of the speaker and actor protocols, whose test
    sets do not depend on the seed); otherwise ``ValueError``. A trained model
    (not deterministic by its family, :meth:`~ser_utils.registry.ModelFamily.is_deterministic`)
    with a single seed has no measured seed sd: the verdict is then a tie.
    """
    by_a, by_b = ({int(r["seed"]): r for r in recs} for recs in (records_a, records_b))
    one_seed = tuple(next(iter(by.values()))["model"] for by in (by_a, by_b)
                     if len(by) == 1 and not _deterministic(next(iter(by.values()))["model"]))
    protocols = {r["protocol"] for r in (*records_a, *records_b)}
    if len(protocols) != 1 or not by_a or not by_b:
        raise ValueError(f"seeded_comparison needs records of one protocol on both sides, not {sorted(protocols)}")
    if len(by_b) == 1 and len(by_a) > 1:
        only = next(iter(by_b.values()))
        by_b = {s: dict(only, seed=s) for s in by_a}
    elif len(by_a) == 1 and len(by_b) > 1:
        only = next(iter(by_a.values()))
        by_a = {s: dict(only, seed=s) for s in by_b}
    seeds = sorted(set(by_a) & set(by_b))
    if not seeds:
        raise ValueError("the two models share no seed")
    per_seed = []
    for s in seeds:
        y, pa, pb = paired_predictions(by_a[s], by_b[s])
        n_test = sum(f["n_test"] for f in by_a[s]["folds"])
        if len(y) != n_test:
            raise ValueError(f"seed {s}: the records share {len(y)} of {n_test} test clips: they are not the same "
                             "test set (a single-seed model pairs only where the test clips do not depend on the seed)")
        d, lo, hi = bootstrap_difference(y, pa, pb, n_boot=n_boot, seed=boot_seed)
        per_seed.append((100 * d, 100 * lo, 100 * hi))
    ua = [100 * by_a[s]["metrics"]["uar"] for s in seeds]
    ub = [100 * by_b[s]["metrics"]["uar"] for s in seeds]
    sd = lambda v: float(np.std(v, ddof=1)) if len(set(v)) > 1 else 0.0  # noqa: E731
    mean = float(np.mean(ua) - np.mean(ub))
    margin = 2 * max(sd(ua), sd(ub))
    if one_seed:
        verdict = "tie"
    elif all(lo > 0 for _, lo, _ in per_seed) and mean > margin:
        verdict = "a"
    elif all(hi < 0 for _, _, hi in per_seed) and -mean > margin:
        verdict = "b"
    else:
        verdict = "tie"
    return SeededComparison(by_a[seeds[0]]["model"], by_b[seeds[0]]["model"], protocols.pop(), seeds, per_seed,
                            mean, sd(ua), sd(ub), verdict, one_seed)


def _deterministic(model: str) -> bool:
    """True when the registry says training ``model`` involves no randomness (unknown names: False)."""
    from .registry import ModelSpec

    spec = ModelSpec.parse_or_none(model)
    return spec is not None and spec.family.is_deterministic(spec)

