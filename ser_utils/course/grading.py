"""Graded assignments: ``python -m ser_utils grade <assignment> <notebook>`` (``grade --list`` lists them).

A student's notebook (a copy of ``assignments/<name>.ipynb`` with its TODO cells filled in) defines
one function. The grader executes the notebook with papermill in quick mode on the demo corpus (or on
real TESS with ``--data-dir``), with one **hidden cell** appended that calls :func:`hidden_tests`:
inside the student's kernel it looks the function up, checks what it reads, and calls it on the
grader's own data, under interventions the notebook never sees:

- **what it reads**: a graded function may use its arguments, modules, functions, classes and
  constants, never a notebook variable holding data (``fs``, ``ch``, a DataFrame...), which could
  carry the test speaker's labels past the protocol;
- **reproducible**: the same input gives the same predictions (the other checks compare runs);
- **no test speaker in training, no test-set selection**: the function is given every clip *with*
  its label, as a notebook would have them, and must keep the test speaker out itself. The grader
  then shuffles *only the test speaker's labels* and calls it again: an honest method cannot
  notice, while one that trained on her clips, stopped early on them or chose a layer, a model or
  an epoch by her score changes its predictions;
- **speaker-independent** (not transductive): dropping half of the test speaker's clips must not
  change the predictions of the others (a method that standardises with her unlabelled statistics,
  as the ``-spknorm`` variants do, fails this, and says so);
- **score**: the metric on the grader's folds against a threshold computed in the same run from
  a baseline (never a typed number).

The report is written as JSON (atomically) and printed; ``grade`` exits 0 when every check passes,
1 when one fails (each failure with its reason), 2 on a usage error.
"""

from __future__ import annotations

import dis
import inspect
import json
import os
import tempfile
import types
from unittest import mock
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..labels import EMOTIONS

#: Where the starter notebooks live (``<project>/assignments``).
ASSIGNMENTS_DIR = "assignments"


class GradingError(UserError, ValueError):
    """The grader cannot run as asked: unknown assignment, missing or unreadable notebook."""


# --- what a graded function is given ------------------------------------------------------------


@dataclass(frozen=True)
class Clips:
    """Every clip a graded function may use, one row each, *with* labels (as a notebook has them).

    ``features`` maps a view name to an array whose first axis is the clip (``"vector"``: the 187
    values, ``"frames"``: time x 187; ``"layer0"``...: encoder embeddings); ``y`` is the emotion index
    in :data:`~ser_utils.labels.EMOTIONS` order. Keeping the test speaker out is the function's job.
    """

    features: Mapping[str, np.ndarray]
    y: np.ndarray
    speaker: np.ndarray
    word: np.ndarray
    clip_id: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, rows) -> "Clips":
        """The clips at ``rows`` (indices or a boolean mask), in that order."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=int)
        return Clips({k: v[rows] for k, v in self.features.items()}, self.y[rows], self.speaker[rows],
                     self.word[rows], self.clip_id[rows])

    def of_speaker(self, speaker: str) -> "Clips":
        """The clips of one speaker."""
        return self.take(self.speaker == speaker)

    def without_speaker(self, speaker: str) -> "Clips":
        """Every clip except one speaker's."""
        return self.take(self.speaker != speaker)

    def with_labels(self, y: np.ndarray) -> "Clips":
        """The same clips with other labels (the grader's shuffled-labels intervention)."""
        return Clips(self.features, np.asarray(y), self.speaker, self.word, self.clip_id)


def speaker_clips(ch, *, frames: bool = True) -> Clips:
    """Clips of a chapter's corpus with the 187-d vectors (and frame sequences) as views."""
    fs = ch.features
    views = {"vector": fs.vectors, **({"frames": fs.frames} if frames else {})}
    meta = fs.meta
    return Clips(views, fs.labels, meta["speaker"].astype(str).to_numpy(), meta["word"].astype(str).to_numpy(),
                 np.asarray(fs.ids).astype(str))


# Fixed offsets and scales per feature group (chroma, mel dB, contrast dB, MFCC), so the stand-in encoder is a
# function of one clip (statistics of a data set would make it depend on which clips are encoded together).
_GROUP_SCALE = {"chroma": (0.3, 0.3), "mel": (-55.0, 20.0), "contrast": (24.0, 9.0), "mfcc": (-15.0, 100.0)}


