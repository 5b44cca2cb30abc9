"""Executing the book: run every chapter with papermill, then build the Jupyter Book.

``python -m ser_utils book`` (and ``make book``) call :func:`run_book`, which

1. reads the chapter list from ``_toc.yml`` (never a hard-coded list, so new
   chapters are picked up as they are added);
2. copies the book's sources (``_config.yml``, ``_toc.yml``, the Markdown
   pages, the bibliography, images) into a staging folder ``_build/src``;
3. executes each notebook chapter, in order, with papermill into that staging
   folder (``_build/src/book/NN_name.ipynb``), passing the run's parameters to
   the ``parameters`` cell; only the parameters a chapter declares are passed,
   so chapter-specific ones (``protocols``, ``seeds``) reach only the chapters
   that have them;
4. writes a stamp per chapter (parameters, data environment, and hashes of the
   source notebook and of the ``ser_utils`` sources), so a re-run skips
   chapters already executed with the same inputs and code, and an
   interrupted run resumes at the first chapter not yet done;
5. stops at the first failing chapter with a message naming the chapter, the
   cell and the error (:class:`ChapterFailed`);
6. builds the HTML book from the executed copies with warnings as errors
   (:func:`build_html`), into ``_build/html``, and writes a per-chapter timing
   report ``_build/book-timings.json``.

Chapters left out with ``--only`` keep their last good executed copy; a chapter
never executed is staged as its unexecuted source with a note saying so, so
that the table of contents and every cross-reference still resolve (warnings
located in such a page are reported but do not fail a partial build).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .errors import BookSetupError

#: Parameters every chapter has (DESIGN.md section 3) that the runner may set.
STANDARD_PARAMETERS = ("dataset", "data_dir", "artifacts_dir", "quick", "epochs")
#: Environment variables that change what a chapter computes; part of the resume stamp.
STAMP_ENVIRONMENT = ("SER_ARTIFACTS_DIR", "SER_TESS_DIR")
#: Never copied from the book's folders into the staging copy.
_SKIP_STAGING = {".ipynb_checkpoints", "__pycache__", "_build", ".DS_Store"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_GLUE_ROLE = re.compile(r"\{glue(?::[a-z]+)?\}`[^`]*`")

Echo = Callable[[str], None]


# --- errors ---------------------------------------------------------------------------


class PipelineError(RuntimeError):
    """A chapter or the book build failed; the message says where and why."""


class ChapterSelectionError(BookSetupError):
    """``--only`` named a chapter that is not in ``_toc.yml``."""


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


class BookBuildFailed(PipelineError):
    """``jupyter-book build`` failed or printed warnings (the build must be warning-free)."""

    def __init__(self, message: str, warnings: Sequence[str] = ()):
        self.warnings = list(warnings)
        super().__init__(message)


# --- the table of contents -----------------------------------------------------------


@dataclass(frozen=True)
class TocEntry:
    """One document of ``_toc.yml``: its toc name (``book/01_data``) and source file."""

    docname: str
    path: Path

    @property
    def stem(self) -> str:
        """File name without suffix, e.g. ``01_data``."""
        return self.path.stem

    @property
    def key(self) -> str:
        """The chapter number as written in the file name (``"01"``), else the stem."""
        m = re.match(r"(\d+)", self.stem)
        return m.group(1) if m else self.stem

    @property
    def is_notebook(self) -> bool:
        return self.path.suffix == ".ipynb"

    def relpath(self) -> Path:
        """The source file relative to the book root (``book/01_data.ipynb``)."""
        return Path(self.docname).with_suffix(self.path.suffix)


def _toc_files(node) -> Iterable[str]:
    """Every ``file:`` entry of a toc node, in reading order (parts, chapters, sections)."""
    if isinstance(node, dict):
        if "file" in node:
            yield str(node["file"])
        for key in ("parts", "chapters", "sections"):
            if key in node:
                yield from _toc_files(node[key])
    elif isinstance(node, list):
        for item in node:
            yield from _toc_files(item)


def _resolve_doc(book_root: Path, docname: str) -> Path:
    """The source file of a toc document: ``docname`` with its suffix, or ``.ipynb`` / ``.md``."""
    direct = book_root / docname
    if direct.suffix in {".ipynb", ".md"}:
        return direct
    for suffix in (".ipynb", ".md"):
        candidate = book_root / f"{docname}{suffix}"
        if candidate.exists():
            return candidate
    # Missing: only the root page may be missing (a placeholder is staged for it).
    return book_root / f"{docname}.md"


def read_toc(book_root: str | os.PathLike) -> tuple[TocEntry, list[TocEntry]]:
    """The root page and the chapters (in reading order) listed in ``<book_root>/_toc.yml``.

    Accepts the Jupyter Book 1.x ``jb-book`` format with ``chapters`` or
    ``parts``, and nested ``sections``; ``url``/``glob`` entries are ignored.
    A chapter file listed but absent raises :class:`BookSetupError` naming it.
    """
    import yaml

    book_root = Path(book_root)
    toc = yaml.safe_load((book_root / "_toc.yml").read_text(encoding="utf-8"))
    root_doc = str(toc["root"])
    root = TocEntry(root_doc, _resolve_doc(book_root, root_doc))
    entries = []
    for doc in _toc_files({k: v for k, v in toc.items() if k != "root"}):
        entry = TocEntry(doc, _resolve_doc(book_root, doc))
        if not entry.path.exists():
            raise BookSetupError(f"_toc.yml lists {doc!r} but neither {doc}.ipynb nor {doc}.md exists")
        entries.append(entry)
    return root, entries


def parse_only(only: str | Sequence[str] | None) -> list[str]:
    """The chapter tokens of ``--only``: ``"03,05"`` or ``["03", "5,6"]`` -> ``["03", "05"]``, ``["03", "5", "6"]``."""
    if only is None:
        return []
    items = [only] if isinstance(only, str) else list(only)
    return [t.strip() for item in items for t in str(item).split(",") if t.strip()]


def _matches(entry: TocEntry, token: str) -> bool:
    if token in {entry.stem, entry.key, entry.docname}:
        return True
    return token.isdigit() and entry.key.isdigit() and int(token) == int(entry.key)


def select_chapters(entries: Sequence[TocEntry], only: str | Sequence[str] | None) -> list[TocEntry]:
    """The notebook chapters to execute: all of them, or those named by ``only``.

    Tokens match the chapter number (``3`` or ``03``), the file stem
    (``03_cnn``) or the toc name; a token matching nothing raises
    :class:`ChapterSelectionError` listing the chapters that exist.
    """
    notebooks = [e for e in entries if e.is_notebook]
    tokens = parse_only(only)
    if not tokens:
        return notebooks
    unknown = [t for t in tokens if not any(_matches(e, t) for e in notebooks)]
    if unknown:
        have = ", ".join(e.stem for e in notebooks) or "none"
        raise ChapterSelectionError(f"--only {','.join(unknown)}: no such chapter in _toc.yml (chapters: {have})")
    return [e for e in notebooks if any(_matches(e, t) for t in tokens)]


# --- parameters and stamps -----------------------------------------------------------


def declared_parameters(notebook: str | os.PathLike) -> dict[str, dict]:
    """The parameters a notebook's ``parameters`` cell declares (papermill's inspection)."""
    import papermill

    return papermill.inspect_notebook(str(notebook))


def chapter_parameters(notebook: str | os.PathLike, run_parameters: dict) -> tuple[dict, list[str]]:
    """The subset of ``run_parameters`` that ``notebook`` declares, and the standard ones it lacks.

    Values that are ``None`` are not passed (the chapter's default stands).
    The second element lists standard parameters (dataset, quick, ...) that
    the runner wanted to pass but the chapter does not declare, so the
    caller can point out a chapter that breaks the convention.
    """
    declared = declared_parameters(notebook)
    chosen = {k: v for k, v in run_parameters.items() if v is not None and k in declared}
    missing = [k for k in STANDARD_PARAMETERS if run_parameters.get(k) is not None and k not in declared]
    return chosen, missing


def file_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (the source notebook's identity in a stamp)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def package_hash() -> str:
    """SHA-256 over the ``ser_utils`` sources: a chapter executed with older package code is stale."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _stamp_environment() -> dict:
    return {**{k: os.environ.get(k) for k in STAMP_ENVIRONMENT}, "ser_utils_sha256": package_hash()}


def _normalise(obj):
    """JSON round trip, so a stamp read back compares equal to the parameters it stored."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def read_stamp(path: Path) -> dict | None:
    """The stamp stored next to an executed chapter, or None when absent or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_up_to_date(executed: Path, stamp: dict | None, parameters: dict, source_hash: str) -> bool:
    """True when ``executed`` ran without error with these parameters from this source notebook."""
    return (
        executed.exists()
        and stamp is not None
        and stamp.get("status") == "ok"
        and stamp.get("source_sha256") == source_hash
        and stamp.get("parameters") == _normalise(parameters)
        and stamp.get("environment") == _normalise(_stamp_environment())
    )


# --- executing one chapter -----------------------------------------------------------


def quiet_environment() -> None:
    """Environment for the kernels: quiet TensorFlow/transformers/jupyter start-up chatter.

    Set in this process (kernels inherit it) only where the user has not set
    the variable: TF's C++ logs, the oneDNN notice, transformers' and the hub's
    logging and progress bars, debugpy's frozen-modules notice, and
    jupyter_core's platformdirs deprecation notice.
    """
    for key, value in {
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "TF_ENABLE_ONEDNN_OPTS": "0",
        "TRANSFORMERS_VERBOSITY": "error",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "JUPYTER_PLATFORM_DIRS": "1",
    }.items():
        os.environ.setdefault(key, value)
    # papermill logs "Input Notebook: ..." etc. at INFO; the runner prints its own lines.
    for name in ("papermill", "traitlets", "nbclient", "asyncio"):
        logging.getLogger(name).setLevel(logging.WARNING)


#: Extra environment of the chapter kernels only (the runner's own progress bar stays on).
#: In an executed page a progress bar is a frozen stderr box, so tqdm is switched off there,
#: and tqdm.auto's "IProgress not found" notice (no ipywidgets) is filtered out.
KERNEL_ENVIRONMENT = {"TQDM_DISABLE": "1"}
#: (PYTHONWARNINGS is read before site-packages are importable, so filter by message, not category.)
KERNEL_WARNING_FILTERS = ("ignore:IProgress not found",)


def kernel_environment(base: dict | None = None) -> dict:
    """The environment a chapter kernel starts with: ``base`` (default ``os.environ``) plus quieting."""
    env = dict(os.environ if base is None else base)
    env.update(KERNEL_ENVIRONMENT)
    filters = [f for f in env.get("PYTHONWARNINGS", "").split(",") if f]
    env["PYTHONWARNINGS"] = ",".join([*filters, *KERNEL_WARNING_FILTERS])
    return env


def kernel_manager_class(log=None):
    """The kernel manager of chapter runs: quiet environment, local IPC sockets where possible.

    Over TCP without CurveZMQ keys ipykernel warns "Kernel is running over TCP
    without encryption" in every run. Unix-domain sockets (``transport="ipc"``)
    are local-only, which is all a batch run needs, and silence it; each
    kernel gets its own socket folder under the temporary folder. Socket
    paths are limited to ~100 characters, so a very long ``TMPDIR`` (or
    Windows) keeps TCP. The kernel gets :func:`kernel_environment`, and is
    not interrupted on the way to shutdown (the chapter has finished by then).
    ``log``, an open binary file, receives the kernel process's own stdout and
    stderr (its log lines, a crash report, a dying kernel's traceback on
    Ctrl-C), which would otherwise be interleaved with the runner's console.
    """
    from jupyter_client.localinterfaces import localhost
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    use_ipc = os.name == "posix" and len(tempfile.gettempdir()) <= 60

    class QuietKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self) -> str:
            return "ipc" if use_ipc else "tcp"

        @default("ip")
        def _ip_default(self) -> str:
            # jupyter_client's default IPC name is "kernel-ipc" in the current folder (the chapter's,
            # under papermill): shared by concurrent runs and left behind by an interrupted one. A
            # fresh private folder per kernel avoids both and keeps the socket path short.
            if self.transport == "ipc":
                self._ipc_dir = tempfile.mkdtemp(prefix="ser-book-kernel-")
                return os.path.join(self._ipc_dir, "k")
            return localhost()

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if getattr(self, "_ipc_dir", None) and not restart:
                shutil.rmtree(self._ipc_dir, ignore_errors=True)

        async def _async_pre_start_kernel(self, **kw):
            kw["env"] = kernel_environment(kw.get("env"))
            if log is not None:
                kw["stdout"] = kw["stderr"] = log
            return await super()._async_pre_start_kernel(**kw)

        async def _async_interrupt_kernel(self) -> None:
            # jupyter_client interrupts before every shutdown; the notebook is done by then, and
            # the interrupt only makes ipykernel log "KeyboardInterrupt caught in kernel".
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    return QuietKernelManager


