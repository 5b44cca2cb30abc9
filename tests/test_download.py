"""download_tess against a local HTTP server on 127.0.0.1 serving a zip built here."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ser_utils.data import build_manifest, usable
from ser_utils.download import DownloadError, download_tess

from .helpers import tone, write_wav


def make_zip(tmp_path: Path) -> bytes:
    src = tmp_path / "src"
    for emo, tag in (("angry", "angry"), ("pleasant_surprise", "ps")):
        write_wav(src / f"OAF_{emo}" / f"OAF_back_{tag}.wav", tone(0.5))
    # ~1.5 MB of incompressible audio so that an interrupted transfer has delivered whole chunks
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 24414 * 30).astype(np.float32)
    write_wav(src / "OAF_sad" / "OAF_back_sad.wav", noise)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in src.rglob("*.wav"):
            zf.write(p, Path("TESS Toronto emotional speech set data") / p.relative_to(src))
    return buf.getvalue()


class Server:
    """Serves one payload with Range support; can cut the first response short."""

    def __init__(self, payload: bytes, cut_first_at: int | None = None):
        self.payload, self.cut, self.ranges = payload, cut_first_at, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                start = 0
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                body = outer.payload[start:]
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut is not None:
                    body, outer.cut = body[: outer.cut], None
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.connection.close()
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/tess.zip"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def payload(tmp_path):
    return make_zip(tmp_path)


def test_download_verify_extract(tmp_path, payload):
    srv = Server(payload)
    try:
        out = download_tess(tmp_path / "dl", url=srv.url, sha256=hashlib.sha256(payload).hexdigest(), progress=False)
    finally:
        srv.close()
    m = usable(build_manifest(out, progress=False))
    assert set(m["emotion"]) == {"angry", "pleasant_surprise", "sad"}


def test_interrupted_download_resumes_with_range(tmp_path, payload):
    srv = Server(payload, cut_first_at=len(payload) // 2)
    dest = tmp_path / "dl"
    try:
        with pytest.raises(Exception):  # first attempt breaks off mid-stream
            download_tess(dest, url=srv.url, progress=False)
        part = dest / "tess.zip.part"
        have = part.stat().st_size
        assert 0 < have < len(payload)
        download_tess(dest, url=srv.url, progress=False)
    finally:
        srv.close()
    assert srv.ranges[0] is None and srv.ranges[-1] == f"bytes={have}-"
    assert (dest / "tess.zip").read_bytes() == payload


def test_checksum_mismatch_is_reported_and_file_removed(tmp_path, payload):
    srv = Server(payload)
    try:
        with pytest.raises(DownloadError, match="SHA-256 mismatch"):
            download_tess(tmp_path / "dl", url=srv.url, sha256="0" * 64, progress=False)
    finally:
        srv.close()
    assert not list((tmp_path / "dl").glob("tess.zip*"))


def test_unreachable_server_gives_a_clear_error(tmp_path):
    with pytest.raises(DownloadError, match="could not reach"):
        download_tess(tmp_path, url="http://127.0.0.1:9/tess.zip", timeout=2, progress=False)


def make_ravdess_zip(tmp_path: Path) -> bytes:
    """A zip laid out like Audio_Speech_Actors_01-24.zip: Actor_XX/03-01-EE-II-SS-RR-AA.wav."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for emo in ("01", "02", "05"):  # neutral, calm (dropped), angry
            p = write_wav(tmp_path / "rav" / f"03-01-{emo}-01-01-01-01.wav", tone(0.4))
            zf.write(p, f"Actor_01/{p.name}")
        # ~1.5 MB of noise, so that the interrupted first transfer has delivered whole chunks
        noise = np.random.default_rng(1).uniform(-0.5, 0.5, 24414 * 30).astype(np.float32)
        p = write_wav(tmp_path / "rav" / "03-01-05-01-02-01-01.wav", noise)
        zf.write(p, f"Actor_01/{p.name}")
    return buf.getvalue()


def test_ravdess_download_is_verified_by_md5_and_extracted(tmp_path):
    from ser_utils.download import download_ravdess

    payload = make_ravdess_zip(tmp_path)
    srv = Server(payload, cut_first_at=len(payload) // 2)
    dest = tmp_path / "dl"
    try:
        with pytest.raises(Exception):  # the first attempt breaks off; the second resumes
            download_ravdess(dest, url=srv.url, md5=hashlib.md5(payload).hexdigest(), progress=False)
        out = download_ravdess(dest, url=srv.url, md5=hashlib.md5(payload).hexdigest(), progress=False)
        with pytest.raises(DownloadError, match="MD5 mismatch"):
            download_ravdess(tmp_path / "other", url=srv.url, md5="0" * 32, progress=False)
    finally:
        srv.close()
    assert srv.ranges[-2].startswith("bytes=")
    m = build_manifest(out, corpus="ravdess", progress=False)
    assert sorted(usable(m)["emotion"]) == ["angry", "angry", "neutral"]
    assert (m["status"] == "excluded").sum() == 1


def test_crema_download_says_where_to_get_it(tmp_path, capsys):
    from ser_utils.cli import main

    assert main(["download", str(tmp_path), "--corpus", "crema-d"]) == 2
    err = capsys.readouterr().err
    assert "CheyneyComputerScience/CREMA-D" in err and "Git LFS" in err
