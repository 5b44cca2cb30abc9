"""The paper's three Keras models: a Conv1D CNN, an LSTM and the hybrid CNN-LSTM.

All three take either view of a clip computed by :mod:`ser_utils.features`:

- ``"vector"``: the paper's 187-d time-averaged vector read as a 1-D sequence
  of shape ``(187, 1)``: position = feature (counted from 0: chroma 0-11,
  mel 12-139, contrast 140-146, MFCC 147-186), one channel. This is how the paper feeds
  its Conv1D and LSTM layers; neighbouring positions are neighbouring mel
  bands or MFCC coefficients, so a small convolution kernel has something
  local to look at, but the "sequence" is not time.
- ``"frames"``: the frame sequence ``(T, 187)`` (time-normalised to ``T``
  steps), so convolution and recurrence run over **time** with the 187
  features as channels.

Architectures (``k`` = kernel size; every Conv1D uses ``padding="same"`` and ReLU)::

    cnn     Conv1D(64,k5) BN MaxPool2 Drop .2 | Conv1D(128,k5) BN MaxPool2 Drop .2
            | Conv1D(128,k3) "last_conv" BN MaxPool2 | Flatten Dense(64) Drop .4 | Dense(7, softmax)
    lstm    LSTM(64, one output per step) Drop .2 | Flatten Dense(64) Drop .4 | Dense(7, softmax)
    hybrid  Conv1D(64,k5) BN MaxPool2 Drop .2 | Conv1D(128,k5) "last_conv" BN MaxPool2 Drop .2
            | LSTM(64, one output per step) | Flatten Dense(64) Drop .4 | Dense(7, softmax)

All three **flatten** their last sequence instead of averaging it or keeping
only the LSTM's final state, because on the vector input a position *is* a
feature identity: the classifier should know whether a pattern came from the
low mel bands or from the MFCCs. For the recurrent models the per-step readout
is a choice made from development runs on the real TESS subset, where an LSTM
passing on only its final state scored lower and trained more slowly; those
runs were not kept as results files, so chapter 4's exercise 4.2 re-measures it.
The LSTM still does the reading: each step's output summarises
everything before it. The hybrid lets the convolutions turn the long input
into a shorter sequence of local patterns (187 -> 46 steps) that the LSTM then
reads in order. The last Conv1D layer of the CNN and the hybrid is always
named ``"last_conv"`` so Grad-CAM (:mod:`ser_utils.gradcam`) can find it by name.

The three builders and :func:`conv_block` are written and explained in chapters 3-5
(``#@save models`` cells); this module holds the same text.
"""

from __future__ import annotations

from .labels import EMOTIONS
from .quiet import import_quietly
from .registry import KERAS_MODELS, LAST_CONV

with import_quietly():  # TF logging must be quietened before the import; its import-time FutureWarnings stay here
    import keras
    from keras import layers

VECTOR_SHAPE = (187, 1)


def conv_block(x, filters: int, kernel: int, *, name: str | None = None, dropout: float = 0.2):
    """One stage of local pattern detection: Conv1D (ReLU) -> BatchNorm -> MaxPool(2) -> Dropout.

    ``x`` is a Keras tensor ``(batch, steps, channels)``; the result has
    ``filters`` channels and half as many steps. ``name`` names the Conv1D layer.

    Saved from chapter 3, section 3.2 (book/03_cnn.ipynb).
    """
    x = layers.Conv1D(filters, kernel, padding="same", activation="relu", name=name)(x)
    x = layers.BatchNormalization()(x)
    x = layers.MaxPooling1D(2)(x)
    return layers.Dropout(dropout)(x) if dropout else x


def build_cnn(input_shape: tuple[int, int] = VECTOR_SHAPE, n_classes: int = len(EMOTIONS), *,
              dropout: float = 0.4) -> keras.Model:
    """The Conv1D CNN: three convolution stages, flattened, one hidden dense layer.

    ``input_shape`` is ``(187, 1)`` for the vector or ``(T, 187)`` for frames;
    the output is ``(batch, n_classes)`` class probabilities. The third
    convolution is named ``"last_conv"`` (Grad-CAM, chapter 8, finds it by name).

    Saved from chapter 3, section 3.2 (book/03_cnn.ipynb).
    """
    inputs = keras.Input(shape=input_shape, name="features")
    x = conv_block(inputs, 64, 5)
    x = conv_block(x, 128, 5)
    x = conv_block(x, 128, 3, name=LAST_CONV, dropout=0.0)
    x = layers.Flatten()(x)  # keep *where* each pattern was found (a position is a feature)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="emotion")(x)
    return keras.Model(inputs, outputs, name="cnn")


def build_lstm(input_shape: tuple[int, int] = VECTOR_SHAPE, n_classes: int = len(EMOTIONS), *,
               dropout: float = 0.4, units: int = 64) -> keras.Model:
    """An LSTM (64 units) reading the input in order; its output at every step goes to one dense layer.

    On the vector input the LSTM reads the 187 features one at a time (the
    paper's reading); on frames it reads one 187-d frame per time step. The
    per-step outputs are flattened (measured better than the final state alone).

    Saved from chapter 4, section 4.2 (book/04_lstm.ipynb).
    """
    inputs = keras.Input(shape=input_shape, name="features")
    x = layers.LSTM(units, return_sequences=True, name="lstm")(inputs)  # one output per step
    x = layers.Dropout(0.2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="emotion")(x)
    return keras.Model(inputs, outputs, name="lstm")


def build_hybrid(input_shape: tuple[int, int] = VECTOR_SHAPE, n_classes: int = len(EMOTIONS), *,
                 dropout: float = 0.4, units: int = 64) -> keras.Model:
    """Two Conv1D stages feeding an LSTM(64): local patterns first, their order second.

    Each stage halves the sequence (187 -> 93 -> 46 on the vector, T -> T/4 on frames); the
    LSTM's output at every step is flattened into one dense layer. The second convolution is
    named ``"last_conv"``.

    Saved from chapter 5, section 5.1 (book/05_hybrid.ipynb).
    """
    inputs = keras.Input(shape=input_shape, name="features")
    x = conv_block(inputs, 64, 5)
    x = conv_block(x, 128, 5, name=LAST_CONV)
    x = layers.LSTM(units, return_sequences=True, name="lstm")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="emotion")(x)
    return keras.Model(inputs, outputs, name="hybrid")


BUILDERS = {"cnn": build_cnn, "lstm": build_lstm, "hybrid": build_hybrid}


def build_keras_model(name: str, input_shape: tuple[int, int] = VECTOR_SHAPE, n_classes: int = len(EMOTIONS),
                **kwargs) -> keras.Model:
    """Build ``"cnn"``, ``"lstm"`` or ``"hybrid"`` for ``input_shape`` (uncompiled).

    >>> build_keras_model("hybrid").output_shape
    (None, 7)
    """
    if name not in BUILDERS:
        raise ValueError(f"unknown Keras model {name!r}; choose from {', '.join(KERAS_MODELS)}")
    return BUILDERS[name](tuple(input_shape), n_classes, **kwargs)


def count_params(model: keras.Model) -> int:
    """Number of weights in ``model`` (trainable and not)."""
    return int(model.count_params())
