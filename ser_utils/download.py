"""Downloading TESS from the Borealis (Scholars Portal) Dataverse, and RAVDESS from Zenodo.

The Dataverse access API serves the whole dataset as one zip. The download
streams to ``<dest>/<name>.part`` with a tqdm progress bar, resumes a partial
file with an HTTP ``Range`` request, verifies the archive (zip integrity and,
when given, a SHA-256) and only then extracts it and renames the ``.part``.
RAVDESS goes through the same steps, checked against the MD5 its Zenodo record publishes.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm.auto import tqdm

from .errors import DownloadError
from .quiet import bar_hidden

#: DOI of "Toronto emotional speech set (TESS)", Dupuis & Pichora-Fuller, 2010.
TESS_DOI = "doi:10.5683/SP2/E8H2MF"
TESS_URL = f"https://borealisdata.ca/api/access/dataset/:persistentId/?persistentId={TESS_DOI}"
_CHUNK = 1 << 16  # small enough that an interrupted transfer keeps most of what arrived


@dataclass(frozen=True)
class Archive:
    """One downloadable corpus archive: where it is, what it is called once here, how it is checked."""

    url: str
    archive_name: str  # the zip's file name in the download folder
    out_name: str  # the folder it is extracted into
    hashes: dict[str, str | None]  # {"sha256" or "md5": expected digest, None when unknown}
    what: str  # the corpus name in messages
    by_hand: str  # how to get it when the download fails
    nested_zips: bool  # the zip holds zips to unpack too (the Dataverse TESS archive)


def download_tess(
    dest: str | os.PathLike,
    *,
    url: str = TESS_URL,
    sha256: str | None = None,
    archive_name: str = "tess.zip",
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Fetch, verify and extract the TESS archive into ``dest``; return the extracted folder.

    A partial ``.part`` file from an interrupted run is resumed, not restarted.
    An archive already downloaded and verified is not fetched again.
    """
    archive = Archive(url, archive_name, "TESS", hashes={"sha256": check_sha256(sha256)}, what="TESS",
                      by_hand=f"download TESS by hand (Dataverse {TESS_DOI} or Kaggle) and set SER_TESS_DIR",
                      nested_zips=True)
    return _download_archive(dest, archive, timeout=timeout, progress=progress)


#: RAVDESS on Zenodo (Livingstone & Russo, 2018; CC BY-NC-SA 4.0): the audio-only speech archive and
#: the MD5 the record publishes for it.
RAVDESS_RECORD = "https://zenodo.org/records/1188976"
RAVDESS_URL = f"{RAVDESS_RECORD}/files/Audio_Speech_Actors_01-24.zip?download=1"
RAVDESS_MD5 = "bc696df654c87fed845eb13823edef8a"


