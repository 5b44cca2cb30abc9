"""Training the Keras models on one fold, saving them, and loading them back to classify new clips.

:func:`keras_fold` is what :func:`ser_utils.experiments.run_experiment` calls
for ``cnn``, ``lstm`` and ``hybrid``. For one :class:`~ser_utils.splits.Split`
it

1. picks the input view (``"vector"``: the 187-d vector as a ``(187, 1)``
   sequence; ``"frames"``: the ``(T, 187)`` frame sequence),
2. standardises it with statistics of the **training clips only**
   (:func:`ser_utils.features.fit_standardizer`), or, with the ``spknorm``
   option, each speaker with its own statistics
   (:func:`ser_utils.features.standardize_per_speaker`; this uses the *test*
   speaker's unlabelled audio, which must be said beside the score),
3. optionally adds frequency-warped copies of the training clips
   (``augment``: :func:`warp_frequency`, a feature-space stand-in for
   vocal-tract-length perturbation, so one training voice is heard at several
   pitches and vocal-tract lengths),
4. trains with fixed seeds, early stopping on the validation clips (carved
   from the training part by :mod:`ser_utils.splits`, never from the test
   clips) and restores the best validation weights,
5. predicts the test clips, and saves the model as ``.keras`` with a JSON
   sidecar (same stem) holding everything needed to prepare a new clip the
   same way: :func:`load_model_bundle` and :func:`prepare_inputs`.

Model variants are spelled in the model name so each gets its own results
file: ``hybrid-frames-spknorm`` is the hybrid on frames with per-speaker
normalisation (the grammar lives in :mod:`ser_utils.registry`). TensorFlow is
imported only when a model is trained or loaded, so the command line starts fast.

Literate: :func:`fold_rows`, the training settings, :func:`compile_model`,
:func:`training_callbacks` and :func:`fit_model` are written and explained in
chapter 3, :func:`warp_matrices`, :func:`warp_frequency` and
:func:`warped_copies` in chapter 5 (``#@save training`` cells); this module
holds the same text, and :func:`keras_fold` is the plumbing around them
(variants, augmentation, saving).
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .evaluation import FoldResult
from .features import (FEATURE_GROUPS, FeatureConfig, FeatureSet, feature_stats, fit_standardizer,
                       standardize_per_speaker)
from .labels import EMOTIONS
from .quiet import bar_hidden
from .registry import INPUTS, KERAS_MODELS, ModelSpec
from .splits import Split

#: Upper bound on epochs in full mode. On the random split of the TESS development subset early
#: stopping ends training after 30-60 epochs; frame models trained on one speaker sometimes keep
#: improving their validation loss slowly up to the cap. 100 leaves room without letting one run
#: go on for hours on a laptop CPU (a vector epoch takes 1-4 s on 2 cores).
DEFAULT_EPOCHS = 100
#: Early-stopping patience (epochs without a better validation loss). The validation sets are
#: small (~130 clips on the dev subset), so their loss is noisy; 10 epochs, together with a
#: learning-rate halving after 4 flat epochs, lets the run get past a plateau before stopping.
PATIENCE = 10
LR_PATIENCE = 4
#: Epochs before early stopping starts watching. Batch normalisation's running statistics are
#: poor for the first few epochs, so the validation loss there is erratic; on the speaker
#: protocol a CNN once kept its epoch-1 weights because no later epoch beat that lucky value.
WARMUP_EPOCHS = 5
#: Smallest fall of the validation loss that counts as an improvement for early stopping: any fall.
#: On the speaker protocol the validation clips come from the training speaker, and a frame model's
#: loss on them is ~1e-5 (accuracy 100 %) by epoch 6; the loss then keeps shrinking by tiny amounts
#: up to the epoch cap, while the test speaker's score still moves. We measured a threshold of 1e-3
#: (results/experiments/min_delta_1e-3): `hybrid-frames` then stopped at epoch 16-18 and its
#: speaker-protocol UAR over seeds 0-2 fell from 62.6-64.4 % to 41.9-65.0 %. The validation clips
#: cannot tell when cross-speaker generalisation is best, so such runs go to the cap (chapter 5).
MIN_DELTA = 0.0
QUICK_EPOCHS = 2
#: In quick mode at most this many training clips (4 batches), so CI stays fast on any corpus.
QUICK_MAX_TRAIN = 128
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
LR_FACTOR = 0.5  # ReduceLROnPlateau halves the learning rate...
MIN_LR = 1e-5  # ...down to this floor
#: Options a Keras run accepts (the first four are also spelled in the model name, see :mod:`ser_utils.registry`).
_KNOWN_OPTIONS = {"input", "spknorm", "class_weights", "augment", "batch_size", "patience", "learning_rate"}
#: Frequency-warped copies of each training clip added by the ``augment`` option (see :func:`warped_copies`).
AUGMENT_COPIES = 4


# --- naming variants --------------------------------------------------------------------


def parse_variant(model: str, options: dict | None = None) -> tuple[str, dict]:
    """The base and full Keras options of a model name such as ``"hybrid-frames-spknorm"``.

    The name is read by :class:`~ser_utils.registry.ModelSpec`; explicit
    ``options`` are merged on top. Returns ``(base, options)`` with ``input``,
    ``spknorm``, ``class_weights`` and ``augment`` always present.

    >>> parse_variant("hybrid-frames-spknorm")
    ('hybrid', {'input': 'frames', 'spknorm': True, 'class_weights': False, 'augment': False})
    """
    spec = ModelSpec.parse(model)
    if spec.family != "keras":
        raise ValueError(f"unknown Keras model {model!r}; choose from {', '.join(KERAS_MODELS)}")
    opts: dict = {"input": spec.input, "spknorm": spec.spknorm, "class_weights": spec.class_weights,
                  "augment": spec.augment}
    for key, value in (options or {}).items():
        if key not in _KNOWN_OPTIONS:
            raise ValueError(f"unknown option {key!r} for Keras models; known: {', '.join(sorted(_KNOWN_OPTIONS))}")
        opts[key] = value
    if opts["input"] not in INPUTS:
        raise ValueError(f"input must be one of {INPUTS}, not {opts['input']!r}")
    return spec.base, opts


def variant_name(model: str, options: dict | None = None) -> str:
    """The canonical name of a variant, used for results files.

    >>> variant_name("hybrid", {"input": "frames"})
    'hybrid-frames'
    """
    base, opts = parse_variant(model, options)
    return ModelSpec(base).with_options(opts).name


# --- inputs -----------------------------------------------------------------------------


def fold_rows(fs: FeatureSet, split: Split, *, seed: int = 0,
              quick: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row numbers in ``fs`` of the split's training, validation and test clips.

    The validation clips were carved from the training part when the split was
    made (chapter 1), so early stopping never sees a test clip. In quick mode
    at most ``QUICK_MAX_TRAIN`` training clips are kept (seeded), so CI stays fast.

    Saved from chapter 3, section 3.1 (book/03_cnn.ipynb).
    """
    train, val, test = fs.index(split.train), fs.index(split.val), fs.index(split.test)
    if quick and len(train) > QUICK_MAX_TRAIN:
        train = np.sort(np.random.default_rng(seed).choice(train, QUICK_MAX_TRAIN, replace=False))
    return train, val, test


