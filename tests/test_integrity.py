"""Nothing stale, nothing half-written: the 23 cases of issue #24, one test (or more) each.

Every test builds its own files under ``tmp_path`` (nothing committed) and checks one of:
a one-line error with exit status 2, a warning where the run can go on, or the correct
result. The SIGKILL loop over ``features``, ``train`` and ``book --quick`` is
``benchmarks/kill_resume.py``, run (with a few kill points) by the slow test at the end.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser_utils.cli import main
from ser_utils.data import accept_audio, build_manifest, probe_audio, summarise_manifest
from ser_utils.errors import AudioFileError, ParameterError, UserError
from tests.helpers import tone, write_wav

ROOT = Path(__file__).resolve().parents[1]


def one_error_line(capsys) -> str:
    """The stderr of a command that failed with a user error: exactly one ``error:`` line, no traceback."""
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    assert err.count("error: ") == 1, err
    return err


def small_corpus(root: Path, n_words: int = 1) -> Path:
    from ser_utils.synth import write_demo_corpus

    return write_demo_corpus(root, n_words=n_words, progress=False)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("SER_TESS_DIR", "SER_DATASET", "SER_CREMA_DIR", "SER_QUICK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SER_ARTIFACTS_DIR", str(tmp_path / "art"))
    return monkeypatch


# --- 1, 20: resume stamps follow the data and the code the kernels import --------------------


def test_case01_book_reruns_a_chapter_when_clips_are_removed(tmp_path):
    from ser_utils.course.runner import BookRun, run_book
    from tests.test_pipeline import STANDARD, write_book

    data = small_corpus(tmp_path / "data")
    count = f"import pathlib; print(len(list(pathlib.Path({str(data)!r}).rglob('*.wav'))), 'clips')"
    write_book(tmp_path / "b", {"01_a": (STANDARD, count)})
    params = {"dataset": "demo", "data_dir": None, "artifacts_dir": None, "quick": True, "epochs": None,
              "corpus_dir": str(data)}
    quiet = {"html": False, "progress": False, "echo": lambda s: None}
    status = lambda r: r.chapters[0].status  # noqa: E731
    assert status(run_book(tmp_path / "b", run=BookRun(params), **quiet)) == "executed"
    assert status(run_book(tmp_path / "b", run=BookRun(params), **quiet)) == "cached"
    next(data.rglob("*.wav")).unlink()
    assert status(run_book(tmp_path / "b", run=BookRun(params), **quiet)) == "executed"  # was "cached": stale page
    page = (tmp_path / "b/_build/src/book/01_a.ipynb").read_text()
    assert f"{len(list(data.rglob('*.wav')))} clips" in page


def test_case20_stamp_hashes_the_ser_utils_the_kernel_imports(tmp_path, monkeypatch):
    from ser_utils.course import stamps

    other = tmp_path / "clone2" / "ser_utils"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("# another checkout\n")
    nb = ROOT / "book" / "01_data.ipynb"
    stamps.forget()
    mine = stamps.code_hash(nb, tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(other.parent))
    stamps.forget()
    assert stamps.kernel_package_dir(tmp_path) == other  # what a kernel started there would import
    assert stamps.code_hash(nb, tmp_path) != mine
    stamps.forget()


def test_a_chapter_stamp_covers_the_modules_it_reaches_and_no_others():
    from ser_utils.course import stamps

    names = lambda nb: {p.relative_to(stamps.PACKAGE_DIR).as_posix()  # noqa: E731
                        for p in stamps.module_files(stamps.chapter_imports(ROOT / "book" / nb), stamps.PACKAGE_DIR)}
    ch1, ch8 = names("01_data.ipynb"), names("08_gradcam.ipynb")
    assert {"__init__.py", "data.py", "course/chapter.py", "course/__init__.py"} <= ch1
    assert "gradcam.py" in ch8 and "gradcam.py" not in ch1  # an edit to Grad-CAM leaves chapter 1 up to date
    assert not {"course/runner.py", "course/grading.py"} & (ch1 | ch8)  # the tooling is in no page's stamp
    # run_experiment reaches the registry, which loads the families by name: so every family module is covered
    assert {"registry.py", "training.py", "baselines.py", "vision.py", "encoder_family.py"} <= ch1


# --- 2, 3: saved models: atomic pair, digest-checked, keyed on the data -----------------------


@pytest.fixture(scope="module")
def tiny_model():
    from ser_utils.models import build_keras_model

    return build_keras_model("cnn")


def test_case02_a_model_cut_short_or_paired_with_an_old_sidecar_is_never_reused(tmp_path, tiny_model):
    from ser_utils.keras_io import bundle_problem, load_model_bundle, save_bundle

    path = save_bundle(tiny_model, tmp_path / "m.keras", {"model": "cnn", "feature_key": "k", "data_key": "d"})
    assert bundle_problem(path, feature_key="k", data_key="d") is None
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind
    whole = path.read_bytes()
    path.write_bytes(whole[:13186])  # what a SIGKILL during model.save left behind
    assert "half-written" in bundle_problem(path)
    with pytest.raises(ValueError, match="half-written"):
        load_model_bundle(path)
    path.write_bytes(b"")
    assert "half-written" in bundle_problem(path)
    # Killed between the two renames: a new model beside the old sidecar.
    path.write_bytes(whole)
    side = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**side, "keras_digest": "0" * 32}))
    assert "half-written" in bundle_problem(path)


def test_case03_a_model_trained_on_other_data_is_not_reused(tmp_path, tiny_model):
    from ser_utils.features import ensure_features, quick_config
    from ser_utils.synth import write_demo_corpus
    from ser_utils.keras_io import bundle_problem, save_bundle

    cfg = quick_config()
    a = write_demo_corpus(tmp_path / "a", n_words=1, seed=0, progress=False)
    b = write_demo_corpus(tmp_path / "b", n_words=1, seed=1, progress=False)
    fa = ensure_features(build_manifest(a, progress=False), tmp_path / "art_a", cfg, jobs=1, progress=False)
    fb = ensure_features(build_manifest(b, progress=False), tmp_path / "art_b", cfg, jobs=1, progress=False)
    assert fa.data_key and fa.data_key != fb.data_key
    path = save_bundle(tiny_model, tmp_path / "m.keras", {"feature_key": cfg.key(), "data_key": fb.data_key})
    assert bundle_problem(path, feature_key=cfg.key(), data_key=fa.data_key) == "trained with another data_key"
    assert bundle_problem(path, feature_key=cfg.key(), data_key=fb.data_key) is None


# --- 4, 5, 22: caches keyed on the whole content, validated on read ---------------------------


def two_clips(root: Path, seconds: float = 0.8) -> Path:
    write_wav(root / "OAF_back_angry.wav", tone(seconds, freq=200.0))
    write_wav(root / "OAF_back_sad.wav", tone(seconds, freq=300.0))
    return root


def test_case04_prosody_follows_replaced_audio_of_the_same_size(tmp_path):
    from ser_utils.prosody import ensure_prosody

    data = two_clips(tmp_path / "data")
    first = ensure_prosody(build_manifest(data, progress=False), tmp_path / "art", jobs=1, progress=False)
    clip = data / "OAF_back_angry.wav"
    size = clip.stat().st_size
    write_wav(clip, tone(0.8, freq=400.0))
    assert clip.stat().st_size == size
    second = ensure_prosody(build_manifest(data, progress=False), tmp_path / "art", jobs=1, progress=False)
    assert abs(second.loc["OAF_back_angry", "f0_mean"] - first.loc["OAF_back_angry", "f0_mean"]) > 6  # an octave


def test_case05_a_truncated_prosody_cache_is_recomputed_with_a_warning(tmp_path):
    from ser_utils.prosody import ensure_prosody

    data = two_clips(tmp_path / "data")
    m = build_manifest(data, progress=False)
    first = ensure_prosody(m, tmp_path / "art", jobs=1, progress=False)
    cache = next((tmp_path / "art" / "prosody").rglob("*.csv"))
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:2]) + "\n")  # 1 of 2 rows
    with pytest.warns(UserWarning, match="prosody cache .* corrupt or stale"):
        again = ensure_prosody(m, tmp_path / "art", jobs=1, progress=False)
    pd.testing.assert_frame_equal(again, first, check_exact=False)


@pytest.mark.skipif(not __import__("ser_utils.egemaps", fromlist=["available"]).available(),
                    reason="opensmile not installed")
def test_case05_egemaps_follows_content_and_survives_a_truncated_cache(tmp_path, monkeypatch):
    from ser_utils.egemaps import ensure_egemaps

    data = two_clips(tmp_path / "data")
    first = ensure_egemaps(build_manifest(data, progress=False), tmp_path / "art", jobs=1, progress=False)
    write_wav(data / "OAF_back_angry.wav", tone(0.8, freq=450.0))  # same size, other audio
    second = ensure_egemaps(build_manifest(data, progress=False), tmp_path / "art", jobs=1, progress=False)
    assert not np.allclose(first.loc["OAF_back_angry"], second.loc["OAF_back_angry"], equal_nan=True)
    for cache in (tmp_path / "art" / "egemaps").glob("*[!d].csv"):
        cache.write_text(cache.read_text()[:300])
    with pytest.warns(UserWarning, match="eGeMAPS cache"):
        third = ensure_egemaps(build_manifest(data, progress=False), tmp_path / "art", jobs=1, progress=False)
    assert third.shape == second.shape
    # The eGeMAPS workers leave joblib's process-wide executor usable by a later parallel feature extraction
    # (a bare loky executor made joblib.Parallel fail with "no attribute _temp_folder_manager").
    import ser_utils.features as features

    monkeypatch.setattr(features, "_CHUNK", 1)  # two chunks: two joblib workers
    fs = features.ensure_features(build_manifest(data, progress=False), tmp_path / "art", features.quick_config(),
                                  jobs=2, progress=False)
    assert len(fs) == 2 and fs.chunks_computed == 2


def test_case22_an_edit_in_the_middle_with_size_and_mtime_kept_is_seen(tmp_path):
    from ser_utils.features import ensure_features, quick_config

    data = two_clips(tmp_path / "data", seconds=3.0)
    clip = data / "OAF_back_angry.wav"
    assert clip.stat().st_size > 128 * 1024
    m = build_manifest(data, progress=False)
    first = ensure_features(m, tmp_path / "art", quick_config(), jobs=1, progress=False)
    st = clip.stat()
    raw = bytearray(clip.read_bytes())
    mid = len(raw) // 2
    audio = np.frombuffer(bytes(raw[mid:mid + 20000]), dtype="<i2").copy()
    raw[mid:mid + 20000] = (audio // 4).astype("<i2").tobytes()  # a quieter middle, same length
    clip.write_bytes(bytes(raw))
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert clip.stat().st_size == st.st_size and clip.stat().st_mtime_ns == st.st_mtime_ns
    second = ensure_features(m, tmp_path / "art", quick_config(), jobs=1, progress=False)
    assert second.chunks_computed == 1
    assert not np.allclose(first.vectors, second.vectors)


# --- 6, 7: split files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def split_world(tmp_path_factory):
    base = tmp_path_factory.mktemp("splits")
    data = small_corpus(base / "data", n_words=6)  # the random protocol needs 11 clips per emotion
    return data, build_manifest(data, progress=False)


@pytest.mark.parametrize("content", ["truncated", "garbage", '["a", "b"]', "missing-key", "wrong-protocol"])
def test_case06_a_damaged_split_file_is_remade_with_a_warning(split_world, tmp_path, content):
    from ser_utils.splits import ensure_splits, split_path

    _, m = split_world
    good = ensure_splits(m, tmp_path, "random", 0)
    path = split_path(tmp_path, "random", 0)
    text = path.read_text()
    bad = {"truncated": text[: len(text) // 2], "garbage": "\x00\xffnot json", '["a", "b"]': '["a", "b"]',
           "missing-key": json.dumps([{k: v for k, v in d.items() if k != "test"} for d in json.loads(text)]),
           "wrong-protocol": text.replace('"protocol": "random"', '"protocol": "word"')}[content]
    path.write_text(bad)
    with pytest.warns(UserWarning, match="split file"):
        again = ensure_splits(m, tmp_path, "random", 0)
    assert again == good and json.loads(path.read_text())  # remade and rewritten


def test_case07_a_split_with_test_clips_in_training_is_refused(split_world, tmp_path):
    from ser_utils.splits import ensure_splits, split_path

    _, m = split_world
    good = ensure_splits(m, tmp_path, "random", 0)
    path = split_path(tmp_path, "random", 0)
    folds = json.loads(path.read_text())
    folds[0]["train"] += folds[0]["test"]  # the leak that scored 100 % instead of 46.4 %
    path.write_text(json.dumps(folds))
    with pytest.warns(UserWarning, match="in both train and test"):
        again = ensure_splits(m, tmp_path, "random", 0)
    assert again == good
    assert not set(again[0].train) & set(again[0].test)


# --- 8: feature chunks --------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["shape", "nan", "duplicate-ids"])
def test_case08_a_bad_feature_chunk_is_recomputed_with_a_warning(tmp_path, damage):
    from ser_utils.features import ensure_features, quick_config

    data = two_clips(tmp_path / "data")
    m = build_manifest(data, progress=False)
    good = ensure_features(m, tmp_path / "art", quick_config(), jobs=1, progress=False)
    chunk = next(good.cache_dir.glob("chunk_*.npz"))
    with np.load(chunk) as npz:
        arrays = {k: npz[k] for k in npz.files}
    if damage == "shape":
        arrays["vectors"] = arrays["vectors"][:, :100]
    elif damage == "nan":
        arrays["vectors"][0, 3] = np.nan
    else:
        arrays["ids"] = np.array([arrays["ids"][0]] * len(arrays["ids"]))
    with open(chunk, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.warns(UserWarning, match="feature cache chunk"):
        again = ensure_features(m, tmp_path / "art", quick_config(), jobs=1, progress=False)
    assert again.chunks_computed == 1
    np.testing.assert_allclose(again.vectors, good.vectors)
    assert list(again.ids) == list(good.ids)


# --- 9, 13, 15, 16: environment and parameters --------------------------------------------------


def train_or_book(command: str, tmp_path: Path) -> list[str]:
    """``train`` or ``book`` in quick mode (the two commands of cases 9 and 13); book's _build/ under ``tmp_path``."""
    if command == "train":
        return ["train", "duration", "--quick"]
    return ["book", "--quick", "--only", "01", "--no-html", "--path-output", str(tmp_path / "book-out")]