def _source_cell_number(nb, index: int) -> int:
    """1-based position in the source notebook of executed cell ``index`` (skipping injected cells)."""
    injected = sum(
        1 for c in nb.cells[:index] if "injected-parameters" in c.get("metadata", {}).get("tags", [])
    )
    return index - injected + 1


def _failed_cell_number(source: Path, executed: Path, failed_source: str) -> int | None:
    """1-based position in the source notebook of the cell that raised.

    Found by the cell id of the executed cell holding the error (papermill adds
    an injected-parameters cell and error banners, so positions shift), else
    by the cell's source text.
    """
    import nbformat

    src = nbformat.read(str(source), as_version=4)
    out = nbformat.read(str(executed), as_version=4)
    ids = [c.get("id") for c in src.cells]
    for cell in out.cells:
        raised = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
        if raised or cell.get("metadata", {}).get("papermill", {}).get("exception") is True:
            if cell.get("id") in ids:
                return ids.index(cell.get("id")) + 1
            break
    sources = [c.source for c in src.cells]
    return sources.index(failed_source) + 1 if failed_source in sources else None


def execute_chapter(
    entry: TocEntry,
    output: Path,
    parameters: dict,
    *,
    progress: bool = True,
    label: str | None = None,
    timeout: int | None = None,
    kernel_log: Path | None = None,
) -> int:
    """Execute one chapter notebook into ``output`` with papermill; return its number of cells.

    The kernel runs in the chapter's own folder (as when a reader opens it in
    JupyterLab). A cell error raises :class:`ChapterFailed` naming the
    chapter, the cell (1-based, in the source notebook), the error, and where
    the executed copy with the traceback was written. The kernel process's
    own output goes to ``kernel_log`` when given (named in the error when the
    kernel itself dies).
    """
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output.parent.mkdir(parents=True, exist_ok=True)
    bar = {"desc": label or entry.stem, "leave": False} if progress else False
    log = contextlib.nullcontext()
    if kernel_log is not None:
        kernel_log.parent.mkdir(parents=True, exist_ok=True)
        log = kernel_log.open("wb")
    try:
        with log as log_file:
            papermill.execute_notebook(
                str(entry.path),
                str(output),
                parameters=parameters,
                cwd=str(entry.path.parent),
                progress_bar=bar,
                log_output=False,
                execution_timeout=timeout,
                kernel_manager_class=kernel_manager_class(log_file),
            )
    except PapermillExecutionError as exc:
        cell = None
        with contextlib.suppress(Exception):
            cell = _failed_cell_number(entry.path, output, exc.source)
        first = next((ln for ln in str(exc.source).splitlines() if ln.strip()), "")
        message = f"{exc.ename}: {exc.evalue}".rstrip(": ")
        if first:
            message += f"\n  in: {first.strip()}"
        raise ChapterFailed(entry.stem, message, cell=cell, executed_copy=output) from None
    except Exception as exc:  # kernel died, timeout, unreadable notebook...
        where = f" (kernel log: {kernel_log})" if kernel_log is not None else ""
        raise ChapterFailed(entry.stem, f"{type(exc).__name__}: {exc}{where}") from exc
    return len(nbformat.read(str(output), as_version=4).cells)


