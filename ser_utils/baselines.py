"""Simple scikit-learn baselines shown beside every deep model.

- ``duration``: logistic regression on the clip length alone. On TESS it is far
  above chance on a random split, which is a leak (length is not emotion).
- ``logreg`` / ``rf``: logistic regression / random forest on the paper's
  187-d time-averaged vector, standardised on the training clips only.
- ``<name>-spknorm``: the same after per-speaker standardisation (each
  speaker's unlabelled statistics, the test speaker's included; see
  :func:`ser_utils.standardise.standardise_per_speaker`).
"""

from __future__ import annotations

import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .evaluation import FoldResult
from .features import FeatureSet
from .labels import EMOTIONS
from .registry import BASELINE_BASES, BASELINE_INPUTS, FoldJob, ModelFamily, ModelSpec
from .splits import Split
from .standardise import standardise_per_speaker
from .workers import one_blas_thread  # the baselines fit on one BLAS thread; chapter 9 imports it from here


def make_classifier(kind: str, seed: int = 0):
    """A scikit-learn pipeline (scaler fitted on the training rows, then the classifier)."""
    if kind == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    if kind == "rf":
        return make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=300, n_jobs=-1, random_state=seed))
    raise ValueError(f"unknown classifier {kind!r}; use 'logreg' or 'rf'")


def duration_fold(manifest: pd.DataFrame, split: Split, seed: int = 0) -> FoldResult:
    """Fit the duration-only classifier on ``split.train`` and predict ``split.test``."""
    dur = manifest.set_index("clip_id")["duration"].astype(float)
    y = manifest.set_index("clip_id")["emotion"].map(EMOTIONS.index)
    x_train = dur.loc[list(split.train)].to_numpy()[:, None]
    x_test = dur.loc[list(split.test)].to_numpy()[:, None]
    clf = make_classifier("logreg", seed).fit(x_train, y.loc[list(split.train)])
    return FoldResult(
        fold=split.fold,
        test_ids=list(split.test),
        y_true=y.loc[list(split.test)].tolist(),
        y_pred=clf.predict(x_test).tolist(),
        n_train=len(split.train),
        n_val=0,
    )


def vector_fold(fs: FeatureSet, split: Split, kind: str = "logreg", seed: int = 0) -> FoldResult:
    """Fit a baseline on the 187-d vectors of ``split.train`` and predict ``split.test``.

    ``kind`` is ``"logreg"`` or ``"rf"``, with ``"-spknorm"`` appended for per-speaker
    standardisation. The validation clips are not needed (no early stopping) and are
    added to training, so every baseline sees the same clips as the deep models.
    """
    spec = ModelSpec.parse(kind)
    if spec.family is not FAMILY or spec.base == "duration":
        raise ValueError(f"unknown baseline variant {kind!r}")
    x = fs.vectors
    if spec.spknorm:
        x = standardise_per_speaker(x, fs.meta["speaker"].to_numpy())
    train = fs.index(split.train + split.val)
    test = fs.index(split.test)
    y = fs.labels
    with one_blas_thread():
        clf = make_classifier(spec.base, seed).fit(x[train], y[train])
        pred = clf.predict(x[test])
    return FoldResult(
        fold=split.fold,
        test_ids=list(fs.ids[test]),
        y_true=y[test].tolist(),
        y_pred=pred.tolist(),
        n_train=len(train),
        n_val=0,
    )


class BaselineFamily(ModelFamily):
    """The scikit-learn baselines: nothing to save, seconds to train, shown beside every deep model."""

    name = "baseline"
    bases = BASELINE_BASES
    suffixes = {"prosody": ("input", "prosody"), "egemaps": ("input", "egemaps"), "spknorm": ("spknorm", True)}
    inputs = BASELINE_INPUTS
    cli_flags = ("spknorm",)

    def suffixes_for(self, base: str):
        return {} if base == "duration" else self.suffixes

    def is_deterministic(self, spec: ModelSpec) -> bool:
        return spec.base != "rf"  # the logistic regressions (lbfgs); the forest draws with its seed

    def check(self, spec: ModelSpec, options) -> None:
        super().check(spec, options)
        if spec.input != "vector":
            raise ValueError(f"{spec.name!r} needs the {spec.input} view of chapter 9 (ser_utils.transfer), "
                             "not the 187-value vector run_experiment has")

    def n_clips(self, ws, spec: ModelSpec) -> int:
        # The duration baseline reads the manifest, so it also scores clips whose features failed.
        return ws.summary.n_ok if spec.base == "duration" else len(ws.features)

    def train_fold(self, ws, split: Split, job: FoldJob) -> FoldResult:
        if job.spec.base == "duration":
            return duration_fold(ws.manifest, split, job.seed)
        return vector_fold(ws.features, split, job.spec.name, job.seed)


FAMILY = BaselineFamily()
