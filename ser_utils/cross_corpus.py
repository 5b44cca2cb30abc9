"""Runs on any corpus folder: across corpora (``transfer MODEL --train DIR... --test DIR``) and leave-actors-out
within one (``train MODEL --data-dir DIR --protocol actors``).

Any model of the registry runs here (the baselines, the Keras models, the
pretrained-encoder probes): the folders' clips of the emotions *all* corpora
share form one workspace, :func:`~ser_utils.splits.cross_corpus_split` makes
the one fold (validation from the training side only), and the model's family
trains it exactly as in :func:`~ser_utils.experiments.run_experiment`. Each
folder's corpus is recognised by its file names (TESS, CREMA-D, RAVDESS) or
forced with ``corpus``. Everything is checked before anything is computed or
written: a folder that matches no corpus, or corpora with no emotion in common,
is one clear error.

:func:`actor_fold_records` is the within-corpus counterpart for many-speaker
corpora (CREMA-D, RAVDESS): :func:`~ser_utils.splits.actor_folds` gives
leave-one-actor-out (or grouped K-fold) folds, validation actors drawn from the
training side, and the same families train every fold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .corpora import CORPUS_NAMES, EMOTIONS, Corpus, get_corpus, shared_emotions
from .errors import UserError
from .registry import FoldJob, ModelSpec
from .run_context import DataContext, RunMode


@dataclass(frozen=True)
class CrossCorpusRun:
    """One ``transfer MODEL`` run: the model, the folders, the seeds, where caches and results go."""

    model: str
    train_dirs: tuple[Path, ...]
    test_dir: Path
    out: Path  # results files: <out>/<model>__<protocol>__seed<k>.json
    artifacts: Path  # feature and embedding caches (content-keyed, shared between runs)
    seeds: tuple[int, ...] = (0,)
    corpus: str | None = None  # force this corpus for every folder (default: recognised by file names)
    options: Mapping = field(default_factory=dict)
    mode: RunMode = RunMode()


@dataclass(frozen=True)
class ActorFoldsRun:
    """One ``train MODEL --protocol actors`` run: leave-actors-out folds over one many-speaker corpus folder."""

    model: str
    data_dir: Path
    artifacts: Path  # caches, and the results files under <artifacts>/results/
    seeds: tuple[int, ...] = (0,)
    n_folds: int | None = None  # None: leave one actor out; K: grouped K-fold over actors
    corpus: str | None = None
    options: Mapping = field(default_factory=dict)
    mode: RunMode = RunMode()


def corpus_of(folder: Path, forced: str | None = None) -> Corpus:
    """The corpus whose naming scheme most of ``folder``'s audio files follow; :class:`UserError` when none does."""
    from .data import find_audio_files

    if forced:
        return get_corpus(forced)
    if not Path(folder).is_dir():
        raise UserError(f"{folder} is not a folder: give the folder holding a corpus's audio files")
    names = [p.name for p in find_audio_files(folder)]
    votes = {c: sum(get_corpus(c).recognises(n) for n in names) for c in CORPUS_NAMES}
    best = max(votes, key=votes.get)
    if not votes[best]:
        raise UserError(f"no audio file in {folder} is named like TESS (OAF_back_angry.wav), CREMA-D "
                        f"(1001_DFA_ANG_XX.wav) or RAVDESS (03-01-05-01-01-01-01.wav): pass --corpus "
                        f"({', '.join(CORPUS_NAMES)}) if it is one of them")
    return get_corpus(best)


def _side(folders: tuple[Path, ...], corpora: list[Corpus], emotions: tuple[str, ...]) -> tuple[pd.DataFrame, list[dict]]:
    """The usable clips of ``emotions`` in ``folders``, and one description per folder for the record."""
    from .data import build_manifest, usable

    frames, about = [], []
    for folder, corpus in zip(folders, corpora, strict=True):
        m = usable(build_manifest(folder, corpus=corpus, progress=False))
        m = m[m["emotion"].isin(emotions)].assign(corpus=corpus.name)
        if m.empty:
            raise UserError(f"{folder} has no usable {corpus.title} clip of the shared emotions ({', '.join(emotions)})")
        frames.append(m)
        about.append({"corpus": corpus.name, "folder": Path(folder).name, "n_clips": int(len(m)),
                      "n_speakers": int(m["speaker"].nunique())})
    return pd.concat(frames, ignore_index=True), about


