"""The model registry: every model family, and the one place a model name is read or written.

A model name such as ``hybrid-frames-spknorm-aug`` is a small grammar: a base
architecture followed by variant suffixes. Each variant gets its own results
file (``results/<name>__<protocol>__seed<k>.json``), so the name is what ties a
score to the exact recipe. :class:`ModelSpec` is that grammar as a type:
:meth:`ModelSpec.parse` reads a name, :attr:`ModelSpec.name` writes the
canonical one, and :attr:`ModelSpec.family` is the :class:`ModelFamily` entry
that trains it. Callers pass the parsed spec down; nobody splits names.

A family is one object (:class:`ModelFamily`): its base architectures, its
name suffixes, the training options it accepts, and how it trains a fold,
saves, loads and predicts. :data:`FAMILY_ENTRIES` lists the built-in ones, one
line each (the object is imported on first use, so a family module must be
cheap to import: heavy libraries inside its functions). Adding a family = its
module + one line in :data:`FAMILY_ENTRIES` (or :func:`register_family` at run
time, as ``tests/test_registry.py`` does with a toy k-NN) + its test.

Suffixes of the built-in families (canonical order):

- baselines ``duration``, ``logreg``, ``rf``: ``prosody`` or ``egemaps`` (the feature view, chapter 9;
  the 187-d vector is the default), ``spknorm`` (neither for ``duration``);
- Keras ``cnn``, ``lstm``, ``hybrid``: ``frames`` (or ``vector``, the default),
  ``spknorm``, ``cw`` (balanced class weights), ``aug`` (frequency-warped copies);
- vision ``vit``, ``beit``: ``pretrained`` (fine-tuned weights), ``specaug``
  (SpecAugment masking);
- pretrained encoder ``whisper`` (chapter 10): the read-out ``probe`` (``probe30s`` with 30-s padding)
  or ``weighted``, then the layer ``layer0`` ... ``layer32``, ``select`` (chosen across the training
  speakers) or ``crema`` (chosen on CREMA-D).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from .run_context import RunMode

#: Base architectures of the built-in families (each family module reads its own from here).
BASELINE_BASES = ("duration", "logreg", "rf")
KERAS_MODELS = ("cnn", "lstm", "hybrid")
VISION_MODELS = ("vit", "beit")
#: The baselines (with their per-speaker-normalised variants) that chapter 7 can compute itself.
BASELINES = ("duration", "logreg", "rf", "logreg-spknorm", "rf-spknorm")
#: Input views of the Keras models: the 187-d time-averaged vector or the frame sequence.
INPUTS = ("vector", "frames")
#: Input views of the baselines: the 187-d vector, the 13 prosody values or the 88 eGeMAPS values.
BASELINE_INPUTS = ("vector", "prosody", "egemaps")
#: The Keras models' last convolution layer: built under this name, read by Grad-CAM.
LAST_CONV = "last_conv"

#: One line per built-in family: its name and the ``module:object`` of its :class:`ModelFamily`.
FAMILY_ENTRIES: dict[str, str] = {
    "baseline": "ser_utils.baselines:FAMILY",
    "keras": "ser_utils.training:FAMILY",
    "vision": "ser_utils.vision:FAMILY",
    "encoder": "ser_utils.encoder_family:FAMILY",
}
_LOADED: dict[str, ModelFamily] = {}


@dataclass(frozen=True)
class FoldJob:
    """What a family needs to train one fold besides the data: the spec, seed, run mode, options, where to save."""

    spec: ModelSpec
    seed: int = 0
    mode: RunMode = RunMode()
    options: Mapping = field(default_factory=dict)
    model_dir: Path | None = None  # None: nothing is saved
    progress: bool = False

    @classmethod
    def of(cls, model: str, **fields) -> FoldJob:
        """The job of a model name: ``FoldJob.of("cnn", seed=0, mode=ws.mode)``."""
        return cls(ModelSpec.parse(model), **fields)


class ModelFamily:
    """One model family: the grammar of its names, the options it accepts, and its training and inference.

    Subclasses set the class attributes and implement :meth:`train_fold`;
    families that save models implement :meth:`save`, :meth:`load` and
    :meth:`predict` (the built-in Keras and vision families, and the toy
    k-NN of the tests, do).
    """

    name: str = ""
    #: Base architectures (the first word of a model name).
    bases: tuple[str, ...] = ()
    #: Name suffix -> (ModelSpec field, value); the order is the canonical order of a name.
    #: The field ``"flag"`` adds a family-specific word to :attr:`ModelSpec.flags`.
    suffixes: Mapping[str, tuple[str, object]] = {}
    #: Input views a spec may name (``ModelSpec.input``).
    inputs: tuple[str, ...] = ("vector",)
    #: Training options accepted in ``run_experiment(..., options=...)``.
    options: frozenset[str] = frozenset()
    #: Variant flags of ``python -m ser_utils train`` this family takes (``input``, ``spknorm``, ``augment``, ``pretrained``).
    cli_flags: tuple[str, ...] = ()
    #: True when a results name with variant suffixes still compares with the paper's figure for its base.
    paper_compares_base: bool = False

    def suffixes_for(self, base: str) -> Mapping[str, tuple[str, object]]:
        """The suffixes ``base`` accepts (all of the family's unless a base says otherwise)."""
        return self.suffixes

    def is_deterministic(self, spec: ModelSpec) -> bool:
        """True when training ``spec`` gives the same model at every seed (nothing random in it), so one
        run has no seed spread to measure; the inference rule needs two seeds of anything else."""
        return False

    def check(self, spec: ModelSpec, options: Mapping) -> None:
        """Raise ValueError for options this family does not accept (or a spec it cannot train here)."""
        unknown = set(options) - set(self.options)
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))} for {self.name} models "
                             f"({spec.name}); known: {', '.join(sorted(self.options)) or 'none'}")

    def cli_options(self, flags: Mapping) -> dict:
        """The training options of the ``train`` command's variant ``flags`` (those given, as the family wants them)."""
        return {k: v for k, v in flags.items() if k in self.options}

    def train_fold(self, ws, split, job: FoldJob):
        """Train ``job.spec`` on ``split`` of the workspace ``ws`` and return a :class:`~ser_utils.evaluation.FoldResult`."""
        raise NotImplementedError

    def n_clips(self, ws, spec: ModelSpec) -> int:
        """How many clips the family's input view holds (the results record's ``dataset.n_clips``)."""
        return len(ws.features)

    def save(self, model, path: Path, sidecar: dict) -> Path:
        raise NotImplementedError(f"{self.name} models are not saved")

    def load(self, path: Path):
        """``(model, sidecar)`` of a saved model."""
        raise NotImplementedError(f"{self.name} models are not saved")

    def predict(self, model, x):
        """Class probabilities ``(N, 7)`` for inputs prepared like the training data."""
        raise NotImplementedError


