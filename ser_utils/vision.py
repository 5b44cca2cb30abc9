"""Vision transformers (ViT, BEiT) on mel-spectrogram images, with Hugging Face ``transformers``.

A spectrogram image (:attr:`FeatureSet.images`, ``(N, S, S)`` uint8, row 0 =
lowest mel band, columns = time) is cut into ``P x P`` patches; each patch is
flattened, linearly projected to a token, given a position, and the sequence
of tokens goes through a transformer encoder :cite:p:`dosovitskiy2021vit`.
BEiT :cite:p:`bao2022beit` has the same backbone with relative position biases
and layer scale, and is pre-trained by masked image modelling.

Two ways in, one code path (:func:`build_model`):

- ``pretrained=None`` (the offline default: these machines cannot reach the
  model hub) builds a **compact configuration** trained from scratch, sized by
  :func:`compact_config` (ViT-Tiny width: hidden 192, 3 heads, MLP 768, but 4
  layers instead of 12; patch 16 at the feature image size, so a 128 x 128
  spectrogram becomes 8 x 8 = 64 patch tokens plus a class token). Quick mode
  shrinks it to hidden 32, 1 layer.
- ``pretrained="google/vit-base-patch16-224-in21k"``,
  ``"microsoft/beit-base-patch16-224-pt22k"`` or a local folder written by
  ``save_pretrained`` fine-tunes real weights via ``from_pretrained`` (a fresh
  7-class head); images are resized to the checkpoint's ``image_size``. When
  the weights are neither a folder nor in the local cache and the hub cannot be
  reached, :class:`PretrainedUnavailableError` says what was tried and how to
  provide a folder.

Input convention (:class:`Preprocess`): both ``ViTImageProcessor`` and
``BeitImageProcessor`` rescale by 1/255, resize to 224 x 224 (bilinear for
ViT, bicubic for BEiT), do not centre-crop, and normalise with mean = std =
0.5 per channel, i.e. map [0, 1] to [-1, 1]. We do exactly that in torch on
the batch (:func:`features.as_rgb` repeats the grey image to 3 channels),
reading mean/std from a folder's ``preprocessor_config.json`` when it has one.
The from-scratch model uses the same normalisation at the native image size.
Cropping is never done: it would cut off the highest bands or the clip's ends.

Training (:func:`vision_fold`) is a plain PyTorch loop rather than the HF
``Trainer``: it needs no ``accelerate``, and keeps early stopping, best-weights
restore, seeding and the Keras-style history (``loss``, ``accuracy``,
``val_loss``, ``val_accuracy``) in a few visible lines. Optional
SpecAugment-style masking :cite:p:`park2019specaugment` (:func:`spec_augment`)
is off by default so the comparison with the paper stays like for like.
:func:`attention_rollout` :cite:p:`abnar2020attention` maps where a trained
model looks on a spectrogram.
"""

from __future__ import annotations

import copy
import json
import os
import re
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from tqdm.auto import tqdm

from .errors import PretrainedUnavailableError
from .evaluation import FoldResult
from .features import FeatureSet, as_rgb
from .labels import EMOTIONS
from .quiet import bar_hidden
from .registry import VISION_MODELS, FoldJob, ModelFamily, ModelSpec
from .splits import Split

#: The checkpoints the paper's family of models starts from (ImageNet-21k / -22k pre-training).
CHECKPOINTS = {
    "vit": "google/vit-base-patch16-224-in21k",
    "beit": "microsoft/beit-base-patch16-224-pt22k",
}
#: Sizes of the compact from-scratch configuration (full and quick mode).
COMPACT = {
    "full": dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=768,
                 patch_size=16, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.0),
    "quick": dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                  patch_size=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
}
#: Training settings: from scratch vs fine-tuning pretrained weights (``options`` may override).
TRAIN_DEFAULTS = {
    "scratch": dict(epochs=40, lr=5e-4, weight_decay=0.05, warmup_epochs=3, patience=8, batch_size=32),
    "pretrained": dict(epochs=10, lr=5e-5, weight_decay=0.01, warmup_epochs=1, patience=3, batch_size=16),
}
QUICK_MAX_TRAIN = 96  # training images used in quick mode ("few images")
ID2LABEL = dict(enumerate(EMOTIONS))
LABEL2ID = {v: k for k, v in ID2LABEL.items()}


