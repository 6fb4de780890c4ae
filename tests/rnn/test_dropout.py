"""Dropout: Keras's distribution, masks fixed over time, per-gate masks, seeds."""

from __future__ import annotations

import pytest
import torch

import birnn.layers as layers
from birnn.layers.rnn.dropout import reset_dropout_masks
from tests.keras_oracle import assert_close


def _probe(rate: float, recurrent: bool, batch: int = 400, time: int = 4, **kwargs):
    """A linear SimpleRNN whose outputs expose the dropout masks.

    Input dropout: identity kernel, zero recurrence, ones in -> every output is the
    input mask. Recurrent dropout: zero kernel, identity recurrence, ones as
    initial state -> output t is the recurrent mask to the power t + 1.
    """
    units = 6
    args = {"recurrent_dropout" if recurrent else "dropout": rate}
    layer = layers.SimpleRNN(
        units, activation=None, use_bias=False, return_sequences=True, **args, **kwargs
    )
    layer.build((batch, time, units))
    eye, zeros = torch.eye(units).numpy(), torch.zeros(units, units).numpy()
    layer.set_weights([zeros, eye] if recurrent else [eye, zeros])
    x = torch.ones(batch, time, units)
    initial = [torch.ones(batch, units)]
    return lambda **call: layer(x, initial_state=initial, **call)


@pytest.mark.parametrize("recurrent", [False, True], ids=["dropout", "recurrent_dropout"])
def test_mask_values_rate_and_fixed_over_time(recurrent):
    rate = 0.3
    out = _probe(rate, recurrent)(training=True)
    mask = out[:, 0]
    scale = 1 / (1 - rate)
    assert torch.all((mask == 0) | ((mask - scale).abs() < 1e-6))
    assert abs((mask == 0).float().mean().item() - rate) < 0.03
    for t in range(1, out.shape[1]):
        expected = mask ** (t + 1) if recurrent else mask
        torch.testing.assert_close(out[:, t], expected)


@pytest.mark.parametrize("recurrent", [False, True], ids=["dropout", "recurrent_dropout"])
def test_no_dropout_at_inference_and_new_mask_per_batch(recurrent):
    run = _probe(0.5, recurrent, batch=8)
    assert torch.equal(run(), torch.ones_like(run()))
    assert torch.equal(run(training=False), run())
    assert not torch.equal(run(training=True), run(training=True))


def test_seed_makes_masks_reproducible():
    first = _probe(0.5, False, batch=16, seed=11)
    second = _probe(0.5, False, batch=16, seed=11)
    a1, a2 = first(training=True), first(training=True)
    assert not torch.equal(a1, a2)
    assert torch.equal(a1, second(training=True)) and torch.equal(a2, second(training=True))
    unseeded = _probe(0.5, False, batch=16)
    torch.manual_seed(3)
    b = unseeded(training=True)
    torch.manual_seed(3)
    assert torch.equal(b, unseeded(training=True))


def test_simple_rnn_rate_one_zeroes_but_lstm_ignores_it():
    assert _probe(1.0, False, batch=2)(training=True).abs().sum() == 0
    lstm = layers.LSTM(3, dropout=1.0, recurrent_dropout=1.0)
    x = torch.randn(2, 4, 5)
    assert_close(lstm(x, training=True), lstm(x, training=False))


@pytest.mark.parametrize("kind,gates", [("LSTMCell", 4), ("GRUCell", 3)])
def test_per_gate_masks_when_recurrent_dropout(kind, gates):
    cell = getattr(layers, kind)(3, dropout=0.5, recurrent_dropout=0.5)
    assert cell.implementation == 1 and cell.dropout_mask_count == gates
    masks = cell.get_dropout_mask(torch.ones(64, 5))
    assert masks.shape == (gates, 64, 5)
    assert not torch.equal(masks[0], masks[1])
    assert cell.get_dropout_mask(torch.ones(64, 5)) is masks  # cached until reset
    cell.reset_dropout_mask()
    assert cell.get_dropout_mask(torch.ones(64, 5)) is not masks
    single = getattr(layers, kind)(3, dropout=0.5)
    assert single.implementation == 2 and single.get_dropout_mask(torch.ones(4, 5)).shape == (4, 5)


