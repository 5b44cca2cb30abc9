"""The book run's timing report (``_build/book-timings.json``): each chapter's wall time and the models it trained."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

@dataclass
class ChapterTiming:
    """One row of the timing report."""

    chapter: str
    docname: str
    status: str  # executed | cached | kept | not-run | failed | published
    wall_s: float | None
    cells: int | None = None
    parameters: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Training wall time (s) of each results file the chapter wrote, by file stem (model__protocol__seedK).
    models: dict[str, float] = field(default_factory=dict)


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
    published: str | None = None  # folder the executed chapters were published to (``--publish``)


def report_path(output_root: str | os.PathLike) -> Path:
    """Where :func:`run_book` writes the timing report."""
    return Path(output_root) / "_build" / "book-timings.json"


def load_report(path: str | os.PathLike) -> BookReport:
    """Read a timing report written by :func:`run_book`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    data["chapters"] = [ChapterTiming(**c) for c in data["chapters"]]
    data.setdefault("published", None)
    return BookReport(**data)


def format_report(report: BookReport) -> str:
    """The timing report as a plain-text table (one line per chapter, then totals)."""
    rows = [("chapter", "status", "wall (s)", "cells")]
    for c in report.chapters:
        wall = "-" if c.wall_s is None else f"{c.wall_s:.1f}" + (" (earlier run)" if c.status == "cached" else "")
        rows.append((c.chapter, c.status, wall, "-" if c.cells is None else str(c.cells)))
        rows += [(f"  {name}", "trained", f"{seconds:.1f}", "") for name, seconds in c.models.items()]
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
    path.write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")


def models_trained_since(results_dir: str | os.PathLike | None, since: float) -> dict[str, float]:
    """``{results file stem: wall_time_s}`` of the results files written after ``since`` (a ``time.time()``).

    The per-model lines of the timing report: which runs a chapter trained, and how long each took.
    """
    if not results_dir or not Path(results_dir).is_dir():
        return {}
    out = {}
    for path in sorted(Path(results_dir).glob("*__*__seed*.json")):
        if path.stat().st_mtime >= since:
            try:
                out[path.stem] = round(float(json.loads(path.read_text()).get("wall_time_s") or 0.0), 1)
            except (OSError, ValueError):
                continue
    return out