# --- configuration and models ----------------------------------------------------------------


def compact_config(family: str, image_size: int, *, quick: bool = False, **overrides):
    """A small ``ViTConfig`` / ``BeitConfig`` for training from scratch on ``image_size`` spectrograms.

    Sizes come from :data:`COMPACT` (``"quick"`` when ``quick``), ``overrides`` on
    top (e.g. ``patch_size=8``). BEiT gets relative position biases, layer scale
    and mean pooling; ViT learns absolute position embeddings. 7 labels.
    Saved from chapter 6, section 6.3 (book/06_transformers.ipynb).
    """
    from transformers import BeitConfig, ViTConfig

    sizes = {**COMPACT["quick" if quick else "full"], **overrides}
    if image_size % sizes["patch_size"]:
        raise ValueError(f"image size {image_size} is not a multiple of patch size {sizes['patch_size']}")
    common = dict(image_size=image_size, num_channels=3, num_labels=len(EMOTIONS), id2label=ID2LABEL,
                  label2id=LABEL2ID, **sizes)
    if family == "vit":
        return ViTConfig(**common)
    if family == "beit":
        return BeitConfig(use_relative_position_bias=True, use_absolute_position_embeddings=False,
                          use_mean_pooling=True, drop_path_rate=0.0 if quick else 0.1, **common)
    raise ValueError(f"unknown vision family {family!r}")


def model_class(family: str):
    """``ViTForImageClassification`` or ``BeitForImageClassification``.

    Saved from chapter 6, section 6.3 (book/06_transformers.ipynb).
    """
    from transformers import BeitForImageClassification, ViTForImageClassification

    return {"vit": ViTForImageClassification, "beit": BeitForImageClassification}[family]


def build_model(family: str, image_size: int, *, pretrained: str | None = None, quick: bool = False,
                config_overrides: dict | None = None):
    """The classifier for ``family``: compact from scratch (``pretrained=None``) or from pretrained weights.

    ``pretrained`` is a hub id or a ``save_pretrained`` folder; a fresh 7-class
    head replaces the checkpoint's. :func:`_resolve_pretrained` raises
    :class:`PretrainedUnavailableError` when the weights cannot be found offline.
    Saved from chapter 6, section 6.3 (book/06_transformers.ipynb).
    """
    _quiet_hf()
    cls = model_class(family)
    if pretrained is None:
        return cls(compact_config(family, image_size, quick=quick, **(config_overrides or {})))
    source = _resolve_pretrained(family, pretrained)
    return cls.from_pretrained(source, num_labels=len(EMOTIONS), id2label=ID2LABEL, label2id=LABEL2ID,
                               ignore_mismatched_sizes=True)


def _resolve_pretrained(family: str, pretrained: str) -> str:
    """A loadable source for ``from_pretrained``: the folder, a cached hub id, or a reachable hub id."""
    from transformers import AutoConfig

    path = Path(pretrained).expanduser()
    if path.is_dir():
        try:
            cfg = AutoConfig.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise PretrainedUnavailableError(
                f"{path} is a folder but holds no readable model config.json ({exc}); "
                "make it with model.save_pretrained(folder)."
            ) from None
        if cfg.model_type != family:
            raise ValueError(f"{path} holds a {cfg.model_type!r} model, not {family!r}")
        return str(path)
    # hub ids are "name" or "org/name"; anything else is meant as a folder
    looks_like_path = pretrained.startswith((".", "/", "~")) or pretrained.count("/") > 1
    if looks_like_path:
        raise PretrainedUnavailableError(f"pretrained folder {path.resolve()} does not exist.\n{_how_to(family)}")
    try:  # the local Hugging Face cache first: no network, no retries
        AutoConfig.from_pretrained(pretrained, local_files_only=True)
        return pretrained
    except (OSError, ValueError):
        pass
    offline = _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")
    reason = "HF_HUB_OFFLINE=1 is set" if offline else _hub_unreachable()
    if reason is None:
        return pretrained  # the hub answers: let from_pretrained download it
    raise PretrainedUnavailableError(
        f"cannot load pretrained weights {pretrained!r} for {family}. Tried: (1) a local folder "
        f"{path.resolve()} (none); (2) the Hugging Face cache ({_hf_cache_dir()}) (not there); "
        f"(3) the model hub (unreachable: {reason}).\n{_how_to(family, pretrained)}"
    )


