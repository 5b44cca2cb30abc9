"""Classify one new recording with a saved model: ``python -m ser_utils predict CLIP.wav``.

A model saved by :func:`ser_utils.training.keras_fold` is a ``.keras`` file
plus a JSON sidecar holding the feature configuration and the standardisation
of its training data (:func:`ser_utils.keras_io.load_model_bundle`). To
classify any WAV (any sample rate, mono or stereo) we

1. read it by content and resample it to the model's rate
   (:func:`ser_utils.data.load_clip`), refusing non-audio, empty and silent
   files with a clear message,
2. compute the same features the model was trained on
   (:func:`ser_utils.features.extract_from_audio` with the sidecar's config),
3. standardise and shape them as in training
   (:func:`ser_utils.keras_io.prepare_inputs`) and return the seven class
   probabilities, sorted,
4. optionally draw a Grad-CAM figure of the decision (:mod:`ser_utils.gradcam`).

Without an explicit model, the newest saved hybrid under the artifacts folder
(``SER_ARTIFACTS_DIR`` or ``<project>/artifacts``) is used.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import AudioFileError, UserError
from .data import SILENCE_PEAK
from .run_context import default_artifacts_root
from .labels import EMOTIONS

DEFAULT_MODEL = "hybrid"


def find_models(root: str | os.PathLike | None = None, base: str | None = DEFAULT_MODEL) -> list[Path]:
    """Saved ``.keras`` models (with a sidecar) under ``root``; ``base`` filters the model family.

    Newest first, except that models needing per-speaker statistics
    (``spknorm``), which a single new clip cannot provide, come after all others.
    """
    root = Path(root) if root is not None else default_artifacts_root()
    found = []
    for path in root.rglob("*.keras") if root.is_dir() else []:
        side = path.with_suffix(".json")
        if not side.is_file():
            continue
        try:
            meta = json.loads(side.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        # Every sidecar names its base architecture: no model name is parsed (nor a model family loaded) here.
        if base is None or meta.get("base_model") == base:
            spknorm = meta.get("standardizer", {}).get("kind") == "spknorm"
            found.append((spknorm, -path.stat().st_mtime, str(path), path))
    return [p for *_, p in sorted(found)]


def newest_model(root: str | os.PathLike | None = None, base: str = DEFAULT_MODEL) -> Path:
    """The most recently saved ``base`` model under ``root``; :class:`UserError` when there is none."""
    root = Path(root) if root is not None else default_artifacts_root()
    models = find_models(root, base)
    if not models:
        raise UserError(f"no saved {base} model found under {root}; train one with "
                        f"`python -m ser_utils train {base}` (or run chapter 5), or pass --model PATH")
    return models[0]


def check_clip(path: str | os.PathLike):
    """Apply the manifest's acceptance rule (:func:`ser_utils.data.accept_audio`) to one clip to classify.

    Cheap (no TensorFlow), so ``predict`` refuses a bad clip before loading a
    model. Returns the accepted audio; raises :class:`AudioFileError` naming
    the file and what is wrong with it.
    """
    from .data import _printable, accept_audio

    text = os.fsdecode(path)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", text) and not Path(text).exists():
        raise AudioFileError(f"{text!r} looks like a URL; predict reads a local audio file: download it first "
                             "(e.g. `curl -LO URL`) and pass the file")
    p = Path(path)
    if p.is_dir():
        raise AudioFileError(f"{_printable(p)} is a folder; predict classifies one audio file "
                             "(for a folder of clips use `python -m ser_utils manifest DIR`)")
    if not p.exists() and not p.is_symlink():
        raise AudioFileError(f"no such file: {_printable(p)}")
    try:
        return accept_audio(p)
    except AudioFileError as exc:
        raise AudioFileError(f"{_printable(p)}: {exc}") from None


def load_audio(path: str | os.PathLike, sr: int) -> np.ndarray:
    """Read any audio file as mono float32 at ``sr`` Hz, after the same checks as the manifest.

    Raises :class:`AudioFileError` (a :class:`UserError`: one clear line, no
    traceback on the command line) for a missing, non-audio, empty, silent,
    truncated, too short or implausible file.
    """
    import librosa

    clip = check_clip(path)
    audio = clip.audio
    if clip.sample_rate != sr:
        audio = librosa.resample(audio, orig_sr=clip.sample_rate, target_sr=sr, res_type="soxr_hq")
    return audio.astype(np.float32, copy=False)


def read_sidecar(model_path: str | os.PathLike) -> tuple[Path, dict]:
    """``(model file, sidecar)`` of a saved model, checked without loading TensorFlow.

    Raises :class:`UserError` for a missing model, a file that is not a Keras
    archive, or a missing, unreadable or incomplete JSON sidecar.
    """
    import zipfile

    from .features import FeatureConfig
    from .keras_io import sidecar_path

    path = Path(model_path)
    if path.is_dir():
        raise UserError(f"--model {path} is a folder; give the saved .keras file")
    if path.suffix.lower() not in (".keras", ".json"):
        raise UserError(f"--model {path} is not a saved model: give the .keras file written by `train`")
    model_file = path.with_suffix(".keras")
    if path.suffix.lower() == ".json" and not model_file.is_file():
        raise UserError(f"--model {path} is a JSON file with no saved model of the same name beside it; "
                        "give the .keras file written by `train`")
    if not model_file.is_file():
        raise UserError(f"no saved model at {model_file}; train one with `python -m ser_utils train hybrid`")
    if not zipfile.is_zipfile(model_file):
        raise UserError(f"{model_file} is not a saved Keras model (not a .keras archive)")
    side = sidecar_path(model_file)
    if not side.is_file():
        raise UserError(f"model {model_file} has no sidecar {side.name}; it was not saved by ser_utils")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"the sidecar {side} of model {model_file.name} is not readable JSON ({exc}); "
                        "retrain the model or restore the file") from exc
    try:
        if meta.get("input") not in ("vector", "frames"):
            raise KeyError("input")
        FeatureConfig(**meta["feature_config"])
        for key in ("input_shape", "standardizer"):
            meta[key]  # noqa: B018 - presence check
    except (AttributeError, KeyError, TypeError) as exc:
        raise UserError(f"the sidecar {side} of model {model_file.name} is incomplete or from another "
                        f"version (bad or missing {exc}); retrain the model") from exc
    return model_file, meta


def cam_problem(model_file: str | os.PathLike) -> str | None:
    """Why a Grad-CAM figure cannot be drawn for this saved model (no convolution layer), or None.

    Read from the archive's ``config.json``, without TensorFlow, so ``predict --cam`` refuses
    before it prints a prediction.
    """
    import zipfile

    from .registry import LAST_CONV

    try:
        with zipfile.ZipFile(model_file) as zf:
            config = zf.read("config.json").decode("utf-8", errors="replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        return None  # read_sidecar / the loader report an unreadable archive themselves
    if f'"{LAST_CONV}"' not in config:
        return (f"--cam needs a model with a convolution layer ({LAST_CONV!r}: cnn or hybrid); "
                f"{Path(model_file).name} has none (an LSTM?): drop --cam or pass a cnn/hybrid model")
    return None


def is_demo_model(model_path: str | os.PathLike) -> bool:
    """True when a saved model lies in a demo artifacts folder (trained on the synthetic corpus)."""
    for parent in Path(model_path).resolve().parents:
        if parent.name in ("demo", "demo-quick") or (parent / "demo_corpus").is_dir():
            return True
    return False


@dataclass
class Prediction:
    """The model's answer for one clip."""

    clip: Path
    model_path: Path
    model_name: str
    probabilities: pd.Series  # emotion -> probability, highest first
    inputs: np.ndarray = field(repr=False)  # (1, ...) standardised model input
    features: object = field(repr=False)  # ClipFeatures of the clip
    sidecar: dict = field(repr=False)

    @property
    def label(self) -> str:
        return str(self.probabilities.index[0])

    def as_text(self) -> str:
        """The sorted probabilities as aligned lines, e.g. ``angry      0.912``."""
        width = max(len(e) for e in self.probabilities.index)
        name = os.fsencode(self.clip.name).decode("utf-8", errors="backslashreplace")  # any file name prints
        lines = [f"{name}: {self.label} (model {self.model_name}, {self.model_path.name})"]
        lines += [f"  {e:<{width}}  {p:6.3f}" for e, p in self.probabilities.items()]
        return "\n".join(lines)


