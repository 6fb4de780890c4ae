"""Subtract, Maximum, Minimum and Dot against Keras 3.15."""

import keras
import numpy as np
import pytest
import torch

from birnn import layers
from tests.core._parity import check_layer_parity

RNG = np.random.RandomState(0)
A = RNG.randn(2, 5, 4).astype("float32")
B = RNG.randn(2, 5, 4).astype("float32")
MASK_A = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], dtype=bool)
MASK_B = np.array([[1, 1, 0, 0, 1], [1, 1, 1, 1, 0]], dtype=bool)


@pytest.mark.parametrize(
    "inputs,masks",
    [
        ([A, B], None),
        ([A, B], [MASK_A, MASK_B]),  # output mask: OR of the masks
        ([A, B], [MASK_A, None]),  # one input without a mask: no output mask
        ([A, B[:, :1]], None),  # broadcast
    ],
    ids=["plain", "masks", "one_mask", "broadcast"],
)
@pytest.mark.parametrize("name", ["Subtract", "Maximum", "Minimum"])
def test_elementwise_merge_parity(name, inputs, masks):
    ours, theirs = getattr(layers, name)(name="m"), getattr(keras.layers, name)(name="m")
    check_layer_parity(ours, theirs, inputs, mask=masks)


def test_maximum_minimum_take_many_inputs():
    xs = [RNG.randn(3, 4).astype("float32") for _ in range(3)]
    for name in ("Maximum", "Minimum"):
        check_layer_parity(
            getattr(layers, name)(name="m"), getattr(keras.layers, name)(name="m"), xs
        )


DOT_CASES = [
    (1, [RNG.randn(3, 4), RNG.randn(3, 4)]),
    ((2, 2), [A, B]),
    ((1, 1), [A, RNG.randn(2, 5, 3)]),
    ((1, 2), [RNG.randn(2, 4, 3), A]),
    (-1, [A, B]),
    ((2, 1), [A, RNG.randn(2, 4)]),
]


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("axes,inputs", DOT_CASES, ids=lambda v: str(v)[:12])
def test_dot_parity(axes, inputs, normalize):
    inputs = [np.asarray(x, dtype="float32") for x in inputs]
    ours = layers.Dot(axes=axes, normalize=normalize, name="d")
    theirs = keras.layers.Dot(axes=axes, normalize=normalize, name="d")
    check_layer_parity(ours, theirs, inputs)


def test_dot_passes_no_mask():
    out = check_layer_parity(
        layers.Dot(axes=2, name="d"),
        keras.layers.Dot(axes=2, name="d"),
        [A, B],
        mask=[MASK_A, MASK_B],
    )
    assert getattr(out, "_keras_mask", None) is None


def test_merge_bad_inputs():
    with pytest.raises(ValueError, match="sub.*exactly 2 inputs"):
        layers.Subtract(name="sub")([torch.ones(2, 3)] * 3)
    with pytest.raises(ValueError, match="dot.*exactly 2 inputs"):
        layers.Dot(1, name="dot")([torch.ones(2, 3)] * 3)
    with pytest.raises(ValueError, match="dot2.*incompatible input shapes"):
        layers.Dot(1, name="dot2")([torch.ones(2, 3), torch.ones(2, 4)])
    with pytest.raises(ValueError, match="dot3.*batch axis"):
        layers.Dot(0, name="dot3")([torch.ones(2, 3), torch.ones(2, 3)])
    with pytest.raises(TypeError, match="Dot.*axes"):
        layers.Dot(axes=(1, 2, 3))