def stand_in_encoder(frames: np.ndarray, *, n_layers: int = 6, width: int = 128, seed: int = 0) -> np.ndarray:
    """A cheap stand-in for a pretrained speech encoder: (N, T, 187) frames -> (N, layers, 2 * width).

    Each layer is a fixed random projection with tanh and a 3-frame temporal average, pooled over time
    as mean and sd. It is **not** pretrained: it exists so the probe assignment's protocol can be graded
    on the demo corpus in seconds; chapter 10's Whisper embeddings take its place on real data.
    """
    from ..features import FEATURE_GROUPS

    x = np.asarray(frames, dtype=np.float64)
    offset, scale = np.zeros(x.shape[-1]), np.ones(x.shape[-1])
    for group, sl in FEATURE_GROUPS.items():
        offset[sl], scale[sl] = _GROUP_SCALE[group]
    h = (x - offset) / scale
    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(n_layers):
        w = rng.normal(0.0, 1.0 / np.sqrt(h.shape[-1]), (h.shape[-1], width))
        h = np.tanh(1.5 * (h @ w))
        h = (h + np.roll(h, 1, axis=1) + np.roll(h, -1, axis=1)) / 3
        layers.append(np.concatenate([h.mean(axis=1), h.std(axis=1)], axis=-1))
    return np.stack(layers, axis=1).astype(np.float32)


def whisper_tiny_embeddings(ch) -> np.ndarray:
    """Whisper tiny.en's mean-pooled output of every layer, (N, layers + 1, 384), in ``ch.features`` order.

    The offline checkpoint (chapter 10, :mod:`ser_utils.whisper_offline`) is converted once into the
    artifacts folder; the embeddings are cached there by :func:`ser_utils.encoders.ensure_embeddings`.
    """
    from ..encoders import ensure_embeddings, load_encoder
    from ..whisper_offline import CHECKPOINT_NAME, convert

    conversion = convert(ch.data.artifacts_dir / CHECKPOINT_NAME)
    emb = ensure_embeddings(ch.manifest, ch.data.artifacts_dir, load_encoder(conversion.folder), progress=False)
    ids = list(map(str, ch.features.ids))
    missing = sorted(set(ids) - set(map(str, emb.ids)))
    if missing:
        raise GradingError(f"Whisper could not embed {len(missing)} clips (e.g. {missing[0]}): see the embedding "
                           "cache's failed list")
    return emb.mean[emb.index(ids)]


#: Embedding functions the probe assignment can be graded with: name -> (chapter -> (N, layers, dim)).
PROBE_ENCODERS: dict[str, Callable] = {"stand-in": lambda ch: stand_in_encoder(ch.features.frames),
                                       "whisper-tiny": whisper_tiny_embeddings}


def probe_clips(ch, encoder: str = "stand-in") -> Clips:
    """Clips with one view per encoder layer (``"layer0"``, ``"layer1"``...), the input of the probe assignment."""
    if encoder not in PROBE_ENCODERS:
        raise GradingError(f"unknown encoder {encoder!r}; choose from {', '.join(PROBE_ENCODERS)}")
    emb = PROBE_ENCODERS[encoder](ch)
    base = speaker_clips(ch, frames=False)
    return Clips({f"layer{k}": emb[:, k] for k in range(emb.shape[1])}, base.y, base.speaker, base.word,
                 base.clip_id)


# --- the report ---------------------------------------------------------------------------------


@dataclass
class Check:
    """One hidden test: its name, whether it passed, and why (the reason a student reads)."""

    name: str
    passed: bool
    detail: str


