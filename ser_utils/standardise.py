"""Standardisation: statistics from the training clips only, or per speaker, as a recipe a saved model keeps.

:func:`standardise_fold` standardises every clip of a fold with the mean and
sd of its training clips (:func:`fit_standardiser`), or, for the ``spknorm``
variants, each speaker with its own statistics (:func:`standardise_per_speaker`;
this uses the *test* speaker's unlabelled audio, which must be said beside the
score). It returns a JSON-able recipe that a model's sidecar stores, so
:func:`apply_recipe` (training copies, augmentation) and
:func:`~ser_utils.keras_io.prepare_inputs` (new clips) repeat it exactly.

Literate: :func:`feature_stats` and :func:`standardise_per_speaker` are written
and explained in chapter 5, section 5.6 (``#@save standardise``).
"""

from __future__ import annotations

import numpy as np

from .features import FeatureSet
from .registry import INPUTS


def fit_standardiser(x: np.ndarray, train_idx: np.ndarray):
    """Fit a scikit-learn ``StandardScaler`` on the training rows only (any trailing shape).

    For frame sequences (N, T, F) the mean and sd are per feature over all
    training frames. Test rows are never looked at.
    """
    from sklearn.preprocessing import StandardScaler

    train = x[train_idx]
    return StandardScaler().fit(train.reshape(-1, train.shape[-1]))


def feature_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and sd (plus 1e-6, so a constant feature cannot divide by 0) of ``x``.

    ``x`` is ``(N, 187)`` vectors or ``(N, T, 187)`` frames (every frame counts); returns two
    ``(187,)`` arrays. No labels are used.

    Saved from chapter 5, section 5.6 (book/05_hybrid.ipynb).
    """
    flat = np.asarray(x, dtype=np.float32).reshape(-1, x.shape[-1])
    return flat.mean(axis=0), flat.std(axis=0) + 1e-6


def standardise_per_speaker(x: np.ndarray, speakers: np.ndarray, stats: dict | None = None) -> np.ndarray:
    """Standardise each speaker's clips with that speaker's own mean and sd (no labels used).

    ``stats`` maps a speaker to a ``(mean, sd)`` pair from :func:`feature_stats`; without it they
    are computed from ``x`` itself, **the test speaker's clips included**: legitimate when all of
    a new speaker's (unlabelled) recordings are available at once, and to be said beside the score.

    Saved from chapter 5, section 5.6 (book/05_hybrid.ipynb).
    """
    out = np.empty_like(x, dtype=np.float32)
    for spk in np.unique(speakers):
        rows = speakers == spk
        mean, scale = stats[str(spk)] if stats is not None else feature_stats(x[rows])
        out[rows] = (x[rows] - mean) / scale
    return out


def raw_inputs(fs: FeatureSet, kind: str) -> np.ndarray:
    """The un-standardised view of every clip: ``(N, 187)`` vectors or ``(N, T, 187)`` frames."""
    if kind == "vector":
        return fs.vectors
    if kind == "frames":
        return fs.frames
    raise ValueError(f"input must be one of {INPUTS}, not {kind!r}")

def model_shape(x: np.ndarray, kind: str) -> np.ndarray:
    """Vectors get a channel axis, ``(N, 187) -> (N, 187, 1)``; frames are already ``(N, T, F)``."""
    return (x[..., None] if kind == "vector" else x).astype(np.float32)

def standardise_fold(
    fs: FeatureSet, train_idx: np.ndarray, *, kind: str = "vector", spknorm: bool = False
) -> tuple[np.ndarray, dict]:
    """Standardise every clip of ``fs`` for one fold; return the model-shaped array and its recipe.

    Without ``spknorm`` the per-feature mean and sd come from the rows
    ``train_idx`` only (validation and test clips are never looked at). With
    ``spknorm`` each speaker is standardised with its own statistics, the test
    speaker's included (unlabelled audio; see
    :func:`~ser_utils.standardise.standardise_per_speaker`). The recipe is a JSON-able
    dict stored in the model's sidecar so :func:`prepare_inputs` can repeat it.
    """
    x = raw_inputs(fs, kind)
    if spknorm:
        speakers = fs.meta["speaker"].to_numpy()
        train_speakers = sorted(set(speakers[train_idx]))
        stats = {}
        for spk in train_speakers:
            mean, scale = feature_stats(x[speakers == spk])
            stats[str(spk)] = {"mean": mean.tolist(), "scale": scale.tolist()}
        recipe = {"kind": "spknorm", "speaker_stats": stats,
                  "note": "each speaker standardised with its own unlabelled statistics (test speaker included)"}
        return model_shape(standardise_per_speaker(x, speakers), kind), recipe
    scaler = fit_standardiser(x, train_idx)
    recipe = {"kind": "train", "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()}
    return apply_recipe(x, recipe, kind=kind), recipe

def apply_recipe(x: np.ndarray, recipe: dict, speakers: np.ndarray | None = None, *,
                 kind: str = "vector") -> np.ndarray:
    """Standardise raw rows ``x`` with a recipe from :func:`standardise_fold` and shape them for the model.

    For a ``spknorm`` recipe, ``speakers`` names each row's speaker, which must
    be one of the recipe's (training) speakers.
    """
    if recipe["kind"] == "train":
        z = (x - np.asarray(recipe["mean"], np.float32)) / np.asarray(recipe["scale"], np.float32)
    else:
        stats = {spk: (np.asarray(st["mean"], np.float32), np.asarray(st["scale"], np.float32))
                 for spk, st in recipe["speaker_stats"].items()}
        z = standardise_per_speaker(x, speakers, stats)
    return model_shape(z, kind)
