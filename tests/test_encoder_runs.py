"""Chapter 10's protocols: a layer chosen on CREMA-D is only used where no CREMA-D clip is tested."""

import numpy as np
import pandas as pd

from ser_utils.encoder_runs import TESS_TESTED, Protocol, run_readouts
from ser_utils.encoders import EmbeddingSet
from ser_utils.labels import EMOTIONS
from ser_utils.splits import Split


def _emb() -> EmbeddingSet:
    rng = np.random.default_rng(0)
    rows = [{"clip_id": f"{s}_{i}", "speaker": s, "emotion": EMOTIONS[i % 3]} for s in ("a", "b", "c") for i in range(12)]
    meta = pd.DataFrame(rows)
    mean = rng.normal(size=(len(meta), 3, 4)).astype(np.float32)
    return EmbeddingSet(meta["clip_id"].to_numpy(), mean, np.abs(mean), meta, pd.DataFrame(), "toy", "clip")


def test_crema_chosen_layer_runs_only_where_tess_is_tested():
    emb = _emb()
    ids = emb.meta.set_index("clip_id")["speaker"]
    split = Split("x", "c", 0, tuple(ids.index[ids != "c"]), (), tuple(ids.index[ids == "c"]))
    protos = [Protocol(name, [split], tuple(EMOTIONS[:3]), {"name": "toy"}) for name in ("speaker", "actor-loo")]
    records = run_readouts(emb, protos, crema_choice=1, seeds=(), progress=False)
    crema = {r["protocol"] for r in records if r["model"] == "whisper-probe-crema"}
    assert crema == {"speaker"} and "speaker" in TESS_TESTED and "actor-loo" not in TESS_TESTED
    assert {r["model"] for r in records if r["protocol"] == "actor-loo"} >= {"whisper-probe-select",
                                                                            "whisper-probe-layer0"}


def test_comparison_lines_quote_each_read_out_with_its_seeds_and_data(tmp_path):
    from ser_utils.encoder_runs import comparison_lines

    def rec(model, uar, seed=0):
        return {"model": model, "protocol": "speaker", "seed": seed, "metrics": {"uar": uar},
                "dataset": {"name": "tess", "n_clips": 2800}}

    reference = [rec("whisper-probe-crema", 0.719)] + [rec("whisper-finetune", u, s) for s, u in
                                                       enumerate((0.55, 0.57, 0.53))]
    text = "\n".join(comparison_lines(reference, tmp_path))
    assert "layer chosen on CREMA-D's actors: 71.9 % (one run: deterministic) [tess, 2800 clips]" in text
    assert "fine-tuned with attentive pooling (10.8): 55.0 % ± 2.0 (3 seeds) [tess, 2800 clips]" in text
    assert "30-s padded" not in text  # a read-out without records is not listed


def test_the_from_scratch_line_uses_only_runs_on_the_same_clips_and_the_books_rule(tmp_path):
    """The best from-scratch model is quoted only from runs on the probe's clips (never TESS's 1400-clip half),
    with the verdict of the book's inference rule on the same test clips."""
    from ser_utils.encoder_runs import comparison_lines
    from ser_utils.evaluation import FoldResult, make_record, save_record

    ids = [f"c{i}" for i in range(60)]
    truth = [i % 3 for i in range(60)]

    def rec(model, wrong, seed, n_clips):
        pred = [(t + 1) % 3 if i < wrong else t for i, t in enumerate(truth)]
        fold = FoldResult("f0", ids, truth, pred, 100, 10, classes=[0, 1, 2])
        return make_record(model, "speaker", seed, [fold], dataset={"name": "tess", "n_clips": n_clips}, wall_time=1.0)

    probe = [rec("whisper-probe-crema", 3, 0, 2800)]
    for seed, wrong in enumerate((25, 27, 26)):
        save_record(rec("hybrid-frames", wrong, seed, 2800), tmp_path)
    save_record(rec("hybrid", 0, 0, 1400), tmp_path)  # a perfect score, but on other clips: never quoted
    save_record(rec("lstm-frames", 1, 0, 2800), tmp_path)
    text = "\n".join(comparison_lines(probe, tmp_path / "results"))
    assert "lstm-frames" not in text  # a seeded model with one seed in is not compared yet
    assert "hybrid-frames: " in text and "(3 seeds) [tess, 2800 clips]" in text and "hybrid:" not in text
    assert "by the book's rule: whisper-probe-crema beats hybrid-frames" in text
