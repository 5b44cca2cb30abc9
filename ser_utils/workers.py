"""Worker processes that die with their parent.

joblib's loky workers outlive a parent killed with SIGKILL: they finish the
tasks already queued (a 2800-clip extraction kept writing chunks for almost a
minute). Each worker loop calls :func:`stop_if_orphaned` between clips with
the parent's process id, so a worker whose parent is gone stops within one
clip and writes nothing more. On Linux the first call also asks the kernel to
SIGKILL the worker the moment its parent dies (``prctl(PR_SET_PDEATHSIG)``),
so it does not even finish the clip it is on.
"""

from __future__ import annotations

import os
import signal
import sys

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
