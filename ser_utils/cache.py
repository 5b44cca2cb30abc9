"""Content-keyed caches: one key rule and one read-validate-or-recompute rule for every cache.

A cache entry is named by :func:`cache_key` over *what produced it* (code
version, parameters, corpus) and *what it was computed from* (each input
file's :func:`file_digest`, a hash of its whole content). Size and
modification time are not enough: a clip replaced by other audio of the same
length, or edited in place with its mtime restored, must be recomputed.

Reading goes through :func:`read_valid`: a file that is missing returns None
(compute it), a file that cannot be read or fails its validator is reported
with a warning and removed, and the caller recomputes it. Writing goes through
:func:`ser_utils.outputs.atomic_write`, so a killed run leaves the old entry or
the new one, never half of one.

The feature chunks (:mod:`ser_utils.features`), the prosody table
(:mod:`ser_utils.prosody`), the eGeMAPS table (:mod:`ser_utils.egemaps`), the
splits (:mod:`ser_utils.splits`) and the saved models
(:mod:`ser_utils.training`) all use these helpers.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

#: Digest of a file that cannot be read (so the key still changes when it becomes readable).
UNREADABLE = "unreadable"
_BLOCK = 1 << 20


class InvalidCacheEntry(ValueError):
    """A cache file that was read but is not what it should be (the message says what is wrong)."""


def file_digest(path: str | os.PathLike) -> str:
    """BLAKE2b-128 of the whole file (``"unreadable"`` when it cannot be read).

    Hashing every byte costs about 1 ms per TESS clip (a few hundred MB/s), a
    small price next to decoding it, and it is the only key that sees a change
    in the middle of a file whose size and mtime were kept.
    """
    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as fh:
            while block := fh.read(_BLOCK):
                h.update(block)
    except OSError:
        return UNREADABLE
    return h.hexdigest()


def cache_key(producer: dict, files: Iterable[tuple[str, str | os.PathLike]] = (), *, length: int = 16) -> str:
    """Hex key over ``producer`` (JSON-able: code version, parameters, corpus) and ``(id, path)`` inputs.

    Each input counts by its id and the digest of its whole content, in the
    order given, so a renamed, replaced, added or removed clip changes the key.
    """
    h = hashlib.sha256(json.dumps(producer, sort_keys=True, default=str).encode())
    for ident, path in files:
        h.update(f"\0{ident}\0{file_digest(path)}".encode())
    return h.hexdigest()[:length]


def read_valid(path: str | os.PathLike, read: Callable[[Path], T], *, what: str) -> T | None:
    """``read(path)`` when the file exists and is valid; None when missing or bad (bad: warned and removed).

    ``read`` parses and validates; any exception it raises (a truncated zip, a
    JSON error, :class:`InvalidCacheEntry` from a check) means "recompute".
    """
    p = Path(path)
    if not p.exists():
        return None
    try:
        return read(p)
    except Exception as exc:  # noqa: BLE001 - every failure to read a cache file means "recompute it"
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        warnings.warn(f"{what} {p} is corrupt or stale ({reason}); recomputing it", UserWarning, stacklevel=3)
        try:
            p.unlink()
        except OSError:
            pass
        return None


def check(condition: bool, message: str) -> None:
    """Raise :class:`InvalidCacheEntry` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise InvalidCacheEntry(message)


def write_json(path: str | os.PathLike, obj, *, what: str) -> Path:
    """Write ``obj`` as JSON atomically (temp file, then rename); returns the path."""
    from .outputs import atomic_write

    p = Path(path)
    with atomic_write(p, what=what) as tmp:
        tmp.write_text(json.dumps(obj, indent=1), encoding="utf-8")
    return p
