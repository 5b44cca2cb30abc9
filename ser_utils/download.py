"""Downloading TESS from the Borealis (Scholars Portal) Dataverse, and RAVDESS from Zenodo.

The Dataverse access API serves the whole dataset as one zip. The download
streams to ``<dest>/<name>.part`` with a tqdm progress bar, resumes a partial
file with an HTTP ``Range`` request, verifies the archive (zip integrity and,
when given, a SHA-256) and only then extracts it and renames the ``.part``.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import requests
from tqdm.auto import tqdm

from .errors import DownloadError

#: DOI of "Toronto emotional speech set (TESS)", Dupuis & Pichora-Fuller, 2010.
TESS_DOI = "doi:10.5683/SP2/E8H2MF"
TESS_URL = f"https://borealisdata.ca/api/access/dataset/:persistentId/?persistentId={TESS_DOI}"
_CHUNK = 1 << 16  # small enough that an interrupted transfer keeps most of what arrived


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
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / archive_name
    if not archive.exists():
        part = archive.with_name(archive.name + ".part")
        _fetch(url, part, timeout=timeout, progress=progress)
        _verify(part, sha256)
        part.replace(archive)
    else:
        _verify(archive, sha256)
    out = dest / "TESS"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(out)
    # The Dataverse zip may itself hold zips (one per uploaded archive): unpack those too.
    for inner in sorted(out.rglob("*.zip")):
        with zipfile.ZipFile(inner) as zf:
            zf.extractall(inner.with_suffix(""))
        inner.unlink()
    return out


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
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "Audio_Speech_Actors_01-24.zip"
    if not archive.exists():
        part = archive.with_name(archive.name + ".part")
        _fetch(url, part, timeout=timeout, progress=progress, what="RAVDESS",
               by_hand=f"download Audio_Speech_Actors_01-24.zip by hand from {RAVDESS_RECORD}")
        _verify(part, None, md5=md5)
        part.replace(archive)
    else:
        _verify(archive, None, md5=md5)
    out = dest / "RAVDESS"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(out)
    return out


def _fetch(url: str, part: Path, *, timeout: float, progress: bool, what: str = "TESS",
           by_hand: str = f"download TESS by hand (Dataverse {TESS_DOI} or Kaggle) and set SER_TESS_DIR") -> None:
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
            raise DownloadError(f"{url} answered HTTP {resp.status_code}; try again later or download by hand")
        if have and resp.status_code == 200:
            have = 0  # the server ignored Range: start over
        total = resp.headers.get("Content-Length")
        total = int(total) + have if total is not None else None
        mode = "ab" if have else "wb"
        with open(part, mode) as fh, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=f"Downloading {what}", disable=not progress
        ) as bar:
            for chunk in resp.iter_content(_CHUNK):
                fh.write(chunk)
                bar.update(len(chunk))


def _verify(path: Path, sha256: str | None, *, md5: str | None = None) -> None:
    # The zip check comes first: a transfer cut short fails it and keeps its .part file to resume,
    # while a complete file with the wrong checksum is corrupt and is removed.
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except zipfile.BadZipFile as exc:
        raise DownloadError(
            f"{path} is not a complete zip archive ({exc}); run again to resume, or delete it to restart"
        ) from exc
    if bad is not None:
        raise DownloadError(f"{path}: member {bad!r} is corrupt; delete the file and run again")
    for algo, expected, label in (("sha256", sha256, "SHA-256"), ("md5", md5, "MD5")):
        if not expected:
            continue
        digest = hashlib.new(algo)
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(block)
        if digest.hexdigest() != expected.lower():
            path.unlink()
            raise DownloadError(f"{path.name}: {label} mismatch; the corrupt file was removed, run again")
