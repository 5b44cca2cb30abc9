"""The experiment grid (ser_utils.grid, python -m ser_utils grid): serial and on Dask, the same files."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ser_utils.grid import GridData, make_jobs, open_executor, run_jobs, usable_cores

from .conftest import ROOT

MODELS, PROTOCOLS, SEEDS = ("logreg", "duration"), ("random", "speaker"), (0, 1)
#: Keys of a results file that differ between two identical runs (time and place of the run).
VOLATILE = {"created", "wall_time_s", "machine", "_path"}
VOLATILE_FOLD = {"train_time_s", "model_path"}


@pytest.fixture(scope="module")
def feature_cache(demo_dir, tmp_path_factory) -> Path:
    """The demo corpus's quick-mode features, extracted once and copied into each grid's artifacts folder."""
    art = tmp_path_factory.mktemp("grid-cache")
    run_jobs(make_jobs(GridData(str(art), data_dir=str(demo_dir), quick=True), ["duration"], ["random"], [0]),
             progress=False)
    return art / "features"


def artifacts(tmp_path: Path, name: str, feature_cache: Path) -> Path:
    out = tmp_path / name
    shutil.copytree(feature_cache, out / "features")  # keyed by the clips' contents: valid for the same corpus
    return out


def comparable(path: Path) -> dict:
    rec = {k: v for k, v in json.loads(path.read_text()).items() if k not in VOLATILE}
    rec["folds"] = [{k: v for k, v in f.items() if k not in VOLATILE_FOLD} for f in rec["folds"]]
    return rec


@pytest.mark.slow
def test_serial_and_two_dask_workers_write_identical_results(demo_dir, feature_cache, tmp_path):
    pytest.importorskip("distributed")
    grids = {}
    for name, workers in (("serial", None), ("dask", 2)):
        data = GridData(str(artifacts(tmp_path, name, feature_cache)), data_dir=str(demo_dir), quick=True)
        with open_executor(workers) as executor:
            grids[name] = run_jobs(make_jobs(data, MODELS, PROTOCOLS, SEEDS), executor, progress=False)
        assert not grids[name].failed, [o.error for o in grids[name].failed]
    files = {name: sorted((tmp_path / name / "results").glob("*.json")) for name in grids}
    assert [p.name for p in files["serial"]] == [p.name for p in files["dask"]]
    assert len(files["serial"]) == len(MODELS) * len(PROTOCOLS) * len(SEEDS)
    for a, b in zip(files["serial"], files["dask"], strict=True):
        assert comparable(a) == comparable(b), a.name  # metrics, confusions, predictions, sizes, config
        assert comparable(a)["folds"][0]["predictions"]["ids"]
    # Each job ran with its worker's share of the cores: all of them serially, half on each of 2 workers.
    assert {o.threads for o in grids["serial"].outcomes} == {usable_cores()}
    assert {o.threads for o in grids["dask"].outcomes} == {max(1, usable_cores() // 2)}


def test_a_failed_run_is_reported_and_the_others_finish_then_only_it_is_rerun(
        demo_dir, feature_cache, tmp_path, monkeypatch, capsys):
    import ser_utils.experiments as experiments
    from ser_utils.cli import main

    real = experiments.run_experiment

    def flaky(ws, model, *args, **kwargs):
        if model == "duration":
            raise RuntimeError("disk full\nsecond line")
        return real(ws, model, *args, **kwargs)

    out = artifacts(tmp_path, "art", feature_cache)
    argv = ["grid", "--models", "logreg,duration", "--protocols", "random", "--seeds", "0", "1",
            "--data-dir", str(demo_dir), "--artifacts", str(out), "--quick"]
    monkeypatch.setattr(experiments, "run_experiment", flaky)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "failed: duration random seed 0: RuntimeError: disk full\n" in err
    assert "failed: duration random seed 1: RuntimeError: disk full\n" in err
    assert "second line" in (out / "grid-failures.txt").read_text()  # the full traceback is kept
    done = sorted(p.name for p in (out / "results").glob("*.json"))
    assert done == ["logreg__random__seed0.json", "logreg__random__seed1.json"]
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")}

    monkeypatch.setattr(experiments, "run_experiment", real)
    assert main(argv) == 0
    assert "4 runs: 2 trained, 2 already done, 0 failed" in capsys.readouterr().out
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())  # finished runs were not redone
    assert len(list((out / "results").glob("*.json"))) == 4
    # A results file made with other settings (here the epoch cap) is not a finished run of this grid.
    assert main([*argv, "--epochs", "3"]) == 0
    assert "4 runs: 4 trained, 0 already done, 0 failed" in capsys.readouterr().out
    assert json.loads((out / "results" / "logreg__random__seed0.json").read_text())["config"]["epochs"] == 3


@pytest.mark.parametrize("argv, message", [
    (["--models", "nosuch"], "unknown model 'nosuch'"),
    (["--models", "cnn-vector"], "write 'cnn-vector' as 'cnn'"),
    (["--models", "logreg-prosody"], "prosody view"),
    (["--protocols", "actors"], "unknown protocol 'actors'"),
    (["--seeds", "x"], "--seeds takes integers"),
    (["--workers", "0"], "--workers must be at least 1"),
])
def test_bad_grid_arguments_get_one_line(argv, message, tmp_path, capsys):
    from ser_utils.cli import main

    options = {"--models": ["logreg"], "--protocols": ["random"], "--seeds": ["0"], argv[0]: argv[1:]}
    args = ["grid", *[a for k, v in options.items() for a in (k, *v)], "--artifacts", str(tmp_path / "out"), "--quick"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out" / "results").exists()


def test_an_unreachable_scheduler_is_one_line(tmp_path, capsys):
    pytest.importorskip("distributed")
    from ser_utils.cli import main

    args = ["grid", "--models", "logreg", "--protocols", "random", "--seeds", "0", "--artifacts", str(tmp_path / "o"),
            "--scheduler", "tcp://127.0.0.1:9"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cannot reach a Dask scheduler at 'tcp://127.0.0.1:9'" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "results").exists()


def test_the_command_runs_on_a_running_dask_cluster_given_its_scheduler(demo_dir, feature_cache, tmp_path, capsys):
    """--scheduler ADDRESS: the jobs go to that cluster's workers (here a local one, as `dask scheduler` would be)."""
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster, get_task_stream

    from ser_utils.cli import main

    out = artifacts(tmp_path, "art", feature_cache)
    args = ["grid", "--models", "logreg", "--protocols", "random", "--seeds", "0", "1", "--data-dir", str(demo_dir),
            "--artifacts", str(out), "--quick"]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client, get_task_stream(client) as stream:
        assert main([*args, "--scheduler", cluster.scheduler_address]) == 0
    ran_on_worker = [str(t["key"]) for t in stream.data if str(t["key"]).startswith("_attempt")]
    assert "2 runs: 2 trained, 0 already done, 0 failed" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "results").glob("*.json")) == \
        ["logreg__random__seed0.json", "logreg__random__seed1.json"]
    assert len(ran_on_worker) == 3, ran_on_worker  # the preparation and the two runs, all on the cluster


