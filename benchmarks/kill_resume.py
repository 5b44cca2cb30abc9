"""SIGKILL at random points during ``features``, ``train`` and ``book --quick``; the rerun must recover.

For each command a clean reference run is made first (its wall time sets the
range of kill times). Then, from one working folder per command, the command is
started again and again and killed with SIGKILL (the main process only, as the
OOM killer or ``kill -9 PID`` would) at a random moment within the reference's
wall time, each restart beginning from whatever the previous kill left; a restart
that finishes before its kill time (nothing left to interrupt) has its outputs
checked and the next one starts from an empty folder, so every counted point is a
kill in the middle of work. After each kill the script checks that no
worker process of the killed run is still alive 3 s later (issue #24 case 21). A
restart that exits with an error before its kill time is a failure to recover.
Finally the command runs to completion and its outputs are compared with the
reference: the feature cache must then hold exactly the reference features (read
back with nothing recomputed), every saved model must pass its digest check, the
results file and splits must be valid and equal the reference run's.

    python benchmarks/kill_resume.py [--points 20] [--seed 0] [--work DIR] [--commands features,train,book]
                                     [--budget-s S] [--book-only 01,02]

Bounded in time: each start lasts at most the reference's wall time, at most
4 x points + 4 starts per command, and ``--budget-s`` caps the kill loops (the
three reference and three final runs come on top).

Data: the demo corpus in quick mode (140 clips), so it needs no real data. Prints
one line per kill point and a summary; exit status 1 when any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def command(name: str, data: Path, art: Path) -> list[str]:
    py = [sys.executable, "-m", "ser_utils"]
    if name == "features":
        return [*py, "features", str(data), "--quick", "--jobs", "2", "--artifacts", str(art)]
    if name == "train":
        return [*py, "train", "cnn", "--data-dir", str(data), "--quick", "--seeds", "0", "--artifacts", str(art)]
    if name == "book":
        return [*py, "book", "--quick", "--dataset", "demo", "--only", BOOK_CHAPTERS, "--no-html",
                "--path-output", str(art / "out"), "--artifacts", str(art / "a")]
    raise ValueError(name)


def artifacts(name: str, art: Path) -> Path:
    """The artifacts folder the command writes its caches to."""
    return art / "a" if name == "book" else art


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SER_QUICK": "1", "TQDM_DISABLE": "1"}
    env.pop("SER_TESS_DIR", None)
    env.pop("SER_DATASET", None)
    with open(log, "ab") as fh:
        # A new session: the run and every process it starts share one group we can inspect and clean up.
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    STARTED.append(proc)
    return proc


#: Every run started, so that a benchmark stopped early (Ctrl-C, a test's timeout) leaves none running.
STARTED: list[subprocess.Popen] = []


def stop_started() -> None:
    """Kill the process group of every run started here that is still running."""
    for proc in STARTED:
        if proc.poll() is None:
            with _suppress():
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def live_workers(pgid: int) -> list[str]:
    """Worker processes (loky extraction workers, chapter kernels) of a killed run that still run.

    joblib's resource trackers are left out: they hold no work and leave once their pipe closes.
    """
    out = subprocess.run(["ps", "-o", "stat=,args=", "-g", str(pgid)], capture_output=True, text=True).stdout
    rows = [line.split(None, 1) for line in out.splitlines() if line.strip()]
    return [args for stat, args in rows if not stat.startswith("Z") and "resource_tracker" not in args]


def feature_state(art: Path):
    """The demo corpus's features as read back from ``art`` (FeatureSet), and the warnings raised doing so."""
    import warnings

    from ser_utils.data import build_manifest
    from ser_utils.features import ensure_features, quick_config

    data = art / "demo_corpus" if (art / "demo_corpus").is_dir() else DATA
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fs = ensure_features(build_manifest(data, progress=False), art, quick_config(), jobs=1, progress=False)
    return fs, [str(w.message) for w in caught]