@dataclass
class Report:
    """Everything the grader found; ``passed`` only when every check passed."""

    assignment: str
    checks: list[Check] = field(default_factory=list)
    score: float | None = None
    threshold: float | None = None
    metric: str = "UAR %"
    dataset: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def add(self, name: str, passed: bool, detail: str) -> bool:
        self.checks.append(Check(name, bool(passed), detail))
        return bool(passed)

    def to_json(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    @classmethod
    def from_json(cls, data: dict) -> "Report":
        data = {k: v for k, v in data.items() if k != "passed"}
        return cls(**{**data, "checks": [Check(**c) for c in data.get("checks", [])]})

    def text(self) -> str:
        """The report as the student reads it: one line per check, then the verdict."""
        lines = [f"Assignment {self.assignment} ({self.dataset})"]
        lines += [f"  [{'pass' if c.passed else 'FAIL'}] {c.name}: {c.detail}" for c in self.checks]
        if self.score is not None and self.threshold is not None:
            lines.append(f"  score {self.score:.1f} {self.metric}, threshold {self.threshold:.1f}")
        lines.append("PASSED" if self.passed else "FAILED: " + "; ".join(c.name for c in self.checks if not c.passed))
        return "\n".join(lines)


# --- what a function reads ------------------------------------------------------------------------

_CONSTANT_TYPES = (int, float, complex, str, bytes, bool, type(None))


def _is_constant(value) -> bool:
    if isinstance(value, (tuple, frozenset)):
        return all(_is_constant(v) for v in value)
    return isinstance(value, _CONSTANT_TYPES)


def _global_names(code: types.CodeType) -> set[str]:
    """Names ``code`` (and the functions and comprehensions nested in it) loads as globals."""
    names = {ins.argval for ins in dis.get_instructions(code) if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def data_reads(fn: Callable, namespace: Mapping[str, object], _seen: set | None = None) -> list[str]:
    """Notebook variables holding data that ``fn`` (or a notebook function or class it uses) reads.

    Allowed: modules, functions and classes (notebook-defined ones are checked in turn), and
    constants (numbers, strings, tuples of them). Default arguments count as reads.
    """
    seen = set() if _seen is None else _seen
    if id(fn) in seen:
        return []
    seen.add(id(fn))
    found = []
    if inspect.isclass(fn):
        members = [m for m in vars(fn).values() if inspect.isfunction(m)]
        return [r for m in members for r in data_reads(m, namespace, seen)]
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    for default in [*(fn.__defaults__ or ()), *((fn.__kwdefaults__ or {}).values())]:
        if not (_is_constant(default) or inspect.ismodule(default) or callable(default)):
            found.append(f"a default argument of {fn.__name__} ({type(default).__name__})")
    for name in sorted(_global_names(code)):
        if name not in namespace:
            continue  # a builtin, or a name the function defines before use
        value = namespace[name]
        if inspect.ismodule(value) or _is_constant(value):
            continue
        if inspect.isfunction(value) or inspect.isclass(value):
            if getattr(value, "__module__", None) == "__main__":  # defined in the notebook: check it too
                found += data_reads(value, namespace, seen)
            continue
        if callable(value) and not hasattr(value, "__len__"):
            continue  # a library callable (np.mean, a partial...)
        found.append(f"`{name}` ({type(value).__name__})")
    return found


# --- calling the student's function safely ----------------------------------------------------------


class StudentFailure(Exception):
    """The student's function raised or returned something unusable; the message says which."""


def _labels(pred, n: int, fn_name: str) -> np.ndarray:
    """``pred`` as n emotion indices (accepts indices or emotion names)."""
    arr = np.asarray(pred)
    if arr.shape != (n,):
        raise StudentFailure(f"{fn_name} returned shape {arr.shape}; expected ({n},), one emotion per test clip")
    if arr.dtype.kind in "US" or arr.dtype == object:
        bad = sorted({str(v) for v in arr if str(v) not in EMOTIONS})
        if bad:
            raise StudentFailure(f"{fn_name} returned unknown emotions {bad[:3]}; use {', '.join(EMOTIONS)}")
        return np.array([EMOTIONS.index(str(v)) for v in arr])
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and np.all(np.mod(arr, 1) == 0)):
        raise StudentFailure(f"{fn_name} returned {arr.dtype} values; expected emotion indices 0-6 or names")
    arr = arr.astype(int)
    if arr.min(initial=0) < 0 or arr.max(initial=0) >= len(EMOTIONS):
        raise StudentFailure(f"{fn_name} returned indices outside 0-{len(EMOTIONS) - 1}")
    return arr


def _call(fn: Callable, *args):
    try:
        return fn(*args)
    except Exception as exc:  # the student's bug: reported as a failed check, not a grader crash
        raise StudentFailure(f"{fn.__name__} raised {type(exc).__name__}: {exc}") from exc


def uar(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted average recall in percent (scikit-learn's balanced accuracy)."""
    from sklearn.metrics import balanced_accuracy_score

    return 100.0 * float(balanced_accuracy_score(y_true, y_pred))


def _shuffled(y: np.ndarray, rows: np.ndarray, seed: int) -> np.ndarray:
    """``y`` with the labels at ``rows`` permuted among themselves (at least half of them changed)."""
    rng = np.random.default_rng(seed)
    out = y.copy()
    for _ in range(20):
        perm = rng.permutation(rows)
        out[rows] = y[perm]
        if np.mean(out[rows] != y[rows]) >= 0.5:
            break
    return out


def speaker_protocol_checks(fn: Callable, clips: Clips, report: Report, *, seed: int = 0,
                            strict: bool = True) -> list[tuple[str, np.ndarray]] | None:
    """Call ``fn(clips, test_speaker)`` for each speaker under the interventions; return its predictions.

    Adds the reproducibility, test-speaker and (``strict``) speaker-independence checks to ``report``;
    returns ``[(test_speaker, predictions)]``, or None when a check failed or the function broke.
    """
    name = getattr(fn, "__name__", "the function")
    out, broken, leaked, transductive = [], None, [], []
    try:
        for k, spk in enumerate(sorted(set(clips.speaker))):
            test = np.flatnonzero(clips.speaker == spk)
            first = _labels(_call(fn, clips, spk), len(test), name)
            again = _labels(_call(fn, clips, spk), len(test), name)
            if not np.array_equal(first, again):
                n_diff = int(np.sum(first != again))
                report.add("reproducible", False, f"two calls on the same clips gave {n_diff} different "
                           f"predictions for {spk}: fix the seeds (random_state=..., keras.utils.set_random_seed) so "
                           "the protocol checks can compare runs")
                return None
            shuffled = _labels(_call(fn, clips.with_labels(_shuffled(clips.y, test, seed + k)), spk), len(test), name)
            changed = int(np.sum(shuffled != first))
            if changed:
                leaked.append(f"{spk}: shuffling only her {len(test)} labels changed {changed} of her predictions")
            if strict:
                keep = np.ones(len(clips), bool)
                keep[test[1::2]] = False  # every other test clip removed
                part = _labels(_call(fn, clips.take(keep), spk), len(test[::2]), name)
                moved = int(np.sum(part != first[::2]))
                if moved:
                    transductive.append(f"{spk}: removing half of her clips changed {moved} predictions of the rest")
            out.append((spk, first))
    except StudentFailure as exc:
        broken = str(exc)
    if broken:
        report.add("runs", False, broken)
        return None
    report.add("reproducible", True, "the same clips give the same predictions")
    report.add("no test speaker in training or selection", not leaked,
               "a test speaker's clips are in training, or her labels chose the model, layer or epoch "
               "(test-set selection): " + "; ".join(leaked) if leaked else
               "shuffling the test speaker's labels changes no prediction")
    if strict:
        report.add("speaker-independent", not transductive,
                   "the predictions depend on which of the test speaker's clips are present, i.e. the method uses her "
                   "unlabelled clips (transductive, like the -spknorm variants); this assignment asks for a model that "
                   "hears one clip at a time: " + "; ".join(transductive) if transductive else
                   "each test clip's prediction is independent of the other test clips")
    return None if leaked or transductive else out


def _score_speakers(report: Report, clips: Clips, preds, threshold: float, what: str) -> None:
    scores = [uar(clips.y[clips.speaker == spk], p) for spk, p in preds]
    report.score, report.threshold = float(np.mean(scores)), float(threshold)
    detail = ", ".join(f"test {spk} {s:.1f}" for (spk, _), s in zip(preds, scores))
    report.add("score", report.score >= threshold,
               f"mean UAR {report.score:.1f} % over both directions ({detail}); needs {threshold:.1f} % ({what})")


def logreg_speaker_uar(clips: Clips, view: str = "vector", seed: int = 0) -> float:
    """The yardstick: a logistic regression on ``view``, trained on one speaker, mean UAR over both directions."""
    from ..baselines import make_classifier

    scores = []
    for spk in sorted(set(clips.speaker)):
        train, test = clips.speaker != spk, clips.speaker == spk
        clf = make_classifier("logreg", seed).fit(clips.features[view][train], clips.y[train])
        scores.append(uar(clips.y[test], clf.predict(clips.features[view][test])))
    return float(np.mean(scores))


# --- the assignments ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    """One graded assignment: the function a notebook defines, its goal, and its hidden tests."""

    name: str
    title: str
    function: str
    goal: str
    grade: Callable  # (fn, chapter, report, params) -> None, adds checks to the report

    @property
    def starter(self) -> str:
        return f"{ASSIGNMENTS_DIR}/{self.name}.ipynb"


def _grade_speakers(fn, ch, report: Report, params: Mapping) -> None:
    seed = int(params.get("seed", 0))
    clips = speaker_clips(ch)
    preds = speaker_protocol_checks(fn, clips, report, seed=seed)
    if preds is not None:
        margin = 5.0 if ch.data.is_demo else 2.0
        base = logreg_speaker_uar(clips, seed=seed)
        _score_speakers(report, clips, preds, base + margin,
                        f"the logistic regression on the 187 values scored {base:.1f} % on the same folds, "
                        f"+ {margin:g}")


def _grade_probe(fn, ch, report: Report, params: Mapping) -> None:
    seed, encoder = int(params.get("seed", 0)), params.get("encoder") or "stand-in"
    clips = probe_clips(ch, encoder)
    preds = speaker_protocol_checks(fn, clips, report, seed=seed)
    if preds is not None:
        if ch.data.is_demo:  # synthetic voices: only the protocol is graded (the stand-in is not even pretrained)
            _score_speakers(report, clips, preds, 100.0 / len(EMOTIONS) + 5.0, "chance (14.3 %) + 5 on the demo corpus")
        else:
            base = logreg_speaker_uar(speaker_clips(ch, frames=False), seed=seed)
            _score_speakers(report, clips, preds, base,
                            f"the logistic regression on the 187 values scored {base:.1f} % on the same folds")


CREMA_NEEDED = ("corpus-change on real TESS needs real CREMA-D: set SER_CREMA_DIR=/path/to/CREMA-D (its AudioWAV "
                "folder; chapter 9 says where to get it), or grade on the demo corpus without --data-dir")


def corpus_clips(ch, seed: int = 0):
    """The audio of both corpora over their shared emotions: (clips of TESS/demo, clips of CREMA-D/synthetic).

    Each is a list of (audio at the feature rate, emotion index); CREMA-D is ``SER_CREMA_DIR`` or the
    synthetic stand-in (chapter 9's rule).
    """
    from ..corpora import shared_emotions
    from ..data import build_manifest, load_clip
    from ..run_context import resolve_crema

    crema = resolve_crema(None, ch.data.artifacts_dir, quick=ch.mode.quick)
    if crema.synthetic and not ch.data.is_demo:  # real TESS against synthetic voices would be graded as if real
        raise GradingError(CREMA_NEEDED)
    shared = shared_emotions("tess", "crema-d")
    sr = ch.feature_config.sample_rate
    out = []
    for m in (ch.manifest, build_manifest(crema.path, progress=False, corpus="crema-d")):
        m = m[(m["status"] == "ok") & m["emotion"].isin(shared)]
        out.append([(load_clip(p, sr), EMOTIONS.index(e)) for p, e in zip(m["path"], m["emotion"])])
    return out, sr


def cross_corpus_uar(x_a, y_a, x_b, y_b, seed: int = 0) -> tuple[float, float]:
    """UAR (%) of a logistic regression trained on corpus a tested on b, and back."""
    from ..baselines import make_classifier

    ab = uar(y_b, make_classifier("logreg", seed).fit(x_a, y_a).predict(x_b))
    ba = uar(y_a, make_classifier("logreg", seed).fit(x_b, y_b).predict(x_a))
    return ab, ba


def _features_of(fn, clips, sr: int) -> np.ndarray:
    name = getattr(fn, "__name__", "the function")
    rows = [np.asarray(_call(fn, audio, sr), dtype=np.float64) for audio, _ in clips]
    shapes = {r.shape for r in rows}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise StudentFailure(f"{name} must return one 1-d vector of the same length for every clip; got shapes "
                             f"{sorted(shapes)[:3]}")
    x = np.stack(rows)
    if not np.isfinite(x).all():
        raise StudentFailure(f"{name} returned NaN or inf for {int((~np.isfinite(x)).any(axis=1).sum())} clips: "
                             "fill missing values (e.g. an unvoiced clip's pitch) with a number")
    return x


def _grade_corpus(fn, ch, report: Report, params: Mapping) -> None:
    seed = int(params.get("seed", 0))
    from ..features import extract_from_audio

    (tess, crema), sr = corpus_clips(ch, seed)
    y_t, y_c = np.array([e for _, e in tess]), np.array([e for _, e in crema])
    try:
        x_t, x_c = _features_of(fn, tess, sr), _features_of(fn, crema, sr)
        audio = tess[0][0]
        same = np.array_equal(np.asarray(_call(fn, audio.copy(), sr)), np.asarray(_call(fn, audio.copy(), sr)))
    except StudentFailure as exc:
        report.add("runs", False, str(exc))
        return
    report.add("reproducible", same, "the same clip gives the same features" if same else
               "two calls on the same clip gave different features: a feature must be a function of the clip")
    if not same:
        return
    cfg = ch.feature_config
    base = np.mean(cross_corpus_uar(np.stack([extract_from_audio(a, cfg).vector for a, _ in tess]), y_t,
                                    np.stack([extract_from_audio(a, cfg).vector for a, _ in crema]), y_c, seed))
    ab, ba = cross_corpus_uar(x_t, y_t, x_c, y_c, seed)
    report.score, report.threshold = (ab + ba) / 2, float(base + 5.0)
    report.add("score", report.score >= report.threshold,
               f"mean cross-corpus UAR {report.score:.1f} % (TESS -> CREMA-D {ab:.1f}, CREMA-D -> TESS {ba:.1f}, "
               f"{x_t.shape[1]} values per clip); needs {report.threshold:.1f} % (the 187 values scored {base:.1f} %, "
               "+ 5; chance is 16.7 %)")


def _grade_faithful(fn, ch, report: Report, params: Mapping) -> None:
    seed = int(params.get("seed", 0))
    from .. import deletion, gradcam_reference

    em = gradcam_reference.ensure_model(ch, "hybrid", "random", seed)
    pick = deletion.stratified_sample(em.y_test, min(60, len(em.y_test)), seed)
    x, y = em.x_test[pick], em.y_test[pick]
    name = getattr(fn, "__name__", "the function")
    try:
        maps = np.asarray(_call(fn, em.model, x.copy(), y.copy()), dtype=np.float64)
        if maps.shape != x.shape[:2]:
            raise StudentFailure(f"{name} returned maps of shape {maps.shape}; expected {x.shape[:2]}, one importance "
                                 "per input position of each clip")
        if not np.isfinite(maps).all():
            raise StudentFailure(f"{name} returned NaN or inf importances")
        again = np.asarray(_call(fn, em.model, x.copy(), y.copy()), dtype=np.float64)
    except StudentFailure as exc:
        report.add("runs", False, str(exc))
        return
    same = np.allclose(maps, again, rtol=1e-5, atol=1e-8)
    report.add("reproducible", same, "the same clips give the same maps" if same else
               "two calls gave different maps: fix the seeds, or the deletion order is not the map's")
    if not same:
        return
    steps = 10 if ch.mode.quick else 20
    result = deletion.deletion_test(em.model, x, y, maps, steps=steps, seed=seed)
    low, high = result.area_between_ci()
    ok = result.verdict == "better than random"
    report.score, report.metric = 100 * result.area_between, "x 100 area between the curves"
    report.add("faithful", ok, f"deleting inputs in your map's order vs 5 random orders on {len(x)} test clips of the "
               f"hybrid: area between the curves {result.area_between:+.4f} (95 % interval {low:+.4f} to {high:+.4f}, "
               f"relative gain {result.relative_gain:.2f}): {result.verdict}; needs 'better than random' "
               "(interval above 0 and the relative gain of chapter 8)")


ASSIGNMENTS: dict[str, Assignment] = {a.name: a for a in [
    Assignment("speakers", "Beat the logistic regression across speakers", "fit_predict",
               "mean UAR over both speaker directions at least the logistic regression's on the same folds + 5 points "
               "(demo corpus) or + 2 points (real TESS), with no test speaker in training, no test-set selection "
               "and no use of the test speaker's unlabelled clips", _grade_speakers),
    Assignment("corpus-change", "A feature that survives the corpus change", "clip_features",
               "cross-corpus UAR (TESS <-> CREMA-D, six shared emotions, logistic regression) at least the 187 values' "
               "+ 5 points, from a function of one clip (real TESS needs SER_CREMA_DIR)", _grade_corpus),
    Assignment("faithful", "A faithful explanation", "explain",
               "maps of the chapter-8 hybrid whose deletion test is 'better than random' (95 % interval of the area "
               "between the curves above 0 and a relative gain of at least 0.05, chapter 8's rule)",
               _grade_faithful),
    Assignment("probe", "A probe on a pretrained encoder", "probe",
               "a probe on per-layer embeddings, any choice of layer made without the test speaker: UAR above chance + 5 "
               "(demo corpus, stand-in encoder) or at least the logistic regression on the 187 values on the same folds "
               "(real data, Whisper tiny.en by default)", _grade_probe),
]}


def get_assignment(name: str) -> Assignment:
    """The assignment called ``name``; a :class:`GradingError` listing the others when there is none."""
    if name not in ASSIGNMENTS:
        raise GradingError(f"unknown assignment {name!r}; choose from {', '.join(ASSIGNMENTS)} "
                           "(python -m ser_utils grade --list)")
    return ASSIGNMENTS[name]


def list_text() -> str:
    """``grade --list``: one block per assignment."""
    return "\n".join(f"{a.name:14s} {a.title}\n{'':14s} starter: {a.starter}; defines {a.function}(...)\n"
                     f"{'':14s} passes with: {a.goal}" for a in ASSIGNMENTS.values())


# --- the hidden cell and the grader -------------------------------------------------------------------


def hidden_tests(name: str, namespace: Mapping[str, object], report_path: str, params: Mapping) -> Report:
    """Run ``name``'s hidden tests inside the student's kernel; write the report JSON to ``report_path``."""
    from .chapter import start_chapter
    from ..outputs import atomic_write

    assignment = get_assignment(name)
    report = Report(name)
    fn = namespace.get(assignment.function)
    try:
        if not callable(fn):
            report.add("defines the function", False, f"the notebook defines no function `{assignment.function}` "
                       "(fill in the TODO cell)")
            return report
        reads = data_reads(fn, namespace)
        if not report.add("reads only its arguments", not reads,
                          f"{assignment.function} reads notebook data: {', '.join(reads)}; a graded function may use "
                          "only its arguments (the grader's clips), so that the protocol checks see everything it uses"
                          if reads else "no notebook variable holding data is read"):
            return report
        ch = start_chapter(params.get("dataset", "demo"), params.get("data_dir"), params.get("artifacts_dir"),
                           seed=int(params.get("seed", 0)), quick=params.get("quick", True), show_banner=False)
        report.dataset = f"{ch.data.dataset}{' quick' if ch.mode.quick else ''}, {len(ch.manifest)} clips"
        assignment.grade(fn, ch, report, params)
        return report
    except Exception as exc:  # the grader itself failed (a missing encoder, bad data): never a pass
        report.add("grader ran", False, f"the grader raised {type(exc).__name__}: {str(exc)[:300]} (a problem of the "
                   "grading setup, not of the notebook: fix it and grade again)")
        raise
    finally:
        with atomic_write(Path(report_path), what="grading report") as tmp:
            tmp.write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")


def _hidden_cell(name: str, report_path: Path, params: dict) -> str:
    return ("# Hidden tests, appended by `python -m ser_utils grade` (not part of the starter).\n"
            "from ser_utils.course.grading import hidden_tests\n"
            f"_report = hidden_tests({name!r}, globals(), {str(report_path)!r}, {params!r})\n"
            "print(_report.text())")


def _kernel_failure(timed_out: bool, timeout: int) -> str:
    """Why a notebook's kernel stopped, for the report: a cell over the time limit, or a dead kernel."""
    if timed_out:
        return (f"a cell ran longer than {timeout} s and was stopped; make the notebook faster (quick mode on "
                "the demo corpus takes about a minute)")
    return ("the notebook's kernel died (a crash such as a segfault, or out of memory) before the hidden tests "
            "finished; run the notebook in Jupyter to see where. A segfault in librosa's pitch tracking (yin, pyin) "
            "usually means numba's cache was written by two processes at once (numba issue 10128): "
            "`python -m ser_utils.warmup` rebuilds it; then grade again")


def default_encoder(data_dir: str | os.PathLike | None) -> str:
    """The probe assignment's encoder when none is named: the pretrained Whisper tiny.en on real data (its threshold,
    the logistic regression's score, assumes pretrained layers), the seconds-fast stand-in on the demo corpus."""
    return "whisper-tiny" if data_dir else "stand-in"


def grade_notebook(name: str, notebook: str | os.PathLike, *, data_dir: str | None = None,
                   artifacts_dir: str | None = None, encoder: str | None = None, timeout: int = 900) -> Report:
    """Execute ``notebook`` with the hidden tests of assignment ``name``; return the report.

    Quick mode on the demo corpus by default; with ``data_dir`` on that real TESS folder (full sizes).
    ``encoder`` (a :data:`PROBE_ENCODERS` name) is the probe assignment's embedding function
    (default: :func:`default_encoder`).
    A notebook whose own cells fail gets a report with that failure (cell number and error).
    """
    import nbformat
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    from .runner import _kernel_config, _source_cell_number, kernel_environment, quiet_environment

    get_assignment(name)
    encoder = encoder or default_encoder(data_dir)
    if encoder not in PROBE_ENCODERS:
        raise GradingError(f"unknown encoder {encoder!r}; choose from {', '.join(PROBE_ENCODERS)}")
    path = Path(notebook)
    if not path.is_file():
        raise GradingError(f"no notebook at {path}; pass the student's .ipynb (a copy of assignments/{name}.ipynb)")
    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:  # not JSON, not a notebook
        raise GradingError(f"{path} is not a Jupyter notebook ({type(exc).__name__}: {str(exc)[:120]}); "
                           "pass the .ipynb file") from None
    quiet_environment()
    with tempfile.TemporaryDirectory(prefix="ser-grade-") as tmp:
        tmp = Path(tmp)
        art = Path(artifacts_dir) if artifacts_dir else tmp / "artifacts"
        params = {"dataset": "tess" if data_dir else "demo", "data_dir": str(data_dir) if data_dir else None,
                  "artifacts_dir": str(art), "quick": not data_dir, "seed": 0, "encoder": encoder}
        report_path = tmp / "report.json"
        cell = nbformat.v4.new_code_cell(_hidden_cell(name, report_path, params))
        cell.metadata["tags"] = ["ser-grader-hidden"]
        nb.cells.append(cell)
        graded, executed = tmp / "graded.ipynb", tmp / "executed.ipynb"
        nbformat.write(nb, str(graded))
        declared = papermill.inspect_notebook(str(graded))
        try:
            with tempfile.TemporaryDirectory(prefix="ser-grade-kernel-") as sockets, \
                    mock.patch.dict(os.environ, kernel_environment(), clear=True):
                papermill.execute_notebook(str(graded), str(executed), parameters={k: v for k, v in params.items()
                                                                                   if k in declared},
                                           kernel_name=nb.metadata.get("kernelspec", {}).get("name") or "python3",
                                           cwd=str(path.resolve().parent), progress_bar=False, log_output=False,
                                           execution_timeout=timeout, config=_kernel_config(sockets))
        except PapermillExecutionError as exc:
            report = Report(name, dataset=params["dataset"])
            if report_path.exists():  # the hidden cell itself ran and wrote its report
                return Report.from_json(json.loads(report_path.read_text(encoding="utf-8")))
            where = exc.cell_index
            try:
                where = _source_cell_number(nbformat.read(str(executed), as_version=4), exc.cell_index)
            except Exception:  # noqa: BLE001 - the number is a courtesy
                pass
            report.add("notebook runs", False, f"cell {where} raised {exc.ename}: {exc.evalue}".rstrip(": "))
            return report
        except (DeadKernelError, CellTimeoutError) as exc:  # no traceback: the reason, and what to do
            return Report(name, [Check("notebook runs", False,
                                       _kernel_failure(isinstance(exc, CellTimeoutError), timeout))],
                          dataset=params["dataset"])
        if not report_path.exists():
            return Report(name, [Check("notebook runs", False, "the hidden tests wrote no report")])
        return Report.from_json(json.loads(report_path.read_text(encoding="utf-8")))


def grade_command(args) -> int:
    """``python -m ser_utils grade``: 0 when every check passes, 1 when one fails (a usage error raises)."""
    from ..outputs import atomic_write, check_output_path

    if args.list:
        print(list_text())
        return 0
    if not args.assignment or not args.notebook:
        raise GradingError("grade needs an assignment and a notebook: python -m ser_utils grade speakers my.ipynb "
                           "(python -m ser_utils grade --list lists the assignments)")
    get_assignment(args.assignment)
    if args.data_dir and args.assignment == "corpus-change":  # before executing the notebook: a usage error
        from ..run_context import crema_candidates

        if not crema_candidates():
            raise GradingError(CREMA_NEEDED)
    if args.data_dir:  # checked here, so a wrong folder is a usage error, not a failed notebook
        from ..data import TESS_HELP, find_audio_files
        from ..errors import TessNotFoundError

        if not (Path(args.data_dir).is_dir() and find_audio_files(args.data_dir)):
            raise TessNotFoundError(f"--data-dir {args.data_dir}: no TESS audio there. {TESS_HELP}")
    out = check_output_path(args.report, kind="file", what="--report") if args.report else None
    report = grade_notebook(args.assignment, args.notebook, data_dir=args.data_dir, artifacts_dir=args.artifacts,
                            encoder=args.encoder)
    print(report.text())
    if out is not None:
        with atomic_write(out, what="grading report") as tmp:
            tmp.write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
    return 0 if report.passed else 1
