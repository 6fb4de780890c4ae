"""Stateful `Bidirectional`: `states`, `reset_states()`, `reset_states(states)`, masks."""

import numpy as np
import pytest
import torch

import birnn
from birnn.layers import GRU, LSTM, Bidirectional, SimpleRNN
from tests.keras_oracle import assert_close, copy_weights, keras

from ._seq_layers import RunningSum

MASK = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 1, 1, 1]], dtype=torch.bool)


def _x():
    return torch.randn(3, 5, 4)


def test_states_of_a_layer_that_is_not_stateful_is_none():
    layer = Bidirectional(LSTM(2))
    layer(_x())
    assert layer.states is None


@pytest.mark.parametrize(("make", "count"), [(SimpleRNN, 2), (LSTM, 4), (GRU, 2), (RunningSum, 2)])
def test_states_are_forward_then_backward(make, count):
    layer = Bidirectional(make(2, stateful=True, return_state=True))
    assert layer.stateful
    layer.build((3, 5, 4))
    assert len(layer.states) == count and all(torch.all(s == 0) for s in layer.states)
    out = layer(_x())
    final = out[1:]
    forward = list(layer.forward_layer.states)
    backward = list(layer.backward_layer.states)
    for actual, expected, returned in zip(layer.states, forward + backward, final):
        torch.testing.assert_close(actual, expected)
        torch.testing.assert_close(actual, returned.detach())


@pytest.mark.parametrize("make", [SimpleRNN, LSTM, RunningSum])
def test_consecutive_calls_carry_the_states(make):
    layer = Bidirectional(make(2, stateful=True, return_state=True))
    x1, x2 = _x(), _x()
    layer(x1)
    carried = [s.clone() for s in layer.states]
    second = layer(x2)
    plain = Bidirectional(make(2, return_state=True))
    plain.build(tuple(x1.shape))
    plain.set_weights(layer.get_weights())
    expected = plain(x2, initial_state=carried)
    for a, e in zip(second, expected):
        torch.testing.assert_close(a, e)


@pytest.mark.parametrize("make", [LSTM, RunningSum])
def test_reset_states_to_zeros_and_to_given_states(make):
    layer = Bidirectional(make(2, stateful=True))
    layer(_x())
    assert any(torch.any(s != 0) for s in layer.states)
    layer.reset_states()
    assert all(torch.all(s == 0) for s in layer.states)

    count = len(layer.states)
    values = [np.random.rand(3, 2).astype("float32") for _ in range(count)]
    layer.reset_states(values)
    for actual, expected in zip(layer.states, values):
        np.testing.assert_array_equal(actual.numpy(), expected)
    half = count // 2
    for actual, expected in zip(layer.forward_layer.states, values[:half]):
        np.testing.assert_array_equal(actual.numpy(), expected)
    for actual, expected in zip(layer.backward_layer.states, values[half:]):
        np.testing.assert_array_equal(actual.numpy(), expected)
    layer.reset_state()  # Keras 3's name
    assert all(torch.all(s == 0) for s in layer.states)


def test_reset_states_with_states_is_not_in_keras():
    # A long-standing Keras user request: Keras 3.15's `reset_states` takes no states.
    keras_layer = keras.layers.Bidirectional(keras.layers.LSTM(2, stateful=True))
    keras_layer.build((3, 5, 4))
    with pytest.raises(TypeError):
        keras_layer.reset_states([np.zeros((3, 2))] * 4)


@pytest.mark.parametrize("merge_mode", ["concat", None])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_stateful_return_state_with_mask(merge_mode, return_sequences):
    # Keras 3.15 departs from its documentation: computing the output mask of a stateful
    # Bidirectional with `return_state=True` raises a TypeError (it multiplies a
    # generator), so such a layer cannot even be called there.
    flags = dict(stateful=True, return_state=True, return_sequences=return_sequences)
    keras_layer = keras.layers.Bidirectional(keras.layers.LSTM(2, **flags), merge_mode=merge_mode)
    keras_layer.build((3, 5, 4))
    with pytest.raises(TypeError, match="generator"):
        keras_layer.compute_mask(None, MASK)

    layer = Bidirectional(LSTM(2, **flags), merge_mode=merge_mode)
    layer.build((3, 5, 4))
    output_mask = MASK if return_sequences else None
    outputs = (output_mask,) * (2 if merge_mode is None else 1)
    assert layer.compute_mask(None, MASK) == (*outputs, None, None, None, None)
    out = layer(_x(), mask=MASK)
    assert len(out) == len(outputs) + 4
    for tensor, mask in zip(out, (*outputs, None, None, None, None)):
        attached = getattr(tensor, "_keras_mask", None)
        assert (attached is None) if mask is None else torch.equal(attached, mask)


@pytest.mark.parametrize("make", ["SimpleRNN", "LSTM", "GRU"])
def test_stateful_parity_with_keras_over_two_calls(make):
    keras_layer = keras.layers.Bidirectional(
        getattr(keras.layers, make)(3, stateful=True, return_sequences=True)
    )
    keras_layer.build((3, 5, 4))
    layer = Bidirectional(getattr(birnn.layers, make)(3, stateful=True, return_sequences=True))
    layer.build((3, 5, 4))
    copy_weights(keras_layer, layer)
    for x in (_x(), _x()):
        assert_close(layer(x, mask=MASK), keras_layer(x, mask=MASK), atol=1e-5)
    assert_close(list(layer.states), list(keras_layer.states), atol=1e-5)
    keras_layer.reset_states()
    layer.reset_states()
    x = _x()
    assert_close(layer(x), keras_layer(x), atol=1e-5)