def register_family(family: ModelFamily) -> ModelFamily:
    """Make ``family`` known to :class:`ModelSpec` (its bases must be new); returns it."""
    clash = set(family.bases) & set(all_bases())
    if family.name in families() or clash:
        raise ValueError(f"family {family.name!r} or bases {sorted(clash)} already registered")
    _LOADED[family.name] = family
    return family


def unregister_family(name: str) -> None:
    """Forget a family registered at run time (tests)."""
    if name in FAMILY_ENTRIES:
        raise ValueError(f"{name!r} is a built-in family")
    _LOADED.pop(name, None)


def families() -> dict[str, ModelFamily]:
    """Every family, built-in (imported on first use) and registered at run time."""
    for name, entry in FAMILY_ENTRIES.items():
        if name not in _LOADED:
            module, _, attr = entry.partition(":")
            _LOADED[name] = getattr(importlib.import_module(module), attr)
    return dict(_LOADED)


def all_bases() -> tuple[str, ...]:
    """Every base architecture of every family, in registry order."""
    return tuple(b for f in families().values() for b in f.bases)


def family_of_base(base: str) -> ModelFamily:
    """The family of a base architecture; ValueError when unknown."""
    for family in families().values():
        if base in family.bases:
            return family
    raise ValueError(f"unknown model {base!r}; choose from {', '.join(all_bases())}")


