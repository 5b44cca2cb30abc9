"""Does it transfer? Baselines under leave-actors-out and cross-corpus protocols, as results records.

The folds come from :mod:`ser_utils.splits` (:func:`~ser_utils.splits.actor_folds`,
:func:`~ser_utils.splits.cross_corpus_split`), the classifiers from
:mod:`ser_utils.baselines`; this module joins the feature sets of two corpora,
scores only the emotions a protocol can ask about, and writes one results
record per (model, protocol) that names its corpora and subset.

Run the reference measurements (logistic regression on the 187-value vector,
raw and with per-speaker standardisation) with::

    python -m ser_utils.transfer --crema DIR --tess DIR --artifacts /tmp/corpora-art --out results/reference/crema-d-dev

and add ``--prosody`` to compare the 187 values with the prosody view
(:mod:`ser_utils.prosody`) and both together instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .baselines import vector_fold
from .evaluation import FoldResult, make_record, result_path
from .features import FeatureSet
from .labels import EMOTIONS
from .splits import Split


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


def transfer_record(model: str, splits: Sequence[Split], folds: list[FoldResult], *, dataset: dict,
                    wall_time: float, features_key: str, seed: int = 0) -> dict:
    """The results record of one baseline under one many-speaker or cross-corpus protocol."""
    return make_record(model, splits[0].protocol, seed, folds, dataset=dataset, wall_time=wall_time,
                       config={"features": features_key, "epochs": None})


def save_record_in(record: dict, folder: str | os.PathLike) -> Path:
    """Write a record as ``<folder>/<model>__<protocol>__seed<k>.json`` (:func:`save_record` adds ``results/``)."""
    path = Path(folder) / result_path(".", record["model"], record["protocol"], record["seed"]).name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: v for k, v in record.items() if not k.startswith("_")}, indent=1))
    return path


def reference_runs(crema_dir: str | os.PathLike, tess_dir: str | os.PathLike, artifacts: str | os.PathLike,
                   out: str | os.PathLike | None, *, jobs: int | None = None,
                   kinds: Sequence[str] = ("logreg", "logreg-spknorm")) -> list[dict]:
    """Leave-one-actor-out on CREMA-D and TESS <-> CREMA-D transfer, for each baseline in ``kinds``.

    Features are extracted (or read from the cache) under ``artifacts/<folder name>``.
    Records are written to ``out`` when given, and returned.
    """
    from .corpora import get_corpus, shared_emotions
    from .data import build_manifest, summarise_corpus
    from .features import ensure_features
    from .splits import actor_folds, cross_corpus_split

    crema, tess = get_corpus("crema-d"), get_corpus("tess")
    m_crema = build_manifest(crema_dir, corpus=crema, progress=False)
    m_tess = build_manifest(tess_dir, corpus=tess, progress=False)
    fs_crema = ensure_features(m_crema, Path(artifacts) / Path(crema_dir).name, jobs=jobs, progress=False)
    fs_tess = ensure_features(m_tess, Path(artifacts) / Path(tess_dir).name, jobs=jobs, progress=False)
    shared = shared_emotions(crema, tess)
    n_actors = summarise_corpus(m_crema, crema).counts.shape[0]
    crema_desc = (f"{Path(crema_dir).name}: CREMA-D, all clips of {n_actors} of its {crema.n_speakers} actors "
                  f"({len(fs_crema)} clips); a {n_actors}-actor subset, not comparable with full-corpus figures")
    tess_desc = f"{Path(tess_dir).name}: TESS, {len(fs_tess)} of its 2800 clips"
    records = []
    loo = actor_folds(m_crema, seed=0)
    both = combine_features(fs_tess, fs_crema)
    runs = [
        (loo, fs_crema, crema.emotions, {
            "name": "crema-d", "corpus": "crema-d", "synthetic": False, "n_clips": len(fs_crema), "partial": True,
            "n_actors": n_actors, "subset": crema_desc, "quick": False}),
    ]
    for (ma, a, fa), (mb, b, fb) in (((m_tess, "tess", fs_tess), (m_crema, "crema-d", fs_crema)),
                                     ((m_crema, "crema-d", fs_crema), (m_tess, "tess", fs_tess))):
        split = cross_corpus_split(ma, mb, train_corpus=a, test_corpus=b, emotions=shared, seed=0)
        runs.append(([split], both, shared, {
            "name": "tess+crema-d", "train_corpus": a, "test_corpus": b, "synthetic": False,
            "n_clips": len(split.train) + len(split.val) + len(split.test), "partial": True,
            "emotions": list(shared), "subset": f"{tess_desc}; {crema_desc}", "quick": False}))
    for splits, fs, emotions, dataset in runs:
        for kind in kinds:
            start = time.perf_counter()
            folds = baseline_folds(fs, splits, kind, emotions)
            rec = transfer_record(kind, splits, folds, dataset=dataset, wall_time=time.perf_counter() - start,
                                  features_key=fs.config.key())
            if out is not None:
                rec["_path"] = str(save_record_in(rec, out))
            records.append(rec)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of :func:`reference_runs`; prints UAR per model and protocol."""
    p = argparse.ArgumentParser(prog="python -m ser_utils.transfer", description=reference_runs.__doc__.splitlines()[0])
    p.add_argument("--crema", required=True, help="CREMA-D folder (e.g. a 12-actor subset)")
    p.add_argument("--tess", required=True, help="TESS folder")
    p.add_argument("--artifacts", required=True, help="feature cache folder")
    p.add_argument("--out", help="write the results records into this folder")
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--prosody", action="store_true",
                   help="instead: compare the 187 values, prosody and both (TESS speaker, CREMA-D actor-loo)")
    args = p.parse_args(argv)
    if args.prosody:
        table = pd.concat([prosody_comparison(args.tess, "tess", args.artifacts, jobs=args.jobs),
                           prosody_comparison(args.crema, "crema-d", args.artifacts, jobs=args.jobs)])
        print(table.round(1).to_string(index=False))
        return 0
    records = reference_runs(args.crema, args.tess, args.artifacts, args.out, jobs=args.jobs)
    for r in records:
        print(f"{r['model']:16s} {r['protocol']:22s} UAR {100 * r['metrics']['uar']:5.1f}  "
              f"accuracy {100 * r['metrics']['accuracy']:5.1f}  folds {len(r['folds'])}  {r.get('_path', '')}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