@pytest.mark.parametrize("kind", ["SimpleRNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("implementation", [1, 2])
def test_sequence_path_and_step_path_apply_the_same_masks(kind, implementation):
    """The one-matmul sequence path equals Keras's per-step cell computation."""

    class Stepwise(getattr(layers, kind)):
        def call(self, inputs, states, training=False):  # forces the per-step loop
            return super().call(inputs, states, training=training)

    kwargs = {"dropout": 0.4, "recurrent_dropout": 0.3}
    if kind != "SimpleRNNCell":
        kwargs["implementation"] = implementation
    fast = getattr(layers, kind)(3, **kwargs)
    slow = Stepwise(3, **kwargs)
    fast_layer = layers.RNN(fast, return_sequences=True)
    slow_layer = layers.RNN(slow, return_sequences=True)
    x = torch.randn(5, 4, 2)
    fast_layer(x)
    slow_layer(x)
    slow_layer.set_weights(fast_layer.get_weights())
    for cell in (fast, slow):  # the same cached masks for both
        torch.manual_seed(0)
        cell.get_dropout_mask(x[:, 0])
        cell.get_recurrent_dropout_mask(torch.zeros(5, 3))
    assert_close(fast_layer(x, training=True), slow_layer(x, training=True))
    assert fast.get_dropout_mask(x[:, 0]) is not None  # reset after the call: a new draw


def test_dropout_in_a_training_scope_applies():
    lstm = layers.LSTM(3, dropout=0.9, return_sequences=True)
    x = torch.randn(4, 3, 5)
    reference = lstm(x)
    from birnn import backend

    with backend.training_scope(True):
        assert not torch.equal(lstm(x), reference)


class _StepMaskCell(layers.Layer):
    """Asks for its dropout mask at every step: each output row is that step's mask."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units
        self.dropout = 0.5
        self._inner = layers.SimpleRNNCell(units, dropout=0.5)

    def build(self, input_shape):
        self._inner.build(input_shape)

    def call(self, inputs, states, training=None):
        mask = self._inner.get_dropout_mask(inputs)
        return torch.ones_like(inputs) * mask, [states[0]]


def _threaded_calls(call, batches=(5, 7), calls=50):
    import threading

    errors, results = [], {batch: [] for batch in batches}

    def work(batch):
        try:
            for _ in range(calls):
                results[batch].append(call(batch))
        except Exception as error:  # reported by the test
            errors.append(error)

    threads = [threading.Thread(target=work, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.LSTM(4, dropout=0.5, return_sequences=True),  # fused
        lambda: layers.GRU(4, dropout=0.3, recurrent_dropout=0.3, return_sequences=True),
        lambda: layers.SimpleRNN(4, dropout=0.5, return_sequences=True),
        lambda: layers.Bidirectional(layers.LSTM(4, dropout=0.5, return_sequences=True)),
    ],
    ids=["lstm_fused", "gru_generic", "simple_rnn", "bidirectional"],
)
def test_two_threads_training_with_different_batch_sizes(make):
    layer = make()
    layer(torch.ones(2, 3, 6))
    results = _threaded_calls(lambda batch: layer(torch.ones(batch, 3, 6), training=True))
    for batch, outputs in results.items():
        assert len(outputs) == 50 and all(o.shape[0] == batch for o in outputs)


def test_two_threads_each_keep_one_mask_over_the_timesteps_of_a_call():
    cell = _StepMaskCell(6)
    layer = layers.RNN(cell, return_sequences=True)
    layer(torch.ones(2, 8, 6))

    def call(batch):
        out = layer(torch.ones(batch, 8, 6), training=True)
        reset_dropout_masks(cell._inner)  # the user's cell resets its own
        return out

    results = _threaded_calls(call)
    for outputs in results.values():
        for out in outputs:
            for t in range(1, out.shape[1]):
                assert torch.equal(out[:, t], out[:, 0])
