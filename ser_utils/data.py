"""Finding TESS on disk, checking every clip, and building the manifest.

The manifest is the one table every chapter starts from: one row per audio
file with its speaker, word, emotion, sample rate, duration, channel count and
a ``status`` (``ok`` or ``bad``/``duplicate``/``unlabelled`` with a ``reason``).
Bad files are kept in the table, never silently dropped, so a run can report
them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import soundfile as sf

from .errors import TessNotFoundError
from .labels import EMOTIONS, UnknownLabelError

if TYPE_CHECKING:
    from .corpora import Corpus

#: Number of clips in the complete TESS release (2 speakers x 200 words x 7 emotions).
FULL_TESS_SIZE = 2800
#: Clips shorter than this (seconds) are too short to hold a spoken word.
MIN_DURATION_S = 0.2
#: A clip whose peak amplitude is below this is treated as silent.
SILENCE_PEAK = 1e-4

TESS_HELP = (
    "TESS (Toronto Emotional Speech Set) is licensed CC BY-NC-ND 4.0 and is not shipped with "
    "ser-book. Get it from the Borealis Dataverse (doi:10.5683/SP2/E8H2MF; "
    "`python -m ser_utils download DEST` fetches it) or Kaggle ('Toronto emotional speech set "
    "(TESS)'), unpack it anywhere and point ser-book at it with SER_TESS_DIR=/path/to/tess or "
    "the notebook parameter data_dir. Without it, use dataset='demo' for the synthetic corpus."
)

MANIFEST_COLUMNS = [
    "clip_id",
    "path",
    "speaker",
    "word",
    "emotion",
    "sample_rate",
    "duration",
    "channels",
    "format",
    "status",
    "reason",
]


@dataclass(frozen=True)
class AudioProbe:
    """What soundfile could read of one file, and whether it is usable."""

    sample_rate: int | None
    duration: float | None
    channels: int | None
    format: str | None
    ok: bool
    reason: str = ""


def probe_audio(path: str | os.PathLike) -> AudioProbe:
    """Read one file by its content (WAV, AIFF, FLAC, ...) and judge whether it is a usable clip.

    Reads the samples too, so that truncated, empty and silent files are caught
    here rather than halfway through feature extraction. Never raises for a bad
    file: the reason is returned instead.
    """
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises a generic error for non-audio data
        size = Path(path).stat().st_size if Path(path).exists() else 0
        why = "empty file (0 bytes)" if size == 0 else f"not readable as audio ({_short(exc)})"
        return AudioProbe(None, None, None, None, False, why)
    base = AudioProbe(info.samplerate, info.duration, info.channels, info.format, True)
    if info.frames == 0:
        return _bad(base, "no audio samples (empty or header-only file)")
    try:
        audio, _ = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        return _bad(base, f"truncated or corrupt audio data ({_short(exc)})")
    if audio.shape[0] < info.frames:
        return _bad(base, f"truncated: header says {info.frames} samples, file holds {audio.shape[0]}")
    declared = _declared_wav_bytes(path) if info.format == "WAV" else None
    if declared is not None and declared[0] + declared[1] > Path(path).stat().st_size:
        return _bad(base, f"truncated: the WAV header declares {declared[1]} bytes of audio, "
                          f"the file ends after {Path(path).stat().st_size - declared[0]}")
    if not np.all(np.isfinite(audio)):
        return _bad(base, "audio holds NaN or infinite samples")
    if info.duration < MIN_DURATION_S:
        return _bad(base, f"too short ({info.duration:.3f} s < {MIN_DURATION_S} s)")
    if float(np.max(np.abs(audio))) < SILENCE_PEAK:
        return _bad(base, "silent (peak amplitude below 1e-4)")
    return base


def _declared_wav_bytes(path: str | os.PathLike) -> tuple[int, int] | None:
    """(offset, size) of the ``data`` chunk a RIFF/WAVE header declares, or None if not found.

    libsndfile quietly reads what is there when a WAV file was cut short, so
    truncation is only visible by comparing the declared size with the file's.
    """
    import struct

    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        while True:
            chunk = fh.read(8)
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                return fh.tell(), size
            fh.seek(size + (size & 1), 1)


def _bad(probe: AudioProbe, reason: str) -> AudioProbe:
    return AudioProbe(probe.sample_rate, probe.duration, probe.channels, probe.format, False, reason)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]


def find_audio_files(root: str | os.PathLike) -> list[Path]:
    """All ``.wav`` files under ``root`` in any TESS layout (per-emotion folders, flat, nested).

    The match is case-insensitive (``.WAV``); macOS resource forks
    (``__MACOSX``, ``._*``) are ignored. Sorted for a deterministic order.
    """
    root = Path(root)
    files = [
        p
        for p in root.rglob("*")
        if p.suffix.lower() == ".wav"
        and p.is_file()
        and "__MACOSX" not in p.parts
        and not p.name.startswith("._")
    ]
    return sorted(files, key=lambda p: str(p.relative_to(root)).lower())


def build_manifest(
    root: str | os.PathLike,
    *,
    probe: bool = True,
    progress: bool = True,
    corpus: str | Corpus | None = None,
) -> pd.DataFrame:
    """Scan ``root`` for the clips of ``corpus`` (default TESS) and return the manifest (bad ones included).

    Each file name is parsed by the corpus (TESS: ``<SPK>_<word>_<emotion>.wav``,
    any case, any spelling of the label; CREMA-D and RAVDESS: see
    :mod:`ser_utils.corpora`) and, if ``probe`` is true, its audio is opened and
    checked (see :func:`probe_audio`). The same clip found twice (the Kaggle
    copy of TESS nests a second full copy) keeps the first file and marks the
    others ``duplicate``; files a corpus leaves out by design (RAVDESS calm)
    are kept as ``excluded``. Raises :class:`TessNotFoundError` when ``root`` is
    missing or holds no WAV file at all.
    """
    from .corpora import get_corpus

    corpus = get_corpus(corpus)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise TessNotFoundError(f"data folder {str(root)!r} does not exist.\n{corpus.help}")
    files = find_audio_files(root)
    if not files:
        raise TessNotFoundError(f"no .wav files under {str(root)!r}.\n{corpus.help}")

    from tqdm.auto import tqdm

    rows = []
    seen: set[str] = set()
    for path in tqdm(files, desc="Checking clips", unit="clip", disable=not progress):
        row = {c: None for c in MANIFEST_COLUMNS}
        row["path"] = str(path.resolve())
        try:
            name = corpus.parse(path.name)
        except UnknownLabelError as exc:
            status = getattr(exc, "status", "unlabelled")  # "excluded" for clips dropped by design
            row.update(clip_id=path.stem.lower(), status=status, reason=str(exc))
            rows.append(row)
            continue
        key = name.clip_id  # TESS: speaker_word_emotion
        row.update(
            clip_id=name.clip_id,
            speaker=name.speaker,
            word=name.word,
            emotion=name.emotion,
        )
        if key in seen:
            row.update(status="duplicate", reason="same speaker/word/emotion as an earlier file")
            row["clip_id"] = f"{row['clip_id']}#dup{len(rows)}"
            rows.append(row)
            continue
        seen.add(key)
        if probe:
            info = probe_audio(path)
            row.update(
                sample_rate=info.sample_rate,
                duration=info.duration,
                channels=info.channels,
                format=info.format,
                status="ok" if info.ok else "bad",
                reason=info.reason,
            )
        else:
            row.update(status="ok", reason="")
        rows.append(row)
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    manifest["reason"] = manifest["reason"].fillna("")
    return manifest


def usable(manifest: pd.DataFrame) -> pd.DataFrame:
    """The rows of the manifest that can be used (status ``ok``), indexed 0..n-1."""
    return manifest[manifest["status"] == "ok"].reset_index(drop=True)


@dataclass
class ManifestSummary:
    """Counts and problems of a manifest, for printing and for the chapter's tables."""

    n_files: int
    n_ok: int
    counts: pd.DataFrame  # speaker x emotion counts of usable clips
    n_words: int
    duration: pd.Series  # describe() of usable clips' durations
    problems: pd.DataFrame  # rows that are not ok, with reasons
    quirks: pd.DataFrame  # usable rows that need care (odd rate, non-WAV container, stereo)
    is_full: bool
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.n_ok} usable clips of {self.n_files} files; {self.n_words} words"]
        lines.append("Clips per speaker x emotion:")
        lines.append(self.counts.to_string())
        d = self.duration
        if len(d) and d.get("count", 0):
            lines.append(
                f"Duration (s): mean {d['mean']:.2f}, sd {d['std']:.2f}, "
                f"min {d['min']:.2f}, max {d['max']:.2f}"
            )
        if len(self.quirks):
            lines.append(f"Handled quirks ({len(self.quirks)}):")
            for _, r in self.quirks.iterrows():
                lines.append(f"  {Path(r['path']).name}: {r['quirk']}")
        if len(self.problems):
            lines.append(f"Bad or skipped files ({len(self.problems)}):")
            for _, r in self.problems.iterrows():
                lines.append(f"  {Path(r['path']).name}: {r['status']}: {r['reason']}")
        else:
            lines.append("Bad or skipped files: none")
        lines.extend(self.notes)
        return "\n".join(lines)


