"""Chapter 10's protocols for a frozen pretrained encoder: every read-out on every fold, written as results files.

The protocols are the book's own (:mod:`ser_utils.splits`): TESS's speaker
protocol (train on one actress, test the other, both directions), CREMA-D
leave-one-actor-out, the two cross-corpus directions, and both corpora in
training with each one's held-out part as test. The read-outs
(:mod:`ser_utils.probes`) and how each chooses its layer:

==========================  =====================================================================
model name                  layer
==========================  =====================================================================
``whisper-probe-layerK``    fixed at K (every K is run: the curve; its best K is test-chosen)
``whisper-probe-select``    chosen by grouped CV over the training speakers (>= 2 needed)
``whisper-probe-crema``     the layer ``select`` picks on all CREMA-D actors (TESS: another corpus)
``whisper-weighted``        learned softmax weights over all layers (SUPERB), 3 seeds
==========================  =====================================================================
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .encoders import EmbeddingSet
from .evaluation import FoldResult, make_record
from .labels import EMOTIONS
from .probes import Readout, probe_fold, select_layer, selected_fold, weighted_fold
from .splits import Split

#: The encoder's short name in model names (the one chapter 10 uses).
PREFIX = "whisper"


@dataclass
class Protocol:
    """One protocol: its folds, the emotions it scores and the dataset block of its records."""

    name: str
    splits: list[Split]
    emotions: tuple[str, ...]
    dataset: dict


def combine(*sets: EmbeddingSet) -> EmbeddingSet:
    """One :class:`EmbeddingSet` holding the clips of several (same encoder and padding; distinct clip ids)."""
    ids = np.concatenate([s.ids for s in sets])
    if len(set(ids)) != len(ids):
        raise ValueError("the embedding sets share clip ids; they cannot be combined")
    if len({(s.source, s.padding) for s in sets}) > 1:
        raise ValueError("embedding sets from different encoders or paddings cannot be combined")
    return EmbeddingSet(ids, np.concatenate([s.mean for s in sets]), np.concatenate([s.std for s in sets]),
                        pd.concat([s.meta for s in sets], ignore_index=True),
                        pd.concat([s.failed for s in sets], ignore_index=True), sets[0].source, sets[0].padding)


def tess_crema_protocols(m_tess: pd.DataFrame, m_crema: pd.DataFrame, *, seed: int = 0,
                         data: dict | None = None) -> list[Protocol]:
    """TESS speaker, CREMA-D leave-one-actor-out, both cross-corpus directions, and both corpora in training.

    "Both corpora in training": each TESS speaker fold adds every CREMA-D
    clip to its training side (scored over the six shared emotions), and each
    CREMA-D fold adds every TESS clip; the test side is unchanged, so the
    same test clips are scored with and without the other corpus.
    """
    from .corpora import get_corpus, shared_emotions
    from .data import usable
    from .splits import actor_folds, cross_corpus_split, make_splits

    shared = shared_emotions("tess", "crema-d")
    data = data or {}
    n_t, n_c = len(usable(m_tess)), len(usable(m_crema))
    tess_ids = tuple(sorted(usable(m_tess).query("emotion in @shared")["clip_id"]))
    crema_ids = tuple(sorted(usable(m_crema)["clip_id"]))
    speaker = make_splits(m_tess, "speaker", seed)
    actors = actor_folds(m_crema, seed=seed)
    both_t = [Split("both-to-tess-speaker", s.fold, seed, tuple(sorted(s.train + crema_ids)), s.val, s.test)
              for s in speaker]
    both_c = [Split("both-to-crema-actor", s.fold, seed, tuple(sorted(s.train + tess_ids)), s.val, s.test)
              for s in actors]
    cross = [cross_corpus_split(m_tess, m_crema, train_corpus="tess", test_corpus="crema-d", emotions=shared,
                                seed=seed),
             cross_corpus_split(m_crema, m_tess, train_corpus="crema-d", test_corpus="tess", emotions=shared,
                                seed=seed)]
    tess_block = {"name": "tess", "corpus": "tess", "n_clips": n_t, "n_speakers": 2, **data.get("tess", {})}
    crema_block = {"name": "crema-d", "corpus": "crema-d", "n_clips": n_c,
                   "n_actors": int(usable(m_crema)["speaker"].nunique()), **data.get("crema-d", {})}
    both = {"name": "tess+crema-d", "tess": tess_block, "crema-d": crema_block, "emotions": list(shared)}
    return [
        Protocol("speaker", speaker, tuple(EMOTIONS), tess_block),
        Protocol("actor-loo", actors, get_corpus("crema-d").emotions, crema_block),
        Protocol(cross[0].protocol, [cross[0]], shared, both),
        Protocol(cross[1].protocol, [cross[1]], shared, both),
        Protocol("both-to-tess-speaker", both_t, shared, both),
        Protocol("both-to-crema-actor", both_c, shared, both),
    ]


def crema_layer(emb_crema: EmbeddingSet, m_crema_emotions: Sequence[str]) -> tuple[int, pd.DataFrame]:
    """The layer grouped CV picks on *all* CREMA-D actors: the rule for TESS, whose training side has one speaker.

    Only CREMA-D clips are read, so no TESS clip, let alone a test actress,
    has any say in it.
    """
    whole = Split("crema-all", "all actors", 0, tuple(emb_crema.ids), (), ())
    return select_layer(emb_crema, whole, m_crema_emotions)


def _record(model: str, protocol: Protocol, seed: int, folds: list[FoldResult], wall: float, config: dict) -> dict:
    return make_record(model, protocol.name, seed, folds, dataset=protocol.dataset, wall_time=wall,
                       config=config)


def run_readouts(emb: EmbeddingSet, protocols: Sequence[Protocol], *, crema_choice: int | None = None,
                 seeds: Sequence[int] = (0, 1, 2), source: str = "", progress: bool = True) -> list[dict]:
    """Every read-out of the module table on every protocol; returns the results records.

    ``crema_choice`` is the layer :func:`crema_layer` picked (used by
    ``whisper-probe-crema``); ``select`` runs where the training side has at
    least two speakers. The logistic-regression probes are deterministic
    (seed 0 only); the layer-weighted head runs with every seed.
    """
    from tqdm.auto import tqdm

    from .quiet import bar_hidden

    n_layers = emb.mean.shape[1]
    config = {"encoder": source, "padding": emb.padding, "pooling": "mean"}
    jobs: list[tuple[str, Protocol, int, object]] = []
    for p in protocols:
        for k in range(n_layers):
            jobs.append((f"{PREFIX}-probe-layer{k}", p, 0, lambda s, k=k, p=p: probe_fold(emb, s, Readout(k),
                                                                                          p.emotions)))
        speakers = emb.meta.set_index("clip_id")["speaker"]
        if all(speakers.loc[list(s.train + s.val)].nunique() >= 2 for s in p.splits):
            jobs.append((f"{PREFIX}-probe-select", p, 0, lambda s, p=p: selected_fold(emb, s, p.emotions)))
        if crema_choice is not None:
            jobs.append((f"{PREFIX}-probe-crema", p, 0,
                         lambda s, p=p: _tagged(probe_fold(emb, s, Readout(crema_choice), p.emotions),
                                                chosen_layer=crema_choice)))
        for seed in seeds:
            jobs.append((f"{PREFIX}-weighted", p, seed, lambda s, p=p, seed=seed: weighted_fold(emb, s, p.emotions,
                                                                                              seed=seed)))
    records = []
    for model, p, seed, fit in tqdm(jobs, desc="Read-outs", unit="run", disable=bar_hidden(progress)):
        start = time.perf_counter()
        folds = [fit(s) for s in p.splits]
        cfg = dict(config, pooling="mean+std" if model.endswith("weighted") else "mean")
        records.append(_record(model, p, seed, folds, time.perf_counter() - start, cfg))
    return records


def _tagged(fold: FoldResult, **extra) -> FoldResult:
    fold.extra.update(extra)
    return fold


def save_records(records: Sequence[dict], folder: str | os.PathLike) -> list[Path]:
    """Write each record as ``<folder>/<model>__<protocol>__seed<k>.json``, atomically."""
    import json

    from .evaluation import result_path
    from .outputs import atomic_write

    out = []
    for r in records:
        path = Path(folder) / result_path(".", r["model"], r["protocol"], r["seed"]).name
        with atomic_write(path, what="results file") as tmp:
            tmp.write_text(json.dumps({k: v for k, v in r.items() if not k.startswith("_")}, indent=1))
        out.append(path)
    return out


def uar_by_protocol(records: Sequence[dict]) -> pd.DataFrame:
    """UAR (%) per model and protocol: mean, sd over seeds and the number of seeds."""
    rows = [{"model": r["model"], "protocol": r["protocol"], "seed": r["seed"], "uar": 100 * r["metrics"]["uar"]}
            for r in records]
    t = pd.DataFrame(rows)
    if t.empty:
        return t
    g = t.groupby(["model", "protocol"])["uar"]
    return pd.DataFrame({"mean": g.mean(), "sd": g.std(), "seeds": g.size()}).reset_index()
