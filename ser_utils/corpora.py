"""The corpora ser-book can read: TESS, CREMA-D and RAVDESS, each by its official file names.

A :class:`Corpus` is a small description: a name, a file-name parser that
returns speaker, "word" (the spoken text), emotion and a unique clip id, the
emotions it yields (in :data:`~ser_utils.labels.EMOTIONS` names, so one class
index means the same emotion in every corpus), a speaker-metadata reader and
where to get the data. :func:`ser_utils.data.build_manifest` takes one, so
every corpus gets the same manifest columns and the same bad-file checks.

=======  ============================================================  ==========================
corpus   official file name                                            emotions kept
=======  ============================================================  ==========================
TESS     ``<SPK>_<word>_<emotion>.wav`` (any case, several spellings)  7 (with pleasant surprise)
CREMA-D  ``AudioWAV/<actor>_<sentence>_<EMO>_<level>.wav``             6: ANG DIS FEA HAP NEU SAD
RAVDESS  ``Actor_XX/03-01-EE-II-SS-RR-AA.wav``                         6 of its 8 (see below)
=======  ============================================================  ==========================

RAVDESS has eight emotions. *Calm* has no counterpart in TESS or CREMA-D, and
its *surprised* is not TESS's *pleasant surprise* (RAVDESS does not say the
surprise is pleasant, and CREMA-D has no surprise at all), so both are
**dropped**: their files stay in the manifest with status ``excluded`` and a
reason, never silently. Song recordings (vocal channel 02) and the video
files' audio (modality 01/02) are excluded the same way: the corpus here is
RAVDESS *speech*, audio-only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .labels import EMOTIONS, UnknownLabelError, parse_tess_name


class ExcludedClipError(UnknownLabelError):
    """A correctly named file that the corpus leaves out on purpose (e.g. RAVDESS *calm*).

    The manifest keeps it with status ``excluded`` and this message as its reason.
    """

    status = "excluded"


@dataclass(frozen=True)
class ClipName:
    """What a file name says: speaker, spoken text, canonical emotion and a clip id unique in the corpus."""

    speaker: str
    word: str
    emotion: str
    clip_id: str


@dataclass(frozen=True)
class Corpus:
    """How to read one corpus: its file names, emotions, speakers and where to get it."""

    name: str  # "tess", "crema-d", "ravdess": the --corpus value and the results' dataset name
    title: str
    parse: Callable[[str], ClipName]  # raises UnknownLabelError (ExcludedClipError for dropped clips)
    emotions: tuple[str, ...]  # canonical emotions the corpus yields, in EMOTIONS order
    native_labels: dict[str, str]  # the corpus's own emotion codes -> canonical name ("" = dropped)
    n_speakers: int  # in the complete release
    expected_size: int  # usable clips in the complete release
    help: str  # where to get it and how to point ser-book at it
    read_speakers: Callable[[Path], pd.DataFrame] = field(repr=False, default=None)
    #: For corpora whose labels are not in the file name (IEMOCAP: text files beside the audio): reads the
    #: labels of one audio file from its path. None: the file name says it all (``parse``).
    read_label: Callable[[Path], ClipName] | None = field(repr=False, default=None)

    def label(self, path: Path) -> ClipName:
        """Speaker, text, emotion and clip id of one audio file: from a file beside it (``read_label``) when the
        corpus keeps its labels there, else from the name. Raises ``UnknownLabelError`` when it has none."""
        return self.read_label(Path(path)) if self.read_label is not None else self.parse(Path(path).name)

    def recognises(self, filename: str) -> bool:
        """True when ``filename`` follows this corpus's naming scheme (kept or excluded by design)."""
        try:
            self.parse(filename)
        except ExcludedClipError:
            return True
        except UnknownLabelError:
            return False
        return True


# --- TESS -------------------------------------------------------------------------------


def _parse_tess(filename: str) -> ClipName:
    name = parse_tess_name(filename)
    return ClipName(name.speaker, name.word, name.emotion, f"{name.speaker}_{name.word}_{name.emotion}")


def _tess_speakers(root: Path) -> pd.DataFrame:
    # From the TESS documentation: two actresses, aged 26 and 64.
    return pd.DataFrame({"speaker": ["OAF", "YAF"], "sex": ["female", "female"], "age": [64, 26]})


# --- CREMA-D ----------------------------------------------------------------------------

CREMA_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
#: The 12 sentences (the code in the file name) and their text, from the CREMA-D documentation.
CREMA_SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
_CREMA_RE = re.compile(r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})$")


