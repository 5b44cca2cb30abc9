"""Chapter 7's saved statistics (ser_utils.evaluation): UAR, paired predictions, McNemar, the paired bootstrap."""

import numpy as np
import pytest

from ser_utils import evaluation
from ser_utils.course import comparison
from ser_utils.evaluation import FoldResult, make_record

RNG = np.random.default_rng(0)
TRUTH = RNG.integers(0, 7, 300)


def _record(model: str, pred, protocol: str = "random", seed: int = 0) -> dict:
    fold = FoldResult(fold="f0", test_ids=[f"c{i}" for i in range(len(pred))], y_true=TRUTH.tolist(),
                      y_pred=list(map(int, pred)), n_train=10, n_val=2)
    return make_record(model, protocol, seed, [fold], dataset={"name": "demo", "synthetic": True},
                       wall_time=0.1)


def _noisy(p_right: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random(len(TRUTH)) < p_right, TRUTH, (TRUTH + 1 + rng.integers(0, 6, len(TRUTH))) % 7)


def test_numpy_uar_equals_scikit_learn_including_absent_classes():
    for pred in (_noisy(0.7, 1), _noisy(0.2, 2)):
        assert evaluation.uar(TRUTH, pred) == pytest.approx(evaluation.compute_metrics(TRUTH, pred)["uar"])
    y, p = np.array([0, 0, 1]), np.array([0, 1, 1])  # classes 2-6 absent: averaged over the two present
    assert evaluation.uar(y, p) == pytest.approx(evaluation.compute_metrics(y, p, classes=[0, 1])["uar"]) == 0.75


def test_uar_of_a_six_emotion_corpus_is_over_its_six_classes():
    """CREMA-D has no pleasant surprise: a seventh class with recall 0 would scale every difference by 6/7."""
    y = np.array([0, 1, 2, 3, 4, 6] * 10)
    p = y.copy()
    p[:6] = np.roll(p[:6], 1)
    assert evaluation.uar(y, p) == pytest.approx(evaluation.compute_metrics(y, p, classes=[0, 1, 2, 3, 4, 6])["uar"])
    assert evaluation.uar(y, p) == pytest.approx(0.9)


def test_paired_predictions_match_clips_and_refuse_other_seeds():
    a, b = _record("a", _noisy(0.9, 1)), _record("b", _noisy(0.6, 2))
    y, pa, pb = evaluation.paired_predictions(a, b)
    assert len(y) == len(pa) == len(pb) == 300 and (pa == y).mean() > (pb == y).mean()
    with pytest.raises(ValueError, match="same protocol and seed"):
        evaluation.paired_predictions(a, _record("b", _noisy(0.6, 2), seed=1))


def test_report_mcnemar_is_the_saved_one():
    assert comparison.mcnemar is evaluation.mcnemar
    res = evaluation.mcnemar(_record("a", TRUTH), _record("b", TRUTH))
    assert res.only_a == res.only_b == 0 and res.p_value == 1.0


def test_bootstrap_interval_covers_zero_for_equal_models_and_excludes_it_for_a_clear_gap():
    same = evaluation.bootstrap_difference(TRUTH, _noisy(0.8, 1), _noisy(0.8, 1), n_boot=200)
    assert same == (0.0, 0.0, 0.0)
    diff, low, high = evaluation.bootstrap_difference(TRUTH, _noisy(0.95, 1), _noisy(0.5, 2), n_boot=300)
    assert 0 < low < diff < high
    a = _noisy(0.8, 3)
    b = a.copy()
    b[:6] = TRUTH[:6]  # B fixes a handful of A's errors: a gap too small for 300 clips to show
    close, low, high = evaluation.bootstrap_difference(TRUTH, a, b, n_boot=300)
    assert close < 0 and low < close and high >= 0
    # paired resampling: the same seed gives the same interval
    assert evaluation.bootstrap_difference(TRUTH, _noisy(0.8, 3), _noisy(0.7, 4), n_boot=100, seed=5) == \
        evaluation.bootstrap_difference(TRUTH, _noisy(0.8, 3), _noisy(0.7, 4), n_boot=100, seed=5)


def test_git_commit_is_read_once_per_process(monkeypatch):
    """A long run records the commit of the code it loaded, not one checked out while it ran."""
    from ser_utils import evaluation

    reads = iter(["aaa111", "bbb222-dirty"])
    monkeypatch.setattr(evaluation, "_read_git_commit", lambda: next(reads))
    monkeypatch.setattr(evaluation, "_PROCESS_COMMIT", evaluation._UNREAD)
    assert evaluation.git_commit() == "aaa111"
    assert evaluation.git_commit() == "aaa111"  # HEAD moved since: still the commit first read
