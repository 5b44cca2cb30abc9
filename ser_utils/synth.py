"""A small synthetic, TESS-shaped demo corpus, so every chapter runs without the real data.

Each clip is "Say the word <word>" spoken by a source-filter voice: a glottal
sawtooth at a time-varying pitch, plus breath noise, shaped by a spectral-tilt
filter and three formant resonators per syllable. The emotion changes the
prosody in the directions reported in the vocal-affect literature (e.g. Banse &
Scherer 1996; Juslin & Laukka 2003): anger and happiness raise pitch, pitch
range, loudness and high-frequency energy; sadness lowers them and slows the
rate; fear raises pitch and adds tremor; pleasant surprise has a wide, rising
contour. Every profile is blurred by per-clip random variation, and the two
synthetic speakers differ in pitch, vocal-tract length and expressiveness, so
the corpus is learnable but not trivially (no single cue separates it).

The speakers are named ``SYNA`` and ``SYNB`` so a synthetic clip can never be
mistaken for a TESS one (``OAF``/``YAF``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import lfilter

from .labels import EMOTIONS
from .quiet import bar_hidden

#: Sample rate of TESS recordings, used for the demo corpus too.
DEMO_SAMPLE_RATE = 24414
DEMO_SPEAKERS = ("SYNA", "SYNB")
_MARKER = "demo_corpus.json"

# The NU-6-style monosyllables of the TESS word list (200 words).
WORDS: tuple[str, ...] = tuple(
    """back bar base bath bean beg bite boat bone book bought burn cab calm came cause chain
    chair chalk chat check cheek chief choice cool dab date dead death deep dime dip ditch dodge
    dog doll door fail fall far fat fit five food gas gaze germ get gin goal good goose gun half
    hall hash hate have haze hire hit hole home hurl hush jail jar join judge jug juice keen keep
    keg kick kill king kite knock late laud lean learn lease lid life limb live loaf long lore
    lose lot love luck make match merge mess met mill mob mode mood moon mop mouse nag name near
    neat nice note numb pad page pain pass pearl peg perch phone pick pike pole pool puff rag raid
    rain raise rat reach read red ring ripe road room rose rough rush said sail search seize sell
    shack shall shawl sheep shirt should shout size soap soup sour south sub such sure take talk
    tape team tell thin third thought thumb time tip tire ton tool tough turn vine voice void vote
    wag walk wash week wheat when which whip white wife wire witch yearn yes young youth""".split()
)


@dataclass(frozen=True)
class EmotionProfile:
    """Prosodic settings of one emotion, relative to the speaker's neutral voice."""

    pitch: float  # multiplier on mean f0
    pitch_range: float  # multiplier on the contour's excursion
    contour: str  # "fall", "rise", "rise_fall", "flat", "irregular"
    rate: float  # syllables per second multiplier (>1 faster, shorter clip)
    loudness_db: float
    jitter: float  # relative cycle-to-cycle pitch perturbation
    tremor: float  # depth of a ~6 Hz pitch tremor
    tilt: float  # one-pole low-pass coefficient of the source: higher = duller voice
    breath: float  # aspiration noise level


PROFILES: dict[str, EmotionProfile] = {
    "angry": EmotionProfile(1.22, 1.5, "fall", 1.08, 5.0, 0.020, 0.00, 0.55, 0.02),
    "disgust": EmotionProfile(0.92, 1.0, "fall", 0.80, 0.5, 0.015, 0.00, 0.80, 0.05),
    "fear": EmotionProfile(1.30, 1.1, "irregular", 1.15, 0.0, 0.030, 0.05, 0.70, 0.06),
    "happy": EmotionProfile(1.18, 1.6, "rise_fall", 1.05, 3.0, 0.010, 0.00, 0.60, 0.03),
    "neutral": EmotionProfile(1.00, 1.0, "fall", 1.00, 0.0, 0.008, 0.00, 0.72, 0.03),
    "pleasant_surprise": EmotionProfile(1.28, 2.0, "rise", 0.97, 3.0, 0.010, 0.00, 0.62, 0.03),
    "sad": EmotionProfile(0.88, 0.5, "fall", 0.78, -5.0, 0.012, 0.01, 0.85, 0.08),
}


@dataclass(frozen=True)
class Speaker:
    """A synthetic speaker: neutral pitch, vocal-tract scaling and how strongly she emotes."""

    name: str
    f0: float
    formant_scale: float
    expressiveness: float


SPEAKERS: dict[str, Speaker] = {
    "SYNA": Speaker("SYNA", f0=185.0, formant_scale=1.00, expressiveness=0.8),
    "SYNB": Speaker("SYNB", f0=225.0, formant_scale=1.12, expressiveness=1.2),
}