def run_cli(argv: list[str]) -> int:
    """The whole program (library and course commands), as ``python -m ser_utils`` runs it."""
    from ser_utils.course.commands import main as program

    return program(argv)


COMMANDS = pytest.mark.parametrize("command", ["train", "book"])


@COMMANDS
@pytest.mark.parametrize("value, expected", [("{file}", "is a file"), ("/proc/ser-x", "cannot"),
                                             ("{file}/sub", "is a file, not a folder")])
def test_case09_a_bad_artifacts_dir_is_one_line(clean_env, tmp_path, capsys, value, expected, command):
    if value.startswith("/proc") and not Path("/proc").is_dir():
        pytest.skip("no /proc")
    (tmp_path / "f.txt").write_text("x")
    clean_env.setenv("SER_ARTIFACTS_DIR", value.format(file=tmp_path / "f.txt"))
    assert run_cli(train_or_book(command, tmp_path)) == 2
    assert expected in one_error_line(capsys)
    assert (tmp_path / "f.txt").read_text() == "x"
    assert not (tmp_path / "book-out").exists()  # refused before a chapter started


@COMMANDS
@pytest.mark.parametrize("value, rc, expected", [("garbage", 2, "SER_DATASET='garbage' is not a dataset"),
                                                 ("TESS", 2, "no TESS audio found")])