def predict_clip(clip: str | os.PathLike, model_path: str | os.PathLike | None = None, *,
                 bundle: tuple | None = None) -> Prediction:
    """Classify one audio file with a saved model; see the module docstring.

    ``model_path`` is a ``.keras`` file (or its sidecar); None picks
    :func:`newest_model`. A ``bundle`` ``(keras_model, sidecar)`` already
    loaded can be passed instead to avoid loading it again.
    """
    from .features import extract_from_audio
    from .keras_io import feature_config_of, load_model_bundle, prepare_inputs

    check_clip(clip)  # before any model is loaded: a bad clip costs no TensorFlow start-up
    if bundle is None:
        model_path = Path(model_path) if model_path is not None else newest_model()
        read_sidecar(model_path)
        try:
            model, sidecar = load_model_bundle(model_path)
        except FileNotFoundError as exc:
            raise UserError(str(exc)) from exc
        except Exception as exc:  # keras raises many types for a damaged or foreign archive
            raise UserError(f"{model_path} could not be loaded as a Keras model ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:150] if str(exc) else ''}); retrain it") from exc
    else:
        model, sidecar = bundle
        model_path = Path(model_path or sidecar.get("path", "model.keras"))
    cfg = feature_config_of(sidecar)
    audio = load_audio(clip, cfg.sample_rate)
    try:
        feats = extract_from_audio(audio, cfg)
    except ValueError as exc:  # e.g. silent after trimming
        raise UserError(f"cannot compute features of {clip}: {exc}") from exc
    raw = feats.vector if sidecar["input"] == "vector" else feats.frames
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the spknorm fallback warning is reported in the text below
        try:
            x = prepare_inputs(raw, sidecar)
        except (KeyError, TypeError, ValueError) as exc:  # a sidecar that does not match its model
            raise UserError(f"the sidecar of {model_path} does not match the features ({exc}); "
                            "retrain the model") from exc
    try:
        probs = np.asarray(model.predict(x, verbose=0))[0].astype(float)
    except Exception as exc:  # keras raises ValueError and friends when the sidecar describes another model
        raise UserError(f"the model {model_path} does not accept the inputs its sidecar describes "
                        f"({type(exc).__name__}); the sidecar belongs to another model: retrain or restore it") from exc
    emotions = sidecar.get("emotions", list(EMOTIONS))
    series = pd.Series(probs, index=emotions, name="probability").sort_values(ascending=False)
    return Prediction(clip=Path(clip), model_path=Path(model_path), model_name=sidecar.get("model", "?"),
                      probabilities=series, inputs=x, features=feats, sidecar=sidecar)


def cam_figure(pred: Prediction, model, *, title: str | None = None):
    """Grad-CAM of the predicted class for one prediction, as a matplotlib Figure.

    Vector models: importance over the 187 feature positions (groups shaded)
    and the mean per group; frame models: importance over time above the
    clip's log-mel spectrogram.
    """
    from . import plots
    from .features import FEATURE_GROUPS
    from .gradcam import grad_cam, group_importance

    cls = list(pred.sidecar.get("emotions", EMOTIONS)).index(pred.label)
    cams, _ = grad_cam(model, pred.inputs, class_idx=cls)
    title = title or f"Grad-CAM of '{pred.label}' for {pred.clip.name} ({pred.model_name})"
    if pred.sidecar["input"] == "vector":
        return plots.cam_vector_figure(cams[0], group_importance(cams), title=title)
    mel = pred.features.frames[:, FEATURE_GROUPS["mel"]]
    return plots.cam_spectrogram_figure(mel, cams[0], title=title)


def write_cam(pred: Prediction, model, out: str | os.PathLike) -> Path:
    """Save :func:`cam_figure` to ``out`` (format from the extension; none means ``.png``); returns the real path."""
    from .outputs import save_figure

    return save_figure(cam_figure(pred, model), out, what="--cam")
