"""Pretrained speech encoders (chapter 10): Whisper's encoder, or any wav2vec2/HuBERT/WavLM, read layer by layer.

A pretrained encoder turns a clip into a sequence of vectors, one every 20 ms,
at each of its layers. :func:`load_encoder` loads one with ``from_pretrained``
from a hub id (``openai/whisper-tiny.en``, ``facebook/wav2vec2-base``...) or a
local folder (the offline Whisper tiny.en that
:func:`ser_utils.whisper_offline.convert` writes): one code path for both.
:func:`layer_states` runs a clip through it and returns every layer's output;
:func:`ensure_embeddings` pools each layer over the clip's own frames (mean
and standard deviation) for every clip of a manifest and caches the result,
keyed on the audio content and on the encoder's weights.

Whisper was trained on 30-s windows, and ``transformers``' ``WhisperEncoder``
insists on 3000 log-mel frames. A TESS clip lasts about 2 s, so 93 % of such
an input would be padding, and attention cost grows with the square of the
length. :func:`whisper_states` instead runs the encoder's own modules on the
clip's frames with the position embeddings sliced to its length: the same
weights and the same arithmetic per frame, about 15x cheaper on a 2-s clip.
Chapter 10.11 measures what it costs in accuracy (``padding="30s"`` is the
faithful variant).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UserError

#: Every pretrained encoder here reads 16 kHz audio.
SAMPLE_RATE = 16_000
#: Bumped when the pooling or the layer read-out changes, so old caches are not reused
#: (2: Whisper clips embedded in batches, equal to one at a time up to float rounding).
EMBED_VERSION = 2
#: ``"clip"``: positions sliced to the clip's length (the default); ``"30s"``: Whisper's own 30-s padding.
PADDINGS = ("clip", "30s")


class EncoderError(UserError):
    """A pretrained encoder cannot be loaded or cannot read a clip."""


@dataclass
class Encoder:
    """A loaded pretrained encoder: the network, its feature extractor and what identifies its weights."""

    source: str
    kind: str  # "whisper" (log-mel input, 30-s positions) or "ssl" (raw waveform: wav2vec2, HuBERT, WavLM)
    model: object
    extractor: object
    n_layers: int
    dim: int
    weights_key: str = field(repr=False, default="")

    @property
    def max_seconds(self) -> float:
        """The longest clip the encoder reads in one pass (Whisper: 30 s)."""
        if self.kind == "whisper":
            return self.model.config.max_source_positions * 2 * 160 / SAMPLE_RATE
        return 60.0


@contextmanager
def _quiet_loading():
    """transformers' loading bars and notices off while a checkpoint loads, restored after."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _weights_key(model) -> str:
    """A digest of every parameter's bytes: the cache key of what the encoder computes."""
    h = hashlib.sha1()
    for name, p in model.state_dict().items():
        h.update(name.encode())
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def load_encoder(source: str | os.PathLike) -> Encoder:
    """Load a pretrained speech encoder with ``from_pretrained`` from a hub id or a local folder.

    Whisper checkpoints (``WhisperModel``) keep only their encoder; other
    models go through ``AutoModel`` (wav2vec2, HuBERT, WavLM...). Without
    network access a hub id fails with :class:`EncoderError` naming the
    offline alternative.
    """
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

    src = str(source)
    # A hub id is "name" or "org/name"; anything else that is not a folder is a mistyped path.
    looks_local = isinstance(source, os.PathLike) or src.startswith(("/", ".", "~")) or src.count("/") > 1
    if looks_local and not Path(src).expanduser().is_dir():
        raise EncoderError(f"no checkpoint folder at {src}")
    try:
        with _quiet_loading():
            config = AutoConfig.from_pretrained(src)
            extractor = AutoFeatureExtractor.from_pretrained(src)
            model = AutoModel.from_pretrained(src)
    except OSError as e:
        raise EncoderError(
            f"cannot load {src!r} with from_pretrained ({str(e).splitlines()[0][:120]}); without hub access use "
            "the offline Whisper tiny.en: ser_utils.whisper_offline.convert(<folder>), then load that folder"
        ) from e
    if config.model_type == "whisper":
        model, kind = model.encoder, "whisper"
        n_layers, dim = config.encoder_layers, config.d_model
    else:
        kind = "ssl"
        n_layers, dim = config.num_hidden_layers, config.hidden_size
    model.eval()
    return Encoder(src, kind, model, extractor, n_layers, dim, _weights_key(model))