def summarise_manifest(manifest: pd.DataFrame, *, expected_size: int = FULL_TESS_SIZE) -> ManifestSummary:
    """Count clips per speaker and emotion, list bad files and quirks, and judge completeness.

    ``is_full`` is true only for the complete corpus: ``expected_size`` unique
    speaker/word/emotion triples over 2 speakers and 7 emotions. A partial set
    gets a note saying so (and what is missing), never an error.
    """
    ok = usable(manifest)
    counts = (
        pd.crosstab(ok["speaker"], ok["emotion"]).reindex(columns=list(EMOTIONS), fill_value=0)
        if len(ok)
        else pd.DataFrame(columns=list(EMOTIONS))
    )
    problems = manifest[manifest["status"] != "ok"][["path", "status", "reason"]]
    quirks = _quirks(ok)
    n_triples = ok[["speaker", "word", "emotion"]].drop_duplicates().shape[0] if len(ok) else 0
    speakers = sorted(ok["speaker"].unique()) if len(ok) else []
    is_full = n_triples == expected_size and len(speakers) == 2
    notes = []
    if not is_full:
        missing = expected_size - n_triples
        notes.append(
            f"PARTIAL SET: {n_triples} unique speaker/word/emotion clips of the {expected_size} in "
            f"full TESS ({missing} missing or unusable). Results on it are not comparable "
            "one-to-one with results on the full corpus."
        )
        if len(speakers) != 2:
            notes.append(f"Expected 2 speakers (OAF, YAF), found {len(speakers)}: {speakers}.")
    return ManifestSummary(
        n_files=len(manifest),
        n_ok=len(ok),
        counts=counts,
        n_words=ok["word"].nunique() if len(ok) else 0,
        duration=ok["duration"].astype(float).describe() if len(ok) else pd.Series(dtype=float),
        problems=problems.reset_index(drop=True),
        quirks=quirks,
        is_full=is_full,
        notes=notes,
    )


