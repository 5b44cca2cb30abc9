"""Executing the book: run every chapter with papermill, then build the Jupyter Book.

``python -m ser_utils book`` (and ``make book``) call :func:`run_book`, which reads
the chapters from ``_toc.yml`` (``sphinx_external_toc``, so new chapters are picked
up), stages the book's sources in ``_build/src``, executes each chapter there with
papermill (:func:`run_chapter`; a chapter gets only the parameters its
``parameters`` cell declares), stamps it so that a re-run skips chapters executed
with the same parameters, data and code and an interrupted run resumes where it
stopped, stops at the first failing chapter naming the chapter, cell and error
(:class:`ChapterFailed`), then builds the HTML with warnings as errors
(:func:`build_html`) and writes a timing report ``_build/book-timings.json``.

How outputs look is myst-nb's job (``_config.yml``): ``nb_merge_streams`` shows a
progress bar's last state only; ``nb_output_stderr: remove-warn`` keeps stderr out
of the pages and names each such cell in the build log (reported as a note).
Chapters left out with ``--only`` keep their last good executed copy, or are staged
unexecuted with a note, so every cross-reference still resolves (warnings located
in such a page are reported but do not fail a partial build).

What is kept here, by hand, and why: papermill and Jupyter Book run each
chapter and build the pages, but nothing in them stamps a chapter with the
parameters, data and code it ran with (resume after an interruption, skip
what is up to date), stages the sources so a failed run never leaves a half
book, or turns a kernel failure into "chapter, cell, error" (:class:`ChapterFailed`).
The table of contents and ``--only`` are in :mod:`.toc`, the resume stamps in
:mod:`.stamps`, staging and the HTML build in :mod:`.build`, the timing report in
:mod:`.timings`, the published run in :mod:`.publish`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

from ..errors import BookSetupError
from ..outputs import atomic_write
from ..quiet import QUIET_ENVIRONMENT
from .pages import prepare_staged_pages
from .plan import Coverage
from .build import BookBuildFailed, PipelineError, build_html, sphinx_warnings, stage_sources  # noqa: F401
from .stamps import file_hash, forget, is_up_to_date, normalise, read_stamp, stamp_environment
from .publish import describe_published, publish_chapters, require_clean_checkout, stage_published
from .timings import BookReport, ChapterTiming, format_report, load_report, models_trained_since, report_path  # noqa: F401
from .timings import _write_report
from .toc import ChapterSelectionError, TocEntry, read_toc, select_chapters, write_placeholder  # noqa: F401

#: Parameters every chapter has (the ``parameters`` cell, see ARCHITECTURE.md) that the runner may set.
STANDARD_PARAMETERS = ("dataset", "data_dir", "artifacts_dir", "quick", "epochs")

Echo = Callable[[str], None]


# --- errors ---------------------------------------------------------------------------


class ChapterFailed(PipelineError):
    """A chapter raised an error; names the chapter, the cell and the error."""

    def __init__(self, chapter: str, message: str, *, cell: int | None = None,
                 executed_copy: Path | None = None):
        self.chapter, self.cell, self.executed_copy = chapter, cell, executed_copy
        where = f" at cell {cell} (cells counted from 1, markdown included)" if cell is not None else ""
        text = f"chapter {chapter} failed{where}: {message}"
        if executed_copy is not None:
            text += f"\nThe executed copy, with the error, is at {executed_copy}"
        super().__init__(text)


class BuildFolderBusy(BookSetupError):
    """Another ``book`` run is using the same ``_build`` folder."""




# --- parameters and stamps -----------------------------------------------------------


def chapter_parameters(notebook: str | os.PathLike, run_parameters: dict) -> tuple[dict, list[str]]:
    """The subset of ``run_parameters`` that ``notebook`` declares, and the standard ones it lacks.

    Values that are ``None`` are not passed (the chapter's default stands).
    The second element lists standard parameters (dataset, quick, ...) that
    the runner wanted to pass but the chapter does not declare, so the
    caller can point out a chapter that breaks the convention.
    """
    import papermill

    declared = papermill.inspect_notebook(str(notebook))
    chosen = {k: v for k, v in run_parameters.items() if v is not None and k in declared}
    missing = [k for k in STANDARD_PARAMETERS if run_parameters.get(k) is not None and k not in declared]
    return chosen, missing


# --- executing one chapter -----------------------------------------------------------


def quiet_environment() -> None:
    """Environment for the kernels: quiet TensorFlow/transformers/jupyter start-up chatter.

    Set in this process (kernels inherit it) only where the user has not set
    the variable: :data:`~ser_utils.quiet.QUIET_ENVIRONMENT`, debugpy's
    frozen-modules notice and jupyter_core's platformdirs deprecation notice.
    """
    for key, value in {**QUIET_ENVIRONMENT, "PYDEVD_DISABLE_FILE_VALIDATION": "1",
                       "JUPYTER_PLATFORM_DIRS": "1"}.items():
        os.environ.setdefault(key, value)
    # papermill logs "Input Notebook: ..." etc. at INFO; the runner prints its own lines.
    for name in ("papermill", "traitlets", "nbclient", "asyncio"):
        logging.getLogger(name).setLevel(logging.WARNING)


def kernel_environment(base: dict | None = None) -> dict:
    """The environment a chapter kernel starts with: ``base`` (default ``os.environ``) plus quieting.

    tqdm is off in the kernels only (in an executed page a progress bar is a frozen stderr box;
    the runner's own bar stays on), and tqdm.auto's "IProgress not found" notice is filtered out
    (PYTHONWARNINGS is read before site-packages are importable, so by message, not category).
    """
    env = dict(os.environ if base is None else base, TQDM_DISABLE="1")
    filters = [f for f in env.get("PYTHONWARNINGS", "").split(",") if f]
    env["PYTHONWARNINGS"] = ",".join([*filters, "ignore:IProgress not found"])
    return env


@functools.cache  # one class per process: traitlets configures it by name
def _logged_kernel_manager():
    """An ``AsyncKernelManager`` whose kernel process writes its own stderr to ``stderr_log``.

    That stream holds only IPKernelApp's log (cell output travels over the kernel's
    sockets): on Ctrl-C the runner closes the sockets while the kernel is still replying,
    and ipykernel then logs a ZMQError traceback that used to land on the user's terminal.
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Unicode

    class LoggedKernelManager(AsyncKernelManager):
        stderr_log = Unicode("", help="file that receives the kernel process's stderr").tag(config=True)

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            if not self.stderr_log:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            with open(self.stderr_log, "ab") as log:  # the kernel keeps its own copy of the descriptor
                kw["stderr"] = log
                return await super()._async_launch_kernel(kernel_cmd, **kw)

    return LoggedKernelManager


def _kernel_config(socket_dir: str, log: str | os.PathLike | None = None):
    """Kernel-manager settings: a local IPC socket in ``socket_dir`` (TCP warns "running without encryption").

    Socket paths are limited to ~100 characters, so a very long temporary
    folder (or Windows) keeps jupyter_client's TCP default. With ``log``, the
    kernel process's own stderr goes to that file (see :func:`_logged_kernel_manager`).
    """
    from traitlets.config import Config

    config = Config()
    if os.name == "posix" and len(socket_dir) <= 60:
        config = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(socket_dir, "k")}})
    if log is not None:
        config["NotebookClient"] = Config({"kernel_manager_class": _logged_kernel_manager()})
        config["LoggedKernelManager"] = Config({"stderr_log": str(log)})
    return config


