"""The model registry: every model the course trains, and the one place its name is read or written.

A model name such as ``hybrid-frames-spknorm-aug`` is a small grammar: a base
architecture followed by variant suffixes. Each variant gets its own results
file (``results/<name>__<protocol>__seed<k>.json``), so the name is what ties a
score to the exact recipe. :class:`ModelSpec` is that grammar as a type:
:meth:`ModelSpec.parse` reads a name, :attr:`ModelSpec.name` writes the
canonical one, and every other module asks the spec (its family, input view,
options) instead of splitting strings.

Suffixes by family (canonical order):

- baselines ``duration``, ``logreg``, ``rf``: ``prosody`` or ``egemaps`` (the feature view, chapter 9;
  the 187-d vector is the default), ``spknorm`` (neither for ``duration``);
- Keras ``cnn``, ``lstm``, ``hybrid``: ``frames`` (or ``vector``, the default),
  ``spknorm``, ``cw`` (balanced class weights), ``aug`` (frequency-warped copies);
- vision ``vit``, ``beit``: ``pretrained`` (fine-tuned weights), ``specaug``
  (SpecAugment masking).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

#: Base architectures by family.
BASELINE_BASES = ("duration", "logreg", "rf")
KERAS_MODELS = ("cnn", "lstm", "hybrid")
VISION_MODELS = ("vit", "beit")
#: The baselines (with their per-speaker-normalised variants) that chapter 7 can compute itself.
BASELINES = ("duration", "logreg", "rf", "logreg-spknorm", "rf-spknorm")
ALL_MODELS = BASELINE_BASES + KERAS_MODELS + VISION_MODELS
#: Input views of the Keras models: the 187-d time-averaged vector or the frame sequence.
INPUTS = ("vector", "frames")
#: Input views of the baselines: the 187-d vector, the 13 prosody values or the 88 eGeMAPS values.
BASELINE_INPUTS = ("vector", "prosody", "egemaps")
#: The Keras models' last convolution layer: built under this name, read by Grad-CAM.
LAST_CONV = "last_conv"

#: Suffix -> (field, value), per family; the order of each dict is the canonical order of the name.
_SUFFIXES: dict[str, dict[str, tuple[str, object]]] = {
    "baseline": {"prosody": ("input", "prosody"), "egemaps": ("input", "egemaps"), "spknorm": ("spknorm", True)},
    "keras": {"vector": ("input", "vector"), "frames": ("input", "frames"), "spknorm": ("spknorm", True),
              "cw": ("class_weights", True), "aug": ("augment", True)},
    "vision": {"pretrained": ("pretrained", True), "specaug": ("augment", True)},
}


def family_of_base(base: str) -> str:
    """``"baseline"``, ``"keras"`` or ``"vision"`` for a base architecture; ValueError when unknown."""
    for family, bases in (("baseline", BASELINE_BASES), ("keras", KERAS_MODELS), ("vision", VISION_MODELS)):
        if base in bases:
            return family
    raise ValueError(f"unknown model {base!r}; choose from {', '.join(ALL_MODELS)}")


@dataclass(frozen=True)
class ModelSpec:
    """One trainable model: base architecture plus the variant choices its name spells.

    >>> ModelSpec.parse("hybrid-frames-spknorm-aug")
    ModelSpec(base='hybrid', input='frames', spknorm=True, class_weights=False, augment=True, pretrained=False)
    >>> ModelSpec("vit", augment=True).name
    'vit-specaug'
    """

    base: str
    input: str = "vector"
    spknorm: bool = False
    class_weights: bool = False
    augment: bool = False
    pretrained: bool = False

    def __post_init__(self) -> None:
        family = family_of_base(self.base)
        allowed = {f for f, _ in _SUFFIXES[family].values()}
        if self.base == "duration":
            allowed = set()
        for fld, default in (("input", "vector"), ("spknorm", False), ("class_weights", False),
                             ("augment", False), ("pretrained", False)):
            if getattr(self, fld) != default and fld not in allowed:
                raise ValueError(f"{self.base!r} has no {fld!r} variant")
        inputs = BASELINE_INPUTS if family == "baseline" else INPUTS
        if self.input not in inputs:
            raise ValueError(f"input of {self.base!r} must be one of {inputs}, not {self.input!r}")

    @property
    def family(self) -> str:
        """``"baseline"``, ``"keras"`` or ``"vision"``: which module trains it."""
        return family_of_base(self.base)

    @classmethod
    def parse(cls, name: str) -> ModelSpec:
        """The spec a model name spells; ValueError naming the unknown part otherwise."""
        base, *suffixes = str(name).split("-")
        family = family_of_base(base)
        known = {} if base == "duration" else _SUFFIXES[family]
        fields: dict[str, object] = {}
        for s in suffixes:
            if s not in known:
                raise ValueError(f"unknown model variant {s!r} in {name!r}; known for {base}: "
                                 f"{', '.join(known) or 'none'}")
            key, value = known[s]
            fields[key] = value
        return cls(base, **fields)

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
        for suffix, (fld, value) in _SUFFIXES[self.family].items():
            if fld == "input" and value == "vector":
                continue  # the default view is not spelled
            if getattr(self, fld) == value:
                parts.append(suffix)
        return "-".join(parts)

    def with_options(self, options: dict | None) -> ModelSpec:
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
