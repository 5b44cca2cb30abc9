"""Figures shared by the chapters (seaborn/matplotlib); every one titled and labelled.

Functions return the matplotlib ``Figure`` (or ``Axes``) so a chapter can
save it; they never call ``plt.show()`` themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .labels import EMOTION_SHORT, EMOTIONS

EMOTION_PALETTE = dict(zip(EMOTIONS, sns.color_palette("tab10", len(EMOTIONS)), strict=True))


def class_balance(manifest: pd.DataFrame, *, title_suffix: str = "") -> plt.Figure:
    """Bar chart of usable clips per emotion, one bar per speaker."""
    ok = manifest[manifest["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    sns.countplot(data=ok, x="emotion", hue="speaker", order=list(EMOTIONS), ax=ax)
    ax.set(title=f"Clips per emotion and speaker{title_suffix}", xlabel="emotion", ylabel="clips")
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    return fig


def duration_by_emotion(manifest: pd.DataFrame, *, title_suffix: str = "") -> plt.Figure:
    """Box plot of clip duration per emotion and speaker: the length leak made visible."""
    ok = manifest[manifest["status"] == "ok"].astype({"duration": float})
    fig, ax = plt.subplots(figsize=(8, 3.5))
    sns.boxplot(data=ok, x="emotion", y="duration", hue="speaker", order=list(EMOTIONS), ax=ax, fliersize=2)
    ax.set(title=f"Clip duration by emotion{title_suffix}", xlabel="emotion", ylabel="duration (s)")
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    return fig


def pick_word(manifest: pd.DataFrame, speaker: str | None = None) -> tuple[str, str]:
    """A (word, speaker) pair recorded in all seven emotions, deterministic (first in sort order)."""
    ok = manifest[manifest["status"] == "ok"]
    if speaker is not None:
        ok = ok[ok["speaker"] == speaker]
    full = ok.groupby(["speaker", "word"])["emotion"].nunique()
    full = full[full == len(EMOTIONS)].sort_index()
    if full.empty:
        raise ValueError("no word is recorded in all seven emotions by one speaker")
    spk, word = full.index[0]
    return word, spk


def word_across_emotions(
    manifest: pd.DataFrame, word: str, speaker: str, *, sr: int = 22050, trim_db: float | None = 30.0
) -> plt.Figure:
    """Waveform (top) and log-mel spectrogram (bottom) of one word in each of the 7 emotions."""
    import librosa
    import librosa.display

    from .data import load_clip

    rows = manifest[(manifest["word"] == word) & (manifest["speaker"] == speaker) & (manifest["status"] == "ok")]
    rows = rows.set_index("emotion")
    fig, axes = plt.subplots(2, len(EMOTIONS), figsize=(16, 4.8), sharey="row")
    for j, emo in enumerate(EMOTIONS):
        y = load_clip(rows.loc[emo, "path"], sr)
        if trim_db is not None:
            y, _ = librosa.effects.trim(y, top_db=trim_db)
        t = np.arange(len(y)) / sr
        axes[0, j].plot(t, y, lw=0.4, color=EMOTION_PALETTE[emo])
        axes[0, j].set(title=emo.replace("_", " "), xlabel="time (s)")
        mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=128), ref=np.max)
        librosa.display.specshow(mel, sr=sr, x_axis="time", y_axis="mel", ax=axes[1, j], cmap="magma")
        axes[1, j].grid(False)  # no theme grid lines over an image
        axes[1, j].xaxis.set_major_locator(plt.MaxNLocator(3))
        axes[1, j].set(xlabel="time (s)", ylabel="")
    axes[0, 0].set_ylabel("amplitude")
    axes[1, 0].set_ylabel("frequency (Hz, mel scale)")
    fig.suptitle(f"'{word}' spoken by {speaker} in the seven emotions (silence trimmed)")
    fig.tight_layout()
    return fig


def audio_players(manifest: pd.DataFrame, word: str, speaker: str, *, sr: int = 16000) -> None:
    """Display one labelled audio player per emotion for the given word and speaker."""
    from IPython.display import Audio, HTML, display

    from .data import load_clip

    rows = manifest[(manifest["word"] == word) & (manifest["speaker"] == speaker) & (manifest["status"] == "ok")]
    for emo in EMOTIONS:
        path = rows[rows["emotion"] == emo]["path"].iloc[0]
        display(HTML(f"<b>{emo.replace('_', ' ')}</b>"), Audio(load_clip(path, sr), rate=sr))


def confusion_heatmap(
    confusion: Sequence[Sequence[int]], *, normalise: bool = True, title: str = "Confusion matrix", ax=None,
    labels: Sequence[str] | None = None,
):
    """Seaborn heatmap of a 7x7 confusion matrix (rows: true, columns: predicted).

    ``labels`` names the rows of a smaller one (e.g. the six emotions two corpora share).
    """
    cm = np.asarray(confusion, dtype=float)
    if normalise:
        cm = cm / np.clip(cm.sum(axis=1, keepdims=True), 1, None)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 4.4))
    ticks = [EMOTION_SHORT[e] for e in (labels or EMOTIONS)]
    sns.heatmap(cm, annot=True, fmt=".2f" if normalise else ".0f", cmap="Blues", vmin=0,
                vmax=1 if normalise else None, xticklabels=ticks, yticklabels=ticks, cbar=False, ax=ax)
    ax.set(title=title, xlabel="predicted", ylabel="true")
    return ax


def learning_curves(history: dict, *, title: str = "Learning curves") -> plt.Figure:
    """Loss and accuracy per epoch for training and validation, from a Keras-style history dict."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, style in (("", "-"), ("val_", "--")):
            if prefix + key in history:
                ax.plot(np.arange(1, len(history[prefix + key]) + 1), history[prefix + key], style,
                        label="validation" if prefix else "training")
        ax.set(title=f"{title}: {key}", xlabel="epoch", ylabel=key)
        ax.legend()
    fig.tight_layout()
    return fig


