"""Concatenate, Add, Multiply, Average against Keras 3.15, masks included."""

import keras
import numpy as np
import pytest
import torch

from birnn import layers
from tests.core._parity import check_layer_parity

RNG = np.random.RandomState(0)
A = RNG.randn(2, 4, 3).astype("float32")
B = RNG.randn(2, 4, 3).astype("float32")
C = RNG.randn(2, 4, 3).astype("float32")
M1 = np.array([[1, 1, 0, 0], [1, 1, 1, 0]], dtype=bool)
M2 = np.array([[1, 0, 1, 0], [0, 1, 1, 0]], dtype=bool)

ELEMENTWISE = ["Add", "Multiply", "Average"]


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize(
    "masks", [None, [M1, M2, M1], [M1, None, M2]], ids=["no_mask", "all_masked", "some_masked"]
)
def test_elementwise_merge_parity(name, masks):
    ours = getattr(layers, name)(name="m")
    theirs = getattr(keras.layers, name)(name="m")
    check_layer_parity(ours, theirs, [A, B, C], mask=masks)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_broadcast_and_rank_alignment(name):
    ours = getattr(layers, name)(name="m")
    theirs = getattr(keras.layers, name)(name="m")
    check_layer_parity(ours, theirs, [A, A[:, :1, :]])
    ours = getattr(layers, name)(name="m2")
    theirs = getattr(keras.layers, name)(name="m2")
    check_layer_parity(ours, theirs, [A, A[:, 0, :]])


@pytest.mark.parametrize("axis", [-1, 1, 2])
@pytest.mark.parametrize(
    "masks", [None, [M1, M2], [None, M2], [M1, None]], ids=["none", "both", "second", "first"]
)
def test_concatenate_parity(axis, masks):
    ours = layers.Concatenate(axis=axis, name="c")
    theirs = keras.layers.Concatenate(axis=axis, name="c")
    check_layer_parity(ours, theirs, [A, B], mask=masks)


def test_concatenate_different_sizes_on_axis():
    ours = layers.Concatenate(name="c")
    theirs = keras.layers.Concatenate(name="c")
    check_layer_parity(ours, theirs, [A, B[:, :, :1], C[:, :, :2]], mask=[M1, M2, None])
    assert ours.compute_output_shape([(None, 4, 3), (None, 4, None)]) == (None, 4, None)


def test_merge_errors_name_the_layer():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"add_bad.*incompatible shapes"):
        layers.Add(name="add_bad")([x, torch.zeros(2, 4)])
    with pytest.raises(ValueError, match=r"mul_bad.*different batch sizes"):
        layers.Multiply(name="mul_bad")([x, torch.zeros(3, 3)])
    with pytest.raises(ValueError, match=r"avg_bad.*list"):
        layers.Average(name="avg_bad")(x)
    with pytest.raises(ValueError, match=r"cat_bad.*matching shapes"):
        layers.Concatenate(name="cat_bad")([x, torch.zeros(3, 3)])
    with pytest.raises(ValueError, match=r"cat_rank.*matching shapes"):
        layers.Concatenate(name="cat_rank")([x, torch.zeros(2, 3, 1)])
    with pytest.raises(ValueError, match=r"cat_axis.*out of range"):
        layers.Concatenate(axis=3, name="cat_axis")([x, x])
    with pytest.raises(ValueError, match=r"cat_list.*list"):
        layers.Concatenate(name="cat_list")(x)
    with pytest.raises(TypeError, match="axis"):
        layers.Concatenate(axis="last")


def test_merge_output_shapes_with_unknown_dims():
    assert layers.Add().compute_output_shape([(None, 4, 3), (None, 1, 3)]) == (None, 4, 3)
    assert layers.Add().compute_output_shape([(2, None, 3), (None, 5, 3)]) == (2, None, 3)
    assert layers.Concatenate(axis=1).compute_output_shape([(None, 4, 3), (None, 2, 3)]) == (
        None,
        6,
        3,
    )


def test_multiply_mask_semantics():
    a = torch.tensor([[[2.0], [3.0], [4.0]]])
    b = torch.tensor([[[5.0], [6.0], [7.0]]])
    a._keras_mask = torch.tensor([[True, False, False]])
    b._keras_mask = torch.tensor([[True, True, False]])
    out = layers.Multiply()([a, b])
    # masked entries count as 1; positions masked everywhere become 0
    assert out.flatten().tolist() == [10.0, 6.0, 0.0]
    assert out._keras_mask.tolist() == [[True, True, False]]


@pytest.mark.parametrize("name", [*ELEMENTWISE, "Concatenate"])
def test_bad_mask_shapes_name_the_layer(name):
    x = [torch.zeros(2, 3, 4), torch.zeros(2, 3, 4)]
    layer = getattr(layers, name)(name="merge_mask")
    with pytest.raises(ValueError, match=r"merge_mask.*`mask` for input 0.*\(2, 5\)"):
        layer(x, mask=[torch.ones(2, 5, dtype=torch.bool), None])
    with pytest.raises(ValueError, match=r"merge_mask.*one mask \(or None\) per input"):
        layer(x, mask=[torch.ones(2, 3, dtype=torch.bool)])


def test_full_shape_masks():
    rng = np.random.RandomState(3)
    a, b = torch.tensor(A), torch.tensor(B)
    m1, m2 = torch.tensor(rng.rand(2, 4, 3) > 0.5), torch.tensor(rng.rand(2, 4, 3) > 0.5)
    # Keras 3.15's Multiply fails on masks of the input's own shape; ours applies them.
    out = layers.Multiply()([a, b], mask=[m1, m2])
    expected = torch.where(m1, a, 1) * torch.where(m2, b, 1) * (m1 | m2)
    torch.testing.assert_close(out, expected)
    assert torch.equal(out._keras_mask, m1 | m2)
    for name in ("Add", "Average", "Concatenate"):  # these match Keras
        ours_a, ours_b = a * 1, b * 1
        ours_a._keras_mask, ours_b._keras_mask = m1, m2
        their_a, their_b = a * 1, b * 1
        their_a._keras_mask, their_b._keras_mask = m1, m2
        ours = getattr(layers, name)()([ours_a, ours_b])
        theirs = getattr(keras.layers, name)()([their_a, their_b])
        torch.testing.assert_close(ours, theirs)
        assert torch.equal(ours._keras_mask, theirs._keras_mask)


def test_add_accepts_leading_masks_of_4d_inputs():
    x = torch.ones(2, 3, 4, 5)
    mask = torch.tensor([[True, False, True], [True, True, False]])
    out = layers.Add()([x, x], mask=[mask, mask])
    assert torch.equal(out._keras_mask, mask)
