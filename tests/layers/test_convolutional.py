"""Conv1D and Conv2D against Keras 3.15: outputs, gradients, shapes, configs."""

import keras
import numpy as np
import pytest
import torch

from birnn import layers
from tests.core._parity import check_layer_parity

RNG = np.random.RandomState(0)

CONV1D_CASES = [
    {},
    {"padding": "same"},
    {"padding": "same", "strides": 2},
    {"padding": "causal", "dilation_rate": 2},
    {"padding": "valid", "strides": 3, "use_bias": False},
    {"padding": "same", "kernel_size": 4},  # even kernel: the extra padding goes last
    {"data_format": "channels_first", "padding": "same", "strides": 2},
    {"data_format": "channels_first", "padding": "causal"},
    {"groups": 2, "activation": "relu", "filters": 4},
    {"kernel_regularizer": "l2", "activity_regularizer": "l1", "bias_constraint": "non_neg"},
]


@pytest.mark.parametrize("kwargs", CONV1D_CASES, ids=str)
def test_conv1d_parity(kwargs):
    kwargs = {"filters": 6, "kernel_size": 3, **kwargs}
    shape = (2, 4, 11) if kwargs.get("data_format") == "channels_first" else (2, 11, 4)
    x = RNG.randn(*shape).astype("float32")
    ours = layers.Conv1D(name="c", **kwargs)
    theirs = keras.layers.Conv1D(name="c", **kwargs)
    check_layer_parity(ours, theirs, x)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]


CONV2D_CASES = [
    {},
    {"padding": "same"},
    {"padding": "same", "strides": 2},  # asymmetric padding on the odd axis
    {"padding": "same", "kernel_size": (2, 4)},
    {"padding": "valid", "strides": (2, 1)},
    {"dilation_rate": 2, "padding": "same"},
    {"data_format": "channels_first", "padding": "same", "strides": 2},
    {"use_bias": False, "groups": 2, "filters": 4},
    {"activation": "relu", "kernel_initializer": "he_normal"},
]


@pytest.mark.parametrize("kwargs", CONV2D_CASES, ids=str)
def test_conv2d_parity(kwargs):
    kwargs = {"filters": 6, "kernel_size": 3, **kwargs}
    shape = (2, 4, 9, 7) if kwargs.get("data_format") == "channels_first" else (2, 9, 7, 4)
    x = RNG.randn(*shape).astype("float32")
    ours = layers.Conv2D(name="c", **kwargs)
    theirs = keras.layers.Conv2D(name="c", **kwargs)
    check_layer_parity(ours, theirs, x)


def test_conv_drops_the_mask_as_keras():
    x = RNG.randn(2, 6, 3).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=bool)
    with pytest.warns(UserWarning):  # Keras warns that the mask is destroyed
        out = check_layer_parity(
            layers.Conv1D(2, 3, padding="same", name="c"),
            keras.layers.Conv1D(2, 3, padding="same", name="c"),
            x,
            mask=mask,
        )
    assert getattr(out, "_keras_mask", None) is None


def test_conv_weights_and_shapes():
    layer = layers.Conv2D(8, (3, 5), groups=2)
    assert layer(torch.ones(1, 10, 12, 4)).shape == (1, 8, 8, 8)
    assert [n for n, _ in layer.named_parameters()] == ["kernel", "bias"]
    assert tuple(layer.kernel.shape) == (3, 5, 2, 8)
    assert layer.compute_output_shape((None, None, 12, 4)) == (None, None, 8, 8)
    assert layers.Conv1D(2, 3, padding="same", strides=2).compute_output_shape((1, 7, 3)) == (
        1,
        4,
        2,
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"filters": 0, "kernel_size": 3}, "filters"),
        ({"filters": 2, "kernel_size": (3, 3)}, "kernel_size"),
        ({"filters": 2, "kernel_size": 3, "strides": 0}, "strides"),
        ({"filters": 2, "kernel_size": 3, "padding": "full"}, "padding"),
        ({"filters": 2, "kernel_size": 3, "data_format": "nhwc"}, "data_format"),
        ({"filters": 3, "kernel_size": 3, "groups": 2}, "groups"),
        ({"filters": 2, "kernel_size": 3, "strides": 2, "dilation_rate": 2}, "dilation_rate"),
        ({"filters": 2, "kernel_size": 3, "activation": "nope"}, "activation"),
    ],
)
def test_conv1d_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=rf"Conv1D.*{match}"):
        layers.Conv1D(**kwargs)


def test_conv_bad_inputs():
    with pytest.raises(ValueError, match="Conv2D.*padding"):
        layers.Conv2D(2, 3, padding="causal")
    layer = layers.Conv1D(2, 3, groups=2, name="grouped")
    with pytest.raises(ValueError, match="grouped.*divisible by the number of groups"):
        layer(torch.ones(1, 5, 3))
    layer = layers.Conv1D(2, 3, name="conv_in")
    layer(torch.ones(1, 5, 3))
    with pytest.raises(ValueError, match="conv_in.*axis -1"):
        layer(torch.ones(1, 5, 4))
    with pytest.raises(ValueError, match="conv_in.*ndim=3"):
        layer(torch.ones(5, 3))
