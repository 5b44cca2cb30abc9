"""Hostile input and misuse of every subcommand: never a traceback, never data loss.

Table-driven: each row misuses one subcommand (through ``ser_utils.cli.main``,
in-process, and a few through ``python -m ser_utils`` for the real exit
status) and the test asserts that the exit status is 0 or 2 (1 where the
command documents it), that no traceback is printed, that no input file
changed (checksums before and after) and that no partial output is left.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_utils.__main__ import main
from ser_utils.data import accept_audio, build_manifest, probe_audio
from ser_utils.errors import AudioFileError
from tests.helpers import tone, write_wav

ROOT = Path(__file__).resolve().parents[1]


# --- hostile files ----------------------------------------------------------------------


def wav_with_rate(path: Path, rate: int) -> Path:
    """A valid 16-bit WAV whose header then claims ``rate`` Hz (the bytes are 1 s at 24414 Hz)."""
    data = bytearray(write_wav(path, tone(1.0)).read_bytes())
    struct.pack_into("<II", data, 24, rate, rate * 2)  # fmt chunk: sample rate, byte rate
    path.write_bytes(bytes(data))
    return path


def float_wav(path: Path, audio: np.ndarray, sr: int = 24414) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sr, subtype="FLOAT")
    return path


def hostile_folder(root: Path) -> dict[str, Path]:
    """A data folder holding one good clip and one of each kind of hostile file; returns them by name."""
    root.mkdir(parents=True, exist_ok=True)
    f = {"good": write_wav(root / "OAF_back_angry.wav", tone(0.8)),
         "good2": write_wav(root / "YAF_back_angry.wav", tone(0.8, freq=300.0))}
    f["flac"] = write_wav(root / "OAF_bean_sad.flac", tone(0.8), fmt="FLAC")
    f["short"] = write_wav(root / "OAF_bath_sad.wav", tone(0.008))
    f["one_hz"] = wav_with_rate(root / "OAF_bite_sad.wav", 1)
    full = write_wav(root / "OAF_boat_sad.wav", tone(0.8)).read_bytes()
    (root / "OAF_boat_sad.wav").write_bytes(full[: len(full) // 2])
    f["trunc"] = root / "OAF_boat_sad.wav"
    bad = tone(0.8).copy()
    bad[100] = np.nan
    f["nan"] = float_wav(root / "OAF_bone_sad.wav", bad)
    y = tone(0.8)
    f["cancel"] = write_wav(root / "OAF_book_sad.wav", np.stack([y, -y], axis=1))
    f["empty"] = root / "OAF_burn_sad.wav"
    f["empty"].write_bytes(b"")
    f["text"] = root / "OAF_cab_sad.wav"
    f["text"].write_text("not audio")
    f["unicode"] = write_wav(root / "YAF_ünï_sad.wav", tone(0.8))
    (root / "OAF_dir_sad.wav").mkdir()
    f["dir"] = root / "OAF_dir_sad.wav"
    os.symlink(root / "nowhere.wav", root / "OAF_link_sad.wav")
    f["link"] = root / "OAF_link_sad.wav"
    os.mkfifo(root / "OAF_fifo_sad.wav")
    f["fifo"] = root / "OAF_fifo_sad.wav"
    raw = os.fsencode(root) + b"/OAF_b\xe4ck_sad.wav"  # Latin-1 byte: not valid UTF-8
    with open(raw, "wb") as fh:
        fh.write(f["good"].read_bytes())
    f["latin1"] = Path(os.fsdecode(raw))
    return f


def snapshot(root: Path) -> dict[str, str]:
    """SHA-1 of every regular file under ``root`` (FIFOs and folders are listed, never opened)."""
    out = {}
    for dirpath, dirs, files in os.walk(os.fsencode(root)):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            if os.path.islink(p) or not os.path.isfile(p):
                out[os.fsdecode(p)] = "special"
                continue
            with open(p, "rb") as fh:
                out[os.fsdecode(p)] = hashlib.sha1(fh.read()).hexdigest()
    return out


def leftovers(root: Path) -> list[str]:
    """Temporary or partial files (atomic writes leave none behind)."""
    return [str(p) for p in root.rglob("*") if ".tmp" in p.name or p.name.endswith(".part")]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """Hostile data, a tiny demo corpus, results folders and a fake model, built once."""
    base = tmp_path_factory.mktemp("hostile")
    w: dict[str, Path] = {"base": base, "out": base / "out"}
    w.update(hostile_folder(base / "data"))
    w["data"] = base / "data"
    bad_only = base / "bad_only"
    bad_only.mkdir()
    (bad_only / "OAF_back_angry.wav").write_bytes(b"")
    (bad_only / "YAF_back_sad.wav").write_text("x")
    w["bad_only"] = bad_only
    from ser_utils.synth import write_demo_corpus

    w["tiny_demo"] = write_demo_corpus(base / "tiny_demo", n_words=2, progress=False)
    w["seed0"] = write_demo_corpus(base / "seed0", n_words=1, progress=False)
    results = base / "junk_results"
    results.mkdir()
    (results / "a__random__seed0.json").write_text("[]")
    (results / "b__random__seed0.json").write_text("{}")
    (results / "c__random__seed0.json").write_bytes(b"\xff\xfe\x00garbage")
    w["junk_results"] = results
    dl = base / "dl"
    dl.mkdir()
    with zipfile.ZipFile(dl / "tess.zip", "w") as zf:
        zf.writestr("OAF_back_angry.wav", w["good"].read_bytes())
    w["dl"] = dl
    models = base / "models"
    models.mkdir()
    (models / "notamodel.keras").write_text("hello")
    (models / "notamodel.json").write_text("{}")
    for name, side in [("badjson", "{not json"), ("empty", "{}"), ("latin", None)]:
        with zipfile.ZipFile(models / f"{name}.keras", "w") as zf:
            zf.writestr("config.json", "{}")
        if side is None:
            (models / f"{name}.json").write_bytes(b"\xff\xfe")
        else:
            (models / f"{name}.json").write_text(side)
    with zipfile.ZipFile(models / "nosidecar.keras", "w") as zf:
        zf.writestr("config.json", "{}")
    w["models"] = models
    w["out"].mkdir()
    return w


# --- the table ----------------------------------------------------------------------------

# (case id, argv with {placeholders} from the world fixture, expected exit status, text expected in the output)
CASES = [
    ("manifest-missing", ["manifest", "{base}/nope"], 2, "does not exist"),
    ("manifest-of-a-file", ["manifest", "{good}"], 2, "is a file, not a folder"),
    ("manifest-o-over-clip", ["manifest", "{data}", "-o", "{good}"], 2, "existing audio or data file"),
    ("manifest-o-folder", ["manifest", "{data}", "-o", "{out}"], 2, "is a folder"),
    ("manifest-o-under-file", ["manifest", "{data}", "-o", "{good}/m.csv"], 2, "is a file, not a folder"),
    ("manifest-hostile-ok", ["manifest", "{data}", "-o", "{out}/manifest.csv"], 0, "named pipe (FIFO)"),
    ("manifest-only-bad", ["manifest", "{bad_only}"], 1, "0 usable clips"),
    ("features-o-file", ["features", "{data}", "--artifacts", "{junk_results}/a__random__seed0.json"], 2, "is a file"),
    ("features-o-in-data", ["features", "{data}", "--artifacts", "{data}/cache"], 2, "inside the data folder"),
    ("features-jobs-0", ["features", "{data}", "--jobs", "0"], 2, "--jobs"),
    ("demo-words-0", ["demo-corpus", "{out}/d0", "--words", "0"], 2, "--words must be between 1 and"),
    ("demo-words-neg", ["demo-corpus", "{out}/d1", "--words", "-3"], 2, "--words must be between 1 and"),
    ("demo-words-999", ["demo-corpus", "{out}/d2", "--words", "999"], 2, "--words must be between 1 and"),
    ("demo-into-file", ["demo-corpus", "{good}"], 2, "is a file"),
    ("demo-other-seed", ["demo-corpus", "{seed0}", "--words", "1", "--seed", "1"], 2, "other parameters"),
    ("demo-into-tess", ["demo-corpus", "{data}", "--words", "1"], 2, "not a demo corpus"),
    ("download-into-file", ["download", "{good}"], 2, "is a file"),
    ("download-bad-hash", ["download", "{dl}", "--sha256", "xyz"], 2, "not a SHA-256 hash"),
    ("download-wrong-hash", ["download", "{dl}", "--sha256", "0" * 64], 2, "The file was kept"),
    ("train-data-is-file", ["train", "duration", "--data-dir", "{good}", "--artifacts", "{out}/t0"], 2, "is a file, not a folder"),
    # Command-line errors name the command-line options, not only the notebook parameters.
    ("train-no-tess", ["train", "duration", "--dataset", "tess", "--data-dir", "{base}/nope"], 2, "--dataset demo"),
    ("train-tess-is-demo", ["train", "duration", "--dataset", "tess", "--data-dir", "{seed0}"], 2, "not TESS"),
    # features fills the cache train reads: the same <artifacts>/<dataset> folder.
    ("features-same-folder-as-train", ["features", "{seed0}", "--quick", "--jobs", "1"], 0,
     "artifacts/demo-quick/features/"),
    ("train-huge-seed", ["train", "duration", "--seeds", "4294967296"], 2, "2**32"),
    ("train-o-file", ["train", "duration", "--data-dir", "{tiny_demo}", "--artifacts", "{good}"], 2, "is a file"),
    ("train-too-small", ["train", "duration", "--data-dir", "{tiny_demo}", "--artifacts", "{out}/t1", "--quick"], 2,
     "needs at least 11 usable clips per emotion"),
    ("train-too-small-word", ["train", "duration", "--data-dir", "{tiny_demo}", "--artifacts", "{out}/t2", "--quick",
                              "--protocol", "word"], 2, "at least 3 distinct words"),
    ("train-only-bad", ["train", "duration", "--data-dir", "{bad_only}", "--artifacts", "{out}/t3", "--quick"], 2,
     "no usable clip"),
    ("book-seeds-abc", ["book", "--seeds", "abc", "--no-html", "--only", "99"], 2, "--seeds takes integers"),
    ("report-junk", ["report", "--results", "{junk_results}", "--no-readme"], 2, "3 unreadable or not results records"),
    ("report-results-file", ["report", "--results", "{good}"], 2, "is a file"),
    ("report-figure-ext", ["report", "--results", "{junk_results}", "--figure", "{out}/f.xyz"], 2,
     "unknown image format"),
    ("report-figure-dir", ["report", "--results", "{junk_results}", "--figure", "{out}"], 2, "is a folder"),
    ("report-readme-clip", ["report", "--results", "{junk_results}", "--readme", "{good}"], 2,
     "existing audio or data file"),
    ("predict-dir", ["predict", "{data}"], 2, "is a folder"),
    ("predict-missing", ["predict", "{base}/nope.wav"], 2, "no such file"),
    ("predict-fifo", ["predict", "{fifo}"], 2, "named pipe"),
    ("predict-broken-link", ["predict", "{link}"], 2, "broken symbolic link"),
    ("predict-1hz", ["predict", "{one_hz}", "--model", "{models}/empty.keras"], 2, "implausible sample rate"),
    ("predict-8ms", ["predict", "{short}", "--model", "{models}/empty.keras"], 2, "too short"),
    ("predict-trunc", ["predict", "{trunc}", "--model", "{models}/empty.keras"], 2, "truncated"),
    ("predict-nan", ["predict", "{nan}", "--model", "{models}/empty.keras"], 2, "NaN"),
    ("predict-cancel", ["predict", "{cancel}", "--model", "{models}/empty.keras"], 2, "channels"),
    ("predict-latin1-name", ["predict", "{latin1}", "--model", "{models}/notamodel.keras"], 2, "not a saved Keras"),
    ("predict-not-model", ["predict", "{good}", "--model", "{models}/notamodel.keras"], 2, "not a saved Keras"),
    ("predict-bad-json", ["predict", "{good}", "--model", "{models}/badjson.keras"], 2, "not readable JSON"),
    ("predict-latin-json", ["predict", "{good}", "--model", "{models}/latin.keras"], 2, "not readable JSON"),
    ("predict-empty-json", ["predict", "{good}", "--model", "{models}/empty.keras"], 2, "incomplete"),
    ("predict-no-sidecar", ["predict", "{good}", "--model", "{models}/nosidecar.keras"], 2, "no sidecar"),
    ("predict-model-dir", ["predict", "{good}", "--model", "{models}"], 2, "is a folder"),
    ("predict-cam-dir", ["predict", "{good}", "--cam", "{out}", "--model", "{models}/empty.keras"], 2, "is a folder"),
    ("predict-cam-ext", ["predict", "{good}", "--cam", "{out}/c.xyz", "--model", "{models}/empty.keras"], 2,
     "unknown image format"),
    ("predict-cam-clip", ["predict", "{good}", "--cam", "{good}", "--model", "{models}/empty.keras"], 2,
     "unknown image format"),
]
if Path("/proc").is_dir():  # a location nobody can write, even root (chmod does not stop root)
    CASES += [
        ("manifest-o-unwritable", ["manifest", "{data}", "-o", "/proc/ser-book-test.csv"], 2, "cannot write"),
        ("demo-unwritable", ["demo-corpus", "/proc/ser-book-demo"], 2, "cannot create"),
        ("train-o-unwritable", ["train", "duration", "--data-dir", "{seed0}", "--artifacts", "/proc/ser-book-t"], 2,
         "cannot create"),
        ("download-unwritable", ["download", "/proc/ser-book-dl"], 2, "cannot create"),
    ]


def _argv(template: list[str], world: dict[str, Path]) -> list[str]:
    return [a.format(**{k: str(v) for k, v in world.items()}) for a in template]


@pytest.mark.parametrize("argv, status, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_misuse_is_one_clear_line(world, argv, status, expected, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SER_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.delenv("SER_TESS_DIR", raising=False)
    monkeypatch.delenv("SER_DATASET", raising=False)
    before = snapshot(world["base"])
    readme = (ROOT / "README.md").read_bytes()
    rc = main(_argv(argv, world))
    out, err = capsys.readouterr()
    assert rc == status, (rc, out[-2000:], err[-2000:])
    assert "Traceback" not in err + out
    assert expected in out + err, (out[-2000:], err[-2000:])
    if rc == 2:
        assert err.count("error: ") == 1, err
    after = snapshot(world["base"])
    changed = [p for p in before if after.get(p) != before[p]]
    assert not changed, changed  # no input (nor earlier output) modified or removed
    assert (ROOT / "README.md").read_bytes() == readme
    assert not leftovers(world["base"])


def test_hostile_manifest_lists_every_bad_entry(world):
    m = build_manifest(world["data"], progress=False)
    by_name = {Path(p).name: r for p, r in zip(m["path"], m.to_dict("records"), strict=True)}
    expect = {"OAF_fifo_sad.wav": "named pipe", "OAF_dir_sad.wav": "folder", "OAF_link_sad.wav": "broken",
              "OAF_bite_sad.wav": "implausible sample rate", "OAF_bath_sad.wav": "too short",
              "OAF_boat_sad.wav": "truncated", "OAF_bone_sad.wav": "NaN", "OAF_book_sad.wav": "cancel",
              "OAF_b\\xe4ck_sad.wav": "not valid UTF-8", "YAF_ünï_sad.wav": "plain ASCII"}
    for name, why in expect.items():
        assert name in by_name, (name, sorted(by_name))
        assert by_name[name]["status"] != "ok" and why in by_name[name]["reason"], (name, by_name[name])
    assert by_name["OAF_bean_sad.flac"]["status"] == "ok"  # .flac counted, as predict accepts it
    csv = (world["out"] / "manifest.csv")
    if csv.exists():  # written by the manifest-hostile-ok case: complete, one row per entry
        import pandas as pd

        assert len(pd.read_csv(csv)) == len(m)


def test_probe_never_blocks_on_a_fifo(world):
    result = {}
    t = threading.Thread(target=lambda: result.update(p=probe_audio(world["fifo"])), daemon=True)
    t.start()
    t.join(5)
    assert "p" in result and not result["p"].ok and "FIFO" in result["p"].reason


@pytest.mark.parametrize("name, why", [("one_hz", "sample rate"), ("nan", "NaN"), ("cancel", "cancel"),
                                       ("short", "too short"), ("empty", "empty"), ("text", "not an audio")])
def test_one_acceptance_rule(world, name, why):
    with pytest.raises(AudioFileError, match=why):
        accept_audio(world[name])
    assert not probe_audio(world[name]).ok


def test_report_without_results_leaves_readme_and_reference_alone(tmp_path, monkeypatch, capsys):
    rec = {"model": "logreg", "protocol": "random", "seed": 0, "metrics": {"accuracy": 0.5, "f1_macro": 0.5, "uar": 0.5},
           "dataset": {"name": "demo", "synthetic": True, "n_clips": 28, "quick": True}}
    res = tmp_path / "demo-quick" / "results"
    res.mkdir(parents=True)
    (res / "logreg__random__seed0.json").write_text(json.dumps(rec))
    monkeypatch.setenv("SER_ARTIFACTS_DIR", str(tmp_path))
    before = snapshot(ROOT / "results") if (ROOT / "results").is_dir() else {}
    readme = (ROOT / "README.md").read_bytes()
    assert main(["report"]) == 0
    out, err = capsys.readouterr()
    assert "demo corpus (synthetic, not TESS)" in out and "README not updated" in err
    assert (ROOT / "README.md").read_bytes() == readme
    assert (snapshot(ROOT / "results") if before else {}) == before


def test_figure_without_extension_gets_png_and_says_so(tmp_path, capsys):
    rec = {"model": "logreg", "protocol": "random", "seed": 0, "metrics": {"accuracy": 0.5, "f1_macro": 0.5, "uar": 0.5}}
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "logreg__random__seed0.json").write_text(json.dumps(rec))  # no 'dataset': no provenance
    assert main(["report", "--results", str(tmp_path / "res"), "--no-readme", "--figure", str(tmp_path / "fig")]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "fig.png").is_file() and not (tmp_path / "fig").exists()
    assert f"Figure: {tmp_path / 'fig.png'}" in out
    assert "not known to be TESS" in out and "TESS, " not in out


def test_demo_corpus_as_data_dir_is_never_tess(demo_dir, tmp_path, capsys):
    """Provenance: a demo corpus given as --data-dir is recorded and reported as demo, never TESS."""
    art = tmp_path / "art"
    proc = subprocess.run([sys.executable, "-m", "ser_utils", "train", "duration", "--data-dir", str(demo_dir),
                           "--artifacts", str(art), "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "DEMO DATA" in proc.stdout and "Real data: TESS" not in proc.stdout
    rec = json.loads(next((art / "results").glob("duration__random__seed0.json")).read_text())
    assert rec["dataset"]["name"] == "demo" and rec["dataset"]["synthetic"] is True
    assert main(["report", "--results", str(art / "results"), "--no-readme"]) == 0
    out = capsys.readouterr().out
    assert "demo corpus (synthetic, not TESS)" in out and "TESS, " not in out


def test_feature_cache_follows_content_and_survives_a_corrupt_chunk(tmp_path):
    from ser_utils.features import ensure_features, quick_config

    data = tmp_path / "data"
    write_wav(data / "OAF_back_angry.wav", tone(0.8, freq=200.0))
    write_wav(data / "OAF_back_sad.wav", tone(0.8, freq=300.0))
    cfg = quick_config()
    first = ensure_features(build_manifest(data, progress=False), tmp_path / "art", cfg, jobs=1, progress=False)
    # Same length, other audio: a size-keyed cache would serve the old vectors.
    write_wav(data / "OAF_back_angry.wav", tone(0.8, freq=450.0))
    second = ensure_features(build_manifest(data, progress=False), tmp_path / "art", cfg, jobs=1, progress=False)
    assert second.chunks_computed == 1
    assert not np.allclose(first.vectors[0], second.vectors[0])
    chunk = max(second.cache_dir.glob("chunk_*.npz"), key=lambda p: p.stat().st_mtime_ns)  # the one in use
    chunk.write_bytes(chunk.read_bytes()[:100])
    with pytest.warns(UserWarning, match="corrupt"):
        third = ensure_features(build_manifest(data, progress=False), tmp_path / "art", cfg, jobs=1, progress=False)
    assert third.chunks_computed == 1 and np.allclose(third.vectors, second.vectors)


@pytest.mark.parametrize("argv, expected", [
    (["manifest", "{good}"], "is a file, not a folder"),
    (["predict", "{data}"], "is a folder"),
    (["demo-corpus", "{out}/dx", "--words", "0"], "--words"),
])
def test_real_exit_status_and_no_traceback(world, argv, expected):
    env = {**os.environ, "SER_ARTIFACTS_DIR": str(world["base"] / "sub-art")}
    proc = subprocess.run([sys.executable, "-m", "ser_utils", *_argv(argv, world)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and expected in proc.stderr


def test_help_lists_url():
    proc = subprocess.run([sys.executable, "-m", "ser_utils", "download", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--url" in proc.stdout


def test_demo_corpus_without_its_marker_is_still_demo(tmp_path):
    """A demo corpus copied without demo_corpus.json is recognised by its speakers (SYNA/SYNB)."""
    import shutil

    from ser_utils.run_context import resolve_data
    from ser_utils.synth import write_demo_corpus

    corpus = write_demo_corpus(tmp_path / "c", n_words=1, progress=False)
    shutil.copytree(corpus, tmp_path / "copy", ignore=shutil.ignore_patterns("demo_corpus.json"))
    ctx = resolve_data("auto", tmp_path / "copy", tmp_path / "art")
    assert ctx.dataset == "demo" and ctx.is_demo and ctx.data_dir == (tmp_path / "copy").resolve()
