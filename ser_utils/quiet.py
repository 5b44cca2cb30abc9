"""Keeping third-party libraries' start-up chatter out of the book, the tests and the console.

Shared by the model code (TensorFlow must be quietened before it is imported),
the chapter setup and the book runner, so it lives in neither.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings

#: Environment variables that quieten TensorFlow, oneDNN and transformers/the hub (set only where unset).
QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}


def quiet_libraries() -> None:
    """Silence the start-up chatter of TensorFlow, transformers and friends (errors still show).

    Sets environment variables (only where unset) and library loggers; it never
    touches the process's warning filters: a warning is filtered where it is
    raised (:func:`import_quietly`), or by a notebook page for itself.
    """
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    for name in ("tensorflow", "absl", "transformers", "numba", "matplotlib", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def import_quietly():
    """A block in which third-party imports may raise FutureWarnings (TensorFlow/Keras' own deprecations)
    without them reaching the user; the warning filters are restored afterwards."""
    quiet_libraries()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def bar_hidden(enabled: bool = True) -> bool:
    """tqdm's ``disable``: hide a progress bar when not ``enabled`` or when ``TQDM_DISABLE`` is set.

    tqdm reads ``TQDM_DISABLE`` only for calls that leave ``disable`` unset; the book runner sets it
    in the chapter kernels (an executed page would keep a bar as a frozen stderr box), so every
    bar that passes ``disable=`` asks here.
    """
    return not enabled or os.environ.get("TQDM_DISABLE", "").strip().lower() in {"1", "true", "yes"}