_VOWELS = {  # F1, F2, F3 (Hz) of an adult female voice, roughly (Peterson & Barney style)
    "a": (850, 1220, 2810),
    "e": (600, 2330, 2990),
    "i": (310, 2790, 3310),
    "o": (600, 920, 2700),
    "u": (370, 950, 2670),
    "@": (550, 1600, 2750),
    "r": (500, 1430, 1700),
}
_CARRIER = ("e", "@", "r")  # "say", "the", "word"


def synthesize_clip(
    word: str,
    emotion: str,
    speaker: str = "SYNA",
    *,
    seed: int = 0,
    sr: int = DEMO_SAMPLE_RATE,
    voice: Speaker | None = None,
) -> np.ndarray:
    """Synthesize "Say the word <word>" in ``emotion`` by ``speaker``; float32 mono in [-1, 1].

    Deterministic for a given (word, emotion, speaker, seed). ``voice`` gives
    a speaker outside :data:`SPEAKERS` (the synthetic CREMA-D actors).
    """
    if emotion not in PROFILES:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {EMOTIONS}")
    spk = voice or SPEAKERS[speaker]
    prof = PROFILES[emotion]
    who = DEMO_SPEAKERS.index(speaker) if voice is None else 1000 + _stable_hash(voice.name)
    rng = np.random.default_rng([seed, who, _stable_hash(word), EMOTIONS.index(emotion)])
    k = spk.expressiveness
    # Emotion effects scaled by the speaker's expressiveness, then blurred per clip.
    pitch = spk.f0 * (1 + k * (prof.pitch - 1)) * rng.normal(1, 0.07)
    excursion = 0.18 * (1 + k * (prof.pitch_range - 1)) * rng.normal(1, 0.2)
    rate = (1 + k * (prof.rate - 1)) * rng.normal(1, 0.10)
    loud_db = k * prof.loudness_db + rng.normal(0, 2.5)
    tilt = float(np.clip(prof.tilt + rng.normal(0, 0.06), 0.3, 0.95))

    voicing = Voicing(pitch, excursion, tilt, spk.formant_scale, prof)
    vowels = list(_CARRIER) + [_word_vowel(word)]
    syl_dur = np.array([0.18, 0.10, 0.20, 0.36 + 0.03 * len(word)]) / rate
    syl_dur *= rng.normal(1, 0.08, size=len(syl_dur))
    t_total = float(syl_dur.sum())
    pieces = [_noise_floor(rng, rng.uniform(0.12, 0.45), sr)]
    t0 = 0.0
    for i, (vowel, dur) in enumerate(zip(vowels, syl_dur, strict=True)):
        onset = _consonant(rng, sr, dur=0.035 / rate, bright=1 - tilt)
        shape = SyllableShape(vowel, dur, t_start=t0 / t_total, t_end=(t0 + dur) / t_total,
                              stressed=(i == len(vowels) - 1))
        voiced = _syllable(rng, sr, voicing, shape)
        pieces += [onset, voiced, _noise_floor(rng, 0.03 / rate, sr)]
        t0 += dur
    pieces.append(_noise_floor(rng, rng.uniform(0.15, 0.55), sr))
    audio = np.concatenate(pieces)
    audio = audio / (np.max(np.abs(audio)) + 1e-9) * 0.25 * 10 ** (loud_db / 20)
    return np.clip(audio, -0.99, 0.99).astype(np.float32)


def _stable_hash(word: str) -> int:
    return int.from_bytes(word.encode()[:8].ljust(8, b"\0"), "little") % (2**31)


def _word_vowel(word: str) -> str:
    for ch in word:
        if ch in "aeiou":
            return ch
    return "@"


def _noise_floor(rng: np.random.Generator, dur: float, sr: int) -> np.ndarray:
    return (rng.normal(0, 0.002, int(dur * sr))).astype(np.float32)


def _consonant(rng: np.random.Generator, sr: int, dur: float, bright: float) -> np.ndarray:
    n = max(int(dur * sr), 8)
    noise = rng.normal(0, 1, n)
    # A brighter voice (less tilt) gives a crisper, high-passed burst.
    burst = lfilter([1, -min(0.95, 0.4 + bright)], [1], noise)
    return (0.15 * burst * np.hanning(n)).astype(np.float32)