def download_ravdess(
    dest: str | os.PathLike,
    *,
    url: str = RAVDESS_URL,
    md5: str | None = RAVDESS_MD5,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Fetch RAVDESS speech (``Audio_Speech_Actors_01-24.zip``, about 210 MB) from Zenodo, verify, extract.

    Same machinery as :func:`download_tess`: a ``.part`` file resumed with an
    HTTP Range request, the record's MD5 and the zip's own CRCs checked before
    anything is unpacked. Returns ``dest/RAVDESS`` (holding ``Actor_01`` ... ``Actor_24``).
    """
    archive = Archive(url, "Audio_Speech_Actors_01-24.zip", "RAVDESS", hashes={"md5": md5}, what="RAVDESS",
                      by_hand=f"download Audio_Speech_Actors_01-24.zip by hand from {RAVDESS_RECORD}",
                      nested_zips=False)
    return _download_archive(dest, archive, timeout=timeout, progress=progress)


def _download_archive(dest: str | os.PathLike, spec: Archive, *, timeout: float, progress: bool) -> Path:
    """Download ``spec.url`` to ``dest/archive_name`` (resumable), verify it, extract into ``dest/out_name``."""
    from .outputs import check_output_path, make_output_dir

    dest = check_output_path(Path(dest).expanduser(), kind="dir", what="download folder")
    archive = dest / spec.archive_name
    out = dest / spec.out_name
    for path, kind in ((archive, "file"), (archive.with_name(archive.name + ".part"), "file"), (out, "folder")):
        if path.exists() and path.is_dir() != (kind == "folder"):
            raise DownloadError(f"{path} is in the way (a {'file' if kind == 'folder' else 'folder'} where the "
                                f"download needs a {kind}); move it away and run again")
    make_output_dir(dest, what="download folder")
    if not archive.exists():
        part = archive.with_name(archive.name + ".part")
        _fetch(spec.url, part, timeout=timeout, progress=progress, what=spec.what, by_hand=spec.by_hand)
        _verify(part, spec.hashes, fresh=True)
        part.replace(archive)
    else:
        _verify(archive, spec.hashes, fresh=False)
    try:
        with zipfile.ZipFile(archive) as zf:
            safe_extract(zf, out, name=archive)
        # The Dataverse zip may itself hold zips (one per uploaded archive): unpack those too.
        for inner in sorted(out.rglob("*.zip")) if spec.nested_zips else ():
            with zipfile.ZipFile(inner) as zf:
                safe_extract(zf, inner.with_suffix(""), name=inner)
            inner.unlink()
    except (OSError, zipfile.BadZipFile) as exc:
        raise DownloadError(f"could not extract {archive} into {out}: {exc}. Free some disk space or fix the "
                            "folder's permissions, then run again (the verified archive is kept)") from exc
    return out


#: Bounds on what an archive may expand to, checked on the zip's own directory before extracting
#: anything (zipfile stops reading a member at its declared size, so the declaration is binding).
#: Audio barely compresses (TESS: 1.0-1.1x); a "zip bomb" expands thousands of times.
MAX_EXTRACTED_BYTES = 8 << 30
MAX_RATIO = 50.0
MAX_MEMBERS = 100_000


def safe_extract(zf: zipfile.ZipFile, out: Path, *, name: str | os.PathLike = "archive") -> None:
    """Extract ``zf`` into ``out`` after checking that it cannot fill the disk.

    Refuses (:class:`DownloadError`, nothing extracted) an archive with more than
    :data:`MAX_MEMBERS` entries, more than :data:`MAX_EXTRACTED_BYTES` in all, or
    an entry that expands more than :data:`MAX_RATIO` times its compressed size.
    Entry names with ``..`` or an absolute path stay inside ``out`` (zipfile's rule).
    """
    infos = zf.infolist()
    total = sum(i.file_size for i in infos)
    problem = None
    if len(infos) > MAX_MEMBERS:
        problem = f"{len(infos)} entries (at most {MAX_MEMBERS})"
    elif total > MAX_EXTRACTED_BYTES:
        problem = f"{total / 2**30:.1f} GiB once extracted (at most {MAX_EXTRACTED_BYTES / 2**30:.0f} GiB)"
    else:
        worst = max(infos, key=lambda i: i.file_size / max(i.compress_size, 1), default=None)
        if worst is not None and worst.file_size > 1 << 20 and worst.file_size / max(worst.compress_size, 1) > MAX_RATIO:
            problem = (f"entry {worst.filename!r} expands {worst.file_size / max(worst.compress_size, 1):.0f} times "
                       f"({worst.compress_size} bytes to {worst.file_size / 2**20:.0f} MiB), which audio never does")
    if problem:
        raise DownloadError(f"refusing to extract {name}: {problem}; it is not a speech corpus archive (a zip bomb?). "
                            "Delete it and download again, or download by hand")
    zf.extractall(out)


def check_sha256(sha256: str | None) -> str | None:
    """``sha256`` lower-cased when it is 64 hex digits (or None); :class:`DownloadError` otherwise.

    Checked before anything is fetched or verified, so a typo in the hash can
    never remove a good archive.
    """
    if sha256 is None:
        return None
    text = sha256.strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise DownloadError(f"--sha256 {sha256!r} is not a SHA-256 hash (64 hexadecimal digits); "
                            "copy it again from the dataset page. Nothing was downloaded or removed")
    return text


def _fetch(url: str, part: Path, *, timeout: float, progress: bool, what: str, by_hand: str) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        resp = requests.get(url, headers=headers, stream=True, timeout=timeout)
    except requests.RequestException as exc:
        raise DownloadError(f"could not reach {url}: {exc}. Check the network, or {by_hand}.") from exc
    with resp:
        if resp.status_code == 416:  # the part file is already complete
            return
        if resp.status_code not in (200, 206):
            hint = ("check --url; a rerun will not help" if 400 <= resp.status_code < 500
                    else "the server has a problem: try again later, or download by hand")
            raise DownloadError(f"{url} answered HTTP {resp.status_code}; {hint}")
        if have and resp.status_code == 200:
            have = 0  # the server ignored Range: start over
        total = resp.headers.get("Content-Length")
        total = int(total) + have if total is not None else None
        mode = "ab" if have else "wb"
        try:
            fh = open(part, mode)
        except OSError as exc:
            raise DownloadError(f"cannot write {part}: {exc.strerror or exc}; choose a writable folder") from exc
        with fh, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=f"Downloading {what}", disable=bar_hidden(progress)
        ) as bar:
            try:
                for chunk in resp.iter_content(_CHUNK):
                    fh.write(chunk)
                    bar.update(len(chunk))
            except OSError as exc:  # disk full, file system gone read-only
                raise DownloadError(f"writing {part} failed: {exc.strerror or exc}; free some space, "
                                    "then run again to resume") from exc
            except requests.RequestException as exc:
                raise DownloadError(f"the transfer from {url} broke off ({type(exc).__name__}); "
                                    "run again to resume where it stopped") from exc


def _verify(path: Path, hashes: dict[str, str | None], *, fresh: bool) -> None:
    """Check ``path``: each expected hash given (``{"sha256": ..., "md5": ...}``), then zip integrity.

    ``fresh``: just downloaded (a ``.part``). A fresh download that fails a
    hash is removed (a rerun fetches it again); an archive that was already
    there is never deleted: the message says what to check, since the
    expected hash itself may be the wrong one.
    """
    for algo, expected in hashes.items():
        if not expected:
            continue
        digest = hashlib.new(algo)
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(block)
        label = algo.upper().replace("SHA", "SHA-")
        if digest.hexdigest() != expected.lower():
            if fresh:
                path.unlink()
                raise DownloadError(f"{path.name}: {label} mismatch (got {digest.hexdigest()}, expected {expected}); "
                                    "the download was removed. Check the expected hash; if it is right, run "
                                    "again to download afresh")
            raise DownloadError(f"{path}: {label} is {digest.hexdigest()}, not the expected {expected}. The file "
                                "was kept: check the expected hash; if it is right, the archive is damaged: delete "
                                f"{path} and run again (a rerun alone will not help)")
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except zipfile.BadZipFile as exc:
        if fresh:
            raise DownloadError(
                f"{path} is not a complete zip archive ({exc}); run again to resume, or delete it to restart"
            ) from exc
        raise DownloadError(f"{path} is not a valid zip archive ({exc}); a rerun will not fix it: delete the "
                            "file and run again to download afresh") from exc
    if bad is not None:
        raise DownloadError(f"{path}: member {bad!r} is corrupt; a rerun will not fix it: "
                            "delete the file and run again")