def scores_bar(table: pd.DataFrame, *, metric: str = "accuracy_mean", title: str = "Scores by protocol") -> plt.Figure:
    """Grouped bars of a metric (in %) per model, one colour per protocol, with the spread over seeds.

    Error bars are the sd over seeds (the ``<metric>_sd`` column); a model run
    with one seed has none. Hatched bars mark models that standardise with the
    test speaker's unlabelled statistics (``-spknorm``), a different setting
    from the strict models beside them.
    """
    from matplotlib.patches import Patch

    from .registry import ModelSpec

    models = list(dict.fromkeys(table["model"]))
    protocols = list(dict.fromkeys(table["protocol"]))
    colours = dict(zip(protocols, sns.color_palette(n_colors=len(protocols)), strict=True))
    width = 0.8 / len(protocols)
    sd = metric.replace("_mean", "_sd")
    fig, ax = plt.subplots(figsize=(max(9, 0.75 * len(models) + 3), 4.2))
    for j, protocol in enumerate(protocols):
        rows = table[table["protocol"] == protocol].drop_duplicates("model").set_index("model")
        for i, model in enumerate(models):
            if model not in rows.index:
                continue
            spread = rows.at[model, sd] if sd in rows.columns else np.nan
            spec = ModelSpec.parse_or_none(model)
            ax.bar(i + (j - (len(protocols) - 1) / 2) * width, rows.at[model, metric], width,
                   yerr=None if pd.isna(spread) else spread, capsize=2, color=colours[protocol],
                   hatch="///" if spec and spec.uses_test_speaker else None, edgecolor="white", linewidth=0)
    ax.set_xticks(range(len(models)), models, rotation=35, ha="right")  # variant names are long
    names = {"uar": "UAR", "accuracy": "accuracy", "f1_macro": "macro F1"}
    ylabel = names.get(metric.removesuffix("_mean"), metric.removesuffix("_mean")) + " (%)"
    ax.set(title=title, xlabel="model", ylabel=ylabel, ylim=(0, 100))
    ax.axhline(100 / len(EMOTIONS), color="grey", ls=":", lw=1)
    handles = [Patch(color=colours[p], label=p) for p in protocols]
    handles += [Patch(facecolor="lightgrey", hatch="///", label="uses test speaker's statistics"),
                plt.Line2D([], [], color="grey", ls=":", label="chance")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    return fig


# --- comparison (chapter 7) and Grad-CAM (chapter 8) ------------------------------------


def confusion_grid(confusions: dict, *, title: str = "Confusion matrices", ncols: int = 3,
                   labels: Sequence[str] | None = None) -> plt.Figure:
    """Row-normalised confusion matrices of several models side by side (``{model: 7x7 counts}``).

    Three to a row at most by default: a page is about 8 inches wide, and four 7x7 grids with their
    annotations shrank to unreadable there.
    """
    n = max(1, len(confusions))
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.4 * nrows), squeeze=False)
    for ax, (name, cm) in zip(axes.flat, confusions.items()):
        confusion_heatmap(cm, title=name, ax=ax, labels=labels)
    for ax in list(axes.flat)[len(confusions):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _shade_groups(ax, length: int = 187) -> None:
    """Shade and label the feature groups (chroma/mel/contrast/MFCC) along a 187-position x axis."""
    from .features import FEATURE_GROUPS

    colours = sns.color_palette("pastel", len(FEATURE_GROUPS))
    for (name, sl), colour in zip(FEATURE_GROUPS.items(), colours, strict=True):
        ax.axvspan(sl.start - 0.5, sl.stop - 0.5, color=colour, alpha=0.35, lw=0)
        ax.text((sl.start + sl.stop) / 2, 1.0, name, transform=ax.get_xaxis_transform(), ha="center",
                va="bottom", fontsize=8)
    ax.set_xlim(-0.5, length - 0.5)


def cam_vector_figure(cam: np.ndarray, groups: dict | None = None, *, title: str = "Grad-CAM") -> plt.Figure:
    """Grad-CAM over the 187 feature positions (groups shaded) and, if given, the mean per group."""
    fig, axes = plt.subplots(1, 2 if groups else 1, figsize=(12, 3.2), squeeze=False,
                             gridspec_kw={"width_ratios": [4, 1]} if groups else None)
    ax = axes[0, 0]
    _shade_groups(ax, len(cam))
    ax.plot(np.arange(len(cam)), cam, color="black", lw=1.2)
    ax.set(xlabel="feature position (chroma 0-11, mel 12-139, contrast 140-146, MFCC 147-186)",
           ylabel="importance (0-1)", ylim=(0, 1.05))
    ax.set_title(title, pad=14)
    if groups:
        names = list(groups)
        vals = [float(np.mean(groups[g])) for g in names]
        axes[0, 1].bar(names, vals, color=sns.color_palette("pastel", len(names)), edgecolor="grey")
        axes[0, 1].set(title="mean per group", ylabel="importance", ylim=(0, 1.05))
        axes[0, 1].tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def cam_spectrogram_figure(mel_db: np.ndarray, cam: np.ndarray, *, title: str = "Grad-CAM over time",
                           ax=None):
    """Log-mel spectrogram (frames x 128 bands, dB) with the Grad-CAM importance per frame drawn over it."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 3.4))
    t = len(cam)
    ax.imshow(np.asarray(mel_db).T, origin="lower", aspect="auto", cmap="magma", extent=(-0.5, t - 0.5, 0, 128))
    ax.set(xlabel="time (normalised frames)", ylabel="mel band", title=title)
    ax.grid(False)
    twin = ax.twinx()
    twin.fill_between(np.arange(t), cam, color="cyan", alpha=0.25)
    twin.plot(np.arange(t), cam, color="cyan", lw=1.5)
    twin.set(ylim=(0, 1.05), ylabel="Grad-CAM importance")
    twin.grid(False)
    if fig is not None:
        fig.tight_layout()
        return fig
    return ax


def deletion_curves(results: dict, *, title: str = "Deletion test: true-class probability as inputs are masked"
                    ) -> plt.Figure:
    """One panel per model: mean true-class probability vs fraction masked, Grad-CAM order vs random.

    ``results`` maps a model name to a :class:`ser_utils.deletion.DeletionResult`.
    The shaded band is the random curve +- 1 sd over random orders.
    """
    n = max(1, len(results))
    fig, axes = plt.subplots(1, n, figsize=(4.3 * n, 3.4), squeeze=False, sharey=True)
    for ax, (name, res) in zip(axes.flat, results.items()):
        ax.plot(res.fractions, res.cam, "-o", ms=3, label="Grad-CAM order")
        ax.plot(res.fractions, res.random, "--", color="grey", label="random order")
        if getattr(res, "control", None) is not None:
            ax.plot(res.fractions, res.control, ":s", ms=3, color="tab:red", label="randomised-model map order")
        ax.fill_between(res.fractions, res.random - res.random_sd, res.random + res.random_sd, color="grey",
                        alpha=0.2)
        ax.set(title=f"{name}: {res.verdict}\narea between = {res.area_between:+.3f}", xlabel="fraction of inputs masked",
               ylim=(0, 1.02))
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel("P(true class)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def class_cam_maps(maps: np.ndarray, *, title: str = "Mean Grad-CAM per emotion", xlabel: str | None = None
                   ) -> plt.Figure:
    """Heat map of the class-average maps (emotions x positions); feature groups marked for 187 positions."""
    from .features import FEATURE_GROUPS, N_FEATURES

    maps = np.asarray(maps, dtype=float)
    fig, ax = plt.subplots(figsize=(11, 3.4))
    sns.heatmap(maps, cmap="viridis", vmin=0, ax=ax, yticklabels=[EMOTION_SHORT[e] for e in EMOTIONS],
                xticklabels=False, cbar_kws={"label": "mean importance"})
    if maps.shape[1] == N_FEATURES:
        for sl in FEATURE_GROUPS.values():
            ax.axvline(sl.start, color="white", lw=1)
        ax.set_xticks([(sl.start + sl.stop) / 2 for sl in FEATURE_GROUPS.values()], list(FEATURE_GROUPS),
                      rotation=0)
        xlabel = xlabel or "feature position, by group"
    ax.set(title=title, xlabel=xlabel or "time (normalised frames)", ylabel="true emotion")
    fig.tight_layout()
    return fig


# --- chapter 2: features ----------------------------------------------------------------


def feature_panels(path: str, *, title: str = "", cfg=None) -> plt.Figure:
    """The four feature groups of one clip over time: chroma, log-mel, spectral contrast, MFCC."""
    import librosa
    import librosa.display

    from .data import load_clip
    from .features import FEATURE_GROUPS, FeatureConfig, per_frame_features

    cfg = cfg or FeatureConfig()
    y = load_clip(path, cfg.sample_rate)
    if cfg.trim_db is not None:
        y, _ = librosa.effects.trim(y, top_db=cfg.trim_db)
    per_frame = per_frame_features(y, cfg)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    kw = dict(sr=cfg.sample_rate, hop_length=cfg.hop_length, x_axis="time")
    for ax, (group, sl) in zip(axes, FEATURE_GROUPS.items(), strict=True):
        rows = per_frame[sl]
        # MFCC 1 (the overall level) is an order of magnitude larger than the others: the colour scale
        # comes from MFCC 2 on, so their differences stay visible (MFCC 1's row saturates).
        vmin, vmax = np.percentile(rows[1:] if group == "mfcc" else rows, [2, 98])
        img = librosa.display.specshow(rows, ax=ax, cmap="magma" if group == "mel" else "coolwarm",
                                       vmin=vmin, vmax=vmax, **kw)
        ax.grid(False)  # no theme grid lines over an image
        ax.xaxis.set_major_locator(plt.MaxNLocator(4))
        note = ", scale from MFCC 2" if group == "mfcc" else ""
        ax.set(title=f"{group} ({sl.stop - sl.start} rows{note})", xlabel="time (s)", ylabel=f"{group} index")
        fig.colorbar(img, ax=ax, shrink=0.8)
    fig.suptitle(title or "Feature groups of one clip")
    fig.tight_layout()
    return fig


def group_profiles(vectors: np.ndarray, emotions: Sequence[str]) -> plt.Figure:
    """Mean time-averaged value of every position, per emotion, one panel per feature group."""
    from .features import FEATURE_GROUPS

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    emotions = np.asarray(emotions)
    for ax, (group, sl) in zip(axes, FEATURE_GROUPS.items(), strict=True):
        # MFCC 1 (the level) lies far below the other coefficients: drawn with it, their differences
        # between emotions would be flat lines. Its means are given in the title instead.
        first = 1 if group == "mfcc" else 0
        index = np.arange(1 + first, sl.stop - sl.start + 1)
        for emo in EMOTIONS:
            rows = vectors[emotions == emo]
            if len(rows):
                ax.plot(index, rows[:, sl][:, first:].mean(axis=0), label=EMOTION_SHORT[emo],
                        color=EMOTION_PALETTE[emo], lw=1.2)
        title = f"{group}: mean per emotion"
        if first and len(vectors):
            level = [vectors[emotions == e][:, sl.start].mean() for e in EMOTIONS if (emotions == e).any()]
            title = f"MFCC 2-{sl.stop - sl.start}: mean per emotion\n(MFCC 1, off scale: {min(level):.0f} to {max(level):.0f})"
        ax.set(title=title, xlabel=f"{group} index", ylabel="mean value")
    axes[-1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def projection_2d(coords: np.ndarray, meta: pd.DataFrame, *, method: str = "PCA") -> plt.Figure:
    """Scatter of a 2-D projection coloured by emotion (left) and by speaker (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    df = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "emotion": meta["emotion"].to_numpy(),
                       "speaker": meta["speaker"].to_numpy()})
    sns.scatterplot(data=df, x="x", y="y", hue="emotion", hue_order=list(EMOTIONS), palette=EMOTION_PALETTE,
                    s=12, ax=axes[0], linewidth=0)
    sns.scatterplot(data=df, x="x", y="y", hue="speaker", s=12, ax=axes[1], linewidth=0, palette="Set1")
    for ax, by in zip(axes, ("emotion", "speaker"), strict=True):
        ax.set(title=f"{method} of the 187-d vectors, coloured by {by}", xlabel=f"{method} 1", ylabel=f"{method} 2")
        ax.legend(fontsize=7, markerscale=1.5)
    fig.tight_layout()
    return fig


