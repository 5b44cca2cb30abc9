"""ViT / BEiT on spectrogram images (ser_utils.vision): tiny configs, tiny images, seconds not minutes."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from ser_utils import vision  # noqa: E402
from ser_utils.evaluation import FoldResult  # noqa: E402
from ser_utils.labels import EMOTIONS  # noqa: E402
from .helpers import fold_job  # noqa: E402

TINY = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, patch_size=8)


def tiny_model(family: str, size: int = 32):
    torch.manual_seed(0)
    return vision.build_model(family, size, quick=True, config_overrides=TINY)


def tiny_images(n: int = 8, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size), dtype=np.uint8)


@pytest.mark.parametrize("family", ["vit", "beit"])
def test_builds_from_config_with_seven_logits(family):
    model = tiny_model(family)
    prep = vision.Preprocess.for_model(model)
    x = prep(tiny_images(3))
    assert x.shape == (3, 3, 32, 32)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0  # mean = std = 0.5 maps [0, 1] to [-1, 1]
    logits = model(pixel_values=x).logits
    assert logits.shape == (3, len(EMOTIONS))
    assert model.config.model_type == family
    assert model.config.id2label[5] == "pleasant_surprise"
    assert model.num_parameters(only_trainable=True) > 0


@pytest.mark.parametrize("family", ["vit", "beit"])
def test_one_training_step_lowers_the_loss_on_a_fixed_batch(family):
    model = tiny_model(family)
    model.config.hidden_dropout_prob = 0.0
    prep = vision.Preprocess.for_model(model)
    x = prep(tiny_images(8))
    y = np.arange(8) % len(EMOTIONS)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    before, _ = vision.train_step(model, opt, x, y)
    model.eval()
    with torch.no_grad():
        after = float(torch.nn.functional.cross_entropy(model(pixel_values=x).logits, torch.as_tensor(y)))
    assert after < before


@pytest.mark.parametrize("family", ["vit", "beit"])
def test_save_and_reload_give_identical_logits(family, tmp_path):
    model = tiny_model(family)
    prep = vision.Preprocess.for_model(model)
    folder = vision.save_model(model, prep, tmp_path / family)
    assert (folder / "model.safetensors").is_file()
    assert json.loads((folder / "preprocessor_config.json").read_text())["image_mean"] == [0.5, 0.5, 0.5]
    reloaded, prep2 = vision.load_model(folder)
    assert prep2 == prep
    x = prep(tiny_images(4, seed=1))
    model.eval()
    with torch.no_grad():
        np.testing.assert_array_equal(model(pixel_values=x).logits.numpy(), reloaded(pixel_values=x).logits.numpy())


def test_pretrained_folder_is_fine_tuned_with_a_fresh_head_at_its_own_size(tmp_path):
    """The pretrained path: a local save_pretrained folder, 10 labels, 48 px; we get 7 labels at 48 px."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    cfg = ViTConfig(image_size=48, num_labels=10, **TINY)
    src = ViTForImageClassification(cfg)
    src.save_pretrained(tmp_path / "ckpt")
    model = vision.build_model("vit", 32, pretrained=str(tmp_path / "ckpt"))
    assert model.config.num_labels == len(EMOTIONS)
    # the encoder weights are the checkpoint's, not fresh ones
    torch.testing.assert_close(model.vit.embeddings.patch_embeddings.projection.weight,
                               src.vit.embeddings.patch_embeddings.projection.weight)
    prep = vision.Preprocess.for_model(model, str(tmp_path / "ckpt"))
    assert prep.size == 48
    assert model(pixel_values=prep(tiny_images(2, size=32))).logits.shape == (2, len(EMOTIONS))


def test_pretrained_folder_of_the_other_family_is_refused(tmp_path):
    tiny_model("beit").save_pretrained(tmp_path / "beit")
    with pytest.raises(ValueError, match="beit"):
        vision.build_model("vit", 32, pretrained=str(tmp_path / "beit"))


def test_offline_uncached_hub_id_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_id = "ser-book-tests/beit-never-cached"  # an id no cache on any machine holds
    with pytest.raises(vision.PretrainedUnavailableError) as info:
        vision.build_model("beit", 32, pretrained=hub_id)
    msg = str(info.value)
    assert hub_id in msg
    assert "HF_HUB_OFFLINE" in msg and "unreachable" in msg and "cache" in msg
    assert "save_pretrained" in msg and "--pretrained" in msg
    assert info.value.__cause__ is None and info.value.__context__ is None  # no chained hub traceback


def test_missing_local_folder_gives_a_clear_error(tmp_path):
    with pytest.raises(vision.PretrainedUnavailableError, match="does not exist"):
        vision.build_model("vit", 32, pretrained=str(tmp_path / "nope" / "model"))


