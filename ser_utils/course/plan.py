"""What a chapter trains and what it quotes: the run planning of the book.

A model chapter trains what its own argument needs, once, and quotes the
expensive runs it discusses from the committed reference files
(ARCHITECTURE.md, "what the default run trains"):

- :func:`default_protocols`: the protocols a chapter trains by default;
- :func:`chapter_runs`: a chapter's deep models and baselines on those protocols
  (through :func:`ser_utils.experiments.run_grid`, the one runner);
- :func:`reference_records`: the committed reference runs quoted instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Coverage:
    """What a model chapter trains beyond its own run: its optional ``protocols``, ``seeds`` and ``full`` parameters.

    None means the chapter's default (:func:`default_protocols`; seed 0).
    ``full`` trains the expensive runs the chapter would otherwise quote from
    the committed reference runs.
    """

    protocols: Sequence[str] | None = None
    seeds: Sequence[int] | None = None
    full: bool = False


def default_protocols(ch, protocols: Sequence[str] | None = None, full: bool = False, *,
                      deep: bool = False) -> list[str]:
    """The protocols a model chapter trains: the given list, else random + speaker (+ word when ``full``).

    The word protocol scores like the random split on TESS (known voices), so by default the
    chapters quote its committed reference runs (:func:`reference_records`) instead of training it.
    ``deep=True`` asks for an expensive model's protocols: on real data without ``full`` only
    the chapter's own protocol (trained in its literate cells), the others quoted from the
    reference runs (chapters 3-5: 75-170 s per speaker run on 2 cores); in quick mode
    random + speaker as usual.
    """
    if protocols:
        return list(protocols)
    if full and not ch.mode.quick:
        return ["random", "speaker", "word"]
    return [ch.protocol] if deep and not ch.mode.quick else ["random", "speaker"]


def chapter_runs(ch, models: Sequence[str], coverage: Coverage = Coverage(), *,
                 baselines: Sequence[str] = ("logreg",), done: Sequence[dict] = ()) -> list[dict]:
    """A model chapter's comparison: its deep ``models`` and the ``baselines``, each on its default protocols.

    The baselines (seconds) run on :func:`default_protocols`; the deep models on
    ``default_protocols(..., deep=True)``: on real data without ``full``, only the chapter's
    own protocol, already trained in its cells and passed in ``done``; the chapter quotes the
    rest from the reference runs. Records: deep models first, then baselines.
    """
    from ..experiments import run_grid

    protocols, full = coverage.protocols, coverage.full
    seeds = (0,) if coverage.seeds is None else coverage.seeds
    deep = run_grid(ch, models, default_protocols(ch, protocols, full, deep=True), seeds, done=done, progress=False)
    return deep + run_grid(ch, baselines, default_protocols(ch, protocols, full), seeds, progress=False)


def reference_records(models: Sequence[str], protocols: Sequence[str], *, corpus: str = "") -> list[dict]:
    """The committed reference runs (``results/reference/<corpus>``) of these models and protocols.

    What a chapter's default run quotes instead of training the expensive
    variants itself (``full=True`` trains them); prints where they come from.
    """
    from ..evaluation import dataset_key, load_records
    from ..run_context import project_root

    from .comparison import dataset_label, largest_dataset

    folder = project_root() / "results" / "reference" / corpus
    found = [r for r in load_records(folder) if r["model"] in set(models) and r["protocol"] in set(protocols)]
    if not found:
        print(f"No reference runs of {', '.join(models)} in {folder}: set full = True to train them here.")
        return found
    # One dataset only: runs on different data (TESS's 1400-clip half, all 2800 clips) are never pooled.
    # The largest full-mode dataset is quoted; the others are named as left out.
    records = largest_dataset(found)
    groups: dict[tuple, list[dict]] = {}
    for r in found:
        if dataset_key(r) != dataset_key(records[0]):
            groups.setdefault(dataset_key(r), []).append(r)
    commits = sorted({(r.get("git_commit") or "unknown")[:10] for r in records})
    dates = sorted({(r.get("created") or "")[:10] for r in records})
    print(f"Quoted, not trained here: {len(records)} committed reference runs from results/reference/{corpus} "
          f"({dataset_label(records)}; seeds "
          f"{sorted({r['seed'] for r in records})}; commit {', '.join(commits)}; {', '.join(dates)}).")
    for rest in groups.values():
        runs = ", ".join(f"{r['model']} {r['protocol']} seed {r['seed']}" for r in rest)
        print(f"Left out, not pooled with those: {len(rest)} run(s) on {dataset_label(rest)} ({runs}).")
    return records