def _quirks(ok: pd.DataFrame) -> pd.DataFrame:
    if not len(ok):
        return pd.DataFrame(columns=["path", "quirk"])
    common_rate = ok["sample_rate"].mode().iloc[0]
    rows = []
    for _, r in ok.iterrows():
        why = []
        if r["sample_rate"] != common_rate:
            why.append(f"{r['sample_rate']} Hz (most clips {common_rate} Hz): resampled on load")
        if r["format"] not in (None, "WAV"):
            why.append(f"{r['format']} data under a .wav name: read by content")
        if r["channels"] and r["channels"] > 1:
            why.append(f"{r['channels']} channels: downmixed to mono on load")
        if why:
            rows.append({"path": r["path"], "quirk": "; ".join(why)})
    return pd.DataFrame(rows, columns=["path", "quirk"])


def warn_if_partial(summary: ManifestSummary) -> None:
    """Emit a visible warning when the manifest is not the full 2800-clip TESS."""
    for note in summary.notes:
        warnings.warn(note, stacklevel=2)


def load_clip(path: str | os.PathLike, sr: int) -> np.ndarray:
    """Load one clip as mono float32 at ``sr`` Hz, whatever its container, rate or channel count.

    Reads by content with soundfile (so AIFF under a .wav name works),
    downmixes by averaging channels and resamples with librosa (soxr).
    """
    import librosa

    audio, native_sr = sf.read(str(path), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if native_sr != sr:
        audio = librosa.resample(audio, orig_sr=native_sr, target_sr=sr, res_type="soxr_hq")
    return audio.astype(np.float32, copy=False)


def describe_locations(candidates: Iterable[str | os.PathLike | None]) -> str:
    """One line per folder that was looked at, for error messages."""
    return "\n".join(f"  - {c}" for c in candidates if c)
