"""User-written cells, stacked cells and cells called step by step, against Keras."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch

import birnn.layers as layers
from tests.keras_oracle import assert_close, to_numpy

MASK = np.array([[1, 1, 1, 0, 0], [0, 1, 0, 1, 1], [0, 0, 0, 0, 0]], dtype=bool)


class MinimalRNNCell(layers.Layer):
    """Keras's documentation example, written for birnn: two states, no output_size."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [units, units]

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units), name="recurrent_kernel"
        )

    def call(self, inputs, states):
        h = torch.tanh(inputs @ self.kernel + states[0] @ self.recurrent_kernel)
        return h, [h, states[1] + h]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class KerasMinimalRNNCell(keras.layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [units, units]

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units), name="recurrent_kernel"
        )

    def call(self, inputs, states):
        h = keras.ops.tanh(inputs @ self.kernel + states[0] @ self.recurrent_kernel)
        return h, [h, states[1] + h]


def _compare(ours, theirs, x, **kwargs):
    ours.build(x.shape) if not ours.built else None
    theirs.build(x.shape) if not theirs.built else None
    rng = np.random.default_rng(0)
    theirs.set_weights([rng.uniform(-0.7, 0.7, w.shape).astype("float32") for w in theirs.weights])
    ours.set_weights(theirs.get_weights())
    tx = torch.tensor(x, requires_grad=True)
    kx = torch.tensor(x, requires_grad=True)
    ours_out = ours(tx, **kwargs)
    theirs_out = theirs(kx, **kwargs)
    assert_close(
        list(ours_out) if isinstance(ours_out, tuple) else ours_out,
        list(theirs_out) if isinstance(theirs_out, tuple) else theirs_out,
    )
    flat_ours = ours_out[0] if isinstance(ours_out, tuple) else ours_out
    flat_theirs = theirs_out[0] if isinstance(theirs_out, tuple) else theirs_out
    grads_ours = torch.autograd.grad(flat_ours.square().sum(), [tx, *ours.trainable_weights])
    grads_theirs = torch.autograd.grad(
        flat_theirs.square().sum(), [kx, *[w.value for w in theirs.trainable_weights]]
    )
    assert_close(list(grads_ours), [to_numpy(g) for g in grads_theirs], atol=1e-4)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_user_cell_matches_keras(masked, go_backwards):
    x = np.random.default_rng(1).normal(size=(3, 5, 4)).astype("float32")
    kwargs = {"return_sequences": True, "return_state": True, "go_backwards": go_backwards}
    call_kwargs = {"mask": torch.tensor(MASK)} if masked else {}
    _compare(
        layers.RNN(MinimalRNNCell(3), **kwargs),
        keras.layers.RNN(KerasMinimalRNNCell(3), **kwargs),
        x,
        **call_kwargs,
    )


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("with_user_cell", [False, True])
def test_stacked_cells_match_keras(with_user_cell, masked, go_backwards):
    x = np.random.default_rng(2).normal(size=(3, 5, 4)).astype("float32")

    def cells(m, user):
        stack = [m.LSTMCell(3), m.GRUCell(2, reset_after=False), m.SimpleRNNCell(2)]
        return stack + [user(2)] if with_user_cell else stack

    kwargs = {"return_sequences": True, "return_state": True, "go_backwards": go_backwards}
    call_kwargs = {"mask": torch.tensor(MASK)} if masked else {}
    ours = layers.RNN(cells(layers, MinimalRNNCell), **kwargs)
    assert (ours.cell.call_sequence is None) == with_user_cell
    _compare(
        ours,
        keras.layers.RNN(cells(keras.layers, KerasMinimalRNNCell), **kwargs),
        x,
        **call_kwargs,
    )


def test_stacked_states_are_nested_per_cell_like_keras():
    layer = layers.RNN([layers.LSTMCell(3), layers.GRUCell(2)], return_state=True)
    output, lstm_states, gru_states = layer(torch.randn(2, 4, 5))
    assert output.shape == (2, 2)
    assert [s.shape for s in lstm_states] == [(2, 3), (2, 3)]
    assert [s.shape for s in gru_states] == [(2, 2)]
    assert layer.compute_output_shape((2, 4, 5)) == ((2, 2), [(2, 3), (2, 3)], (2, 2))
    flat = [torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 2)]
    nested = [[torch.ones(2, 3), torch.ones(2, 3)], [torch.ones(2, 2)]]
    x = torch.randn(2, 4, 5)
    assert_close(list(layer(x, initial_state=flat)[0]), list(layer(x, initial_state=nested)[0]))