def _contour(shape: str, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pitch contour over normalised utterance time t in [0, 1], in units of the excursion."""
    if shape == "fall":
        return 0.5 - t
    if shape == "rise":
        return -0.3 + 0.2 * t + 1.1 * np.clip(t - 0.6, 0, None) / 0.4
    if shape == "rise_fall":
        return np.sin(np.pi * t) - 0.4
    if shape == "irregular":
        knots = rng.normal(0, 0.5, 6)
        return np.interp(t, np.linspace(0, 1, 6), knots)
    return np.zeros_like(t)


@dataclass(frozen=True)
class Voicing:
    """How one clip is voiced, the same for each of its syllables: pitch, excursion, tilt, formants, emotion."""

    pitch: float  # Hz
    excursion: float  # pitch excursion, a fraction of ``pitch``
    tilt: float  # spectral tilt of the glottal source (one-pole coefficient)
    formant_scale: float  # the speaker's vocal-tract scaling of the vowel formants
    profile: EmotionProfile


@dataclass(frozen=True)
class SyllableShape:
    """One syllable of a clip: its vowel, duration (s), place in the utterance (``t`` in [0, 1]), stress."""

    vowel: str
    dur: float
    t_start: float
    t_end: float
    stressed: bool


def _syllable(rng: np.random.Generator, sr: int, voicing: Voicing, shape: SyllableShape) -> np.ndarray:
    """A voiced syllable: a sawtooth source along the emotion's pitch contour, filtered by the vowel's formants."""
    dur, vowel, prof = shape.dur, shape.vowel, voicing.profile
    pitch, excursion, tilt = voicing.pitch, voicing.excursion, voicing.tilt
    n = int(dur * sr)
    t = np.linspace(shape.t_start, shape.t_end, n)
    f0 = pitch * (1 + excursion * _contour(prof.contour, t, rng))
    f0 *= 1 + prof.jitter * rng.standard_normal(n).cumsum() / np.sqrt(np.arange(1, n + 1))
    f0 *= 1 + prof.tremor * np.sin(2 * np.pi * 6.0 * np.arange(n) / sr)
    f0 = np.clip(f0, 60, 700)
    phase = np.cumsum(f0 / sr)
    source = 2 * (phase % 1.0) - 1  # sawtooth: a crude glottal flow derivative
    source = lfilter([1 - tilt], [1, -tilt], source)  # spectral tilt
    source = source + prof.breath * rng.normal(0, 1, n)
    out = source
    for formant, bandwidth in zip(_VOWELS[vowel], (80, 100, 140), strict=True):
        out = _resonator(out, formant * voicing.formant_scale, bandwidth, sr)
    env = np.minimum(1, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.02 * sr))
    gain = 1.0 if shape.stressed else 0.7
    return (gain * env * out / (np.max(np.abs(out)) + 1e-9)).astype(np.float32)


def _resonator(x: np.ndarray, freq: float, bandwidth: float, sr: int) -> np.ndarray:
    """Second-order digital resonator (Klatt 1980) at ``freq`` Hz with ``bandwidth`` Hz."""
    r = np.exp(-np.pi * bandwidth / sr)
    theta = 2 * np.pi * min(freq, 0.45 * sr) / sr
    a1, a2 = -2 * r * np.cos(theta), r * r
    return lfilter([1 + a1 + a2], [1, a1, a2], x)


def check_demo_parameters(n_words: int, seed: int) -> None:
    """Raise :class:`~ser_utils.errors.UserError` unless ``n_words`` and ``seed`` are usable."""
    from .errors import UserError

    if not 1 <= n_words <= len(WORDS):
        raise UserError(f"--words must be between 1 and {len(WORDS)} (the TESS word list), not {n_words}; "
                        "10 words give 140 clips; the random protocol needs at least 6 words, the speaker protocol 9")
    if not 0 <= seed < 2**32:
        raise UserError(f"--seed must be between 0 and 2**32 - 1, not {seed}")


def read_marker(root: str | os.PathLike) -> dict | None:
    """The parameters recorded in a demo corpus folder's marker, or None (no marker, or unreadable)."""
    try:
        params = json.loads((Path(root) / _MARKER).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return params if isinstance(params, dict) else None


def write_demo_corpus(
    root: str | os.PathLike,
    *,
    n_words: int = 10,
    seed: int = 0,
    speakers: tuple[str, ...] = DEMO_SPEAKERS,
    sr: int = DEMO_SAMPLE_RATE,
    progress: bool = True,
) -> Path:
    """Write the demo corpus in TESS's layout: ``<SPK>_<emotion>/<SPK>_<word>_<emotion>.wav``.

    ``n_words`` words x 7 emotions x len(speakers) clips, 16-bit PCM at
    ``sr`` Hz. The ``demo_corpus.json`` marker is written first (with
    ``"complete": false``) and completed at the end, so an interrupted run
    resumes and keeps the clips already written. The marker never lies: a
    folder holding a demo corpus with other parameters (seed, words...), or
    audio that is not a demo corpus, is refused with
    :class:`~ser_utils.errors.UserError` rather than mixed.
    """
    from tqdm.auto import tqdm

    from .data import find_audio_files
    from .errors import UserError

    check_demo_parameters(n_words, seed)
    root = Path(root)
    params = {"n_words": n_words, "seed": seed, "speakers": list(speakers), "sample_rate": sr,
              "synthetic": True, "n_clips": n_words * len(EMOTIONS) * len(speakers)}
    old = read_marker(root)
    if old is not None:
        if {k: old.get(k) for k in params} != params:
            diff = ", ".join(f"{k} {old.get(k)!r} (asked: {v!r})" for k, v in params.items() if old.get(k) != v)
            raise UserError(f"{root} already holds a demo corpus written with other parameters: {diff}. "
                            "Its clips would not match the new ones: choose another folder, or delete it first")
    elif (root / _MARKER).exists():
        raise UserError(f"{root / _MARKER} is not readable; delete the folder {root} and run again")
    elif root.is_dir() and find_audio_files(root):
        raise UserError(f"{root} already holds audio files that are not a demo corpus; choose an empty folder")
    root.mkdir(parents=True, exist_ok=True)
    if old is None:
        _write_marker(root, {**params, "complete": False})
    jobs = [(s, w, e) for s in speakers for e in EMOTIONS for w in WORDS[:n_words]]
    for spk, word, emo in tqdm(jobs, desc="Synthesising demo corpus", disable=bar_hidden(progress)):
        tag = "ps" if emo == "pleasant_surprise" else emo  # TESS spells it 'ps' in file names
        path = root / f"{spk}_{emo}" / f"{spk}_{word}_{tag}.wav"
        if path.exists():
            continue
        _write_clip(path, synthesize_clip(word, emo, spk, seed=seed, sr=sr), sr)
    _write_marker(root, {**params, "complete": True})
    return root


def _write_clip(path: Path, audio: np.ndarray, sr: int) -> None:
    """One 16-bit WAV clip, written atomically under a unique temporary name.

    Two processes may build the same corpus at once (chapters executed in parallel): each writes
    its own temporary file and the rename makes one of the identical copies win.
    """
    from .outputs import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, what="demo clip") as tmp:
        sf.write(tmp, audio, sr, subtype="PCM_16", format="WAV")


def _write_marker(root: Path, content: dict) -> None:
    """The corpus's ``demo_corpus.json``, written atomically (a reader never sees half of it)."""
    from .outputs import atomic_write

    with atomic_write(root / _MARKER, what="demo corpus marker") as tmp:
        tmp.write_text(json.dumps(content, indent=2))


def ensure_demo_corpus(root: str | os.PathLike, *, n_words: int = 10, seed: int = 0) -> Path:
    """Return ``root`` holding the demo corpus with these parameters, writing it if needed."""
    root = Path(root)
    marker = root / _MARKER
    if marker.exists():
        params = read_marker(root) or {}
        if params.get("n_words") == n_words and params.get("seed") == seed and params.get("complete", True):
            return root
        if params.get("n_words") != n_words or params.get("seed") != seed:
            # Different parameters in our own managed folder: start again so no stale clip lingers.
            import shutil

            shutil.rmtree(root)
    return write_demo_corpus(root, n_words=n_words, seed=seed)


def is_demo_corpus(root: str | os.PathLike) -> bool:
    """True when ``root`` holds a corpus written by :func:`write_demo_corpus` (its marker, or only SYNA/SYNB clips).

    The speaker check catches a demo corpus whose marker was lost or copied
    without it, so it is never taken for real TESS.
    """
    root = Path(root)
    if (root / _MARKER).exists():
        return True
    if not root.is_dir():
        return False
    from .data import find_audio_files

    names = [p.name.upper() for p in find_audio_files(root)]
    return bool(names) and all(is_demo_speaker(n.split("_", 1)[0]) for n in names)


def is_demo_speaker(speaker: str) -> bool:
    """True for a speaker of the synthetic corpora: a TESS demo speaker or a synthetic CREMA-D actor (9001...)."""
    first = str(speaker).upper()
    return first in DEMO_SPEAKERS or (first.isdigit() and len(first) == 4 and int(first) >= DEMO_CREMA_FIRST_ACTOR)


# --- a synthetic CREMA-D-shaped corpus ---------------------------------------------------

#: Actor ids of the synthetic CREMA-D corpus: 9001... (real CREMA-D actors are 1001-1091).
DEMO_CREMA_FIRST_ACTOR = 9001
DEMO_CREMA_SAMPLE_RATE = 16000
_CREMA_CODES = {"angry": "ANG", "disgust": "DIS", "fear": "FEA", "happy": "HAP", "neutral": "NEU", "sad": "SAD"}


def demo_crema_voices(n_actors: int) -> list[Speaker]:
    """``n_actors`` synthetic voices, alternately lower (male-like) and higher (female-like) in pitch and formants."""
    voices = []
    for k in range(n_actors):
        low = k % 2 == 0
        step = k // 2
        voices.append(Speaker(str(DEMO_CREMA_FIRST_ACTOR + k),
                              f0=(105.0 if low else 195.0) + 9.0 * step,
                              formant_scale=(0.88 if low else 1.05) + 0.02 * step,
                              expressiveness=0.6 + 0.15 * ((3 * k) % 5)))
    return voices


def write_demo_crema(root: str | os.PathLike, *, n_actors: int = 8, n_sentences: int = 4, seed: int = 0,
                     progress: bool = False) -> Path:
    """Write a synthetic corpus in CREMA-D's layout: ``AudioWAV/<actor>_<sentence>_<EMO>_XX.wav``.

    ``n_actors`` voices (ids from 9001) x ``n_sentences`` of the 12 CREMA-D
    sentence codes x its 6 emotions, 16 kHz 16-bit, made by the same
    source-filter voice as the TESS-shaped demo corpus. A ``demo_corpus.json``
    marker (``"corpus": "crema-d"``) says it is synthetic. Deterministic by ``seed``.
    """
    from tqdm.auto import tqdm

    from .corpora import CREMA_SENTENCES
    from .errors import UserError

    if not 3 <= n_actors <= 90 or not 1 <= n_sentences <= len(CREMA_SENTENCES):
        raise UserError(f"the synthetic CREMA-D corpus needs 3-90 actors and 1-12 sentences, "
                        f"not {n_actors} and {n_sentences}")
    root = Path(root)
    params = {"corpus": "crema-d", "n_actors": n_actors, "n_sentences": n_sentences, "seed": seed,
              "sample_rate": DEMO_CREMA_SAMPLE_RATE, "synthetic": True,
              "n_clips": n_actors * n_sentences * len(_CREMA_CODES)}
    sentences = list(CREMA_SENTENCES.items())[:n_sentences]
    jobs = [(v, code, text, emo) for v in demo_crema_voices(n_actors) for code, text in sentences
            for emo in _CREMA_CODES]
    for voice, code, text, emo in tqdm(jobs, desc="Synthesising demo CREMA-D", disable=bar_hidden(progress)):
        path = root / "AudioWAV" / f"{voice.name}_{code}_{_CREMA_CODES[emo]}_XX.wav"
        if path.exists():
            continue
        audio = synthesize_clip(text.lower(), emo, voice.name, seed=seed, sr=DEMO_CREMA_SAMPLE_RATE, voice=voice)
        _write_clip(path, audio, DEMO_CREMA_SAMPLE_RATE)
    _write_marker(root, {**params, "complete": True})
    return root


def ensure_demo_crema(root: str | os.PathLike, *, n_actors: int = 8, n_sentences: int = 4, seed: int = 0) -> Path:
    """Return ``root`` holding the synthetic CREMA-D corpus with these parameters, (re)writing it if needed."""
    root = Path(root)
    params = read_marker(root) or {}
    wanted = {"corpus": "crema-d", "n_actors": n_actors, "n_sentences": n_sentences, "seed": seed}
    if params and {k: params.get(k) for k in wanted} == wanted and params.get("complete"):
        return root
    if params.get("corpus") == "crema-d":  # our own folder with other parameters: start again
        import shutil

        shutil.rmtree(root)
    return write_demo_crema(root, n_actors=n_actors, n_sentences=n_sentences, seed=seed)


def speak(text: str, out: str | os.PathLike, *, voice: str = "en-us", words_per_minute: int = 140) -> Path | None:
    """``text`` spoken by the espeak-ng formant synthesiser into the WAV file ``out``; None without espeak-ng.

    A voice that is in no corpus of the book (chapter 10.12). espeak-ng is a
    Debian/Ubuntu package (``apt install espeak-ng``), installed by ``make``
    where it can be; the output is the program's, so nothing is committed.
    """
    import shutil
    import subprocess

    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([exe, "-v", voice, "-s", str(words_per_minute), "-w", str(out), text], check=True,
                   capture_output=True, timeout=60)
    return out
