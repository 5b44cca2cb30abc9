"""The seven TESS emotions and the file-name conventions that spell them.

TESS spells one label several ways (folder ``OAF_Pleasant_surprise``,
``YAF_pleasant_surprised``, file suffix ``ps``); everything in ser_utils uses
the canonical names below, in this order, so that class index ``i`` always
means ``EMOTIONS[i]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EMOTIONS: tuple[str, ...] = (
    "angry",
    "disgust",
    "fear",
    "happy",
    "neutral",
    "pleasant_surprise",
    "sad",
)

#: Short names for tables and axis ticks.
EMOTION_SHORT: dict[str, str] = {
    "angry": "ang",
    "disgust": "dis",
    "fear": "fea",
    "happy": "hap",
    "neutral": "neu",
    "pleasant_surprise": "ps",
    "sad": "sad",
}

# Every spelling seen in TESS distributions (lower-cased) -> canonical label.
_ALIASES: dict[str, str] = {
    "angry": "angry",
    "anger": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "happy": "happy",
    "happiness": "happy",
    "neutral": "neutral",
    "ps": "pleasant_surprise",
    "pleasant_surprise": "pleasant_surprise",
    "pleasant_surprised": "pleasant_surprise",
    "pleasantsurprise": "pleasant_surprise",
    "surprise": "pleasant_surprise",
    "surprised": "pleasant_surprise",
    "sad": "sad",
    "sadness": "sad",
}

# Speaker prefixes that are known typos of a real speaker (the Kaggle copy has
# ``OA_bite_neutral.wav``, which is an OAF recording).
_SPEAKER_ALIASES: dict[str, str] = {"oa": "OAF", "ya": "YAF"}

_NAME_RE = re.compile(r"^(?P<speaker>[a-z0-9]+)_(?P<word>[a-z0-9']+)_(?P<emotion>[a-z_]+)$")


class UnknownLabelError(ValueError):
    """A file name whose emotion part is not one of the TESS spellings."""


@dataclass(frozen=True)
class ParsedName:
    """Speaker, word and canonical emotion read from a TESS file name."""

    speaker: str
    word: str
    emotion: str


def canonical_emotion(label: str) -> str:
    """Map any TESS spelling of an emotion (``"ps"``, ``"Pleasant_surprised"``) to its canonical name.

    Raises :class:`UnknownLabelError` for a label that is not a known spelling;
    it never guesses.
    """
    key = label.strip().lower().replace("-", "_").replace(" ", "_")
    if key not in _ALIASES:
        raise UnknownLabelError(
            f"unknown emotion label {label!r}; expected one of {sorted(set(_ALIASES))}"
        )
    return _ALIASES[key]


def parse_tess_name(filename: str) -> ParsedName:
    """Parse ``<SPK>_<word>_<emotion>.wav`` (any case) into speaker, word and emotion.

    >>> parse_tess_name("YAF_germ_ps.wav")
    ParsedName(speaker='YAF', word='germ', emotion='pleasant_surprise')

    Raises :class:`UnknownLabelError` when the name does not have the TESS
    shape or its emotion is not a known spelling.
    """
    stem = filename.rsplit("/", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    match = _NAME_RE.match(stem.strip().lower())
    if match is None and stem.count("_") >= 2 and not stem.isascii():
        raise UnknownLabelError(
            f"file name {filename!r} has characters outside plain ASCII (a-z, 0-9, '); TESS names are plain "
            "ASCII <SPEAKER>_<word>_<emotion>.wav: rename the file"
        )
    if match is None:
        raise UnknownLabelError(
            f"file name {filename!r} is not of the form <SPEAKER>_<word>_<emotion>.wav"
        )
    speaker = match["speaker"]
    speaker = _SPEAKER_ALIASES.get(speaker, speaker.upper())
    return ParsedName(speaker=speaker, word=match["word"], emotion=canonical_emotion(match["emotion"]))