def test_subclassed_builtin_cell_with_own_call_takes_the_generic_path():
    calls = []

    class CountingLSTMCell(layers.LSTMCell):
        def call(self, inputs, states, training=False):
            calls.append(1)
            return super().call(inputs, states, training=training)

    counted = layers.RNN(CountingLSTMCell(3), return_sequences=True)
    plain = layers.RNN(layers.LSTMCell(3), return_sequences=True)
    x = torch.randn(2, 5, 4)
    plain(x)
    counted(x)
    counted.set_weights(plain.get_weights())
    calls.clear()
    assert_close(counted(x), plain(x))
    assert len(calls) == 5


@pytest.mark.parametrize("kind", ["SimpleRNNCell", "LSTMCell", "GRUCell"])
def test_cell_called_step_by_step_equals_the_layer(kind):
    cell = getattr(layers, kind)(3)
    layer = layers.RNN(cell, return_sequences=True, return_state=True)
    x = torch.randn(2, 4, 5)
    outputs, *final = layer(x)
    states = cell.get_initial_state(batch_size=2)
    for t in range(4):
        out, states = cell(x[:, t], states)
        assert_close(out, outputs[:, t])
    assert_close(list(states), final)


def test_builtin_cell_accepts_a_bare_state_tensor():
    cell = layers.GRUCell(3)
    out, state = cell(torch.randn(2, 4), torch.zeros(2, 3))
    assert isinstance(state, torch.Tensor) and torch.equal(out, state)


def test_plain_python_cell_object():
    class Accumulator:
        state_size = 2
        output_size = 2

        def call(self, inputs, states):
            total = states[0] + inputs
            return total, [total]

    layer = layers.RNN(Accumulator(), return_state=True)
    out, state = layer(torch.ones(1, 3, 2), mask=torch.tensor([[True, False, True]]))
    assert out.tolist() == [[2.0, 2.0]] and state.tolist() == [[2.0, 2.0]]


def test_user_cell_config_round_trip():
    layer = layers.RNN(MinimalRNNCell(3, name="m"), return_sequences=True)
    layer(torch.randn(2, 3, 4))
    config = layer.get_config()
    assert config["cell"]["class_name"] == "MinimalRNNCell"
    clone = layers.RNN.from_config(config, custom_objects={"MinimalRNNCell": MinimalRNNCell})
    assert isinstance(clone.cell, MinimalRNNCell) and clone.cell.built
    # A config alone names the class: unregistered, it needs `custom_objects`, as in Keras.
    with pytest.raises(ValueError, match="Unknown layer class 'MinimalRNNCell'"):
        layers.RNN.from_config(config)


# ---------------------------------------------------------------- weight memory layout
def _torch_layout(weight):
    """Keras's shape over PyTorch's memory layout: the transpose is contiguous."""
    return weight.t().is_contiguous() and not weight.is_contiguous()


@pytest.mark.parametrize("cell_class", [layers.SimpleRNNCell, layers.LSTMCell, layers.GRUCell])
def test_builtin_kernels_are_stored_in_torch_layout_and_keep_it(cell_class, tmp_path):
    layer = layers.RNN(cell_class(4))
    layer(torch.zeros(2, 3, 5))
    cell = layer.cell
    assert cell.kernel.shape == (5, cell.gates * 4)
    values = [w.detach().clone() for w in (cell.kernel, cell.recurrent_kernel)]

    layer.set_weights([np.ones(tuple(w.shape)) for w in layer.weights])
    torch.save(layer.state_dict(), tmp_path / "state.pt")
    layer.load_state_dict(torch.load(tmp_path / "state.pt"))
    layer.to(torch.float64)
    for weight, before in zip((cell.kernel, cell.recurrent_kernel), values):
        assert _torch_layout(weight)
        assert torch.equal(weight, torch.ones_like(weight))
        assert before.shape == weight.shape


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_fused_kernels_receive_contiguous_weights(kind):
    from birnn.ops import fused_rnn

    layer = {"lstm": layers.LSTM, "gru": layers.GRU}[kind](3)
    layer(torch.zeros(2, 4, 5))
    cell = layer.cell
    weights = fused_rnn.torch_weights(kind, cell.kernel, cell.recurrent_kernel, cell.bias)
    assert all(w.is_contiguous() for w in weights)
