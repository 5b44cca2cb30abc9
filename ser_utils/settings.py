"""Environment variables and run parameters, validated in one place with one vocabulary.

Every value a user can set from outside the code - the ``SER_*`` environment
variables and the chapters' papermill parameters (``-p quick no``, ``-p seeds
0``) - is read through the functions here, so a typo is one clear line
(:class:`~ser_utils.errors.ParameterError`, exit status 2 on the command line)
instead of a silent default or a traceback three modules later.

Yes/no values, everywhere: ``1 true yes on`` mean yes and ``0 false no off``
(or empty) mean no, in any case; anything else (``2``, ``y``, ``garbage``) is
refused. Papermill passes ``-p quick no`` as the string ``"no"``, which is
therefore *no*, not a true-looking non-empty string.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .errors import ParameterError

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")
DATASETS = ("auto", "tess", "demo")
_WORDS = "1/0, true/false, yes/no or on/off"


def parse_bool(value, name: str) -> bool | None:
    """``value`` as a yes/no (None stays None); :class:`ParameterError` naming ``name`` otherwise."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise ParameterError(f"{name}={value!r} is not a yes/no value: use {_WORDS}")


def env_bool(name: str, default: bool = False) -> bool:
    """The yes/no environment variable ``name`` (``default`` when unset)."""
    raw = os.environ.get(name)
    return default if raw is None else bool(parse_bool(raw, name))


def parse_int(value, name: str, *, low: int = 0, high: int = 2**32 - 1) -> int:
    """``value`` as an integer in [low, high]; a string of digits is accepted (papermill ``-p seed 1``)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ParameterError(f"{name} must be an integer, not {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ParameterError(f"{name} must be an integer, not {value!r}") from None
    if not low <= number <= high:
        raise ParameterError(f"{name} must be between {low} and {high}, not {number}")
    return number


def parse_epochs(value) -> int | None:
    """The epoch cap (None: the default); at least 1."""
    return None if value is None else parse_int(value, "epochs", low=1, high=100_000)


def parse_seeds(value, name: str = "seeds") -> list[int] | None:
    """A list of split seeds (None: the default). One integer, ``"0,1,2"`` or a list of integers."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p for p in value.replace(",", " ").split() if p]
    elif isinstance(value, int):
        parts = [value]
    elif isinstance(value, Iterable):
        parts = list(value)
    else:
        parts = [value]
    if not parts:
        raise ParameterError(f"{name} is empty; give one or more integers, e.g. [0, 1, 2]")
    try:
        return [parse_int(p, name) for p in parts]
    except ParameterError:
        raise ParameterError(f"{name} must be integers between 0 and 2**32 - 1 (e.g. [0, 1, 2] or \"0,1,2\"), "
                             f"not {value!r}") from None


def parse_dataset(value) -> str:
    """``auto``, ``tess`` or ``demo`` (any case); ``SER_DATASET`` replaces ``auto`` when set."""
    if value is None:
        value = "auto"
    if not isinstance(value, str) or value.strip().lower() not in DATASETS:
        raise ParameterError(f"dataset must be one of {', '.join(DATASETS)}, not {value!r}")
    value = value.strip().lower()
    if value == "auto" and os.environ.get("SER_DATASET", "").strip():
        env = os.environ["SER_DATASET"]
        if env.strip().lower() not in DATASETS:
            raise ParameterError(f"SER_DATASET={env!r} is not a dataset: use one of {', '.join(DATASETS)} "
                                 "(or unset it)")
        value = env.strip().lower()
    return value


def artifacts_root(default: Path) -> Path:
    """``SER_ARTIFACTS_DIR`` when set (checked: a folder that exists or can be made, writable), else ``default``."""
    raw = os.environ.get("SER_ARTIFACTS_DIR")
    if not raw:
        return default
    from .outputs import check_output_path

    return check_output_path(Path(raw).expanduser(), kind="dir", what="SER_ARTIFACTS_DIR")


def env_data_dir(name: str, *, help_text: str = "") -> Path | None:
    """The data folder named by environment variable ``name`` (None when unset).

    A file, a missing folder or a folder without audio is refused, never
    quietly replaced by the demo corpus.
    """
    raw = os.environ.get(name)
    if not raw:
        return None
    from .data import find_audio_files

    folder = Path(raw).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ParameterError(f"{name}={raw!r} is a file, not a folder: point it at the folder that holds the clips")
    if not folder.is_dir():
        raise ParameterError(f"{name}={raw!r} does not exist: fix the path or unset {name}")
    if not find_audio_files(folder):
        raise ParameterError(f"{name}={raw!r} holds no audio files: point it at the folder that holds the clips "
                             f"or unset it. {help_text}".rstrip())
    return folder


def normalise_chapter_parameters(namespace: dict) -> None:
    """Validate the optional chapter parameters in a notebook's namespace and store them normalised.

    Called by the chapter setup with the notebook's variables, so ``-p seeds abc``,
    ``-p full maybe`` or ``-p protocols speakr`` stops at the first cell with one
    line saying what is wrong, and ``-p seeds 1`` or ``-p full no`` mean what they say
    (``[1]``, ``False``) in the cells that follow.
    """
    from .splits import PROTOCOLS

    if "seeds" in namespace:
        namespace["seeds"] = parse_seeds(namespace["seeds"])
    if "full" in namespace:
        namespace["full"] = bool(parse_bool(namespace["full"], "full"))
    protocols = namespace.get("protocols")
    # Only a parameter value (a name or a list of names) is checked: chapters 9 and 10 later bind
    # ``protocols`` to protocol objects, and re-running the setup cell must leave those alone.
    items = [protocols] if isinstance(protocols, str) else protocols
    if isinstance(items, list | tuple) and all(isinstance(p, str) for p in items):
        bad = [p for p in items if p not in PROTOCOLS]
        if bad or not items:
            raise ParameterError(f"protocols must be a list drawn from {', '.join(PROTOCOLS)}, not {protocols!r}")
        namespace["protocols"] = list(items)
