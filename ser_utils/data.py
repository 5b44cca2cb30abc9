"""Finding TESS on disk, checking every clip, and building the manifest.

The manifest is the one table every chapter starts from: one row per audio
file with its speaker, word, emotion, sample rate, duration, channel count and
a ``status`` (``ok`` or ``bad``/``duplicate``/``unlabelled`` with a ``reason``).
Bad files are kept in the table, never silently dropped, so a run can report
them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from .corpora import CORPUS_NAMES, TESS_HELP, Corpus, get_corpus
from .errors import CorpusNotFoundError, TessNotFoundError
from .outputs import is_being_written
from .labels import EMOTIONS, UnknownLabelError
from .quiet import bar_hidden


#: Number of clips in the complete TESS release (2 speakers x 200 words x 7 emotions).
FULL_TESS_SIZE = 2800
#: Clips shorter than this (seconds) are too short to hold a spoken word.
MIN_DURATION_S = 0.2
#: A clip whose peak amplitude is below this is treated as silent.
SILENCE_PEAK = 1e-4


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


#: Suffixes the manifest and ``predict`` both accept (content decides the format; these pick the files).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
#: Plausible sample rates (Hz). Anything outside is a broken header; resampling it could ask for ~1e9 samples.
MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 384_000
#: Longest clip we accept (seconds). TESS clips last 1-3 s; a longer file is not a clip of one word.
MAX_DURATION_S = 60.0
#: Most samples x channels we decode (128 MiB as float32): 59 s at 384 kHz mono, or 6 channels at 48 kHz,
#: pass; a 1 MB header claiming 16 channels x 384 kHz x 59 s (1.4 G samples) is refused before reading.
MAX_SAMPLES = 1 << 25
#: A clip whose peak is below this (-50 dBFS) is accepted with a note: its features are unreliable
#: (quantisation noise and numerical floors dominate), so the same words at a normal level can be
#: classified differently. Normalise the level of such a clip (e.g. ``sox --norm in.wav out.wav``).
QUIET_PEAK = 10 ** (-50 / 20)


@dataclass
class AcceptedAudio:
    """A clip that passed :func:`accept_audio`: mono samples at the file's own rate, and what the header said."""

    audio: np.ndarray  # mono float32, native rate
    sample_rate: int
    channels: int
    format: str
    duration: float

    @property
    def peak_dbfs(self) -> float:
        """The clip's peak level in dB below full scale (0 dBFS = 1.0)."""
        return float(20 * np.log10(max(float(np.max(np.abs(self.audio))), 1e-12)))

    @property
    def note(self) -> str:
        """A caveat about an accepted clip ('' for none): today only a very quiet level."""
        if self.peak_dbfs < 20 * np.log10(QUIET_PEAK):
            return (f"very quiet (peak {self.peak_dbfs:.0f} dBFS, below {20 * np.log10(QUIET_PEAK):.0f} dBFS): "
                    "its features are unreliable; normalise its level")
        return ""


