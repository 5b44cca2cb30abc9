"""Exercise solutions on real data: each solution's time, printed output and target check, recorded.

Executes a chapter on real TESS (``--data-dir`` or ``SER_TESS_DIR``; chapters 9 and 10 also read
CREMA-D from ``SER_CREMA_DIR``) up to its first exercise, then each solution verbatim and the same
target check as ``tests/test_solutions.py`` (its ``with_solutions``), and writes what happened to
``results/reference/solutions/<chapter>.json``; ``book/course/exercises.md`` quotes those files.

    python benchmarks/solutions.py 08_gradcam [--skip 8.4] [--artifacts DIR] [-o FILE] [--merge]

The chapter's own cells reuse the models and results already in ``--artifacts`` (a folder a
real-data ``book`` run left; otherwise they train them first). ``--skip`` leaves out exercises
that take hours (the record lists them as skipped). A solution that raises is recorded with its
error and the next one still runs. Times are wall-clock seconds on this machine: say in the
record (``--note``) if other jobs were running. ``--merge`` adds this run's exercises to the chapter's
existing record: an exercise this run skips keeps its earlier result, which names the run it comes from
(its commit, date and machine note), so the hours-long exercises can be recorded one session at a time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ser_utils.cache import write_json  # noqa: E402
from ser_utils.data import build_manifest  # noqa: E402
from tests.test_solutions import execute_with_solutions, exercises, printed, with_solutions  # noqa: E402


def _error(cell) -> str | None:
    """The cell's error as one line ("Name: message"), or None."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out['ename']}: {out['evalue']}"[:500]
    return None


def record(chapter: str, data_dir: Path, artifacts: Path, skip: tuple[str, ...], note: str) -> dict:
    """Execute ``chapter`` with its solutions on ``data_dir``; the record of each exercise."""
    from ser_utils.evaluation import git_commit, machine_info

    with tempfile.TemporaryDirectory(prefix="ser-solutions-") as tmp:
        done = execute_with_solutions(with_solutions(chapter, skip=skip, keep_going=True), Path(tmp) / chapter,
                                      {"dataset": "tess", "quick": False, "data_dir": str(data_dir),
                                       "artifacts_dir": str(artifacts)})
    cells = {t: c for c in done.cells for t in c.metadata.get("tags", [])}
    runs = {}
    for number in exercises(chapter):
        if number in skip:
            runs[number] = {"skipped": "left out of this run (--skip): see the chapter's compute estimate"}
            continue
        solution, target = cells[f"solution-{number}"], cells[f"target-{number}"]
        error = _error(solution)
        runs[number] = {"wall_s": round(solution.metadata.get("papermill", {}).get("duration") or 0.0, 1),
                        "output": printed(solution)[-4000:], "error": error,
                        "target_check": "not run" if error else ("failed: " + _error(target) if _error(target)
                                                                 else "passed")}
    n_clips = len(build_manifest(data_dir, progress=False))
    return {"kind": "exercise-solutions", "chapter": chapter,
            "dataset": {"name": "tess", "data_dir_name": data_dir.name, "synthetic": False, "quick": False,
                        "n_clips": n_clips},
            "how": "benchmarks/solutions.py: the chapter up to its first exercise, then each solution's code "
                   "verbatim and its target check (tests/test_solutions.py's with_solutions), executed with papermill",
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "git_commit": git_commit(),
            # the CPU model and SIMD level: a retraining on another CPU can change a few predictions (ARCHITECTURE.md)
            "machine": {"python": platform.python_version(), **machine_info(), "note": note},
            "exercises": runs}


def merge(earlier: dict, new: dict) -> dict:
    """``new``, with each exercise it skipped taken from ``earlier`` where that record ran it.

    A kept exercise carries ``run``: the commit, date and machine note of the record it comes from, so a
    merged file never passes one run's result off as another's. Both records must be of the same chapter on
    the same data (same clip count), else ``ValueError``.
    """
    same = ("chapter", "dataset")
    if any(earlier.get(k) != new.get(k) for k in same):
        raise ValueError(f"the earlier record is of {earlier.get('chapter')} on {earlier.get('dataset')}, this run of "
                         f"{new.get('chapter')} on {new.get('dataset')}: merge only runs of one chapter on the same data")
    merged = {**new, "exercises": dict(new["exercises"])}
    for number, run in new["exercises"].items():
        kept = earlier["exercises"].get(number)
        if "skipped" in run and kept is not None and "skipped" not in kept:
            provenance = kept.get("run") or {"git_commit": earlier["git_commit"], "created": earlier["created"],
                                             "note": earlier["machine"].get("note", "")}
            merged["exercises"][number] = {**kept, "run": provenance}
    return merged


def _fail(message: str) -> None:
    """A user error: one line on stderr, exit status 2 (as the ``ser_utils`` commands do)."""
    print(f"solutions.py: {message}", file=sys.stderr)
    sys.exit(2)


def _earlier_record(path: Path) -> dict | None:
    """The record already at ``path`` (None when there is none); one line and exit 2 when it is unreadable."""
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
        if rec.get("kind") != "exercise-solutions":
            raise ValueError("not a solutions record")
        return rec
    except (ValueError, OSError) as err:
        _fail(f"--merge: {path} is not a readable solutions record ({err}); remove it or drop --merge.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chapter", help="notebook stem, e.g. 08_gradcam")
    ap.add_argument("--data-dir", default=os.environ.get("SER_TESS_DIR"), help="real TESS (default: SER_TESS_DIR)")
    ap.add_argument("--artifacts", default=os.environ.get("SER_ARTIFACTS_DIR", "artifacts"))
    ap.add_argument("--skip", nargs="*", default=[], help="exercise numbers left out, e.g. 5.1 5.3")
    ap.add_argument("--note", default="", help="about the machine, e.g. 'other jobs running: times are upper bounds'")
    ap.add_argument("-o", "--output", help="default: results/reference/solutions/<chapter>.json")
    ap.add_argument("--merge", action="store_true",
                    help="keep the exercises the existing output file recorded and this run skips")
    args = ap.parse_args()
    if not args.data_dir or not Path(args.data_dir).is_dir():
        _fail("real TESS is needed: pass --data-dir DIR or set SER_TESS_DIR.")
    if not (ROOT / "book" / f"{args.chapter}.ipynb").is_file():
        _fail(f"no chapter book/{args.chapter}.ipynb.")
    unknown = sorted(set(args.skip) - set(exercises(args.chapter)))
    if unknown:
        _fail(f"{args.chapter} has no exercise {', '.join(unknown)}: "
                 f"its exercises are {', '.join(exercises(args.chapter))}.")
    out = Path(args.output or ROOT / "results" / "reference" / "solutions" / f"{args.chapter}.json")
    earlier = _earlier_record(out) if args.merge else None  # read first: a bad file fails before hours of training
    rec = record(args.chapter, Path(args.data_dir).resolve(), Path(args.artifacts).resolve(), tuple(args.skip),
                 args.note)
    if earlier is not None:
        try:
            rec = merge(earlier, rec)
        except ValueError as err:
            _fail(str(err))
    write_json(out, rec, what="solutions record")
    for number, run in rec["exercises"].items():
        print(f"{number}: " + (run.get("skipped") or f"{run['wall_s']:.1f} s, target {run['target_check']}"
                                                     + (f", {run['error']}" if run["error"] else "")
                                                     + (f" (kept from {run['run']['git_commit']})" if "run" in run
                                                        else "")))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
