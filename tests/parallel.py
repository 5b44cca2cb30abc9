"""pytest plugin for make test's parallel runs (pytest-xdist): one numba cache folder per worker.

librosa compiles its helpers with numba's on-disk cache (``cache=True``), which is not safe for
processes that compile the same function at the same time: in a fresh environment two workers
wrote and read it together and one died of a segmentation fault in ``librosa.util.localmin``.
Each worker, and the chapter kernels it starts (they inherit its environment), gets its own
folder; a single-process run keeps numba's default.
"""

from __future__ import annotations

import hashlib
import os
import tempfile


def pytest_configure(config) -> None:
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker and "NUMBA_CACHE_DIR" not in os.environ:
        tree = hashlib.sha256(str(config.rootpath).encode()).hexdigest()[:8]  # two checkouts never share one
        os.environ["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"ser-book-numba-{tree}-{worker}")
