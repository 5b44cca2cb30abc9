"""Fine-tuning the top layers of a pretrained Whisper encoder (chapter 10.8), with SpecAugment, in PyTorch.

The probes of :mod:`ser_utils.probes` leave the encoder frozen. Here the top
``top_layers`` blocks are trained together with a small head: attentive
pooling (a learned score per frame, softmax over the clip's own frames) and a
linear layer. The convolutions and the lower blocks stay frozen; each epoch
runs them again on the log-mel input with SpecAugment applied (time and
frequency masks drawn by ``transformers``' own ``_compute_mask_indices``, the
function ``WhisperModel`` uses when ``apply_spec_augment`` is set), so the
trained layers never see the same input twice.

Clips run in masked batches of similar length
(:func:`~ser_utils.encoders.whisper_batch_states`' masks). The epoch is
chosen on the fold's validation clips (training side only; TESS's speaker
protocol draws them from the training actress), never on a test clip.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from .encoders import SAMPLE_RATE, Encoder, run_blocks, whisper_batch_input


@dataclass(frozen=True)
class FinetuneSettings:
    """How the top layers are fine-tuned: fixed in advance, the same for every fold, seed and corpus."""

    top_layers: int = 2
    max_epochs: int = 12
    patience: int = 3  # epochs without a better validation UAR before stopping
    batch_size: int = 16
    lr: float = 5e-5  # the pretrained blocks
    head_lr: float = 1e-3  # attentive pooling and the linear layer
    weight_decay: float = 0.01
    mask_time_prob: float = 0.05  # SpecAugment as Whisper's config names it (fraction of frames masked)
    mask_time_length: int = 10
    mask_feature_prob: float = 0.05
    mask_feature_length: int = 10
    max_train_clips: int | None = None  # quick mode: a few clips only


@dataclass
class FinetuneResult:
    """Test predictions of the epoch chosen on validation, and the curve that chose it."""

    y_pred: list[int]
    best_epoch: int
    history: dict = field(default_factory=dict)  # "loss" and "val_uar" per epoch


def _mels(enc: Encoder, clips: list[np.ndarray]) -> list:
    """Whisper's log-mel of each clip over its own frames (no 30-s padding), as tensors (80, T)."""
    return [enc.extractor(a, sampling_rate=SAMPLE_RATE, padding="longest", return_tensors="pt").input_features[0]
            for a in clips]


def spec_augment(batch, lengths, p: FinetuneSettings, rng: np.random.Generator):
    """Zero random time spans and mel bands of a padded log-mel batch (B, 80, T), inside each clip only.

    Saved from chapter 10, section 10.8 (book/10_pretrained.ipynb).
    """
    import torch
    from transformers.models.whisper.modeling_whisper import _compute_mask_indices as spans
    (b, n_mels, t), state = batch.shape, np.random.get_state()
    own = torch.arange(t)[None, :] < lengths[:, None]
    time, band = np.zeros((b, t), bool), np.zeros((b, n_mels), bool)
    np.random.seed(int(rng.integers(2**31)))  # spans() is Whisper's sampler; it draws from NumPy's global state
    try:
        if p.mask_time_prob > 0 and t >= p.mask_time_length:
            time = spans((b, t), p.mask_time_prob, p.mask_time_length, attention_mask=own.long(), min_masks=1)
        if p.mask_feature_prob > 0:
            band = spans((b, n_mels), p.mask_feature_prob, p.mask_feature_length, min_masks=1)
    finally:
        np.random.set_state(state)
    keep = own[:, None, :] & ~torch.from_numpy(time)[:, None, :] & ~torch.from_numpy(band)[:, :, None]
    return batch.masked_fill(~keep, 0.0)  # padding stays zero


def _network(enc: Encoder, n_classes: int, settings: FinetuneSettings):
    """The frozen bottom (the encoder's own modules), trainable copies of the top blocks, and the head."""
    import torch
    from torch import nn

    n_blocks = len(enc.model.layers)
    if not 1 <= settings.top_layers <= n_blocks:
        raise ValueError(f"top_layers must be between 1 and {n_blocks}, not {settings.top_layers}")

    class FineTuned(nn.Module):
        def __init__(self):
            super().__init__()
            self.bottom = enc.model  # frozen: never in the optimiser, run without gradients
            self.top = nn.ModuleList(copy.deepcopy(b) for b in enc.model.layers[n_blocks - settings.top_layers:])
            self.norm = copy.deepcopy(enc.model.layer_norm)
            self.score = nn.Linear(enc.dim, 1)  # attentive pooling: one weight per frame
            self.out = nn.Linear(enc.dim, n_classes)

        def forward(self, mels: list, lengths):
            """Logits of clips given as log-mels (possibly padded) and their own frame counts."""
            with torch.no_grad():  # the frozen convolutions and lower blocks
                x, mask, own = whisper_batch_input(self.bottom, [m[:, : int(n)] for m, n in zip(mels, lengths)])
                x = (run_blocks(self.bottom.layers[: n_blocks - settings.top_layers], x, mask) or [x])[-1]
            x = self.norm(run_blocks(self.top, x, mask)[-1])
            keys = torch.arange(x.shape[1])[None, :] < own[:, None]
            w = self.score(x).squeeze(-1).masked_fill(~keys, float("-inf")).softmax(dim=1)
            return self.out((w[:, :, None] * x).sum(dim=1))

    net = FineTuned()
    # The bottom runs under no_grad and is left out of the optimiser: the caller's encoder is not modified
    # (its own requires_grad flags included, which the copies must not inherit).
    for m in (net.top, net.norm):
        m.requires_grad_(True)
    return net


