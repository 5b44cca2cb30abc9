"""Numbers the chapters' prose quotes are the numbers in the files they name.

Prose cannot be generated everywhere (a sentence that reads a comparison is written by hand), so
each quoted number is listed here with where it comes from: a reference results file
(``results/reference/``) or the published run's timings (``published/run.json``). When a file is
remade, this test names the sentence to rewrite. Whitespace is normalised, so line breaks in the
prose do not matter.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ser_utils.evaluation import dataset_key, load_records

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def _prose(chapter: str) -> str:
    nb = json.loads((BOOK / f"{chapter}.ipynb").read_text())
    return re.sub(r"\s+", " ", "\n".join("".join(c["source"]) for c in nb["cells"]))


class Reference:
    """The committed reference runs on all 2800 TESS clips, formatted as the prose writes them."""

    def __init__(self, folder: Path):
        self.records = [r for r in load_records(folder) if dataset_key(r) == ("tess", False, 2800)]

    def _values(self, model: str, protocol: str, metric: str) -> list[float]:
        vals = [100 * r["metrics"][metric] for r in sorted(self.records, key=lambda r: r["seed"])
                if r["model"] == model and r["protocol"] == protocol]
        assert vals, f"no 2800-clip reference run of {model} / {protocol}"
        return vals

    @staticmethod
    def _num(x: float) -> str:
        return "100" if round(x, 1) == 100 else f"{x:.1f}"

    def _fmt(self, model: str, protocol: str, metric: str = "uar") -> list[str]:
        """Each seed's value in seed order, e.g. ``['57.1', '45.6', '48.4']``."""
        return [f"{v:.1f}" for v in self._values(model, protocol, metric)]

    def one(self, model: str, protocol: str, metric: str = "uar") -> str:
        """A deterministic model's single run, e.g. ``54.8``."""
        (v,) = self._values(model, protocol, metric)
        return f"{v:.1f}"

    def mean_sd(self, model: str, protocol: str, metric: str = "uar") -> str:
        """Mean ± sd over seeds, e.g. ``63.1 ± 1.0``."""
        v = self._values(model, protocol, metric)
        return f"{np.mean(v):.1f} ± {np.std(v, ddof=1):.1f}"

    def span(self, model: str, protocol: str, metric: str = "uar") -> str:
        """Lowest-highest seed, e.g. ``99.6-100``."""
        v = self._values(model, protocol, metric)
        return f"{self._num(min(v))}-{self._num(max(v))}"

    def experiment(self, name: str) -> Reference:
        """The side measurement ``results/experiments/<name>/`` (same formatting), e.g. ``min_delta_1e-3``."""
        return Reference(ROOT / "results" / "experiments" / name)

    def seed(self, model: str, protocol: str, seed: int, metric: str = "uar") -> str:
        (v,) = [100 * r["metrics"][metric] for r in self.records
                if r["model"] == model and r["protocol"] == protocol and r["seed"] == seed]
        return f"{v:.1f}"


@pytest.fixture(scope="module")
def ref() -> Reference:
    return Reference(ROOT / "results" / "reference")


