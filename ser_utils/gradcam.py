"""Grad-CAM for the Keras Conv1D models, mapped back to features and time, and a faithfulness check.

Grad-CAM (Selvaraju et al., 2017) explains one prediction of a convolutional
network by the activations ``A_k(t)`` of its last convolution: each channel
``k`` is weighted by the average gradient of the class score over positions,
``alpha_k = mean_t d score_c / d A_k(t)``, and the map is
``relu(sum_k alpha_k A_k(t))``. We compute it with ``tf.GradientTape`` on the
layer named ``"last_conv"`` (every CNN and hybrid in :mod:`ser_utils.models`
names its last Conv1D that way) and upsample it from the convolution's own
axis to the model's input axis:

- vector input ``(187, 1)``: the convolution slides over the 187 *feature
  positions*, so the map says which positions of the paper's vector (chroma,
  mel, contrast, MFCC; :data:`ser_utils.features.FEATURE_GROUPS`) drove the
  decision; :func:`group_importance` and :func:`band_importance` summarise it.
- frame input ``(T, 187)``: the convolution slides over *time*, so the map is an
  importance per frame, drawn over the log-mel spectrogram.

The score differentiated is the class **logit** (the input of the final
softmax) when the model ends in a softmax, as in the original method: the
softmax probability of a confident model is flat (gradient near zero), which
would make maps of correct 99 % predictions mostly noise.

A heat map is not evidence by itself: :mod:`ser_utils.deletion` tests whether
a map is faithful, and :mod:`ser_utils.gradcam_reference` runs both over
models and seeds for the committed reference files.
"""

from __future__ import annotations


import numpy as np

from .features import FEATURE_GROUPS, N_MELS
from .labels import EMOTIONS
from .registry import LAST_CONV

#: Name of the layer Grad-CAM reads, by convention of :mod:`ser_utils.models`.


# --- the Grad-CAM model ----------------------------------------------------------------


def _find_layer(model, name: str):
    """The layer called ``name`` at the top level of ``model`` (clear error when missing or nested)."""
    for layer in model.layers:
        if layer.name == name:
            return layer
    for layer in model.layers:  # nested sub-models: a graph across them cannot be cut cleanly
        if hasattr(layer, "layers") and any(sub.name == name for sub in layer.layers):
            raise ValueError(
                f"layer {name!r} sits inside the nested sub-model {layer.name!r}; Grad-CAM needs it at "
                "the top level of the model (build the model as one functional graph)"
            )
    names = ", ".join(layer.name for layer in model.layers)
    raise ValueError(f"model {model.name!r} has no layer named {name!r} (its layers: {names})")


def score_head(model):
    """(tensor the score is read from, function turning it into the class score, is that score a logit).

    A Dense softmax output: the logit, rebuilt from that layer's input with its own kernel and bias.
    A separate softmax layer: its input. Anything else: the model output, treated as a probability.
    Saved from chapter 8, section 8.3 (book/08_gradcam.ipynb).
    """
    import keras

    out_layer = model.layers[-1]
    act_name = getattr(getattr(out_layer, "activation", None), "__name__", "")
    if isinstance(out_layer, keras.layers.Dense) and act_name == "softmax":

        def logits(h):
            z = keras.ops.matmul(h, out_layer.kernel)
            return z + out_layer.bias if out_layer.use_bias else z

        return out_layer.input, logits, True
    if isinstance(out_layer, keras.layers.Softmax) or (
        isinstance(out_layer, keras.layers.Activation) and act_name == "softmax"
    ):
        return out_layer.input, lambda h: h, True
    return model.outputs[0], lambda h: h, False


def cam_model(model, layer: str = LAST_CONV):
    """A Keras model from the inputs of ``model`` to ``[layer's activations, the tensor the logits come from]``.

    The second output is the input of the softmax layer (see :func:`score_head`).
    Saved from chapter 8, section 8.3 (book/08_gradcam.ipynb).
    """
    import keras

    conv = _find_layer(model, layer)
    if len(conv.output.shape) != 3:
        raise ValueError(f"layer {layer!r} must be a Conv1D-like layer with output (batch, steps, channels), "
                         f"got {conv.output.shape}")
    head, _, _ = score_head(model)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs=inputs, outputs=[conv.output, head])