def _batches(lengths: np.ndarray, size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Index batches of clips of similar length; shuffled (order and neighbours) when ``rng`` is given."""
    order = np.argsort(lengths + (rng.uniform(0, 20, len(lengths)) if rng is not None else 0), kind="stable")
    batches = [order[i: i + size] for i in range(0, len(order), size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def finetune_fold(enc: Encoder, train: tuple[list, np.ndarray], val: tuple[list, np.ndarray], test: list,
                  n_classes: int, settings: FinetuneSettings = FinetuneSettings(), *, seed: int = 0,
                  progress: bool = False) -> FinetuneResult:
    """Fine-tune on ``train`` (clips, labels 0..n_classes-1), keep the epoch best on ``val``, predict ``test``.

    Clips are 16-kHz arrays. The weights of the best validation epoch (UAR)
    are restored before predicting the test clips, which are seen only then.
    """
    import torch
    from sklearn.metrics import recall_score
    from tqdm.auto import tqdm

    from .quiet import bar_hidden

    if enc.kind != "whisper":
        raise ValueError("fine-tuning is written for Whisper encoders (log-mel input, sliced positions)")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    (x_tr, y_tr), (x_va, y_va) = train, val
    if settings.max_train_clips is not None:
        keep = rng.permutation(len(x_tr))[: settings.max_train_clips]
        x_tr, y_tr = [x_tr[i] for i in keep], np.asarray(y_tr)[keep]
    mel_tr, mel_va, mel_te = _mels(enc, x_tr), _mels(enc, x_va), _mels(enc, test)
    y_tr_t = torch.as_tensor(np.asarray(y_tr), dtype=torch.long)
    net = _network(enc, n_classes, settings)
    top = [p for m in (net.top, net.norm) for p in m.parameters()]
    head = [p for m in (net.score, net.out) for p in m.parameters()]
    opt = torch.optim.AdamW([{"params": top, "lr": settings.lr}, {"params": head, "lr": settings.head_lr}],
                            weight_decay=settings.weight_decay)

    def predict(mels: list) -> np.ndarray:
        net.eval()
        lengths = np.array([m.shape[-1] for m in mels])
        pred = np.zeros(len(mels), dtype=int)
        with torch.inference_mode():
            for idx in _batches(lengths, 4 * settings.batch_size, None):
                logits = net([mels[i] for i in idx], torch.as_tensor(lengths[idx]))
                pred[idx] = logits.argmax(dim=1).numpy()
        return pred

    lengths = np.array([m.shape[-1] for m in mel_tr])
    history = {"loss": [], "val_uar": []}
    best = (-1.0, 0, None)
    for epoch in tqdm(range(1, settings.max_epochs + 1), desc="Fine-tuning", unit="epoch",
                      disable=bar_hidden(progress)):
        net.train()
        net.bottom.eval()  # frozen: no dropout in the lower blocks
        total = 0.0
        for idx in _batches(lengths, settings.batch_size, rng):
            lens = torch.as_tensor(lengths[idx])
            t_max = int(lens.max())
            batch = torch.stack([torch.nn.functional.pad(mel_tr[i], (0, t_max - mel_tr[i].shape[-1])) for i in idx])
            batch = spec_augment(batch, lens, settings, rng)
            loss = torch.nn.functional.cross_entropy(net(list(batch), lens), y_tr_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        val_uar = float(recall_score(y_va, predict(mel_va), average="macro", zero_division=0))
        history["loss"].append(total / len(lengths))
        history["val_uar"].append(val_uar)
        if val_uar > best[0]:
            best = (val_uar, epoch, copy.deepcopy({k: v for k, v in net.state_dict().items()
                                                   if not k.startswith("bottom.")}))
        elif epoch - best[1] >= settings.patience:
            break
    net.load_state_dict(best[2], strict=False)
    return FinetuneResult(predict(mel_te).tolist(), best[1], history)
