"""The package's error types: one base, and :class:`UserError` for mistakes the user can fix.

Library code raises these at the boundary where it knows what went wrong and
how to fix it; ``python -m ser_utils`` prints any :class:`UserError` as one line
and exits with status 2. Every other exception is a bug and keeps its traceback.
Each specific error also keeps a built-in base (``FileNotFoundError``,
``ValueError``...), so ``except OSError`` in a student's code still catches it.
"""

from __future__ import annotations


class SerError(Exception):
    """Base class of every error ``ser_utils`` raises on purpose."""


class UserError(SerError):
    """A mistake the user can fix (bad argument, missing or unusable data); the message says how."""


class CorpusNotFoundError(UserError, FileNotFoundError):
    """A corpus folder is missing or holds no audio; the message says where we looked and how to get it."""


class TessNotFoundError(CorpusNotFoundError):
    """No usable TESS folder was found (the book's default corpus)."""


class DownloadError(UserError, RuntimeError):
    """The archive could not be fetched or failed verification; the message says what to do."""


class BookSetupError(UserError, ValueError):
    """The book cannot be run as asked: a toc entry without its file, a bad ``--only``, a busy build folder."""


class PretrainedUnavailableError(UserError, OSError):
    """Pretrained weights were asked for but are neither a local folder, nor cached, nor downloadable."""


class AudioFileError(UserError, ValueError):
    """An audio file cannot be used (unreadable, empty, silent, truncated, implausible rate or length)."""


class ParameterError(UserError, ValueError):
    """A run parameter or ``SER_*`` environment variable has a value that means nothing; the message says which."""
