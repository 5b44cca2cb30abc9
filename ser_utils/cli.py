"""Command line: ``python -m ser_utils <command> ...``.

Each command is a thin wrapper over a ``ser_utils`` function; heavy libraries
(TensorFlow, torch) are imported only by the commands that need them, so
``--help`` and the data commands start fast. Errors the user can fix are
printed as one clear message with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .errors import UserError
from .registry import ModelSpec

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}
#: Functions adding more subcommands' parsers (``fn(subparsers)``): how an application built on the
#: library (the book's :mod:`ser_utils.__main__`) adds its own commands without the library knowing them.
PARSER_EXTENSIONS: list[Callable[[argparse._SubParsersAction], None]] = []


def add_parsers(fn: Callable[[argparse._SubParsersAction], None]):
    """Register ``fn`` to add subcommand parsers to :func:`build_parser`'s parser."""
    PARSER_EXTENSIONS.append(fn)
    return fn


def command(name: str):
    """Register ``fn`` as the handler of subcommand ``name``."""

    def register(fn: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = fn
        return fn

    return register


# --- data -----------------------------------------------------------------------------


@command("demo-corpus")
def _demo_corpus(args: argparse.Namespace) -> int:
    from .outputs import check_output_path, make_output_dir
    from .synth import check_demo_parameters, write_demo_corpus

    check_demo_parameters(args.words, args.seed)
    out = make_output_dir(check_output_path(args.out, kind="dir", what="demo corpus folder"), what="demo corpus folder")
    root = write_demo_corpus(out, n_words=args.words, seed=args.seed)
    print(f"Wrote the synthetic demo corpus ({args.words} words x 7 emotions x 2 speakers, seed {args.seed}) to {root}")
    return 0


@command("manifest")
def _manifest(args: argparse.Namespace) -> int:
    from .corpora import get_corpus
    from .data import build_manifest, detect_corpus, summarise_corpus, summarise_manifest
    from .outputs import atomic_write, check_output_path
    from .synth import is_demo_corpus

    # An explicit -o may sit in the data folder (a CSV is no clip), but never replaces an audio or data file.
    out = check_output_path(args.output, kind="file", what="-o") if args.output else None
    corpus = get_corpus(args.corpus) if args.corpus else detect_corpus(args.data_dir)
    print(f"Corpus: {corpus.title}" + ("" if args.corpus else " (detected from the file names; --corpus to choose)"))
    manifest = build_manifest(args.data_dir, corpus=corpus)
    demo = is_demo_corpus(args.data_dir)
    if corpus.name != "tess":
        summary = summarise_corpus(manifest, corpus)
    else:
        summary = summarise_manifest(manifest, **({"expected_size": len(manifest)} if demo else {}))
    if demo:
        print("DEMO DATA: this folder holds the synthetic demo corpus (speakers SYNA/SYNB), not TESS.")
    print(summary)
    if out is not None:
        with atomic_write(out, what="manifest") as tmp:
            manifest.to_csv(tmp, index=False, encoding="utf-8", errors="backslashreplace")
        print(f"Manifest written to {out}")
    return 0 if summary.n_ok else 1


@command("download")
def _download(args: argparse.Namespace) -> int:
    from .download import TESS_URL, download_ravdess, download_tess

    if args.corpus == "crema-d":
        from .corpora import CREMA_HELP

        raise UserError(f"CREMA-D has no single archive to download. {CREMA_HELP}")
    if args.corpus == "ravdess":
        out = download_ravdess(args.dest, **({"url": args.url} if args.url else {}))
        print(f"RAVDESS speech extracted to {out}\nUse it with: python -m ser_utils manifest {out} --corpus ravdess")
        return 0
    out = download_tess(args.dest, url=args.url or TESS_URL, sha256=args.sha256)
    print(f"TESS extracted to {out}\nUse it with: export SER_TESS_DIR={out}")
    return 0


@command("features")
def _features(args: argparse.Namespace) -> int:
    from .data import summarise_manifest
    from .features import FeatureConfig, ensure_features, quick_config
    from .outputs import check_output_path, make_output_dir

    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, not {args.jobs}")
    out = Path(args.artifacts) if args.artifacts else _default_artifacts(args.data_dir, args.quick)
    out = check_output_path(out, kind="dir", data_dir=args.data_dir, what="--artifacts")
    from .data import build_manifest, detect_corpus, usable

    corpus = detect_corpus(args.data_dir)  # a CREMA-D or RAVDESS folder is read with its own naming scheme
    manifest = build_manifest(args.data_dir, corpus=corpus)
    if usable(manifest).empty:
        raise UserError(f"no usable clip in {args.data_dir} (read as {corpus.title}): {len(manifest)} files, none "
                        "usable; run `python -m ser_utils manifest DIR` to see why")
    make_output_dir(out, what="artifacts folder")
    cfg = quick_config() if args.quick else FeatureConfig()
    fs = ensure_features(manifest, out, cfg, jobs=args.jobs)
    summary = summarise_manifest(manifest)
    print(f"clips: {len(fs)} with features, {len(fs.failed)} failed during extraction, "
          f"{len(summary.problems)} skipped as bad files")
    for _, row in fs.failed.iterrows():
        print(f"  failed: {row['clip_id']}: {row['reason']}")
    print(f"vectors {fs.vectors.shape}, frames {fs.frames.shape}, images {fs.images.shape}")
    cached = "all from cache" if fs.chunks_computed == 0 else f"{fs.chunks_computed} chunks computed"
    print(f"wall time {fs.wall_time:.1f} s ({cached}); cache: {fs.cache_dir}")
    return 0 if len(fs) else 1


def _default_artifacts(data_dir: str, quick: bool) -> Path:
    """The artifacts folder ``train`` uses for this data folder, so ``features`` fills the same cache."""
    from .run_context import default_artifacts_root
    from .synth import is_demo_corpus

    name = "demo" if is_demo_corpus(data_dir) else "tess"
    return default_artifacts_root() / (name + ("-quick" if quick else ""))


def train_models() -> tuple[str, ...]:
    """The base architectures ``train`` offers: every registered family's."""
    from .registry import all_bases

    return all_bases()


@command("train")
def _train(args: argparse.Namespace) -> int:
    name, options = _train_model_name(args)
    from .experiments import run_experiment, scores_table
    from .outputs import check_output_path, make_output_dir
    from .paper import PAPER_ACCURACY

    if args.artifacts:
        make_output_dir(check_output_path(args.artifacts, kind="dir", data_dir=args.data_dir, what="--artifacts"),
                        what="artifacts folder")
    if args.protocol == "actors":
        return _train_actor_folds(args, name, options)
    if args.folds is not None or args.corpus:
        raise UserError("--folds and --corpus apply to --protocol actors (a many-speaker corpus such as CREMA-D)")
    ws = _workspace(args)
    records = []
    for seed in args.seeds:
        try:
            records.append(run_experiment(ws, name, args.protocol, seed, options=options))
        except ImportError as exc:  # e.g. a model family whose module or library is not installed
            raise UserError(f"cannot train {name!r}: {exc}") from exc
        except KeyboardInterrupt:
            done = [r["seed"] for r in records]
            left = [s for s in args.seeds if s not in done]
            print(f"interrupted while training seed {seed}: "
                  + (f"seed(s) {done} finished (results in {records[0].get('_path', '')}{' ...' if len(done) > 1 else ''}); "
                     if done else "no seed finished; ")
                  + f"train the rest with --seeds {' '.join(map(str, left))} (train always retrains the seeds "
                  "it is given; features and splits are reused)", file=sys.stderr)
            return 130
    table = scores_table(records, PAPER_ACCURACY if args.protocol == "random" else None)
    print(f"\n{name} under the {args.protocol!r} protocol, seeds {args.seeds} (scores in %, mean and sd over seeds):")
    print(table.to_string(index=False))
    print("\nResults written to:")
    for rec in records:
        print(f"  {rec.get('_path')}")
    return 0


def _train_actor_folds(args: argparse.Namespace, name: str, options: dict) -> int:
    """``train MODEL --data-dir DIR --protocol actors``: leave-actors-out folds on a many-speaker corpus.

    The folder is ``--data-dir``, else ``SER_CREMA_DIR``, else a synthetic CREMA-D-shaped corpus (marked so).
    """
    from .cross_corpus import ActorFoldsRun, actor_fold_records
    from .experiments import scores_table
    from .quiet import quiet_libraries
    from .run_context import RunMode, default_artifacts_root, resolve_crema

    if args.dataset != "auto":
        raise UserError("--dataset applies to TESS runs; with --protocol actors give the corpus folder with --data-dir")
    if args.folds is not None and args.folds < 2:
        raise UserError(f"--folds must be at least 2 (or left out for leave-one-actor-out), not {args.folds}")
    mode = RunMode.resolve(True if args.quick else None, args.epochs)
    artifacts = Path(args.artifacts) if args.artifacts else \
        default_artifacts_root() / ("actors" + ("-quick" if mode.quick else ""))
    source = resolve_crema(args.data_dir, artifacts, quick=mode.quick)
    quiet_libraries()
    run = ActorFoldsRun(name, source.path, artifacts, seeds=tuple(args.seeds), n_folds=args.folds,
                        corpus=args.corpus, options=options, mode=mode)
    records = actor_fold_records(run)
    d = records[0]["dataset"]
    banner = "DEMO DATA (synthetic CREMA-D-shaped corpus, not real speech): " if d["synthetic"] else ""
    print(f"\n{banner}{name} leave-actors-out on {d['corpus']} ({d['n_clips']} clips, {d['n_speakers']} actors), "
          f"seeds {args.seeds} (scores in %, mean over folds; mean and sd over seeds):")
    print(scores_table(records).to_string(index=False))
    print("\nResults written to:")
    for rec in records:
        print(f"  {rec.get('_path')}")
    return 0


def _workspace(args: argparse.Namespace):
    """The library workspace of ``train``/``gradcam-reference`` (no page theme, no banner): its line is printed."""
    from .quiet import quiet_libraries
    from .workspace import RunMode, open_workspace

    quiet_libraries()
    ws = open_workspace(args.dataset, args.data_dir, args.artifacts,
                        mode=RunMode.resolve(True if args.quick else None, args.epochs))
    print(ws.describe())
    return ws


def _train_model_name(args: argparse.Namespace) -> tuple[str, dict]:
    """Check the ``train`` options against the model's family; return the results name and the options.

    Each family says which variant flags it takes (``ModelFamily.cli_flags``) and how they become
    training options (``ModelFamily.cli_options``), so a new family needs no change here.
    """
    from .registry import families

    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs must be at least 1, not {args.epochs}")
    if not args.seeds or any(not 0 <= s < 2**32 for s in args.seeds):
        raise UserError("--seeds needs one or more integers between 0 and 2**32 - 1 (e.g. --seeds 0 1 2)")
    def takes(family, base: str, flag: str) -> bool:
        return flag in family.cli_flags and flag in {fld for fld, _ in family.suffixes_for(base).values()}

    try:
        spec = ModelSpec.parse(args.model)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    flags = {"input": args.input, "spknorm": args.spknorm, "augment": args.augment, "pretrained": args.pretrained}
    given = {k: v for k, v in flags.items() if v}
    for flag in given:
        if not takes(spec.family, spec.base, flag):
            takers = [b for f in families().values() for b in f.bases if takes(f, b, flag)]
            raise UserError(f"--{flag} applies only to {', '.join(takers)}, not {args.model}")
    options = spec.family.cli_options(given) | dict(_option(text) for text in args.option)
    try:
        spec.family.check(spec, options)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return spec.with_options(given).name, options


def _option(text: str) -> tuple[str, object]:
    """One ``--option KEY=VALUE``: the value as an int, float or bool when it reads as one."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UserError(f"--option takes KEY=VALUE (e.g. --option encoder=path/to/checkpoint), not {text!r}")
    for convert in (int, float):
        try:
            return key, convert(value)
        except ValueError:
            pass
    return key, {"true": True, "false": False}.get(value.lower(), value)


def _seed(text: str) -> int:
    """One ``--seeds`` value as an int in [0, 2**32); :class:`UserError` naming the bad value otherwise."""
    try:
        seed = int(text)
    except ValueError:
        raise UserError(f"--seeds takes integers (e.g. --seeds 0 1 2 or --seeds 0,1,2), not {text!r}") from None
    if not 0 <= seed < 2**32:
        raise UserError(f"--seeds values must be between 0 and 2**32 - 1, not {seed}")
    return seed


# --- grid: many runs, on one machine or a Dask cluster (ser_utils.grid) -------------------------


def _add_grid_parser(sub) -> None:
    p = sub.add_parser("grid", help="train and score every model x protocol x seed, serially or on Dask workers")
    p.add_argument("--models", nargs="+", required=True, metavar="M", help="model names, e.g. logreg duration cnn")
    p.add_argument("--protocols", nargs="+", required=True, metavar="P", help="random, speaker and/or word")
    p.add_argument("--seeds", nargs="+", required=True, metavar="K", help="split seeds, e.g. 0 1 2 or 0,1,2")
    p.add_argument("--data-dir", help="folder holding TESS (default: SER_TESS_DIR or data/TESS); on a cluster, "
                   "a path every worker sees")
    p.add_argument("--dataset", choices=("auto", "tess", "demo"), default="auto",
                   help="auto: TESS when found, else the demo corpus (default auto)")
    p.add_argument("--artifacts", required=True, metavar="DIR",
                   help="artifacts folder: features, splits, models and results/ (shared storage on a cluster)")
    p.add_argument("--epochs", type=int, help="maximum epochs (default: 100 with early stopping; 2 in quick mode)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and 1-2 epochs (for testing)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N", help="run on a local Dask cluster of N worker processes")
    where.add_argument("--scheduler", metavar="ADDRESS", help="run on a running Dask cluster (tcp://host:8786)")
    p.add_argument("--force", action="store_true", help="run again the runs whose results file exists")


@command("grid")
def _grid(args: argparse.Namespace) -> int:
    from .experiments import scores_table
    from .grid import GridData, failure_log, make_jobs, open_executor, run_jobs
    from .outputs import atomic_write, check_output_path, make_output_dir

    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs must be at least 1, not {args.epochs}")
    split = lambda values: [v for item in values for v in item.split(",") if v]  # noqa: E731
    out = make_output_dir(check_output_path(args.artifacts, kind="dir", data_dir=args.data_dir, what="--artifacts"),
                          what="artifacts folder")
    data_dir = str(Path(args.data_dir).expanduser().resolve()) if args.data_dir else None  # workers' cwd differs
    data = GridData(str(out.resolve()), args.dataset, data_dir, args.epochs, bool(args.quick))
    jobs = make_jobs(data, split(args.models), split(args.protocols), [_seed(s) for s in split(args.seeds)])
    with open_executor(args.workers, args.scheduler) as executor:
        report = run_jobs(jobs, executor, skip_existing=not args.force)
    skipped = sum(o.skipped for o in report.outcomes)
    print(f"{len(jobs)} runs: {len(jobs) - skipped - len(report.failed)} trained, {skipped} already done, "
          f"{len(report.failed)} failed; results in {out / 'results'}")
    if report.records:
        print(scores_table(report.records).to_string(index=False))
    if not report.failed:
        return 0
    log = out / "grid-failures.txt"
    with atomic_write(log, what="failure log") as tmp:
        tmp.write_text(failure_log(report))
    for o in report.failed:
        print(f"failed: {o.job.label}: {o.error}", file=sys.stderr)
    print(f"tracebacks in {log}; rerun the same command to retry only these", file=sys.stderr)
    return 1


@command("predict")
def _predict(args: argparse.Namespace) -> int:
    from .quiet import quiet_libraries

    quiet_libraries()
    from .outputs import check_output_path
    from .predict import cam_problem, check_clip, is_demo_model, newest_model, predict_clip, read_sidecar, write_cam

    clip = check_clip(args.clip)  # cheap checks first: no TensorFlow start-up for a bad clip or output path
    if clip.note:  # e.g. a very quiet clip: the answer may differ from the same words at a normal level
        print(f"warning: {args.clip}: {clip.note} (e.g. `sox --norm in.wav out.wav`)", file=sys.stderr)
    from .encoder_model import is_probe_folder

    if args.model and is_probe_folder(args.model):
        return _predict_with_probe(args)
    cam = check_output_path(args.cam, kind="image", what="--cam") if args.cam else None
    model_path = args.model or newest_model()
    model_file, _ = read_sidecar(model_path)
    if cam is not None and (problem := cam_problem(model_file)):
        raise UserError(problem)
    if not args.model:
        print(f"note: no --model given; using the newest saved hybrid model {model_path}", file=sys.stderr)
    if is_demo_model(model_path):
        print("WARNING: this model was trained on the synthetic demo corpus, not on TESS: its answer says "
              "nothing about real emotional speech. Train on TESS and pass --model PATH.", file=sys.stderr)
    from .keras_io import load_model_bundle

    pred = predict_clip(args.clip, model_path)
    print(pred.as_text())
    if pred.sidecar.get("standardizer", {}).get("kind") == "spknorm":
        print("note: this model uses per-speaker normalisation; a single new clip was standardised with the "
              "training speakers' average statistics instead", file=sys.stderr)
    if args.cam:
        model, _ = load_model_bundle(pred.model_path)
        print(f"Grad-CAM figure written to {write_cam(pred, model, cam)}")
    return 0


def _predict_with_probe(args: argparse.Namespace) -> int:
    """``predict --model FOLDER`` for a saved pretrained-encoder probe (chapter 10)."""
    from .encoder_model import load_probe, predict_probabilities

    if args.cam:
        raise UserError("--cam explains the Keras models' convolutions; a pretrained-encoder probe has none")
    probe = load_probe(args.model)
    proba = predict_probabilities(probe, args.clip)
    print(f"{args.clip}: {proba.index[0]} ({100 * proba.iloc[0]:.1f} %); probe on layer {probe.layer} of "
          f"{probe.source}, trained on {probe.trained_on}")
    for emotion, p in proba.items():
        print(f"  {emotion:20s} {100 * p:5.1f} %")
    return 0


@command("gradcam-reference")
def _gradcam_reference(args: argparse.Namespace) -> int:
    from .gradcam_reference import REFERENCE_MODELS
    from .outputs import check_output_path, make_output_dir

    if not args.seeds or any(not 0 <= s < 2**32 for s in args.seeds):
        raise UserError("--seeds needs one or more integers between 0 and 2**32 - 1 (e.g. --seeds 0 1 2)")
    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs must be at least 1, not {args.epochs}")
    if args.clips < 2 or args.steps < 1 or args.n_random < 1:
        raise UserError("--clips must be at least 2, --steps and --n-random at least 1")
    unknown = [m for m in args.models if m not in REFERENCE_MODELS]
    if unknown:
        raise UserError(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(REFERENCE_MODELS)}")
    out = check_output_path(args.out, kind="dir", data_dir=args.data_dir, what="--out")
    if args.artifacts:
        make_output_dir(check_output_path(args.artifacts, kind="dir", data_dir=args.data_dir, what="--artifacts"),
                        what="artifacts folder")
    ws = _workspace(args)
    make_output_dir(out, what="--out folder")
    from .gradcam_reference import ReferenceSettings, gradcam_reference

    settings = ReferenceSettings(args.protocol, n_clips=args.clips, steps=args.steps, n_random=args.n_random)
    paths = gradcam_reference(ws, out, args.seeds, args.models, settings)
    print(f"\n{(out / 'summary.md').read_text(encoding='utf-8')}\nWrote {len(paths)} files to {out}")
    return 0


@command("pretrained-reference")
def _pretrained_reference(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .encoder_runs import ReferenceRun, reference_run
    from .outputs import check_output_path, make_output_dir

    for flag, folder in (("--tess", args.tess), ("--crema", args.crema)):
        if not Path(folder).is_dir():
            raise UserError(f"{flag}: no folder at {folder}")
    out = make_output_dir(check_output_path(args.out, kind="dir", data_dir=args.tess, what="--out"), what="--out")
    art = make_output_dir(check_output_path(args.artifacts, kind="dir", data_dir=args.tess, what="--artifacts"),
                          what="artifacts folder")
    run = ReferenceRun(Path(args.tess), Path(args.crema), art, out, args.pretrained, tuple(args.seeds),
                       ("clip", "30s") if args.padding_30s else ("clip",))
    paths = reference_run(run)
    print(f"Wrote {len(paths)} results files to {out}")
    return 0


@command("transfer")
def _transfer(args: argparse.Namespace) -> int:
    from .registry import ModelSpec
    from .run_context import RunMode
    from .transfer import ReferenceRuns, prosody_comparison, reference_runs

    if args.model or args.train or args.test:
        return _cross_corpus(args)
    if not (args.crema and args.tess and args.artifacts):
        raise UserError("transfer needs MODEL --train DIR [DIR ...] --test DIR -o OUT, or (chapter 9's "
                        "reference runs) --crema DIR --tess DIR --artifacts DIR")
    if args.prosody:
        import pandas as pd

        table = pd.concat([prosody_comparison(args.tess, "tess", args.artifacts, jobs=args.jobs),
                           prosody_comparison(args.crema, "crema-d", args.artifacts, jobs=args.jobs)])
        print(table.round(1).to_string(index=False))
        return 0
    for m in args.models:
        spec = ModelSpec.parse_or_none(m)
        if spec is None or spec.family.name != "keras":
            raise UserError(f"--models takes Keras models (cnn, lstm, hybrid and their variants), not {m!r}")
    if args.feature_sets and "egemaps" in args.feature_sets:
        from .egemaps import smile

        smile()  # fails early, with the install command, when opensmile is missing
    plan = ReferenceRuns(feature_sets=tuple(args.feature_sets), models=tuple(args.models), seeds=tuple(args.seeds),
                         n_folds=args.folds, mode=RunMode(quick=args.quick, epochs=args.epochs))
    records = reference_runs(args.crema, args.tess, args.artifacts, args.out, plan, jobs=args.jobs)
    for r in records:
        print(f"{r['model']:24s} {r['protocol']:22s} seed {r['seed']}  UAR {100 * r['metrics']['uar']:5.1f}  "
              f"accuracy {100 * r['metrics']['accuracy']:5.1f}  folds {len(r['folds'])}  {r.get('_path', '')}")
    return 0


def _cross_corpus(args: argparse.Namespace) -> int:
    """``transfer MODEL --train DIR... --test DIR -o OUT``: :mod:`ser_utils.cross_corpus`."""
    from .cross_corpus import CrossCorpusRun, cross_corpus_records
    from .run_context import RunMode, default_artifacts_root

    if not (args.model and args.train and args.test and args.out):
        raise UserError("transfer MODEL needs --train DIR [DIR ...], --test DIR and -o OUT "
                        "(e.g. transfer logreg --train data/TESS --test data/CREMA-D -o results/cross)")
    if args.crema or args.tess:
        raise UserError("--crema/--tess are chapter 9's reference runs; with MODEL use --train and --test")
    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs must be at least 1, not {args.epochs}")
    run = CrossCorpusRun(args.model, tuple(args.train), args.test, Path(args.out),
                         Path(args.artifacts) if args.artifacts else default_artifacts_root() / "cross-corpus",
                         seeds=tuple(args.seeds), corpus=args.corpus,
                         options=dict(_option(t) for t in args.option),
                         mode=RunMode(quick=args.quick, epochs=args.epochs))
    records = cross_corpus_records(run)
    for r in records:
        d = r["dataset"]
        banner = "DEMO DATA (synthetic, not real speech): " if d["synthetic"] else ""
        print(f"{banner}{r['model']} {r['protocol']} seed {r['seed']}: UAR {100 * r['metrics']['uar']:.1f} % over "
              f"{len(d['emotions'])} shared emotions ({', '.join(d['emotions'])}); train "
              + ", ".join(f"{t['corpus']} {t['n_clips']} clips/{t['n_speakers']} speakers" for t in d["train"])
              + f"; test {d['test']['corpus']} {d['test']['n_clips']} clips/{d['test']['n_speakers']} speakers"
              + f"\n  {r['_path']}")
    return 0


def _prog() -> str:
    """``ser-utils`` when run as the console script, else ``python -m ser_utils``."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return name if name and not name.endswith(".py") else "python -m ser_utils"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog=_prog(), description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo-corpus", help="write the synthetic TESS-shaped demo corpus")
    p.add_argument("out", help="folder to write into")
    p.add_argument("--words", type=int, default=10, help="number of words (default 10: 140 clips)")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("manifest", help="scan a TESS folder: counts, durations, bad files")
    p.add_argument("data_dir", help="folder holding TESS (any published layout), CREMA-D or RAVDESS")
    p.add_argument("-o", "--output", help="write the manifest CSV here")
    p.add_argument("--corpus", choices=("tess", "crema-d", "ravdess"),
                   help="which corpus the folder holds (default: detected from the file names)")

    p = sub.add_parser("download", help="download TESS from the Borealis Dataverse (or RAVDESS from Zenodo)")
    p.add_argument("dest", help="folder to download and extract into")
    p.add_argument("--url", help="archive URL (default: the Borealis Dataverse TESS dataset, "
                   "or RAVDESS's Zenodo record)")
    p.add_argument("--sha256", help="expected SHA-256 of the archive (optional)")
    p.add_argument("--corpus", choices=("tess", "ravdess", "crema-d"), default="tess",
                   help="which corpus (default tess; crema-d only says where to get it)")

    p = sub.add_parser("features", help="extract and cache chroma/mel/contrast/MFCC features")
    p.add_argument("data_dir", help="folder holding TESS or the demo corpus")
    p.add_argument("--artifacts", help="artifacts folder (default: the one `train` uses, "
                   "<project>/artifacts/tess or .../demo, -quick with --quick)")
    p.add_argument("--jobs", type=int, default=None, help="parallel processes (default: all cores)")
    p.add_argument("--quick", action="store_true", help="smaller images and sequences (as in quick mode)")

    p = sub.add_parser("train", help="train and score a model under one protocol, for one or more seeds")
    p.add_argument("model", metavar="MODEL",
                   help=f"model name: a base ({', '.join(train_models())}) with its variant suffixes, "
                        "e.g. hybrid-frames-aug or whisper-probe-layer2 (see ser_utils.registry)")
    p.add_argument("--data-dir", help="folder holding TESS (default: SER_TESS_DIR or data/TESS)")
    p.add_argument("--dataset", choices=("auto", "tess", "demo"), default="auto",
                   help="auto: TESS when found, else the demo corpus (default auto)")
    p.add_argument("--artifacts", help="artifacts folder (default artifacts/<dataset>)")
    p.add_argument("--protocol", choices=("random", "speaker", "word", "actors"), default="random",
                   help="TESS's protocols, or actors: leave-one-actor-out on a many-speaker corpus folder "
                        "(--data-dir CREMA-D or RAVDESS; default SER_CREMA_DIR, else a synthetic one)")
    p.add_argument("--folds", type=int, help="--protocol actors: grouped K-fold over actors instead of leave-one-out")
    p.add_argument("--corpus", choices=("crema-d", "ravdess"),
                   help="--protocol actors: the folder's corpus (default: recognised from the file names)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed (default 0)")
    p.add_argument("--epochs", type=int, help="maximum epochs (default: 100 with early stopping; 2 in quick mode)")
    p.add_argument("--input", choices=("vector", "frames"), help="Keras models: the 187-d vector or frame sequences")
    p.add_argument("--spknorm", action="store_true",
                   help="per-speaker standardisation (uses the test speaker's unlabelled statistics)")
    p.add_argument("--pretrained", metavar="ID_OR_PATH", help="vision models: weights to start from")
    p.add_argument("--augment", action="store_true",
                   help="data augmentation (Keras models: frequency-warped copies of the training clips)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a training option of the model's family, e.g. --option encoder=FOLDER for whisper "
                        "(repeatable; numbers and true/false are converted)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and 1-2 epochs (for testing)")

    _add_grid_parser(sub)

    p = sub.add_parser("gradcam-reference", help="Grad-CAM deletion test with a randomised-weights control, "
                       "per model and seed; one JSON each plus a summary")
    p.add_argument("--artifacts", help="artifacts folder holding models/ (default artifacts/<dataset>); "
                   "missing models are trained there")
    p.add_argument("--data-dir", help="folder holding TESS (default: SER_TESS_DIR or data/TESS)")
    p.add_argument("--dataset", choices=("auto", "tess", "demo"), default="auto",
                   help="auto: TESS when found, else the demo corpus (default auto)")
    p.add_argument("--protocol", choices=("random", "speaker", "word"), default="random")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="split seeds (default 0 1 2)")
    p.add_argument("--models", nargs="+", default=["hybrid", "cnn", "hybrid-frames"],
                   help="models to explain (default hybrid cnn hybrid-frames)")
    p.add_argument("--out", required=True, help="folder for <model>__<protocol>__seed<k>.json and summary.json/.md")
    p.add_argument("--clips", type=int, default=300, help="test clips in the deletion test (default 300)")
    p.add_argument("--steps", type=int, default=20, help="deletion steps (default 20)")
    p.add_argument("--n-random", type=int, default=5, help="random orders (default 5)")
    p.add_argument("--epochs", type=int, help="maximum epochs when a model must be trained")
    p.add_argument("--quick", action="store_true", help="tiny sizes and 1-2 epochs (for testing)")

    p = sub.add_parser("pretrained-reference", help="chapter 10's reference run: a frozen pretrained encoder read "
                       "layer by layer on TESS and CREMA-D, every protocol; one JSON per read-out")
    p.add_argument("--tess", required=True, metavar="DIR", help="folder holding TESS")
    p.add_argument("--crema", required=True, metavar="DIR", help="folder holding CREMA-D (or a subset of its actors)")
    p.add_argument("--artifacts", required=True, metavar="DIR", help="artifacts folder (embeddings, checkpoint)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the results files")
    p.add_argument("--pretrained", metavar="ID_OR_PATH",
                   help="hub id or checkpoint folder (default: the offline Whisper tiny.en)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the learned head (default 0 1 2)")
    p.add_argument("--padding-30s", action="store_true", help="also embed both corpora with 30-s padding (slow: about 4 clips/s)")

    p = sub.add_parser("predict", help="classify one audio file with a saved model (7 probabilities)")
    p.add_argument("clip", help="audio file (WAV/FLAC/AIFF, any rate, mono or stereo)")
    p.add_argument("--model", metavar="PATH", help="saved .keras model, or a saved pretrained-encoder probe folder "
                   "(chapter 10); default: the newest hybrid under artifacts/")
    p.add_argument("--cam", metavar="OUT.png", help="also write a Grad-CAM figure of the decision")

    from .transfer import FEATURE_SETS

    p = sub.add_parser("transfer", help="train on corpus folders, test on another (transfer MODEL --train DIR... "
                       "--test DIR -o OUT); without MODEL, chapter 9's reference runs (--crema --tess)")
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="any model name (logreg, hybrid-frames, whisper-probe-layer2...): train on --train, score --test")
    p.add_argument("--train", nargs="+", type=Path, metavar="DIR", help="training corpus folder(s)")
    p.add_argument("--test", type=Path, metavar="DIR", help="test corpus folder")
    p.add_argument("--corpus", choices=("tess", "crema-d", "ravdess"),
                   help="the corpus of every folder (default: recognised from the file names)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a training option of the model's family (as in train)")
    p.add_argument("--crema", type=Path, help="chapter 9: CREMA-D folder (e.g. a 12-actor subset)")
    p.add_argument("--tess", type=Path, help="chapter 9: TESS folder")
    p.add_argument("--artifacts", help="artifacts folder (feature caches; default artifacts/cross-corpus with MODEL)")
    p.add_argument("-o", "--out", help="write the results records into this folder")
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--feature-sets", nargs="*", default=["vector"], choices=FEATURE_SETS,
                   help="feature views for the logistic regressions (default: vector; the option alone: none, "
                        "e.g. to train only --models)")
    p.add_argument("--models", nargs="*", default=[],
                   help="Keras models to train leave-actors-out on CREMA-D (cnn hybrid)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds (of the Keras runs, or of MODEL)")
    p.add_argument("--folds", type=int, default=None, help="grouped K-fold over actors instead of leave-one-actor-out")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="tiny features and 2 epochs (tests only)")
    p.add_argument("--prosody", action="store_true",
                   help="instead: compare the 187 values, prosody and both (TESS speaker, CREMA-D actor-loo)")

    for extend in PARSER_EXTENSIONS:
        extend(sub)
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
        # A Ctrl-C can reach a chapter's kernel too: nbclient's cell task then ends with
        # DeadKernelError, which asyncio logs with a traceback when the loop is collected at exit.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        # Honest about what survives: cached features, splits and finished chapters are reused;
        # ``train`` trains every seed it is given again (it says which finished, see _train).
        print("interrupted: features, splits and finished chapters are cached and reused by the next run; "
              "the step that was running starts over", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