def _source_cell_number(nb, index: int) -> int:
    """1-based position in the source notebook of cell ``index`` of the run (before papermill's error banners)."""
    tags = [c.get("metadata", {}).get("tags", []) for c in nb.cells]
    ran = [t for t in tags if "papermill-error-cell-tag" not in t]
    return index - sum("injected-parameters" in t for t in ran[:index]) + 1


def execute_chapter(entry: TocEntry, output: Path, parameters: dict, *, progress: bool = True,
                    label: str | None = None, timeout: int | None = None) -> int:
    """Execute one chapter notebook into ``output`` with papermill; return its number of cells.

    The kernel runs in the chapter's own folder (as when a reader opens it in
    JupyterLab) with :func:`kernel_environment`. A cell error raises
    :class:`ChapterFailed` naming the chapter, the cell (1-based, in the
    source notebook), the error, and where the executed copy with the
    traceback was written.
    """
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output.parent.mkdir(parents=True, exist_ok=True)
    bar = {"desc": label or entry.stem, "leave": False} if progress else False
    try:
        # The kernel inherits the environment it starts in.
        with tempfile.TemporaryDirectory(prefix="ser-book-kernel-") as sockets, \
                mock.patch.dict(os.environ, kernel_environment(), clear=True):
            papermill.execute_notebook(
                str(entry.path), str(output), parameters=parameters, cwd=str(entry.path.parent),
                progress_bar=bar, log_output=False, execution_timeout=timeout,
                config=_kernel_config(sockets, output.with_name(f".{output.stem}.kernel.log")),
            )
    except PapermillExecutionError as exc:
        cell = None
        with contextlib.suppress(Exception):
            cell = _source_cell_number(nbformat.read(str(output), as_version=4), exc.cell_index)
        first = next((ln for ln in str(exc.source).splitlines() if ln.strip()), "")
        message = f"{exc.ename}: {exc.evalue}".rstrip(": ")
        if first:
            message += f"\n  in: {first.strip()}"
        raise ChapterFailed(entry.stem, message, cell=cell, executed_copy=output) from None
    except Exception as exc:  # kernel died, timeout, unreadable notebook...
        raise ChapterFailed(entry.stem, f"{type(exc).__name__}: {exc}") from exc
    return len(nbformat.read(str(output), as_version=4).cells)


