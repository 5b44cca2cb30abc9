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
``whisper-probe-crema``     the layer ``select`` picks on all CREMA-D actors (run only where TESS is tested)
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
#: From-scratch models that give the same predictions at every seed (run once, at seed 0).
DETERMINISTIC = ("duration", "logreg", "rf")
#: Protocols whose test clips are all TESS: only there is a layer chosen on CREMA-D's actors strict.
TESS_TESTED = ("speaker", "cross-crema-to-tess", "both-to-tess-speaker")


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
    both = {"name": "tess+crema-d", "n_clips": n_t + n_c, "tess": tess_block, "crema-d": crema_block,
            "emotions": list(shared)}
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
        if crema_choice is not None and p.name in TESS_TESTED:  # chosen on CREMA-D: strict only when TESS is tested
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
    from .evaluation import save_record_in

    return [save_record_in(r, folder) for r in records]


def uar_by_protocol(records: Sequence[dict]) -> pd.DataFrame:
    """UAR (%) per model and protocol: mean, sd over seeds and the number of seeds."""
    rows = [{"model": r["model"], "protocol": r["protocol"], "seed": r["seed"], "uar": 100 * r["metrics"]["uar"]}
            for r in records]
    t = pd.DataFrame(rows)
    if t.empty:
        return t
    g = t.groupby(["model", "protocol"])["uar"]
    return pd.DataFrame({"mean": g.mean(), "sd": g.std(), "seeds": g.size()}).reset_index()


@dataclass(frozen=True)
class ReferenceRun:
    """What ``python -m ser_utils pretrained-reference`` runs: the corpora, the encoder, where files go."""

    tess_dir: Path
    crema_dir: Path
    artifacts: Path
    out: Path
    source: str | None = None  # None: the offline Whisper tiny.en, converted into <artifacts>/pretrained
    seeds: tuple[int, ...] = (0, 1, 2)
    paddings: tuple[str, ...] = ("clip",)  # add "30s" for the padding comparison (CREMA-D only: it is slow)


def _tess_logreg(m_tess: pd.DataFrame, artifacts: Path, splits: Sequence[Split], dataset: dict) -> dict:
    """The logistic regression on the paper's 187 values on the same speaker folds (the yardstick)."""
    from .baselines import vector_fold
    from .features import ensure_features

    start = time.perf_counter()
    fs = ensure_features(m_tess, artifacts / "tess", progress=False)
    folds = [vector_fold(fs, s, "logreg", 0) for s in splits]
    return make_record("logreg", "speaker", 0, folds, dataset=dataset, wall_time=time.perf_counter() - start,
                       config={"features": fs.config.key(), "epochs": None})


def reference_run(run: ReferenceRun, *, progress: bool = True) -> list[Path]:
    """Embed both corpora, run every read-out on every protocol, and write one results file per record.

    Also writes, on the same TESS speaker folds, the logistic regression on the
    187 values (the yardstick of chapters 7 and 9), and with ``"30s"`` in
    ``paddings`` the per-layer probes of CREMA-D and of TESS's speaker protocol
    embedded with Whisper's 30-s padding (``whisper-probe30s-...``; TESS's layer
    chosen on CREMA-D's padded actors).
    """
    from .data import build_manifest, usable
    from .encoders import ensure_embeddings, load_encoder
    from .whisper_offline import CHECKPOINT_NAME, convert

    source = run.source or str(convert(run.artifacts / "pretrained" / CHECKPOINT_NAME).folder)
    enc = load_encoder(source)
    m_tess = build_manifest(run.tess_dir, corpus="tess", progress=False)
    m_crema = build_manifest(run.crema_dir, corpus="crema-d", progress=False)
    for name, m in (("TESS", m_tess), ("CREMA-D", m_crema)):
        if usable(m).empty:
            from .errors import UserError

            raise UserError(f"no usable {name} clip under {run.tess_dir if name == 'TESS' else run.crema_dir}")
    data = {"tess": {"folder": run.tess_dir.name}, "crema-d": {"folder": run.crema_dir.name,
            "actors": sorted(usable(m_crema)["speaker"].astype(str).unique())}}
    emb_t = ensure_embeddings(m_tess, run.artifacts / "tess", enc, progress=progress)
    emb_c = ensure_embeddings(m_crema, run.artifacts / "crema-d", enc, progress=progress)
    both = combine(emb_t, emb_c)
    protocols = tess_crema_protocols(m_tess, m_crema, data=data)
    from .corpora import get_corpus

    chosen, _ = crema_layer(emb_c, get_corpus("crema-d").emotions)
    # The learned head (seconds per fold, x seeds) on the one-corpus and cross-corpus protocols; the
    # both-corpora protocols get the deterministic probes only (their 14 folds x 3 seeds would take longest).
    one, mixed = protocols[:4], protocols[4:]
    records = run_readouts(both, one, crema_choice=chosen, seeds=run.seeds, source=source, progress=progress)
    records += run_readouts(both, mixed, crema_choice=chosen, seeds=(), source=source, progress=progress)
    records.append(_tess_logreg(m_tess, run.artifacts, protocols[0].splits, protocols[0].dataset))
    if "30s" in run.paddings:
        emb_30 = ensure_embeddings(m_crema, run.artifacts / "crema-d", enc, padding="30s", progress=progress)
        loo = [p for p in protocols if p.name == "actor-loo"]
        padded = run_readouts(emb_30, loo, seeds=(), source=source, progress=progress)
        records += [dict(r, model=r["model"].replace("probe-", "probe30s-")) for r in padded
                    if "-layer" in r["model"]]
        # TESS padded alike, its layer chosen on CREMA-D's padded actors (the strict rule of the sliced run).
        tess_30 = ensure_embeddings(m_tess, run.artifacts / "tess", enc, padding="30s", progress=progress)
        chosen_30, _ = crema_layer(emb_30, get_corpus("crema-d").emotions)
        speaker = [p for p in protocols if p.name == "speaker"]
        padded = run_readouts(combine(tess_30, emb_30), speaker, crema_choice=chosen_30, seeds=(), source=source,
                              progress=progress)
        records += [dict(r, model=r["model"].replace("probe-", "probe30s-")) for r in padded]
    return save_records(records, run.out)


