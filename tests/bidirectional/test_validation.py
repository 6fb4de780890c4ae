"""Every documented `ValueError` of `Bidirectional`, and the messages that name what is wrong."""

import numpy as np
import pytest
import torch

from birnn.layers import GRU, LSTM, Bidirectional, Dense, SimpleRNN
from tests.keras_oracle import keras

from ._seq_layers import NoGoBackwards, RunningSum


@pytest.mark.parametrize("bad", ["lstm", 3, None, torch.nn.LSTM(2, 3)], ids=repr)
def test_layer_must_be_a_layer(bad):
    with pytest.raises(ValueError, match=r"argument `layer` must be a `birnn.layers.Layer`"):
        Bidirectional(bad)


def test_keras_layer_gets_a_hint():
    with pytest.raises(ValueError, match="use the birnn layer of the same name"):
        Bidirectional(keras.layers.LSTM(2))


@pytest.mark.parametrize(
    ("layer", "missing"),
    [
        (Dense(2), "`go_backwards`, `return_sequences`, `return_state`"),
        (NoGoBackwards(), "`go_backwards`, `return_state`"),
    ],
)
def test_layer_must_have_the_rnn_attributes(layer, missing):
    with pytest.raises(ValueError, match=f"argument `layer` .* must have {missing} attribute"):
        Bidirectional(layer)


def test_backward_layer_must_be_a_layer():
    with pytest.raises(ValueError, match="argument `backward_layer` must be a `birnn.layers"):
        Bidirectional(LSTM(2), backward_layer="lstm")
    with pytest.raises(ValueError, match="argument `backward_layer` .* must have"):
        Bidirectional(LSTM(2), backward_layer=Dense(2))


@pytest.mark.parametrize("merge_mode", ["max", "Concat", "", 1, ["sum"]])
def test_merge_mode_must_be_known(merge_mode):
    with pytest.raises(ValueError, match=r"invalid `merge_mode`.*\"concat\", \"sum\", \"mul\""):
        Bidirectional(LSTM(2), merge_mode=merge_mode)


def test_backward_layer_must_go_the_other_way():
    with pytest.raises(ValueError, match="different `go_backwards` values.*go_backwards=False"):
        Bidirectional(LSTM(2), backward_layer=LSTM(2))
    with pytest.raises(ValueError, match="different `go_backwards`"):
        Bidirectional(
            RunningSum(2, go_backwards=True), backward_layer=RunningSum(2, go_backwards=True)
        )


@pytest.mark.parametrize("attribute", ["stateful", "return_sequences", "return_state"])
def test_backward_layer_must_match_common_attributes(attribute):
    with pytest.raises(ValueError, match=f"same value for attribute `{attribute}`"):
        Bidirectional(
            LSTM(2, batch_size=3), backward_layer=LSTM(2, go_backwards=True, **{attribute: True})
        )


def test_weights_must_be_a_list_of_the_right_length():
    with pytest.raises(ValueError, match="argument `weights` must be a list"):
        Bidirectional(LSTM(2), weights=np.zeros((4, 8)))
    layer = Bidirectional(LSTM(2), weights=[np.zeros((4, 8))] * 3)
    with pytest.raises(ValueError, match="`weights` holds 3 arrays.*3 \\+ 3 weights"):
        layer.build((None, 5, 4))


@pytest.mark.parametrize("count", [1, 3, 5])
def test_initial_state_that_cannot_be_split_is_a_value_error(count):
    # Keras 3.15 departs from its documentation here: it slices the list at len // 2,
    # so 1 or 3 states fail deep inside the LSTM with an IndexError, and with 5 the
    # backward LSTM silently ignores its third state.
    layer = Bidirectional(LSTM(2))
    states = [torch.zeros(3, 2)] * count
    with pytest.raises(ValueError, match=f"`initial_state` must hold an even number.*{count}"):
        layer(torch.zeros(3, 5, 4), initial_state=states)
    keras_layer = keras.layers.Bidirectional(keras.layers.LSTM(2))
    keras_call = lambda: keras_layer(  # noqa: E731
        np.zeros((3, 5, 4), "float32"), initial_state=[np.zeros((3, 2), "float32")] * count
    )
    if count < 5:
        with pytest.raises(IndexError):
            keras_call()
    else:
        keras_call()


def test_initial_state_must_be_a_list():
    layer = Bidirectional(GRU(2))
    with pytest.raises(ValueError, match="`initial_state` must be a list of tensors.*Tensor"):
        layer(torch.zeros(3, 5, 4), initial_state=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="even number"):
        layer(torch.zeros(3, 5, 4), initial_state=[])


def test_initial_state_with_wrong_count_per_direction():
    # Halves of a wrong (even) count reach the wrapped layers, which name the count.
    with pytest.raises(ValueError, match="expects 2 initial state"):
        Bidirectional(LSTM(2))(torch.zeros(3, 5, 4), initial_state=[torch.zeros(3, 2)] * 2)


def test_initial_state_split_by_state_count_for_different_layers():
    layer = Bidirectional(
        LSTM(2, return_state=True), backward_layer=GRU(2, go_backwards=True, return_state=True)
    )
    states = [torch.randn(3, 2) for _ in range(3)]
    masked = torch.zeros(3, 5, dtype=torch.bool)  # fully masked: states stay as given
    _, h_fw, c_fw, h_bw = layer(torch.zeros(3, 5, 4), mask=masked, initial_state=states)
    for actual, expected in zip((h_fw, c_fw, h_bw), states):
        torch.testing.assert_close(actual, expected)
    with pytest.raises(ValueError, match="2 tensors for the forward layer followed by 1"):
        layer(torch.zeros(3, 5, 4), initial_state=states[:2])


def test_reset_states_needs_a_stateful_layer():
    layer = Bidirectional(SimpleRNN(2))
    with pytest.raises(AttributeError, match="needs a stateful layer"):
        layer.reset_states()


def test_reset_states_with_unsplittable_states():
    layer = Bidirectional(SimpleRNN(2, stateful=True))
    layer.build((3, 5, 4))
    with pytest.raises(ValueError, match="`states` must hold an even number.*3"):
        layer.reset_states([np.zeros((3, 2))] * 3)


def test_from_config_needs_a_layer():
    with pytest.raises(ValueError, match="needs a 'layer' entry"):
        Bidirectional.from_config({"merge_mode": "sum"})


def test_from_config_of_unknown_class():
    config = Bidirectional(LSTM(2)).get_config()
    config["layer"] = {**config["layer"], "class_name": "Nowhere", "module": "nowhere"}
    with pytest.raises(ValueError, match="Nowhere"):
        Bidirectional.from_config(config)


def test_unknown_keyword_argument():
    with pytest.raises(ValueError, match="Unrecognized keyword arguments passed to Bidirectional"):
        Bidirectional(LSTM(2), go_backwards=True)