def raw_inputs(fs: FeatureSet, kind: str) -> np.ndarray:
    """The un-standardised view of every clip: ``(N, 187)`` vectors or ``(N, T, 187)`` frames."""
    if kind == "vector":
        return fs.vectors
    if kind == "frames":
        return fs.frames
    raise ValueError(f"input must be one of {INPUTS}, not {kind!r}")


def _to_model_shape(x: np.ndarray, kind: str) -> np.ndarray:
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
    :func:`~ser_utils.features.standardize_per_speaker`). The recipe is a JSON-able
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
        return _to_model_shape(standardize_per_speaker(x, speakers), kind), recipe
    scaler = fit_standardizer(x, train_idx)
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
        z = standardize_per_speaker(x, speakers, stats)
    return _to_model_shape(z, kind)


def balanced_class_weights(y: np.ndarray) -> dict[int, float]:
    """scikit-learn's "balanced" weights ``n / (k * count_c)`` for each class present in ``y``, as Keras wants them."""
    from sklearn.utils.class_weight import compute_class_weight

    classes = np.unique(y)
    return dict(zip(classes.tolist(), compute_class_weight("balanced", classes=classes, y=y).tolist(), strict=True))


# --- augmentation: frequency warping in feature space ------------------------------------


def interpolation_matrix(src: np.ndarray, dst: np.ndarray, *, period: float | None = None) -> np.ndarray:
    """Matrix ``W`` with ``W @ f(src) ~= f(dst)`` by linear interpolation (clamped, or circular with ``period``)."""
    n = len(src)
    w = np.zeros((len(dst), n), dtype=np.float64)
    for i, d in enumerate(dst):
        if period is not None:
            pos = (d % period) / (period / n)
            lo = int(np.floor(pos)) % n
            frac = pos - np.floor(pos)
            w[i, lo] += 1 - frac
            w[i, (lo + 1) % n] += frac
            continue
        j = int(np.clip(np.searchsorted(src, d) - 1, 0, n - 2))
        frac = float(np.clip((d - src[j]) / (src[j + 1] - src[j]), 0.0, 1.0))
        w[i, j] += 1 - frac
        w[i, j + 1] += frac
    return w