def test_spec_augment_masks_bands_and_leaves_input_alone():
    rng = np.random.default_rng(0)
    imgs = tiny_images(4, size=64)
    out = vision.spec_augment(imgs, rng, n_freq=2, n_time=2, max_width=0.25)
    assert out.shape == imgs.shape and out.dtype == np.uint8
    assert not np.array_equal(out, imgs)
    assert np.array_equal(imgs, tiny_images(4, size=64))  # input untouched
    changed = out != imgs
    # every change lies in a fully masked row or column (a band or a stripe)
    for img_changed, img in zip(changed, out, strict=True):
        rows = np.all(img == img[:, :1], axis=1)
        cols = np.all(img == img[:1, :], axis=0)
        assert np.all(~img_changed | rows[:, None] | cols[None, :])


@pytest.mark.parametrize("family", ["vit", "beit"])
def test_attention_rollout_is_an_image_sized_map(family):
    model = tiny_model(family)
    before = model.config._attn_implementation
    amap = vision.attention_rollout(model, tiny_images(1)[0])
    assert amap.shape == (32, 32)
    assert amap.min() == 0.0 and amap.max() == pytest.approx(1.0)
    assert model.config._attn_implementation == before
    # nearest upsampling of a 4x4 patch grid: constant within each 8x8 patch
    assert np.all(amap[:8, :8] == amap[0, 0])


def test_rollout_of_one_layer_matches_the_hand_computation():
    model = tiny_model("vit")
    img = tiny_images(1)[0]
    prep = vision.Preprocess.for_model(model)
    model.set_attn_implementation("eager")
    with torch.no_grad():
        att = model(pixel_values=prep(img[None]), output_attentions=True).attentions[0][0].mean(0)
    a = 0.5 * att + 0.5 * torch.eye(att.shape[0])
    a = a / a.sum(-1, keepdim=True)
    expected = a[0, 1:].reshape(4, 4).numpy()
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    got = vision.attention_rollout(model, img)[::8, ::8]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", ["vit", "beit-specaug"])
def test_vision_fold_on_the_quick_chapter(quick_chapter, tmp_path, model):
    fs = quick_chapter.features
    split = quick_chapter.splits("random", 0)[0]
    # the name alone sets the variant (the grid passes no options): beit-specaug masks
    res = vision.vision_fold(fs, split, fold_job(model, seed=0, epochs=2, quick=True, options={},
                             model_dir=tmp_path, progress=False))
    assert isinstance(res, FoldResult)
    assert len(res.y_pred) == len(res.y_true) == len(split.test)
    assert set(res.y_pred) <= set(range(len(EMOTIONS)))
    assert res.epochs == len(res.history["loss"]) == len(res.history["val_accuracy"]) <= 2
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(res.history)
    assert res.extra["n_params"] > 0 and res.extra["augment"] == model.endswith("specaug")
    assert res.n_val == len(split.val) and res.n_train <= vision.QUICK_MAX_TRAIN
    saved = tmp_path / f"{model}__random__seed0__random"
    assert (saved / "model.safetensors").is_file() and res.extra["model_path"] == str(saved)
    json.dumps(res.as_dict())  # the results file must be able to hold it


def test_options_override_the_name_and_a_pretrained_name_needs_weights(quick_chapter, tmp_path):
    split = quick_chapter.splits("random", 0)[0]
    kw = dict(seed=0, epochs=1, quick=True, model_dir=None, progress=False)
    res = vision.vision_fold(quick_chapter.features, split, fold_job("vit", options={"augment": True}, **kw))
    assert res.extra["augment"] is True
    with pytest.raises(ValueError, match="needs weights to start from"):
        vision.vision_fold(quick_chapter.features, split, fold_job("vit-pretrained", options={}, **kw))
    with pytest.raises(ValueError, match="needs weights to start from"):  # refused before any work
        vision.FAMILY.check(vision.ModelSpec.parse("vit-pretrained"), {})


def test_the_patch8_variant_trains_with_8_pixel_patches(quick_chapter, tmp_path):
    """``vit-patch8`` (exercise 6.2) is a registry name, and the name alone sets the patch size."""
    split = quick_chapter.splits("random", 0)[0]
    res = vision.vision_fold(quick_chapter.features, split, fold_job("vit-patch8", seed=0, epochs=1, quick=True,
                                                                     options={}, model_dir=tmp_path, progress=False))
    net, _ = vision.load_model(res.extra["model_path"])
    assert net.config.patch_size == 8


def test_vision_fold_is_reproducible_by_seed(quick_chapter, tmp_path):
    fs = quick_chapter.features
    split = quick_chapter.splits("random", 0)[0]
    kw = dict(seed=3, epochs=1, quick=True, options={}, progress=False)
    a = vision.vision_fold(fs, split, fold_job("vit", model_dir=tmp_path / "a", **kw))
    b = vision.vision_fold(fs, split, fold_job("vit", model_dir=tmp_path / "b", **kw))
    assert a.y_pred == b.y_pred and a.history["loss"] == b.history["loss"]


