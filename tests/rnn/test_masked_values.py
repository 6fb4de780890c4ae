"""Values at masked steps change nothing: outputs, states and gradients, on every path."""

import dataclasses

import pytest
import torch

from birnn.layers import GRU, LSTM, RNN, Bidirectional, SimpleRNN
from birnn.ops import fused_rnn, recurrent

from ..bidirectional._seq_layers import DecayCell

BAD_VALUES = [float("nan"), float("inf"), -float("inf"), 1e30, -1e30]
MASK = torch.tensor(
    [
        [True, True, True, False, False],  # right padding
        [False, False, True, True, True],  # left padding
        [True, False, True, False, True],  # holes
        [False, False, False, False, False],  # fully masked
        [True, True, True, True, True],  # none masked
    ]
)

LAYERS = {
    "lstm_fused": lambda: LSTM(3, return_sequences=True, return_state=True),
    "lstm_fused_backwards": lambda: LSTM(3, return_state=True, go_backwards=True),
    "lstm_generic": lambda: LSTM(3, return_sequences=True, return_state=True, use_cudnn=False),
    "gru_fused": lambda: GRU(3, return_sequences=True, return_state=True),
    "gru_generic_backwards": lambda: GRU(
        3, return_state=True, go_backwards=True, reset_after=False
    ),
    "simple_rnn": lambda: SimpleRNN(3, return_sequences=True, return_state=True),
    "simple_rnn_unroll": lambda: SimpleRNN(3, return_state=True, unroll=True),
    "lstm_zero_output": lambda: LSTM(3, return_sequences=True, zero_output_for_mask=True),
    "custom_cell": lambda: RNN(DecayCell(3), return_sequences=True, return_state=True),
    "bi_lstm": lambda: Bidirectional(LSTM(3, return_sequences=True, return_state=True)),
    "bi_lstm_last": lambda: Bidirectional(LSTM(3, return_state=True), merge_mode="sum"),
    "bi_gru": lambda: Bidirectional(GRU(3, return_sequences=True, return_state=True)),
    "bi_gru_generic": lambda: Bidirectional(
        GRU(3, return_sequences=True, return_state=True, use_cudnn=False), merge_mode="mul"
    ),
    "bi_simple_rnn": lambda: Bidirectional(SimpleRNN(3, return_sequences=True)),
}


def _run(layer, x, mask):
    x = x.detach().clone().requires_grad_(True)
    out = layer(x, mask=mask)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    layer.zero_grad(set_to_none=True)
    loss = sum((o * torch.linspace(0.5, 1.5, o.shape[-1])).sum() for o in outs)
    loss.backward()
    grads = [p.grad.clone() for p in layer.parameters()]
    return [o.detach() for o in outs], grads, x.grad


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_values_at_masked_steps_change_nothing(name):
    layer = LAYERS[name]()
    x = torch.randn(*MASK.shape, 4)
    outs, grads, x_grad = _run(layer, x, MASK)
    assert all(torch.isfinite(o).all() for o in outs)
    for bad in BAD_VALUES:
        poisoned = x.clone()
        poisoned[~MASK] = bad
        bad_outs, bad_grads, bad_x_grad = _run(layer, poisoned, MASK)
        for a, b in zip(bad_outs, outs):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=f"{name}, value {bad}")
        for a, b in zip(bad_grads, grads):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0, msg=f"{name}, value {bad}")
        # The gradient reaches only the processed steps: zero (not NaN) at masked ones.
        assert torch.equal(bad_x_grad[~MASK], torch.zeros_like(bad_x_grad[~MASK]))
        torch.testing.assert_close(bad_x_grad, x_grad, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_fused_ops_ignore_masked_values(kind, go_backwards):
    units, features = 3, 4
    kernel = torch.randn(features, fused_rnn._GATES[kind] * units)
    recurrent_kernel = torch.randn(units, fused_rnn._GATES[kind] * units)
    bias = torch.randn(4 * units) if kind == "lstm" else torch.randn(2, 3 * units)
    x = torch.randn(*MASK.shape, features)
    poisoned = x.clone()
    poisoned[~MASK] = float("nan")
    zeros = torch.zeros(MASK.shape[0], units)

    def run(inputs):
        states = [zeros, zeros] if kind == "lstm" else [zeros]
        function = fused_rnn.lstm if kind == "lstm" else fused_rnn.gru
        last, outputs, final = function(
            inputs, *states, kernel, recurrent_kernel, bias, mask=MASK, go_backwards=go_backwards
        )
        return [last, outputs, *final]

    for a, b in zip(run(poisoned), run(x)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    direction = fused_rnn.Direction(kind, kernel, recurrent_kernel, bias, mask=MASK)
    backward = dataclasses.replace(direction, go_backwards=True)
    pair = fused_rnn.run_pair(poisoned, direction, backward)
    expected = fused_rnn.run_pair(x, direction, backward)
    torch.testing.assert_close(pair.sequences, expected.sequences, atol=1e-6, rtol=0)
    for a, b in zip(pair.states, expected.states):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_scan_ignores_masked_values_in_gradients():
    weight = torch.ones(2, requires_grad=True)

    def step(x, states):
        h = torch.tanh(x * weight + states[0])
        return h, [h]

    x = torch.randn(*MASK.shape, 2)
    x[~MASK] = float("nan")
    last, outputs, _ = recurrent.scan(step, x, [torch.zeros(MASK.shape[0], 2)], mask=MASK)
    outputs.sum().backward()
    assert torch.isfinite(outputs).all()
    assert torch.isfinite(weight.grad).all()


def test_scan_time_major_ignores_masked_values():
    def step(x, states):
        h = x + states[0]
        return h, [h]

    x = torch.randn(*MASK.shape, 2)
    clean = recurrent.scan(step, x, [torch.zeros(MASK.shape[0], 2)], mask=MASK)
    x[~MASK] = float("nan")
    poisoned = recurrent.scan(
        step, x.transpose(0, 1), [torch.zeros(MASK.shape[0], 2)], mask=MASK, time_major=True
    )
    for a, b in zip(poisoned[:2], clean[:2]):
        torch.testing.assert_close(a, b)
