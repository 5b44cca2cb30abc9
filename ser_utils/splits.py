"""Train/validation/test splits for the three evaluation protocols (see ARCHITECTURE.md).

- ``random``: stratified 80/20 by emotion, as in the paper; validation is a
  stratified slice of the training part.
- ``speaker``: train on one speaker, test on the other, in both directions
  (two folds); validation comes only from the training speaker.
- ``word``: no word appears in both train and test (and validation words are
  disjoint from both), with grouped splits so each word's 14 clips stay together.

A split never lets a test clip choose a model: early stopping, model
selection and normalisation statistics only see ``train`` and ``val``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, train_test_split

from .errors import UserError

PROTOCOLS = ("random", "speaker", "word")
TEST_FRACTION = 0.2
VAL_FRACTION = 0.1  # of the training part


#: What each protocol needs of a data set (7 emotions), for the error raised when a split is impossible.
#: random: a stratified 20% test part and a stratified 10% validation slice each need >= 1 clip per emotion.
NEEDS = {
    "random": "at least 11 usable clips per emotion (77 clips in all)",
    "speaker": "2 speakers, each with at least 9 usable clips per emotion",
    "word": "at least 3 distinct words (5 or more recommended), each spoken in every emotion",
}


class SplitError(UserError, ValueError):
    """The data set is too small (or too lopsided) for the protocol's split; the message says what it needs."""