def parse_crema_name(filename: str) -> ClipName:
    """Parse ``<actor>_<sentence>_<EMO>_<level>.wav`` (e.g. ``1001_DFA_ANG_XX.wav``).

    >>> parse_crema_name("1001_DFA_ANG_XX.wav")
    ClipName(speaker='1001', word='DFA', emotion='angry', clip_id='1001_DFA_ANG_XX')

    The level (LO, MD, HI, or XX for unspecified) is part of the clip id, not
    of the label. Raises :class:`UnknownLabelError` for any other shape or code.
    """
    stem = Path(filename).stem
    m = _CREMA_RE.match(stem.upper())
    if m is None or m["emotion"] not in CREMA_EMOTIONS:
        raise UnknownLabelError(
            f"file name {filename!r} is not a CREMA-D name <actor>_<sentence>_<EMO>_<level>.wav "
            f"with EMO one of {sorted(CREMA_EMOTIONS)}"
        )
    return ClipName(m["actor"], m["sentence"], CREMA_EMOTIONS[m["emotion"]], stem.upper())


def read_crema_speakers(root: Path) -> pd.DataFrame:
    """Speaker, sex and age from ``VideoDemographics.csv`` (found anywhere under ``root``).

    Returns an empty table (same columns) when the file is absent.
    """
    hits = sorted(Path(root).rglob("VideoDemographics.csv"))
    if not hits:
        return pd.DataFrame(columns=["speaker", "sex", "age"])
    demo = pd.read_csv(hits[0])
    return pd.DataFrame({
        "speaker": demo["ActorID"].astype(str),
        "sex": demo["Sex"].str.lower(),
        "age": demo["Age"].astype(int),
    })


# --- RAVDESS ----------------------------------------------------------------------------

#: RAVDESS emotion codes -> canonical names; "" marks the two that are dropped (calm, surprised).
RAVDESS_EMOTIONS = {"01": "neutral", "02": "", "03": "happy", "04": "sad", "05": "angry", "06": "fear",
                    "07": "disgust", "08": ""}
_RAVDESS_NATIVE = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
                   "07": "disgust", "08": "surprised"}
RAVDESS_STATEMENTS = {"01": "kids", "02": "dogs"}  # "Kids are talking by the door", "Dogs are sitting by the door"
_RAVDESS_RE = re.compile(
    r"^(?P<modality>\d{2})-(?P<channel>\d{2})-(?P<emotion>\d{2})-(?P<intensity>\d{2})-"
    r"(?P<statement>\d{2})-(?P<repetition>\d{2})-(?P<actor>\d{2})$"
)


def parse_ravdess_name(filename: str) -> ClipName:
    """Parse the RAVDESS 7-part name ``MM-VV-EE-II-SS-RR-AA.wav`` (e.g. ``03-01-05-02-01-01-12.wav``).

    >>> parse_ravdess_name("03-01-05-02-01-01-12.wav")
    ClipName(speaker='Actor_12', word='kids', emotion='angry', clip_id='03-01-05-02-01-01-12')

    Speech audio-only files with one of the six shared emotions are kept.
    Calm (02) and surprised (08), song (vocal channel 02) and any modality
    other than audio-only (03) raise :class:`ExcludedClipError`; a name of
    another shape or with unknown codes raises :class:`UnknownLabelError`.
    """
    stem = Path(filename).stem
    m = _RAVDESS_RE.match(stem)
    if (m is None or m["emotion"] not in RAVDESS_EMOTIONS or m["statement"] not in RAVDESS_STATEMENTS
            or m["channel"] not in ("01", "02") or not 1 <= int(m["actor"]) <= 24):
        raise UnknownLabelError(
            f"file name {filename!r} is not a RAVDESS name MM-VV-EE-II-SS-RR-AA.wav "
            "(modality, vocal channel, emotion 01-08, intensity, statement 01-02, repetition, actor 01-24)"
        )
    if m["modality"] != "03":
        raise ExcludedClipError(f"RAVDESS modality {m['modality']} is not audio-only (03): excluded")
    if m["channel"] == "02":
        raise ExcludedClipError("RAVDESS song (vocal channel 02), not speech: excluded")
    emotion = RAVDESS_EMOTIONS[m["emotion"]]
    if not emotion:
        raise ExcludedClipError(
            f"RAVDESS emotion {_RAVDESS_NATIVE[m['emotion']]!r} ({m['emotion']}) has no counterpart in "
            "TESS or CREMA-D: dropped"
        )
    return ClipName(f"Actor_{m['actor']}", RAVDESS_STATEMENTS[m["statement"]], emotion, stem)