def jupyter_stream_text(text: str) -> str:
    """Stream text as Jupyter displays it: on each line only what follows the last carriage return.

    Progress bars (tqdm) redraw themselves with ``\r``; the notebook file keeps
    every redraw, but JupyterLab shows one line per bar, and nothing for a bar
    that cleared itself on closing (``leave=False``). Lines emptied that way are
    dropped.
    """
    lines = []
    for line in text.split("\n"):
        shown = line.rsplit("\r", 1)[-1]
        if "\r" in line and not shown.strip():
            continue
        lines.append(shown)
    return "\n".join(lines)


def tidy_streams(notebook: Path) -> bool:
    """Rewrite an executed notebook's stream outputs as Jupyter would show them; True if it changed.

    Consecutive outputs of one stream (stdout or stderr) in a cell are merged
    and passed through :func:`jupyter_stream_text`; a stream left blank (a
    progress bar that cleared itself, a lone newline) is removed. Without this the book would
    print every redraw of every training progress bar.
    """
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    changed = False
    for cell in nb.cells:
        outputs = []
        for out in cell.get("outputs", []):
            prev = outputs[-1] if outputs else None
            if (out.get("output_type") == "stream" and prev is not None
                    and prev.get("output_type") == "stream" and prev.get("name") == out.get("name")):
                prev["text"] += out.get("text", "")
                changed = True
            else:
                outputs.append(out)
        kept = []
        for out in outputs:
            if out.get("output_type") == "stream":
                if "\r" in out.get("text", ""):
                    out["text"] = jupyter_stream_text(out["text"])
                    changed = True
                if not out.get("text", "").strip():  # e.g. the newline a finished bar prints last
                    changed = True
                    continue
            kept.append(out)
        if "outputs" in cell:
            cell["outputs"] = kept
    if changed:
        nbformat.write(nb, str(notebook))
    return changed