@dataclass(frozen=True)
class Split:
    """One fold: clip ids for train, validation and test, and a readable name."""

    protocol: str
    fold: str  # "random", "OAF->YAF", "word"
    seed: int
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def as_dict(self) -> dict:
        d = asdict(self)
        for k in ("train", "val", "test"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Split:
        return cls(
            protocol=d["protocol"],
            fold=d["fold"],
            seed=int(d["seed"]),
            train=tuple(d["train"]),
            val=tuple(d["val"]),
            test=tuple(d["test"]),
        )


def make_splits(manifest: pd.DataFrame, protocol: str, seed: int = 0) -> list[Split]:
    """Build the fold(s) of ``protocol`` over the usable clips of ``manifest``, deterministic by seed.

    Returns one :class:`Split` for ``random`` and ``word``, and one per
    direction for ``speaker`` (``"OAF->YAF"`` and ``"YAF->OAF"``).
    """
    from .data import usable

    ok = usable(manifest)
    if ok.empty:
        raise SplitError("the manifest holds no usable clip to split (every file is bad or unlabelled; "
                         "run `python -m ser_utils manifest DIR` to see why)")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
    try:
        return _make_splits(ok, protocol, seed)
    except SplitError:
        raise
    except ValueError as exc:  # sklearn cannot stratify a set this small
        counts = ok["emotion"].value_counts()
        raise SplitError(
            f"cannot make the {protocol!r} split: {len(ok)} usable clips, {counts.min()} to {counts.max()} per "
            f"emotion, {ok['word'].nunique()} words, {ok['speaker'].nunique()} speaker(s). The {protocol} protocol "
            f"needs {NEEDS[protocol]}. Use more data (e.g. `demo-corpus DIR --words 10`). ({exc})"
        ) from exc


def _make_splits(ok: pd.DataFrame, protocol: str, seed: int) -> list[Split]:
    ids = ok["clip_id"].to_numpy()
    y = ok["emotion"].to_numpy()
    if protocol == "random":
        train, test = train_test_split(ids, test_size=TEST_FRACTION, stratify=y, random_state=seed)
        train, val = _stratified_val(ok, train, seed)
        return [Split("random", "random", seed, *map(_sorted, (train, val, test)))]
    if protocol == "speaker":
        speakers = sorted(ok["speaker"].unique())
        if len(speakers) < 2:
            raise SplitError(f"the speaker protocol needs two speakers ({NEEDS['speaker']}); "
                             f"found {len(speakers)} speaker(s) {speakers}")
        folds = []
        for test_speaker in speakers:
            train_speakers = [s for s in speakers if s != test_speaker]
            train_all = ids[ok["speaker"].isin(train_speakers).to_numpy()]
            test = ids[(ok["speaker"] == test_speaker).to_numpy()]
            train, val = _stratified_val(ok, train_all, seed)
            name = f"{'+'.join(train_speakers)}->{test_speaker}"
            folds.append(Split("speaker", name, seed, *map(_sorted, (train, val, test))))
        return folds
    if protocol == "word":
        groups = ok["word"].to_numpy()
        if len(set(groups)) < 3:
            raise SplitError(f"the word protocol needs {NEEDS['word']}; found {len(set(groups))}")
        gss = GroupShuffleSplit(n_splits=1, test_size=TEST_FRACTION, random_state=seed)
        train_idx, test_idx = next(gss.split(ids, y, groups))
        train_ids = ids[train_idx]
        train_rows = ok.set_index("clip_id").loc[train_ids]
        n_words = train_rows["word"].nunique()
        n_splits = max(2, min(round(1 / VAL_FRACTION), n_words))
        sgk = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        fit_idx, val_idx = next(sgk.split(train_ids, train_rows["emotion"], train_rows["word"]))
        return [
            Split(
                "word", "word", seed,
                _sorted(train_ids[fit_idx]), _sorted(train_ids[val_idx]), _sorted(ids[test_idx]),
            )
        ]
    raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")  # pragma: no cover


def _stratified_val(ok: pd.DataFrame, train_ids: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    labels = ok.set_index("clip_id").loc[train_ids, "emotion"].to_numpy()
    return tuple(train_test_split(train_ids, test_size=VAL_FRACTION, stratify=labels, random_state=seed))


def _sorted(ids) -> tuple[str, ...]:
    return tuple(sorted(str(i) for i in ids))


def split_path(artifacts_dir: str | os.PathLike, protocol: str, seed: int) -> Path:
    """Where the folds of one protocol and seed are saved: ``splits/<protocol>__seed<k>.json``."""
    return Path(artifacts_dir) / "splits" / f"{protocol}__seed{seed}.json"


def save_splits(splits: list[Split], path: str | os.PathLike) -> Path:
    """Write folds as JSON (a list of dicts with train/val/test id lists), atomically."""
    from .cache import write_json

    return write_json(path, [s.as_dict() for s in splits], what="split file")


def load_splits(path: str | os.PathLike) -> list[Split]:
    """Read folds written by :func:`save_splits`; raises ``ValueError`` when the file is not a valid split."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list) or not data or not all(isinstance(d, dict) for d in data):
        raise ValueError("not a list of folds")
    try:
        splits = [Split.from_dict(d) for d in data]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"a fold lacks or mangles a field ({exc})") from exc
    for s in splits:
        validate_split(s)
    return splits


def validate_split(split: Split, known: set[str] | None = None) -> None:
    """Raise ``ValueError`` unless train, validation and test are disjoint lists of (known) clip ids.

    A test clip in the training or validation part would score the model on
    what it learnt from (100 % instead of the real figure), so it is refused.
    """
    parts = {"train": split.train, "val": split.val, "test": split.test}
    for name, ids in parts.items():
        if not all(isinstance(i, str) for i in ids):
            raise ValueError(f"fold {split.fold!r}: {name} holds something other than clip ids")
        if len(set(ids)) != len(ids):
            raise ValueError(f"fold {split.fold!r}: a clip appears twice in {name}")
    if not split.train or not split.test:
        raise ValueError(f"fold {split.fold!r}: empty train or test part")
    for a, b in (("train", "test"), ("val", "test"), ("train", "val")):
        both = set(parts[a]) & set(parts[b])
        if both:
            raise ValueError(f"fold {split.fold!r}: {len(both)} clip(s) in both {a} and {b} (e.g. {sorted(both)[0]!r})")
    if known is not None:
        unknown = {i for ids in parts.values() for i in ids} - known
        if unknown:
            raise ValueError(f"fold {split.fold!r}: {len(unknown)} clip(s) not in the data (e.g. {sorted(unknown)[0]!r})")


def ensure_splits(manifest: pd.DataFrame, artifacts_dir: str | os.PathLike, protocol: str, seed: int) -> list[Split]:
    """Load the saved folds for (protocol, seed) if valid and matching the manifest, else make and save them.

    A saved file that is unreadable, malformed, has overlapping parts or other
    clips is replaced with a warning; one made for other data (clips added or
    removed) is replaced silently, as the data changed.
    """
    from .cache import check, read_valid
    from .data import usable

    path = split_path(artifacts_dir, protocol, seed)
    known = set(usable(manifest)["clip_id"])

    def read(p: Path) -> list[Split] | None:
        splits = load_splits(p)
        check(all(s.protocol == protocol and s.seed == seed for s in splits), "made for another protocol or seed")
        used = {i for s in splits for part in (s.train, s.val, s.test) for i in part}
        return splits if used == known else None  # other data: not corrupt, just out of date

    splits = read_valid(path, read, what="split file")
    if splits is not None:
        return splits
    splits = make_splits(manifest, protocol, seed)
    save_splits(splits, path)
    return splits


# --- many speakers and several corpora ----------------------------------------------------

#: Protocols over many actors and across corpora (see :func:`actor_folds`, :func:`cross_corpus_split`).
ACTOR_PROTOCOLS = ("actor-loo", "actor-kfold")
#: Short corpus names used in cross-corpus protocol names (``cross-tess-to-crema``).
CORPUS_SHORT = {"tess": "tess", "crema-d": "crema", "ravdess": "ravdess"}


def actor_folds(manifest: pd.DataFrame, *, n_folds: int | None = None, seed: int = 0) -> list[Split]:
    """Leave-actors-out folds: no actor is ever in more than one of train, validation and test.

    With ``n_folds`` None (or at least the number of actors) every actor is the
    test set once (protocol ``actor-loo``, folds named ``test 1004``...).
    Otherwise the actors are cut into ``n_folds`` groups by scikit-learn's
    ``StratifiedGroupKFold`` (protocol ``actor-kfold``: stratified by emotion as
    far as whole actors allow, shuffled by ``seed``). In each fold about 10 %
    of the *training* actors (at least one) are set apart for validation,
    chosen by ``seed``, so early stopping never sees a test actor's voice.
    Deterministic for a given manifest and seed.
    """
    from sklearn.model_selection import GroupKFold

    from .data import usable

    ok = usable(manifest)
    actors = sorted(ok["speaker"].astype(str).unique())
    if len(actors) < 3:
        raise ValueError(f"leave-actors-out folds need at least 3 actors; found {actors}")
    ids = ok["clip_id"].to_numpy()
    y = ok["emotion"].to_numpy()
    groups = ok["speaker"].astype(str).to_numpy()
    loo = n_folds is None or n_folds >= len(actors)
    if loo:
        protocol = "actor-loo"
        parts = [np.flatnonzero(groups == a) for a in actors]
    else:
        if n_folds < 2:
            raise ValueError(f"n_folds must be at least 2, not {n_folds}")
        protocol = "actor-kfold"
        try:
            splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            parts = [test for _, test in splitter.split(ids, y, groups)]
        except ValueError:  # too few clips per class to stratify: plain grouped folds
            parts = [test for _, test in GroupKFold(n_splits=n_folds).split(ids, y, groups)]
    folds = []
    for k, test_idx in enumerate(parts):
        test_actors = sorted(set(groups[test_idx]))
        train_actors = [a for a in actors if a not in test_actors]
        if len(train_actors) < 2:
            raise ValueError(f"fold {k + 1} leaves {len(train_actors)} training actor(s): use more actors or folds")
        n_val = max(1, round(VAL_FRACTION * len(train_actors)))
        rng = np.random.default_rng([seed, k])
        val_actors = set(rng.choice(train_actors, size=n_val, replace=False).tolist())
        in_test = np.isin(groups, test_actors)
        in_val = np.isin(groups, sorted(val_actors))
        name = f"test {'+'.join(test_actors)}" if loo else f"fold{k + 1}: test {'+'.join(test_actors)}"
        folds.append(Split(protocol, name, seed, _sorted(ids[~in_test & ~in_val]), _sorted(ids[in_val]),
                           _sorted(ids[in_test])))
    return folds


def cross_corpus_protocol(train_corpus: str, test_corpus: str) -> str:
    """The protocol name of training on one corpus and testing on another, e.g. ``cross-tess-to-crema``."""
    short = lambda c: CORPUS_SHORT.get(c, c)  # noqa: E731
    return f"cross-{short(train_corpus)}-to-{short(test_corpus)}"


def cross_corpus_split(
    train_manifest: pd.DataFrame,
    test_manifest: pd.DataFrame,
    *,
    train_corpus: str,
    test_corpus: str,
    emotions: tuple[str, ...] | list[str],
    seed: int = 0,
) -> Split:
    """Train on every usable clip of one corpus, test on every clip of another, over ``emotions`` only.

    ``emotions`` is the label set both corpora share (see
    :func:`ser_utils.corpora.shared_emotions`); clips of other emotions are left
    out of both sides, so the classifier can only answer with a shared label.
    Validation comes from the training corpus only: whole actors (about 10 %,
    at least one) when it has at least three, otherwise (TESS: two actresses)
    a stratified 10 % slice of its clips. Clip ids must not collide between the
    two corpora. Deterministic by ``seed``.
    """
    from .data import usable

    keep = set(emotions)
    train = usable(train_manifest)
    train = train[train["emotion"].isin(keep)].reset_index(drop=True)
    test = usable(test_manifest)
    test = test[test["emotion"].isin(keep)].reset_index(drop=True)
    if train.empty or test.empty:
        raise ValueError(f"no usable clip with an emotion in {sorted(keep)} in the "
                         f"{'training' if train.empty else 'test'} corpus")
    clash = set(train["clip_id"]) & set(test["clip_id"])
    if clash:
        raise ValueError(f"{len(clash)} clip ids occur in both corpora (e.g. {sorted(clash)[0]!r})")
    ids = train["clip_id"].to_numpy()
    actors = sorted(train["speaker"].astype(str).unique())
    if len(actors) >= 3:
        n_val = max(1, round(VAL_FRACTION * len(actors)))
        val_actors = np.random.default_rng(seed).choice(actors, size=n_val, replace=False).tolist()
        in_val = train["speaker"].astype(str).isin(val_actors).to_numpy()
        fit, val = ids[~in_val], ids[in_val]
    else:
        fit, val = _stratified_val(train, ids, seed)
    protocol = cross_corpus_protocol(train_corpus, test_corpus)
    return Split(protocol, f"{train_corpus}->{test_corpus}", seed, _sorted(fit), _sorted(val),
                 _sorted(test["clip_id"]))
