"""Reshape, Permute, RepeatVector, ZeroPadding1D, Cropping1D, UpSampling1D against Keras 3.15."""

import keras
import numpy as np
import pytest
import torch

from birnn import layers
from tests.core._parity import check_layer_parity

RNG = np.random.RandomState(0)
X3 = RNG.randn(2, 6, 4).astype("float32")
MASK = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=bool)

CASES = [
    ("Reshape", {"target_shape": (3, 8)}, X3),
    ("Reshape", {"target_shape": (-1, 2)}, X3),
    ("Reshape", {"target_shape": (24,)}, X3),
    ("Reshape", {"target_shape": (4, -1)}, RNG.randn(2, 4, 3, 2).astype("float32")),
    ("Permute", {"dims": (2, 1)}, X3),
    ("Permute", {"dims": (3, 1, 2)}, RNG.randn(2, 4, 3, 2).astype("float32")),
    ("RepeatVector", {"n": 3}, RNG.randn(2, 5).astype("float32")),
    ("ZeroPadding1D", {}, X3),
    ("ZeroPadding1D", {"padding": (0, 3)}, X3),
    ("ZeroPadding1D", {"padding": 2, "data_format": "channels_first"}, X3),
    ("Cropping1D", {}, X3),
    ("Cropping1D", {"cropping": (0, 4)}, X3),
    ("Cropping1D", {"cropping": 2}, X3),
    ("UpSampling1D", {}, X3),
    ("UpSampling1D", {"size": 3}, X3),
]


@pytest.mark.parametrize("name,kwargs,x", CASES, ids=lambda v: str(v)[:30])
def test_reshaping_parity(name, kwargs, x):
    check_layer_parity(
        getattr(layers, name)(name="r", **kwargs),
        getattr(keras.layers, name)(name="r", **kwargs),
        x,
    )


@pytest.mark.parametrize(
    "layer",
    [
        layers.Reshape((24,)),
        layers.Permute((2, 1)),
        layers.ZeroPadding1D(),
        layers.Cropping1D(),
        layers.UpSampling1D(),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_reshaping_layers_drop_the_mask_as_keras(layer):
    x = torch.tensor(X3)
    x._keras_mask = torch.tensor(MASK)
    assert getattr(layer(x), "_keras_mask", None) is None


def test_reshape_unknown_sizes():
    layer = layers.Reshape((-1, 4))
    assert layer.compute_output_shape((None, None, 2)) == (None, None, 4)
    assert layer.compute_output_shape((None, 6, 2)) == (None, 3, 4)
    assert layer(torch.zeros(3, 10, 2)).shape == (3, 5, 4)


@pytest.mark.parametrize(
    "cls,kwargs,match",
    [
        ("Reshape", {"target_shape": (-1, -1)}, "target_shape"),
        ("Reshape", {"target_shape": (0, 2)}, "target_shape"),
        ("Reshape", {"target_shape": 4}, "target_shape"),
        ("Permute", {"dims": (1, 3)}, "dims"),
        ("Permute", {"dims": (0, 1)}, "dims"),
        ("RepeatVector", {"n": 0}, "n"),
        ("ZeroPadding1D", {"padding": -1}, "padding"),
        ("ZeroPadding1D", {"padding": (1, 2, 3)}, "padding"),
        ("Cropping1D", {"cropping": "1"}, "cropping"),
        ("UpSampling1D", {"size": 1.5}, "size"),
    ],
)
def test_reshaping_bad_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=rf"{cls}.*{match}"):
        getattr(layers, cls)(**kwargs)


def test_reshaping_bad_inputs():
    with pytest.raises(ValueError, match="resh.*cannot be reshaped to target_shape=\\(5, -1\\)"):
        layers.Reshape((5, -1), name="resh")(torch.zeros(2, 6, 4))
    with pytest.raises(ValueError, match="resh2.*cannot be reshaped"):
        layers.Reshape((5, 4), name="resh2")(torch.zeros(2, 6, 4))
    with pytest.raises(ValueError, match="crop.*removes every step"):
        layers.Cropping1D((3, 3), name="crop")(torch.zeros(2, 6, 4))
    with pytest.raises(ValueError, match="rep.*ndim=2"):
        layers.RepeatVector(2, name="rep")(torch.zeros(2, 6, 4))
    with pytest.raises(ValueError, match="perm.*ndim=3"):
        layers.Permute((2, 1), name="perm")(torch.zeros(2, 6, 4, 1))