# Hand-written on purpose: the warp acts on cached 187-d features (no audio re-extraction), and chapter 5 teaches it.
def warp_matrices(alpha: float, cfg: FeatureConfig = FeatureConfig()) -> tuple[np.ndarray, np.ndarray]:
    """The linear maps that warp the log-mel bands ``(128, 128)`` and the chroma ``(12, 12)`` by ``alpha``.

    Mel band centres move to ``f / alpha`` (a linear warp in Hz, the idea of vocal-tract-length
    perturbation); the 12 chroma bins rotate, circularly, by ``12 log2(alpha)`` semitones.

    Saved from chapter 5, section 5.6 (book/05_hybrid.ipynb).
    """
    import librosa

    centres = librosa.mel_frequencies(cfg.n_mels + 2, fmax=cfg.sample_rate / 2)[1:-1]
    w_mel = interpolation_matrix(centres, centres / alpha)
    w_chroma = interpolation_matrix(np.arange(12.0), np.arange(12.0) - 12 * np.log2(alpha), period=12.0)
    return w_mel.astype(np.float32), w_chroma.astype(np.float32)


def warp_frequency(x: np.ndarray, alpha: float, cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Scale the frequency axis of 187-d features by ``alpha``, as if a shorter (>1) or longer (<1) voice spoke.

    Vectors ``(..., 187)`` and frames alike: mel bands and chroma go through :func:`warp_matrices`,
    the MFCCs are recomputed from the warped bands (orthonormal DCT-II, as librosa does), and
    spectral contrast is kept. ``alpha=1`` returns a copy.

    Saved from chapter 5, section 5.6 (book/05_hybrid.ipynb).
    """
    from scipy.fft import dct

    x = np.asarray(x, dtype=np.float32)
    if alpha == 1.0:
        return x.copy()
    mel, chroma, mfcc = FEATURE_GROUPS["mel"], FEATURE_GROUPS["chroma"], FEATURE_GROUPS["mfcc"]
    w_mel, w_chroma = warp_matrices(alpha, cfg)
    out = x.copy()
    out[..., mel] = x[..., mel] @ w_mel.T
    out[..., chroma] = x[..., chroma] @ w_chroma.T
    out[..., mfcc] = dct(out[..., mel], type=2, norm="ortho", axis=-1)[..., : mfcc.stop - mfcc.start]
    return out


def warped_copies(x: np.ndarray, n_copies: int, *, seed: int = 0, max_warp: float = 0.15,
                  cfg: FeatureConfig = FeatureConfig()) -> tuple[np.ndarray, np.ndarray]:
    """``n_copies`` frequency-warped copies of every row of ``x``; returns ``(copies, row_index)``.

    Each copy of each clip gets its own factor, drawn (seeded) from 41 log-spaced values in
    ``[1 / (1 + max_warp), 1 + max_warp]``, so the one training voice is heard as several higher
    and lower voices. ``row_index[k]`` is the row of ``x`` that copy ``k`` came from.

    Saved from chapter 5, section 5.6 (book/05_hybrid.ipynb).
    """
    rng = np.random.default_rng(seed)
    grid = np.exp(np.linspace(-np.log(1 + max_warp), np.log(1 + max_warp), 41))
    rows = np.tile(np.arange(len(x)), n_copies)
    alphas = rng.choice(grid, size=len(rows))
    out = np.empty((len(rows), *x.shape[1:]), dtype=np.float32)
    for a in np.unique(alphas):  # one matrix product per distinct factor
        hit = alphas == a
        out[hit] = warp_frequency(x[rows[hit]], float(a), cfg)
    return out, rows


# --- training ---------------------------------------------------------------------------


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and ask TensorFlow for deterministic kernels.

    ``enable_op_determinism`` makes repeated runs with the same seed give the
    same weights on the same machine (CPU). It is process-wide and cannot be
    turned off, which is what we want for a course; it is skipped where unavailable.
    """
    import keras

    keras.utils.set_random_seed(int(seed))
    try:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        # TensorFlow re-configures its Python logger on import; keep its retracing notices out of the book.
        tf.get_logger().setLevel(logging.ERROR)
    except (ImportError, AttributeError, RuntimeError):  # other backends / older TF
        pass


def epoch_progress(total: int, desc: str, enabled: bool):
    """A Keras callback that shows one tqdm bar over epochs (Keras' own bar is too chatty in notebooks)."""
    import keras
    from tqdm.auto import tqdm

    class EpochBar(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=total, desc=desc, unit="epoch", disable=bar_hidden(enabled), leave=False)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            shown = ("loss", "val_loss", "val_accuracy")
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k in shown})
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

    return EpochBar()