def stderr_notes(notebook: Path) -> list[str]:
    """Warnings a chapter printed to stderr: ``"cell N: first line"`` (noise to fix at its source)."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    notes = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = _ANSI.sub("", out.get("text", ""))
                hit = next((ln for ln in text.splitlines() if "warn" in ln.lower()), None)
                if hit:
                    notes.append(f"cell {_source_cell_number(nb, i)}: {hit.strip()[:160]}")
    return notes


def write_placeholder(entry: TocEntry, output: Path, note: str) -> None:
    """Stage a chapter that was not executed: its source notebook with ``note`` after the title.

    Keeping the prose (and its labels) means the table of contents and every
    cross-reference into the chapter still resolve; ``{glue}`` roles, which
    need executed outputs, are replaced by a short text.
    """
    import nbformat

    nb = nbformat.read(str(entry.path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = _GLUE_ROLE.sub("*(not computed)*", cell.source)
    admonition = nbformat.v4.new_markdown_cell(f"```{{note}}\n{note}\n```")
    admonition["id"] = "ser-book-not-executed"
    first_is_title = bool(nb.cells) and nb.cells[0].cell_type == "markdown" and \
        nb.cells[0].source.lstrip().startswith("# ")
    nb.cells.insert(1 if first_is_title else 0, admonition)
    output.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(output))


# --- staging and building ------------------------------------------------------------


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy ``src`` into ``dst``: every file except notebooks, checkpoints and build folders."""
    for path in src.rglob("*"):
        rel = path.relative_to(src)
        if any(part in _SKIP_STAGING for part in rel.parts) or path.is_dir() or path.suffix == ".ipynb":
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def stage_sources(book_root: Path, stage: Path, root: TocEntry, entries: Sequence[TocEntry],
                  echo: Echo = print) -> None:
    """Copy the book's non-notebook sources into ``stage``.

    That is ``_config.yml``, ``_toc.yml``, every file (Markdown pages,
    ``references.bib``, images) in the folders holding toc documents, and the
    bibliography/logo files the config names. A missing root page gets a
    minimal placeholder in the staging copy only, never in the repository.
    """
    import yaml

    stage.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(book_root / name, stage / name)
    folders = {(book_root / e.docname).parent for e in (root, *entries)}
    for folder in sorted(folders):
        if folder.resolve() == book_root.resolve():
            # Only the top-level files the book uses; never the whole repository.
            continue
        _copy_tree(folder, stage / folder.relative_to(book_root))
    config = yaml.safe_load((book_root / "_config.yml").read_text(encoding="utf-8")) or {}
    extra = list(config.get("bibtex_bibfiles") or [])
    for key in ("logo", "favicon"):
        value = config.get(key) or (config.get("html") or {}).get(key)
        if value:
            extra.append(value)
    for rel in extra:
        src = book_root / rel
        if src.is_file():
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, stage / rel)
    for entry in (root, *entries):
        target = stage / entry.relpath()
        if entry.is_notebook:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.path.exists():
            shutil.copy2(entry.path, target)  # also pages at the top level, whose folder is not copied
        else:
            target.write_text(
                "# ser-book\n\nThis page (`{}`) has not been written yet.\n".format(entry.relpath()),
                encoding="utf-8",
            )
            echo(f"note: {entry.relpath()} is missing; staged a placeholder page (the repository is unchanged)")


