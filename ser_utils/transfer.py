"""Does it transfer? Baselines under leave-actors-out and cross-corpus protocols, as results records.

The folds come from :mod:`ser_utils.splits` (:func:`~ser_utils.splits.actor_folds`,
:func:`~ser_utils.splits.cross_corpus_split`), the classifiers from
:mod:`ser_utils.baselines`; this module joins the feature sets of two corpora,
scores only the emotions a protocol can ask about, and writes one results
record per (model, protocol) that names its corpora and subset.

Run the reference measurements (logistic regression on the 187-value vector,
raw and with per-speaker standardisation) with::

    python -m ser_utils transfer --crema DIR --tess DIR --artifacts /tmp/corpora-art --out results/reference/crema-d-dev

add ``--feature-sets vector prosody egemaps`` to run the same protocols on the
13 prosody values (:mod:`ser_utils.prosody`) and the 88 eGeMAPS values
(:mod:`ser_utils.egemaps`) as well (records ``logreg-prosody``,
``logreg-egemaps-spknorm``...), and ``--models cnn hybrid --seeds 0 1 2`` to
train the Keras models of chapters 3 and 5 leave-one-actor-out on CREMA-D
(``--folds K``: grouped K-fold instead; ``--quick``: tiny sizes, for tests).
``--prosody`` prints the older 187 / prosody / both comparison instead.
Chapter 9 (``book/09_transfer.ipynb``) teaches all of it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dataclasses import dataclass, field, replace

from .baselines import vector_fold
from .evaluation import FoldResult, compute_metrics, make_record, save_record_in
from .features import FeatureSet
from .labels import EMOTIONS
from .run_context import RunMode
from .registry import ModelSpec
from .splits import Split

#: The feature views chapter 9 compares: the paper's 187 values, 13 prosody values, 88 eGeMAPS values.
FEATURE_SETS = ("vector", "prosody", "egemaps")


def combine_features(*sets: FeatureSet) -> FeatureSet:
    """One :class:`FeatureSet` holding the clips of several (clip ids must be distinct; same feature config)."""
    keys = {fs.config.key() for fs in sets}
    if len(keys) > 1:
        raise ValueError(f"feature sets made with different configurations: {sorted(keys)}")
    ids = np.concatenate([fs.ids for fs in sets])
    if len(set(ids)) != len(ids):
        raise ValueError("the feature sets share clip ids; they cannot be combined")
    return FeatureSet(
        ids=ids,
        vectors=np.concatenate([fs.vectors for fs in sets]),
        frames=np.concatenate([fs.frames for fs in sets]),
        images=np.concatenate([fs.images for fs in sets]),
        n_frames_raw=np.concatenate([fs.n_frames_raw for fs in sets]),
        meta=pd.concat([fs.meta for fs in sets], ignore_index=True),
        failed=pd.concat([fs.failed for fs in sets], ignore_index=True),
        config=sets[0].config,
    )


def only_emotions(fs: FeatureSet, emotions: Sequence[str]) -> FeatureSet:
    """The clips of ``fs`` whose emotion is in ``emotions`` (the rest dropped from every view)."""
    mask = fs.meta["emotion"].isin(set(emotions)).to_numpy()
    return FeatureSet(ids=fs.ids[mask], vectors=fs.vectors[mask], frames=fs.frames[mask], images=fs.images[mask],
                      n_frames_raw=fs.n_frames_raw[mask], meta=fs.meta[mask].reset_index(drop=True),
                      failed=fs.failed, config=fs.config, cache_dir=fs.cache_dir)


def baseline_folds(fs: FeatureSet, splits: Sequence[Split], kind: str, emotions: Sequence[str],
                   seed: int = 0) -> list[FoldResult]:
    """Fit baseline ``kind`` (``logreg``, ``logreg-spknorm``, ``rf``...) on each fold; score over ``emotions``.

    Clips of other emotions are dropped first, from training and from the
    per-speaker statistics alike, so a cross-corpus model can only answer
    with a label both corpora have.
    """
    fs = only_emotions(fs, emotions)
    classes = sorted(EMOTIONS.index(e) for e in set(emotions))
    out = []
    for s in splits:
        fold = vector_fold(fs, s, kind, seed)
        fold.classes = classes
        out.append(fold)
    return out


def transfer_record(model: str, protocol: TransferProtocol, folds: list[FoldResult], *, wall_time: float,
                    features_key: str, seed: int = 0) -> dict:
    """The results record of one baseline under one many-speaker or cross-corpus protocol."""
    return make_record(model, protocol.name, seed, folds, dataset=dict(protocol.dataset), wall_time=wall_time,
                       config={"features": features_key, "epochs": None})


def reference_fold(records: Sequence[dict], model: str, split: Split, seed: int) -> FoldResult | None:
    """The fold ``split`` of a reference run of ``model`` with ``seed``, if one was made on exactly its clips.

    What a default chapter run quotes instead of training a fold again: the match needs the same
    model, seed and fold name, and the same test clips and number of training clips (so a
    reference made on another copy or subset of the corpus is never quoted). None when absent.
    """
    for r in records:
        if (r["model"], r["seed"]) != (model, seed):
            continue
        for f in r["folds"]:
            pred = f["predictions"]
            if f["fold"] == split.fold and sorted(pred["ids"]) == sorted(map(str, split.test)) \
                    and f["n_train"] == len(split.train):
                classes = [EMOTIONS.index(e) for e in f["classes"]] if f.get("classes") else None
                return FoldResult(f["fold"], pred["ids"], pred["y_true"], pred["y_pred"], f["n_train"], f["n_val"],
                                  epochs=f.get("epochs"), history=f.get("history"), classes=classes)
    return None


@dataclass
class TransferProtocol:
    """One protocol of chapter 9: its folds, the emotions it scores, and the dataset block of its records."""

    splits: list[Split]
    emotions: tuple[str, ...]
    dataset: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.splits[0].protocol


@dataclass(frozen=True)
class CorpusNotes:
    """How the records of chapter 9 describe its two corpora: their folder names, synthetic or not, quick mode."""

    crema_label: str = "crema-d"
    tess_label: str = "tess"
    synthetic: bool = False
    quick: bool = False


def transfer_protocols(m_crema: pd.DataFrame, m_tess: pd.DataFrame, notes: CorpusNotes = CorpusNotes(), *,
                       seed: int = 0, n_folds: int | None = None) -> list[TransferProtocol]:
    """Leave-actors-out on CREMA-D, then TESS -> CREMA-D and CREMA-D -> TESS over the shared emotions.

    ``n_folds`` None: leave one actor out; otherwise grouped K-fold
    (:func:`~ser_utils.splits.actor_folds`). The dataset blocks name the
    corpora, their size and whether they are synthetic or a subset (``notes``).
    """
    from .corpora import get_corpus, shared_emotions
    from .data import summarise_corpus, usable
    from .splits import actor_folds, cross_corpus_split

    crema, tess = get_corpus("crema-d"), get_corpus("tess")
    n_crema, n_tess = len(usable(m_crema)), len(usable(m_tess))
    n_actors = summarise_corpus(m_crema, crema).counts.shape[0]
    actors = sorted(usable(m_crema)["speaker"].astype(str).unique())  # named, so a reader can rebuild the subset
    crema_label, tess_label, synthetic = notes.crema_label, notes.tess_label, notes.synthetic
    kind = "SYNTHETIC stand-in for " if synthetic else ""
    crema_desc = (f"{crema_label}: {kind}CREMA-D, all clips of {n_actors} of its {crema.n_speakers} actors "
                  f"({n_crema} clips); a {n_actors}-actor subset, not comparable with full-corpus figures")
    tess_desc = f"{tess_label}: {kind}TESS, {n_tess} of its 2800 clips"
    common = {"synthetic": synthetic, "partial": True, "quick": notes.quick}
    shared = shared_emotions(crema, tess)
    out = [TransferProtocol(actor_folds(m_crema, n_folds=n_folds, seed=seed), crema.emotions, {
        "name": "crema-d", "corpus": "crema-d", "n_clips": n_crema, "n_actors": n_actors, "actors": actors,
        "subset": crema_desc, **common})]
    for (ma, a), (mb, b) in (((m_tess, "tess"), (m_crema, "crema-d")), ((m_crema, "crema-d"), (m_tess, "tess"))):
        split = cross_corpus_split(ma, mb, train_corpus=a, test_corpus=b, emotions=shared, seed=seed)
        out.append(TransferProtocol([split], shared, {
            "name": "tess+crema-d", "train_corpus": a, "test_corpus": b,
            "n_clips": len(split.train) + len(split.val) + len(split.test), "emotions": list(shared),
            "n_tess_clips": n_tess, "crema_actors": actors, "subset": f"{tess_desc}; {crema_desc}", **common}))
    return out


def view_name(kind: str, view: str = "vector") -> str:
    """The model name of baseline ``kind`` on feature view ``view``.

    >>> view_name("logreg-spknorm", "egemaps")
    'logreg-egemaps-spknorm'
    """
    return replace(ModelSpec.parse(kind), input=view).name


def view_table(manifest: pd.DataFrame, artifacts: str | os.PathLike, view: str, *, jobs: int | None = None,
               progress: bool = False) -> pd.DataFrame:
    """The per-clip values of ``view`` (``prosody`` or ``egemaps``), index ``clip_id``, cached under ``artifacts``."""
    if view == "prosody":
        from .prosody import ensure_prosody

        return ensure_prosody(manifest, artifacts, jobs=jobs, progress=progress)
    if view == "egemaps":
        from .egemaps import ensure_egemaps

        return ensure_egemaps(manifest, artifacts, jobs=jobs, progress=progress)
    raise ValueError(f"feature view must be 'prosody' or 'egemaps' (the vector is the FeatureSet), not {view!r}")


def run_baselines(fs: FeatureSet, protocols: Sequence[TransferProtocol],
                  kinds: Sequence[str] = ("logreg", "logreg-spknorm"), *, view: str = "vector",
                  out: str | os.PathLike | None = None, seed: int = 0) -> list[dict]:
    """One results record per (baseline, protocol) on ``fs``, whose vectors hold ``view``.

    Records are written to ``out`` when given, and returned.
    """
    records = []
    for p in protocols:
        for kind in kinds:
            start = time.perf_counter()
            folds = baseline_folds(fs, p.splits, kind, p.emotions, seed)
            rec = transfer_record(view_name(kind, view), p, folds, wall_time=time.perf_counter() - start,
                                  features_key=fs.config.key() if view == "vector" else view, seed=seed)
            if out is not None:
                rec["_path"] = str(save_record_in(rec, out))
            records.append(rec)
    return records


@dataclass(frozen=True)
class DeepRuns:
    """Which Keras models (chapters 3-5) are trained leave-actors-out, with which seeds, on how many folds, how long.

    ``n_folds`` None: leave one actor out, else grouped K-fold; ``max_folds``
    keeps only the first folds (a cheap check); ``mode`` is the run's quick
    mode and epoch cap.
    """

    models: tuple[str, ...] = ("cnn", "hybrid")
    seeds: tuple[int, ...] = (0,)
    n_folds: int | None = None
    max_folds: int | None = None
    mode: RunMode = RunMode()


def deep_runs(fs: FeatureSet, manifest: pd.DataFrame, runs: DeepRuns = DeepRuns(), *, dataset: dict,
              out: str | os.PathLike | None = None, progress: bool = False) -> list[dict]:
    """Train each of ``runs.models`` leave-actors-out on one corpus, once per seed; one record each.

    The folds are :func:`~ser_utils.splits.actor_folds` with the run's seed
    (which picks the validation actors); ``runs.max_folds`` keeps only the first
    folds (recorded as ``folds_run`` of ``folds_in_protocol``). Scores cover the
    corpus's own emotions.
    """
    from .corpora import get_corpus
    from .splits import actor_folds
    from .registry import FoldJob
    from .training import keras_fold

    emotions = get_corpus(dataset.get("corpus", "crema-d")).emotions
    fs = only_emotions(fs, emotions)
    classes = sorted(EMOTIONS.index(e) for e in emotions)
    records = []
    quick, epochs = runs.mode.quick, runs.mode.epochs
    for model in runs.models:
        for seed in runs.seeds:
            splits = actor_folds(manifest, n_folds=runs.n_folds, seed=seed)
            n_all = len(splits)
            splits = splits[:runs.max_folds] if runs.max_folds else splits
            start = time.perf_counter()
            folds = []
            for s in splits:
                job = FoldJob.of(model, seed=seed, mode=runs.mode, progress=progress)
                fold = keras_fold(fs, s, job)
                fold.classes = classes
                folds.append(fold)
            ds = {**dataset, "quick": quick, "folds_run": len(splits), "folds_in_protocol": n_all}
            rec = make_record(ModelSpec.parse(model).name, splits[0].protocol, seed, folds, dataset=ds,
                              wall_time=time.perf_counter() - start, n_params=folds[0].extra.get("n_params"),
                              config={"features": fs.config.key(), "epochs": epochs})
            if out is not None:
                rec["_path"] = str(save_record_in(rec, out))
            records.append(rec)
    return records


@dataclass(frozen=True)
class ReferenceRuns:
    """What :func:`reference_runs` computes: each baseline on each feature view, then the Keras models per seed.

    ``n_folds`` (None: leave one actor out) applies to both; ``mode`` (quick
    mode, epoch cap) picks the feature configuration and the models' epochs.
    """

    kinds: tuple[str, ...] = ("logreg", "logreg-spknorm")
    feature_sets: tuple[str, ...] = ("vector",)
    models: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    n_folds: int | None = None
    mode: RunMode = RunMode()

    def deep(self) -> DeepRuns:
        """The Keras part of the run, on every fold."""
        return DeepRuns(self.models, self.seeds, n_folds=self.n_folds, mode=self.mode)


def reference_runs(crema_dir: str | os.PathLike, tess_dir: str | os.PathLike, artifacts: str | os.PathLike,
                   out: str | os.PathLike | None, plan: ReferenceRuns = ReferenceRuns(), *,
                   jobs: int | None = None) -> list[dict]:
    """Leave-one-actor-out on CREMA-D and TESS <-> CREMA-D transfer, for each baseline and feature view.

    Features are extracted (or read from the cache) under ``artifacts/<folder name>``.
    ``plan.models`` (``cnn``, ``hybrid``...) are also trained on CREMA-D
    leave-actors-out, once per seed in ``plan.seeds``. Records are written to
    ``out`` when given, and returned.
    """
    from .corpora import get_corpus
    from .data import build_manifest
    from .features import FeatureConfig, ensure_features, quick_config
    from .synth import is_demo_corpus

    cfg = quick_config() if plan.mode.quick else FeatureConfig()
    m_crema = build_manifest(crema_dir, corpus=get_corpus("crema-d"), progress=False)
    m_tess = build_manifest(tess_dir, corpus=get_corpus("tess"), progress=False)
    art_c, art_t = Path(artifacts) / Path(crema_dir).name, Path(artifacts) / Path(tess_dir).name
    fs_crema = ensure_features(m_crema, art_c, cfg, jobs=jobs, progress=False)
    fs_tess = ensure_features(m_tess, art_t, cfg, jobs=jobs, progress=False)
    synthetic = is_demo_corpus(crema_dir) or is_demo_corpus(tess_dir)
    notes = CorpusNotes(Path(crema_dir).name, Path(tess_dir).name, synthetic=synthetic, quick=plan.mode.quick)
    protocols = transfer_protocols(m_crema, m_tess, notes, n_folds=plan.n_folds)
    both = combine_features(fs_tess, fs_crema)
    records = []
    for view in plan.feature_sets:
        if view == "vector":
            fs = both
        else:
            table = pd.concat([view_table(m_tess, art_t, view, jobs=jobs), view_table(m_crema, art_c, view, jobs=jobs)])
            fs = with_view(both, table)
        records += run_baselines(fs, protocols, plan.kinds, view=view, out=out)
    if plan.models:
        records += deep_runs(fs_crema, m_crema, plan.deep(), dataset=protocols[0].dataset, out=out)
    return records


def prosody_comparison(data_dir: str | os.PathLike, corpus: str, artifacts: str | os.PathLike, *,
                       jobs: int | None = None, kinds: Sequence[str] = ("logreg", "logreg-spknorm")) -> pd.DataFrame:
    """UAR (%) of each baseline on the 187-value vector, the 13 prosody values and both, per protocol.

    TESS is scored under the ``speaker`` protocol, other corpora leave one
    actor out; every clip's emotions are scored (over the corpus's own classes).
    """
    import dataclasses

    from .corpora import get_corpus
    from .data import build_manifest
    from .evaluation import compute_metrics
    from .features import ensure_features
    from .prosody import ensure_prosody, fill_missing
    from .splits import actor_folds, make_splits

    corpus = get_corpus(corpus)
    m = build_manifest(data_dir, corpus=corpus, progress=False)
    art = Path(artifacts) / Path(data_dir).name
    fs = ensure_features(m, art, jobs=jobs, progress=False)
    pro = fill_missing(ensure_prosody(m, art, jobs=jobs, progress=False).loc[list(fs.ids)].to_numpy())
    protocol = "speaker" if corpus.name == "tess" else "actor-loo"
    splits = make_splits(m, "speaker", 0) if protocol == "speaker" else actor_folds(m, seed=0)
    classes = [EMOTIONS.index(e) for e in corpus.emotions]
    rows = []
    for name, x in (("187 values", fs.vectors), ("prosody (13)", pro), ("187 + prosody", np.hstack([fs.vectors, pro]))):
        view = dataclasses.replace(fs, vectors=x.astype(np.float32))
        for kind in kinds:
            uars = [compute_metrics(f.y_true, f.y_pred, classes=classes)["uar"]
                    for f in (vector_fold(view, s, kind) for s in splits)]
            rows.append({"corpus": corpus.name, "protocol": protocol, "features": name, "model": kind,
                         "uar": 100 * float(np.mean(uars))})
    return pd.DataFrame(rows)


def uar_table(records: Sequence[dict]) -> pd.DataFrame:
    """UAR and accuracy (%) of each record: model, protocol, the corpora, folds; one row per record.

    UAR is the mean over the record's folds (for ``actor-loo``: over the test actors),
    over the emotions the protocol scores (six when two corpora meet).
    Saved from chapter 9, section 9.6 (book/09_transfer.ipynb).
    """
    rows = []
    for r in records:
        ds = r.get("dataset", {})
        rows.append({"model": r["model"], "protocol": r["protocol"], "seed": r["seed"],
                     "synthetic": bool(ds.get("synthetic")), "folds": len(r.get("folds", [])),
                     "UAR": 100 * r["metrics"]["uar"], "accuracy": 100 * r["metrics"]["accuracy"]})
    return pd.DataFrame(rows, columns=["model", "protocol", "seed", "synthetic", "folds", "UAR", "accuracy"])


def recall_by_emotion(record: dict) -> pd.Series:
    """Recall (%) of each emotion a record scores, from its confusion matrix pooled over folds.

    The row labels come from the folds' ``classes`` (six when two corpora meet), else all seven.
    Saved from chapter 9, section 9.7 (book/09_transfer.ipynb).
    """
    labels = record["folds"][0].get("classes", list(EMOTIONS)) if record.get("folds") else list(EMOTIONS)
    cm = np.asarray(record["confusion"], dtype=float)
    recall = np.divide(np.diag(cm), cm.sum(axis=1), out=np.full(len(cm), np.nan), where=cm.sum(axis=1) > 0)
    return pd.Series(100 * recall, index=labels, name=f"{record['model']}, {record['protocol']}")


def with_view(fs: FeatureSet, table: pd.DataFrame) -> FeatureSet:
    """``fs`` with its ``vectors`` replaced by the rows of ``table`` (index ``clip_id``), in ``fs``'s clip order.

    Missing values (a clip with no voiced frame, a clip openSMILE could not read) become 0, a
    constant that borrows no statistic from other clips; the frames and images are kept.
    Saved from chapter 9, section 9.8 (book/09_transfer.ipynb).
    """
    x = table.reindex(list(fs.ids)).to_numpy(dtype=np.float32)
    x[~np.isfinite(x)] = 0.0
    return replace(fs, vectors=x)


def seed_table(records: Sequence[dict]) -> pd.DataFrame:
    """UAR (%) per model and protocol over seeds: mean, sd and the number of seeds.

    The sd is empty for one seed (one run has no spread), never 0.
    Saved from chapter 9, section 9.9 (book/09_transfer.ipynb).
    """
    t = uar_table(records)
    if t.empty:
        return pd.DataFrame(columns=["model", "protocol", "UAR mean", "UAR sd", "seeds"])
    g = t.groupby(["model", "protocol"])["UAR"]
    out = pd.DataFrame({"UAR mean": g.mean(), "UAR sd": g.std(ddof=1), "seeds": g.size()}).reset_index()
    return out.sort_values(["protocol", "UAR mean"], ascending=[True, False], ignore_index=True)