def file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be opened as a clip (missing, folder, FIFO, device, broken link, empty), or None.

    Only ``stat`` is used, so a FIFO named ``.wav`` is reported instead of
    blocking forever on ``open``.
    """
    import stat

    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        return "broken symbolic link (its target does not exist)" if p.is_symlink() else "no such file"
    except OSError as exc:  # e.g. a symbolic link loop, a permission problem on a parent
        return f"cannot be opened ({exc.strerror or type(exc).__name__})"
    if stat.S_ISDIR(st.st_mode):
        return "a folder, not an audio file"
    if stat.S_ISFIFO(st.st_mode):
        return "a named pipe (FIFO), not an audio file"
    if not stat.S_ISREG(st.st_mode):
        return "a device or socket, not an audio file"
    if st.st_size == 0:
        return "empty file (0 bytes)"
    if not os.access(p, os.R_OK):
        return "not readable (no permission)"
    return None


def accept_audio(path: str | os.PathLike) -> AcceptedAudio:
    """The one acceptance rule for a clip, used by the manifest, feature extraction and ``predict``.

    Checks, in this order and before anything expensive: a regular non-empty
    file; readable as audio by content; a plausible sample rate and length
    (bounded *before* any resampling); samples present and not truncated;
    no NaN or infinite sample; then, after the downmix to mono (a stereo file
    whose channels cancel is silent), at least ``MIN_DURATION_S`` long and not
    silent. Raises :class:`~ser_utils.errors.AudioFileError` saying what is wrong.
    """
    from .errors import AudioFileError

    problem = file_problem(path)
    if problem:
        raise AudioFileError(problem)
    # A file object instead of a name: libsndfile cannot open names that are not valid UTF-8.
    with open(path, "rb") as fh:
        try:
            info = sf.info(fh)
        except Exception as exc:  # libsndfile raises a generic error for non-audio data
            raise AudioFileError("not readable as audio: not an audio file soundfile can read "
                                 f"({_short(exc)})") from exc
        if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
            raise AudioFileError(f"implausible sample rate {info.samplerate} Hz in the header (expected "
                                 f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz): a broken or hand-edited file")
        if info.frames == 0:
            raise AudioFileError("no audio samples (empty or header-only file)")
        if info.duration > MAX_DURATION_S:
            raise AudioFileError(f"too long ({info.duration:.0f} s > {MAX_DURATION_S:.0f} s): not a clip of one word")
        if info.frames * info.channels > MAX_SAMPLES:
            raise AudioFileError(f"too large to decode: {info.channels} channels x {info.frames} samples "
                                 f"(more than {MAX_SAMPLES} in all): not a clip of one spoken word")
        fh.seek(0)
        try:
            audio, _ = sf.read(fh, dtype="float32", always_2d=True)
        except Exception as exc:
            raise AudioFileError(f"truncated or corrupt audio data ({_short(exc)})") from exc
    if audio.shape[0] < info.frames:
        raise AudioFileError(f"truncated: header says {info.frames} samples, file holds {audio.shape[0]}")
    declared = _declared_wav_bytes(path) if info.format == "WAV" else None
    size = Path(path).stat().st_size
    if declared is not None and declared[0] + declared[1] > size:
        raise AudioFileError(f"truncated: the WAV header declares {declared[1]} bytes of audio, "
                             f"the file ends after {size - declared[0]}")
    if not np.all(np.isfinite(audio)):
        raise AudioFileError("audio holds NaN or infinite samples")
    if info.duration < MIN_DURATION_S:
        # Rounded down, so the figure shown is always below the limit (0.19996 s is not "0.200 s < 0.2 s").
        shown = np.floor(info.duration * 1000) / 1000
        raise AudioFileError(f"too short ({shown:.3f} s, {info.frames} samples at {info.samplerate} Hz; "
                             f"at least {MIN_DURATION_S} s is needed)")
    mono = audio.mean(axis=1)
    if float(np.max(np.abs(mono))) < SILENCE_PEAK:
        why = " after mixing its channels to mono (they cancel out)" if info.channels > 1 and \
            float(np.max(np.abs(audio))) >= SILENCE_PEAK else ""
        # The level rounded down, so the figure shown is always below the limit (as for "too short").
        level = np.floor(20 * np.log10(max(float(np.max(np.abs(mono))), 1e-12)) * 10) / 10
        raise AudioFileError(f"silent (peak {level:.1f} dBFS, below {20 * np.log10(SILENCE_PEAK):.0f} dBFS = "
                             f"amplitude 1e-4){why}; if it holds speech, normalise its level")
    if float(np.max(np.abs(mono - mono.mean()))) < SILENCE_PEAK:
        raise AudioFileError(f"silent: a constant signal (DC offset {float(mono.mean()):+.3g}) with no sound in it")
    return AcceptedAudio(mono.astype(np.float32, copy=False), int(info.samplerate), int(info.channels),
                         str(info.format), float(info.duration))


def probe_audio(path: str | os.PathLike) -> AudioProbe:
    """Read one file by its content (WAV, AIFF, FLAC, ...) and judge whether it is a usable clip.

    Applies :func:`accept_audio` (the same rule as feature extraction and
    ``predict``), so truncated, empty and silent files are caught here rather
    than halfway through feature extraction. Never raises for a bad file (nor
    blocks on a FIFO): the reason is returned instead.
    """
    from .errors import AudioFileError

    info = None
    if file_problem(path) is None:
        try:
            with open(path, "rb") as fh:
                info = sf.info(fh)
        except Exception:
            info = None
    base = (AudioProbe(info.samplerate, info.duration, info.channels, info.format, True) if info is not None
            else AudioProbe(None, None, None, None, True))
    try:
        clip = accept_audio(path)
    except AudioFileError as exc:
        return _bad(base, str(exc))
    except OSError as exc:  # vanished or unreadable between the checks
        return _bad(base, f"cannot be read ({exc.strerror or type(exc).__name__})")
    # An accepted clip's caveat (very quiet) travels in ``reason`` and is listed among the quirks.
    return AudioProbe(base.sample_rate, base.duration, base.channels, base.format, True, clip.note)


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
                # 0xFFFFFFFF (or 0) is how a streaming writer says "size unknown": nothing to compare with.
                return None if size in (0, 0xFFFFFFFF) else (fh.tell(), size)
            fh.seek(size + (size & 1), 1)


def _bad(probe: AudioProbe, reason: str) -> AudioProbe:
    return AudioProbe(probe.sample_rate, probe.duration, probe.channels, probe.format, False, reason)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # libsndfile names the open file object ("Error opening <_io.BufferedReader ...>: why"): keep the why.
    return text.rsplit(">: ", 1)[-1][:120]


def find_audio_files(root: str | os.PathLike) -> list[Path]:
    """All audio files (``AUDIO_SUFFIXES``) under ``root`` in any TESS layout (per-emotion folders, flat, nested).

    The match is case-insensitive (``.WAV``); macOS resource forks
    (``__MACOSX``, ``._*``) and files still being written by :func:`~ser_utils.outputs.atomic_write` are ignored. Entries that are not regular files
    (a FIFO, a folder or a broken link named ``.wav``) are returned too, so the
    manifest lists them as bad instead of dropping them. Sorted for a
    deterministic order.
    """
    root = Path(root)
    files = [
        p
        for p in root.rglob("*")
        if p.suffix.lower() in AUDIO_SUFFIXES
        and "__MACOSX" not in p.parts
        and not p.name.startswith("._")
        and not is_being_written(p)  # another process's clip, half written (atomic_write's temporary name)
    ]
    return sorted(files, key=lambda p: str(p.relative_to(root)).lower())


def _printable(path: Path) -> str:
    """``path`` as text that can always be written to CSV (undecodable bytes shown as ``\\xNN``)."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


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
    are kept as ``excluded``. Raises :class:`CorpusNotFoundError` (:class:`TessNotFoundError` for TESS) when ``root`` is
    missing or holds no WAV file at all.
    """
    corpus = get_corpus(corpus)
    root = Path(root).expanduser()
    missing = TessNotFoundError if corpus.name == "tess" else CorpusNotFoundError
    if root.exists() and not root.is_dir():
        raise missing(f"data folder {_printable(root)!r} is a file, not a folder: give the folder "
                      f"that holds the clips (for one clip, use `python -m ser_utils predict CLIP`).")
    if not root.is_dir():
        raise missing(f"data folder {_printable(root)!r} does not exist.\n{corpus.help}")
    files = find_audio_files(root)
    if not files:
        raise missing(f"no .wav files (nor {', '.join(AUDIO_SUFFIXES[1:])}) under "
                                f"{_printable(root)!r}.\n{corpus.help}")

    from tqdm.auto import tqdm

    rows = []
    seen: set[str] = set()
    for path in tqdm(files, desc="Checking clips", unit="clip", disable=bar_hidden(progress)):
        row = {c: None for c in MANIFEST_COLUMNS}
        full = path.resolve() if path.exists() else path.absolute()  # a broken link keeps its own name
        row["path"] = _printable(full)
        if row["path"] != str(full):
            # Not valid UTF-8: the name cannot be written to the manifest CSV nor read back as the same path.
            row.update(clip_id=_printable(Path(path.stem)).lower(), status="bad",
                       reason="file name is not valid UTF-8 (bytes shown as \\xNN); rename the file")
            rows.append(row)
            continue
        try:
            name = corpus.label(path)
        except UnknownLabelError as exc:
            reason = str(exc)
            if not path.name.isascii():  # a likelier cause than a wrong label: say it
                reason = (f"file name {path.name!r} has characters outside plain ASCII; {corpus.title} names "
                          "are plain ASCII: rename the file")
            status = getattr(exc, "status", "unlabelled")  # "excluded" for clips dropped by design
            row.update(clip_id=path.stem.lower(), status=status, reason=reason)
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
        suffix = Path(r["path"]).suffix.lower().lstrip(".")
        if r["format"] not in (None, "WAV") and suffix == "wav":
            why.append(f"{r['format']} data under a .wav name: read by content")
        if r["channels"] and r["channels"] > 1:
            why.append(f"{r['channels']} channels: downmixed to mono on load")
        if r.get("reason"):  # a caveat of an accepted clip (very quiet)
            why.append(str(r["reason"]))
        if why:
            rows.append({"path": r["path"], "quirk": "; ".join(why)})
    return pd.DataFrame(rows, columns=["path", "quirk"])


def load_clip(path: str | os.PathLike, sr: int) -> np.ndarray:
    """Load one clip as mono float32 at ``sr`` Hz, whatever its container, rate or channel count.

    The clip must pass :func:`accept_audio` (raises
    :class:`~ser_utils.errors.AudioFileError` otherwise): rate and length are
    bounded before resampling, so a broken header cannot exhaust memory. Reads
    by content (AIFF under a .wav name works), downmixes by averaging channels
    and resamples with librosa (soxr).
    """
    import librosa

    clip = accept_audio(path)
    audio = clip.audio
    if clip.sample_rate != sr:
        audio = librosa.resample(audio, orig_sr=clip.sample_rate, target_sr=sr, res_type="soxr_hq")
    return audio.astype(np.float32, copy=False)


def detect_corpus(root: str | os.PathLike) -> Corpus:
    """Guess the corpus of a folder from its file names: the corpus whose naming scheme most files follow.

    Falls back to TESS, the default, when the folder is missing or no file
    follows any scheme (building its manifest then says what is wrong).
    """
    root = Path(root).expanduser()
    names = [p.name for p in find_audio_files(root)] if root.is_dir() else []
    corpora = [get_corpus(n) for n in CORPUS_NAMES]
    votes = {c.name: sum(c.recognises(n) for n in names) for c in corpora}
    return max(corpora, key=lambda c: votes[c.name])  # ties (and no votes) go to the first, TESS


def summarise_corpus(manifest: pd.DataFrame, corpus: str | Corpus):
    """Like :func:`summarise_manifest`, judged against ``corpus`` rather than TESS.

    Counts are per speaker x the corpus's emotions; files left out by design
    (status ``excluded``) are summed up in one note per reason instead of
    one line each, and a subset of the corpus says so.
    """
    corpus = get_corpus(corpus)
    ok = usable(manifest)
    counts = (pd.crosstab(ok["speaker"], ok["emotion"]).reindex(columns=list(corpus.emotions), fill_value=0)
              if len(ok) else pd.DataFrame(columns=list(corpus.emotions)))
    excluded = manifest[manifest["status"] == "excluded"]
    problems = manifest[~manifest["status"].isin(["ok", "excluded"])][["path", "status", "reason"]]
    n_speakers = ok["speaker"].nunique() if len(ok) else 0
    is_full = len(ok) == corpus.expected_size and n_speakers == corpus.n_speakers
    notes = [f"{corpus.title}: {len(ok)} clips, {n_speakers} actors, "
             f"{ok['emotion'].nunique() if len(ok) else 0} emotions"]
    for reason, n in excluded["reason"].value_counts().sort_index().items():
        notes.append(f"Excluded by design ({n} files): {reason}")
    if n_speakers < corpus.n_speakers:
        notes.append(
            f"SUBSET: {n_speakers} of the {corpus.n_speakers} actors ({len(ok)} usable clips; the complete "
            f"release has {corpus.expected_size}); results on it are not comparable one-to-one with "
            "published full-corpus figures."
        )
    elif not is_full:
        notes.append(f"{len(ok)} usable clips where the complete release has {corpus.expected_size}: "
                     "some clips are missing or unusable (listed above).")
    return ManifestSummary(
        n_files=len(manifest), n_ok=len(ok), counts=counts,
        n_words=ok["word"].nunique() if len(ok) else 0,
        duration=ok["duration"].astype(float).describe() if len(ok) else pd.Series(dtype=float),
        problems=problems.reset_index(drop=True), quirks=_quirks(ok), is_full=is_full, notes=notes,
    )
