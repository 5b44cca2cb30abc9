"""Showing a trained model's results in a chapter: curves, confusions, per-class scores, errors, protocols.

Chapters 3-5 (CNN, LSTM, hybrid) present their model the same way; the
repeated logic lives here so each chapter cell stays one or two lines:

- :func:`show_results`: learning curves (one row per fold), the confusion
  matrix and the per-class table of one results record;
- :func:`per_class_table`, :func:`top_confusions`, :func:`misclassified`:
  the tables behind it, from the record alone (pooled over folds);
- :func:`play_clip`, :func:`play_error`: listen to a clip, or to a mistake beside
  the same word really spoken in the emotion the model chose;
- :func:`fold_table`: every fold's score (both directions of the speaker protocol);
- :func:`protocol_table`: a model and its baseline under several protocols,
  with the paper's figure only where it applies (the paper reports the random
  split only).

What a chapter trains and what it quotes is decided in :mod:`.plan`.

Everything reads results records (:mod:`ser_utils.evaluation`), so the same
functions work on records loaded from disk.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..labels import EMOTIONS
from ..paper import PAPER_ACCURACY, PAPER_PROTOCOL


def protocol_table(records: Sequence[dict], paper: dict[str, float] = PAPER_ACCURACY) -> pd.DataFrame:
    """Accuracy, macro-F1 and UAR in % (mean ± sd over seeds) per model and protocol, with the paper's figure.

    ``paper_accuracy`` is filled only on rows of the paper's protocol (random
    split) for the model it names: the paper has no speaker- or word-independent
    score, so nothing is set beside those rows. Also reports the mean training
    wall time per seed (all folds).
    """
    from ..evaluation import SUMMARY_METRICS, score_summary

    table = score_summary(list(records))
    if table.empty:
        return table
    # Runs on different data (e.g. TESS's 1400-clip half and all 2800 clips) are separate rows, named.
    keys = (["dataset"] if table["dataset"].nunique() > 1 else []) + ["model", "protocol"]
    out = table[[*keys, *(f"{m}_{s}" for m in SUMMARY_METRICS for s in ("mean", "sd"))]].round(2)
    out["seeds"] = table["n_seeds"]
    out["wall_time_s"] = table["wall_time_s"].round(1)
    # NaN (not None) where the paper has no figure, so every table shows a missing value the same way.
    out["paper_accuracy"] = [paper.get(m, np.nan) if p == PAPER_PROTOCOL else np.nan
                             for m, p in zip(out["model"], out["protocol"], strict=True)]
    return out


def per_class_table(record: dict) -> pd.DataFrame:
    """Precision, recall, F1 (%) and support per emotion, from the record's confusion matrix (pooled over folds)."""
    from sklearn.metrics import precision_recall_fscore_support

    cm = np.asarray(record["confusion"], dtype=int)
    k = len(EMOTIONS)
    # The (true, predicted) pairs the pooled confusion matrix counts, one per test clip.
    y_true, y_pred = np.repeat(np.arange(k), k).repeat(cm.ravel()), np.tile(np.arange(k), k).repeat(cm.ravel())
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=np.arange(k),
                                                                     zero_division=0)
    return pd.DataFrame({"precision": precision * 100, "recall": recall * 100, "f1": f1 * 100,
                         "support": support.astype(int)}, index=pd.Index(EMOTIONS, name="emotion")).round(1)


def top_confusions(record: dict, k: int = 5) -> pd.DataFrame:
    """The ``k`` most frequent (true, predicted) mistakes, pooled over folds, largest first."""
    cm = np.asarray(record["confusion"], dtype=int)
    rows = [{"true": EMOTIONS[i], "predicted": EMOTIONS[j], "clips": int(cm[i, j]),
             "share of true class (%)": round(100 * cm[i, j] / max(cm[i].sum(), 1), 1)}
            for i in range(len(EMOTIONS)) for j in range(len(EMOTIONS)) if i != j and cm[i, j]]
    df = pd.DataFrame(rows, columns=["true", "predicted", "clips", "share of true class (%)"])
    df = df.sort_values(["clips", "true", "predicted"], ascending=[False, True, True])
    return df.head(k).reset_index(drop=True)