def check_outputs(name: str, art: Path, ref: dict) -> list[str]:
    """What is wrong with the outputs of a completed run (empty list: all good)."""
    from ser_utils.evaluation import load_record
    from ser_utils.splits import load_splits
    from ser_utils.keras_io import bundle_problem

    a = artifacts(name, art)
    problems = []
    if ref["ids"] is not None:  # the command extracts features (book's chapter 01 alone does not)
        fs, warned = feature_state(a)
        if fs.chunks_computed:
            problems.append(f"features: {fs.chunks_computed} chunk(s) had to be recomputed after a completed run "
                            f"({'; '.join(warned)[:200]})")
        if not (np.array_equal(fs.ids, ref["ids"]) and np.array_equal(fs.vectors, ref["vectors"])
                and np.array_equal(fs.frames, ref["frames"])):
            problems.append("features differ from the reference run")
    for split in sorted((a / "splits").glob("*.json")):
        try:
            folds = load_splits(split)
        except ValueError as exc:
            problems.append(f"{split.name}: {exc}")
            continue
        if ref["splits"].get(split.name) not in (None, [f.as_dict() for f in folds]):
            problems.append(f"{split.name} differs from the reference run")
    for model in sorted((a / "models").glob("*.keras")):
        why = bundle_problem(model)
        if why:
            problems.append(f"{model.name}: {why}")
    for res in sorted((a / "results").glob("*.json")):
        try:
            rec = load_record(res)
        except (OSError, ValueError) as exc:
            problems.append(f"{res.name}: {exc}")
            continue
        want = ref["results"].get(res.name)
        if want is not None and ref["deterministic"] and rec["folds"][0]["predictions"] != want:
            problems.append(f"{res.name}: predictions differ from the reference run")
    return problems


def reference(name: str, work: Path) -> dict:
    art = work / f"{name}-ref"
    t0 = time.perf_counter()
    proc = start(command(name, DATA, art), work / f"{name}-ref.log")
    rc = proc.wait()
    wall = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"reference {name} run failed (rc {rc}); see {work / f'{name}-ref.log'}")
    a = artifacts(name, art)
    fs = feature_state(a)[0] if any(a.glob("features/*/chunk_*.npz")) else None
    results = {p.name: json.loads(p.read_text())["folds"][0]["predictions"] for p in (a / "results").glob("*.json")}
    splits = {p.name: json.loads(p.read_text()) for p in (a / "splits").glob("*.json")}
    none = fs is None
    return {"wall": wall, "ids": None if none else fs.ids, "vectors": None if none else fs.vectors,
            "frames": None if none else fs.frames,
            "results": results, "splits": splits, "deterministic": True}


def run_points(name: str, n: int, rng: random.Random, work: Path, ref: dict,
               deadline: float | None = None) -> tuple[int, list[str]]:
    """Kill ``name`` at ``n`` random moments; returns the number of kills made and the failures found.

    Each restart resumes from what the previous kill left. A restart that finishes before its kill
    time has nothing left to interrupt: its outputs are checked against the reference and the next
    point starts again from an empty folder, so every counted point is a kill in the middle of work.
    """
    art = work / f"{name}-kill"
    log = work / f"{name}-kill.log"
    failures: list[str] = []
    kills = tries = 0
    while kills < n:
        if deadline is not None and time.perf_counter() > deadline:
            print(f"{name:8s} time budget spent: {n - kills} kill point(s) skipped", flush=True)
            break
        if tries >= 4 * n + 4:  # bounded even when the kill times keep missing the run
            print(f"{name:8s} gave up after {tries} starts: {n - kills} kill point(s) not made", flush=True)
            break
        tries += 1
        at = rng.uniform(0.5, ref["wall"])
        proc = start(command(name, DATA, art), log)
        t0 = time.perf_counter()
        try:
            rc = proc.wait(timeout=at)
        except subprocess.TimeoutExpired:
            rc = None
        if rc is None:
            kills += 1
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            time.sleep(3)
            orphans = live_workers(proc.pid)
            if orphans:
                failures.append(f"{name} point {kills}: worker processes still alive 3 s after the parent was killed")
            with _suppress():
                os.killpg(proc.pid, signal.SIGKILL)
            print(f"{name:8s} point {kills:2d}: killed at {at:5.1f} s"
                  + (" (orphans left!)" if orphans else ""), flush=True)
        elif rc != 0:
            failures.append(f"{name} start {tries}: restart failed with status {rc} after "
                            f"{time.perf_counter() - t0:.1f} s (see {log})")
            print(f"{name:8s} start {tries:2d}: RESTART FAILED (status {rc})", flush=True)
        else:
            problems = check_outputs(name, art, ref)
            failures += [f"{name} start {tries}: {p}" for p in problems]
            print(f"{name:8s}          finished before its kill time ({at:.1f} s): "
                  + ("outputs OK" if not problems else "; ".join(problems))
                  + "; the next point starts from an empty folder", flush=True)
            shutil.rmtree(art, ignore_errors=True)
    proc = start(command(name, DATA, art), log)
    rc = proc.wait()
    problems = [f"final run failed with status {rc} (see {log})"] if rc else check_outputs(name, art, ref)
    failures += [f"{name} final: {p}" for p in problems]
    print(f"{name:8s} final run: " + ("recovered, outputs equal the reference" if not problems else "; ".join(problems)),
          flush=True)
    return kills, failures


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], OSError)


