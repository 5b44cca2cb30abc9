"""The pretrained-encoder family in the registry: a frozen speech encoder read by a linear probe.

Chapter 10 teaches the read-out; this module makes it a model like the others,
so ``python -m ser_utils train whisper --protocol speaker``, the grid, the
results table and ``predict --model FOLDER`` handle it with no other change.

Names are chapter 10's (:mod:`ser_utils.encoder_runs`): ``whisper-probe-layer2``
reads a layer fixed in advance, ``whisper-probe-select`` chooses it across
the *training* speakers (grouped cross-validation,
:func:`~ser_utils.probes.select_layer`; it needs two or more training
speakers); ``probe30s`` instead of ``probe`` embeds with Whisper's 30-s
padding. ``whisper-probe-crema`` (a layer chosen on another corpus) and
``whisper-weighted`` (the learned layer weights) are run by
``python -m ser_utils pretrained-reference`` only. Option ``encoder``: a hub id
or a checkpoint folder, loaded with ``from_pretrained`` (default: the offline
Whisper tiny.en, converted once into ``<artifacts>/pretrained``).
Each fold's probe is saved as a probe folder (:mod:`ser_utils.encoder_model`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .corpora import EMOTIONS
from .errors import UserError
from .evaluation import FoldResult
from .registry import FoldJob, ModelFamily, ModelSpec
from .splits import Split

#: Layers a name can fix (``whisper-probe-layer0`` ... ``layer32``: Whisper large has 32 blocks).
MAX_LAYER = 32


class EncoderFamily(ModelFamily):
    """A frozen pretrained encoder, mean-pooled per layer, read by chapter 10's logistic-regression probe."""

    name = "encoder"
    bases = ("whisper",)
    suffixes = {"probe": ("flag", "probe"), "probe30s": ("flag", "probe30s"), "weighted": ("flag", "weighted"),
                "finetune": ("flag", "finetune"),
                **{f"layer{k}": ("flag", f"layer{k}") for k in range(MAX_LAYER + 1)},
                "select": ("flag", "select"), "crema": ("flag", "crema")}
    options = frozenset({"encoder", "top_layers"})

    def __init__(self) -> None:
        self._last: tuple[tuple, object] | None = None  # (key, EmbeddingSet): folds of one run share it

    def check(self, spec: ModelSpec, options) -> None:
        super().check(spec, options)
        if "finetune" in spec.flags:
            if spec.flags != {"finetune"}:
                raise ValueError(f"{spec.name!r}: whisper-finetune takes no other suffix (the layers it trains are "
                                 "--option top_layers=K, default 2)")
            return
        if "top_layers" in options:
            raise ValueError(f"option top_layers applies to whisper-finetune, not {spec.name}")
        pooling = spec.flags & {"probe", "probe30s", "weighted"}
        layer = {f for f in spec.flags if f.startswith("layer")} | (spec.flags & {"select", "crema"})
        if "weighted" in pooling or "crema" in layer:
            raise ValueError(f"{spec.name} is run by `python -m ser_utils pretrained-reference` (chapter 10), "
                             "not by train; train whisper-probe-layerK or whisper-probe-select")
        if len(pooling) != 1 or len(layer) != 1:
            raise ValueError(f"{spec.name!r} must name one read-out and one layer rule, "
                             "e.g. whisper-probe-layer2 or whisper-probe30s-select")

    def is_deterministic(self, spec: ModelSpec) -> bool:
        return bool(spec.flags & {"probe", "probe30s"})  # logistic regression on frozen embeddings

    @staticmethod
    def padding(spec: ModelSpec) -> str:
        """The embedding's padding a name asks for (:data:`~ser_utils.encoders.PADDINGS`)."""
        return "30s" if "probe30s" in spec.flags else "clip"

    def embeddings(self, ws, options, padding: str = "clip"):
        """The workspace's pooled embeddings (computed once, then read from the cache)."""
        from .encoders import ensure_embeddings, load_encoder
        from .whisper_offline import CHECKPOINT_NAME, convert

        source = options.get("encoder") or str(convert(ws.artifacts_dir / "pretrained" / CHECKPOINT_NAME).folder)
        key = (str(ws.artifacts_dir), str(source), padding, tuple(ws.manifest["clip_id"]))
        if self._last is None or self._last[0] != key:
            emb = ensure_embeddings(ws.manifest, ws.artifacts_dir, load_encoder(source), padding=padding,
                                    progress=ws.feature_progress)
            self._last = (key, emb)
        return self._last[1]

    def n_clips(self, ws, spec: ModelSpec) -> int:
        return ws.summary.n_ok

    def train_fold(self, ws, split: Split, job: FoldJob) -> FoldResult:
        if "finetune" in job.spec.flags:
            return self._finetune_fold(ws, split, job)
        from .encoder_model import ProbeModel
        from .probes import fit_readout, select_layer

        emb = self.embeddings(ws, job.options, self.padding(job.spec))
        emotions = tuple(e for e in EMOTIONS if e in set(emb.meta["emotion"]))
        extra: dict = {}
        fixed = [f for f in job.spec.flags if f.startswith("layer")]
        if fixed:
            layer = int(fixed[0].removeprefix("layer"))
            if layer >= emb.mean.shape[1]:
                raise UserError(f"{job.spec.name} reads layer {layer}; {emb.source} has layers 0-{emb.mean.shape[1] - 1}")
        else:
            try:
                layer, table = select_layer(emb, split, emotions)
            except ValueError as e:
                raise UserError(f"{e} (name the layer instead, e.g. whisper-probe-layer2, chosen on another corpus)") from None
            extra["inner_uar"] = table["inner_uar"].round(2).tolist()
        clf, train_rows = fit_readout(emb, split.train, layer, emotions, seed=job.seed)
        test_rows = emb.index(split.test)
        test_rows = test_rows[np.isin(emb.meta["emotion"].to_numpy()[test_rows], emotions)]
        proba = self.predict(clf, emb.mean[test_rows, layer])
        extra |= {"chosen_layer": layer, "encoder": str(emb.source), "padding": emb.padding}
        if job.model_dir is not None:
            folder = Path(job.model_dir) / f"{job.spec.name}__{split.protocol}__{split.fold}__seed{job.seed}"
            trained_on = {"protocol": split.protocol, "fold": split.fold, "seed": int(job.seed),
                          "n_clips": len(train_rows),
                          "train_speakers": sorted(set(emb.meta["speaker"].astype(str).to_numpy()[train_rows]))}
            extra["model_path"] = str(self.save(ProbeModel(str(emb.source), layer, emotions, clf), folder, trained_on))
        classes = None if len(emotions) == len(EMOTIONS) else sorted(EMOTIONS.index(e) for e in emotions)
        return FoldResult(split.fold, list(emb.ids[test_rows]), emb.meta["emotion"].map(EMOTIONS.index).to_numpy()[test_rows].tolist(),
                          proba.argmax(axis=1).tolist(), len(train_rows), len(emb.index(split.val)),
                          classes=classes, extra=extra)

    def _finetune_fold(self, ws, split: Split, job: FoldJob) -> FoldResult:
        """``whisper-finetune``: the top blocks trained with a head (:mod:`ser_utils.finetune`); nothing is saved."""
        from dataclasses import asdict, replace

        from .data import load_clip, usable
        from .encoders import SAMPLE_RATE, load_encoder
        from .finetune import FinetuneSettings, finetune_fold
        from .whisper_offline import CHECKPOINT_NAME, convert

        source = job.options.get("encoder") or str(convert(ws.artifacts_dir / "pretrained" / CHECKPOINT_NAME).folder)
        enc = load_encoder(source)
        ok = usable(ws.manifest).set_index("clip_id")
        emotions = tuple(e for e in EMOTIONS if e in set(ok["emotion"]))
        settings = FinetuneSettings(top_layers=int(job.options.get("top_layers", 2)))
        if job.mode.quick:
            settings = replace(settings, max_epochs=1, max_train_clips=48, batch_size=8)
        if job.mode.epochs:
            settings = replace(settings, max_epochs=job.mode.epochs)

        def side(ids):
            ids = [i for i in ids if i in ok.index and ok.at[i, "emotion"] in emotions]
            return ids, [load_clip(ok.at[i, "path"], SAMPLE_RATE) for i in ids], \
                np.array([emotions.index(ok.at[i, "emotion"]) for i in ids])

        (_, x_tr, y_tr), (_, x_va, y_va), (test_ids, x_te, y_te) = side(split.train), side(split.val), side(split.test)
        try:
            out = finetune_fold(enc, (x_tr, y_tr), (x_va, y_va), x_te, len(emotions), settings, seed=job.seed,
                                progress=job.progress)
        except ValueError as e:
            raise UserError(f"{job.spec.name}: {e}") from None
        to_label = np.array([EMOTIONS.index(e) for e in emotions])
        classes = None if len(emotions) == len(EMOTIONS) else sorted(to_label.tolist())
        extra = {"encoder": str(source), "settings": asdict(settings)}
        return FoldResult(split.fold, test_ids, to_label[y_te].tolist(), to_label[np.array(out.y_pred, dtype=int)].tolist(),
                          len(x_tr), len(x_va), epochs=out.best_epoch, history=out.history, classes=classes,
                          extra=extra)

    def save(self, model, path: Path, sidecar: dict) -> Path:
        from dataclasses import replace

        from .encoder_model import save_probe

        return save_probe(replace(model, trained_on={**model.trained_on, **sidecar}), path)

    def load(self, path: Path):
        from .encoder_model import load_probe

        probe = load_probe(path)
        return probe, probe.trained_on

    def predict(self, model, x) -> np.ndarray:
        """Probabilities ``(N, 7)`` in :data:`EMOTIONS` order (zero for emotions the probe never saw)."""
        clf = getattr(model, "classifier", model)
        probs = np.zeros((len(x), len(EMOTIONS)))
        if len(x):
            probs[:, [EMOTIONS.index(str(c)) for c in clf.classes_]] = clf.predict_proba(x)
        return probs


FAMILY = EncoderFamily()