def _how_to(family: str, hub_id: str | None = None) -> str:
    hub_id = hub_id or CHECKPOINTS[family]
    cls = model_class(family).__name__
    return (
        "To fine-tune pretrained weights offline, on a machine with internet run\n"
        f"  python -c \"from transformers import {cls} as M; M.from_pretrained('{hub_id}')"
        f".save_pretrained('models/{family}-pretrained')\"\n"
        f"copy that folder here and pass pretrained='models/{family}-pretrained' "
        f"(CLI: --pretrained models/{family}-pretrained). Leave pretrained unset to train the compact "
        "model from scratch."
    )


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _hf_cache_dir() -> str:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        return str(HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - huggingface_hub always ships with transformers
        return "~/.cache/huggingface/hub"


def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """None when the hub's host accepts a TCP connection within ``timeout`` s, else the reason.

    Checked up front because ``from_pretrained`` retries for ~30 s before failing.
    """
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return None
    except OSError as exc:
        return f"{host}: {exc}"


def _quiet_hf() -> None:
    """No HF progress bars or info logs (the book stays free of stray output)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


# --- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preprocess:
    """How spectrogram images become ``pixel_values``: size, mean/std, resize mode (see module docstring)."""

    size: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    resample: str = "bilinear"
    device: str = "cpu"  # where pixel_values are made: the model's device (ser_utils.device)

    @classmethod
    def for_model(cls, model, source: str | None = None) -> Preprocess:
        """The convention of ``model``'s image processor; mean/std from ``source``'s processor file if any."""
        family = model.config.model_type
        mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)  # IMAGENET_STANDARD_MEAN/STD: both processors' default
        if source is not None and (Path(source) / "preprocessor_config.json").is_file():
            pc = json.loads((Path(source) / "preprocessor_config.json").read_text())
            mean, std = tuple(pc.get("image_mean", mean)), tuple(pc.get("image_std", std))
        size = model.config.image_size
        size = size[0] if isinstance(size, (list, tuple)) else int(size)
        device = str(next(model.parameters()).device)
        return cls(size, mean, std, "bicubic" if family == "beit" else "bilinear", device)

    def __call__(self, images: np.ndarray):
        """(B, S, S) uint8 images -> (B, 3, size, size) float tensor, normalised."""
        import torch

        return self.from_unit(torch.from_numpy(as_rgb(np.asarray(images))).to(self.device))

    def from_unit(self, x):
        """(B, 3, S, S) tensor in [0, 1] -> resized and normalised ``pixel_values``."""
        import torch
        import torch.nn.functional as F

        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode=self.resample, align_corners=False)
            x = x.clamp(0.0, 1.0)  # bicubic overshoots
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std


def spec_augment(images: np.ndarray, rng: np.random.Generator, *, n_freq: int = 2, n_time: int = 2,
                 max_width: float = 0.125) -> np.ndarray:
    """SpecAugment-style masking :cite:p:`park2019specaugment` of (B, S, S) spectrogram images.

    Each image gets ``n_freq`` horizontal bands (rows = mel bands) and
    ``n_time`` vertical stripes (columns = time), each of random width up to
    ``max_width * S``, set to that image's mean value, the counterpart of
    SpecAugment's masking to the mean of a normalised log-mel. Time warping is
    left out. Returns a new array; the input is not modified.
    """
    out = np.array(images, copy=True)
    s_f, s_t = out.shape[1], out.shape[2]
    for img in out:
        fill = img.mean().astype(img.dtype)
        for axis_len, n, is_freq in ((s_f, n_freq, True), (s_t, n_time, False)):
            for _ in range(n):
                w = int(rng.integers(0, max(1, int(max_width * axis_len)) + 1))
                start = int(rng.integers(0, axis_len - w + 1))
                if is_freq:
                    img[start:start + w, :] = fill
                else:
                    img[:, start:start + w] = fill
    return out


# --- training ---------------------------------------------------------------------------------


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads: ``n``, else ``SER_TORCH_THREADS``, else every usable core; returns it.

    One thread per core is right on a machine of one's own. On a machine
    shared with other busy processes, fewer threads can be several times
    faster: torch's threads wait for each other at every operation, and a
    descheduled one stalls the rest (``benchmarks/vision.py`` measures both).
    """
    import torch

    if n is None and os.environ.get("SER_TORCH_THREADS", "").strip():
        n = int(os.environ["SER_TORCH_THREADS"])
    if n is None:
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            n = os.cpu_count() or 1
    n = max(1, int(n))
    torch.set_num_threads(n)
    return n


def evaluate(model, images: np.ndarray, labels: np.ndarray | None, prep: Preprocess, *,
             batch_size: int = 64) -> tuple[np.ndarray, float | None]:
    """Logits (N, 7) of ``model`` on ``images``, and the mean cross-entropy when ``labels`` are given."""
    import torch
    import torch.nn.functional as F

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            out.append(model(pixel_values=prep(images[i:i + batch_size])).logits.float().cpu())
    logits = torch.cat(out) if out else torch.zeros((0, len(EMOTIONS)))
    loss = None
    if labels is not None and len(labels):
        loss = float(F.cross_entropy(logits, torch.as_tensor(labels, dtype=torch.long)))
    return logits.numpy(), loss


def train_step(model, optimizer, pixel_values, labels):
    """One optimisation step (cross-entropy, gradients clipped at norm 1); returns (loss, logits) before the update.

    The labels go to the model's device (CPU or GPU); the logits come back on the CPU.
    Saved from chapter 6, section 6.4 (book/06_transformers.ipynb).
    """
    import torch
    import torch.nn.functional as F

    model.train()
    logits = model(pixel_values=pixel_values).logits
    loss = F.cross_entropy(logits, torch.as_tensor(labels, dtype=torch.long, device=logits.device))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return float(loss.detach()), logits.detach().cpu()


def train_epoch(model, optimizer, schedule, prep: Preprocess, x: np.ndarray, y: np.ndarray, batch_size: int,
                rng: np.random.Generator, augment: bool = False) -> tuple[float, float]:
    """One pass over the training images in a fresh random order; returns (mean loss, accuracy).

    With ``augment`` every batch is masked by :func:`spec_augment` first.
    Saved from chapter 6, section 6.4 (book/06_transformers.ipynb).
    """
    order = rng.permutation(len(x))
    total, correct = 0.0, 0
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        batch = spec_augment(x[idx], rng) if augment else x[idx]
        loss, logits = train_step(model, optimizer, prep(batch), y[idx])
        schedule.step()  # the learning rate changes every step, not every epoch
        total += loss * len(idx)
        correct += int((logits.argmax(-1).numpy() == y[idx]).sum())
    return total / len(order), correct / len(order)


@dataclass
class TrainConfig:
    """Training settings of one fold (defaults from :data:`TRAIN_DEFAULTS`)."""

    epochs: int
    lr: float
    weight_decay: float
    warmup_epochs: int
    patience: int
    batch_size: int
    augment: bool = False


def fit(model, prep: Preprocess, x_train, y_train, x_val, y_val, tc: TrainConfig, rng: np.random.Generator,
        *, progress: bool = True, desc: str = "Training") -> tuple[dict, int]:
    """AdamW, warm-up + cosine schedule, early stopping on val loss; returns the history and the best epoch (from 1).
    Saved from chapter 6, section 6.4 (book/06_transformers.ipynb).
    """
    import torch
    from transformers import get_cosine_schedule_with_warmup
    steps = max(1, -(-len(x_train) // tc.batch_size))  # batches per epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    schedule = get_cosine_schedule_with_warmup(optimizer, tc.warmup_epochs * steps, tc.epochs * steps)
    history = {k: [] for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr")}
    best_loss, best_epoch, best_state = float("inf"), 0, None
    for epoch in tqdm(range(1, tc.epochs + 1), desc=desc, unit="epoch", disable=bar_hidden(progress), leave=False):
        loss, acc = train_epoch(model, optimizer, schedule, prep, x_train, y_train, tc.batch_size, rng, tc.augment)
        logits, val_loss = evaluate(model, x_val, y_val, prep)
        val_acc = (logits.argmax(-1) == y_val).mean()
        for k, v in zip(history, (loss, acc, val_loss, val_acc, schedule.get_last_lr()[0]), strict=True):
            history[k].append(float(v))
        if val_loss < best_loss - 1e-4:  # a new best: remember these weights
            best_loss, best_epoch, best_state = val_loss, epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= tc.patience:  # no improvement for `patience` epochs
            break
    model.load_state_dict(best_state)
    return history, best_epoch


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", name.replace("->", "-to-")).strip("-")


def save_model(model, prep: Preprocess, folder: str | os.PathLike) -> Path:
    """``save_pretrained`` (safetensors) plus the matching image-processor file, so the folder reloads as is."""
    from transformers import BeitImageProcessorPil, ViTImageProcessorPil

    folder = Path(folder)
    model.save_pretrained(folder)
    proc = BeitImageProcessorPil if model.config.model_type == "beit" else ViTImageProcessorPil
    kw = dict(size={"height": prep.size, "width": prep.size}, image_mean=list(prep.mean),
              image_std=list(prep.std))
    if model.config.model_type == "beit":
        kw["do_center_crop"] = False
    proc(**kw).save_pretrained(folder)
    return folder


def load_model(folder: str | os.PathLike):
    """Reload a model saved by :func:`save_model` (or any ViT/BEiT ``save_pretrained`` folder) and its :class:`Preprocess`."""
    from transformers import AutoConfig

    _quiet_hf()
    family = AutoConfig.from_pretrained(folder).model_type
    model = model_class(family).from_pretrained(folder)
    model.eval()
    return model, Preprocess.for_model(model, str(folder))


def _require_weights(spec, options) -> None:
    """ValueError when a ``-pretrained`` name comes without weights to start from (never train it from scratch)."""
    if spec.with_options(options).pretrained and not options.get("pretrained"):
        raise ValueError(f"{spec.name} needs weights to start from: --pretrained ID_OR_FOLDER "
                         "(options={'pretrained': ...})")


def vision_fold(fs: FeatureSet, split: Split, job: FoldJob) -> FoldResult:
    """Train ViT or BEiT on ``split.train`` images, early-stop on ``split.val``, predict ``split.test``.

    ``job.spec`` is ``vit`` or ``beit`` (a suffix names a variant, e.g.
    ``vit-specaug``). ``job.options``: ``pretrained`` (hub id or folder; None =
    compact from scratch), ``augment`` (SpecAugment masking of training
    images), ``threads`` (torch threads, see :func:`set_threads`), ``device`` (default: CUDA
    when available, see :func:`ser_utils.device.torch_device`), and optional
    overrides ``lr``, ``batch_size``, ``patience``, ``weight_decay``,
    ``warmup_epochs`` and ``config`` (a dict of compact
    config sizes). ``job.mode.epochs`` is the maximum (early stopping may stop
    sooner); None takes :data:`TRAIN_DEFAULTS`, quick mode 1. The best model
    is saved with ``save_pretrained`` under ``model_dir/<model>__<protocol>__seed<k>__<fold>``
    (not saved when ``job.model_dir`` is None).
    """
    options = dict(job.options)
    family, model, seed, quick, epochs = job.spec.base, job.spec.name, job.seed, job.mode.quick, job.mode.epochs
    # The name's variant words count, explicit options on top: ``vit-specaug`` masks without
    # ``options["augment"]`` (the grid passes none), and ``vit-pretrained`` never trains from scratch.
    spec = job.spec.with_options(options)
    _require_weights(job.spec, options)
    pretrained = options.get("pretrained") or None
    set_threads(options.get("threads"))
    from transformers import set_seed

    from .device import torch_device

    set_seed(seed)  # Python, NumPy and torch
    rng = np.random.default_rng(seed)  # shuffling and augmentation
    config = dict(options.get("config") or {})
    if "patch8" in job.spec.flags:  # exercise 6.2's variant: 8-pixel patches, four times the tokens
        config.setdefault("patch_size", 8)
    net = build_model(family, fs.config.image_size, pretrained=pretrained, quick=quick, config_overrides=config)
    net.to(torch_device(options.get("device")))  # CUDA when available (ser_utils.device)
    source = str(Path(pretrained).expanduser()) if pretrained and Path(pretrained).expanduser().is_dir() else None
    prep = Preprocess.for_model(net, source)

    defaults = TRAIN_DEFAULTS["pretrained" if pretrained else "scratch"]
    tc = TrainConfig(**{k: options.get(k, v) for k, v in defaults.items()}, augment=spec.augment)
    if epochs is not None:
        tc.epochs = int(epochs)
    elif quick:
        tc.epochs = 1
    tc.warmup_epochs = min(tc.warmup_epochs, max(tc.epochs - 1, 0))

    y = fs.labels
    train, val, test = fs.index(split.train), fs.index(split.val), fs.index(split.test)
    if quick and len(train) > QUICK_MAX_TRAIN:
        train = np.sort(rng.choice(train, QUICK_MAX_TRAIN, replace=False))
    start = time.perf_counter()
    history, best_epoch = fit(net, prep, fs.images[train], y[train], fs.images[val], y[val], tc, rng,
                              progress=job.progress, desc=f"{model} {split.fold}")
    train_time = time.perf_counter() - start
    logits, _ = evaluate(net, fs.images[test], None, prep)

    folder = None
    if job.model_dir is not None:
        folder = save_model(net, prep,
                            Path(job.model_dir) / f"{_safe(model)}__{split.protocol}__seed{seed}__{_safe(split.fold)}")
    n_epochs = len(history["loss"])
    return FoldResult(
        fold=split.fold,
        test_ids=list(fs.ids[test]),
        y_true=y[test].tolist(),
        y_pred=logits.argmax(-1).tolist(),
        n_train=len(train),
        n_val=len(val),
        epochs=n_epochs,
        history=history,
        extra={
            "n_params": net.num_parameters(only_trainable=True),
            "best_epoch": best_epoch,
            "pretrained": pretrained,
            "augment": tc.augment,
            "model_path": None if folder is None else str(folder),
            "image_size": prep.size,
            "train": asdict(tc),
            "architecture": {k: getattr(net.config, k) for k in
                             ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                              "patch_size", "image_size")},
            "train_seconds": round(train_time, 2),
            "train_images_per_s": round(n_epochs * len(train) / max(train_time, 1e-9), 1),
        },
    )


class VisionFamily(ModelFamily):
    """ViT and BEiT on spectrogram images (chapter 6), trained by :func:`vision_fold`, saved with ``save_pretrained``."""

    name = "vision"
    bases = VISION_MODELS
    suffixes = {"pretrained": ("pretrained", True), "specaug": ("augment", True), "patch8": ("flag", "patch8")}
    options = frozenset({"pretrained", "augment", "threads", "lr", "batch_size", "patience", "weight_decay",
                         "warmup_epochs", "epochs", "config"})
    cli_flags = ("pretrained", "augment")
    paper_compares_base = True  # vit-pretrained, beit-specaug: the paper's ViT/BEiT figure still applies

    def cli_options(self, flags) -> dict:
        out = {"augment": bool(flags.get("augment"))}
        if flags.get("pretrained"):
            out["pretrained"] = flags["pretrained"]
        return out

    def check(self, spec: ModelSpec, options) -> None:
        super().check(spec, options)
        _require_weights(spec, options)  # before any work: train and run_experiment refuse in one line

    def train_fold(self, ws, split: Split, job: FoldJob) -> FoldResult:
        return vision_fold(ws.features, split, job)

    def save(self, model, path, sidecar: dict | None = None):
        net, prep = model
        return save_model(net, prep, path)

    def load(self, path):
        return load_model(path)

    def predict(self, model, x):
        import torch

        net, prep = model
        logits, _ = evaluate(net, x, None, prep)
        return torch.softmax(torch.as_tensor(logits), dim=-1).numpy()


FAMILY = VisionFamily()


# --- attention rollout -------------------------------------------------------------------------


def rollout(attentions, head_fusion: str = "mean"):
    """Attention rollout :cite:p:`abnar2020attention` of one image: (T, T) flow from input to output tokens.

    ``attentions`` holds one (heads, T, T) tensor per layer. Per layer the heads
    are fused (``"mean"`` or ``"max"``), the residual path is added as
    ``0.5 A + 0.5 I`` (rows renormalised), and the layers are multiplied in order.
    Saved from chapter 6, section 6.7 (book/06_transformers.ipynb).
    """
    import torch

    n = attentions[0].shape[-1]
    flow = torch.eye(n)
    for att in attentions:
        a = att.float().max(dim=0).values if head_fusion == "max" else att.float().mean(dim=0)
        a = 0.5 * a + 0.5 * torch.eye(n)
        flow = (a / a.sum(dim=-1, keepdim=True)) @ flow
    return flow


def attention_rollout(model, image: np.ndarray, prep: Preprocess | None = None, *,
                      head_fusion: str = "mean") -> np.ndarray:
    """Rollout map of one (S, S) spectrogram image as an (S, S) array in [0, 1], row 0 = lowest band.

    The row of :func:`rollout` for the token the classifier reads (the class token for
    ViT, the mean of the patch tokens for BEiT), upsampled from the patch grid.
    Saved from chapter 6, section 6.7 (book/06_transformers.ipynb).
    """
    import torch
    import torch.nn.functional as F
    prep = prep or Preprocess.for_model(model)
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")  # SDPA attention returns no weights
    try:
        with torch.no_grad():
            out = model.eval()(pixel_values=prep(np.asarray(image)[None]), output_attentions=True)
    finally:
        model.set_attn_implementation(before)
    flow = rollout([a[0] for a in out.attentions], head_fusion)
    row = flow[1:, 1:].mean(dim=0) if getattr(model.config, "use_mean_pooling", False) else flow[0, 1:]
    grid, s = prep.size // _patch(model), np.asarray(image).shape[-1]
    amap = F.interpolate(row.reshape(1, 1, grid, grid), size=(s, s), mode="nearest")[0, 0].numpy()
    amap = amap - amap.min()
    return (amap / amap.max() if amap.max() > 0 else amap).astype(np.float32)


def _patch(model) -> int:
    p = model.config.patch_size
    return p[0] if isinstance(p, (list, tuple)) else int(p)


def rollout_examples(record: dict, fs: FeatureSet, *, n_clips: int = 4, fold: int = 0,
                     head_fusion: str = "mean") -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Attention-rollout maps of a few test clips of a saved vision run, one emotion each.

    Loads the model saved for fold ``fold`` of the results ``record`` (its
    ``model_path``), takes the first test clip of each emotion in
    :data:`EMOTIONS` order until ``n_clips`` are found, and returns their
    images, rollout maps (:func:`attention_rollout`) and titles
    ("true -> predicted").
    """
    f = record["folds"][fold]
    if not f.get("model_path"):
        raise ValueError(f"run {record['model']} ({record['protocol']}) saved no model (trained with save=False)")
    model, prep = load_model(f["model_path"])
    pred = f["predictions"]
    chosen: list[tuple[str, int, int]] = []
    for label in range(len(EMOTIONS)):
        hit = next(((cid, t, p) for cid, t, p in zip(pred["ids"], pred["y_true"], pred["y_pred"], strict=True)
                    if t == label and cid in fs._pos), None)
        if hit:
            chosen.append(hit)
        if len(chosen) == n_clips:
            break
    images = [fs.images[fs.index([cid])[0]] for cid, _, _ in chosen]
    maps = [attention_rollout(model, img, prep, head_fusion=head_fusion) for img in images]
    titles = [f"{EMOTIONS[t]} -> {EMOTIONS[p]}" for _, t, p in chosen]
    return images, maps, titles