def compile_model(model, learning_rate: float = LEARNING_RATE) -> None:
    """Adam, sparse categorical cross-entropy (labels are integers 0-6) and accuracy.

    Saved from chapter 3, section 3.3 (book/03_cnn.ipynb).
    """
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def training_callbacks(monitor: str, *, patience: int = PATIENCE, warmup: int = WARMUP_EPOCHS) -> list:
    """Early stopping on ``monitor`` (from epoch ``warmup + 1`` on, a fall of more than ``MIN_DELTA``
    counting as improvement, best weights restored) and halving of the learning rate after
    ``LR_PATIENCE`` epochs without improvement.

    Saved from chapter 3, section 3.3 (book/03_cnn.ipynb).
    """
    import keras

    return [keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, min_delta=MIN_DELTA,
                                          restore_best_weights=True, start_from_epoch=warmup),
            keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=LR_FACTOR, patience=LR_PATIENCE,
                                              min_lr=MIN_LR)]


def fit_model(model, x_train, y_train, x_val=None, y_val=None, *, epochs: int = DEFAULT_EPOCHS,
              patience: int = PATIENCE, batch_size: int = BATCH_SIZE, class_weight: dict | None = None,
              progress: bool = False, desc: str = "Training", extra_callbacks: list | None = None) -> dict:
    """Train a compiled model with early stopping on the validation loss; return the history.

    Without validation clips the training loss is watched; no warm-up when ``epochs`` is too short.
    The history holds per-epoch ``loss``, ``accuracy`` (and ``val_``) and ``best_epoch`` (1-based).
    ``extra_callbacks`` run after these (e.g. a probe that only reads, never stops).

    Saved from chapter 3, section 3.3 (book/03_cnn.ipynb).
    """
    has_val = x_val is not None and len(x_val) > 0
    monitor = "val_loss" if has_val else "loss"
    warmup = WARMUP_EPOCHS if epochs > WARMUP_EPOCHS + patience else 0
    callbacks = training_callbacks(monitor, patience=patience, warmup=warmup)
    hist = model.fit(x_train, y_train, validation_data=(x_val, y_val) if has_val else None,
                     epochs=epochs, batch_size=batch_size, shuffle=True, class_weight=class_weight,
                     callbacks=[*callbacks, epoch_progress(epochs, desc, progress), *(extra_callbacks or [])], verbose=0)
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    # The epoch whose weights EarlyStopping restored (its rule: a fall of more than MIN_DELTA counts).
    history["best_epoch"] = int(callbacks[0].best_epoch) + 1
    return history


