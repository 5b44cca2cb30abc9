"""Fine-tuning Whisper's top blocks (``whisper-finetune``): SpecAugment's masks, the epoch chosen on validation,
test clips never used before the end; on a tiny random Whisper saved locally (the from_pretrained path)."""

from __future__ import annotations

import numpy as np
import pytest

from ser_utils.errors import UserError
from ser_utils.experiments import run_experiment
from ser_utils.registry import ModelSpec

from .helpers import save_tiny_whisper

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import torch

    from ser_utils.encoders import load_encoder

    torch.manual_seed(0)  # the same random encoder in every run
    folder = save_tiny_whisper(tmp_path_factory.mktemp("tiny-whisper-ft"))
    return folder, load_encoder(folder)


def _tones(n: int, f0: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = np.arange(int(16000 * rng.uniform(0.4, 1.2))) / 16000
        out.append((0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.normal(size=t.size)).astype(np.float32))
    return out


def test_spec_augment_masks_spans_inside_each_clip_only():
    import torch

    from ser_utils.finetune import FinetuneSettings, spec_augment

    batch = torch.ones(3, 80, 120)
    lengths = torch.tensor([120, 60, 31])
    batch[1, :, 60:] = 0
    batch[2, :, 31:] = 0
    settings = FinetuneSettings(mask_time_prob=0.2, mask_feature_prob=0.1)
    out = spec_augment(batch, lengths, settings, np.random.default_rng(0))
    again = spec_augment(batch, lengths, settings, np.random.default_rng(0))
    assert torch.equal(out, again)  # the seed decides the masks
    assert (out[1, :, 60:] == 0).all() and (out[2, :, 31:] == 0).all()  # padding stays padding
    for i, n in enumerate(lengths.tolist()):
        inside = out[i, :, :n]
        assert 0 < (inside == 0).float().mean() < 0.6  # some of the clip masked, most of it kept
        assert ((inside == 0).all(dim=0).any() and (inside == 0).all(dim=1).any())  # whole frames and bands
    state = np.random.get_state()
    spec_augment(batch, lengths, settings, np.random.default_rng(1))
    assert np.array_equal(np.random.get_state()[1], state[1])  # NumPy's global generator left as it was


def test_finetuning_restores_the_best_validation_epoch_and_never_trains_on_test(tiny):
    from ser_utils.finetune import FinetuneSettings, finetune_fold

    _, enc = tiny
    x_tr = _tones(12, 150.0, 0) + _tones(12, 600.0, 1)
    y_tr = np.array([0] * 12 + [1] * 12)
    x_va = _tones(4, 150.0, 2) + _tones(4, 600.0, 3)
    y_va = np.array([0] * 4 + [1] * 4)
    settings = FinetuneSettings(top_layers=1, max_epochs=4, patience=4, batch_size=8, lr=1e-3, head_lr=1e-2)
    flags = [p.requires_grad for p in enc.model.parameters()]
    before = {k: v.clone() for k, v in enc.model.state_dict().items()}
    # The validation clips as the test set: the predictions are those of the best epoch, not of the last.
    out = finetune_fold(enc, (x_tr, y_tr), (x_va, y_va), x_va, 2, settings, seed=0)
    curve = out.history["val_uar"]
    assert len(curve) == 4 and out.best_epoch == 1 + int(np.argmax(curve)) and max(curve) >= 0.75
    assert np.mean(np.array(out.y_pred) == y_va) == max(curve)  # balanced classes: accuracy = UAR
    # Other test clips change nothing in training, and a second run with the same seed is the same run.
    other = finetune_fold(enc, (x_tr, y_tr), (x_va, y_va), _tones(3, 300.0, 6), 2, settings, seed=0)
    assert other.history == out.history and other.best_epoch == out.best_epoch
    # The caller's encoder is untouched: weights and requires_grad flags (copies are trained, not it).
    assert all((before[k] == v).all() for k, v in enc.model.state_dict().items())
    assert [p.requires_grad for p in enc.model.parameters()] == flags


def test_whisper_finetune_runs_as_a_registry_model(quick_chapter, tiny):
    folder, _ = tiny
    spec = ModelSpec.parse("whisper-finetune")
    assert spec.family.name == "encoder"
    for bad, options, why in (("whisper-finetune-layer2", {}, "takes no other suffix"),
                              ("whisper-probe-layer2", {"top_layers": 1}, "applies to whisper-finetune")):
        with pytest.raises(ValueError, match=why):
            s = ModelSpec.parse(bad)
            s.family.check(s, options)
    rec = run_experiment(quick_chapter, "whisper-finetune", "speaker", 0, options={"encoder": str(folder)},
                         save=False, progress=False)
    assert [f["epochs"] for f in rec["folds"]] == [1, 1] and all("val_uar" in f["history"] for f in rec["folds"])
    with pytest.raises(UserError, match="top_layers must be between 1 and 2"):
        run_experiment(quick_chapter, "whisper-finetune", "speaker", 0,
                       options={"encoder": str(folder), "top_layers": 3}, save=False, progress=False)