def test_case09_ser_dataset_is_checked(clean_env, capsys, value, rc, expected, tmp_path, command):
    clean_env.setenv("SER_DATASET", value)
    clean_env.chdir(tmp_path)
    assert run_cli(train_or_book(command, tmp_path)) == rc
    assert expected in one_error_line(capsys)
    assert not (tmp_path / "book-out").exists()


@COMMANDS
@pytest.mark.parametrize("kind", ["file", "empty", "missing"])
def test_case13_a_bad_ser_tess_dir_is_an_error_not_the_demo_corpus(clean_env, tmp_path, capsys, kind, command):
    target = {"file": tmp_path / "f.wav", "empty": tmp_path / "empty", "missing": tmp_path / "nope"}[kind]
    if kind == "file":
        write_wav(target, tone(0.5))
    elif kind == "empty":
        target.mkdir()
    clean_env.setenv("SER_TESS_DIR", str(target))
    assert run_cli(train_or_book(command, tmp_path)) == 2
    assert "SER_TESS_DIR=" in one_error_line(capsys)
    assert not (tmp_path / "art" / "demo-quick").exists()  # no silent fall-back to the demo corpus
    assert not (tmp_path / "book-out").exists()


@pytest.mark.parametrize("value, expected", [("no", False), ("0", False), ("off", False), ("FALSE", False),
                                             ("", False), ("yes", True), ("1", True), ("True", True),
                                             (True, True), (None, None)])