#: chapter -> sentences (functions of the reference runs) its prose must contain.
CLAIMS = {
    "03_cnn": [
        lambda q: f"put the CNN at {q.span('cnn', 'random', 'accuracy')} % over seeds 0-2 and the logistic "
                  f"regression at {q.one('logreg', 'random', 'accuracy')} %",
        lambda q: f"CNN {q.span('cnn', 'speaker')} % UAR over seeds 0-2, logistic regression "
                  f"{q.one('logreg', 'speaker')} %",
        lambda q: f"the CNN scores {q.span('cnn', 'word')} % UAR",
    ],
    "04_lstm": [
        lambda q: f"it scored {q.span('lstm', 'random', 'accuracy')} % over seeds 0-2, the logistic regression "
                  f"{q.one('logreg', 'random', 'accuracy')} %",
        lambda q: f"`lstm-frames` scores {q.mean_sd('lstm-frames', 'speaker')} % UAR and the vector LSTM "
                  f"{q.mean_sd('lstm', 'speaker')} %",
        lambda q: f"regression ({q.one('logreg', 'speaker')} %, deterministic) across speakers",
    ],
    "05_hybrid": [
        lambda q: f"the hybrid scored {q.span('hybrid', 'random', 'accuracy')} % and the logistic regression "
                  f"{q.one('logreg', 'random', 'accuracy')} %; on the speaker protocol the hybrid scored "
                  f"{q.span('hybrid', 'speaker')} % UAR and the logistic regression {q.one('logreg', 'speaker')} %; "
                  f"on the word protocol {q.span('hybrid', 'word')} %",
        lambda q: f"`hybrid` {q.mean_sd('hybrid', 'speaker')} % and `hybrid-frames` "
                  f"{q.mean_sd('hybrid-frames', 'speaker')} % UAR",
        lambda q: f"`hybrid-frames-aug` {q.mean_sd('hybrid-frames-aug', 'speaker')} % is beaten by its matched "
                  f"ablation `hybrid-frames` by the rule",
        lambda q: f"`hybrid-frames-spknorm-aug` {q.mean_sd('hybrid-frames-spknorm-aug', 'speaker')} % against "
                  f"`hybrid-frames-spknorm` {q.mean_sd('hybrid-frames-spknorm', 'speaker')} %",
        lambda q: f"`hybrid-spknorm` {q.mean_sd('hybrid-spknorm', 'speaker')} % and `hybrid-frames-spknorm` "
                  f"{q.mean_sd('hybrid-frames-spknorm', 'speaker')} %; both beat `logreg-spknorm` "
                  f"({q.one('logreg-spknorm', 'speaker')} %)",
        lambda q: f"`hybrid-frames` scored {q.experiment('min_delta_1e-3').mean_sd('hybrid-frames', 'speaker')} % UAR "
                  f"over seeds 0-2 against {q.mean_sd('hybrid-frames', 'speaker')} % with the default rule, and the "
                  f"vector hybrid (stopped at epochs 22-37) {q.experiment('min_delta_1e-3').mean_sd('hybrid', 'speaker')} "
                  f"% against {q.mean_sd('hybrid', 'speaker')} %",
    ],
    "06_transformers": [
        lambda q: f"ViT trained from scratch reached {q.one('vit', 'random', 'accuracy')} % on the random split "
                  f"without augmentation (seed 0; the paper: 98.0 %) and BEiT {q.one('beit', 'random', 'accuracy')} %",
        lambda q: f"{q.mean_sd('vit', 'speaker')} % UAR (ViT: {', '.join(q._fmt('vit', 'speaker'))}) and "
                  f"{q.mean_sd('beit', 'speaker')} % (BEiT: {', '.join(q._fmt('beit', 'speaker'))})",
        lambda q: f"against the logistic regression's {q.one('logreg', 'speaker')} %",
        lambda q: f"`vit-specaug` {q.mean_sd('vit-specaug', 'random', 'accuracy')} % and `beit-specaug` "
                  f"{q.mean_sd('beit-specaug', 'random', 'accuracy')} % over seeds 0-2",
        lambda q: f"(ViT {q.mean_sd('vit', 'speaker')} and BEiT {q.mean_sd('beit', 'speaker')} % UAR over three seeds, "
                  f"against {q.one('logreg', 'speaker')} %)",
    ],
    "07_comparison": [
        lambda q: f"`hybrid-frames-aug` {q.mean_sd('hybrid-frames-aug', 'speaker')} % is beaten by its matched "
                  f"ablation `hybrid-frames` by the rule",
        lambda q: f"`hybrid-frames-spknorm-aug` ({q.mean_sd('hybrid-frames-spknorm-aug', 'speaker')} %) is not told "
                  f"apart from `hybrid-frames-spknorm`",
        lambda q: f"reached {q.mean_sd('vit', 'speaker')} % (ViT) and {q.mean_sd('beit', 'speaker')} % (BEiT)",
        lambda q: f"the hybrid on the vector reached {q.mean_sd('hybrid', 'speaker')} %, on frame sequences "
                  f"{q.mean_sd('hybrid-frames', 'speaker')} %",
    ],
}


#: (A, B, verdict) the prose states for the speaker protocol: "a" A beats B, "b" B beats A, "tie" not told apart.
VERDICTS = [
    ("hybrid-frames-aug", "hybrid-frames", "b"),  # ch5 5.7, ch7 7.10, results/README: augmentation hurts
    ("hybrid-frames-aug", "hybrid", "b"),
    ("hybrid-frames-aug", "logreg", "a"),
    ("hybrid-frames-spknorm-aug", "hybrid-frames-spknorm", "tie"),
]


@pytest.mark.parametrize("a, b, verdict", VERDICTS)
def test_prose_verdicts_follow_the_rule(ref, a, b, verdict):
    """The book's rule (``seeded_comparison``) on the 2800-clip reference runs gives the verdict the prose states."""
    from ser_utils.evaluation import seeded_comparison

    runs = {m: [r for r in ref.records if r["model"] == m and r["protocol"] == "speaker"] for m in (a, b)}
    assert seeded_comparison(runs[a], runs[b]).verdict == verdict, (a, b)


@pytest.mark.parametrize("chapter", sorted(CLAIMS))
def test_prose_quotes_the_reference_runs(chapter, ref):
    prose = _prose(chapter)
    missing = [c(ref) for c in CLAIMS[chapter] if re.sub(r"\s+", " ", c(ref)) not in prose]
    assert not missing, f"book/{chapter}.ipynb no longer says what results/reference/ holds: {missing}"


def test_objectives_boxes_quote_the_published_run():
    """"The chapter runs in N s on real TESS, M s of it training X" equals ``published/run.json``."""
    run = json.loads((ROOT / "published" / "run.json").read_text())
    for ch in run["chapters"]:
        prose = _prose(ch["chapter"])
        found = re.search(r"The chapter runs in (\d+) s on real TESS[^,(]*(?:, (\d+) s of it training)?", prose)
        assert found, f"{ch['chapter']}: no 'The chapter runs in N s on real TESS' sentence"
        assert int(found[1]) == round(ch["wall_s"]), (ch["chapter"], found[0], ch["wall_s"])
        if found[2]:
            assert int(found[2]) == round(max(ch["models"].values())), (ch["chapter"], found[0], ch["models"])
