"""The deletion test: is a Grad-CAM map faithful to the model it explains?

:func:`deletion_test` masks input positions (sets them to 0, the training
mean after standardisation) in order of map importance and in random orders,
and records the true-class probability. A faithful map makes it fall faster
than random; the area between the two curves is reported, and a map no better
than random shows up as an area near zero (or below). :func:`randomised_copy`
gives the control of Adebayo et al. (2018): the same network with re-drawn
weights, whose map a faithful explanation must beat too.

Literate: written and explained in chapter 8, sections 8.7-8.8 (``#@save deletion``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .gradcam import _find_layer
from .registry import LAST_CONV


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
