"""Reading a frozen pretrained encoder (chapter 10): linear probes per layer, layer choice, a layer-weighted head.

The encoder is frozen; only a small classifier is trained on its pooled
outputs (:class:`~ser_utils.encoders.EmbeddingSet`). Three read-outs:

- :func:`probe_fold`: a standardised logistic regression on one layer
  (``C = PROBE_C``, fixed in advance, not tuned on any test clip);
- :func:`select_layer`: the layer chosen by grouped cross-validation over the
  *training* speakers only (at least two are needed; TESS's speaker protocol
  has one, so there the layer is fixed by a rule stated before looking at the
  test actress, e.g. the layer chosen on another corpus);
- :func:`weighted_fold`: SUPERB's read-out, a softmax-weighted sum of all
  layers learned with the classifier (PyTorch), early-stopped on the fold's
  validation clips (training side only).

Every fold returns a :class:`~ser_utils.evaluation.FoldResult` scored over the
emotions the protocol keeps, so the results files are like every other model's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .encoders import EmbeddingSet
from .evaluation import FoldResult, compute_metrics
from .labels import EMOTIONS
from .splits import Split

#: The logistic regression's inverse regularisation, fixed before any test score was seen (strong: 384-768
#: correlated inputs and a few hundred clips per speaker).
PROBE_C = 0.01


@dataclass(frozen=True)
class Readout:
    """What is read from the encoder: a layer (an index), pooled by ``mean`` or ``mean+std``."""

    layer: int
    with_std: bool = False

    @property
    def name(self) -> str:
        return f"layer{self.layer}" + ("-meanstd" if self.with_std else "")


def _rows(emb: EmbeddingSet, ids: Sequence[str], emotions: Sequence[str]) -> np.ndarray:
    idx = emb.index(ids)
    keep = emb.meta["emotion"].to_numpy()[idx]
    return idx[np.isin(keep, list(emotions))]


def _labels(emb: EmbeddingSet, idx: np.ndarray) -> np.ndarray:
    return emb.meta["emotion"].map(EMOTIONS.index).to_numpy()[idx]


def _logreg(seed: int = 0, C: float = PROBE_C):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000, random_state=seed))


def probe_fold(emb: EmbeddingSet, split: Split, readout: Readout, emotions: Sequence[str] = EMOTIONS, *,
               seed: int = 0) -> FoldResult:
    """Fit the logistic-regression probe on ``split``'s training clips (validation unused) and predict its test clips.

    The scaler's statistics come from the training clips only (strict).
    """
    from .workers import one_blas_thread

    tr, te = _rows(emb, split.train, emotions), _rows(emb, split.test, emotions)
    x = emb.layer(readout.layer, with_std=readout.with_std)
    with one_blas_thread():
        clf = _logreg(seed).fit(x[tr], _labels(emb, tr))
        pred = clf.predict(x[te])
    return FoldResult(split.fold, list(emb.ids[te]), _labels(emb, te).tolist(), pred.tolist(), len(tr),
                      len(_rows(emb, split.val, emotions)), classes=_classes(emotions),
                      extra={"readout": readout.name})


def fit_readout(emb: EmbeddingSet, ids: Sequence[str], layer: int, emotions: Sequence[str] = EMOTIONS, *,
                seed: int = 0) -> tuple[object, np.ndarray]:
    """The probe of :func:`probe_fold` fitted on the clips ``ids`` of ``emotions``, labelled by emotion name.

    Returns the classifier (its ``classes_`` are emotion names, as a saved
    probe's are) and the rows it was fitted on.
    """
    from .workers import one_blas_thread

    rows = _rows(emb, ids, emotions)
    with one_blas_thread():
        clf = _logreg(seed).fit(emb.mean[rows, layer], emb.meta["emotion"].to_numpy()[rows])
    return clf, rows


def _classes(emotions: Sequence[str]) -> list[int] | None:
    return None if set(emotions) == set(EMOTIONS) else sorted(EMOTIONS.index(e) for e in emotions)


def layer_curve(emb: EmbeddingSet, splits: Sequence[Split], emotions: Sequence[str] = EMOTIONS, *,
                with_std: bool = False) -> pd.DataFrame:
    """The probe's test UAR of every layer on every fold: columns ``layer``, ``fold``, ``uar``.

    This is the *test-chosen* view: picking the best row after the fact uses
    the test speakers, so it is only an upper bound on what a layer choice can
    give, and is labelled so wherever it is shown.
    """
    rows = []
    classes = _classes(emotions)
    for k in range(emb.mean.shape[1]):
        for s in splits:
            f = probe_fold(emb, s, Readout(k, with_std), emotions)
            uar = compute_metrics(f.y_true, f.y_pred, classes=classes)["uar"]
            rows.append({"layer": k, "fold": s.fold, "uar": 100 * uar})
    return pd.DataFrame(rows)


def select_layer(emb: EmbeddingSet, split: Split, emotions: Sequence[str] = EMOTIONS, *, n_inner: int = 4,
                 with_std: bool = False) -> tuple[int, pd.DataFrame]:
    """The layer whose probe scores best across the *training* speakers of ``split``; test clips never seen.

    Grouped K-fold over the training (and validation) speakers: each inner
    fold holds out whole speakers, so the choice rewards layers that carry
    over to a new voice. Needs at least two training speakers
    (:class:`ValueError` otherwise). Returns the layer and the inner scores.
    """
    from sklearn.model_selection import GroupKFold

    from .workers import one_blas_thread

    idx = _rows(emb, tuple(split.train) + tuple(split.val), emotions)
    speakers = emb.meta["speaker"].astype(str).to_numpy()[idx]
    n_spk = len(set(speakers))
    if n_spk < 2:
        raise ValueError(f"choosing a layer across speakers needs at least 2 training speakers; {split.fold} has "
                         f"{n_spk}: fix the layer by a rule stated in advance instead")
    y = _labels(emb, idx)
    classes = _classes(emotions)
    rows = []
    inner = GroupKFold(n_splits=min(n_inner, n_spk))
    for k in range(emb.mean.shape[1]):
        x = emb.layer(k, with_std=with_std)[idx]
        scores = []
        for a, b in inner.split(x, y, speakers):
            with one_blas_thread():
                pred = _logreg().fit(x[a], y[a]).predict(x[b])
            scores.append(100 * compute_metrics(y[b], pred, classes=classes)["uar"])
        rows.append({"layer": k, "inner_uar": float(np.mean(scores))})
    table = pd.DataFrame(rows)
    return int(table.loc[table["inner_uar"].idxmax(), "layer"]), table


def selected_fold(emb: EmbeddingSet, split: Split, emotions: Sequence[str] = EMOTIONS, *,
                  with_std: bool = False) -> FoldResult:
    """:func:`select_layer` on the training speakers, then :func:`probe_fold` with that layer."""
    layer, table = select_layer(emb, split, emotions, with_std=with_std)
    fold = probe_fold(emb, split, Readout(layer, with_std), emotions)
    fold.extra["chosen_layer"] = layer
    fold.extra["inner_uar"] = table["inner_uar"].round(2).tolist()
    return fold


@dataclass(frozen=True)
class WeightedHead:
    """The recipe of :func:`weighted_fold`: its input (each layer's mean, and its std when ``with_std``) and stopping."""

    with_std: bool = True
    epochs: int = 200  # at most
    patience: int = 20  # epochs without a lower validation loss before stopping


def weighted_fold(emb: EmbeddingSet, split: Split, emotions: Sequence[str] = EMOTIONS, *, seed: int = 0,
                  recipe: WeightedHead = WeightedHead()) -> FoldResult:
    """SUPERB's read-out: softmax layer weights and a linear classifier learned together, on the training clips.

    Each layer is standardised with the training clips' statistics; the
    weighted sum of the layers feeds a dropout and a linear layer (PyTorch,
    AdamW; the layer weights get a larger learning rate than the classifier,
    or they would barely leave uniform). Early stopping on the validation
    loss (training side only: the training speaker's held-out clips, or
    held-out training actors), keeping the weights of the best epoch; the
    learned layer weights are recorded in the fold's ``extra``.
    """
    import torch

    tr, va, te = (_rows(emb, ids, emotions) for ids in (split.train, split.val, split.test))
    x = np.concatenate([emb.mean, emb.std], axis=2) if recipe.with_std else emb.mean  # (clips, layers, dim)
    mu, sd = x[tr].mean(axis=0), x[tr].std(axis=0) + 1e-6
    classes = sorted(EMOTIONS.index(e) for e in emotions)
    remap = {c: i for i, c in enumerate(classes)}
    y_all = np.full(len(emb), -1)  # class position among ``classes``; -1 for clips of other emotions
    keep = np.flatnonzero(np.isin(emb.meta["emotion"].to_numpy(), list(emotions)))
    y_all[keep] = [remap[c] for c in _labels(emb, keep)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a few thousand 384-d rows: one thread is fastest, and does not fight the others
    try:
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        xt = {n: torch.tensor((x[i] - mu) / sd, dtype=torch.float32) for n, i in (("tr", tr), ("va", va), ("te", te))}
        yt = {n: torch.tensor(y_all[i]) for n, i in (("tr", tr), ("va", va))}
        n_layers, dim = x.shape[1], x.shape[2]
        logits_w = torch.zeros(n_layers, requires_grad=True)
        head = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(dim, len(classes)))
        opt = torch.optim.AdamW([{"params": [logits_w], "lr": 5e-2, "weight_decay": 0.0},
                                 {"params": head.parameters(), "lr": 1e-3, "weight_decay": 1e-2}])

        def forward(inp):
            return head(torch.einsum("l,nld->nd", torch.softmax(logits_w, dim=0), inp))

        best, best_state, waited = float("inf"), None, 0
        for _ in range(recipe.epochs):
            head.train()
            for b in torch.randperm(len(tr), generator=g).split(64):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(forward(xt["tr"][b]), yt["tr"][b]).backward()
                opt.step()
            head.eval()
            with torch.no_grad():
                loss = torch.nn.functional.cross_entropy(forward(xt["va"]), yt["va"]).item() if len(va) else 0.0
            if loss < best - 1e-4:
                best, waited = loss, 0
                best_state = (logits_w.detach().clone(), {k: v.clone() for k, v in head.state_dict().items()})
            else:
                waited += 1
                if waited >= recipe.patience:
                    break
        with torch.no_grad():
            logits_w.copy_(best_state[0])
            head.load_state_dict(best_state[1])
            head.eval()
            pred = forward(xt["te"]).argmax(1).numpy()
            weights = torch.softmax(logits_w, 0).numpy()
    finally:
        torch.set_num_threads(threads)
    return FoldResult(split.fold, list(emb.ids[te]), _labels(emb, te).tolist(), [classes[p] for p in pred],
                      len(tr), len(va), classes=_classes(emotions),
                      extra={"layer_weights": [round(float(w), 4) for w in weights], "val_loss": round(best, 4)})
