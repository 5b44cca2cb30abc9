"""The Grad-CAM reference run: explain saved models over seeds, with the deletion test and its control.

:func:`ensure_model` loads (or trains, through
:func:`~ser_utils.experiments.run_grid`) a workspace's saved Keras model with
its standardised test clips; :func:`explain_reference` computes its maps, the
deletion test and the randomised-weights control; :func:`gradcam_reference`
writes one JSON per model and seed plus ``summary.json``/``summary.md``
(``python -m ser_utils gradcam-reference``, files in ``results/reference/gradcam/``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .deletion import deletion_test, map_similarity, randomised_copy, stratified_sample
from .features import FEATURE_GROUPS
from .gradcam import grad_cam, group_importance
from .labels import EMOTIONS
from .workspace import Workspace


@dataclass
class ExplainedModel:
    """A trained Keras model with what Grad-CAM needs: its sidecar, fold and standardised test inputs."""

    name: str
    model: object = field(repr=False)
    sidecar: dict = field(repr=False)
    path: Path
    split: object = field(repr=False)
    record: dict | None = field(default=None, repr=False)
    trained_now: bool = False
    x_test: np.ndarray | None = field(default=None, repr=False)
    y_test: np.ndarray | None = field(default=None, repr=False)
    test_ids: np.ndarray | None = field(default=None, repr=False)
    raw_test: np.ndarray | None = field(default=None, repr=False)  # un-standardised features of the test clips

    @property
    def input_kind(self) -> str:
        return self.sidecar["input"]


def ensure_model(ws: Workspace, model: str, protocol: str, seed: int, *,
                 options: dict | None = None, fold: int = 0) -> ExplainedModel:
    """Load the saved ``model`` of ``fold`` for (protocol, seed) from ``<artifacts>/models``, training it if needed.

    Trains through :func:`ser_utils.experiments.run_experiment` (which also
    writes the results file) when the model or its results file is missing, or
    when the saved model was trained on other features. Returns the model with
    its fold's test clips standardised as in training (train-only statistics).
    """
    from .experiments import run_grid, saved_records
    from .registry import ModelSpec
    from .keras_io import bundle_problem, load_model_bundle, model_path, prepare_inputs

    name = ModelSpec.parse(model).with_options(options).name
    split = ws.splits(protocol, seed)[fold]
    path = model_path(ws.models_dir, name, split, seed)
    # Reused only when whole (not cut short by a kill) and trained on these features of this data.
    problem = bundle_problem(path, feature_key=ws.feature_config.key(), data_key=ws.features.data_key)
    # The canonical variant name carries the options, so the results file and the model file agree.
    # A results file that fails its check is left out by saved_records (with a warning) and trained again.
    saved = saved_records(ws, [name], [protocol], [seed]) if problem is None else ()
    trained_now = not saved
    record = run_grid(ws, [name], [protocol], [seed], done=saved, progress=False)[0]
    net, sidecar = load_model_bundle(path)
    fs = ws.features
    idx = fs.index(split.test)
    raw = fs.vectors[idx] if sidecar["input"] == "vector" else fs.frames[idx]
    return ExplainedModel(name=name, model=net, sidecar=sidecar, path=path, split=split, record=record,
                          trained_now=trained_now, x_test=prepare_inputs(raw, sidecar), y_test=fs.labels[idx],
                          test_ids=fs.ids[idx], raw_test=raw)


# --- the reference run: Grad-CAM over several seeds, with the randomised-weights control -------------


#: The models of the reference run (as in chapter 8): results name -> (model family, options).
REFERENCE_MODELS = {"hybrid": ("hybrid", {"input": "vector"}), "cnn": ("cnn", {"input": "vector"}),
                    "hybrid-frames": ("hybrid", {"input": "frames"})}
REFERENCE_SCHEMA = 1
TIME_BINS = 10  # a frame model's per-emotion map is summarised as its mean over this many equal stretches of time


def _spread(values) -> dict:
    """Mean, sd (ddof 1; 0 for one value) and n of the finite ``values``."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if not len(v):
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": round(float(v.mean()), 4), "sd": round(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 4),
            "n": int(len(v))}


def _group_shares(cams: np.ndarray) -> dict:
    return {g: _spread(v) for g, v in group_importance(cams, share=True).items()}