# --- the whole run -------------------------------------------------------------------




def resolve_parameters(
    dataset: str = "auto",
    data_dir: str | os.PathLike | None = None,
    artifacts_dir: str | os.PathLike | None = None,
    quick: bool | None = None,
    epochs: int | None = None,
    coverage: Coverage = Coverage(),
) -> dict:
    """The parameters of a run, resolved once for every chapter.

    ``coverage`` gives the chapters that declare them their ``protocols``,
    ``seeds`` and ``full``: ``full`` asks them to train every variant, protocol
    and seed they discuss instead of quoting the committed reference runs for
    the expensive ones (see ARCHITECTURE.md, "what the default run trains").

    ``dataset="auto"`` is resolved here (real TESS when found, else the demo
    corpus) and ``quick`` from ``SER_QUICK`` when not given, so the values a
    chapter receives, and its resume stamp, say exactly what it ran on.
    Raises ``TessNotFoundError`` when TESS is required but absent and
    ``ValueError`` for an unknown protocol.
    """
    from ..run_context import is_quick, resolve_data
    from ..splits import PROTOCOLS

    protocols, seeds = coverage.protocols, coverage.seeds
    if bad := [p for p in protocols or () if p not in PROTOCOLS]:
        raise ValueError(f"unknown protocol(s) {', '.join(bad)}; choose from {', '.join(PROTOCOLS)}")
    quick = is_quick(quick)
    ctx = resolve_data(dataset, data_dir, artifacts_dir, quick=quick, make_demo=False)
    return {
        "dataset": ctx.dataset,
        "data_dir": str(ctx.data_dir) if ctx.dataset == "tess" else None,
        "artifacts_dir": str(Path(artifacts_dir).expanduser().resolve()) if artifacts_dir else None,
        "quick": quick,
        "epochs": None if epochs is None else int(epochs),
        "protocols": None if protocols is None else list(protocols),
        "seeds": None if seeds is None else [int(s) for s in seeds],
        "full": True if coverage.full else None,
        # Not chapter parameters (no chapter declares them): where the timing report finds results files,
        # and the corpus folder whose content is part of every resume stamp.
        "results_dir": str(ctx.artifacts_dir / "results"),
        "corpus_dir": str(ctx.data_dir),
    }


