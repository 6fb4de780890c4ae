"""The pure recurrent functions: the scan's masking rule, projections, gradcheck."""

from __future__ import annotations

import pytest
import torch

from birnn.ops import recurrent


def _cumsum_step(x, states):
    total = states[0] + x
    return total * 10, [total]


def _scan(mask, **kwargs):
    x = torch.arange(1.0, 6.0).view(1, 5, 1)
    return recurrent.scan(_cumsum_step, x, [torch.zeros(1, 1)], mask=mask, **kwargs)


def test_scan_without_mask_matches_a_plain_loop():
    last, outputs, (state,) = _scan(None)
    assert outputs[0, :, 0].tolist() == [10, 30, 60, 100, 150]
    assert last.item() == 150 and state.item() == 15


def test_scan_masked_steps_keep_state_and_repeat_previous_output():
    mask = torch.tensor([[False, True, False, True, False]])
    last, outputs, (state,) = _scan(mask)
    assert outputs[0, :, 0].tolist() == [0, 20, 20, 60, 60]
    assert last.item() == 60 and state.item() == 6


def test_scan_zero_output_for_mask():
    mask = torch.tensor([[False, True, False, True, False]])
    last, outputs, _ = _scan(mask, zero_output_for_mask=True)
    assert outputs[0, :, 0].tolist() == [0, 20, 0, 60, 0]
    assert last.item() == 0


def test_scan_go_backwards_returns_outputs_in_processing_order():
    last, outputs, (state,) = _scan(None, go_backwards=True)
    assert outputs[0, :, 0].tolist() == [50, 90, 120, 140, 150]
    mask = torch.tensor([[True, False, True, True, False]])
    last, outputs, (state,) = _scan(mask, go_backwards=True)
    assert outputs[0, :, 0].tolist() == [0, 40, 70, 70, 80]
    assert state.item() == 8


def test_scan_fully_masked_row_keeps_initial_state():
    x = torch.ones(2, 3, 1)
    mask = torch.tensor([[True, True, True], [False, False, False]])
    initial = torch.tensor([[5.0], [7.0]])
    last, outputs, (state,) = recurrent.scan(_cumsum_step, x, [initial], mask=mask)
    assert state[:, 0].tolist() == [8.0, 7.0]
    assert outputs[1].abs().sum().item() == 0


def test_scan_only_last_output_and_time_major():
    x = torch.randn(2, 4, 3)
    last, outputs, _ = recurrent.scan(_cumsum_step, x, [torch.zeros(2, 3)])
    last_only, single, _ = recurrent.scan(
        _cumsum_step,
        x.transpose(0, 1),
        [torch.zeros(2, 3)],
        return_all_outputs=False,
        time_major=True,
    )
    assert single.shape == (2, 1, 3)
    torch.testing.assert_close(last_only, last)
    torch.testing.assert_close(outputs[:, -1], last)


def test_scan_rejects_empty_sequences():
    with pytest.raises(ValueError, match="at least one timestep"):
        recurrent.scan(_cumsum_step, torch.zeros(2, 0, 1), [torch.zeros(2, 1)])


@pytest.mark.parametrize("gates", [1, 3, 4])
@pytest.mark.parametrize("time_major", [False, True])
def test_input_projection_equals_per_step_products(gates, time_major):
    x = torch.randn(2, 5, 3)
    kernel = torch.randn(3, gates * 4)
    bias = torch.randn(gates * 4)
    masks = (torch.rand(gates, 2, 3) > 0.5).float() * 2
    projected = recurrent.input_projection(x, kernel, bias, masks, time_major_output=time_major)
    if time_major:
        projected = projected.transpose(0, 1)
    for t in range(5):
        expected = torch.cat(
            [(x[:, t] * masks[g]) @ kernel[:, g * 4 : (g + 1) * 4] for g in range(gates)], dim=1
        )
        torch.testing.assert_close(projected[:, t], expected + bias)
    single = recurrent.input_projection(x, kernel, None, masks[0], time_major_output=time_major)
    if time_major:
        single = single.transpose(0, 1)
    torch.testing.assert_close(single, (x * masks[0][:, None]) @ kernel)


def _double(*shape):
    return torch.randn(*shape, dtype=torch.float64, requires_grad=True)


