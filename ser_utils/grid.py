"""The experiment grid on one machine or many: runs mapped over a ``concurrent.futures``-style executor.

A grid is every model x protocol x seed on one corpus. Each run is independent
and deterministic, so the grid needs no scheduler of its own: :func:`run_jobs`
hands one small picklable :class:`GridJob` per run to any executor with
``submit`` (an in-process :class:`SerialExecutor` by default, a local Dask
cluster, or an existing Dask cluster; ``distributed.Client.get_executor()`` is
a ``concurrent.futures`` executor) and collects the outcomes as they finish.

A worker resolves the job itself through the library (:func:`job_workspace`
opens a :class:`~ser_utils.workspace.Workspace`: data folder, manifest, cached
features, saved splits, run mode) and writes its results
file atomically (:func:`ser_utils.evaluation.save_record`), so several machines
can share one artifacts folder. Before the runs, one preparation job
(:func:`prepare_data`) extracts the features and writes the splits, so that
the runs only read the shared caches. Each job pins the thread pools of
TensorFlow, torch and BLAS to its worker's share of the cores
(:func:`job_threads`, :func:`pinned_threads`): N workers on N cores do not
oversubscribe them. ``python -m ser_utils grid`` is the command line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:
    from .workspace import Workspace

#: Environment variable that fixes the threads of every job (e.g. when a cluster's workers share hosts oddly).
THREADS_ENV = "SER_GRID_THREADS"
#: Thread-count environment variables read at call time (set for a job, then restored): ours for torch
#: (:func:`ser_utils.vision.set_threads`), and joblib's core count, which sizes every ``n_jobs=-1``
#: (the random forest's trees would otherwise take every core of the host in each worker).
_THREAD_ENV = ("SER_TORCH_THREADS", "LOKY_MAX_CPU_COUNT")
#: Which framework each model family starts (its thread pools are pinned before the job runs).
_FRAMEWORKS = {"baseline": (), "keras": ("tensorflow",), "vision": ("torch",)}

INSTALL_HINT = "install the grid extra: pip install 'ser-utils[grid]' (or pip install 'dask[distributed]')"


# --- jobs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridData:
    """What every job of a grid shares: the data, the artifacts folder, the run mode.

    On a cluster both folders must be visible under the same path on every
    worker (shared storage): the jobs read the corpus and the feature cache
    there and write their results and models there.
    """

    artifacts_dir: str
    dataset: str = "auto"  # "auto" | "tess" | "demo", as in the chapters' parameters
    data_dir: str | None = None
    epochs: int | None = None
    quick: bool = False


@dataclass(frozen=True)
class GridJob:
    """One run of the grid: a model, a protocol and a seed on :class:`GridData` (small and picklable)."""

    data: GridData
    model: str
    protocol: str
    seed: int

    @property
    def label(self) -> str:
        return f"{self.model} {self.protocol} seed {self.seed}"

    @property
    def result_path(self) -> Path:
        """The results file this job writes."""
        from .evaluation import result_path

        return result_path(self.data.artifacts_dir, self.model, self.protocol, self.seed)


@dataclass
class JobOutcome:
    """What became of one job: its record, or the error that stopped it (the others carry on)."""

    job: GridJob | None  # None for the preparation step
    record: dict | None = None
    error: str | None = None  # one line: "ExceptionType: message"
    traceback: str | None = None
    skipped: bool = False  # its results file was already there
    threads: int | None = None  # the thread budget it ran with (None: not pinned)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def make_jobs(data: GridData, models: Sequence[str], protocols: Sequence[str], seeds: Sequence[int]) -> list[GridJob]:
    """Every model x protocol x seed as a :class:`GridJob`, in that order; bad names raise :class:`UserError`."""
    from .registry import ModelSpec
    from .splits import PROTOCOLS

    for m in models:
        try:
            spec = ModelSpec.parse(m)
        except ValueError as exc:
            raise UserError(f"--models: {exc}") from None
        if spec.name != m:
            raise UserError(f"--models: write {m!r} as {spec.name!r} (the name its results file has)")
        if spec.family.name == "baseline" and spec.input != "vector":
            raise UserError(f"--models: {m!r} needs chapter 9's {spec.input} view (python -m ser_utils.transfer), "
                            "which the grid does not run")
        if spec.pretrained:
            raise UserError(f"--models: {m!r} needs weights to start from; train it with "
                            "`python -m ser_utils train MODEL --pretrained ID_OR_PATH`")
    for p in protocols:
        if p not in PROTOCOLS:
            raise UserError(f"--protocols: unknown protocol {p!r}; choose from {', '.join(PROTOCOLS)}")
    if not (models and protocols and seeds):
        raise UserError("a grid needs at least one model, one protocol and one seed")
    return [GridJob(data, m, p, int(s)) for m in models for p in protocols for s in seeds]


# --- what a job may use ----------------------------------------------------------------------


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; all cores where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _dask_worker():
    """The Dask worker running the current task, or None (serial run, or no Dask installed)."""
    if "distributed" not in sys.modules:  # a Dask worker has it loaded; a serial run need not pay its import
        return None
    try:
        from distributed import get_worker
    except ImportError:
        return None
    try:
        return get_worker()
    except ValueError:  # "no worker found": not inside a Dask task
        return None


#: Modules of a Dask worker that draw from Python's global ``random`` in other threads during a task.
_WORKER_RANDOM_USERS = ("tornado.ioloop", "dask.sizeof", "distributed.utils_comm", "distributed.worker")


def isolate_worker_randomness() -> None:
    """In a Dask worker, give the worker's own modules a random generator apart from Python's global one.

    Keras draws the seeds of initialisers and dropout layers from Python's
    global ``random`` generator, which ``set_seed`` resets before a model is
    built. In a Dask worker other threads draw from that generator while the
    job builds its model: ``dask.sizeof`` samples the items of large results
    (``random.sample``) and Tornado jitters its periodic callbacks. The job
    would then get other initial weights than the same job run serially
    (measured: another first-epoch loss and other predictions for ``cnn``).
    Each of those modules gets a private ``random.Random`` instead (once per
    process); nothing else changes.
    """
    if _dask_worker() is None:
        return
    import importlib
    import random

    for name in _WORKER_RANDOM_USERS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "random", None) is random:  # the module itself: swap in a private generator
            module.random = random.Random()


def job_threads() -> int:
    """The threads one job may use: ``SER_GRID_THREADS``, else its worker's share of the host's cores.

    In a serial run the job has the whole machine. On Dask, every worker on a
    host runs up to ``nthreads`` jobs at once, so a job gets the host's cores
    divided by the task slots of all workers there (two one-slot workers on
    two cores: one thread each); the scheduler knows those slots.
    """
    forced = os.environ.get(THREADS_ENV, "").strip()
    if forced:
        return max(1, int(forced))
    cores = usable_cores()
    worker = _dask_worker()
    if worker is None:
        return cores
    from distributed import get_client
    from distributed.comm import get_address_host

    host = get_address_host(worker.address)
    workers = get_client().scheduler_info(n_workers=-1)["workers"].values()
    slots = sum(w["nthreads"] for w in workers if w.get("host") == host) or worker.state.nthreads
    return max(1, cores // slots)


def _pin_tensorflow(n: int) -> None:
    import tensorflow as tf

    threading = tf.config.threading
    if (threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads()) == (n, 1):
        return
    try:
        # inter-op 1: one job is one stream of ops; TensorFlow's guide sizes that pool by sockets, not cores.
        threading.set_intra_op_parallelism_threads(n)
        threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran an op in this process: its pools are fixed for good
        import warnings

        warnings.warn(f"TensorFlow already started in this process with "
                      f"{threading.get_intra_op_parallelism_threads() or 'all'} intra-op threads; "
                      f"this job keeps them instead of {n}", RuntimeWarning, stacklevel=3)


@contextlib.contextmanager
def pinned_threads(n: int, frameworks: Iterable[str] = ()) -> Iterator[int]:
    """Run a block with at most ``n`` threads in TensorFlow, torch, BLAS/OpenMP and joblib; yields ``n``.

    ``frameworks`` (``"tensorflow"``, ``"torch"``) are started here if needed,
    before their pools are first used; one already imported is pinned too.
    TensorFlow's and torch's settings last for the process (a Dask worker runs
    one job after another with the same budget); BLAS limits and
    ``SER_TORCH_THREADS`` (read by :func:`ser_utils.vision.set_threads`) and
    ``LOKY_MAX_CPU_COUNT`` (joblib's ``n_jobs=-1``, e.g. the random forest) are
    restored afterwards.
    """
    from threadpoolctl import threadpool_limits

    n = max(1, int(n))
    wanted = set(frameworks)
    if "tensorflow" in wanted or "tensorflow" in sys.modules:
        from .quiet import quiet_libraries

        quiet_libraries()  # before TensorFlow's first import in a worker
        _pin_tensorflow(n)
    if "torch" in wanted or "torch" in sys.modules:
        import torch

        torch.set_num_threads(n)
    saved = {k: os.environ.get(k) for k in _THREAD_ENV}
    os.environ.update({k: str(n) for k in _THREAD_ENV})
    try:
        with threadpool_limits(limits=n):  # every BLAS and OpenMP library loaded by now
            yield n
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- on the worker: the context of a job ------------------------------------------------------


def job_workspace(data: GridData, *, threads: int | None = None) -> Workspace:
    """Resolve a grid's data on a worker: the library's :class:`~ser_utils.workspace.Workspace`.

    The data folder, manifest, feature settings and run mode (quick, epoch cap)
    of :class:`GridData`; ``threads`` processes extract features the cache
    lacks (None: all cores), without a progress bar.
    """
    from .run_context import RunMode
    from .workspace import open_workspace

    ws = open_workspace(data.dataset, data.data_dir, data.artifacts_dir, mode=RunMode.resolve(data.quick, data.epochs))
    return replace(ws, feature_jobs=threads, feature_progress=False)


def run_job(job: GridJob, *, threads: int | None = None) -> dict:
    """Build the job's context and run it (:func:`~ser_utils.experiments.run_experiment`); return its record."""
    from .experiments import run_experiment

    ws = job_workspace(job.data, threads=threads)
    return run_experiment(ws, job.model, job.protocol, job.seed, progress=False)


def prepare_data(data: GridData, runs: Sequence[tuple[str, int]], *, threads: int | None = None) -> dict:
    """Before the runs: write the manifest, extract the features, write the splits of each (protocol, seed).

    Done once, so that the runs only read these shared files (two jobs never
    extract the same chunk or write the same split at once). Returns the
    dataset block the results will carry, with the artifacts folder.
    """
    from .evaluation import dataset_info

    ws = job_workspace(data, threads=threads)  # writes the manifest (atomically)
    n = len(ws.features)
    for protocol, seed in dict.fromkeys(runs):
        ws.splits(protocol, seed)
    return {**dataset_info(ws.data, n_clips=n, quick=ws.mode.quick, n_speakers=len(ws.summary.counts)), "artifacts_dir": str(ws.artifacts_dir),
            "chunks_computed": ws.features.chunks_computed}


def _attempt(fn: Callable, task, pin: bool, frameworks: Sequence[str], *args) -> JobOutcome:
    """Worker side: ``fn(task, *args, threads=...)`` with pinned threads; any error becomes the outcome."""
    start = time.perf_counter()
    job = task if isinstance(task, GridJob) else None
    threads = None
    try:
        isolate_worker_randomness()
        threads = job_threads() if pin else None
        with pinned_threads(threads, frameworks) if pin else contextlib.nullcontext():
            result = fn(task, *args, threads=threads)
    except Exception as exc:  # one failed run must not stop the grid: report it and carry on
        text = str(exc).strip()
        return JobOutcome(job, error=f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": "),
                          traceback=traceback.format_exc(), threads=threads, seconds=time.perf_counter() - start)
    return JobOutcome(job, record=result, threads=threads, seconds=time.perf_counter() - start)


