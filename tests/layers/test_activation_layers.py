"""ReLU, LeakyReLU, PReLU, ELU, Softmax against Keras 3.15."""

import warnings

import keras
import numpy as np
import pytest
import torch

from birnn import layers
from tests.core._parity import check_layer_parity

RNG = np.random.RandomState(0)
X3 = (RNG.randn(2, 5, 4) * 2).astype("float32")
MASK = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], dtype=bool)

CASES = [
    ("ReLU", {}),
    ("ReLU", {"max_value": 1.5}),
    ("ReLU", {"negative_slope": 0.1, "threshold": 0.5}),
    ("ReLU", {"max_value": 2.0, "negative_slope": 0.2, "threshold": 0.3}),
    ("LeakyReLU", {}),
    ("LeakyReLU", {"negative_slope": 0.01}),
    ("ELU", {}),
    ("ELU", {"alpha": 0.5}),
    ("Softmax", {}),
    ("Softmax", {"axis": 1}),
    ("Softmax", {"axis": (1, 2)}),
    ("PReLU", {"alpha_initializer": "random_normal"}),
    ("PReLU", {"alpha_initializer": "random_normal", "shared_axes": [1]}),
    ("PReLU", {"alpha_initializer": "ones", "shared_axes": [1, 2], "alpha_regularizer": "l2"}),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=str)
def test_activation_layer_parity(name, kwargs):
    ours = getattr(layers, name)(name="a", **kwargs)
    theirs = getattr(keras.layers, name)(name="a", **kwargs)
    mask = None if name == "Softmax" else MASK  # the mask passes through
    out = check_layer_parity(ours, theirs, X3, mask=mask)
    if mask is not None:
        assert torch.equal(out._keras_mask, torch.tensor(MASK))


@pytest.mark.parametrize("mask_shape", [(2, 5, 4), (2, 1, 4), (2, 5, 1)])
def test_softmax_mask_parity(mask_shape):
    mask = RNG.rand(*mask_shape) > 0.3
    mask[..., 0] = True
    ours, theirs = layers.Softmax(name="s"), keras.layers.Softmax(name="s")
    out = check_layer_parity(ours, theirs, X3, mask=mask)
    assert torch.equal(out._keras_mask, torch.tensor(mask))


def test_prelu_weights():
    layer = layers.PReLU(shared_axes=2)
    layer(torch.ones(2, 5, 4, 3))
    assert tuple(layer.alpha.shape) == (5, 1, 3)
    assert layer.get_config()["shared_axes"] == [2]
    out = layers.PReLU(alpha_initializer="ones")(torch.tensor([[-2.0, 3.0]]))
    assert out.tolist() == [[-2.0, 3.0]]


def test_leaky_relu_keras2_alpha():
    with pytest.warns(UserWarning, match="alpha"):
        layer = layers.LeakyReLU(alpha=0.1)
    assert layer.negative_slope == 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layers.LeakyReLU(0.1)


@pytest.mark.parametrize(
    "cls,kwargs,error,match",
    [
        ("ReLU", {"max_value": -1.0}, ValueError, "max_value"),
        ("ReLU", {"negative_slope": -0.1}, ValueError, "negative_slope"),
        ("ReLU", {"threshold": "0"}, ValueError, "threshold"),
        ("ReLU", {"threshold": -0.5}, ValueError, "threshold"),
        ("LeakyReLU", {"negative_slope": None}, ValueError, "negative_slope"),
        ("ELU", {"alpha": "1"}, ValueError, "alpha"),
        ("Softmax", {"axis": "last"}, TypeError, "axis"),
        ("PReLU", {"shared_axes": [0]}, ValueError, "shared_axes"),
        ("PReLU", {"alpha_initializer": "nope"}, ValueError, "alpha_initializer"),
    ],
)
def test_activation_layers_bad_arguments(cls, kwargs, error, match):
    with pytest.raises(error, match=rf"{cls}.*{match}"):
        getattr(layers, cls)(**kwargs)


def test_activation_layers_bad_inputs():
    with pytest.raises(ValueError, match="sm.*mask.*does not broadcast"):
        layers.Softmax(name="sm")(torch.zeros(2, 5, 4), mask=torch.ones(2, 5, dtype=torch.bool))
    layer = layers.PReLU(name="pr")
    layer(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="pr.*axis 1"):
        layer(torch.zeros(2, 6))