def misclassified(record: dict, manifest: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every misclassified test clip of a record: fold, clip id, true and predicted emotion (+ speaker, word...)."""
    rows = []
    for fold in record["folds"]:
        pred = fold["predictions"]
        for cid, t, p in zip(pred["ids"], pred["y_true"], pred["y_pred"], strict=True):
            if t != p:
                rows.append({"fold": fold["fold"], "clip_id": cid, "true": EMOTIONS[t], "predicted": EMOTIONS[p]})
    df = pd.DataFrame(rows, columns=["fold", "clip_id", "true", "predicted"])
    if manifest is not None and not df.empty:
        df = df.merge(manifest[["clip_id", "speaker", "word", "duration", "path"]], on="clip_id", how="left")
    return df


def pick_error(record: dict, manifest: pd.DataFrame) -> pd.Series | None:
    """One misclassified clip worth listening to: the first clip of the most frequent confusion (or None)."""
    errors = misclassified(record, manifest)
    if errors.empty:
        return None
    top = top_confusions(record, 1).iloc[0]
    hit = errors[(errors["true"] == top["true"]) & (errors["predicted"] == top["predicted"])]
    return (hit if not hit.empty else errors).sort_values("clip_id").iloc[0]


def play_clip(manifest: pd.DataFrame, clip_id: str, *, note: str = "", sr: int = 16000) -> None:
    """Display an audio player for one clip, headed by its speaker, word, emotion and ``note``."""
    from IPython.display import HTML, Audio, display

    from ..data import load_clip

    row = manifest.set_index("clip_id").loc[clip_id]
    head = f"<b>{clip_id}</b>: speaker {row['speaker']}, word '{row['word']}', labelled <b>{row['emotion']}</b>"
    display(HTML(head + (f"; {note}" if note else "")), Audio(load_clip(row["path"], sr), rate=sr))


def play_error(record: dict, manifest: pd.DataFrame) -> pd.Series | None:
    """Play the clip :func:`pick_error` chooses, then the same speaker and word in the emotion it was mistaken for.

    Hearing the two side by side answers the useful question: is the mistake
    understandable (the two takes really sound alike) or is the model wrong
    about an obvious case? Returns the error's row, or None when there was no error.
    """
    err = pick_error(record, manifest)
    if err is None:
        print("No test clip was misclassified.")
        return None
    play_clip(manifest, err["clip_id"], note=f"the model said <b>{err['predicted']}</b> ({err['fold']})")
    other = manifest[(manifest["speaker"] == err["speaker"]) & (manifest["word"] == err["word"])
                     & (manifest["emotion"] == err["predicted"]) & (manifest["status"] == "ok")]
    if not other.empty:
        play_clip(manifest, other["clip_id"].iloc[0], note="the same word really spoken in the predicted emotion")
    return err


def fold_table(records: Sequence[dict]) -> pd.DataFrame:
    """Accuracy and UAR (%) of every fold of every record: shows both directions of the speaker protocol.

    ``epochs`` and ``best_epoch`` show whether early stopping fired: a best epoch
    equal to the maximum means the model was still improving when training stopped.
    """
    rows = [{"model": r["model"], "protocol": r["protocol"], "seed": r["seed"], "fold": f["fold"],
             "n_test": f["n_test"], "epochs": f.get("epochs"), "best_epoch": f.get("best_epoch"),
             "accuracy": round(100 * f["metrics"]["accuracy"], 2), "uar": round(100 * f["metrics"]["uar"], 2)}
            for r in records for f in r["folds"]]
    return pd.DataFrame(rows)


def show_results(record: dict, *, title: str | None = None) -> pd.DataFrame:
    """Display a record's learning curves (one row per fold) and confusion matrix; return its per-class table.

    The curves come from the Keras history saved in the record (baselines have
    none and get no curves). The confusion matrix is row-normalised and pooled
    over folds; its title names the model, protocol, seed and dataset.
    """
    from IPython.display import display

    from ..plots import confusion_heatmap, learning_curves

    title = title or f"{record['model']}, {record['protocol']} protocol, seed {record['seed']}"
    data = "demo corpus" if record["dataset"].get("synthetic") else record["dataset"]["name"].upper()
    for fold in record["folds"]:
        if fold.get("history"):
            fig = learning_curves(fold["history"], title=f"{record['model']} ({fold['fold']})")
            best = fold.get("best_epoch")
            if best:
                for ax in fig.axes:
                    ax.axvline(best, color="grey", ls=":", lw=1)
                fig.axes[0].set_xlabel(f"epoch (dotted: best validation epoch {best}, weights restored)")
            display(fig)
            plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    confusion_heatmap(record["confusion"], title=f"{title}\n({data}, rows sum to 1)", ax=ax)
    fig.tight_layout()
    display(fig)
    plt.close(fig)
    return per_class_table(record)


def warp_figure(fs, clip_id: str, alphas: Sequence[float] = (1 / 1.15, 1.0, 1.15)) -> plt.Figure:
    """The log-mel frames of one clip after :func:`ser_utils.training.warp_frequency` with each factor.

    Shows what the ``augment`` option does to a training clip: the spectrum
    (harmonics and formants alike) slides down for ``alpha < 1`` (a longer,
    lower voice) and up for ``alpha > 1``.
    """
    from ..features import FEATURE_GROUPS
    from ..training import warp_frequency

    frames = fs.frames[fs.index([clip_id])[0]]
    fig, axes = plt.subplots(1, len(alphas), figsize=(4 * len(alphas), 3.2), sharey=True)
    for ax, a in zip(np.atleast_1d(axes), alphas, strict=True):
        mel = warp_frequency(frames, float(a), fs.config)[:, FEATURE_GROUPS["mel"]].T
        ax.imshow(mel, origin="lower", aspect="auto", cmap="magma")
        ax.grid(False)  # no theme grid lines over a spectrogram
        ax.set(title=f"warp factor {a:.2f}", xlabel="time (normalised frames)")
    np.atleast_1d(axes)[0].set_ylabel("mel band")
    fig.suptitle(f"Frequency warping of {clip_id} (log-mel part of the frames)")
    fig.tight_layout()
    return fig


# --- chapter 8: the Grad-CAM reference run over seeds ---------------------------------------------------


def gradcam_reference_table(rows: Sequence[dict]) -> pd.DataFrame:
    """The reference summary (:func:`ser_utils.gradcam.reference_summary`) as a table: mean ± sd over seeds."""
    from ..features import FEATURE_GROUPS

    def pm(s: dict, digits: int = 3) -> str:
        return "n/a" if not s or s.get("mean") is None else f"{s['mean']:+.{digits}f} ± {s['sd']:.{digits}f}"

    def counts(c: dict) -> str:
        return "; ".join(f"{v}× {k}" for k, v in c.items())

    out = []
    for r in rows:
        row = {"model": r["model"], "seeds": ", ".join(map(str, r["seeds"])),
               "test accuracy": pm(r["test_accuracy"]), "area between (random − Grad-CAM)": pm(r["area_between"]),
               "relative gain": pm(r["relative_gain"]), "verdicts": counts(r["verdicts"]),
               "randomised-model map vs random": pm(r["control_area_between"]),
               "Grad-CAM vs randomised-model map": pm(r["cam_vs_control_area_between"]),
               "verdicts vs randomised-model map": counts(r["cam_vs_control_verdicts"]),
               "Spearman (trained, randomised)": pm(r["spearman"], 2)}
        for g in FEATURE_GROUPS:
            row[f"{g} share"] = pm(r["group_share"][g]) if r.get("group_share") else "(frames)"
        out.append(row)
    return pd.DataFrame(out).set_index("model") if out else pd.DataFrame()


def gradcam_reference_figure(rows: Sequence[dict]) -> plt.Figure:
    """Bars with error bars (± sd over seeds): area between random and Grad-CAM, randomised-map vs random,
    and Grad-CAM vs the randomised model's map, per model."""
    series = (("area_between", "Grad-CAM vs random"), ("control_area_between", "randomised-model map vs random"),
              ("cam_vs_control_area_between", "Grad-CAM vs randomised-model map"))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / len(series)
    for k, (key, label) in enumerate(series):
        means = [r[key]["mean"] or 0.0 for r in rows]
        sds = [r[key]["sd"] or 0.0 for r in rows]
        ax.bar(np.arange(len(rows)) + (k - 1) * width, means, width, yerr=sds, capsize=3, label=label)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(rows)), [f"{r['model']}\n({len(r['seeds'])} seeds)" for r in rows])
    ax.set(ylabel="area between deletion curves", title="Deletion test over seeds (mean ± sd; > 0: first order "
           "deletes evidence faster)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def gradcam_reference_findings(rows: Sequence[dict], model: str = "hybrid") -> str:
    """Sentences, generated from the summary rows only, on whether the maps of ``model`` pass both checks."""
    row = next((r for r in rows if r["model"] == model), None)
    if row is None:
        return f"The reference run holds no `{model}` records, so it says nothing about the paper's model."
    n = len(row["seeds"])
    good = row["verdicts"].get("better than random", 0)
    beats = row["cam_vs_control_verdicts"].get("better than the randomised-model maps", 0)
    ab, ctrl, rel = row["area_between"], row["cam_vs_control_area_between"], row["relative_gain"]
    data = "the synthetic demo corpus (not TESS)" if row["dataset"].get("synthetic") else (
        "real TESS, a partial set" if row["dataset"].get("partial") else "real TESS")
    text = (f"On {data} ({row['dataset'].get('n_clips')} clips, {row['protocol']} protocol, seeds "
            f"{', '.join(map(str, row['seeds']))}), the `{model}` Grad-CAM was better than random in {good} of {n} "
            f"seeds (area between {ab['mean']:+.3f} ± {ab['sd']:.3f}, relative gain {rel['mean']:.1%} ± "
            f"{rel['sd']:.1%}) and better than the randomised-weights model's maps in {beats} of {n} "
            f"(area between {ctrl['mean']:+.3f} ± {ctrl['sd']:.3f}). ")
    if good == n and beats == n:
        return text + ("Both checks pass in every seed: the narrow part of the paper's claim, that the maps point "
                       "at inputs this model relies on, is supported; usefulness to people or clinical "
                       "reliability is not tested.")
    return text + ("At least one check fails in some seed: on these numbers even the narrow part of the paper's "
                   "claim is not supported consistently.")


def show_cam_clip(em, i: int, manifest, *, sr: int = 16000) -> None:
    """Display the Grad-CAM of the *predicted* class for test clip ``i`` of ``em`` (an
    :class:`~ser_utils.gradcam_reference.ExplainedModel`), then an audio player.

    Vector models: importance over the 187 positions and per group; frame
    models: importance over time on the clip's log-mel spectrogram.
    """
    import matplotlib.pyplot as plt
    from IPython.display import Audio, display

    from .. import plots
    from ..data import load_clip
    from ..features import FEATURE_GROUPS
    from ..gradcam import grad_cam, group_importance

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