def _jupyter_book_command() -> list[str]:
    """``jupyter-book`` run by this Python, so the venv's Sphinx and extensions are used."""
    return [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())"]


def sphinx_warnings(log: str, stage: Path | None = None) -> list[str]:
    """The WARNING/ERROR lines of a Sphinx log, paths shown relative to the staging folder."""
    lines = []
    for line in _ANSI.sub("", log).splitlines():
        if re.search(r"(^|: )(WARNING|ERROR|CRITICAL|SEVERE)(:|\b)", line):
            if stage is not None:
                line = line.replace(str(stage) + os.sep, "")
            lines.append(line.strip())
    return lines


def _warning_source(warning: str, docnames: Sequence[str]) -> str | None:
    """The docname among ``docnames`` that a Sphinx warning line points at, if any."""
    for doc in docnames:
        if warning.startswith(doc) and warning[len(doc):len(doc) + 1] in {".", ":"}:
            return doc
    return None


def build_html(stage: Path, output_root: Path, *, tolerate: Sequence[str] = ()) -> tuple[Path, list[str]]:
    """Build the staged book into ``<output_root>/_build/html``; return that folder and ignored warnings.

    Runs ``jupyter-book build --all`` (a full rebuild, so warnings of
    unchanged pages are reported every time) with ``-W -n --keep-going``:
    any Sphinx warning, including a broken cross-reference, citation or
    image, fails the build with :class:`BookBuildFailed` listing every
    warning. ``tolerate`` names documents (toc names, e.g. ``book/03_cnn``)
    staged unexecuted in a partial build: warnings located in them (say, a
    reference to a figure that only exists once the chapter has run) are
    returned instead of failing the build; a warning anywhere else still fails it.
    """
    cmd = [*_jupyter_book_command(), "build", str(stage), "--path-output", str(output_root), "--all",
           "-n", "--keep-going"]
    if not tolerate:
        cmd.append("-W")
    env = dict(os.environ, PYTHONWARNINGS="ignore", NO_COLOR="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(stage))
    log = proc.stdout + proc.stderr
    html = output_root / "_build" / "html"
    found = sphinx_warnings(log, stage)
    ignored = [w for w in found if _warning_source(w, tolerate)]
    errors = [w for w in found if w not in ignored]
    if proc.returncode != 0 or errors:
        detail = "\n".join(f"  {w}" for w in errors) or "\n".join(log.strip().splitlines()[-25:])
        raise BookBuildFailed(
            f"jupyter-book build failed ({len(errors)} warning(s); warnings are errors):\n{detail}", errors
        )
    if not (html / "index.html").exists():
        raise BookBuildFailed(f"jupyter-book build finished but {html / 'index.html'} is missing")
    return html, ignored


# --- the whole run -------------------------------------------------------------------


@dataclass
class ChapterTiming:
    """One row of the timing report."""

    chapter: str
    docname: str
    status: str  # executed | cached | kept | not-run | failed
    wall_s: float | None
    cells: int | None = None
    parameters: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class BookReport:
    """What a run did: a row per chapter, the build time, where the HTML is."""

    chapters: list[ChapterTiming]
    dataset: str
    quick: bool
    started: str
    execute_s: float = 0.0
    build_s: float | None = None
    total_s: float = 0.0
    html: str | None = None
    failed: str | None = None
    machine: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def report_path(output_root: str | os.PathLike) -> Path:
    """Where :func:`run_book` writes the timing report."""
    return Path(output_root) / "_build" / "book-timings.json"


def load_report(path: str | os.PathLike) -> BookReport:
    """Read a timing report written by :func:`run_book`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    data["chapters"] = [ChapterTiming(**c) for c in data["chapters"]]
    return BookReport(**data)


def format_report(report: BookReport) -> str:
    """The timing report as a plain-text table (one line per chapter, then totals)."""
    rows = [("chapter", "status", "wall (s)", "cells")]
    for c in report.chapters:
        wall = "-" if c.wall_s is None else f"{c.wall_s:.1f}"
        if c.status == "cached" and c.wall_s is not None:
            wall += " (earlier run)"
        rows.append((c.chapter, c.status, wall, "-" if c.cells is None else str(c.cells)))
    if report.build_s is not None:
        rows.append(("jupyter-book build", "ok", f"{report.build_s:.1f}", ""))
    rows.append(("total (this run)", "failed" if report.failed else "ok", f"{report.total_s:.1f}", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    head = f"Book timings ({report.dataset}{', quick' if report.quick else ''}):"
    return "\n".join([head, *lines])


def _write_report(report: BookReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.as_dict(), indent=2), encoding="utf-8")


def resolve_parameters(
    dataset: str = "auto",
    data_dir: str | os.PathLike | None = None,
    artifacts_dir: str | os.PathLike | None = None,
    quick: bool | None = None,
    epochs: int | None = None,
    protocols: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
) -> dict:
    """The parameters of a run, resolved once for every chapter.

    ``dataset="auto"`` is resolved here (real TESS when found, else the demo
    corpus) and ``quick`` from ``SER_QUICK`` when not given, so the values a
    chapter receives, and its resume stamp, say exactly what it ran on.
    Raises ``TessNotFoundError`` when TESS is required but absent and
    ``ValueError`` for an unknown protocol.
    """
    from .config import PROTOCOLS, is_quick, resolve_run

    if protocols is not None:
        bad = [p for p in protocols if p not in PROTOCOLS]
        if bad:
            raise ValueError(f"unknown protocol(s) {', '.join(bad)}; choose from {', '.join(PROTOCOLS)}")
    quick = is_quick(quick)
    ctx = resolve_run(dataset, data_dir, artifacts_dir, quick=quick, make_demo=False)
    return {
        "dataset": ctx.dataset,
        "data_dir": str(ctx.data_dir) if ctx.dataset == "tess" else None,
        "artifacts_dir": str(Path(artifacts_dir).expanduser().resolve()) if artifacts_dir else None,
        "quick": quick,
        "epochs": None if epochs is None else int(epochs),
        "protocols": None if protocols is None else list(protocols),
        "seeds": None if seeds is None else [int(s) for s in seeds],
    }


def _machine() -> dict:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}


class BuildFolderBusy(BookSetupError):
    """Another ``book`` run is using the same ``_build`` folder."""


@contextlib.contextmanager
def build_lock(build: Path):
    """Hold ``<build>/.lock`` for the duration of a run, so two runs never share a build folder.

    Two runs writing the same executed copies and stamps (easy in a shared
    checkout) would mix their chapters silently. The lock is an advisory
    ``flock``: released by the kernel when the holder exits, however it exits.
    Raises :class:`BuildFolderBusy` naming the holder's process id.
    """
    build.mkdir(parents=True, exist_ok=True)
    path = build / ".lock"
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking
        yield
        return
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            raise BuildFolderBusy(
                f"another book run (process {holder}) is using {build}; wait for it to finish, "
                "or write elsewhere with --path-output DIR"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_book(
    book_root: str | os.PathLike,
    output_root: str | os.PathLike | None = None,
    *,
    parameters: dict,
    only: str | Sequence[str] | None = None,
    force: bool = False,
    html: bool = True,
    progress: bool = True,
    echo: Echo | None = None,
) -> BookReport:
    """Execute the chapters of ``<book_root>/_toc.yml`` and build the book; see the module docstring.

    ``parameters`` is the dict of :func:`resolve_parameters` (each chapter gets
    the subset it declares). Executed copies, stamps and the timing report go
    under ``<output_root>/_build`` (default: the book root), the HTML into
    ``<output_root>/_build/html``. ``only`` restricts execution to some
    chapters; ``force`` re-executes chapters that are up to date; ``html``
    false skips the book build. Raises :class:`ChapterFailed` at the first
    failing chapter, :class:`BookBuildFailed` when the build warns, and
    :class:`BuildFolderBusy` when another run is using the same build folder.
    """
    out = Path(output_root).resolve() if output_root else Path(book_root).resolve()
    with build_lock(out / "_build"):
        return _run_book(book_root, output_root, parameters=parameters, only=only, force=force, html=html,
                         progress=progress, echo=echo)


def _run_book(
    book_root: str | os.PathLike,
    output_root: str | os.PathLike | None = None,
    *,
    parameters: dict,
    only: str | Sequence[str] | None = None,
    force: bool = False,
    html: bool = True,
    progress: bool = True,
    echo: Echo | None = None,
) -> BookReport:
    """:func:`run_book` once the build folder is locked."""
    t_start = time.perf_counter()
    echo = echo or (lambda s: print(s, flush=True))
    quiet_environment()
    book_root = Path(book_root).resolve()
    output_root = Path(output_root).resolve() if output_root else book_root
    build = output_root / "_build"
    stage, stamps = build / "src", build / "stamps"
    root, entries = read_toc(book_root)
    selected = select_chapters(entries, only)
    notebooks = [e for e in entries if e.is_notebook]
    report = BookReport(
        chapters=[], dataset=parameters["dataset"], quick=bool(parameters.get("quick")),
        started=datetime.now(timezone.utc).isoformat(timespec="seconds"), machine=_machine(),
    )
    where = f" from {parameters['data_dir']}" if parameters.get("data_dir") else ""
    echo(f"Book: {len(notebooks)} chapter(s) in _toc.yml; executing {len(selected)} on "
         f"{parameters['dataset'].upper()}{where}{' (quick mode)' if report.quick else ''}")
    stage_sources(book_root, stage, root, entries, echo)

    t_exec = time.perf_counter()
    for i, entry in enumerate(notebooks, 1):
        out = stage / entry.relpath()
        stamp_file = stamps / f"{entry.stem}.json"
        stamp = read_stamp(stamp_file)
        label = f"[{i}/{len(notebooks)}] {entry.stem}"
        if entry not in selected:
            if out.exists() and stamp is not None and stamp.get("status") == "ok":
                tidy_streams(out)
                changed = stamp.get("source_sha256") != file_hash(entry.path)
                echo(f"{label}: kept from an earlier run (not selected by --only)"
                     + ("; its source has changed since, re-run it to update" if changed else ""))
                report.chapters.append(ChapterTiming(entry.stem, entry.docname, "kept", stamp.get("wall_s"),
                                                     stamp.get("cells"), stamp.get("parameters", {})))
            else:
                write_placeholder(entry, out, "This chapter was not executed in this build of the book "
                                  "(it was built with `--only`). Run `make book` to execute it.")
                stamp_file.unlink(missing_ok=True)
                echo(f"{label}: not executed (not selected by --only); staged unexecuted")
                report.chapters.append(ChapterTiming(entry.stem, entry.docname, "not-run", None))
            continue
        params, missing = chapter_parameters(entry.path, parameters)
        if missing:
            echo(f"note: {entry.stem} does not declare the parameter(s) {', '.join(missing)} (not passed)")
        source_hash = file_hash(entry.path)
        if not force and is_up_to_date(out, stamp, params, source_hash):
            echo(f"{label}: up to date, skipped (executed earlier in {stamp.get('wall_s', 0):.1f} s)")
            tidy_streams(out)  # idempotent; also tidies copies executed before the runner did this
            report.chapters.append(ChapterTiming(entry.stem, entry.docname, "cached", stamp.get("wall_s"),
                                                 stamp.get("cells"), params))
            continue
        stamp_file.unlink(missing_ok=True)
        t0 = time.perf_counter()
        try:
            cells = execute_chapter(entry, out, params, progress=progress, label=label,
                                    kernel_log=build / "logs" / f"{entry.stem}.kernel.log")
        except ChapterFailed:
            wall = time.perf_counter() - t0
            report.chapters.append(ChapterTiming(entry.stem, entry.docname, "failed", round(wall, 2), None, params))
            report.failed = entry.stem
            report.execute_s = round(time.perf_counter() - t_exec, 2)
            report.total_s = round(time.perf_counter() - t_start, 2)
            _write_report(report, report_path(output_root))
            echo(f"{label}: FAILED after {wall:.1f} s")
            raise
        wall = round(time.perf_counter() - t0, 2)
        tidy_streams(out)
        notes = stderr_notes(out)
        stamps.mkdir(parents=True, exist_ok=True)
        stamp_file.write_text(json.dumps({
            "docname": entry.docname, "status": "ok", "source_sha256": source_hash,
            "parameters": _normalise(params), "environment": _normalise(_stamp_environment()),
            "wall_s": wall, "cells": cells,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }, indent=2), encoding="utf-8")
        echo(f"{label}: executed in {wall:.1f} s ({cells} cells)")
        for note in notes:
            echo(f"  note: {entry.stem} printed a warning to stderr, {note}")
        report.chapters.append(ChapterTiming(entry.stem, entry.docname, "executed", wall, cells, params, notes))
    report.execute_s = round(time.perf_counter() - t_exec, 2)

    if html:
        echo("Building the HTML book (jupyter-book; any warning is an error)...")
        t0 = time.perf_counter()
        try:
            unexecuted = [c.docname for c in report.chapters if c.status == "not-run"]
            html_dir, ignored = build_html(stage, output_root, tolerate=unexecuted)
        except BookBuildFailed:
            report.failed = "jupyter-book build"
            raise
        finally:
            report.build_s = round(time.perf_counter() - t0, 2)
            report.total_s = round(time.perf_counter() - t_start, 2)
            _write_report(report, report_path(output_root))
        report.html = str(html_dir / "index.html")
        if ignored:
            echo(f"Built in {report.build_s:.1f} s: {report.html}; {len(ignored)} warning(s) from chapters "
                 "not executed in this build were ignored:")
            for warning in ignored:
                echo(f"  {warning}")
        else:
            echo(f"Built without warnings in {report.build_s:.1f} s: {report.html}")
    report.total_s = round(time.perf_counter() - t_start, 2)
    _write_report(report, report_path(output_root))
    echo(format_report(report))
    echo(f"Timing report: {report_path(output_root)}")
    return report