def _slug(text: str) -> str:
    return text.replace("->", "-to-").replace("+", "_").replace("/", "_").replace(" ", "_")


def model_path(model_dir: str | os.PathLike, name: str, split: Split, seed: int) -> Path:
    """``<model_dir>/<name>__<protocol>__<fold>__seed<k>.keras`` (fold ``OAF->YAF`` spelled ``OAF-to-YAF``)."""
    return Path(model_dir) / f"{name}__{split.protocol}__{_slug(split.fold)}__seed{seed}.keras"


def keras_fold(
    fs: FeatureSet,
    split: Split,
    model: str,
    *,
    seed: int = 0,
    epochs: int | None = None,
    quick: bool = False,
    options: dict | None = None,
    model_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> FoldResult:
    """Train ``model`` (``cnn``/``lstm``/``hybrid``, with variant suffixes) on one fold; score its test clips.

    ``options``: ``input`` (``"vector"`` or ``"frames"``), ``spknorm`` (bool),
    ``class_weights`` (bool), ``augment`` (False, True for
    :data:`AUGMENT_COPIES` warped copies per training clip, or a number of
    copies), and optionally ``batch_size``, ``patience``, ``learning_rate``.
    ``epochs`` defaults to 2 in quick mode (which also caps training at
    :data:`QUICK_MAX_TRAIN` clips) and to
    :data:`DEFAULT_EPOCHS` otherwise, with early stopping. The model and its
    sidecar are saved under ``model_dir`` when given. ``extra`` of the result
    holds ``n_params``, ``best_epoch``, ``train_time_s`` and ``model_path``.
    """
    from .models import build_model

    base, opts = parse_variant(model, options)
    name = variant_name(base, opts)
    set_seed(seed)
    y = fs.labels
    train, val, test = fold_rows(fs, split, seed=seed, quick=quick)
    n_epochs = int(epochs) if epochs else (QUICK_EPOCHS if quick else DEFAULT_EPOCHS)
    x, recipe = standardise_fold(fs, train, kind=opts["input"], spknorm=opts["spknorm"])
    x_train, y_train = x[train], y[train]
    n_copies = 0 if not opts["augment"] else AUGMENT_COPIES if opts["augment"] is True else int(opts["augment"])
    if n_copies:
        # Warped copies of the raw training features, standardised with the training statistics.
        raw = raw_inputs(fs, opts["input"])[train]
        copies, rows = warped_copies(raw, n_copies, seed=seed, cfg=fs.config)
        speakers = fs.meta["speaker"].to_numpy()[train][rows]
        x_train = np.concatenate([x_train, apply_recipe(copies, recipe, speakers, kind=opts["input"])])
        y_train = np.concatenate([y_train, y_train[rows]])

    hyper = fold_hyperparameters(opts, n_epochs, n_copies, quick)
    net = build_model(base, x.shape[1:])
    compile_model(net, hyper["learning_rate"])
    start = time.perf_counter()
    history = fit_model(
        net, x_train, y_train, x[val], y[val],
        epochs=n_epochs, patience=hyper["patience"], batch_size=hyper["batch_size"],
        class_weight=balanced_class_weights(y_train) if opts["class_weights"] else None,
        progress=progress, desc=f"{name} {split.fold}",
    )
    return score_fold(net, history, fs, split, model, seed=seed, x=x, recipe=recipe, rows=(train, val, test),
                      hyper=hyper, n_train_inputs=len(x_train), train_time=time.perf_counter() - start,
                      model_dir=model_dir, options=options)


def fold_hyperparameters(opts: dict, n_epochs: int, n_copies: int = 0, quick: bool = False) -> dict:
    """Every setting a fold actually trains with, as recorded in its results file."""
    return {"optimizer": "adam", "learning_rate": float(opts.get("learning_rate", LEARNING_RATE)),
            "batch_size": int(opts.get("batch_size", BATCH_SIZE)), "epoch_cap": int(n_epochs),
            "patience": int(opts.get("patience", PATIENCE)), "min_delta": MIN_DELTA, "warmup_epochs": WARMUP_EPOCHS,
            "lr_patience": LR_PATIENCE, "augment_copies": int(n_copies),
            "max_train_clips": QUICK_MAX_TRAIN if quick else None}


def score_fold(net, history: dict, fs: FeatureSet, split: Split, model: str, *, seed: int, x: np.ndarray,
               recipe: dict, rows: tuple[np.ndarray, np.ndarray, np.ndarray], hyper: dict, n_train_inputs: int,
               train_time: float | None, model_dir: str | os.PathLike | None = None,
               options: dict | None = None) -> FoldResult:
    """Score a trained model on the fold's test rows of ``x`` and package the fold (and its saved model).

    ``history`` is :func:`fit_model`'s (with ``best_epoch``); ``rows`` are :func:`fold_rows`'s
    training, validation and test rows; ``x`` and ``recipe`` are :func:`standardise_fold`'s.
    """
    from .models import count_params

    base, opts = parse_variant(model, options)
    name = variant_name(base, opts)
    train, val, test = rows
    history = {k: v if k == "best_epoch" else [float(e) for e in v] for k, v in history.items()}
    y_pred = net.predict(x[test], batch_size=256, verbose=0).argmax(axis=1) if len(test) else np.array([], int)
    extra = {"n_params": count_params(net), "best_epoch": int(history.pop("best_epoch")),
             "train_time_s": None if train_time is None else round(train_time, 2), "input": opts["input"],
             "spknorm": bool(opts["spknorm"]), "n_train_inputs": int(n_train_inputs), "hyperparameters": hyper}
    if model_dir is not None:
        path = model_path(model_dir, name, split, seed)
        sidecar = {
            "model": name, "base_model": base, "input": opts["input"], "input_shape": list(x.shape[1:]),
            "options": {k: v for k, v in opts.items()}, "feature_config": asdict(fs.config),
            "feature_key": fs.config.key(), "data_key": fs.data_key, "standardizer": recipe, "emotions": list(EMOTIONS),
            "protocol": split.protocol, "fold": split.fold, "seed": int(seed),
            "train_speakers": sorted(map(str, set(fs.meta["speaker"].to_numpy()[train]))),
        }
        save_bundle(net, path, sidecar)
        extra["model_path"] = str(path)
    y = fs.labels
    return FoldResult(
        fold=split.fold,
        test_ids=list(fs.ids[test]),
        y_true=y[test].tolist(),
        y_pred=[int(p) for p in y_pred],
        n_train=len(train),
        n_val=len(val),
        epochs=len(history["loss"]),
        history=history,
        extra=extra,
    )


def trained_fold(net, history: dict, fs: FeatureSet, split: Split, model: str, *, seed: int = 0,
                 epochs: int | None = None, quick: bool = False, train_time: float | None = None,
                 model_dir: str | os.PathLike | None = None) -> FoldResult:
    """The fold :func:`keras_fold` would return, for a model a chapter trained itself with its recipe.

    The chapter must have trained ``net`` exactly as :func:`keras_fold` does (same seed, rows,
    standardisation, callbacks and epoch cap, default options), so the weights are the same and
    nothing is trained twice. Only plain models qualify; variants train through :func:`keras_fold`.
    """
    base, opts = parse_variant(model)
    if variant_name(base, opts) != model or opts["input"] != "vector":
        raise ValueError(f"only the plain vector models can be recorded from a chapter's own training, "
                         f"not {model!r}; train it with run_experiment")
    n_epochs = int(epochs) if epochs else (QUICK_EPOCHS if quick else DEFAULT_EPOCHS)
    if len(history.get("loss", ())) > n_epochs or "best_epoch" not in history:
        raise ValueError("history must be fit_model's (with best_epoch), from a run within the epoch cap "
                         f"of {n_epochs}")
    train, val, test = fold_rows(fs, split, seed=seed, quick=quick)
    x, recipe = standardise_fold(fs, train, kind="vector")
    return score_fold(net, history, fs, split, model, seed=seed, x=x, recipe=recipe, rows=(train, val, test),
                      hyper=fold_hyperparameters(opts, n_epochs, 0, quick), n_train_inputs=len(train),
                      train_time=train_time, model_dir=model_dir)


# --- saving, loading, predicting --------------------------------------------------------


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
    from .quiet import quiet_libraries

    quiet_libraries()
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
    return _to_model_shape((x - mean) / scale, kind)