def read_ravdess_speakers(root: Path) -> pd.DataFrame:
    """Speaker and sex of the 24 RAVDESS actors (odd numbers male, even female); age is not published per actor."""
    return pd.DataFrame({
        "speaker": [f"Actor_{i:02d}" for i in range(1, 25)],
        "sex": ["male" if i % 2 else "female" for i in range(1, 25)],
        "age": [None] * 24,
    })


TESS_HELP = (
    "TESS (Toronto Emotional Speech Set) is licensed CC BY-NC-ND 4.0 and is not shipped with "
    "ser-book. Get it from the Borealis Dataverse (doi:10.5683/SP2/E8H2MF; "
    "`python -m ser_utils download DEST` fetches it) or Kaggle ('Toronto emotional speech set "
    "(TESS)'), unpack it anywhere and point ser-book at it with SER_TESS_DIR=/path/to/tess "
    "(command line: --data-dir DIR; notebook: the parameter data_dir). Without it, use the synthetic "
    "demo corpus (command line: --dataset demo; notebook: dataset='demo')."
)


CREMA_HELP = (
    "CREMA-D (Cao et al., 2014; Open Database License) is not shipped with ser-book. Its authors "
    "distribute it at https://github.com/CheyneyComputerScience/CREMA-D with the audio in Git LFS: "
    "`git lfs install && git clone https://github.com/CheyneyComputerScience/CREMA-D.git` (about 600 MB "
    "of AudioWAV/), then pass that folder (or its AudioWAV/) with --corpus crema-d."
)
RAVDESS_HELP = (
    "RAVDESS (Livingstone & Russo, 2018; CC BY-NC-SA 4.0) is not shipped with ser-book. "
    "`python -m ser_utils download DEST --corpus ravdess` fetches Audio_Speech_Actors_01-24.zip from "
    "its Zenodo record (https://zenodo.org/records/1188976), verifies its MD5 and unpacks it; then pass "
    "that folder with --corpus ravdess."
)


def _tess() -> Corpus:
    return Corpus(
        name="tess", title="TESS (Toronto Emotional Speech Set)", parse=_parse_tess, emotions=EMOTIONS,
        native_labels={e: e for e in EMOTIONS}, n_speakers=2, expected_size=2800, help=TESS_HELP,
        read_speakers=_tess_speakers,
    )


def _crema() -> Corpus:
    return Corpus(
        name="crema-d", title="CREMA-D (Crowd-sourced Emotional Multimodal Actors Dataset)",
        parse=parse_crema_name, emotions=tuple(e for e in EMOTIONS if e in CREMA_EMOTIONS.values()),
        native_labels=dict(CREMA_EMOTIONS), n_speakers=91, expected_size=7442, help=CREMA_HELP,
        read_speakers=read_crema_speakers,
    )


def _ravdess() -> Corpus:
    kept = set(RAVDESS_EMOTIONS.values()) - {""}
    return Corpus(
        name="ravdess", title="RAVDESS (Ryerson Audio-Visual Database of Emotional Speech and Song), speech",
        parse=parse_ravdess_name, emotions=tuple(e for e in EMOTIONS if e in kept),
        native_labels={_RAVDESS_NATIVE[k]: v for k, v in RAVDESS_EMOTIONS.items()}, n_speakers=24,
        # 1440 speech files; calm and surprised (8 clips each per actor, 24 actors) are dropped
        expected_size=1440 - 2 * 8 * 24, help=RAVDESS_HELP, read_speakers=read_ravdess_speakers,
    )


CORPUS_NAMES = ("tess", "crema-d", "ravdess")


def get_corpus(corpus: str | Corpus | None = None) -> Corpus:
    """The :class:`Corpus` named ``corpus`` (``"tess"``, ``"crema-d"``, ``"ravdess"``); TESS when None."""
    if isinstance(corpus, Corpus):
        return corpus
    key = (corpus or "tess").strip().lower().replace("_", "-")
    key = {"cremad": "crema-d", "crema": "crema-d"}.get(key, key)
    makers = {"tess": _tess, "crema-d": _crema, "ravdess": _ravdess}
    if key not in makers:
        from .errors import UserError

        raise UserError(f"unknown corpus {corpus!r}; use one of {', '.join(CORPUS_NAMES)}")
    return makers[key]()


def shared_emotions(*corpora: str | Corpus) -> tuple[str, ...]:
    """The emotions every given corpus has, in :data:`EMOTIONS` order (the label set of a cross-corpus test)."""
    sets = [set(get_corpus(c).emotions) for c in corpora]
    return tuple(e for e in EMOTIONS if all(e in s for s in sets))
