"""The three Keras builders: output shapes on both input views, and the layer Grad-CAM looks for."""

from __future__ import annotations

import pytest

from ser_utils.models import LAST_CONV, VECTOR_SHAPE, build_keras_model, count_params
from ser_utils.registry import KERAS_MODELS


@pytest.mark.parametrize("name", KERAS_MODELS)
@pytest.mark.parametrize("shape", [VECTOR_SHAPE, (16, 187)], ids=["vector", "frames"])
def test_builder_output_is_seven_class_probabilities(name, shape):
    import numpy as np

    model = build_keras_model(name, shape)
    assert model.input_shape == (None, *shape)
    assert model.output_shape == (None, 7)
    probs = np.asarray(model(np.zeros((3, *shape), dtype="float32")))
    assert probs.shape == (3, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert count_params(model) > 10_000


@pytest.mark.parametrize("name", ["cnn", "hybrid"])
def test_last_conv_is_the_last_conv1d_layer(name):
    import keras

    model = build_keras_model(name)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv1D)]
    assert len(convs) >= 2
    assert convs[-1].name == LAST_CONV
    assert model.get_layer(LAST_CONV) is convs[-1]
    # Grad-CAM needs a position axis in the last conv output: (batch, positions, filters).
    assert len(model.get_layer(LAST_CONV).output.shape) == 3


def test_lstm_has_recurrence_and_no_convolution():
    import keras

    model = build_keras_model("lstm")
    kinds = {type(layer) for layer in model.layers}
    assert keras.layers.LSTM in kinds
    assert keras.layers.Conv1D not in kinds


def test_hybrid_feeds_convolutions_into_an_lstm():
    import keras

    model = build_keras_model("hybrid")
    names = [type(layer).__name__ for layer in model.layers]
    assert names.index("LSTM") > names.index("Conv1D")
    lstm = next(layer for layer in model.layers if isinstance(layer, keras.layers.LSTM))
    # two pooling stages: 187 -> 93 -> 46 positions reach the LSTM
    assert lstm.input.shape[1] == 46


def test_unknown_model_name_is_rejected():
    with pytest.raises(ValueError, match="unknown Keras model"):
        build_keras_model("transformer")