@dataclass(frozen=True)
class ModelSpec:
    """One trainable model: base architecture plus the variant choices its name spells.

    >>> ModelSpec.parse("hybrid-frames-spknorm-aug")
    ModelSpec(base='hybrid', input='frames', spknorm=True, class_weights=False, augment=True, pretrained=False, flags=frozenset())
    >>> ModelSpec("vit", augment=True).name
    'vit-specaug'
    """

    base: str
    input: str = "vector"
    spknorm: bool = False
    class_weights: bool = False
    augment: bool = False
    pretrained: bool = False
    flags: frozenset[str] = frozenset()  # a family's own variant words (suffix field "flag")

    def __post_init__(self) -> None:
        family = family_of_base(self.base)
        suffixes = family.suffixes_for(self.base)
        allowed = {f for f, _ in suffixes.values()}
        for fld, default in (("input", "vector"), ("spknorm", False), ("class_weights", False),
                             ("augment", False), ("pretrained", False)):
            if getattr(self, fld) != default and fld not in allowed:
                raise ValueError(f"{self.base!r} has no {fld!r} variant")
        words = {v for f, v in suffixes.values() if f == "flag"}
        if not set(self.flags) <= words:
            raise ValueError(f"{self.base!r} has no variant {', '.join(sorted(set(self.flags) - words))}")
        if self.input not in family.inputs:
            raise ValueError(f"input of {self.base!r} must be one of {family.inputs}, not {self.input!r}")

    @property
    def family(self) -> ModelFamily:
        """The :class:`ModelFamily` entry that trains, saves, loads and predicts this model."""
        return family_of_base(self.base)

    @classmethod
    def parse(cls, name: str) -> ModelSpec:
        """The spec a model name spells; ValueError naming the unknown part otherwise."""
        base, *suffixes = str(name).split("-")
        known = family_of_base(base).suffixes_for(base)
        fields: dict[str, object] = {}
        flags: set[str] = set()
        for s in suffixes:
            if s not in known:
                raise ValueError(f"unknown model variant {s!r} in {name!r}; known for {base}: "
                                 f"{', '.join(known) or 'none'}")
            key, value = known[s]
            if key == "flag":
                flags.add(str(value))
            else:
                fields[key] = value
        return cls(base, **fields, flags=frozenset(flags))

    @classmethod
    def parse_or_none(cls, name: str) -> ModelSpec | None:
        """:meth:`parse`, or None for a name outside the grammar (e.g. a results file from elsewhere)."""
        try:
            return cls.parse(name)
        except ValueError:
            return None

    @property
    def name(self) -> str:
        """The canonical name (results files, saved models, tables)."""
        parts = [self.base]
        for suffix, (fld, value) in self.family.suffixes_for(self.base).items():
            if fld == "input" and value == "vector":
                continue  # the default view is not spelled
            if (value in self.flags) if fld == "flag" else getattr(self, fld) == value:
                parts.append(suffix)
        return "-".join(parts)

    def with_options(self, options: Mapping | None) -> ModelSpec:
        """This spec with the variant choices of a training ``options`` dict applied.

        ``input``, ``spknorm``, ``class_weights``, ``augment`` (a number of
        copies counts as on) and ``pretrained`` (a hub id or folder counts as on)
        set the matching field; other options (batch size, learning rate...)
        do not change the name and are ignored here.
        """
        changes = {k: options[k] for k in ("input", "spknorm", "class_weights", "augment", "pretrained")
                   if options and k in options}
        changes = {k: (v if k == "input" else bool(v)) for k, v in changes.items()}
        return replace(self, **changes)

    @property
    def uses_test_speaker(self) -> bool:
        """True when the test speaker's unlabelled statistics are used (per-speaker standardisation)."""
        return self.spknorm
