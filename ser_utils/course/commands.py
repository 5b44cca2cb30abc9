"""The book's own subcommands (``book``, ``report``, ``saved-code``), added to the library's command line.

The library's :mod:`ser_utils.cli` knows only library commands; importing this
module registers the course's commands with it (:func:`ser_utils.cli.command`,
:func:`ser_utils.cli.add_parsers`). ``python -m ser_utils`` (:mod:`ser_utils.__main__`)
is the one program that joins both.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..cli import _seed, add_parsers, command
from ..cli import main as library_main
from ..errors import UserError


@command("book")
def _book(args: argparse.Namespace) -> int:
    from ..run_context import project_root
    from .publish import published_parameters
    from .plan import Coverage
    from .runner import BookRun, PipelineError, require_book_root, resolve_parameters, run_book

    book_root = require_book_root(args.book_root or project_root())  # before any folder is made
    if args.from_published is not None:  # nothing is executed: no data or artifacts folder is resolved
        try:
            run_book(book_root, args.path_output, run=BookRun(published_parameters(
                args.from_published), from_published=args.from_published), html=not args.no_html)
        except PipelineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs must be at least 1, not {args.epochs}")
    split = lambda values: [v for item in values for v in item.split(",") if v]  # noqa: E731
    try:
        seeds = None if args.seeds is None else [_seed(s) for s in split(args.seeds)]
        coverage = Coverage(None if args.protocols is None else split(args.protocols), seeds, full=args.full)
        params = resolve_parameters(
            args.dataset, args.data_dir, args.artifacts, True if args.quick else None, args.epochs, coverage,
        )
    except ValueError as exc:  # a malformed --seeds or --protocols value
        if isinstance(exc, UserError):
            raise
        raise UserError(str(exc)) from exc
    try:
        run = BookRun(params, only=args.only, force=args.force, publish=args.publish,
                      from_published=args.from_published)
        run_book(book_root, args.path_output, run=run, html=not args.no_html)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


@command("report")
def _report(args: argparse.Namespace) -> int:
    from .comparison import (README_END, README_START, build_report, default_results_dir, save_uar_figure,
                                    update_readme)
    from ..outputs import check_output_path
    from ..run_context import project_root

    figure = check_output_path(args.figure, kind="image", what="--figure") if args.figure else None
    readme = None
    if args.readme and not args.no_readme:
        readme = check_output_path(args.readme, kind="file", what="--readme")
        if not readme.is_file():
            raise UserError(f"--readme {readme} does not exist; give an existing README with the results markers")
    elif args.results and not args.no_readme:
        readme = project_root() / "results" / "README.md"  # the reference results page (README.md links to it)
    results = Path(args.results) if args.results else default_results_dir()
    if results is not None and results.exists() and not results.is_dir():
        raise UserError(f"--results {results} is a file; give the folder that holds the results JSON files")
    if results is None or not results.is_dir():
        where = args.results or "the artifacts folder (tess, demo or demo-quick)"
        raise UserError(f"no results folder found in {where}; run the chapters or "
                        "`python -m ser_utils train MODEL`, or pass --results DIR")
    records, block = build_report(results)
    if not records:
        skipped = len(list(results.glob("*__*__seed*.json")))
        why = f" ({skipped} unreadable or not results records: see the warnings above)" if skipped else ""
        raise UserError(f"no results files (*__*__seed*.json) to use in {results}{why}; run the chapters or "
                        "`python -m ser_utils train MODEL` first")
    print(block)
    if figure is not None:
        print(f"\nFigure: {save_uar_figure(records, figure)}")
    if readme is None:
        if not args.no_readme and not args.results:
            # The default folder may hold demo or quick results: the README's table is only rewritten on request.
            print("\nREADME not updated (no --results given); pass --readme results/README.md to write this table "
                  "there.",
                  file=sys.stderr)
        return 0
    if update_readme(readme, block):
        print(f"\nUpdated the results block of {readme}")
        return 0
    raise UserError(f"{readme} has no '{README_START}' ... '{README_END}' markers (or does not exist); "
                    "add them where the table should go. The table above was not written.")


@command("saved-code")
def _saved_code(args: argparse.Namespace) -> int:
    from ..run_context import project_root
    from .literate import check_saved_code, write_saved_code

    root = project_root()
    if not any((root / "book").glob("*.ipynb")):
        raise UserError(f"no chapters (book/*.ipynb) under {root}: saved-code compares a checkout's chapters with "
                        "its ser_utils; run it in the root of a ser-book checkout")
    if args.write:
        changed = write_saved_code(root / "book", root / "ser_utils")
        print("updated: " + ", ".join(changed) if changed else "package already matches the chapters")
        return 0
    problems = check_saved_code(root / "book", root / "ser_utils")
    for line in problems:
        print(line)
    print(f"{len(problems)} difference(s)" if problems else "every #@save cell matches its package copy")
    return 1 if problems else 0


@command("grade")
def _grade(args: argparse.Namespace) -> int:
    from .grading import grade_command

    return grade_command(args)


@add_parsers
def _parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("book", help="execute every chapter with papermill and build the Jupyter Book")
    p.add_argument("--dataset", choices=("auto", "tess", "demo"), default="auto",
                   help="auto: TESS when found, else the demo corpus (default auto)")
    p.add_argument("--data-dir", help="folder holding TESS (default: SER_TESS_DIR or data/TESS)")
    p.add_argument("--artifacts", help="artifacts folder (default artifacts/<dataset>)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and 1-2 epochs (for testing)")
    p.add_argument("--only", metavar="NN,NN", help="execute only these chapters, e.g. 03,05 (others are kept)")
    p.add_argument("--protocols", nargs="+", metavar="P",
                   help="protocols, for the chapters that declare a 'protocols' parameter")
    p.add_argument("--seeds", nargs="+", metavar="K", help="seeds, for the chapters that declare 'seeds'")
    p.add_argument("--epochs", type=int, help="maximum epochs passed to every chapter")
    p.add_argument("--full", action="store_true",
                   help="train every variant, protocol and seed the chapters discuss (hours) instead of quoting "
                        "the committed reference runs for the expensive ones")
    p.add_argument("--publish", metavar="DIR",
                   help="after a complete run on real TESS, copy the executed chapters to DIR (make publish)")
    p.add_argument("--from-published", metavar="DIR",
                   help="execute nothing: build the HTML from the chapters published in DIR")
    p.add_argument("--force", action="store_true", help="re-execute chapters that are up to date")
    p.add_argument("--no-html", action="store_true", help="execute the chapters but do not build the HTML")
    p.add_argument("--path-output", metavar="DIR",
                   help="write _build/ (executed copies, html, timings) under DIR (default: the book root)")
    p.add_argument("--book-root", help=argparse.SUPPRESS)

    p = sub.add_parser("report", help="results table from the results JSON files; rewrites results/README.md's block")
    p.add_argument("--results", metavar="DIR",
                   help="folder of results JSON (default: artifacts/tess/results, else demo, else demo-quick)")
    p.add_argument("--readme", metavar="README.md", help="README to update between the results markers "
                   "(default: the project's results/README.md when --results is given; never without --results)")
    p.add_argument("--no-readme", action="store_true", help="only print the table")
    p.add_argument("--figure", metavar="FILE.png", help="also draw UAR by model and protocol into FILE.png")

    p = sub.add_parser("saved-code", help="check (or --write) that the chapters' #@save cells match ser_utils")
    p.add_argument("--write", action="store_true", help="copy the chapters' saved cells into the package")

    p = sub.add_parser("grade", help="grade a student's assignment notebook (hidden tests; --list lists them)")
    p.add_argument("assignment", nargs="?", help="assignment name (see --list)")
    p.add_argument("notebook", nargs="?", help="the student's .ipynb")
    p.add_argument("--list", action="store_true", help="list the assignments and what passes")
    p.add_argument("--data-dir", help="grade on this real TESS folder (full sizes) instead of the demo corpus (quick)")
    p.add_argument("--artifacts", help="artifacts folder to reuse (default: a temporary one)")
    p.add_argument("--report", metavar="FILE.json", help="also write the report here")
    p.add_argument("--encoder", help="probe assignment: the embedding function, stand-in or whisper-tiny (default: "
                   "stand-in on the demo corpus, whisper-tiny with --data-dir)")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ser_utils``: the library's commands and the book's; returns the exit status."""
    return library_main(argv)