def cross_corpus_records(run: CrossCorpusRun, *, progress: bool = True) -> list[dict]:
    """Train ``run.model`` on the training folders and score the test folder, once per seed; one record each.

    The record's ``dataset`` names the training and test corpora (clip and
    speaker counts per folder) and the emotions scored; its metrics are over
    those emotions, with the per-class recall in ``per_class_recall``.
    """
    from .evaluation import save_record_in
    from .splits import CORPUS_SHORT, cross_corpus_split
    from .synth import is_demo_corpus, is_demo_speaker

    spec = _checked_spec(run.model, run.options)
    train_corpora = [corpus_of(d, run.corpus) for d in run.train_dirs]
    test_corpus = corpus_of(run.test_dir, run.corpus)
    emotions = shared_emotions(*train_corpora, test_corpus)
    if not emotions:
        raise UserError(f"the training corpora ({', '.join(c.name for c in train_corpora)}) and the test corpus "
                        f"({test_corpus.name}) have no emotion in common: nothing to score")
    train_m, train_about = _side(run.train_dirs, train_corpora, emotions)
    test_m, test_about = _side((run.test_dir,), [test_corpus], emotions)
    manifest = pd.concat([train_m, test_m], ignore_index=True)
    # "tess+crema": the protocol is cross-tess+crema-to-ravdess
    train_name = "+".join(dict.fromkeys(CORPUS_SHORT.get(c.name, c.name) for c in train_corpora))
    twice = manifest["clip_id"][manifest["clip_id"].duplicated()]
    if len(twice):
        raise UserError(f"clip {twice.iloc[0]!r} occurs in more than one folder ({len(twice)} such): give each "
                        "corpus once, and a test folder that is not also a training folder")
    # Demo clips anywhere make the whole run synthetic (never presented as real), even inside a real folder.
    synthetic = any(is_demo_corpus(d) for d in (*run.train_dirs, run.test_dir)) or \
        bool(manifest["speaker"].map(is_demo_speaker).any())
    ws = _workspace(manifest, "demo" if synthetic else "cross-corpus", run.test_dir, run.artifacts, run.mode, progress)
    dataset = {"name": "cross-corpus", "synthetic": synthetic, "train": train_about, "test": test_about[0],
               "emotions": list(emotions), "n_clips": int(len(manifest)), "quick": run.mode.quick}
    classes = sorted(EMOTIONS.index(e) for e in emotions)
    records = []
    for seed in run.seeds:
        split = cross_corpus_split(train_m, test_m, train_corpus=train_name, test_corpus=test_corpus.name,
                                   emotions=emotions, seed=seed)
        job = FoldJob(spec, seed=seed, mode=run.mode, options=dict(run.options), progress=progress)
        rec = _scored_record(ws, [split], job, classes, dataset)
        rec["_path"] = str(save_record_in(rec, run.out))
        records.append(rec)
    return records


def actor_fold_records(run: ActorFoldsRun, *, progress: bool = True) -> list[dict]:
    """Train ``run.model`` on leave-actors-out folds of one corpus folder, once per seed; one record each.

    The record is saved as ``<artifacts>/results/<model>__actor-loo__seed<k>.json``
    (``actor-kfold`` with ``n_folds``); its ``dataset`` names the corpus, clip and
    actor counts and the actors. Its metrics are the mean over folds (each fold's
    test actors scored alone, as everywhere in the book); ``per_class_recall``
    pools every fold's test clips.
    """
    from .evaluation import save_record_in
    from .splits import actor_folds
    from .synth import is_demo_corpus, is_demo_speaker

    spec = _checked_spec(run.model, run.options)
    corpus = corpus_of(run.data_dir, run.corpus)
    manifest, about = _side((run.data_dir,), [corpus], corpus.emotions)
    actors = sorted(manifest["speaker"].astype(str).unique())
    if len(actors) < 3:
        raise UserError(f"the actors protocol needs at least 3 speakers; {run.data_dir} has {len(actors)} "
                        f"({', '.join(actors)}): for TESS's two actresses use --protocol speaker")
    synthetic = is_demo_corpus(run.data_dir) or bool(manifest["speaker"].map(is_demo_speaker).any())
    ws = _workspace(manifest, "demo" if synthetic else corpus.name, run.data_dir, run.artifacts, run.mode, progress)
    dataset = {"name": f"demo-{corpus.name}" if synthetic else corpus.name, "synthetic": synthetic, **about[0], "actors": actors,
               "emotions": list(corpus.emotions), "quick": run.mode.quick}
    classes = sorted(EMOTIONS.index(e) for e in corpus.emotions)
    records = []
    for seed in run.seeds:
        try:
            splits = actor_folds(manifest, n_folds=run.n_folds, seed=seed)
        except ValueError as exc:
            raise UserError(f"cannot make leave-actors-out folds of {run.data_dir}: {exc}") from None
        job = FoldJob(spec, seed=seed, mode=run.mode, options=dict(run.options), progress=progress)
        rec = _scored_record(ws, splits, job, classes, dataset)
        rec["_path"] = str(save_record_in(rec, ws.results_dir))
        records.append(rec)
    return records


def _checked_spec(model: str, options: Mapping) -> ModelSpec:
    """The parsed model name, its options checked by its family (a bad one is a :class:`UserError`)."""
    try:
        spec = ModelSpec.parse(model)
        spec.family.check(spec, options)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return spec


def _workspace(manifest: pd.DataFrame, name: str, data_dir: Path, artifacts: Path, mode: RunMode, progress: bool):
    """A workspace over an already-built manifest (clips of one or more corpus folders)."""
    from .data import summarise_manifest
    from .features import FeatureConfig, quick_config
    from .workspace import Workspace

    data = DataContext(name, Path(data_dir), Path(artifacts))
    return Workspace(data, manifest, summarise_manifest(manifest, expected_size=len(manifest)),
                     quick_config() if mode.quick else FeatureConfig(), mode, feature_progress=progress)


def _scored_record(ws, splits: list, job: FoldJob, classes: list[int], dataset: dict) -> dict:
    """Train ``job`` on every split; the results record with metrics over ``classes`` and their recalls."""
    from sklearn.metrics import recall_score

    from .evaluation import make_record, run_folds

    def fit_predict(split):
        fold = job.spec.family.train_fold(ws, split, job)
        fold.classes = classes
        return fold

    folds, wall = run_folds(splits, fit_predict, progress=job.progress)
    rec = make_record(job.spec.name, splits[0].protocol, job.seed, folds, dataset=dataset, wall_time=wall,
                      n_params=next((f.extra.get("n_params") for f in folds if f.extra.get("n_params")), None),
                      config={"features": ws.feature_config.key(), "epochs": job.mode.epochs, **job.options})
    y_true = [y for f in folds for y in f.y_true]
    y_pred = [y for f in folds for y in f.y_pred]
    recall = recall_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
    rec["per_class_recall"] = {EMOTIONS[c]: float(r) for c, r in zip(classes, recall, strict=True)}
    return rec