@contextlib.contextmanager
def build_lock(build: Path):
    """Hold ``<build>/.lock`` for the duration of a run, so two runs never share a build folder.

    Two runs writing the same executed copies and stamps (easy in a shared
    checkout) would mix their chapters silently. Raises :class:`BuildFolderBusy`
    naming the holder's process id (kept in ``.lock.pid``).
    """
    from filelock import FileLock, Timeout

    build.mkdir(parents=True, exist_ok=True)
    owner = build / ".lock.pid"
    try:
        with FileLock(build / ".lock", timeout=0):
            owner.write_text(str(os.getpid()))
            yield
    except Timeout:
        holder = owner.read_text().strip() if owner.exists() else "unknown"
        raise BuildFolderBusy(f"another book run (process {holder}) is using {build}; wait for it to finish, "
                              "or write elsewhere with --path-output DIR") from None


def require_book_root(book_root: str | os.PathLike) -> Path:
    """``book_root`` when it holds ``_toc.yml``; else :class:`BookSetupError` (e.g. run outside a checkout)."""
    book_root = Path(book_root)
    if not (book_root / "_toc.yml").is_file():
        raise BookSetupError(f"no _toc.yml in {book_root.resolve()}: `book` builds the course from a checkout of "
                             "the ser-book repository (an installed package holds no chapters); run it in the "
                             "checkout's root")
    return book_root


@dataclass(frozen=True)
class BookRun:
    """What one book run executes: its parameters, which chapters, and where its executed chapters go or come from.

    ``parameters`` is the dict of :func:`resolve_parameters` (each chapter gets
    the subset it declares). ``only`` restricts execution to some chapters;
    ``force`` re-executes chapters that are up to date. ``publish``: after a
    complete run on real TESS (not quick), copy the executed chapters into
    that folder (:func:`publish_chapters`). ``from_published``: execute
    nothing; build the HTML from the executed chapters stored in that folder
    by an earlier ``publish``.
    """

    parameters: dict
    only: str | Sequence[str] | None = None
    force: bool = False
    publish: str | os.PathLike | None = None
    from_published: str | os.PathLike | None = None