def test_run_experiment_writes_a_results_file(quick_chapter):
    from ser_utils.experiments import run_experiment

    rec = run_experiment(quick_chapter, "beit", "speaker", 0, epochs=1, options={"pretrained": None},
                         progress=False)
    assert rec["model"] == "beit" and len(rec["folds"]) == 2
    assert rec["n_params"] > 0
    assert rec["folds"][0]["history"]["val_loss"]
    assert 0.0 <= rec["metrics"]["accuracy"] <= 1.0


def test_rollout_examples_from_a_saved_run(quick_chapter):
    from ser_utils.experiments import run_experiment

    rec = run_experiment(quick_chapter, "vit", "random", 0, epochs=1, progress=False)  # saved: rollout loads it
    images, maps, titles = vision.rollout_examples(rec, quick_chapter.features, n_clips=3)
    s = quick_chapter.features.config.image_size
    assert len(images) == len(maps) == len(titles) == 3
    assert all(m.shape == (s, s) for m in maps)
    assert [t.split(" -> ")[0] for t in titles] == list(EMOTIONS[:3])


def test_variant_names_keep_settings_apart():
    from ser_utils.registry import ModelSpec

    assert ModelSpec("vit").with_options({"pretrained": None, "augment": False}).name == "vit"
    assert ModelSpec("beit").with_options({"pretrained": "some/folder"}).name == "beit-pretrained"
    assert ModelSpec("vit").with_options({"pretrained": "x", "augment": True}).name == "vit-pretrained-specaug"


def test_cli_prints_the_pretrained_error_without_a_traceback(monkeypatch, quick_chapter, capsys):
    from ser_utils.cli import main
    from ser_utils.errors import UserError

    assert issubclass(vision.PretrainedUnavailableError, UserError)
    assert issubclass(vision.PretrainedUnavailableError, OSError)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    art = str(quick_chapter.artifacts_dir)  # features already cached there
    code = main(["train", "vit", "--dataset", "demo", "--quick", "--artifacts", art,
                 "--pretrained", "ser-book-tests/vit-never-cached"])
    err = capsys.readouterr().err
    assert code == 2
    assert "ser-book-tests/vit-never-cached" in err and "Traceback" not in err


def test_vision_fold_fine_tunes_a_local_checkpoint_at_its_size(quick_chapter, tmp_path):
    """The pretrained path end to end: a save_pretrained folder at 48 px, images resized from 64 px."""
    from transformers import BeitConfig, BeitForImageClassification

    torch.manual_seed(0)
    BeitForImageClassification(BeitConfig(image_size=48, num_labels=3, **TINY)).save_pretrained(tmp_path / "ckpt")
    split = quick_chapter.splits("random", 0)[0]
    res = vision.vision_fold(quick_chapter.features, split, fold_job("beit", seed=0, epochs=1, quick=True,
                             options={"pretrained": str(tmp_path / "ckpt")}, model_dir=tmp_path / "models",
                             progress=False))
    assert res.extra["pretrained"] == str(tmp_path / "ckpt") and res.extra["image_size"] == 48
    assert res.extra["train"]["lr"] == vision.TRAIN_DEFAULTS["pretrained"]["lr"]
    model, prep = vision.load_model(res.extra["model_path"])
    assert prep.size == 48 and model.config.num_labels == len(EMOTIONS)
    assert len(res.y_pred) == len(split.test)


def test_fit_stops_after_patience_and_restores_the_best_epoch():
    model = tiny_model("vit")
    prep = vision.Preprocess.for_model(model)
    x, y = tiny_images(16), np.arange(16) % len(EMOTIONS)
    tc = vision.TrainConfig(epochs=6, lr=0.0, weight_decay=0.0, warmup_epochs=0, patience=2, batch_size=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history, best = vision.fit(model, prep, x, y, x[:8], y[:8], tc, np.random.default_rng(0), progress=False)
    # lr = 0: the validation loss never improves after epoch 1, so training stops at 1 + patience
    assert best == 1 and len(history["loss"]) == 3 == len(history["val_loss"]) == len(history["lr"])
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_rollout_is_row_stochastic_and_mixes_the_residual_path():
    att = torch.softmax(torch.randn(2, 3, 5, 5), dim=-1)  # 2 layers, 3 heads, 5 tokens
    flow = vision.rollout(list(att))
    torch.testing.assert_close(flow.sum(-1), torch.ones(5))
    a = 0.5 * att[0].mean(0) + 0.5 * torch.eye(5)
    torch.testing.assert_close(vision.rollout([att[0]]), a / a.sum(-1, keepdim=True))


def test_rollout_examples_refuse_a_run_without_a_saved_model():
    unsaved = {"model": "vit", "protocol": "random", "folds": [{"model_path": None}]}
    with pytest.raises(ValueError, match="save=False"):
        vision.rollout_examples(unsaved, None)