def _per_emotion(cams: np.ndarray, labels: np.ndarray, input_kind: str) -> dict:
    """Per true emotion: clip count and, for vector maps, the group shares; for frame maps, the mean time profile."""
    out = {}
    for c, emotion in enumerate(EMOTIONS):
        rows = cams[labels == c]
        if not len(rows):
            continue
        if input_kind == "vector":
            summary = {g: round(float(v.mean()), 4) for g, v in group_importance(rows, share=True).items()}
            out[emotion] = {"n": int(len(rows)), "group_share": summary}
        else:
            bins = np.array_split(rows.mean(axis=0), TIME_BINS)
            out[emotion] = {"n": int(len(rows)), "time_profile": [round(float(b.mean()), 4) for b in bins]}
    return out


@dataclass(frozen=True)
class ReferenceSettings:
    """How a reference run explains each model: the protocol it was trained on and the deletion test's sizes."""

    protocol: str = "random"
    n_clips: int = 300  # test clips in the deletion test (a stratified sample)
    steps: int = 20  # deletion steps
    n_random: int = 5  # random orders


def explain_reference(ws: Workspace, name: str, seed: int, settings: ReferenceSettings = ReferenceSettings()) -> dict:
    """Grad-CAM of one saved model (trained when missing) with the deletion test and the randomised-weights control.

    Maps of the true class for every test clip, of the trained model and of :func:`randomised_copy` (seeded
    with ``seed``); the deletion test on the trained model over a stratified sample of ``settings.n_clips`` test clips,
    ordering inputs by the trained map, by random orders and by the randomised model's map; the Spearman
    similarity of the two maps per clip; group shares (vector models) and per-emotion summaries.
    Models missing from the workspace are trained with its run mode (epoch cap). Returns the record written
    by :func:`write_reference`.
    """
    import time

    from .evaluation import dataset_info, git_commit, library_versions

    t0 = time.time()
    protocol, n_clips, steps, n_random = settings.protocol, settings.n_clips, settings.steps, settings.n_random
    family, options = REFERENCE_MODELS[name]
    em = ensure_model(ws, family, protocol, seed, options=options)
    cams, probs = grad_cam(em.model, em.x_test, class_idx=em.y_test)
    shuffled = randomised_copy(em.model, seed)
    rcams, rprobs = grad_cam(shuffled, em.x_test, class_idx=em.y_test)
    pick = stratified_sample(em.y_test, min(len(em.y_test), n_clips), seed)
    res = deletion_test(em.model, em.x_test[pick], em.y_test[pick], cams[pick], control_cams=rcams[pick],
                        steps=steps, n_random=n_random, seed=seed)
    curves = {"fractions": res.fractions, "cam": res.cam, "random": res.random, "random_sd": res.random_sd,
              "control": res.control}
    rec = {
        "schema": REFERENCE_SCHEMA, "kind": "gradcam-reference", "model": em.name, "protocol": protocol,
        "seed": int(seed), "input": em.input_kind,
        "dataset": dataset_info(ws.data, n_clips=len(ws.features), quick=ws.mode.quick, n_speakers=len(ws.summary.counts)),
        "artifacts_dir": str(ws.artifacts_dir), "model_file": em.path.name, "trained_now": em.trained_now, "n_test": int(len(em.y_test)),
        "test_accuracy": round(float((probs.argmax(axis=1) == em.y_test).mean()), 4), "explained_class": "true",
        "deletion": {**res.summary(), "steps": steps, "n_random": n_random, "baseline": 0.0,
                     "curves": {k: [round(float(v), 4) for v in c] for k, c in curves.items()}},
        "control": {"method": "randomised weights: keras.models.clone_model, every weight re-drawn from its "
                              "initialiser (Adebayo et al. 2018)", "weights_seed": int(seed),
                    "randomised_test_accuracy": round(float((rprobs.argmax(axis=1) == em.y_test).mean()), 4),
                    "spearman_trained_vs_randomised": _spread(map_similarity(cams, rcams))},
        "groups": None, "per_emotion": _per_emotion(cams, em.y_test, em.input_kind),
    }
    if em.input_kind == "vector":
        rec["groups"] = {"trained": _group_shares(cams), "randomised": _group_shares(rcams)}
    rec |= {"wall_time_s": round(time.time() - t0, 1), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": library_versions(), "git_commit": git_commit()}
    return rec


def reference_path(out_dir: str | Path, model: str, protocol: str, seed: int) -> Path:
    """``<out_dir>/<model>__<protocol>__seed<k>.json``."""
    return Path(out_dir) / f"{model}__{protocol}__seed{int(seed)}.json"


def write_reference(rec: dict, out_dir: str | Path) -> Path:
    """Write one record of :func:`explain_reference` atomically; return its path."""
    from .outputs import atomic_write

    path = reference_path(out_dir, rec["model"], rec["protocol"], rec["seed"])
    with atomic_write(path, what="Grad-CAM reference record") as tmp:
        tmp.write_text(json.dumps(rec, indent=1) + "\n", encoding="utf-8")
    return path


def load_references(out_dir: str | Path) -> list[dict]:
    """Every record of a reference folder (``*__*__seed*.json`` of kind ``gradcam-reference``), sorted."""
    recs = []
    for path in sorted(Path(out_dir).glob("*__*__seed*.json")):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and rec.get("kind") == "gradcam-reference":
            recs.append(rec)
    return recs


def _counts(values) -> dict:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def reference_summary(records: list[dict]) -> list[dict]:
    """One row per (model, protocol) across seeds: mean and sd of the deletion numbers, verdict counts, controls."""
    rows = []
    keys = sorted({(r["model"], r["protocol"]) for r in records},
                  key=lambda k: (list(REFERENCE_MODELS).index(k[0]) if k[0] in REFERENCE_MODELS else 99, k))
    for model, protocol in keys:
        rs = sorted((r for r in records if (r["model"], r["protocol"]) == (model, protocol)), key=lambda r: r["seed"])
        d = [r["deletion"] for r in rs]
        row = {"model": model, "protocol": protocol, "input": rs[0]["input"], "seeds": [r["seed"] for r in rs],
               "dataset": rs[0]["dataset"], "test_accuracy": _spread(r["test_accuracy"] for r in rs),
               "n_samples": [x["n_samples"] for x in d]}
        for key in ("area_between", "relative_gain", "control_area_between", "control_relative_gain",
                    "cam_vs_control_area_between", "cam_vs_control_relative_gain"):
            row[key] = _spread(x.get(key) for x in d)
        for key in ("verdict", "control_verdict", "cam_vs_control_verdict"):
            row[key + "s"] = _counts(x.get(key) for x in d)
        row["spearman"] = _spread(r["control"]["spearman_trained_vs_randomised"]["mean"] for r in rs)
        if rs[0].get("groups"):
            row["group_share"] = {g: _spread(r["groups"]["trained"][g]["mean"] for r in rs)
                                  for g in FEATURE_GROUPS}
        rows.append(row)
    return rows


def summary_markdown(rows: list[dict]) -> str:
    """The summary rows as a Markdown table (mean +- sd over seeds)."""
    def pm(s: dict, digits: int = 3) -> str:
        return "n/a" if s["mean"] is None else f"{s['mean']:+.{digits}f} ± {s['sd']:.{digits}f}"

    def counts(c: dict) -> str:
        return ", ".join(f"{v}× {k}" for k, v in c.items())

    lines = ["| model | seeds | area between (random − Grad-CAM) | relative gain | verdicts | randomised-model map "
             "vs random | Grad-CAM vs randomised-model map | Spearman (trained, randomised) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {len(r['seeds'])} | {pm(r['area_between'])} | {pm(r['relative_gain'])} | "
                     f"{counts(r['verdicts'])} | {pm(r['control_area_between'])} | "
                     f"{pm(r['cam_vs_control_area_between'])} ({counts(r['cam_vs_control_verdicts'])}) | "
                     f"{pm(r['spearman'], 2)} |")
    return "\n".join(lines) + "\n"


def gradcam_reference(ws: Workspace, out_dir: str | Path, seeds, models=tuple(REFERENCE_MODELS),
                      settings: ReferenceSettings = ReferenceSettings(), *, progress: bool = True) -> list[Path]:
    """Run :func:`explain_reference` for every model and seed, write one JSON each plus ``summary.json``/``.md``."""
    from .outputs import atomic_write

    paths, records = [], []
    for seed in seeds:
        for name in models:
            rec = explain_reference(ws, name, seed, settings)
            paths.append(write_reference(rec, out_dir))
            records.append(rec)
            if progress:
                d = rec["deletion"]
                print(f"{name:14s} seed {seed}: area between {d['area_between']:+.4f} [{d['ci95_low']:+.4f}, "
                      f"{d['ci95_high']:+.4f}] gain {d['relative_gain']:+.3f} {d['verdict']}; randomised map "
                      f"{d['control_area_between']:+.4f} ({d['control_verdict']}); Grad-CAM vs randomised "
                      f"{d['cam_vs_control_area_between']:+.4f} ({d['cam_vs_control_verdict']}); "
                      f"{rec['wall_time_s']:.0f} s", flush=True)
    rows = reference_summary(load_references(out_dir))
    for suffix, text in ((".json", json.dumps(rows, indent=1) + "\n"), (".md", summary_markdown(rows))):
        with atomic_write(Path(out_dir) / f"summary{suffix}", what="Grad-CAM reference summary") as tmp:
            tmp.write_text(text, encoding="utf-8")
        paths.append(Path(out_dir) / f"summary{suffix}")
    return paths
