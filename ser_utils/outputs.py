"""Writing outputs safely: check the path first, write to a temp file, then rename.

Every command that writes a file or a folder (``manifest -o``, ``features -o``,
``demo-corpus``, ``download``, ``train -o``, ``report --readme/--figure``,
``predict --cam``) goes through :func:`check_output_path` before any work and
:func:`atomic_write` for the file itself, so that

- an output never lands on an input: an existing audio clip, archive, model or
  other data file, a file inside the data folder, or a folder where a file is
  expected (and the reverse) is refused with :class:`~ser_utils.errors.UserError`;
- an unwritable or read-only location is reported as one line, not a traceback;
- an interrupted or failed write leaves the old file untouched and no partial
  file behind (``os.replace`` is atomic on one file system).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import UserError

#: Suffixes of files an output must never replace (inputs: audio, archives, models, cached arrays).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".m4a", ".opus")
DATA_SUFFIXES = AUDIO_SUFFIXES + (".zip", ".part", ".npz", ".npy", ".keras", ".h5", ".ipynb", ".py", ".toml")
#: Figure formats matplotlib writes without extra software.
IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff", ".webp")
#: First bytes of data files, for outputs whose name does not say what they hold.
_MAGIC = (b"RIFF", b"fLaC", b"OggS", b"ID3", b"FORM", b"PK\x03\x04", b"\x93NUMPY", b"\x89HDF")

KINDS = ("file", "image", "dir")


def _sniff_data(path: Path) -> bool:
    """True when ``path`` starts like an audio file, an archive or an array file."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    return any(head.startswith(m) for m in _MAGIC)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError):
        return False
    return True


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            return parent
    return Path(path.anchor or ".")


def check_output_path(
    path: str | os.PathLike,
    *,
    kind: str = "file",
    data_dir: str | os.PathLike | None = None,
    what: str = "output",
) -> Path:
    """Validate where a command will write; return the path to use (an image may gain ``.png``).

    ``kind`` is ``"file"`` (a new or replaceable text/CSV file), ``"image"``
    (a figure: the extension picks the format; none means ``.png``) or
    ``"dir"`` (a folder, created if missing). Raises :class:`UserError` when the
    path is an existing audio/data file, lies inside ``data_dir``, is a folder
    where a file is expected (or a file where a folder is expected), has an
    unknown image extension, or sits under a file or an unwritable folder.
    ``what`` names the option in messages (e.g. ``"--figure"``).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    p = Path(os.fsdecode(path)).expanduser()
    if str(path) == "":
        raise UserError(f"{what}: empty path")
    if kind == "image" and not p.is_dir():
        if not p.suffix:
            p = p.with_name(p.name + ".png")
        elif p.suffix.lower() not in IMAGE_SUFFIXES:
            raise UserError(f"{what} {str(p)!r}: unknown image format {p.suffix!r}; use one of "
                            f"{', '.join(IMAGE_SUFFIXES)} (no extension means .png)")
    if data_dir is not None and _inside(p, Path(data_dir)):
        raise UserError(f"{what} {str(p)!r} lies inside the data folder {str(data_dir)!r}; "
                        "outputs never go next to the input clips: choose another location")
    if p.is_symlink() and not p.exists():
        raise UserError(f"{what} {str(p)!r} is a broken symbolic link; remove it or choose another path")
    if kind == "dir":
        if p.exists() and not p.is_dir():
            raise UserError(f"{what} {str(p)!r} is a file, but a folder is needed here; choose a folder path")
        target = p if p.is_dir() else _existing_ancestor(p)
    else:
        if p.is_dir():
            example = p / ("out.png" if kind == "image" else "out.csv")
            raise UserError(f"{what} {str(p)!r} is a folder, but a file is needed here; "
                            f"give a file name, e.g. {str(example)!r}")
        if p.exists() and not p.is_file():
            raise UserError(f"{what} {str(p)!r} is not a regular file (a device or a pipe?); choose another path")
        if p.exists() and (p.suffix.lower() in DATA_SUFFIXES or _sniff_data(p)):
            raise UserError(f"{what} {str(p)!r} is an existing audio or data file; refusing to overwrite "
                            "an input: choose another name")
        target = _existing_ancestor(p)
    if not target.is_dir():
        raise UserError(f"cannot write {what} {str(p)!r}: {str(target)!r} is a file, not a folder")
    if not os.access(target, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {what} {str(p)!r}: the folder {str(target)!r} is not writable "
                        "(read-only or no permission); choose another location")
    return p


def make_output_dir(path: str | os.PathLike, *, what: str = "output folder") -> Path:
    """Create folder ``path`` (and parents); an OS refusal becomes a one-line :class:`UserError`."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise UserError(f"cannot create {what} {str(p)!r}: a file is in the way ({exc.filename})") from exc
    except OSError as exc:
        raise UserError(f"cannot create {what} {str(p)!r}: {exc.strerror or exc}") from exc
    return p


def is_being_written(path: str | os.PathLike) -> bool:
    """True for a temporary file of :func:`atomic_write` (``.<name>.<random>.tmp<suffix>``): not yet data."""
    name = Path(path).name
    return name.startswith(".") and ".tmp" in name[1:] and name.endswith(f".tmp{Path(name).suffix}")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, what: str = "output") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``, else delete it.

    The temp file keeps ``path``'s suffix (so matplotlib and pandas pick the
    right format) and is created in the same folder (so the rename is atomic).
    The final file gets the usual permissions (umask), not the temp file's 0600.
    """
    p = Path(path)
    if not p.parent.is_dir():
        make_output_dir(p.parent, what=f"folder of {what}")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=f".tmp{p.suffix}", dir=p.parent)
    except OSError as exc:
        raise UserError(f"cannot write {what} {str(p)!r}: {exc.strerror or exc}") from exc
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, p)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, UserError):
            raise
        raise UserError(f"cannot write {what} {str(p)!r}: {exc.strerror or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_figure(fig, path: str | os.PathLike, *, what: str = "--figure") -> Path:
    """Check ``path`` as an image output, write ``fig`` to it atomically and close it; return the real path.

    A name without an extension gets ``.png``; the format follows the extension.
    """
    import matplotlib.pyplot as plt

    out = check_output_path(path, kind="image", what=what)
    try:
        with atomic_write(out, what=f"{what} figure") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format=out.suffix.lstrip(".").lower())
    finally:
        plt.close(fig)
    return out