def run_book(
    book_root: str | os.PathLike,
    output_root: str | os.PathLike | None = None,
    *,
    run: BookRun,
    html: bool = True,
    progress: bool = True,
    echo: Echo | None = None,
) -> BookReport:
    """Execute the chapters of ``<book_root>/_toc.yml`` as ``run`` says and build the book; see the module docstring.

    Executed copies, stamps and the timing report go under
    ``<output_root>/_build`` (default: the book root), the HTML into
    ``<output_root>/_build/html``; ``html`` false skips the book build.
    ``progress`` shows papermill's progress bar, ``echo`` prints the run's
    messages. Raises :class:`ChapterFailed` at the first failing chapter,
    :class:`BookBuildFailed` when the build warns, and
    :class:`BuildFolderBusy` when another run is using the same build folder.
    """
    parameters, only, publish, from_published = run.parameters, run.only, run.publish, run.from_published
    t_start = time.perf_counter()
    echo = echo or (lambda s: print(s, flush=True))
    book_root = Path(book_root).resolve()
    output_root = Path(output_root).resolve() if output_root else book_root
    if publish is not None and (parameters["dataset"] != "tess" or parameters.get("quick") or only):
        raise BookSetupError("--publish records a complete run on real TESS: give the data (SER_TESS_DIR or "
                             "--data-dir), and leave out --quick and --only")
    if publish is not None:
        require_clean_checkout()
    if from_published is not None and not Path(from_published).is_dir():
        raise BookSetupError(f"no published run at {from_published}; make one with `make publish`")
    require_book_root(book_root)
    from ..evaluation import machine_info

    with build_lock(output_root / "_build"):
        forget()  # code and data are looked at afresh by every run
        quiet_environment()
        root, entries = read_toc(book_root)
        selected = select_chapters(entries, only)
        notebooks = [e for e in entries if e.is_notebook]
        report = BookReport(
            chapters=[], dataset=parameters["dataset"], quick=bool(parameters.get("quick")),
            started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            machine={"python": platform.python_version(), **machine_info()},
        )
        if from_published is not None:
            echo(f"Book: {len(notebooks)} chapter(s) in _toc.yml; executing none, building the HTML from the "
                 f"recorded run in {from_published} ({describe_published(Path(from_published))})")
        else:
            where = f" from {parameters['data_dir']}" if parameters.get("data_dir") else ""
            echo(f"Book: {len(notebooks)} chapter(s) in _toc.yml; executing {len(selected)} on "
                 f"{parameters['dataset'].upper()}{where}{' (quick mode)' if report.quick else ''}")
        stage_sources(book_root, output_root / "_build" / "src", root, entries, echo)
        t_exec = time.perf_counter()
        for i, entry in enumerate(notebooks, 1):
            if from_published is not None:
                report.chapters.append(stage_published(entry, Path(from_published), output_root / "_build",
                                                       echo=echo))
                continue
            label = f"[{i}/{len(notebooks)}] {entry.stem}"
            if entry not in selected:
                report.chapters.append(keep_unselected(entry, output_root / "_build", label=label, echo=echo))
                continue
            try:
                report.chapters.append(run_chapter(entry, output_root / "_build", run, label=label,
                                                   progress=progress, echo=echo))
            except ChapterFailed as exc:
                report.chapters.append(exc.timing)
                report.failed = entry.stem
                report.execute_s = round(time.perf_counter() - t_exec, 2)
                report.total_s = round(time.perf_counter() - t_start, 2)
                _write_report(report, report_path(output_root))
                raise
        report.execute_s = round(time.perf_counter() - t_exec, 2)
        if html:
            _build_book(report, output_root, t_start, echo)
        report.total_s = round(time.perf_counter() - t_start, 2)
        if publish is not None:
            report.published = str(publish_chapters(notebooks, output_root / "_build", Path(publish), report,
                                                    data_dir=parameters.get("data_dir"),
                                                    results_dir=parameters.get("results_dir")))
            echo(f"Published the executed chapters to {report.published}")
        _write_report(report, report_path(output_root))
    echo(format_report(report))
    echo(f"Timing report: {report_path(output_root)}")
    return report


def keep_unselected(entry: TocEntry, build: Path, *, label: str, echo: Echo = print) -> ChapterTiming:
    """A chapter left out by ``--only``: keep its last good copy in ``<build>/src`` ("kept") or stage it unexecuted
    ("not-run"); return its timing row."""
    out = build / "src" / entry.relpath()
    stamp_file = build / "stamps" / f"{entry.stem}.json"
    stamp = read_stamp(stamp_file)
    if out.exists() and stamp is not None and stamp.get("status") == "ok":
        changed = stamp.get("source_sha256") != file_hash(entry.path)
        echo(f"{label}: kept from an earlier run (not selected by --only)"
             + ("; its source has changed since, re-run it to update" if changed else ""))
        return ChapterTiming(entry.stem, entry.docname, "kept", stamp.get("wall_s"), stamp.get("cells"),
                             stamp.get("parameters", {}))
    write_placeholder(entry, out, "This chapter was not executed in this build of the book "
                      "(it was built with `--only`). Run `make book` to execute it.")
    stamp_file.unlink(missing_ok=True)
    echo(f"{label}: not executed (not selected by --only); staged unexecuted")
    return ChapterTiming(entry.stem, entry.docname, "not-run", None)