def test_a_job_is_a_small_picklable_description(tmp_path):
    (job,) = make_jobs(GridData(str(tmp_path), data_dir="/data/TESS", epochs=3, quick=True), ["cnn"], ["word"], [7])
    blob = pickle.dumps(job)
    assert pickle.loads(blob) == job and len(blob) < 600
    assert job.result_path == tmp_path / "results" / "cnn__word__seed7.json"


def test_job_threads_is_the_whole_machine_serially_and_the_variable_when_set(monkeypatch):
    from ser_utils.grid import job_threads

    monkeypatch.delenv("SER_GRID_THREADS", raising=False)
    assert job_threads() == usable_cores()
    monkeypatch.setenv("SER_GRID_THREADS", "3")
    assert job_threads() == 3


PIN_CHECK = """
import os, json
from joblib import effective_n_jobs
from threadpoolctl import threadpool_info
from ser_utils.grid import pinned_threads
before = {i["user_api"]: i["num_threads"] for i in threadpool_info()}
with pinned_threads(1, ("tensorflow", "torch")):
    import tensorflow as tf, torch
    inside = {"tf": [tf.config.threading.get_intra_op_parallelism_threads(),
                     tf.config.threading.get_inter_op_parallelism_threads()],
              "torch": torch.get_num_threads(), "env": os.environ.get("SER_TORCH_THREADS"),
              "pools": sorted({i["num_threads"] for i in threadpool_info()}),
              "joblib": effective_n_jobs(-1)}  # what the random forest's n_jobs=-1 becomes
after = {i["user_api"]: i["num_threads"] for i in threadpool_info() if i["user_api"] in before}
print(json.dumps({"inside": inside, "restored": after == before,
                  "env_after": [os.environ.get("SER_TORCH_THREADS"), os.environ.get("LOKY_MAX_CPU_COUNT")]}))
"""


@pytest.mark.slow
def test_pinned_threads_sets_tensorflow_torch_blas_and_joblib_then_restores_what_it_can():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("SER_TORCH_THREADS", None)
    env.pop("LOKY_MAX_CPU_COUNT", None)
    out = subprocess.run([sys.executable, "-c", PIN_CHECK], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["inside"] == {"tf": [1, 1], "torch": 1, "env": "1", "pools": [1], "joblib": 1}
    assert got["restored"] and got["env_after"] == [None, None]


def _seeded_draw(isolate: bool, wait: float) -> tuple[float, list[str]]:
    """In a worker: seed Python's random, let the worker's threads run, draw (as Keras's initialisers do)."""
    import random
    import time

    from ser_utils.grid import _WORKER_RANDOM_USERS, isolate_worker_randomness

    if isolate:
        isolate_worker_randomness()
    random.seed(0)
    time.sleep(wait)
    shared = [m for m in _WORKER_RANDOM_USERS if getattr(sys.modules.get(m), "random", None) is random]
    return random.random(), shared


def _big_result(i: int) -> dict:
    return {f"k{j}": [j] * 20 for j in range(2000)}  # dask.sizeof samples the items of a result this large


def test_a_dask_worker_keeps_pythons_random_to_the_job_after_isolation():
    """Keras seeds its initialisers from Python's random: no other worker thread may draw from it meanwhile."""
    pytest.importorskip("distributed")
    import random

    from distributed import Client, LocalCluster

    random.seed(0)
    expected = random.random()
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        probe = client.submit(_seeded_draw, True, 1.5, pure=False)
        results = [client.submit(_big_result, i, pure=False) for i in range(6)]
        client.gather(results)
        value, shared = probe.result()
    assert shared == [] and value == expected
