"""Train on one or more corpus folders, test on another: ``python -m ser_utils transfer MODEL --train ... --test ...``.

Any model of the registry runs here (the baselines, the Keras models, the
pretrained-encoder probes): the folders' clips of the emotions *all* corpora
share form one workspace, :func:`~ser_utils.splits.cross_corpus_split` makes
the one fold (validation from the training side only), and the model's family
trains it exactly as in :func:`~ser_utils.experiments.run_experiment`. Each
folder's corpus is recognised by its file names (TESS, CREMA-D, RAVDESS) or
forced with ``corpus``. Everything is checked before anything is computed or
written: a folder that matches no corpus, or corpora with no emotion in common,
is one clear error.
"""

from __future__ import annotations

import time
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
    from sklearn.metrics import recall_score

    from .data import summarise_manifest
    from .evaluation import make_record, save_record_in
    from .features import FeatureConfig, quick_config
    from .splits import CORPUS_SHORT, cross_corpus_split
    from .synth import is_demo_corpus, is_demo_speaker
    from .workspace import Workspace

    try:
        spec = ModelSpec.parse(run.model)
        spec.family.check(spec, run.options)
    except ValueError as exc:
        raise UserError(str(exc)) from None
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
    data = DataContext("demo" if synthetic else "cross-corpus", Path(run.test_dir), Path(run.artifacts))
    ws = Workspace(data, manifest, summarise_manifest(manifest, expected_size=len(manifest)),
                   quick_config() if run.mode.quick else FeatureConfig(), run.mode, feature_progress=progress)
    dataset = {"name": "cross-corpus", "synthetic": synthetic, "train": train_about, "test": test_about[0],
               "emotions": list(emotions), "n_clips": int(len(manifest)), "quick": run.mode.quick}
    classes = sorted(EMOTIONS.index(e) for e in emotions)
    records = []
    for seed in run.seeds:
        split = cross_corpus_split(train_m, test_m, train_corpus=train_name, test_corpus=test_corpus.name,
                                   emotions=emotions, seed=seed)
        job = FoldJob(spec, seed=seed, mode=run.mode, options=dict(run.options), progress=progress)
        start = time.perf_counter()
        fold = spec.family.train_fold(ws, split, job)
        fold.classes = classes
        rec = make_record(spec.name, split.protocol, seed, [fold], dataset=dataset,
                          wall_time=time.perf_counter() - start, n_params=fold.extra.get("n_params"),
                          config={"features": ws.feature_config.key(), "epochs": run.mode.epochs, **run.options})
        recall = recall_score(fold.y_true, fold.y_pred, labels=classes, average=None, zero_division=0)
        rec["per_class_recall"] = {EMOTIONS[c]: float(r) for c, r in zip(classes, recall, strict=True)}
        rec["_path"] = str(save_record_in(rec, run.out))
        records.append(rec)
    return records
