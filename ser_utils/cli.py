"""Command line: ``python -m ser_utils <command> ...``.

Each command is a thin wrapper over a ``ser_utils`` function; heavy libraries
(TensorFlow, torch) are imported only by the commands that need them, so
``--help`` and the data commands start fast. Errors the user can fix are
printed as one clear message with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


class UserError(Exception):
    """An error the user can fix (bad argument, missing data); printed without a traceback."""


def command(name: str):
    """Register ``fn`` as the handler of subcommand ``name``."""

    def register(fn: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = fn
        return fn

    return register


# --- data -----------------------------------------------------------------------------


@command("demo-corpus")
def _demo_corpus(args: argparse.Namespace) -> int:
    from .synth import write_demo_corpus

    root = write_demo_corpus(args.out, n_words=args.words, seed=args.seed)
    print(f"Wrote the synthetic demo corpus ({args.words} words x 7 emotions x 2 speakers) to {root}")
    return 0


@command("manifest")
def _manifest(args: argparse.Namespace) -> int:
    from .data import TessNotFoundError, build_manifest, summarise_manifest

    try:
        manifest = build_manifest(args.data_dir)
    except TessNotFoundError as exc:
        raise UserError(str(exc)) from exc
    summary = summarise_manifest(manifest)
    print(summary)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        manifest.to_csv(args.output, index=False)
        print(f"Manifest written to {args.output}")
    return 0 if summary.n_ok else 1


@command("download")
def _download(args: argparse.Namespace) -> int:
    from .download import DownloadError, download_tess

    try:
        out = download_tess(args.dest, url=args.url, sha256=args.sha256)
    except DownloadError as exc:
        raise UserError(str(exc)) from exc
    print(f"TESS extracted to {out}\nUse it with: export SER_TESS_DIR={out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from .download import TESS_URL

    parser = argparse.ArgumentParser(prog="python -m ser_utils", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo-corpus", help="write the synthetic TESS-shaped demo corpus")
    p.add_argument("out", help="folder to write into")
    p.add_argument("--words", type=int, default=10, help="number of words (default 10: 140 clips)")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("manifest", help="scan a TESS folder: counts, durations, bad files")
    p.add_argument("data_dir", help="folder holding TESS (any published layout)")
    p.add_argument("-o", "--output", help="write the manifest CSV here")

    p = sub.add_parser("download", help="download TESS from the Borealis Dataverse")
    p.add_argument("dest", help="folder to download and extract into")
    p.add_argument("--url", default=TESS_URL, help=argparse.SUPPRESS)
    p.add_argument("--sha256", help="expected SHA-256 of the archive (optional)")

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is cached and will be reused by the next run", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