def whisper_states(encoder, mel, *, n_positions: int | None = None):
    """Every layer's output of a Whisper encoder for log-mel input ``mel`` (1, 80, T): a list of (1, T/2, d).

    The encoder's modules are run as ``WhisperEncoder.forward`` does, with the
    position embeddings sliced to the input's length instead of requiring
    3000 frames. Entry 0 is the input to the first layer (convolutions plus
    positions), entry k the output of layer k; the last entry has the final
    layer norm applied, as the decoder sees it. ``n_positions`` keeps only the
    first frames of every entry (the clip's own, when the input was padded).
    Saved from chapter 10, section 10.4 (book/10_pretrained.ipynb).
    """
    from torch.nn.functional import gelu

    x = gelu(encoder.conv1(mel))
    x = gelu(encoder.conv2(x)).permute(0, 2, 1)
    n = x.shape[1] if n_positions is None else n_positions
    x = x + encoder.embed_positions.weight[: x.shape[1]]
    states = [x]
    for layer in encoder.layers:
        x = layer(x, None)
        x = x[0] if isinstance(x, tuple) else x  # older transformers return (hidden, attention)
        states.append(x)
    states[-1] = encoder.layer_norm(x)
    return [s[:, :n] for s in states] if n != x.shape[1] else states


def layer_states(enc: Encoder, audio: np.ndarray, *, padding: str = "clip") -> np.ndarray:
    """Every layer's frame vectors for one 16-kHz clip: an array (layers + 1, frames, dim).

    ``padding="30s"`` pads a Whisper input to 30 s as the model was trained and
    keeps the frames of the clip itself; ``"clip"`` slices the positions.
    """
    import torch

    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, not {padding!r}")
    seconds = len(audio) / SAMPLE_RATE
    if seconds > enc.max_seconds:
        raise EncoderError(f"a {seconds:.1f}-s clip is longer than the {enc.max_seconds:.0f} s the encoder "
                           "reads in one pass: cut it into shorter clips")
    with torch.inference_mode():
        if enc.kind == "whisper":
            pad = "max_length" if padding == "30s" else "longest"
            mel = enc.extractor(audio, sampling_rate=SAMPLE_RATE, padding=pad, return_tensors="pt").input_features
            n_own = -(-min(len(audio) // 160, mel.shape[-1]) // 2)  # the clip's own encoder frames
            states = whisper_states(enc.model, mel, n_positions=max(n_own, 1))
        else:
            inputs = enc.extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt")
            states = enc.model(**inputs, output_hidden_states=True).hidden_states
        return torch.cat([s for s in states]).numpy()


def whisper_batch_input(encoder, mels: list):
    """A padded batch of log-mels (each (80, T_i)) up to the input of Whisper's first block.

    Returns ``(x, mask, own)``: the (clips, frames, d) input, the additive
    attention mask that hides each clip's padded frames as keys, and each
    clip's own frame count. The first convolution's outputs past a clip's end
    are zeroed, because alone the second convolution sees its zero padding there.
    """
    import torch
    from torch.nn.functional import gelu, pad

    lengths = torch.tensor([m.shape[-1] for m in mels])
    t_max = int(lengths.max())
    batch = torch.stack([pad(m, (0, t_max - m.shape[-1])) for m in mels])
    x = gelu(encoder.conv1(batch))
    x = x * (torch.arange(t_max)[None, :] < lengths[:, None])[:, None, :]
    x = gelu(encoder.conv2(x)).permute(0, 2, 1)
    own = (lengths + 1) // 2  # the second convolution halves the frames (stride 2, padding 1)
    x = x + encoder.embed_positions.weight[: x.shape[1]]
    keys = torch.arange(x.shape[1])[None, :] < own[:, None]
    mask = torch.zeros(keys.shape, dtype=x.dtype).masked_fill(~keys, torch.finfo(x.dtype).min)[:, None, None, :]
    return x, mask, own


def run_blocks(blocks, x, mask) -> list:
    """``x`` through each encoder block in turn (with ``mask``); every block's output, in order."""
    out = []
    for block in blocks:
        x = block(x, mask)
        x = x[0] if isinstance(x, tuple) else x  # older transformers return (hidden, attention)
        out.append(x)
    return out


def whisper_batch_states(encoder, mels: list) -> list:
    """:func:`whisper_states` for several clips at once: ``mels`` is a list of (80, T_i) log-mel tensors.

    The clips are padded to the longest with zeros and run as one batch; the
    masks of :func:`whisper_batch_input` keep each clip's arithmetic what it is
    alone, and each clip's states are cut back to its own frames. Returns one
    (layers + 1, frames_i, d) tensor per clip; equal to :func:`whisper_states`
    up to float rounding (``tests/test_encoders.py`` checks 1e-4).
    """
    import torch

    x, mask, own = whisper_batch_input(encoder, mels)
    states = [x, *run_blocks(encoder.layers, x, mask)]
    states[-1] = encoder.layer_norm(states[-1])
    stacked = torch.stack(states, dim=1)  # (clips, layers + 1, frames, d)
    return [stacked[i, :, : int(n)] for i, n in enumerate(own)]


def batch_layer_states(enc: Encoder, clips: list[np.ndarray]) -> list[np.ndarray]:
    """:func:`layer_states` (positions sliced to each clip) for several 16-kHz clips, batched for a Whisper encoder.

    Other encoders, and a clip over the length limit, go one by one through
    :func:`layer_states` (which raises for the long clip).
    """
    import torch

    if enc.kind != "whisper" or any(len(a) / SAMPLE_RATE > enc.max_seconds for a in clips):
        return [layer_states(enc, a) for a in clips]
    with torch.inference_mode():
        mels = [enc.extractor(a, sampling_rate=SAMPLE_RATE, padding="longest", return_tensors="pt").input_features[0]
                for a in clips]
        return [s.numpy() for s in whisper_batch_states(enc.model, mels)]


@dataclass
class EmbeddingSet:
    """Pooled encoder outputs of every usable clip: ``mean`` and ``std`` are (clips, layers + 1, dim)."""

    ids: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    meta: pd.DataFrame
    failed: pd.DataFrame
    source: str
    padding: str
    computed_now: bool = False
    wall_time: float = 0.0

    def __len__(self) -> int:
        return len(self.ids)

    def layer(self, k: int, *, with_std: bool = False) -> np.ndarray:
        """The pooled vectors of layer ``k`` (mean, or mean and sd side by side)."""
        return np.hstack([self.mean[:, k], self.std[:, k]]) if with_std else self.mean[:, k]

    def index(self, ids) -> np.ndarray:
        """Row positions of the given clip ids (ids without an embedding are skipped)."""
        pos = {c: i for i, c in enumerate(self.ids)}
        return np.array([pos[i] for i in ids if i in pos], dtype=int)


def _cache_key(ok: pd.DataFrame, enc: Encoder, padding: str) -> str:
    """The shared content key (:func:`ser_utils.cache.cache_key`): read-out version, weights, padding, every clip's full digest."""
    from .cache import cache_key

    return cache_key({"embeddings": EMBED_VERSION, "weights": enc.weights_key, "padding": padding},
                     zip(ok["clip_id"], ok["path"], strict=True))


def _read_cache(path: Path, n: int, n_layers: int, dim: int) -> dict | None:
    """The cached arrays, or None when the file is damaged or does not match the clips and the encoder."""
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in ("ids", "mean", "std", "failed_ids", "failed_reasons")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    ok_shape = d["mean"].shape == d["std"].shape == (len(d["ids"]), n_layers + 1, dim)
    if not ok_shape or len(d["ids"]) + len(d["failed_ids"]) != n or not np.isfinite(d["mean"]).all():
        return None
    return d


def _prefetched(paths, ahead: int = 8):
    """Each path's clip at 16 kHz (or the exception reading it raised), read up to ``ahead`` clips in advance."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from .data import load_clip

    def read(path):
        try:
            return load_clip(path, SAMPLE_RATE)
        except Exception as e:  # noqa: BLE001  (handed to the caller, which reports the clip as failed)
            return e

    with ThreadPoolExecutor(max_workers=1) as pool:
        queue = deque()
        for path in paths:
            queue.append(pool.submit(read, path))
            if len(queue) > ahead:
                yield queue.popleft().result()
        while queue:
            yield queue.popleft().result()


#: Clips read ahead and sorted by length before batching (the clips of a batch are then of similar
#: length, so little is padded), and clips per batch: measured on 2 cores, batches of 32 run a
#: Whisper tiny encoder about 2x faster than one clip at a time (benchmarks/embeddings.py).
BATCH_WINDOW, BATCH_SIZE = 256, 32


def _embedded(enc: Encoder, clips, padding: str):
    """(clip id, layer states, or the one-line reason it failed) for each (clip id, audio or exception).

    Whisper with sliced positions runs in batches of clips of similar length
    (:func:`batch_layer_states`); other encoders and the 30-s padding one clip
    at a time. A clip that could not be read, or is too long, fails alone.
    """
    from itertools import islice

    def reason(e: Exception) -> str:
        return str(e).splitlines()[0][:200]

    batched = enc.kind == "whisper" and padding == "clip"
    clips = iter(clips)
    while window := list(islice(clips, BATCH_WINDOW if batched else 1)):
        out: dict[str, np.ndarray | str] = {}
        good = []
        for cid, audio in window:
            if isinstance(audio, Exception):
                out[cid] = reason(audio)
            elif not batched or len(audio) / SAMPLE_RATE > enc.max_seconds:
                try:  # one at a time; the too-long clip raises its EncoderError here
                    out[cid] = layer_states(enc, audio, padding=padding)
                except (UserError, RuntimeError, ValueError) as e:
                    out[cid] = reason(e)
            else:
                good.append((cid, audio))
        good.sort(key=lambda item: len(item[1]))
        for i in range(0, len(good), BATCH_SIZE):
            part = good[i: i + BATCH_SIZE]
            try:
                out.update(zip([c for c, _ in part], batch_layer_states(enc, [a for _, a in part]), strict=True))
            except (RuntimeError, ValueError) as e:
                out.update((c, reason(e)) for c, _ in part)
        yield from ((cid, out[cid]) for cid, _ in window)  # in the manifest's order


def ensure_embeddings(manifest: pd.DataFrame, artifacts_dir: str | os.PathLike, enc: Encoder, *,
                      padding: str = "clip", progress: bool = True) -> EmbeddingSet:
    """Pooled embeddings of every usable clip of ``manifest``, computed once and cached.

    The cache file ``<artifacts>/embeddings/<key>.npz`` is keyed on every
    clip's id and file content, the encoder's weights and ``padding``; it is
    written atomically and validated on read (shapes, clip count, finite
    values), a damaged one recomputed with a warning. A clip the encoder
    cannot read is listed in ``failed`` with its reason, not fatal.
    """
    from tqdm.auto import tqdm

    from .data import usable
    from .outputs import atomic_write
    from .quiet import bar_hidden

    start = time.perf_counter()
    ok = usable(manifest).reset_index(drop=True)
    path = Path(artifacts_dir) / "embeddings" / f"{_cache_key(ok, enc, padding)}.npz"
    cached = _read_cache(path, len(ok), enc.n_layers, enc.dim) if path.exists() else None
    if path.exists() and cached is None:
        warnings.warn(f"embedding cache {path} is damaged or stale; recomputing it", stacklevel=2)
    computed = cached is None
    if computed:
        ids, means, sds, failed = [], [], [], []
        # The next window is read and resampled in a thread while the encoder runs on this one.
        clips = zip(ok["clip_id"], _prefetched(ok["path"], ahead=BATCH_WINDOW), strict=True)
        with tqdm(total=len(ok), desc="Embedding clips", unit="clip", disable=bar_hidden(progress)) as bar:
            for cid, states in _embedded(enc, clips, padding):
                bar.update()
                if isinstance(states, str):
                    failed.append((cid, states))
                    continue
                ids.append(cid)
                means.append(states.mean(axis=1))
                sds.append(states.std(axis=1))
        shape = (0, enc.n_layers + 1, enc.dim)
        cached = {"ids": np.array(ids, dtype=str),
                  "mean": np.array(means, dtype=np.float32).reshape(-1, *shape[1:]),
                  "std": np.array(sds, dtype=np.float32).reshape(-1, *shape[1:]),
                  "failed_ids": np.array([f[0] for f in failed], dtype=str),
                  "failed_reasons": np.array([f[1] for f in failed], dtype=str)}
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, what="embedding cache") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **cached)
        with atomic_write(path.with_suffix(".json"), what="embedding cache description") as tmp:
            tmp.write_text(json.dumps({"source": enc.source, "padding": padding, "n_clips": len(ids),
                                       "version": EMBED_VERSION}, indent=1))
    meta = ok.set_index("clip_id").loc[list(cached["ids"])].reset_index()
    failed = pd.DataFrame({"clip_id": cached["failed_ids"], "reason": cached["failed_reasons"]})
    return EmbeddingSet(cached["ids"], cached["mean"], cached["std"], meta, failed, enc.source, padding,
                        computed_now=computed, wall_time=time.perf_counter() - start)