def _mean_sd(records: Sequence[dict], model: str, protocol: str) -> tuple[float, float, int] | None:
    vals = [100 * r["metrics"]["uar"] for r in records if r["model"] == model and r["protocol"] == protocol]
    if not vals:
        return None
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan"), len(vals)


def _fmt(v: tuple[float, float, int] | None) -> str:
    if v is None:
        return "not run"
    m, s, n = v
    return f"{m:.1f} %" + (f" ± {s:.1f} ({n} seeds)" if n > 1 else " (one run: deterministic)")


def comparison_lines(reference: Sequence[dict], reference_root: Path) -> list[str]:
    """Markdown bullets: the strict pretrained read-outs beside the 187-value yardstick and the book's models.

    Every number is read from a results file; the data each was made on is
    named, so a from-scratch figure made on other clips is visibly so.
    """
    from .evaluation import load_records

    def data_of(records, model, protocol):
        r = next((r for r in records if r["model"] == model and r["protocol"] == protocol), None)
        return "" if r is None else f" [{r['dataset'].get('name')}, {r['dataset'].get('n_clips')} clips]"

    lines = []
    scratch = load_records(reference_root) if reference_root.is_dir() else []
    # From-scratch seeds made on other clips (TESS's 1400-clip half) are neither quoted here nor pooled.
    tess_clips = {r["dataset"].get("n_clips") for r in reference if r["protocol"] == "speaker"}
    scratch = [r for r in scratch if r.get("dataset", {}).get("n_clips") in tess_clips]
    for protocol, label, yard in (("speaker", "TESS, train one actress, test the other", "logreg"),
                                  ("actor-loo", "CREMA-D, leave one actor out", None),
                                  ("cross-tess-to-crema", "TESS -> CREMA-D, six emotions", "logreg"),
                                  ("cross-crema-to-tess", "CREMA-D -> TESS, six emotions", "logreg")):
        lines.append(f"- **{label}** (UAR, strict):")
        for model, what in ((f"{PREFIX}-probe-crema", "probe, layer chosen on CREMA-D's actors"),
                            (f"{PREFIX}-probe-select", "probe, layer chosen on the training speakers"),
                            (f"{PREFIX}-probe30s-crema", "probe on Whisper's 30-s padded input, layer chosen on "
                                                         "CREMA-D's actors (padded alike)"),
                            (f"{PREFIX}-probe30s-select", "probe on Whisper's 30-s padded input, layer chosen on "
                                                          "the training speakers"),
                            (f"{PREFIX}-weighted", "learned layer weights"),
                            (f"{PREFIX}-finetune", "top two blocks fine-tuned with attentive pooling (10.8)")):
            v = _mean_sd(reference, model, protocol)
            if v is not None:
                lines.append(f"  - Whisper tiny.en, {what}: {_fmt(v)}{data_of(reference, model, protocol)}")
        best = max(((m, _mean_sd(reference, m, protocol)) for m in {r["model"] for r in reference}
                    if "-layer" in m), key=lambda t: t[1][0] if t[1] else -1, default=(None, None))
        if best[1] is not None:
            lines.append(f"  - (upper bound, layer chosen on the test speakers: {best[0]}, {_fmt(best[1])})")
        if yard and _mean_sd(reference, yard, protocol):
            lines.append(f"  - logistic regression on the 187 values, same folds: "
                         f"{_fmt(_mean_sd(reference, yard, protocol))}{data_of(reference, yard, protocol)}")
        if protocol == "actor-loo":
            crema_ref = load_records(reference_root / "crema-d-dev") if (reference_root / "crema-d-dev").is_dir() else []
            for model, what in (("logreg", "the 187 values"), ("logreg-egemaps", "eGeMAPS")):
                v = _mean_sd(crema_ref, model, "actor-loo")
                if v is not None:
                    lines.append(f"  - logistic regression on {what}, same folds (chapter 9): {_fmt(v)}"
                                 f"{data_of(crema_ref, model, 'actor-loo')}")
    # The strict from-scratch model with the highest mean (the -spknorm variants use the test speaker's statistics).
    # A seeded model counts once its three seeds are in (a deterministic baseline is run once).
    strict = {r["model"] for r in scratch if r["protocol"] == "speaker" and "spknorm" not in r["model"]}
    means = {m: v for m in strict if (v := _mean_sd(scratch, m, "speaker"))[2] >= 3 or m in DETERMINISTIC}
    if means:
        model = max(means, key=lambda m: means[m][0])
        lines.append(f"- Highest mean of the strict from-scratch models of chapters 1-7 across the TESS actresses, "
                     f"{model}: {_fmt(means[model])}{data_of(scratch, model, 'speaker')}")
        probe = [r for r in reference if r["model"] == f"{PREFIX}-probe-crema" and r["protocol"] == "speaker"]
        if probe:  # the book's one inference rule (chapter 7.7), on the same test clips
            from .evaluation import seeded_comparison

            ours = [r for r in scratch if r["model"] == model and r["protocol"] == "speaker"]
            lines.append(f"  - by the book's rule: {seeded_comparison(probe, ours).sentence()}")
    return lines