# --- executors --------------------------------------------------------------------------------


class SerialExecutor(Executor):
    """A ``concurrent.futures`` executor that runs each call at once, in this process (the default)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # delivered through the future, as other executors do
            future.set_exception(exc)
        return future


@contextlib.contextmanager
def open_executor(workers: int | None = None, scheduler: str | None = None) -> Iterator[Executor]:
    """The executor a grid runs on: serial, a local Dask cluster of ``workers`` processes, or ``scheduler``'s.

    A local cluster gets one task slot per worker process (each job then has
    its share of the cores, see :func:`job_threads`) and is shut down on exit.
    ``scheduler`` is the address of a running Dask scheduler
    (``tcp://host:8786``), whose workers must see the data and artifacts folders
    under the same paths.
    """
    if workers is not None and scheduler is not None:
        raise UserError("give --workers N (a local Dask cluster) or --scheduler ADDRESS (a running one), not both")
    if workers is None and scheduler is None:
        yield SerialExecutor()
        return
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1, not {workers}")
    try:
        import logging

        from distributed import Client, LocalCluster
    except ImportError:
        raise UserError(f"--workers and --scheduler run the grid on Dask, which is not installed: {INSTALL_HINT}") \
            from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise UserError(f"cannot reach a Dask scheduler at {scheduler!r} ({type(exc).__name__}: {exc}); start one "
                            "(`dask scheduler`, then `dask worker ADDRESS` on each machine) or check the address") \
                from None
        with client:
            if not client.scheduler_info()["workers"]:
                print(f"note: the scheduler at {scheduler} has no workers yet; the runs start when they join "
                      "(`dask worker ADDRESS`)", file=sys.stderr)
            yield client.get_executor(pure=False)  # pure=False: each job writes files, never dedupe two submissions
        return
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    with cluster, Client(cluster) as client:
        yield client.get_executor(pure=False)


# --- the client side --------------------------------------------------------------------------


@dataclass
class GridReport:
    """The outcomes of a grid, in job order, with what the preparation found."""

    outcomes: list[JobOutcome]
    prepared: dict = field(default_factory=dict)

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def records(self) -> list[dict]:
        return [o.record for o in self.outcomes if o.ok and o.record is not None]


def _existing(job: GridJob) -> dict | None:
    """The record already saved for ``job``, or None: no file, an unreadable one, or one made otherwise.

    A record counts as done only when it was made in the same mode (quick or
    not), with the same epoch cap and the same feature settings; any other is
    rerun (and replaced).
    """
    from .evaluation import load_record
    from .features import FeatureConfig, quick_config

    path = job.result_path
    if not path.is_file():
        return None
    try:
        rec = load_record(path)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    config = rec.get("config") if isinstance(rec.get("config"), dict) else {}
    features = (quick_config() if job.data.quick else FeatureConfig()).key()
    same = (rec["dataset"].get("quick") == job.data.quick and config.get("epochs") == job.data.epochs
            and config.get("features") == features)
    return rec if same else None


def _frameworks(job: GridJob) -> tuple[str, ...]:
    from .registry import ModelSpec

    return _FRAMEWORKS[ModelSpec.parse(job.model).family.name]


def _collect(futures: dict[Future, GridJob], bar) -> dict[GridJob, JobOutcome]:
    """The outcomes of ``futures`` as they complete; a failure is written above the progress bar."""
    out = {}
    for fut in as_completed(futures):
        job = futures[fut]
        try:
            outcome = fut.result()
            outcome.job = job
        except Exception as exc:  # the worker itself was lost, or the job could not be sent
            outcome = JobOutcome(job, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        out[job] = outcome
        if not outcome.ok:
            bar.write(f"failed: {job.label}: {outcome.error}")
        bar.failed = getattr(bar, "failed", 0) + (not outcome.ok)
        bar.set_postfix(failed=bar.failed, refresh=False)
        bar.update()
    return out


def run_jobs(jobs: Sequence[GridJob], executor: Executor | None = None, *, skip_existing: bool = True,
             pin_threads: bool = True, progress: bool = True) -> GridReport:
    """Run ``jobs`` on ``executor`` (in this process when None) and return their outcomes in job order.

    With ``skip_existing`` a job whose results file is already there (and
    readable) is not run again; its saved record is returned. The data each
    grid needs is prepared first by one job on the executor (see
    :func:`prepare_data`); if that fails, every job is reported with its error.
    A failed run is reported with its error (and shown as it happens) while
    the others carry on. ``pin_threads`` gives each job its worker's share of
    the cores (:func:`job_threads`); off, the libraries choose for themselves.
    """
    from tqdm.auto import tqdm

    from .quiet import bar_hidden

    executor = executor or SerialExecutor()
    outcomes: dict[GridJob, JobOutcome] = {}
    todo = []
    for job in jobs:
        saved = _existing(job) if skip_existing else None
        if saved is not None:
            outcomes[job] = JobOutcome(job, record=saved, skipped=True)
        else:
            todo.append(job)
    prepared: dict = {}
    by_data: dict[GridData, list[GridJob]] = {}
    for job in todo:
        by_data.setdefault(job.data, []).append(job)
    for data, group in by_data.items():
        runs = [(j.protocol, j.seed) for j in group]
        prep = executor.submit(_attempt, prepare_data, data, pin_threads, (), runs)
        try:
            result = prep.result()
        except Exception as exc:  # the worker was lost
            result = JobOutcome(None, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        if not result.ok:
            for j in group:
                outcomes[j] = JobOutcome(j, error=f"preparing the data failed: {result.error}",
                                         traceback=result.traceback)
            todo = [j for j in todo if j.data != data]
        else:
            prepared = result.record
    submit = lambda job: executor.submit(_attempt, run_job, job, pin_threads, _frameworks(job))  # noqa: E731
    with tqdm(total=len(todo), desc="grid", unit="run", disable=bar_hidden(progress and bool(todo))) as bar:
        if isinstance(executor, SerialExecutor):  # it runs a job on submit: show each one as it ends
            for job in todo:
                outcomes.update(_collect({submit(job): job}, bar))
        else:  # everything queued at once; the cluster's workers take the jobs in turn
            outcomes.update(_collect({submit(job): job for job in todo}, bar))
    return GridReport([outcomes[j] for j in jobs], prepared)


def failure_log(report: GridReport) -> str:
    """The failed jobs with their full tracebacks (what the command writes next to the results)."""
    return "\n".join(f"== {o.job.label}: {o.error}\n{o.traceback or ''}" for o in report.failed)