def test_case15_one_vocabulary_of_true_and_false(value, expected):
    from ser_utils.settings import parse_bool

    assert parse_bool(value, "quick") is expected


def test_case15_papermill_quick_no_is_full_size(clean_env):
    from ser_utils.run_context import is_quick

    clean_env.setenv("SER_QUICK", "1")
    assert is_quick("no") is False  # `-p quick no` arrives as the string "no"
    assert is_quick(None) is True


@pytest.mark.parametrize("value", ["garbage", "2", "y"])
def test_case16_a_meaningless_ser_quick_is_refused(clean_env, capsys, value):
    clean_env.setenv("SER_QUICK", value)
    assert main(["train", "duration"]) == 2
    assert f"SER_QUICK={value!r} is not a yes/no value" in one_error_line(capsys)


def test_case16_chapter_parameters_are_checked_and_normalised():
    from ser_utils.settings import normalise_chapter_parameters, parse_epochs

    ns = {"seeds": "0,1", "full": "no", "protocols": "speaker"}
    normalise_chapter_parameters(ns)
    assert ns == {"seeds": [0, 1], "full": False, "protocols": ["speaker"]}
    for bad, match in [({"seeds": "abc"}, "seeds must be integers"), ({"seeds": [-1]}, "seeds must be"),
                       ({"full": "maybe"}, "full='maybe'"), ({"protocols": ["speakr"]}, "protocols must be")]:
        with pytest.raises(ParameterError, match=match):
            normalise_chapter_parameters(dict(bad))
    with pytest.raises(ParameterError, match="epochs must be between 1"):
        parse_epochs(-1)