def conv_cam(model, x: np.ndarray, class_idx: int | np.ndarray | None = None, *, layer: str = LAST_CONV,
             batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM maps on the last convolution's own axis ``(N, L_conv)`` and the probabilities ``(N, 7)``.

    ``class_idx``: the class explained per sample (an int, N ints, or None = the predicted class).
    Saved from chapter 8, section 8.3 (book/08_gradcam.ipynb).
    """
    import tensorflow as tf
    sub = cam_model(model, layer)  # inputs -> [last_conv activations A, input of the softmax layer]
    _, to_logits, is_logit = score_head(model)
    x = np.asarray(x, dtype=np.float32)
    wanted = None if class_idx is None else np.broadcast_to(np.asarray(class_idx, dtype=np.int32), (len(x),))
    cams, probs = [], []
    for s in range(0, len(x), batch_size):
        with tf.GradientTape() as tape:
            acts, head = sub(tf.convert_to_tensor(x[s:s + batch_size]), training=False)
            logits = to_logits(head)
            idx = tf.argmax(logits, axis=-1, output_type=tf.int32) if wanted is None else wanted[s:s + batch_size]
            score = tf.gather(logits, idx, axis=1, batch_dims=1)  # (B,): the logit of each sample's class
        grads = tape.gradient(score, acts)  # (B, L, K): d score / d A_k(t)
        alpha = tf.reduce_mean(grads, axis=1, keepdims=True)  # (B, 1, K): one weight per channel
        cams.append(tf.nn.relu(tf.reduce_sum(alpha * acts, axis=-1)).numpy())  # (B, L)
        probs.append(np.asarray(tf.nn.softmax(logits, axis=-1) if is_logit else logits))
    return np.concatenate(cams).astype(np.float32), np.concatenate(probs).astype(np.float32)


def upsample(cam: np.ndarray, length: int) -> np.ndarray:
    """Linearly resample maps ``(N, L)`` to ``(N, length)``, aligning the centres of the positions.

    Position ``i`` of a length-``L`` map covers the input interval
    ``[i, i+1) * length / L`` (true for 'same' padding and pooling), so it is
    placed at that interval's centre before interpolation.
    Saved from chapter 8, section 8.3 (book/08_gradcam.ipynb).
    """
    cam = np.atleast_2d(np.asarray(cam, dtype=np.float32))
    n_in = cam.shape[1]
    if n_in == length:
        return cam.copy()
    src = (np.arange(n_in) + 0.5) * length / n_in - 0.5
    dst = np.arange(length, dtype=np.float64)
    return np.stack([np.interp(dst, src, row) for row in cam]).astype(np.float32)


def normalise(cam: np.ndarray) -> np.ndarray:
    """Scale each map to [0, 1] by its maximum (all-zero maps stay zero).

    Saved from chapter 8, section 8.3 (book/08_gradcam.ipynb).
    """
    cam = np.atleast_2d(np.asarray(cam, dtype=np.float32))
    peak = cam.max(axis=1, keepdims=True)
    return np.where(peak > 0, cam / np.where(peak > 0, peak, 1), 0.0).astype(np.float32)


# Written out with tf.GradientTape on purpose: chapter 8 teaches Grad-CAM itself, not a library's wrapper.
def grad_cam(model, x: np.ndarray, class_idx: int | np.ndarray | None = None, *, layer: str = LAST_CONV,
             normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM maps over the **input** axis (187 positions or T frames) and the probabilities.

    :func:`conv_cam`, :func:`upsample` to ``x.shape[1]``, then :func:`normalise` to [0, 1] when ``normalize``.
    Saved from chapter 8, section 8.3 (book/08_gradcam.ipynb).
    """
    raw, probs = conv_cam(model, x, class_idx, layer=layer)
    cams = upsample(raw, np.asarray(x).shape[1])
    return (normalise(cams) if normalize else cams), probs


# --- summaries of a vector map -----------------------------------------------------------


def group_importance(cams: np.ndarray, *, share: bool = False) -> dict[str, np.ndarray]:
    """Importance per feature group from maps over the 187 positions: ``{group: (N,) array}``.

    By default the **mean** importance per position of the group, so the 128 mel
    positions do not win just by being many; with ``share=True`` the group's
    fraction of the map's total mass.
    Saved from chapter 8, section 8.4 (book/08_gradcam.ipynb).
    """
    cams = np.atleast_2d(np.asarray(cams, dtype=np.float64))
    if cams.shape[1] != sum(s.stop - s.start for s in FEATURE_GROUPS.values()):
        raise ValueError(f"group importance needs maps over the 187 vector positions, got {cams.shape[1]}")
    if share:
        total = np.clip(cams.sum(axis=1), 1e-12, None)
        return {g: cams[:, s].sum(axis=1) / total for g, s in FEATURE_GROUPS.items()}
    return {g: cams[:, s].mean(axis=1) for g, s in FEATURE_GROUPS.items()}


def mel_band_edges(n_bands: int = 8, *, sr: int = 22050, fmax: float | None = None) -> list[tuple[float, float]]:
    """Frequency range (Hz) of each of ``n_bands`` equal slices of the 128 mel bins."""
    import librosa

    freqs = librosa.mel_frequencies(n_mels=N_MELS + 2, fmin=0.0, fmax=fmax or sr / 2)
    cuts = np.linspace(0, N_MELS, n_bands + 1).astype(int)
    return [(float(freqs[a]), float(freqs[b + 1])) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def band_importance(cams: np.ndarray, *, n_bands: int = 8, sr: int = 22050) -> "pd.DataFrame":  # noqa: F821
    """Mean importance over each band of positions: mel in ``n_bands`` frequency bands, MFCC in 4 ranges.

    Returns a DataFrame with one row per band: ``group``, ``band`` (a label
    such as ``"mel 0-345 Hz"`` or ``"mfcc 1-10"``) and ``importance`` (mean
    over the band's positions and over the maps given).
    """
    import pandas as pd

    cams = np.atleast_2d(np.asarray(cams, dtype=np.float64))
    mean_map = cams.mean(axis=0)
    rows = []
    mel = mean_map[FEATURE_GROUPS["mel"]]
    cuts = np.linspace(0, N_MELS, n_bands + 1).astype(int)
    for (lo, hi), a, b in zip(mel_band_edges(n_bands, sr=sr), cuts[:-1], cuts[1:], strict=True):
        rows.append({"group": "mel", "band": f"mel {lo:.0f}-{hi:.0f} Hz", "importance": float(mel[a:b].mean())})
    mfcc = mean_map[FEATURE_GROUPS["mfcc"]]
    for a in range(0, len(mfcc), 10):
        rows.append({"group": "mfcc", "band": f"mfcc {a + 1}-{min(a + 10, len(mfcc))}",
                     "importance": float(mfcc[a : a + 10].mean())})
    for g in ("chroma", "contrast"):
        rows.append({"group": g, "band": g, "importance": float(mean_map[FEATURE_GROUPS[g]].mean())})
    return pd.DataFrame(rows)


def class_average_maps(cams: np.ndarray, labels: np.ndarray, n_classes: int = len(EMOTIONS)) -> np.ndarray:
    """Mean map per class, ``(n_classes, L)``; a class with no sample gets a row of NaN."""
    cams = np.atleast_2d(np.asarray(cams, dtype=np.float32))
    labels = np.asarray(labels)
    out = np.full((n_classes, cams.shape[1]), np.nan, dtype=np.float32)
    for c in range(n_classes):
        if np.any(labels == c):
            out[c] = cams[labels == c].mean(axis=0)
    return out


def group_table(cams_by_model: dict[str, np.ndarray]) -> "pd.DataFrame":  # noqa: F821
    """Long table of feature-group importance per model: ``model``, ``group``, ``mean`` (per position) and ``share``.

    ``cams_by_model`` maps a model name to its maps over the 187 positions;
    values are averaged over the clips.
    """
    import pandas as pd

    rows = []
    for name, cams in cams_by_model.items():
        mean, share = group_importance(cams), group_importance(cams, share=True)
        for g in FEATURE_GROUPS:
            rows.append({"model": name, "group": g, "mean": float(mean[g].mean()), "share": float(share[g].mean())})
    return pd.DataFrame(rows)


def pick_examples(y_true: np.ndarray, probs: np.ndarray, k: int = 2) -> dict[str, list[int]]:
    """Indices of up to ``k`` confidently correct and ``k`` most confidently wrong predictions."""
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    right = np.flatnonzero(pred == y_true)
    wrong = np.flatnonzero(pred != y_true)
    return {"correct": right[np.argsort(-conf[right], kind="stable")][:k].tolist(),
            "wrong": wrong[np.argsort(-conf[wrong], kind="stable")][:k].tolist()}