def image_grid(images: np.ndarray, titles: Sequence[str], *, suptitle: str = "Mel-spectrogram images") -> plt.Figure:
    """The model-ready spectrogram images (row 0 = lowest band, drawn at the bottom)."""
    fig, axes = plt.subplots(1, len(images), figsize=(2.2 * len(images), 2.6))
    for ax, img, t in zip(np.atleast_1d(axes), images, titles, strict=True):
        ax.imshow(img, origin="lower", cmap="magma", aspect="auto")
        ax.grid(False)  # no theme grid lines over an image
        ax.set(title=t, xticks=[], yticks=[])
    np.atleast_1d(axes)[0].set(ylabel="mel band (low to high)")
    fig.suptitle(f"{suptitle} ({images.shape[1]}x{images.shape[2]}, time-normalised)")
    fig.tight_layout()
    return fig


def patch_grid(image: np.ndarray, patch: int, *, title: str = "A spectrogram cut into patches") -> plt.Figure:
    """One spectrogram image with the vision transformer's patch grid drawn over it, patches numbered.

    Patches are numbered in the order the model reads them (row by row from
    the top-left of the pixel array, i.e. from the lowest mel band here, since
    row 0 is drawn at the bottom).
    """
    s = image.shape[0]
    n = s // patch
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.imshow(image, origin="lower", cmap="magma", extent=(0, s, 0, s))
    ax.grid(False)  # the style's grid would look like patch borders
    ax.set_xticks(range(0, s + 1, patch))
    ax.set_yticks(range(0, s + 1, patch))
    for k in range(1, n):
        ax.axhline(k * patch, color="white", lw=0.6)
        ax.axvline(k * patch, color="white", lw=0.6)
    if n <= 16:
        for r in range(n):
            for c in range(n):
                ax.text((c + 0.5) * patch, (r + 0.5) * patch, str(r * n + c + 1), color="white",
                        ha="center", va="center", fontsize=6)
    ax.set(title=f"{title} ({n}x{n} = {n * n} patches of {patch}x{patch})", xlabel="time (frames, normalised)",
           ylabel="mel band (low to high)")
    fig.tight_layout()
    return fig


def attention_rollout_grid(images: Sequence[np.ndarray], maps: Sequence[np.ndarray], titles: Sequence[str], *,
                           suptitle: str = "Attention rollout over the spectrogram") -> plt.Figure:
    """Spectrograms (top row) and their attention-rollout maps laid over them (bottom row)."""
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 5.0), squeeze=False)
    for j, (img, amap, t) in enumerate(zip(images, maps, titles, strict=True)):
        axes[0, j].imshow(img, origin="lower", cmap="magma", aspect="auto")
        axes[0, j].grid(False)  # no theme grid lines over an image
        axes[0, j].set(xticks=[], yticks=[])
        axes[0, j].set_title(t.replace("_", " "), fontsize=9)
        axes[1, j].imshow(img, origin="lower", cmap="gray", aspect="auto")
        axes[1, j].grid(False)  # no theme grid lines over an image
        axes[1, j].imshow(amap, origin="lower", cmap="jet", alpha=0.45, aspect="auto", vmin=0, vmax=1)
        axes[1, j].set(xticks=[], yticks=[], xlabel="time")
    axes[0, 0].set_ylabel("mel band (low to high)")
    axes[1, 0].set_ylabel("rollout (red = attended)")
    fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