def test_case16_run_parameters_refuse_bad_epochs_seed_protocol_and_dataset(clean_env, tmp_path):
    from ser_utils.course.chapter import start_chapter
    from ser_utils.run_context import RunMode, resolve_data

    with pytest.raises(ParameterError, match="epochs"):
        RunMode.resolve(epochs=-1)
    with pytest.raises(ParameterError, match="quick='maybe'"):
        RunMode.resolve(quick="maybe")
    with pytest.raises(ParameterError, match="dataset must be one of"):
        resolve_data("tes", artifacts_dir=tmp_path, make_demo=False)
    # The chapter's own parameters are checked before any data is resolved.
    with pytest.raises(ParameterError, match="seed"):
        start_chapter("demo", artifacts_dir=str(tmp_path), seed="abc", show_banner=False)
    with pytest.raises(ParameterError, match="protocol must be one of"):
        start_chapter("demo", artifacts_dir=str(tmp_path), protocol="speakr", show_banner=False)
    assert not any(tmp_path.iterdir())


# --- 10, 23: predict ----------------------------------------------------------------------------


def fake_model(folder: Path, name: str, *, layers: tuple[str, ...]) -> Path:
    """A .keras archive whose config names ``layers``, with a complete sidecar (never loaded)."""
    from dataclasses import asdict

    from ser_utils.features import FeatureConfig

    folder.mkdir(parents=True, exist_ok=True)
    model = folder / f"{name}.keras"
    with zipfile.ZipFile(model, "w") as zf:
        zf.writestr("config.json", json.dumps({"config": {"layers": [{"name": n} for n in layers]}}))
    model.with_suffix(".json").write_text(json.dumps({
        "model": name, "input": "frames", "input_shape": [64, 187], "standardizer": {"kind": "global"},
        "feature_config": asdict(FeatureConfig())}))
    return model


def test_case10_cam_on_a_model_without_convolution_is_refused_before_predicting(tmp_path, capsys):
    clip = write_wav(tmp_path / "c.wav", tone(0.8))
    model = fake_model(tmp_path / "m", "lstm", layers=("lstm_1", "dense"))
    assert main(["predict", str(clip), "--model", str(model), "--cam", str(tmp_path / "cam.png")]) == 2
    err = one_error_line(capsys)
    assert "--cam needs a model with a convolution layer" in err
    assert not (tmp_path / "cam.png").exists()


@pytest.mark.parametrize("arg, expected", [
    ("https://example.com/clip.wav", "looks like a URL"),
    ("{models}/config.json", "is a JSON file with no saved model"),
])
def test_case23_predict_messages(tmp_path, capsys, arg, expected):
    clip = write_wav(tmp_path / "c.wav", tone(0.8))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "config.json").write_text("{}")
    argv = ["predict", arg] if "://" in arg else ["predict", str(clip), "--model", arg.format(models=tmp_path / "models")]
    assert main(argv) == 2
    err = one_error_line(capsys)
    assert expected in err and "config.keras" not in err


# --- 11, 12, 17, 23: audio and archives -----------------------------------------------------------