DATA: Path = Path()
BOOK_CHAPTERS = "01,02"  # the chapters `book --quick` executes (--book-only)


def main() -> int:
    global DATA, BOOK_CHAPTERS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=20, help="kill points in all, shared among the commands")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=None, help="working folder (default: a temporary one, removed afterwards)")
    ap.add_argument("--commands", default="features,train,book")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="seconds of kill points in all, shared equally among the commands (counted from the end "
                         "of each command's reference run): no new kill point starts after its share; the final "
                         "runs still happen")
    ap.add_argument("--book-only", default=BOOK_CHAPTERS, metavar="NN,NN",
                    help=f"the chapters book executes (default {BOOK_CHAPTERS}; the test runs 01 alone)")
    ap.add_argument("--no-repeat-check", action="store_true",
                    help="skip the second reference training that tells whether predictions must match exactly")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout's SIGTERM still runs the clean-up below
    names = [c for c in args.commands.split(",") if c]
    BOOK_CHAPTERS = args.book_only
    tmp = None if args.work else tempfile.mkdtemp(prefix="ser-kill-")
    work = Path(args.work or tmp)
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    t_all = time.perf_counter()
    try:
        from ser_utils.synth import write_demo_corpus
        from ser_utils.run_context import DEMO_WORDS_QUICK

        DATA = write_demo_corpus(work / "data", n_words=DEMO_WORDS_QUICK, seed=0, progress=False)
        share = [args.points // len(names) + (i < args.points % len(names)) for i in range(len(names))]
        failures, total, made = [], 0, {}
        for name, n in zip(names, share, strict=True):
            ref = reference(name, work)
            if name == "train" and args.no_repeat_check:
                ref["deterministic"] = False
            elif name == "train":  # is training repeatable here? Only then must the predictions match exactly
                (work / "again").mkdir(exist_ok=True)
                ref["deterministic"] = reference(name, work / "again")["results"] == ref["results"]
            print(f"{name:8s} reference run: {ref['wall']:.1f} s"
                  + ("" if ref["deterministic"] else " (training not repeatable here: predictions not compared)"),
                  flush=True)
            deadline = None if args.budget_s is None else time.perf_counter() + args.budget_s / len(names)
            k, f = run_points(name, n, rng, work, ref, deadline)
            made[name] = k
            total += k
            failures += f
        print(f"\n{total} kill points over {', '.join(names)} in {time.perf_counter() - t_all:.0f} s "
              f"({', '.join(f'{k} {c}' for c, k in made.items())})")
        if failures:
            print("FAILURES:\n  " + "\n  ".join(failures))
            return 1
        print("all kill points recovered: no state was reused wrongly")
        return 0
    finally:
        stop_started()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
