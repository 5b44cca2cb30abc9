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
    confusion: Sequence[Sequence[int]], *, normalise: bool = True, title: str = "Confusion matrix", ax=None
):
    """Seaborn heatmap of a 7x7 confusion matrix (rows: true, columns: predicted)."""
    cm = np.asarray(confusion, dtype=float)
    if normalise:
        cm = cm / np.clip(cm.sum(axis=1, keepdims=True), 1, None)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 4.4))
    ticks = [EMOTION_SHORT[e] for e in EMOTIONS]
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
    """Grouped bar chart of a metric (in %) per model, one colour per protocol."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    sns.barplot(data=table, x="model", y=metric, hue="protocol", ax=ax)
    ax.set(title=title, xlabel="model", ylabel=metric.replace("_mean", " (%)"), ylim=(0, 100))
    ax.axhline(100 / len(EMOTIONS), color="grey", ls=":", lw=1, label="chance")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
