"""Saving, loading and using a trained Keras model: the ``.keras`` file, its JSON sidecar, inputs for new clips.

A saved model is ``<name>__<protocol>__<fold>__seed<k>.keras`` with a sidecar
of the same stem holding everything needed to prepare a new clip the way the
training clips were: the input view, the feature configuration and the
standardisation recipe (:mod:`ser_utils.standardise`). Inference
(:mod:`ser_utils.predict`, Grad-CAM) needs only this module, never the
training code.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from .features import FeatureConfig
from .splits import Split
from .standardise import apply_recipe, feature_stats, model_shape


def _slug(text: str) -> str:
    return text.replace("->", "-to-").replace("+", "_").replace("/", "_").replace(" ", "_")


def model_path(model_dir: str | os.PathLike, name: str, split: Split, seed: int) -> Path:
    """``<model_dir>/<name>__<protocol>__<fold>__seed<k>.keras`` (fold ``OAF->YAF`` spelled ``OAF-to-YAF``)."""
    return Path(model_dir) / f"{name}__{split.protocol}__{_slug(split.fold)}__seed{seed}.keras"


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of a ``.keras`` file (same folder and stem)."""
    return Path(path).with_suffix(".json")


def save_bundle(model, path: str | os.PathLike, sidecar: dict) -> Path:
    """Save ``model`` as ``.keras`` and ``sidecar`` beside it as JSON, as one unit; returns the model path.

    Both go to temporary files first; the sidecar records the digest of the
    ``.keras`` bytes and is renamed into place last. A run killed at any point
    leaves either the old pair, or a new model beside an old sidecar (whose
    digest no longer matches, so :func:`bundle_problem` reports it and the
    model is retrained), never a half-written model that is reused.
    """
    from .cache import file_digest
    from .outputs import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(sidecar_path(path), what="model sidecar") as side_tmp:
        with atomic_write(path, what="saved model") as tmp:
            model.save(tmp)
            digest = file_digest(tmp)
        side_tmp.write_text(json.dumps({**sidecar, "keras_digest": digest}, indent=1))
    return path


def bundle_problem(path: str | os.PathLike, **expected) -> str | None:
    """Why the saved model at ``path`` cannot be reused (missing, half-written, other data), or None.

    Checks without loading TensorFlow: the ``.keras`` file and its sidecar
    exist, the sidecar is JSON whose ``keras_digest`` matches the model's
    bytes (so a model cut short by a kill, or a pair from two different
    saves, is refused), and every ``expected`` field (e.g. ``feature_key``,
    ``data_key``) equals the sidecar's.
    """
    from .cache import file_digest

    model_file = Path(path).with_suffix(".keras")
    side = sidecar_path(model_file)
    if not model_file.is_file() or not side.is_file():
        return "missing"
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"unreadable sidecar ({exc})"
    if not isinstance(meta, dict):
        return "unreadable sidecar (not a JSON object)"
    if meta.get("keras_digest") != file_digest(model_file):
        return "the model file does not match its sidecar (half-written or from another save)"
    for key, value in expected.items():
        if meta.get(key) != value:
            return f"trained with another {key}"
    return None


def load_model_bundle(path: str | os.PathLike):
    """Load a saved model and its sidecar: ``(keras_model, sidecar_dict)``.

    ``path`` may name the ``.keras`` file or its ``.json`` sidecar. The
    sidecar holds the model name, input view (``"vector"``/``"frames"``),
    feature configuration, standardisation recipe, the :data:`EMOTIONS` order
    and the protocol, fold and seed it was trained on. A model whose bytes do
    not match the sidecar's digest (half-written) raises ``ValueError``.
    """
    from .quiet import import_quietly

    with import_quietly():
        import keras

    path = Path(path)
    model_file = path.with_suffix(".keras")
    if not model_file.exists():
        raise FileNotFoundError(f"no saved model at {model_file}")
    side = sidecar_path(model_file)
    if not side.exists():
        raise FileNotFoundError(f"model {model_file} has no sidecar {side.name}; it was not saved by ser_utils")
    meta = json.loads(side.read_text())
    problem = bundle_problem(model_file) if "keras_digest" in meta else None  # older saves have no digest
    if problem:
        raise ValueError(f"model {model_file}: {problem}; retrain it")
    return keras.models.load_model(model_file), meta


def feature_config_of(sidecar: dict) -> FeatureConfig:
    """The :class:`~ser_utils.features.FeatureConfig` a saved model was trained with."""
    return FeatureConfig(**sidecar["feature_config"])


def prepare_inputs(features: np.ndarray, sidecar: dict, *, reference: np.ndarray | None = None) -> np.ndarray:
    """Standardise and shape new clips the way the saved model's training data was.

    ``features`` is, for a ``"vector"`` model, one ``(187,)`` vector or a batch
    ``(N, 187)``; for a ``"frames"`` model one ``(T, 187)`` sequence or
    ``(N, T, 187)``, computed with :func:`feature_config_of` (``sidecar``).
    Returns a batch ready for ``model.predict``.

    For a model trained with per-speaker normalisation, pass ``reference``:
    other clips of the same speaker (same view), whose mean and sd are used.
    Without it, the average statistics of the training speakers are used and a
    warning says so (a new voice then gets no speaker normalisation at all).
    """
    kind = sidecar["input"]
    x = np.asarray(features, dtype=np.float32)
    n_feat = sidecar["input_shape"][-1] if kind == "frames" else sidecar["input_shape"][0]
    single_ndim = 1 if kind == "vector" else 2
    if x.ndim == single_ndim:
        x = x[None]
    if x.ndim != single_ndim + 1 or x.shape[-1] != n_feat:
        shape = "(N, 187)" if kind == "vector" else "(N, T, 187)"
        raise ValueError(f"a {kind} model expects features of shape {shape}"
                         f" with {n_feat} features, got {np.shape(features)}")
    if kind == "frames" and x.shape[1] != sidecar["input_shape"][0]:
        raise ValueError(f"the model expects {sidecar['input_shape'][0]} frames per clip, got {x.shape[1]}: "
                         "extract the features with feature_config_of(sidecar)")
    std = sidecar["standardizer"]
    if std["kind"] == "train":
        return apply_recipe(x, std, kind=kind)
    if reference is not None:  # the new speaker's own statistics, by the recipe used in training
        mean, scale = feature_stats(np.asarray(reference, np.float32))
    else:
        warnings.warn("this model was trained with per-speaker normalisation but no reference clips of the "
                      "speaker were given; using the training speakers' average statistics", stacklevel=2)
        stats = list(std["speaker_stats"].values())
        mean = np.mean([s["mean"] for s in stats], axis=0).astype(np.float32)
        scale = np.mean([s["scale"] for s in stats], axis=0).astype(np.float32)
    return model_shape((x - mean) / scale, kind)
