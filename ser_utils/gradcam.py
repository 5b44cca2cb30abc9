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

A heat map is not evidence by itself. :func:`deletion_test` masks input
positions (sets them to 0, the training mean after standardisation) in order
of Grad-CAM importance and in random orders, and records the true-class
probability. A faithful map makes it fall faster than random; the area
between the two curves is reported, and a map no better than random shows up
as an area near zero (or below).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

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


# --- faithfulness: deletion curves --------------------------------------------------------


RELATIVE_GAIN_MIN = 0.05  # the map must remove at least this share of the random curve's area


def mean_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Normal-approximation interval of the mean of ``values``: mean +- z * sd / sqrt(n) (NaN when n < 2).

    Saved from chapter 8, section 8.7 (book/08_gradcam.ipynb).
    """
    from scipy.stats import norm

    values = np.asarray(values, dtype=np.float64)
    half = norm.ppf(0.5 + level / 2) * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else np.nan
    return float(values.mean() - half), float(values.mean() + half)


def deletion_verdict(low: float, high: float, relative_gain: float) -> str:
    """Verdict from the interval ``[low, high]`` of the area between the curves and the relative gain.

    Saved from chapter 8, section 8.7 (book/08_gradcam.ipynb).
    """
    if high < 0:
        return "worse than random"
    if low <= 0:
        return "no better than random"
    return "barely better than random" if relative_gain < RELATIVE_GAIN_MIN else "better than random"


@dataclass
class DeletionResult:
    """True-class probability as the most important inputs are masked, Grad-CAM order vs random.

    ``fractions``: share of input positions masked at each step (0 ... 1).
    ``cam`` / ``random``: mean true-class probability at each step (random
    averaged over ``n_random`` orders); ``random_sd``: sd of the random curve
    over its orders. ``area_cam`` / ``area_random``: area under each curve
    (trapezoid over the fractions); ``area_between = area_random - area_cam``,
    positive when the map finds the evidence faster than chance.
    """

    fractions: np.ndarray
    cam: np.ndarray
    random: np.ndarray
    random_sd: np.ndarray
    n_samples: int
    n_random: int
    per_sample_cam: np.ndarray = field(repr=False)
    per_sample_random: np.ndarray = field(repr=False)
    per_sample_control: np.ndarray | None = field(default=None, repr=False)  # order of a control map (or None)

    @property
    def control(self) -> np.ndarray | None:
        """Mean curve along the control maps' order (the randomised model's maps), None without a control."""
        return None if self.per_sample_control is None else self.per_sample_control.mean(axis=0)

    def _areas(self, curves: np.ndarray) -> np.ndarray:
        return np.trapezoid(curves, self.fractions, axis=1)

    @property
    def area_cam(self) -> float:
        return float(np.trapezoid(self.cam, self.fractions))

    @property
    def area_random(self) -> float:
        return float(np.trapezoid(self.random, self.fractions))

    @property
    def area_between(self) -> float:
        return self.area_random - self.area_cam

    def area_between_ci(self, level: float = 0.95) -> tuple[float, float]:
        """Normal-approximation confidence interval of ``area_between`` over the samples."""
        per = np.trapezoid(self.per_sample_random, self.fractions, axis=1) - np.trapezoid(
            self.per_sample_cam, self.fractions, axis=1)
        return mean_interval(per, level)

    @property
    def relative_gain(self) -> float:
        """``area_between / area_random``: the share of the random curve's area the map removes (0 = none)."""
        return self.area_between / self.area_random if self.area_random > 0 else float("nan")

    @property
    def verdict(self) -> str:
        """:func:`deletion_verdict` of the 95 % interval of the area between the curves and :attr:`relative_gain`."""
        return deletion_verdict(*self.area_between_ci(), self.relative_gain)

    def control_summary(self) -> dict | None:
        """The control map's order against random orders, and the trained map's order against the control's.

        ``control_area_between`` = area under the random curve - area under the control curve (as
        :attr:`area_between`, for the control maps); ``cam_vs_control`` = area under the control curve - area
        under the trained map's curve, per clip, positive when the trained model's map finds the evidence faster
        than the randomised model's map; each with its 95 % interval, relative gain and verdict.
        """
        if self.per_sample_control is None:
            return None
        rand, cam, ctrl = (self._areas(c) for c in (self.per_sample_random, self.per_sample_cam,
                                                     self.per_sample_control))
        out = {"area_control": round(float(ctrl.mean()), 4)}
        for key, diff, ref, what in (("control_", rand - ctrl, rand, "random"),
                                     ("cam_vs_control_", ctrl - cam, ctrl, "the randomised-model maps")):
            lo, hi = mean_interval(diff)
            gain = float(diff.mean() / ref.mean()) if ref.mean() > 0 else float("nan")
            out |= {f"{key}area_between": round(float(diff.mean()), 4), f"{key}ci95_low": round(lo, 4),
                    f"{key}ci95_high": round(hi, 4), f"{key}relative_gain": round(gain, 4),
                    f"{key}verdict": deletion_verdict(lo, hi, gain).replace("random", what)}
        return out

    def summary(self) -> dict:
        """The numbers to report: areas, the difference, its 95 % confidence interval and the verdict.

        With a control (``deletion_test(..., control_cams=...)``) also :meth:`control_summary`'s numbers.
        """
        lo, hi = self.area_between_ci()
        out = {"n_samples": self.n_samples, "start_prob": round(float(self.cam[0]), 4),
               "area_cam": round(self.area_cam, 4), "area_random": round(self.area_random, 4),
               "area_between": round(self.area_between, 4), "ci95_low": round(lo, 4),
               "ci95_high": round(hi, 4), "relative_gain": round(self.relative_gain, 4), "verdict": self.verdict}
        return out | (self.control_summary() or {})


