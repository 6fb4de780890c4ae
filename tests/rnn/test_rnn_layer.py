"""The RNN layer's contract beyond the parity grid: states, shapes, masks, dtypes."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
import torch

import birnn.layers as layers
from tests.keras_oracle import assert_close

MASKS = {
    "right": [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]],
    "holes": [[1, 0, 1, 1, 0], [0, 1, 0, 1, 1], [0, 0, 0, 0, 0]],
}


@pytest.mark.parametrize(
    "mask_name,return_sequences,go_backwards,as_rnn",
    list(itertools.product(MASKS, [False, True], [False, True], [False, True])),
)
def test_zero_output_for_mask_matches_keras(mask_name, return_sequences, go_backwards, as_rnn):
    kwargs = {
        "return_sequences": return_sequences,
        "return_state": True,
        "go_backwards": go_backwards,
        "zero_output_for_mask": True,
    }
    if as_rnn:
        ours, theirs = (
            layers.RNN(layers.GRUCell(3), **kwargs),
            keras.layers.RNN(keras.layers.GRUCell(3), **kwargs),
        )
    else:
        ours, theirs = layers.LSTM(3, **kwargs), keras.layers.LSTM(3, **kwargs)
    x = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")
    mask = torch.tensor(MASKS[mask_name], dtype=torch.bool)
    expected = theirs(x, mask=mask)
    ours(x)
    ours.set_weights(theirs.get_weights())
    assert_close(list(ours(x, mask=mask)), list(expected))


def test_return_types_and_numpy_inputs():
    x = np.random.rand(2, 4, 3)
    out = layers.GRU(5)(x)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (2, 5)
    result = layers.LSTM(5, return_state=True)(x)
    assert isinstance(result, tuple) and len(result) == 3


def test_stateful_carries_states_and_resets():
    layer = layers.LSTM(3, stateful=True, return_state=True)
    x = torch.randn(2, 4, 5)
    out1, h1, c1 = layer(x)
    assert_close(list(layer.states), [h1, c1])
    out2, h2, c2 = layer(x)
    fresh = layers.LSTM(3, return_state=True)
    fresh(x)
    fresh.set_weights(layer.get_weights())
    assert_close(list(fresh(x, initial_state=[h1, c1])), [out2, h2, c2])
    layer.reset_states()
    assert all(s.abs().sum() == 0 for s in layer.states)
    assert_close(layer(x)[0], out1)
    layer.reset_states([np.ones((2, 3)), np.full((2, 3), 2.0)])
    assert_close(list(layer.states), [np.ones((2, 3)), np.full((2, 3), 2.0)])
    assert_close(
        list(layer(x)), list(fresh(x, initial_state=[torch.ones(2, 3), torch.full((2, 3), 2.0)]))
    )
    layer.reset_state()
    assert all(s.abs().sum() == 0 for s in layer.states)


def test_stateful_states_are_not_parameters_and_follow_the_module():
    layer = layers.GRU(3, stateful=True)
    layer(torch.randn(2, 4, 5))
    assert len(layer.get_weights()) == 3 and "_rnn_state_0" not in layer.state_dict()
    layer.double()
    assert layer.states[0].dtype == torch.float64


def test_stateful_gradients_stop_at_the_batch_boundary():
    layer = layers.SimpleRNN(3, stateful=True)
    x = torch.randn(2, 4, 5)
    layer(x).sum().backward()
    layer(x).sum().backward()  # the stored state from the first batch is detached
    assert not layer.states[0].requires_grad


def test_stateful_with_initial_state_then_stored_state():
    layer = layers.SimpleRNN(3, stateful=True, return_state=True)
    x = torch.randn(2, 4, 5)
    _, h = layer(x, initial_state=torch.ones(2, 3))
    assert_close(layer.states[0], h)


def test_non_stateful_has_no_states_and_reset_is_a_no_op():
    layer = layers.LSTM(3)
    layer(torch.zeros(1, 2, 3))
    assert layer.states is None
    layer.reset_states()


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("class_name", ["SimpleRNN", "LSTM", "GRU"])
def test_compute_output_shape_matches_keras_and_the_call(
    class_name, return_sequences, return_state
):
    kwargs = {"return_sequences": return_sequences, "return_state": return_state}
    ours = getattr(layers, class_name)(3, **kwargs)
    theirs = getattr(keras.layers, class_name)(3, **kwargs)
    for shape in [(None, None, 4), (2, 5, 4)]:
        assert ours.compute_output_shape(shape) == theirs.compute_output_shape(shape)
    result = ours(torch.zeros(2, 5, 4))
    expected = ours.compute_output_shape((2, 5, 4))
    if return_state:
        assert [tuple(t.shape) for t in result] == list(expected)
    else:
        assert tuple(result.shape) == expected


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
def test_compute_mask_and_propagated_masks(return_sequences, return_state):
    layer = layers.LSTM(3, return_sequences=return_sequences, return_state=return_state)
    mask = torch.tensor([[True, True, False]])
    expected = mask if return_sequences else None
    computed = layer.compute_mask(None, mask)
    if return_state:
        assert computed[0] is expected and computed[1:] == [None, None]
        result = layer(torch.randn(1, 3, 2), mask=mask)
        # As in Keras, an output without a mask carries no `_keras_mask` attribute.
        assert getattr(result[0], "_keras_mask", None) is expected
        assert not hasattr(result[1], "_keras_mask")
    else:
        assert computed is expected
        assert getattr(layer(torch.randn(1, 3, 2), mask=mask), "_keras_mask", None) is expected


def test_mask_carried_by_the_input_is_used():
    layer = layers.GRU(3, return_sequences=True)
    x = torch.randn(2, 4, 5)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    expected = layer(x, mask=mask)
    x._keras_mask = mask
    assert_close(layer(x), expected)


def test_float64_layer():
    layer = layers.LSTM(3, dtype="float64", return_state=True)
    out, h, c = layer(np.random.rand(2, 4, 5))
    assert out.dtype == h.dtype == c.dtype == torch.float64
    assert layer.cell.kernel.dtype == torch.float64


def test_unroll_is_accepted_and_changes_nothing():
    rolled = layers.GRU(3, return_sequences=True)
    unrolled = layers.GRU(3, return_sequences=True, unroll=True)
    x = torch.randn(2, 4, 5)
    rolled(x)
    unrolled(x)
    unrolled.set_weights(rolled.get_weights())
    assert_close(unrolled(x), rolled(x))


def test_masked_batch_equals_compacted_sequences():
    """Keras's rule: a masked row gives the result of its unmasked steps alone."""
    layer = layers.LSTM(4, return_state=True)
    x = torch.randn(3, 6, 2)
    mask = torch.tensor(
        [[1, 0, 1, 1, 0, 1], [0, 0, 0, 1, 1, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool
    )
    out, h, c = layer(x, mask=mask)
    for row in range(3):
        compact = x[row : row + 1, mask[row]]
        expected = layer(compact)
        assert_close([out[row], h[row], c[row]], [e[0] for e in expected])


def test_get_initial_state():
    assert [s.shape for s in layers.LSTM(3).get_initial_state(4)] == [(4, 3), (4, 3)]
    assert [s.shape for s in layers.GRU(2).get_initial_state(1)] == [(1, 2)]
    stacked = layers.RNN([layers.LSTMCell(2), layers.GRUCell(3)])
    states = stacked.get_initial_state(5)
    assert [s.shape for s in states[0]] == [(5, 2), (5, 2)] and states[1][0].shape == (5, 3)


def test_weights_order_and_names_match_keras():
    ours, theirs = layers.LSTM(3, name="lstm"), keras.layers.LSTM(3, name="lstm")
    ours.build((None, 2, 4))
    theirs.build((None, 2, 4))
    assert ours.weight_paths() == [w.path for w in theirs.weights]
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    assert [n for n, _ in ours.named_parameters()] == [
        "cell.kernel",
        "cell.recurrent_kernel",
        "cell.bias",
    ]


def test_trainable_false_freezes_the_cell():
    layer = layers.GRU(3, trainable=False)
    layer(torch.zeros(1, 2, 3))
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 3
    assert not any(p.requires_grad for p in layer.parameters())