def run_chapter(entry: TocEntry, build: Path, run: BookRun, *, label: str, progress: bool = True,
                echo: Echo = print) -> ChapterTiming:
    """Bring one selected chapter's executed copy in ``<build>/src`` up to date; return its timing row.

    A chapter whose stamp matches its source, parameters and package code is
    skipped ("cached") unless ``run.force``; otherwise it is executed and
    stamped ("executed"). A failure raises :class:`ChapterFailed` carrying its
    "failed" row as ``timing``. Unselected chapters: :func:`keep_unselected`.
    """
    parameters = run.parameters
    out = build / "src" / entry.relpath()
    stamp_file = build / "stamps" / f"{entry.stem}.json"
    stamp = read_stamp(stamp_file)
    params, missing = chapter_parameters(entry.path, parameters)
    if missing:
        echo(f"note: {entry.stem} does not declare the parameter(s) {', '.join(missing)} (not passed)")
    source_hash = file_hash(entry.path)
    environment = stamp_environment(entry.path, parameters, env=kernel_environment())
    if not run.force and is_up_to_date(out, stamp, params, source_hash, environment):
        echo(f"{label}: up to date, skipped (executed earlier in {stamp.get('wall_s', 0):.1f} s)")
        return ChapterTiming(entry.stem, entry.docname, "cached", stamp.get("wall_s"), stamp.get("cells"), params)
    stamp_file.unlink(missing_ok=True)
    t0, started = time.perf_counter(), time.time()
    try:
        cells = execute_chapter(entry, out, params, progress=progress, label=label)
    except ChapterFailed as exc:
        wall = time.perf_counter() - t0
        exc.timing = ChapterTiming(entry.stem, entry.docname, "failed", round(wall, 2), None, params)
        echo(f"{label}: FAILED after {wall:.1f} s")
        raise
    wall = round(time.perf_counter() - t0, 2)
    # The chapter may have made its data (the demo corpus on a first run): digest what it leaves behind.
    forget("data")
    with atomic_write(stamp_file, what="resume stamp") as tmp:
        tmp.write_text(json.dumps({
            "docname": entry.docname, "status": "ok", "source_sha256": source_hash,
            "parameters": normalise(params),
            "environment": normalise(stamp_environment(entry.path, parameters, env=kernel_environment())),
            "wall_s": wall, "cells": cells, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }, indent=2), encoding="utf-8")
    models = models_trained_since(parameters.get("results_dir"), started)
    trained = f"; trained {len(models)} model run(s) in {sum(models.values()):.0f} s" if models else ""
    echo(f"{label}: executed in {wall:.1f} s ({cells} cells{trained})")
    return ChapterTiming(entry.stem, entry.docname, "executed", wall, cells, params, models=models)




def _build_book(report: BookReport, output_root: Path, t_start: float, echo: Echo) -> None:
    """Build the HTML from the staged copies into ``report`` (time, path); notes on what was ignored."""
    echo("Building the HTML book (jupyter-book; any warning is an error)...")
    t0 = time.perf_counter()
    try:
        unexecuted = [c.docname for c in report.chapters if c.status == "not-run"]
        # The page shape (ser_utils.course.pages): no injected-parameters cell, no local paths, banner first.
        prepare_staged_pages(output_root / "_build" / "src")
        html_dir, ignored = build_html(output_root / "_build" / "src", output_root, tolerate=unexecuted)
    except BookBuildFailed:
        report.failed = "jupyter-book build"
        raise
    finally:
        report.build_s = round(time.perf_counter() - t0, 2)
        report.total_s = round(time.perf_counter() - t_start, 2)
        _write_report(report, report_path(output_root))
    report.html = str(html_dir / "index.html")
    if ignored:
        echo(f"Built in {report.build_s:.1f} s: {report.html}; {len(ignored)} warning(s) ignored (chapters "
             "not executed in this build, or notes on cells that wrote to stderr):")
        for warning in ignored:
            echo(f"  {warning}")
    else:
        echo(f"Built without warnings in {report.build_s:.1f} s: {report.html}")