def masked_probs(model, x: np.ndarray, orders: np.ndarray, counts: np.ndarray, y: np.ndarray, baseline: float,
                 batch_size: int) -> np.ndarray:
    """True-class probability of each sample after masking its first ``counts[k]`` positions of ``orders``.

    Returns ``(N, len(counts))``; all masked copies of a chunk of samples go through one ``predict``.
    Saved from chapter 8, section 8.7 (book/08_gradcam.ipynb).
    """
    n, length = orders.shape
    rank = np.empty_like(orders)  # rank[i, p]: the step at which position p of sample i is masked
    np.put_along_axis(rank, orders, np.arange(length)[None, :].repeat(n, axis=0), axis=1)
    out = np.empty((n, len(counts)), dtype=np.float32)
    per_chunk = max(1, batch_size // len(counts))
    trailing = (1,) * (x.ndim - 2)
    for start in range(0, n, per_chunk):
        sl = slice(start, start + per_chunk)
        mask = rank[sl, None, :] < counts[None, :, None]  # (chunk, steps, L)
        masked = np.where(mask.reshape(mask.shape + trailing), np.float32(baseline), x[sl, None])
        p = model.predict(masked.reshape((-1,) + x.shape[1:]), batch_size=batch_size, verbose=0)
        out[sl] = np.asarray(p).reshape(len(mask), len(counts), -1)[np.arange(len(mask)), :, y[sl]]
    return out


def order_by_map(cams: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Positions of each map ``(N, L)`` from most to least important; ties broken at random by ``rng``.

    Ties (the zeros the ReLU leaves) are broken at random so that they cannot favour the map.
    Saved from chapter 8, section 8.7 (book/08_gradcam.ipynb).
    """
    cams = np.asarray(cams, dtype=np.float64)
    jitter = rng.random(cams.shape) * 1e-9
    return np.argsort(-(cams + jitter), axis=1, kind="stable")


def deletion_test(model, x: np.ndarray, y: np.ndarray, cams: np.ndarray, *, control_cams: np.ndarray | None = None,
                  steps: int = 20, n_random: int = 5, baseline: float = 0.0, seed: int = 0,
                  batch_size: int = 256) -> DeletionResult:
    """Deletion curves: mask inputs by decreasing Grad-CAM importance vs in random orders (and a control map's).

    ``cams`` (N, L) are maps over the input axis of ``x`` (N, L, ...) explaining the true classes ``y``;
    ``control_cams``, the same shape, are other maps (e.g. of a randomised model) whose order is tested on the same
    model. A masked position (a feature, or a whole frame) is set to ``baseline``: 0, the training mean.
    Saved from chapter 8, section 8.7 (book/08_gradcam.ipynb).
    """
    x, y, cams = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=int), np.asarray(cams, dtype=np.float64)
    n, length = cams.shape
    if x.shape[:2] != (n, length) or (control_cams is not None and np.shape(control_cams) != cams.shape):
        raise ValueError(f"maps {cams.shape} (control {np.shape(control_cams)}) do not match inputs {x.shape}")
    rng = np.random.default_rng(seed)
    counts = np.unique(np.round(np.linspace(0, length, steps + 1)).astype(int))  # positions masked per step
    per_cam = masked_probs(model, x, order_by_map(cams, rng), counts, y, baseline, batch_size)  # (N, steps)
    rand = np.stack([masked_probs(model, x, np.stack([rng.permutation(length) for _ in range(n)]), counts, y,
                                  baseline, batch_size) for _ in range(n_random)])  # (R, N, steps)
    per_control = None if control_cams is None else masked_probs(
        model, x, order_by_map(control_cams, rng), counts, y, baseline, batch_size)
    return DeletionResult(fractions=counts / length, cam=per_cam.mean(axis=0), random=rand.mean(axis=(0, 1)),
                          random_sd=rand.mean(axis=1).std(axis=0), n_samples=n, n_random=n_random,
                          per_sample_cam=per_cam, per_sample_random=rand.mean(axis=0), per_sample_control=per_control)


def randomised_copy(model, seed: int = 0):
    """A copy of ``model``, same layers and layer names (``last_conv`` included), with every weight re-drawn.

    ``clone_model`` rebuilds each layer from its configuration, so its weights come fresh from the layer's own
    initialisers (Glorot for kernels, zeros for biases, ones for batch-norm scales); ``set_random_seed`` makes
    the draw repeatable (it seeds Keras, NumPy's global generator and Python's, as training does).
    Saved from chapter 8, section 8.8 (book/08_gradcam.ipynb).
    """
    import keras

    keras.utils.set_random_seed(int(seed))
    copy = keras.models.clone_model(model)
    _find_layer(copy, LAST_CONV)  # Grad-CAM must still find its layer
    return copy


def map_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation between ``a[i]`` and ``b[i]``, the two maps of clip ``i`` (NaN if one is flat).

    Saved from chapter 8, section 8.8 (book/08_gradcam.ipynb).
    """
    from scipy.stats import spearmanr

    a, b = np.atleast_2d(a), np.atleast_2d(b)
    flat = (np.ptp(a, axis=1) == 0) | (np.ptp(b, axis=1) == 0)
    return np.array([np.nan if f else spearmanr(u, v).statistic for u, v, f in zip(a, b, flat)], dtype=np.float64)


def stratified_sample(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` row indices drawn at random, taking the classes of ``y`` in turn (sorted indices).

    Saved from chapter 8, section 8.7 (book/08_gradcam.ipynb).
    """
    rng = np.random.default_rng(seed)
    pools = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    turns = [pool[k] for k in range(max(map(len, pools))) for pool in pools if k < len(pool)]
    return np.sort(np.array(turns[:n]))


# --- the chapter's models ---------------------------------------------------------------


@dataclass
class ExplainedModel:
    """A trained Keras model with what Grad-CAM needs: its sidecar, fold and standardised test inputs."""

    name: str
    model: object = field(repr=False)
    sidecar: dict = field(repr=False)
    path: Path
    split: object = field(repr=False)
    record: dict | None = field(default=None, repr=False)
    trained_now: bool = False
    x_test: np.ndarray | None = field(default=None, repr=False)
    y_test: np.ndarray | None = field(default=None, repr=False)
    test_ids: np.ndarray | None = field(default=None, repr=False)
    raw_test: np.ndarray | None = field(default=None, repr=False)  # un-standardised features of the test clips

    @property
    def input_kind(self) -> str:
        return self.sidecar["input"]


def ensure_model(ch, model: str = "hybrid", protocol: str | None = None, seed: int | None = None, *,
                 options: dict | None = None, fold: int = 0, epochs: int | None = None) -> ExplainedModel:
    """Load the saved ``model`` of ``fold`` for (protocol, seed) from ``<artifacts>/models``, training it if needed.

    Trains through :func:`ser_utils.experiments.run_experiment` (which also
    writes the results file) when the model or its results file is missing, or
    when the saved model was trained on other features. Returns the model with
    its fold's test clips standardised as in training (train-only statistics).
    """
    from .evaluation import result_path
    from .experiments import run_grid
    from .training import bundle_problem, load_model_bundle, model_path, prepare_inputs, variant_name

    protocol = protocol or ch.ctx.protocol
    seed = ch.ctx.seed if seed is None else seed
    name = variant_name(model, options)
    split = ch.splits(protocol, seed)[fold]
    path = model_path(ch.ctx.artifacts_dir / "models", name, split, seed)
    rec_path = result_path(ch.ctx.artifacts_dir, name, protocol, seed)
    # Reused only when whole (not cut short by a kill) and trained on these features of this data.
    problem = bundle_problem(path, feature_key=ch.feature_config.key(), data_key=ch.features.data_key)
    fresh = problem is None
    trained_now = not (fresh and rec_path.exists())
    # The canonical variant name carries the options, so the results file and the model file agree.
    record = run_grid(ch, [name], [protocol], [seed], skip_existing=fresh, epochs=epochs, progress=False)[0]
    net, sidecar = load_model_bundle(path)
    fs = ch.features
    idx = fs.index(split.test)
    raw = fs.vectors[idx] if sidecar["input"] == "vector" else fs.frames[idx]
    return ExplainedModel(name=name, model=net, sidecar=sidecar, path=path, split=split, record=record,
                          trained_now=trained_now, x_test=prepare_inputs(raw, sidecar), y_test=fs.labels[idx],
                          test_ids=fs.ids[idx], raw_test=raw)


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


def show_clip(em: ExplainedModel, i: int, manifest, *, sr: int = 16000) -> None:
    """Display the Grad-CAM of the *predicted* class for test clip ``i`` of ``em``, then an audio player.

    Vector models: importance over the 187 positions and per group; frame
    models: importance over time on the clip's log-mel spectrogram.
    """
    import matplotlib.pyplot as plt
    from IPython.display import Audio, display

    from . import plots
    from .data import load_clip

    cams, probs = grad_cam(em.model, em.x_test[i : i + 1])
    cid, true, pred = em.test_ids[i], EMOTIONS[em.y_test[i]], EMOTIONS[int(probs[0].argmax())]
    title = f"{em.name}: {cid} (true {true}, predicted {pred}, p={probs[0].max():.2f})"
    if em.input_kind == "vector":
        fig = plots.cam_vector_figure(cams[0], group_importance(cams), title=title)
    else:
        fig = plots.cam_spectrogram_figure(em.raw_test[i][:, FEATURE_GROUPS["mel"]], cams[0], title=title)
    display(fig)
    plt.close(fig)
    path = manifest.set_index("clip_id").loc[cid, "path"]
    display(Audio(load_clip(path, sr), rate=sr))


# --- the reference run: Grad-CAM over several seeds, with the randomised-weights control -------------


#: The models of the reference run (as in chapter 8): results name -> (model family, options).
REFERENCE_MODELS = {"hybrid": ("hybrid", {"input": "vector"}), "cnn": ("cnn", {"input": "vector"}),
                    "hybrid-frames": ("hybrid", {"input": "frames"})}
REFERENCE_SCHEMA = 1
TIME_BINS = 10  # a frame model's per-emotion map is summarised as its mean over this many equal stretches of time


def _spread(values) -> dict:
    """Mean, sd (ddof 1; 0 for one value) and n of the finite ``values``."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if not len(v):
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": round(float(v.mean()), 4), "sd": round(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 4),
            "n": int(len(v))}


def _group_shares(cams: np.ndarray) -> dict:
    return {g: _spread(v) for g, v in group_importance(cams, share=True).items()}


def _per_emotion(cams: np.ndarray, labels: np.ndarray, input_kind: str) -> dict:
    """Per true emotion: clip count and, for vector maps, the group shares; for frame maps, the mean time profile."""
    out = {}
    for c, emotion in enumerate(EMOTIONS):
        rows = cams[labels == c]
        if not len(rows):
            continue
        if input_kind == "vector":
            summary = {g: round(float(v.mean()), 4) for g, v in group_importance(rows, share=True).items()}
            out[emotion] = {"n": int(len(rows)), "group_share": summary}
        else:
            bins = np.array_split(rows.mean(axis=0), TIME_BINS)
            out[emotion] = {"n": int(len(rows)), "time_profile": [round(float(b.mean()), 4) for b in bins]}
    return out


def explain_reference(ch, name: str, seed: int, *, protocol: str = "random", n_clips: int = 300, steps: int = 20,
                      n_random: int = 5, epochs: int | None = None) -> dict:
    """Grad-CAM of one saved model (trained when missing) with the deletion test and the randomised-weights control.

    Maps of the true class for every test clip, of the trained model and of :func:`randomised_copy` (seeded
    with ``seed``); the deletion test on the trained model over a stratified sample of ``n_clips`` test clips,
    ordering inputs by the trained map, by random orders and by the randomised model's map; the Spearman
    similarity of the two maps per clip; group shares (vector models) and per-emotion summaries.
    Returns the record written by :func:`write_reference`.
    """
    import time

    from .evaluation import dataset_info, git_commit, library_versions

    t0 = time.time()
    family, options = REFERENCE_MODELS[name]
    em = ensure_model(ch, family, protocol, seed, options=options, epochs=epochs)
    cams, probs = grad_cam(em.model, em.x_test, class_idx=em.y_test)
    shuffled = randomised_copy(em.model, seed)
    rcams, rprobs = grad_cam(shuffled, em.x_test, class_idx=em.y_test)
    pick = stratified_sample(em.y_test, min(len(em.y_test), n_clips), seed)
    res = deletion_test(em.model, em.x_test[pick], em.y_test[pick], cams[pick], control_cams=rcams[pick],
                        steps=steps, n_random=n_random, seed=seed)
    curves = {"fractions": res.fractions, "cam": res.cam, "random": res.random, "random_sd": res.random_sd,
              "control": res.control}
    rec = {
        "schema": REFERENCE_SCHEMA, "kind": "gradcam-reference", "model": em.name, "protocol": protocol,
        "seed": int(seed), "input": em.input_kind, "dataset": dataset_info(ch.ctx, len(ch.features)),
        "artifacts_dir": str(ch.ctx.artifacts_dir), "model_file": em.path.name, "trained_now": em.trained_now, "n_test": int(len(em.y_test)),
        "test_accuracy": round(float((probs.argmax(axis=1) == em.y_test).mean()), 4), "explained_class": "true",
        "deletion": {**res.summary(), "steps": steps, "n_random": n_random, "baseline": 0.0,
                     "curves": {k: [round(float(v), 4) for v in c] for k, c in curves.items()}},
        "control": {"method": "randomised weights: keras.models.clone_model, every weight re-drawn from its "
                              "initialiser (Adebayo et al. 2018)", "weights_seed": int(seed),
                    "randomised_test_accuracy": round(float((rprobs.argmax(axis=1) == em.y_test).mean()), 4),
                    "spearman_trained_vs_randomised": _spread(map_similarity(cams, rcams))},
        "groups": None, "per_emotion": _per_emotion(cams, em.y_test, em.input_kind),
    }
    if em.input_kind == "vector":
        rec["groups"] = {"trained": _group_shares(cams), "randomised": _group_shares(rcams)}
    rec |= {"wall_time_s": round(time.time() - t0, 1), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": library_versions(), "git_commit": git_commit()}
    return rec


def reference_path(out_dir: str | Path, model: str, protocol: str, seed: int) -> Path:
    """``<out_dir>/<model>__<protocol>__seed<k>.json``."""
    return Path(out_dir) / f"{model}__{protocol}__seed{int(seed)}.json"


def write_reference(rec: dict, out_dir: str | Path) -> Path:
    """Write one record of :func:`explain_reference` atomically; return its path."""
    from .outputs import atomic_write

    path = reference_path(out_dir, rec["model"], rec["protocol"], rec["seed"])
    with atomic_write(path, what="Grad-CAM reference record") as tmp:
        tmp.write_text(json.dumps(rec, indent=1) + "\n", encoding="utf-8")
    return path


def load_references(out_dir: str | Path) -> list[dict]:
    """Every record of a reference folder (``*__*__seed*.json`` of kind ``gradcam-reference``), sorted."""
    recs = []
    for path in sorted(Path(out_dir).glob("*__*__seed*.json")):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and rec.get("kind") == "gradcam-reference":
            recs.append(rec)
    return recs


def _counts(values) -> dict:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def reference_summary(records: list[dict]) -> list[dict]:
    """One row per (model, protocol) across seeds: mean and sd of the deletion numbers, verdict counts, controls."""
    rows = []
    keys = sorted({(r["model"], r["protocol"]) for r in records},
                  key=lambda k: (list(REFERENCE_MODELS).index(k[0]) if k[0] in REFERENCE_MODELS else 99, k))
    for model, protocol in keys:
        rs = sorted((r for r in records if (r["model"], r["protocol"]) == (model, protocol)), key=lambda r: r["seed"])
        d = [r["deletion"] for r in rs]
        row = {"model": model, "protocol": protocol, "input": rs[0]["input"], "seeds": [r["seed"] for r in rs],
               "dataset": rs[0]["dataset"], "test_accuracy": _spread(r["test_accuracy"] for r in rs),
               "n_samples": [x["n_samples"] for x in d]}
        for key in ("area_between", "relative_gain", "control_area_between", "control_relative_gain",
                    "cam_vs_control_area_between", "cam_vs_control_relative_gain"):
            row[key] = _spread(x.get(key) for x in d)
        for key in ("verdict", "control_verdict", "cam_vs_control_verdict"):
            row[key + "s"] = _counts(x.get(key) for x in d)
        row["spearman"] = _spread(r["control"]["spearman_trained_vs_randomised"]["mean"] for r in rs)
        if rs[0].get("groups"):
            row["group_share"] = {g: _spread(r["groups"]["trained"][g]["mean"] for r in rs)
                                  for g in FEATURE_GROUPS}
        rows.append(row)
    return rows


def summary_markdown(rows: list[dict]) -> str:
    """The summary rows as a Markdown table (mean +- sd over seeds)."""
    def pm(s: dict, digits: int = 3) -> str:
        return "n/a" if s["mean"] is None else f"{s['mean']:+.{digits}f} ± {s['sd']:.{digits}f}"

    def counts(c: dict) -> str:
        return ", ".join(f"{v}× {k}" for k, v in c.items())

    lines = ["| model | seeds | area between (random − Grad-CAM) | relative gain | verdicts | randomised-model map "
             "vs random | Grad-CAM vs randomised-model map | Spearman (trained, randomised) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {len(r['seeds'])} | {pm(r['area_between'])} | {pm(r['relative_gain'])} | "
                     f"{counts(r['verdicts'])} | {pm(r['control_area_between'])} | "
                     f"{pm(r['cam_vs_control_area_between'])} ({counts(r['cam_vs_control_verdicts'])}) | "
                     f"{pm(r['spearman'], 2)} |")
    return "\n".join(lines) + "\n"


def gradcam_reference(ch, out_dir: str | Path, seeds, models=tuple(REFERENCE_MODELS), *, protocol: str = "random",
                      n_clips: int = 300, steps: int = 20, n_random: int = 5, epochs: int | None = None,
                      progress: bool = True) -> list[Path]:
    """Run :func:`explain_reference` for every model and seed, write one JSON each plus ``summary.json``/``.md``."""
    from .outputs import atomic_write

    paths, records = [], []
    for seed in seeds:
        for name in models:
            rec = explain_reference(ch, name, seed, protocol=protocol, n_clips=n_clips, steps=steps,
                                    n_random=n_random, epochs=epochs)
            paths.append(write_reference(rec, out_dir))
            records.append(rec)
            if progress:
                d = rec["deletion"]
                print(f"{name:14s} seed {seed}: area between {d['area_between']:+.4f} [{d['ci95_low']:+.4f}, "
                      f"{d['ci95_high']:+.4f}] gain {d['relative_gain']:+.3f} {d['verdict']}; randomised map "
                      f"{d['control_area_between']:+.4f} ({d['control_verdict']}); Grad-CAM vs randomised "
                      f"{d['cam_vs_control_area_between']:+.4f} ({d['cam_vs_control_verdict']}); "
                      f"{rec['wall_time_s']:.0f} s", flush=True)
    rows = reference_summary(load_references(out_dir))
    for suffix, text in ((".json", json.dumps(rows, indent=1) + "\n"), (".md", summary_markdown(rows))):
        with atomic_write(Path(out_dir) / f"summary{suffix}", what="Grad-CAM reference summary") as tmp:
            tmp.write_text(text, encoding="utf-8")
        paths.append(Path(out_dir) / f"summary{suffix}")
    return paths
