"""Wall time of the book per chapter: run it in quick demo mode, or read a run's timing report.

Usage::

    .venv/bin/python benchmarks/book.py                       # fresh quick demo run in a temp folder
    .venv/bin/python benchmarks/book.py --only 01,02 --no-html
    .venv/bin/python benchmarks/book.py --report _build/book-timings.json   # e.g. a real-TESS `make book`

A fresh run executes every chapter of ``_toc.yml`` with
:func:`ser_utils.course.runner.run_book` into a temporary output folder and a fresh
artifacts folder (so feature extraction and training are timed from scratch;
``--artifacts`` reuses a warm one), then builds the HTML. Either way it
prints, per chapter, the wall time and its share of the execution time, the
build time, and the machine the report came from: on a shared machine the
figures vary with the load, so compare runs made side by side.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def print_report(report) -> None:
    """Per-chapter wall time, share of the execution time, build and total time."""
    timed = [c for c in report.chapters if c.wall_s is not None and c.status in {"executed", "cached", "failed"}]
    executed = sum(c.wall_s for c in timed) or 1.0
    print(f"Book run of {report.started} on {report.dataset}{' (quick)' if report.quick else ''}; "
          f"machine: {report.machine.get('cpus')} CPUs, Python {report.machine.get('python')}")
    print(f"{'chapter':<24}{'status':<10}{'wall (s)':>10}{'share':>8}{'cells':>7}")
    for c in report.chapters:
        wall = "-" if c.wall_s is None else f"{c.wall_s:.1f}"
        share = f"{100 * c.wall_s / executed:.0f}%" if c in timed else ""
        print(f"{c.chapter:<24}{c.status:<10}{wall:>10}{share:>8}{c.cells if c.cells is not None else '-':>7}")
    if any(c.status == "cached" for c in timed):
        print("(cached chapters show the wall time of the run that executed them)")
    print(f"{'chapters (sum)':<34}{sum(c.wall_s for c in timed):>10.1f}")
    if report.build_s is not None:
        print(f"{'jupyter-book build':<34}{report.build_s:>10.1f}")
    print(f"{'total of that run':<34}{report.total_s:>10.1f}")
    if report.failed:
        print(f"the run FAILED at {report.failed}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", help="print this timing report (book-timings.json or its _build folder)")
    parser.add_argument("--only", help="chapters to execute, e.g. 01,02 (default: all)")
    parser.add_argument("--artifacts", help="reuse this artifacts folder (default: a fresh temporary one)")
    parser.add_argument("--no-html", action="store_true", help="time the chapters only, not the book build")
    args = parser.parse_args(argv)

    from ser_utils.course.runner import BookRun, PipelineError, load_report, resolve_parameters, run_book

    if args.report:
        path = Path(args.report)
        path = path / "book-timings.json" if path.is_dir() else path
        print_report(load_report(path))
        return 0
    with tempfile.TemporaryDirectory(prefix="ser-book-bench-") as tmp:
        params = resolve_parameters("demo", None, args.artifacts or str(Path(tmp) / "artifacts"), quick=True)
        try:
            report = run_book(ROOT, tmp, run=BookRun(params, only=args.only), html=not args.no_html,
                              echo=lambda s: None)
        except PipelineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            print_report(load_report(Path(tmp) / "_build" / "book-timings.json"))
            return 1
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
