"""Windowed and 2-D global pooling against Keras 3.15."""

import keras
import numpy as np
import pytest
import torch

from birnn import layers
from tests.core._parity import check_layer_parity

RNG = np.random.RandomState(0)

POOL1D_CASES = [
    {},
    {"pool_size": 3},
    {"pool_size": 3, "strides": 2, "padding": "same"},  # padding at both ends
    {"pool_size": 2, "strides": 1, "padding": "same"},  # padding at the end only
    {"pool_size": 4, "strides": 3, "padding": "same"},
    {"pool_size": 3, "strides": 1, "data_format": "channels_first"},
    {"pool_size": 2, "padding": "same", "data_format": "channels_first"},
]


@pytest.mark.parametrize("kwargs", POOL1D_CASES, ids=str)
@pytest.mark.parametrize("name", ["MaxPooling1D", "AveragePooling1D"])
def test_pooling1d_parity(name, kwargs):
    kwargs = {"pool_size": 2, **kwargs}
    shape = (2, 3, 11) if kwargs.get("data_format") == "channels_first" else (2, 11, 3)
    x = RNG.randn(*shape).astype("float32")
    ours = getattr(layers, name)(name="p", **kwargs)
    theirs = getattr(keras.layers, name)(name="p", **kwargs)
    check_layer_parity(ours, theirs, x)


POOL2D_CASES = [
    {},
    {"pool_size": (2, 1)},
    {"pool_size": 3, "strides": 2, "padding": "same"},
    {"pool_size": 2, "strides": 1, "padding": "same"},  # padding at the ends only
    {"pool_size": 2, "strides": (1, 2)},
    {"pool_size": 2, "padding": "same", "data_format": "channels_first"},
]


@pytest.mark.parametrize("kwargs", POOL2D_CASES, ids=str)
@pytest.mark.parametrize("name", ["MaxPooling2D", "AveragePooling2D"])
def test_pooling2d_parity(name, kwargs):
    kwargs = {"pool_size": 2, **kwargs}
    shape = (2, 3, 7, 9) if kwargs.get("data_format") == "channels_first" else (2, 7, 9, 3)
    x = RNG.randn(*shape).astype("float32")
    ours = getattr(layers, name)(name="p", **kwargs)
    theirs = getattr(keras.layers, name)(name="p", **kwargs)
    check_layer_parity(ours, theirs, x)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("name", ["GlobalMaxPooling2D", "GlobalAveragePooling2D"])
def test_global_pooling2d_parity(name, keepdims, data_format):
    x = RNG.randn(2, 5, 4, 3).astype("float32")
    kwargs = {"keepdims": keepdims, "data_format": data_format}
    ours = getattr(layers, name)(name="g", **kwargs)
    theirs = getattr(keras.layers, name)(name="g", **kwargs)
    check_layer_parity(ours, theirs, x)


def _reference_pool2d(x, pool, strides, reduce):
    """TensorFlow's `same` pooling in NumPy: the padding never enters a window's result."""
    rows, cols = x.shape[1:3]
    out_r, out_c = -(-rows // strides[0]), -(-cols // strides[1])
    pad_r = max((out_r - 1) * strides[0] + pool[0] - rows, 0) // 2
    pad_c = max((out_c - 1) * strides[1] + pool[1] - cols, 0) // 2
    out = np.zeros((x.shape[0], out_r, out_c, x.shape[3]), dtype=x.dtype)
    for i in range(out_r):
        for j in range(out_c):
            r0, c0 = i * strides[0] - pad_r, j * strides[1] - pad_c
            window = x[:, max(r0, 0) : r0 + pool[0], max(c0, 0) : c0 + pool[1]]
            out[:, i, j] = reduce(window.reshape(x.shape[0], -1, x.shape[3]), axis=1)
    return out


@pytest.mark.parametrize("name,reduce", [("MaxPooling2D", np.max), ("AveragePooling2D", np.mean)])
def test_pooling2d_same_padding_split_unevenly(name, reduce):
    # One axis padded at both ends, the other at its end only. Keras 3.15 on torch
    # averages such windows over a different count than its own 1-D pooling does
    # (an impulse at (0, 0) gives 1/3 instead of 1/4); birnn follows the
    # TensorFlow rule, which the reference computes.
    x = RNG.randn(2, 7, 9, 3).astype("float32")
    out = getattr(layers, name)((2, 3), strides=1, padding="same")(torch.tensor(x))
    np.testing.assert_allclose(
        out.numpy(), _reference_pool2d(x, (2, 3), (1, 1), reduce), rtol=0, atol=1e-6
    )


def test_pooling_defaults_and_mask():
    assert layers.MaxPooling1D().get_config()["pool_size"] == (2,)
    assert layers.MaxPooling2D().get_config()["strides"] == (2, 2)
    x = RNG.randn(2, 6, 3).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=bool)
    with pytest.warns(UserWarning):  # Keras warns that the mask is destroyed
        out = check_layer_parity(
            layers.MaxPooling1D(name="p"), keras.layers.MaxPooling1D(name="p"), x, mask=mask
        )
    assert getattr(out, "_keras_mask", None) is None
    # The same-padded maximum of all-negative inputs never picks the padding.
    neg = -torch.ones(1, 5, 1) - torch.arange(5.0).reshape(1, 5, 1)
    out = layers.MaxPooling1D(2, padding="same")(neg)
    assert out.flatten().tolist() == [-1.0, -3.0, -5.0]


@pytest.mark.parametrize(
    "cls,kwargs,match",
    [
        ("MaxPooling1D", {"pool_size": 0}, "pool_size"),
        ("AveragePooling1D", {"pool_size": 2, "strides": -1}, "strides"),
        ("MaxPooling2D", {"pool_size": (2, 2, 2)}, "pool_size"),
        ("AveragePooling2D", {"pool_size": 2, "padding": "causal"}, "padding"),
        ("MaxPooling2D", {"data_format": "nchw"}, "data_format"),
        ("GlobalMaxPooling2D", {"data_format": "x"}, "data_format"),
    ],
)
def test_pooling_bad_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=rf"{cls}.*{match}"):
        getattr(layers, cls)(**kwargs)


def test_pooling_bad_rank():
    with pytest.raises(ValueError, match="pool2.*ndim=4"):
        layers.MaxPooling2D(name="pool2")(torch.ones(2, 5, 3))
