"""Worker processes that die with their parent.

joblib's loky workers outlive a parent killed with SIGKILL: they finish the
tasks already queued (a 2800-clip extraction kept writing chunks for almost a
minute). Each worker loop calls :func:`stop_if_orphaned` between clips with
the parent's process id, so a worker whose parent is gone stops within one
clip and writes nothing more. On Linux the first call also asks the kernel to
SIGKILL the worker the moment its parent dies (``prctl(PR_SET_PDEATHSIG)``),
so it does not even finish the clip it is on.

A worker still starting (importing librosa, unpickling its first task) would
outlive its parent until that first check, seconds on a slow machine: so the
pools are started through :func:`worker_pool` and :func:`worker_executor`,
whose workers arm the signal the moment they start, before any task.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator

_ARMED: set[int] = set()


def parent_alive(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie, killed but not yet reaped, counts as dead)."""
    if os.getppid() == pid:  # still our parent: it cannot have been reaped
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                return fh.read().split(b") ", 1)[-1][:1] != b"Z"
        except OSError:
            return True  # no /proc (macOS): being our parent is enough
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().split(b") ", 1)[-1][:1] != b"Z"
    except OSError:
        return True


def stop_if_orphaned(parent_pid: int | None) -> None:
    """Exit this process at once (no cleanup, no output) when ``parent_pid`` is no longer alive.

    Called only in worker processes; a call in the parent itself (``jobs=1``
    runs in-process) is a no-op.
    """
    if parent_pid is None or parent_pid == os.getpid():
        return
    if parent_pid not in _ARMED and os.getppid() == parent_pid:
        _die_with_parent()
        _ARMED.add(parent_pid)
    if not parent_alive(parent_pid):
        os._exit(1)


def _die_with_parent() -> None:
    """Linux only: have the kernel SIGKILL this process when its parent exits (a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no libc symbol: the per-clip check still stops the worker
        pass


def _armed_now() -> dict:
    """The loky arguments that run :func:`stop_if_orphaned` in each worker as it starts (this process as parent)."""
    return {"initializer": stop_if_orphaned, "initargs": (os.getpid(),)}


def one_blas_thread():
    """A context in which NumPy's BLAS uses one thread (threadpoolctl).

    Two reasons. Small problems (a logistic regression on hundreds of clips x 187
    values): extra BLAS threads only wait on each other, and on a busy 2-core machine
    one fit went from 0.35 s (one thread) to 30 s (default threads). Reproducible
    bytes: a feature chunk computed in this process (all cores) summed the mel
    projection in another order than one from a pool worker, so results differed in
    the last bit depending on where they were computed.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


@contextlib.contextmanager
def worker_pool() -> Iterator[None]:
    """Run the ``joblib.Parallel`` calls inside on loky workers that die with this process from their first moment.

    The same initializer as :func:`worker_executor`, so the two share joblib's
    process-wide pool instead of restarting it.
    """
    from joblib import parallel_config

    with parallel_config(backend="loky", **_armed_now()):
        yield


def worker_executor(n_jobs: int):
    """joblib's process-wide loky executor with ``n_jobs`` workers that die with this process from their first moment."""
    from joblib.executor import get_memmapping_executor

    return get_memmapping_executor(n_jobs, **_armed_now())