MASK = torch.tensor([[True, True, False, True], [False, True, True, False]])


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("mask", [None, MASK], ids=["unmasked", "masked"])
@pytest.mark.parametrize(
    "cell", ["simple_rnn", "lstm", "gru", "gru_reset_before", "lstm_dropout", "gru_dropout"]
)
def test_gradcheck_generic_loop(cell, mask, go_backwards):
    batch, time, features, units = 2, 4, 3, 2
    x = _double(batch, time, features)
    h0 = _double(batch, units)
    common = {"mask": mask, "go_backwards": go_backwards}
    if cell == "simple_rnn":
        weights = (_double(features, units), _double(units, units), _double(units))

        def fn(x, h0, kernel, recurrent_kernel, bias):
            _, outputs, (h,) = recurrent.simple_rnn(
                x, h0, kernel, recurrent_kernel, bias, torch.tanh, **common
            )
            return outputs, h

        inputs = (x, h0, *weights)
    elif cell.startswith("lstm"):
        c0 = _double(batch, units)
        weights = (_double(features, 4 * units), _double(units, 4 * units), _double(4 * units))
        if cell == "lstm_dropout":
            common["dropout_mask"] = (torch.rand(4, batch, features) > 0.3).double() / 0.7
            common["recurrent_dropout_mask"] = (torch.rand(4, batch, units) > 0.3).double() / 0.7

        def fn(x, h0, c0, kernel, recurrent_kernel, bias):
            _, outputs, (h, c) = recurrent.lstm(
                x, h0, c0, kernel, recurrent_kernel, bias, torch.tanh, torch.sigmoid, **common
            )
            return outputs, h, c

        inputs = (x, h0, c0, *weights)
    else:
        reset_after = cell != "gru_reset_before"
        bias = _double(2, 3 * units) if reset_after else _double(3 * units)
        weights = (_double(features, 3 * units), _double(units, 3 * units), bias)
        if cell == "gru_dropout":
            common["dropout_mask"] = (torch.rand(3, batch, features) > 0.3).double() / 0.7
            common["recurrent_dropout_mask"] = (torch.rand(3, batch, units) > 0.3).double() / 0.7

        def fn(x, h0, kernel, recurrent_kernel, bias):
            _, outputs, (h,) = recurrent.gru(
                x,
                h0,
                kernel,
                recurrent_kernel,
                bias,
                torch.tanh,
                torch.sigmoid,
                reset_after=reset_after,
                **common,
            )
            return outputs, h

        inputs = (x, h0, *weights)
    assert torch.autograd.gradcheck(fn, inputs)


def test_gru_reset_before_with_per_gate_recurrent_masks_matches_keras_formula():
    batch, units = 2, 3
    h = torch.randn(batch, units)
    x_proj = torch.randn(batch, 3 * units)
    kernel = torch.randn(units, 3 * units)
    masks = (torch.rand(3, batch, units) > 0.5).float() * 2
    out = recurrent.gru_step(
        x_proj,
        h,
        kernel,
        None,
        torch.tanh,
        torch.sigmoid,
        reset_after=False,
        recurrent_dropout_mask=masks,
    )
    z = torch.sigmoid(x_proj[:, :units] + (h * masks[0]) @ kernel[:, :units])
    r = torch.sigmoid(x_proj[:, units : 2 * units] + (h * masks[1]) @ kernel[:, units : 2 * units])
    hh = torch.tanh(x_proj[:, 2 * units :] + (r * h * masks[2]) @ kernel[:, 2 * units :])
    torch.testing.assert_close(out, z * h + (1 - z) * hh)


@pytest.mark.parametrize(
    "make",
    [
        lambda layers: layers.SimpleRNN(2, dtype="float64", return_sequences=True),
        lambda layers: layers.LSTM(2, dtype="float64", return_sequences=True, use_cudnn=False),
        lambda layers: layers.GRU(2, dtype="float64", go_backwards=True, use_cudnn=False),
        lambda layers: layers.RNN(
            [
                layers.GRUCell(2, reset_after=False, dtype="float64"),
                layers.LSTMCell(2, dtype="float64"),
            ],
            dtype="float64",
        ),
    ],
    ids=["simple_rnn", "lstm", "gru", "stacked"],
)
def test_gradcheck_through_the_layers(make):
    import birnn.layers as layers

    layer = make(layers)
    x = _double(2, 4, 3)
    layer(x)
    mask = torch.tensor([[True, False, True, True], [False, False, False, False]])
    assert torch.autograd.gradcheck(lambda x, *w: layer(x, mask=mask), (x, *layer.weights))


def _stepwise(cell_class):
    class Stepwise(cell_class):
        def call(self, inputs, states, training=False):  # forces RNN's per-step loop
            return super().call(inputs, states, training=training)

    return Stepwise


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize(
    "cell",
    ["SimpleRNNCell", "LSTMCell", "GRUCell", "GRUCell_reset_before"],
)
def test_gradcheck_each_cell_step_by_step_in_the_generic_loop(cell, go_backwards):
    """Each built-in cell's own `call()`, driven one step at a time by `RNN` and the scan."""
    import birnn.layers as layers

    class_name, _, variant = cell.partition("_")
    kwargs = {"reset_after": False} if variant == "reset_before" else {}
    instance = _stepwise(getattr(layers, class_name))(2, dtype="float64", **kwargs)
    layer = layers.RNN(
        instance,
        return_sequences=True,
        return_state=True,
        go_backwards=go_backwards,
        dtype="float64",
    )
    x = _double(2, 4, 3)
    layer(x)
    assert layer.cell.call_sequence is None
    states = [_double(2, 2) for _ in instance.get_initial_state(2)]
    count = len(states)

    def fn(x, *rest):
        return layer(x, initial_state=list(rest[:count]), mask=MASK)

    assert torch.autograd.gradcheck(fn, (x, *states, *layer.weights))
