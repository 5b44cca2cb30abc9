"""The published run: executed chapters copied to ``published/`` (audio players removed), and built from there."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from .timings import BookReport, ChapterTiming
from .toc import TocEntry, write_placeholder

#: Output of a published cell that played a clip: TESS audio is not redistributed (CC BY-NC-ND).
AUDIO_REMOVED = "[audio player removed from the published copy: TESS audio is not redistributed; run the chapter to listen]\n"


def strip_audio(nb) -> int:
    """Replace every output of ``nb`` that embeds an audio player by a one-line note; returns how many."""
    import nbformat

    n = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            text = "".join(out.get("data", {}).get("text/html", "")) if "data" in out else ""
            if "<audio" in text or any(k.startswith("audio/") for k in out.get("data", {})):
                kept.append(nbformat.v4.new_output("stream", name="stdout", text=AUDIO_REMOVED))
                n += 1
            else:
                kept.append(out)
        cell["outputs"] = kept
    return n


def published_copy(nb) -> None:
    """Ready an executed chapter for ``published/`` in place: what a reader of the repository opens.

    Audio players removed (:func:`strip_audio`), papermill's ``injected-parameters`` cell dropped (it
    holds the paths of the machine that ran it; ``run.json`` records the run), and absolute paths in
    outputs cut to their last two parts (:func:`~ser_utils.course.pages.prepare_page`).
    """
    from .pages import prepare_page

    strip_audio(nb)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    prepare_page(nb)
    papermill = nb.metadata.get("papermill", {})
    # where the runner's copies were and the data folders, on the machine that ran it
    papermill.update(without_local_paths({k: papermill[k] for k in ("input_path", "output_path") if k in papermill}))
    if "parameters" in papermill:
        papermill["parameters"] = without_local_paths(papermill["parameters"])


def without_local_paths(parameters: dict) -> dict:
    """``parameters`` with every absolute path cut to its last part (``/home/me/TESS`` -> ``TESS``)."""
    return {k: Path(v).name if isinstance(v, str) and os.path.isabs(v) else v for k, v in parameters.items()}


def require_clean_checkout() -> str:
    """The commit a published run is made at; ``BookSetupError`` when tracked files have local changes.

    The published pages and ``run.json`` name the commit that made them: with local changes that
    name would not be the code that ran.
    """
    from ..errors import BookSetupError
    from ..evaluation import git_commit

    commit = git_commit()
    if commit is None:
        raise BookSetupError("--publish needs a git checkout of ser-book: the published run names its commit")
    if commit.endswith("-dirty"):
        raise BookSetupError("--publish needs a clean checkout: commit (or stash) the changes to tracked files "
                             "first, so that the published pages name the code that made them (git status)")
    return commit


def data_record(results_dir: str | os.PathLike | None, crema_dir: str | os.PathLike | None = None) -> dict:
    """What a book run ran on, for ``run.json``: the datasets of the results files it wrote, and CREMA-D.

    ``tess``: each distinct dataset block (corpus, clip and speaker counts) of the records in
    ``results_dir``; ``crema_d``: the folder chapters 9 and 10 read (``crema_dir``, else
    ``SER_CREMA_DIR``), its clip count and the actors its file names give, or ``None`` when
    neither is set (those chapters then make a synthetic stand-in, as their banners say).
    """
    from ..corpora import UnknownLabelError, parse_crema_name
    from ..data import find_audio_files
    from ..evaluation import load_records
    from ..run_context import crema_candidates

    blocks = []
    if results_dir and Path(results_dir).is_dir():
        for rec in load_records(results_dir):
            ds = rec.get("dataset") or {}
            block = {k: ds.get(k) for k in ("name", "n_clips", "n_speakers", "synthetic", "quick")}
            if block not in blocks:
                blocks.append(block)
    crema = None
    folder = next((f for f in crema_candidates(crema_dir) if f.is_dir()), None)
    if folder is not None:
        actors, n = set(), 0
        for path in find_audio_files(folder):
            try:
                actors.add(parse_crema_name(path.name).speaker)
                n += 1
            except UnknownLabelError:
                continue
        crema = {"folder": folder.name, "n_clips": n, "actors": sorted(actors)}
    return {"tess": blocks, "crema_d": crema}


def publish_chapters(notebooks: Sequence[TocEntry], build: Path, folder: Path, report: BookReport, *,
                     data_dir: str | None = None, results_dir: str | None = None) -> Path:
    """Copy the executed chapters of ``build`` into ``folder`` (:func:`published_copy`) with a ``run.json``.

    ``run.json`` names the commit, the date, the data and the timing rows, so a
    reader can tell which code made the published numbers and whether it is stale.
    """
    import nbformat

    from ..evaluation import git_commit
    from ..outputs import atomic_write, make_output_dir

    make_output_dir(folder, what="published run folder")
    for entry in notebooks:  # each file replaced whole or not at all (an interrupted copy keeps the old one)
        nb = nbformat.read(build / "src" / entry.relpath(), as_version=4)
        published_copy(nb)
        with atomic_write(folder / f"{entry.stem}.ipynb", what="published chapter") as tmp:
            nbformat.write(nb, tmp)
    run = {"commit": git_commit(), "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "dataset": report.dataset, "data_dir_name": Path(data_dir).name if data_dir else None,
           "data": data_record(results_dir),
           "execute_s": report.execute_s, "machine": report.machine,
           "chapters": [dict(c, parameters=without_local_paths(c.get("parameters") or {}))
                        for c in map(asdict, report.chapters)]}
    with atomic_write(folder / "run.json", what="published run record") as tmp:
        tmp.write_text(json.dumps(run, indent=2), encoding="utf-8")
    return folder


def _published_run(folder: Path) -> dict:
    try:
        return json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def published_parameters(folder: str | os.PathLike) -> dict:
    """The run parameters a build from the published ``folder`` reports (its ``run.json``); resolves no data."""
    run = _published_run(Path(folder))
    return {"dataset": run.get("dataset") or "unknown", "data_dir": None, "artifacts_dir": None, "quick": False}


def describe_published(folder: Path) -> str:
    """One phrase for the log: data, commit and date of the published run (from its ``run.json``)."""
    run = _published_run(folder)
    if not run:
        return "no run.json: data and commit unknown"
    data = f"{run.get('dataset', '?')} data" + (f" in {run['data_dir_name']}/" if run.get("data_dir_name") else "")
    return f"{data}, commit {str(run.get('commit', '?'))[:7]}, {str(run.get('finished', '?'))[:10]}"


def stage_published(entry: TocEntry, folder: Path, build: Path, *, echo: Echo = print) -> ChapterTiming:
    """Stage the published executed copy of ``entry`` for the HTML build (nothing is executed)."""
    source = folder / f"{entry.stem}.ipynb"
    out = build / "src" / entry.relpath()
    if not source.exists():
        write_placeholder(entry, out, "This chapter is not in the published run; run `make publish` to add it.")
        echo(f"{entry.stem}: not in {folder}; staged unexecuted")
        return ChapterTiming(entry.stem, entry.docname, "not-run", None)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, out)
    echo(f"{entry.stem}: staged from the published run")
    return ChapterTiming(entry.stem, entry.docname, "published", None)
