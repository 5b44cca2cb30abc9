"""Worker processes that die with their parent.

joblib's loky workers outlive a parent killed with SIGKILL: they finish the
tasks already queued (a 2800-clip extraction kept writing chunks for almost a
minute). Each worker loop calls :func:`stop_if_orphaned` between clips with
the parent's process id, so a worker whose parent is gone stops within one
clip and writes nothing more.
"""

from __future__ import annotations

import os


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
    if not parent_alive(parent_pid):
        os._exit(1)