def test_case11_a_zip_bomb_is_refused_before_extracting(tmp_path, capsys):
    dest = tmp_path / "dl"
    dest.mkdir()
    with zipfile.ZipFile(dest / "tess.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("OAF_back_angry.wav", b"\0" * (64 << 20))  # 64 MiB of zeros in ~64 KB
    assert (dest / "tess.zip").stat().st_size < 1 << 20
    assert main(["download", str(dest)]) == 2
    assert "zip bomb" in one_error_line(capsys)
    assert not (dest / "TESS").exists() or not any((dest / "TESS").rglob("*"))


def wav_header(path: Path, *, channels: int, rate: int, seconds: float) -> Path:
    """A sparse 16-bit PCM WAV declaring ``channels`` x ``rate`` x ``seconds``: 1 MB of data on disk."""
    n_bytes = int(rate * seconds) * channels * 2
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    head = b"RIFF" + struct.pack("<I", 36 + n_bytes) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    with open(path, "wb") as fh:  # 1 MB of samples, the rest a hole: a sparse file of the declared size
        fh.write(head + b"data" + struct.pack("<I", n_bytes) + b"\x01\x00" * (1 << 19))
        fh.truncate(len(head) + 8 + n_bytes)
    return path


@pytest.mark.parametrize("channels, seconds", [(16, 59), (1024, 5)])
def test_case12_samples_times_channels_are_bounded_before_reading(tmp_path, channels, seconds):
    # 16 x 384 kHz x 59 s took 13 s and 1.9 GB to probe; 1024 channels (5 s, under the duration limit) needed 16 GiB
    wav = wav_header(tmp_path / "OAF_back_angry.wav", channels=channels, rate=384_000, seconds=seconds)
    t0 = time.perf_counter()
    probe = probe_audio(wav)
    assert time.perf_counter() - t0 < 2
    assert not probe.ok and "too large to decode" in probe.reason
    with pytest.raises(AudioFileError, match="too large to decode"):
        accept_audio(wav)


def test_case12_a_valid_long_high_rate_mono_clip_is_still_accepted(tmp_path):
    path = tmp_path / "hi.wav"
    sf.write(str(path), tone(2.0, sr=384_000), 384_000, subtype="PCM_16")
    assert probe_audio(path).ok


def test_case17_a_very_quiet_clip_is_accepted_with_a_note(tmp_path, capsys):
    data = tmp_path / "data"
    quiet = tone(0.8) / np.max(np.abs(tone(0.8))) * 10 ** (-70 / 20)
    data.mkdir()
    sf.write(str(data / "OAF_back_sad.wav"), quiet, 24414, subtype="FLOAT")
    write_wav(data / "OAF_back_angry.wav", tone(0.8))
    clip = accept_audio(data / "OAF_back_sad.wav")
    assert "very quiet (peak -70 dBFS" in clip.note and accept_audio(data / "OAF_back_angry.wav").note == ""
    summary = summarise_manifest(build_manifest(data, progress=False), expected_size=2)
    assert summary.n_ok == 2 and "very quiet" in str(summary)  # listed among the handled quirks
    assert main(["manifest", str(data)]) == 0
    assert "very quiet" in capsys.readouterr().out


@pytest.mark.parametrize("dbfs", [-79.9, -80.0, -90.0])
def test_case17_predict_at_minus_80_dbfs_warns_or_refuses_never_silently(tmp_path, capsys, dbfs):
    """The issue's clip: the same waveform at -80 dBFS (the prediction flipped with no warning).

    Down to the silence line (peak amplitude 1e-4 = -80 dBFS) it is accepted with a warning printed first;
    below it, one error line that gives the level and says to normalise it.
    """
    loud = tone(0.8) / np.max(np.abs(tone(0.8)))
    clip = tmp_path / "quiet.wav"
    sf.write(str(clip), (loud * 10 ** (dbfs / 20) * (1 + 1e-6)).astype(np.float32), 24414, subtype="FLOAT")
    before = clip.read_bytes()
    assert main(["predict", str(clip), "--model", str(tmp_path / "none.keras")]) == 2  # no such model
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and err.count("error: ") == 1, err
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    if dbfs >= -80:
        assert len(warning) == 1 and f"very quiet (peak {dbfs:.0f} dBFS" in warning[0]
        assert err.index("warning:") < err.index("error:") and "none.keras" in err  # said before the model is read
    else:
        assert not warning and f"silent (peak {dbfs:.1f} dBFS, below -80 dBFS" in err and "normalise" in err
    assert clip.read_bytes() == before


def test_case23_streaming_wav_is_read_not_called_truncated(tmp_path):
    path = write_wav(tmp_path / "s.wav", tone(0.8))
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, 4, 0xFFFFFFFF)  # RIFF size unknown
    struct.pack_into("<I", raw, raw.index(b"data") + 4, 0xFFFFFFFF)  # data size unknown, as a stream writer does
    path.write_bytes(bytes(raw))
    info = sf.info(str(path))
    assert info.frames > 0  # libsndfile reads it
    assert accept_audio(path).duration == pytest.approx(0.8, abs=0.01)


