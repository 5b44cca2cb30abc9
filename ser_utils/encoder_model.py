"""A saved pretrained-encoder probe: the encoder's source, the layer, the fitted classifier; and predicting with it.

``python -m ser_utils predict CLIP --model FOLDER`` reads such a folder
(``probe.json`` + ``probe.joblib``, written atomically by :func:`save_probe`):
the clip is resampled to 16 kHz, run through the encoder named in
``probe.json`` (a hub id or a checkpoint folder, loaded with
``from_pretrained``), pooled at the saved layer, and the classifier's
probabilities are returned, highest first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .encoders import SAMPLE_RATE, EmbeddingSet
from .errors import UserError

PROBE_FORMAT = 1


class ProbeModelError(UserError):
    """A saved probe folder is missing, damaged or was written by another version."""


@dataclass
class ProbeModel:
    """A logistic-regression probe on one layer of a frozen encoder."""

    source: str
    layer: int
    emotions: tuple[str, ...]
    classifier: object = field(repr=False)
    trained_on: dict = field(default_factory=dict)


def fit_probe(emb: EmbeddingSet, layer: int, emotions: Sequence[str], *, trained_on: dict | None = None) -> ProbeModel:
    """Fit the chapter's probe (standardise + logistic regression, ``PROBE_C``) on every clip of ``emotions``."""
    from .probes import fit_readout

    clf, rows = fit_readout(emb, emb.ids, layer, emotions)
    return ProbeModel(emb.source, int(layer), tuple(emotions), clf, dict(trained_on or {}, n_clips=len(rows)))


def save_probe(model: ProbeModel, folder: str | os.PathLike) -> Path:
    """Write ``probe.joblib`` and then ``probe.json`` (the json last: a folder without it is not a model)."""
    import joblib

    from .outputs import atomic_write, make_output_dir

    out = make_output_dir(folder, what="probe folder")
    with atomic_write(out / "probe.joblib", what="probe classifier") as tmp:
        joblib.dump(model.classifier, tmp)
    meta = {k: v for k, v in asdict(model).items() if k != "classifier"} | {"format": PROBE_FORMAT}
    with atomic_write(out / "probe.json", what="probe description") as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    return out


def is_probe_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding a saved probe."""
    return (Path(path) / "probe.json").is_file()


def load_probe(folder: str | os.PathLike) -> ProbeModel:
    """Read a folder written by :func:`save_probe`; :class:`ProbeModelError` saying what is wrong otherwise."""
    import joblib

    folder = Path(folder)
    try:
        meta = json.loads((folder / "probe.json").read_text())
        if meta.get("format") != PROBE_FORMAT:
            raise ProbeModelError(f"{folder}: probe format {meta.get('format')}, expected {PROBE_FORMAT}; refit it")
        clf = joblib.load(folder / "probe.joblib")
    except ProbeModelError:
        raise
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise ProbeModelError(f"{folder} is not a readable saved probe ({e.__class__.__name__}: {e}); "
                              "refit it (chapter 10.12)") from e
    if sorted(map(str, getattr(clf, "classes_", []))) != sorted(meta["emotions"]):
        raise ProbeModelError(f"{folder}: the classifier's classes do not match probe.json; refit it")
    return ProbeModel(meta["source"], int(meta["layer"]), tuple(meta["emotions"]), clf, meta.get("trained_on", {}))


def predict_probabilities(model: ProbeModel, clip: str | os.PathLike, *, encoder=None) -> pd.Series:
    """The probe's probability of each emotion for one audio file (any rate, mono or stereo), highest first."""
    from .data import load_clip
    from .encoders import layer_states, load_encoder

    enc = encoder or load_encoder(model.source)
    states = layer_states(enc, load_clip(clip, SAMPLE_RATE))
    if model.layer >= states.shape[0]:
        raise ProbeModelError(f"the probe reads layer {model.layer}, the encoder {model.source} has "
                              f"{states.shape[0] - 1} layers")
    proba = model.classifier.predict_proba(states[model.layer].mean(axis=0, keepdims=True))[0]
    return pd.Series(proba, index=model.classifier.classes_, name="probability").sort_values(ascending=False)
