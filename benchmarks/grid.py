"""Benchmark: a Keras grid serially vs on 2 local Dask workers, with the thread pinning on and off.

The grid is ``cnn`` x 2 protocols x 2 seeds (default: random and speaker,
seeds 0 1; 6 trainings, the speaker protocol has two folds) on the demo
corpus in quick mode, through :func:`ser_utils.grid.run_jobs`. Four
configurations, each in a fresh Python process (TensorFlow's thread pools are
fixed once it has run, so one process cannot measure both settings) with its
own artifacts folder, into which the features are copied from one extraction
done first (not timed):

- serial, pinned: every job in the process, TensorFlow/torch/BLAS sized to all cores;
- serial, not pinned: the libraries' own defaults;
- 2 workers, pinned: each job gets its worker's share of the cores (1 on 2 cores);
- 2 workers, not pinned: TensorFlow's default pools in each worker (Dask's nanny still
  sets OMP/MKL/OPENBLAS_NUM_THREADS=1 in its workers by default; TensorFlow's pools ignore them).

Printed side by side: the wall time of the grid (``run_jobs``: preparation
check plus the runs; the local cluster's start is shown apart), the ratios
serial / 2 workers and not pinned / pinned, whether every configuration gave
the same predictions, and the load average before and after each.

    python benchmarks/grid.py [--models cnn] [--protocols random speaker] [--seeds 0 1] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = (("serial", None, True), ("serial", None, False), ("2 workers", 2, True), ("2 workers", 2, False))


def one(args: argparse.Namespace) -> dict:
    """Run the grid once as configured; return times, loads and each run's predictions."""
    from ser_utils.grid import GridData, make_jobs, open_executor, run_jobs

    data = GridData(args.artifacts, data_dir=args.data_dir, epochs=args.epochs, quick=True)
    jobs = make_jobs(data, args.models, args.protocols, args.seeds)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with open_executor(args.workers) as executor:
        started = time.perf_counter()
        report = run_jobs(jobs, executor, skip_existing=False, pin_threads=args.pin, progress=False)
        wall = time.perf_counter() - started
    failed = [f"{o.job.label}: {o.error}" for o in report.failed]
    preds = {o.job.label: [f["predictions"]["y_pred"] for f in o.record["folds"]] for o in report.outcomes if o.ok}
    ok = [o for o in report.outcomes if o.ok]
    return {"wall_s": wall, "cluster_start_s": started - start, "load_before": load_before,
            "job_s": sum(o.seconds for o in ok), "train_s": sum(o.record["wall_time_s"] for o in ok),
            "load_after": os.getloadavg()[0], "threads": sorted({o.threads or 0 for o in report.outcomes}),
            "failed": failed, "predictions": preds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cnn"])
    parser.add_argument("--protocols", nargs="+", default=["random", "speaker"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--epochs", type=int, help="maximum epochs (default: quick mode's 2)")
    parser.add_argument("--data-dir", help="corpus (default: a 10-word demo corpus in a temp folder)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: one configuration
    parser.add_argument("--artifacts", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pin", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args)))
        return 0

    from ser_utils.grid import GridData, make_jobs, run_jobs, usable_cores
    from ser_utils.synth import write_demo_corpus

    tmp = Path(tempfile.mkdtemp(prefix="grid-bench-"))
    data_dir = args.data_dir or str(write_demo_corpus(tmp / "demo", n_words=10, progress=False))
    cache = tmp / "cache"  # features extracted once, before any clock starts
    run_jobs(make_jobs(GridData(str(cache), data_dir=data_dir, quick=True), ["duration"], ["random"], [0]),
             progress=False)
    common = ["--models", *args.models, "--protocols", *args.protocols, "--seeds", *map(str, args.seeds),
              "--data-dir", data_dir] + (["--epochs", str(args.epochs)] if args.epochs else [])
    results = {}
    for i, (name, workers, pin) in enumerate(CONFIGS):
        art = tmp / f"art{i}"
        shutil.copytree(cache / "features", art / "features")
        cmd = [sys.executable, __file__, "--one", "--artifacts", str(art), "--pin", str(int(pin)), *common]
        cmd += ["--workers", str(workers)] if workers else []
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        if out.returncode:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        results[(name, pin)] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[(name, pin)]
        print(f"  {name}, {'pinned' if pin else 'not pinned'}: {r['wall_s']:.1f} s "
              f"(load {r['load_before']:.1f} -> {r['load_after']:.1f})", file=sys.stderr, flush=True)

    runs = len(args.models) * len(args.protocols) * len(args.seeds)
    print(f"Grid: {' '.join(args.models)} x {' '.join(args.protocols)} x seeds {args.seeds} ({runs} runs), "
          f"demo corpus, quick mode{f', {args.epochs} epochs max' if args.epochs else ''}; "
          f"{usable_cores()} usable cores, {os.cpu_count()} visible")
    # job s: the jobs' own time summed (start-up of the libraries, data, training); train s: the folds' part of it
    print(f"{'configuration':<26}{'wall s':>8}{'job s':>8}{'train s':>9}{'cluster start s':>17}{'threads/job':>13}"
          f"{'load before':>13}{'load after':>12}  failed")
    for (name, pin), r in results.items():
        label = f"{name}, {'pinned' if pin else 'not pinned'}"
        threads = ",".join(str(t) if t else "default" for t in r["threads"])
        print(f"{label:<26}{r['wall_s']:>8.1f}{r['job_s']:>8.1f}{r['train_s']:>9.1f}{r['cluster_start_s']:>17.1f}"
              f"{threads:>13}{r['load_before']:>13.2f}{r['load_after']:>12.2f}  {len(r['failed'])}")
    w = {k: r["wall_s"] for k, r in results.items()}
    print("\nRatios (wall time of the runs, measured side by side in this one benchmark run):")
    for pin in (True, False):
        print(f"  serial / 2 workers, {'pinned' if pin else 'not pinned':<11}: "
              f"{w[('serial', pin)] / w[('2 workers', pin)]:.2f}")
    for name in ("serial", "2 workers"):
        print(f"  not pinned / pinned, {name:<10}: {w[(name, False)] / w[(name, True)]:.2f}")
    groups: list[list[str]] = []  # configurations whose runs predicted exactly the same labels
    firsts: list[dict] = []
    for (name, pin), r in results.items():
        label = f"{name}, {'pinned' if pin else 'not pinned'}"
        for g, first in zip(groups, firsts, strict=True):
            if r["predictions"] == first:
                g.append(label)
                break
        else:
            groups.append([label])
            firsts.append(r["predictions"])
    print("\nSame predictions: " + " | ".join(" = ".join(g) for g in groups))
    for r in results.values():
        for line in r["failed"]:
            print(f"failed: {line}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