def test_case23_too_short_never_reads_as_equal(tmp_path):
    path = write_wav(tmp_path / "s.wav", tone(0.19996))
    with pytest.raises(AudioFileError, match=r"too short \(0\.199 s") as info:
        accept_audio(path)
    assert "0.200 s" not in str(info.value)


def test_case23_a_pure_dc_clip_is_refused(tmp_path):
    path = write_wav(tmp_path / "dc.wav", np.full(24414, 0.3, np.float32))
    with pytest.raises(AudioFileError, match="constant signal"):
        accept_audio(path)


def test_case23_features_on_a_crema_folder_reads_it_as_crema(tmp_path, capsys, clean_env):
    from ser_utils.synth import write_demo_crema

    crema = write_demo_crema(tmp_path / "crema", n_actors=3, n_sentences=1)
    assert main(["features", str(crema), "--quick", "--jobs", "1", "--artifacts", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "all from cache" not in out and "clips: 18 with features" in out
    empty = tmp_path / "nolabels"
    write_wav(empty / "hello.wav", tone(0.8))
    assert main(["features", str(empty), "--quick", "--artifacts", str(tmp_path / "out2")]) == 2
    assert "no usable clip" in one_error_line(capsys)


# --- 14: missing emotions ---------------------------------------------------------------------------


def test_case14_scores_over_the_emotions_present_with_a_warning():
    from ser_utils.evaluation import FoldResult, make_record

    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 0, 2, 0]
    fold = FoldResult("random", [f"c{i}" for i in range(6)], y_true, y_pred, n_train=10, n_val=2)
    with pytest.warns(UserWarning, match="only 3 of the 7 emotions"):
        rec = make_record("logreg", "random", 0, [fold], dataset={"name": "tess"}, wall_time=0.0)
    assert rec["metrics"]["accuracy"] == pytest.approx(0.5)
    assert rec["metrics"]["uar"] == pytest.approx(0.5)  # averaged over 3 classes, not 7 (was 0.214)
    assert len(rec["scored_classes"]) == 3
    assert np.array(rec["confusion"]).shape == (7, 7)


# --- 18: results files --------------------------------------------------------------------------------


def test_case18_report_with_string_metrics_is_one_line(tmp_path, capsys):
    rec = {"model": "logreg", "protocol": "random", "seed": 0, "metrics": {"accuracy": "0.9", "uar": "high"}}
    (tmp_path / "logreg__random__seed0.json").write_text(json.dumps(rec))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["report", "--results", str(tmp_path), "--no-readme"]) == 2
    assert "unreadable or not results records" in one_error_line(capsys)


def test_case18_a_truncated_results_file_is_retrained_not_a_traceback(tmp_path):
    from ser_utils.cache import read_valid
    from ser_utils.evaluation import load_record

    path = tmp_path / "hybrid__random__seed0.json"
    path.write_text('{"model": "hybrid", "protocol": "random", "seed": 0, "metr')
    with pytest.warns(UserWarning, match="results file .* corrupt or stale"):
        assert read_valid(path, load_record, what="results file") is None  # run_grid then trains it
    assert not path.exists()


# --- 19: an interrupted train says what finished --------------------------------------------------------


