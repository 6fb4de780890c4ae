"""Bad input raises a ValueError/TypeError naming the layer and the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import birnn.layers as layers


@pytest.fixture
def lstm():
    return layers.LSTM(3, name="my_lstm")


def test_initial_state_count_mismatch(lstm):
    with pytest.raises(ValueError, match=r"my_lstm.*2 initial state.*`initial_state`.*1"):
        lstm(torch.zeros(2, 4, 5), initial_state=[torch.zeros(2, 3)])
    with pytest.raises(ValueError, match=r"my_lstm.*2 initial state.*3"):
        lstm(torch.zeros(2, 4, 5), initial_state=[torch.zeros(2, 3)] * 3)


@pytest.mark.parametrize("shape", [(3, 3), (2, 4), (2, 3, 1)])
def test_initial_state_shape_mismatch(lstm, shape):
    states = [torch.zeros(2, 3), torch.zeros(*shape)]
    with pytest.raises(ValueError, match=r"my_lstm.*`initial_state\[1\]`.*\(2, 3\)"):
        lstm(torch.zeros(2, 4, 5), initial_state=states)


def test_initial_state_none_entry(lstm):
    with pytest.raises(ValueError, match=r"my_lstm.*`initial_state\[0\]` is None"):
        lstm(torch.zeros(2, 4, 5), initial_state=[None, torch.zeros(2, 3)])


def test_stateful_with_changed_batch_size():
    layer = layers.GRU(3, stateful=True, name="sgru")
    layer(torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match=r"sgru.*stateful with batch size 2.*batch size 3"):
        layer(torch.zeros(3, 4, 5))


def test_stateful_needs_a_static_batch_size():
    layer = layers.SimpleRNN(3, stateful=True, name="srnn")
    with pytest.raises(ValueError, match=r"srnn.*stateful.*batch size"):
        layer.build((None, 4, 5))


@pytest.mark.parametrize("class_name", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("shape", [(2, 5), (2, 4, 5, 1), (5,)])
def test_builtin_layers_need_3d_input(class_name, shape):
    layer = getattr(layers, class_name)(3, name="bad_rank")
    with pytest.raises(ValueError, match=r"bad_rank.*expected ndim=3"):
        layer(torch.zeros(*shape))


def test_generic_rnn_needs_at_least_3d_input():
    layer = layers.RNN(layers.LSTMCell(3), name="generic")
    with pytest.raises(ValueError, match=r"generic.*rank 3 or more"):
        layer(torch.zeros(2, 5))


def test_feature_dimension_change_after_build(lstm):
    lstm(torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match=r"my_lstm.*axis -1.*value 5.*\(2, 4, 6\)"):
        lstm(torch.zeros(2, 4, 6))
    cell = layers.RNN(layers.GRUCell(2, name="inner"))
    cell(torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match=r"inner.*5 features.*\(2, 4, 6\)"):
        cell(torch.zeros(2, 4, 6))


def test_empty_sequence(lstm):
    with pytest.raises(ValueError, match=r"my_lstm.*no timesteps"):
        lstm(torch.zeros(2, 0, 5))


def test_mask_of_wrong_shape(lstm):
    with pytest.raises(ValueError, match=r"my_lstm.*`mask`.*\(2, 4\)"):
        lstm(torch.zeros(2, 4, 5), mask=torch.ones(2, 5, dtype=torch.bool))


class NoStateSize:
    def call(self, inputs, states):
        return inputs, states


class NoCall:
    state_size = 3


@pytest.mark.parametrize(
    "cell,match",
    [
        (NoStateSize(), r"RNN.*`cell`.*`state_size`"),
        (NoCall(), r"RNN.*`cell`.*`call"),
    ],
)
def test_cell_missing_protocol(cell, match):
    with pytest.raises(ValueError, match=match):
        layers.RNN(cell)


def test_cell_passed_as_a_class():
    with pytest.raises(TypeError, match=r"RNN.*`cell`.*class.*LSTMCell\(\.\.\.\)"):
        layers.RNN(layers.LSTMCell)


@pytest.mark.parametrize("state_size", ["3", None, [3, "a"], [], -1, True])
def test_cell_with_invalid_state_size(state_size):
    class Cell:
        def call(self, inputs, states):
            return inputs, states

    cell = Cell()
    cell.state_size = state_size
    with pytest.raises(ValueError, match=r"RNN.*`state_size`"):
        layers.RNN(cell)


def test_stacked_cells_missing_state_size():
    with pytest.raises(ValueError, match=r"StackedRNNCells.*`cells\[1\]`.*`state_size`"):
        layers.StackedRNNCells([layers.GRUCell(2), NoStateSize()])
    with pytest.raises(ValueError, match=r"StackedRNNCells.*`cells`.*non-empty"):
        layers.StackedRNNCells([])


@pytest.mark.parametrize("class_name", ["SimpleRNN", "LSTM", "GRU", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("units", [0, -2, 2.5, "3", None, True])
def test_invalid_units(class_name, units):
    with pytest.raises(ValueError, match=rf"{class_name}.*`units`"):
        getattr(layers, class_name)(units)


@pytest.mark.parametrize("class_name", ["LSTM", "GRU"])
def test_invalid_use_cudnn(class_name):
    with pytest.raises(ValueError, match=rf"{class_name}.*`use_cudnn`"):
        getattr(layers, class_name)(3, use_cudnn="yes")


@pytest.mark.parametrize("argument", ["dropout", "recurrent_dropout"])
def test_invalid_dropout_rate(argument):
    with pytest.raises(TypeError, match=rf"LSTMCell.*`{argument}`"):
        layers.LSTM(3, **{argument: "high"})


def test_invalid_implementation_and_seed():
    with pytest.raises(ValueError, match=r"GRUCell.*`implementation`"):
        layers.GRU(3, implementation=3)
    with pytest.raises(TypeError, match=r"LSTMCell.*`seed`"):
        layers.LSTM(3, seed="abc")


def test_unknown_activation_and_keyword():
    with pytest.raises(ValueError, match="nonexistent"):
        layers.LSTM(3, activation="nonexistent")
    with pytest.raises(ValueError, match=r"LSTM.*bogus"):
        layers.LSTM(3, bogus=1)


def test_reset_states_errors():
    layer = layers.LSTM(3, stateful=True, name="stateful_lstm")
    layer(torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match=r"stateful_lstm.*2 state.*1"):
        layer.reset_states([np.zeros((2, 3))])
    with pytest.raises(ValueError, match=r"stateful_lstm.*`states\[1\]`.*\(2, 3\)"):
        layer.reset_states([np.zeros((2, 3)), np.zeros((3, 3))])
    with pytest.raises(ValueError, match=r"plain.*not stateful"):
        layers.LSTM(3, name="plain").reset_states([np.zeros((2, 3))] * 2)


class WrongStateCount:
    state_size = [2, 2]

    def call(self, inputs, states):
        h = inputs + states[0]
        return h, [h]


class WrongStateShape:
    state_size = 3

    def call(self, inputs, states):
        h = inputs + states[0][:, :2]
        return h, [h]


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize(
    "cell,match",
    [
        (WrongStateCount(), r"cell_rnn.*must return as many new states.*\(2, .*returned 1"),
        (WrongStateShape(), r"cell_rnn.*new state 0 of shape \(1, 2\).*\(1, 3\)"),
    ],
)
def test_cell_returning_states_unlike_its_state_size(cell, match, masked):
    mask = torch.tensor([[True, True, False]]) if masked else None
    with pytest.raises(ValueError, match=match):
        layers.RNN(cell, name="cell_rnn")(torch.ones(1, 3, 2), mask=mask)


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.Bidirectional(layers.LSTM(4, name="enc")),
        lambda: layers.Bidirectional(layers.GRU(4, name="enc", reset_after=False)),
        lambda: layers.Bidirectional(layers.SimpleRNN(4, name="enc")),
    ],
    ids=["fused", "generic", "simple"],
)
def test_wrong_feature_size_names_the_users_layer(make):
    layer = make()
    layer(torch.ones(2, 3, 5))
    with pytest.raises(ValueError, match=r"'enc'.*5.*\(2, 3, 6\)") as info:
        layer(torch.ones(2, 3, 6))
    assert "cell" not in str(info.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.LSTM(3, return_sequences=True),
        lambda: layers.SimpleRNN(3, return_sequences=True),
        lambda: layers.Bidirectional(layers.LSTM(3, return_sequences=True)),
        lambda: layers.Bidirectional(layers.GRU(3, return_sequences=True, use_cudnn=False)),
    ],
    ids=["lstm", "simple_rnn", "bi_lstm", "bi_gru_generic"],
)
def test_list_valued_mask_is_one_mask(make):
    layer = make()
    x = torch.randn(2, 3, 5)
    rows = [[True, False, True], [True, True, False]]
    expected = layer(x, mask=torch.tensor(rows))
    torch.testing.assert_close(layer(x, mask=rows), expected)
    torch.testing.assert_close(layer(x, mask=np.array(rows)), expected)
    torch.testing.assert_close(layer(x, mask=[torch.tensor(rows)]), expected)  # a list of masks
    assert torch.equal(layer.compute_mask(x, rows), torch.tensor(rows))


def test_list_valued_mask_of_the_wrong_shape_says_so():
    with pytest.raises(ValueError, match=r"`mask` must have shape \(2, 3\).*\(2, 2\)"):
        layers.LSTM(3)(torch.randn(2, 3, 5), mask=[[True, False], [True, True]])
