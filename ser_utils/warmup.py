"""Compile librosa's numba functions once, in one process, when the environment is installed.

librosa caches its numba-compiled helpers (pitch tracking, zero crossings, peak picking) on disk.
Two processes that compile the same generalised ufunc at once can write cache files that do not
match, and every later call then segfaults (numba issue 10128, unfixed in the released numba).
The book runs processes side by side (the grid's workers, a grader next to a chapter, the tests'
workers), so ``make install`` calls this module: with the cache written once here, later processes
only read it. A cache already broken is detected (the compiling child dies by a signal) and
rebuilt.

    python -m ser_utils.warmup      # prints what it did; exit 1 if the cache cannot be made to work
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_CHILD = "--child"


def exercise_compiled_functions() -> None:
    """Call every librosa path of the book that numba compiles: features, yin, pyin, onsets."""
    import numpy as np

    from .features import FeatureConfig, extract_from_audio
    from .prosody import ProsodyConfig, prosody_vector

    cfg = FeatureConfig()
    t = np.arange(cfg.sample_rate) / cfg.sample_rate  # one second of a gliding vowel-like tone
    audio = (0.3 * np.sin(2 * np.pi * (180 + 40 * t) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    extract_from_audio(audio, cfg)
    for method in ("yin", "pyin"):
        prosody_vector(audio, ProsodyConfig(method=method))


def librosa_cache_files() -> list[Path]:
    """numba's cache files under librosa's package folder (index ``.nbi`` and data ``.nbc``)."""
    import importlib.util

    root = Path(importlib.util.find_spec("librosa").origin).parent
    return [p for pattern in ("*.nbi", "*.nbc") for p in root.rglob(f"__pycache__/{pattern}")]


def _run_child() -> int:
    """Exercise the functions in a fresh interpreter; its return code (negative: killed by that signal)."""
    return subprocess.run([sys.executable, "-m", "ser_utils.warmup", _CHILD], check=False).returncode


def main(argv: list[str] | None = None) -> int:
    """Warm the cache in a child process; on a crash, delete librosa's numba cache and try once more."""
    argv = sys.argv[1:] if argv is None else argv
    if argv == [_CHILD]:
        exercise_compiled_functions()
        return 0
    code = _run_child()
    if code < 0:  # killed by a signal: the cache on disk is broken (see the module docstring)
        stale = librosa_cache_files()
        for path in stale:
            path.unlink(missing_ok=True)
        print(f"warmup: the compiled cache crashed (signal {-code}); deleted {len(stale)} numba cache files of "
              "librosa and compiled them again")
        code = _run_child()
    print("warmup: librosa's numba functions compiled and cached" if code == 0 else
          f"warmup: compiling librosa's numba functions failed (exit {code}); run `python -m ser_utils.warmup`"
          " again and read the error above")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