def test_case19_interrupted_train_names_the_finished_seeds(clean_env, tmp_path, capsys, monkeypatch):
    import ser_utils.experiments as experiments

    data = small_corpus(tmp_path / "data", n_words=6)
    real = experiments.run_experiment

    def run(ws, name, protocol, seed, **kw):
        if seed == 1:
            raise KeyboardInterrupt
        return real(ws, name, protocol, seed, **kw)

    monkeypatch.setattr(experiments, "run_experiment", run)
    rc = main(["train", "duration", "--data-dir", str(data), "--quick", "--seeds", "0", "1", "2", "3",
               "--artifacts", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 130, err
    assert "seed(s) [0] finished" in err and "--seeds 1 2 3" in err and "will be reused" not in err


# --- 21: workers die with their parent ------------------------------------------------------------------


def test_case21_a_worker_stops_when_its_parent_is_killed(tmp_path):
    beat = tmp_path / "beat"
    script = f"""
import os, sys, time
sys.path.insert(0, {str(ROOT)!r})
from ser_utils.workers import stop_if_orphaned
parent = os.getpid()
if os.fork() == 0:
    while True:
        stop_if_orphaned(parent)
        with open({str(beat)!r}, "a") as fh:
            fh.write("x")
        time.sleep(0.05)
time.sleep(0.5)
os.kill(os.getpid(), 9)
"""
    proc = subprocess.run([sys.executable, "-c", script], timeout=30)
    assert proc.returncode == -signal.SIGKILL
    time.sleep(0.5)
    n = beat.stat().st_size
    time.sleep(1.0)
    assert n > 0 and beat.stat().st_size == n  # no more work after the parent died


def test_case21_feature_workers_get_the_parent_pid(tmp_path, monkeypatch):
    """The extraction worker checks its parent before each clip (and before writing the chunk)."""
    import ser_utils.features as features

    calls = []
    monkeypatch.setattr(features, "stop_if_orphaned", lambda pid: calls.append(pid))
    data = two_clips(tmp_path / "data")
    features.ensure_features(build_manifest(data, progress=False), tmp_path / "art", features.quick_config(),
                             jobs=1, progress=False)
    assert calls == [os.getpid()] * 3


def _death_signal() -> int:
    """This process's parent-death signal (``prctl(PR_GET_PDEATHSIG)``), 0 when none is set."""
    import ctypes

    sig = ctypes.c_int(0)
    ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)  # 2 = PR_GET_PDEATHSIG
    return sig.value


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_case21_pool_workers_die_with_the_parent_before_their_first_task():
    """A worker still importing when its parent is killed must not outlive it: the signal is set as it starts."""
    from joblib import Parallel, delayed

    from ser_utils.workers import worker_executor, worker_pool

    with worker_pool():
        signals = Parallel(n_jobs=2)(delayed(_death_signal)() for _ in range(4))
    assert signals == [signal.SIGKILL] * 4
    assert worker_executor(2).submit(_death_signal).result() == signal.SIGKILL


# --- 23: Ctrl-C in book ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_case23_ctrl_c_in_book_prints_one_line(tmp_path):
    from tests.test_pipeline import STANDARD, write_book

    write_book(tmp_path / "b", {"01_a": (STANDARD, "import time; time.sleep(120)")})
    env = {**os.environ, "SER_ARTIFACTS_DIR": str(tmp_path / "art"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "ser_utils", "book", "--book-root", str(tmp_path / "b"),
                             "--no-html", "--dataset", "demo", "--quick"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log = tmp_path / "b/_build/src/book/.01_a.kernel.log"
    deadline = time.time() + 120
    while not log.exists() and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(8)  # the kernel is up and running the cell
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "ZMQError" not in out
    assert "interrupted:" in out


# --- the SIGKILL loop -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_at_random_points_never_leaves_a_state_reused_wrongly(tmp_path):
    """Two kill points in each of ``features``, ``train`` and ``book --quick`` (chapter 01) of ``benchmarks/kill_resume.py``.

    The full 20 points (book on chapters 01 and 02) run by hand: ``python benchmarks/kill_resume.py``.
    """
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kill_resume.py"), "--work", str(tmp_path),
                           "--points", "6", "--seed", "1", "--budget-s", "90", "--no-repeat-check",
                           "--commands", "features,train,book", "--book-only", "01"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1500,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "all kill points recovered" in proc.stdout
    for command in ("features", "train", "book"):  # every command was killed at least once in the middle of work
        assert f"{command:8s} point  1: killed at" in proc.stdout, proc.stdout


def test_resumed_features_equal_uninterrupted_ones_to_the_bit(tmp_path, monkeypatch):
    """A chunk computed in this process (what is left after a kill, or ``jobs=1``) equals one from a pool worker.

    The SIGKILL loop found a resumed ``features`` differing from an uninterrupted run in the last bit:
    BLAS summed the mel projection on all cores in-process and on one core in a worker.
    """
    import ser_utils.features as features

    data = small_corpus(tmp_path / "data")
    m = build_manifest(data, progress=False)
    monkeypatch.setattr(features, "_CHUNK", 4)  # several chunks: a pool of two workers
    pooled = features.ensure_features(m, tmp_path / "a", features.quick_config(), jobs=2, progress=False)
    here = features.ensure_features(m, tmp_path / "b", features.quick_config(), jobs=1, progress=False)
    assert pooled.chunks_computed == here.chunks_computed == len(list(pooled.cache_dir.glob("chunk_*.npz"))) > 1
    for name in ("vectors", "frames", "images"):
        assert np.array_equal(getattr(pooled, name), getattr(here, name)), name
