"""The book's one inference rule (``evaluation.seeded_comparison``): paired bootstrap per seed plus the seed spread."""

from __future__ import annotations

import numpy as np
import pytest

from ser_utils.evaluation import FoldResult, make_record, seeded_comparison


def _record(model: str, seed: int, accuracy: float, *, protocol: str = "speaker", n: int = 700,
            ids_offset: int = 0) -> dict:
    """A record whose test clips (shared across seeds) are right with probability ``accuracy``."""
    rng = np.random.default_rng([seed, int(1000 * accuracy), len(model)])
    y = np.arange(n) % 7
    pred = np.where(rng.random(n) < accuracy, y, (y + 1) % 7)
    ids = [f"c{i + ids_offset}" for i in range(n)]
    fold = FoldResult("A->B", ids, y.tolist(), pred.tolist(), 100, 10)
    return make_record(model, protocol, seed, [fold], dataset={"name": "toy", "n_clips": n}, wall_time=0.0)


def test_a_clear_gap_on_every_seed_beats_and_a_small_one_ties():
    strong = [_record("big", s, 0.80) for s in range(3)]
    weak = [_record("small", s, 0.60) for s in range(3)]
    close = [_record("close", s, 0.61) for s in range(3)]
    res = seeded_comparison(strong, weak)
    assert res.verdict == "a" and res.seeds == [0, 1, 2] and all(lo > 0 for _, lo, _ in res.per_seed)
    assert "big beats small" in res.sentence() and "3 seed(s)" in res.sentence()
    assert seeded_comparison(weak, strong).verdict == "b"
    assert seeded_comparison(weak, close).verdict == "tie"  # one point on 700 clips: inside the intervals


def test_seed_spread_alone_can_make_a_tie():
    # Every seed's interval excludes 0, but the seeds scatter more than the mean gap: not told apart.
    a = [_record("a", 0, 0.90), _record("a", 1, 0.62), _record("a", 2, 0.88)]
    b = [_record("b", s, 0.50) for s in range(3)]
    res = seeded_comparison(a, b)
    assert all(lo > 0 for _, lo, _ in res.per_seed) and res.verdict == "tie"


def test_a_single_run_pairs_with_every_seed_only_on_the_same_test_clips():
    model = [_record("m", s, 0.80) for s in range(3)]
    logreg = [_record("logreg", 0, 0.60)]
    assert seeded_comparison(model, logreg).verdict == "a"
    moved = [_record("logreg", 0, 0.60, ids_offset=350)]  # half of its test clips are others
    with pytest.raises(ValueError, match="not the same test set"):
        seeded_comparison(model, moved)
    with pytest.raises(ValueError, match="one protocol"):
        seeded_comparison(model, [_record("x", 0, 0.5, protocol="random")])


def test_one_seed_of_a_trained_model_is_never_a_finding():
    """A trained model run once has no seed sd: a clear interval alone does not rank it (a deterministic one may)."""
    one = seeded_comparison([_record("hybrid", 0, 0.80)], [_record("cnn", 0, 0.60)])
    assert all(lo > 0 for _, lo, _ in one.per_seed) and one.verdict == "tie"
    assert one.one_seed == ("hybrid", "cnn") and "unmeasured (one seed)" in one.sentence()
    against_logreg = seeded_comparison([_record("hybrid", 0, 0.80)], [_record("logreg", 0, 0.60)])
    assert against_logreg.verdict == "tie" and against_logreg.one_seed == ("hybrid",)
    deterministic = seeded_comparison([_record("logreg-spknorm", 0, 0.80)], [_record("logreg", 0, 0.60)])
    assert deterministic.verdict == "a" and deterministic.one_seed == ()


def test_a_single_runs_interval_covers_its_uar_and_narrows_with_more_clips():
    """uar_interval: the record's own UAR inside a test-set interval that shrinks as the test set grows."""
    from ser_utils.evaluation import uar_interval

    widths = []
    for n in (70, 700):
        rec = _record("logreg", 0, 0.6, n=n)
        u, lo, hi = uar_interval(rec, n_boot=500)
        assert u == pytest.approx(rec["metrics"]["uar"]) and lo < u < hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2
