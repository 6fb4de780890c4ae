"""Configs: equal to Keras's, readable by Keras, and round-tripping every argument."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch

import birnn.layers as layers
from birnn.layers.serialization import deserialize_layer, serialize_layer
from tests.keras_oracle import assert_close

LAYER_ARGS = {
    "SimpleRNN": {},
    "LSTM": {},
    "GRU": {},
    "SimpleRNNCell": {},
    "LSTMCell": {},
    "GRUCell": {},
}

NON_DEFAULT = {
    "activation": "relu",
    "use_bias": False,
    "kernel_initializer": {"class_name": "HeNormal", "config": {"seed": 3}},
    "recurrent_initializer": "glorot_normal",
    "bias_initializer": "ones",
    "kernel_regularizer": {"class_name": "L2", "config": {"l2": 0.5}},
    "recurrent_regularizer": {"class_name": "L1", "config": {"l1": 0.25}},
    "bias_regularizer": {"class_name": "L1L2", "config": {"l1": 0.1, "l2": 0.2}},
    "kernel_constraint": {"class_name": "MaxNorm", "config": {"max_value": 2.0, "axis": 0}},
    "recurrent_constraint": {"class_name": "NonNeg", "config": {}},
    "bias_constraint": {"class_name": "UnitNorm", "config": {"axis": 0}},
    "dropout": 0.25,
    "recurrent_dropout": 0.5,
    "seed": 7,
    "trainable": False,
}
EXTRA = {
    "LSTM": {"recurrent_activation": "hard_sigmoid", "unit_forget_bias": False},
    "GRU": {"recurrent_activation": "hard_sigmoid", "reset_after": False},
}
# Keras's SimpleRNN ignores `activity_regularizer` and leaves `seed` out of its config;
# ours honours the first and keeps the second (only when set).
KERAS_SLIPS = {"SimpleRNN": {"activity_regularizer", "seed"}}
LAYER_ONLY = {
    "return_sequences": True,
    "return_state": True,
    "go_backwards": True,
    "stateful": True,
    "unroll": True,
    "zero_output_for_mask": True,
    "activity_regularizer": {"class_name": "L2", "config": {"l2": 0.3}},
}


def _kwargs(class_name: str, non_default: bool) -> dict:
    if not non_default:
        return {"name": "x"}
    base = class_name.replace("Cell", "")
    kwargs = {**NON_DEFAULT, **EXTRA.get(base, {}), "name": "x"}
    if not class_name.endswith("Cell"):
        kwargs.update(LAYER_ONLY)
    return kwargs


@pytest.mark.parametrize("non_default", [False, True], ids=["defaults", "non_defaults"])
@pytest.mark.parametrize("class_name", sorted(LAYER_ARGS))
def test_config_equals_keras(class_name, non_default):
    kwargs = _kwargs(class_name, non_default)
    ours = getattr(layers, class_name)(3, **kwargs)
    theirs = getattr(keras.layers, class_name)(3, **kwargs)
    ours, theirs = ours.get_config(), theirs.get_config()
    differing = {k for k in set(ours) | set(theirs) if ours.get(k, "?") != theirs.get(k, "?")}
    assert differing <= KERAS_SLIPS.get(class_name, set())
    assert differing == (KERAS_SLIPS.get(class_name, set()) if non_default else set())


@pytest.mark.parametrize("non_default", [False, True], ids=["defaults", "non_defaults"])
@pytest.mark.parametrize("class_name", sorted(LAYER_ARGS))
def test_config_round_trip(class_name, non_default):
    cls = getattr(layers, class_name)
    layer = cls(3, **_kwargs(class_name, non_default))
    config = layer.get_config()
    clone = cls.from_config(config)
    assert clone.get_config() == config
    assert type(clone) is cls
    for attribute in ("units", "dropout", "recurrent_dropout", "use_bias", "seed"):
        assert getattr(clone, attribute) == getattr(layer, attribute)
    if not class_name.endswith("Cell"):
        for attribute in LAYER_ONLY:
            if attribute != "activity_regularizer":
                assert getattr(clone, attribute) == getattr(layer, attribute)


@pytest.mark.parametrize("non_default", [False, True], ids=["defaults", "non_defaults"])
@pytest.mark.parametrize("class_name", sorted(LAYER_ARGS))
def test_keras_reads_our_config(class_name, non_default):
    config = getattr(layers, class_name)(3, **_kwargs(class_name, non_default)).get_config()
    theirs = getattr(keras.layers, class_name).from_config(config).get_config()
    differing = {k for k in set(config) | set(theirs) if config.get(k, "?") != theirs.get(k, "?")}
    assert differing <= KERAS_SLIPS.get(class_name, set())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"implementation": 1},
        {"use_cudnn": False},
        {"seed": 5},
    ],
)
@pytest.mark.parametrize("class_name", ["SimpleRNN", "LSTM", "GRU"])
def test_arguments_keras_drops_still_round_trip(class_name, kwargs):
    if class_name == "SimpleRNN" and ("use_cudnn" in kwargs or "implementation" in kwargs):
        with pytest.raises(ValueError, match="use_cudnn|implementation"):
            getattr(layers, class_name)(3, **kwargs)
        return
    cls = getattr(layers, class_name)
    clone = cls.from_config(cls(3, **kwargs).get_config())
    key, value = next(iter(kwargs.items()))
    assert getattr(clone, key) == value
    keras_clone = getattr(keras.layers, class_name).from_config(cls(3, **kwargs).get_config())
    assert keras_clone.units == 3


def _rnn_pairs():
    return {
        "lstm_cell": (lambda m: m.LSTMCell(3, name="c")),
        "stacked": (lambda m: [m.LSTMCell(3, name="a"), m.GRUCell(2, name="b")]),
        "stacked_object": (lambda m: m.StackedRNNCells([m.SimpleRNNCell(2, name="a")], name="s")),
    }


@pytest.mark.parametrize("built", [False, True], ids=["unbuilt", "built"])
@pytest.mark.parametrize("case", sorted(_rnn_pairs()))
def test_rnn_config_serializes_the_cell_as_keras(case, built):
    make = _rnn_pairs()[case]
    ours = layers.RNN(make(layers), return_sequences=True, name="r", zero_output_for_mask=True)
    theirs = keras.layers.RNN(
        make(keras.layers), return_sequences=True, name="r", zero_output_for_mask=True
    )
    if built:
        x = np.zeros((2, 5, 4), "float32")
        ours(x)
        theirs(x)
    expected = theirs.get_config()
    if case == "stacked":  # auto-named StackedRNNCells: the two libraries count differently
        expected["cell"]["config"]["name"] = ours.cell.name
    assert ours.get_config() == expected
    clone = layers.RNN.from_config(ours.get_config())
    assert clone.get_config() == ours.get_config()
    assert clone.cell.built == built
    if built:
        assert [w.shape for w in clone.get_weights()] == [w.shape for w in ours.get_weights()]
    keras_clone = keras.layers.RNN.from_config(ours.get_config())
    assert (
        keras_clone.get_config()["cell"]["class_name"] == ours.get_config()["cell"]["class_name"]
    )


def test_from_config_does_not_mutate_its_argument():
    config = layers.RNN(layers.GRUCell(2)).get_config()
    snapshot = repr(config)
    layers.RNN.from_config(config)
    assert repr(config) == snapshot


def test_round_trip_preserves_function():
    layer = layers.LSTM(3, return_sequences=True, go_backwards=True)
    x = torch.randn(2, 5, 4)
    expected = layer(x)
    clone = layers.LSTM.from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    assert_close(clone(x), expected)


def test_bidirectional_style_clone_with_flipped_direction():
    layer = layers.GRU(3, return_sequences=True, reset_after=False, zero_output_for_mask=True)
    config = layer.get_config()
    config["go_backwards"] = not config["go_backwards"]
    config["name"] = "backward_" + config["name"]
    backward = type(layer).from_config(config)
    assert backward.go_backwards and backward.zero_output_for_mask
    x = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    out, state = type(layer).from_config({**config, "return_state": True})(
        x, mask=mask, training=False, initial_state=[torch.zeros(2, 3)]
    )
    assert out.shape == (2, 5, 3) and state.shape == (2, 3)
    assert backward(x, mask=mask, initial_state=torch.zeros(2, 3)).shape == (2, 5, 3)


def test_serialize_unbuilt_cell_has_no_build_config():
    config = serialize_layer(layers.LSTMCell(2))
    assert "build_config" not in config
    assert deserialize_layer(config).units == 2


def test_deserialize_unknown_class_is_a_clear_error():
    with pytest.raises(ValueError, match="NoSuchCell.*custom_objects"):
        deserialize_layer({"class_name": "NoSuchCell", "module": "nowhere", "config": {}})
    with pytest.raises(ValueError, match="class_name"):
        deserialize_layer({"config": {}})


@pytest.mark.parametrize("class_name", ["SimpleRNN", "LSTM", "GRU"])
def test_layer_properties_forward_to_the_cell(class_name):
    layer = getattr(layers, class_name)(3, dropout=0.2, use_bias=False, name="p")
    assert (
        layer.cell.name
        == {"SimpleRNN": "simple_rnn_cell", "LSTM": "lstm_cell", "GRU": "gru_cell"}[class_name]
    )
    assert layer.units == 3 and layer.dropout == 0.2 and layer.use_bias is False
    assert layer.activation is layer.cell.activation
    if class_name != "SimpleRNN":
        assert layer.recurrent_activation is layer.cell.recurrent_activation


def test_unit_forget_bias_initializes_the_forget_gate_to_one():
    layer = layers.LSTM(3, bias_initializer="ones")
    layer(torch.zeros(1, 2, 4))
    bias = layer.cell.bias.detach()
    assert bias[:3].tolist() == [1.0] * 3 and bias[3:6].tolist() == [1.0] * 3
    layer = layers.LSTM(3)
    layer(torch.zeros(1, 2, 4))
    assert layer.cell.bias.detach().tolist() == [0.0] * 3 + [1.0] * 3 + [0.0] * 6
    layer = layers.LSTM(3, unit_forget_bias=False)
    layer(torch.zeros(1, 2, 4))
    assert layer.cell.bias.detach().abs().sum().item() == 0


def test_gru_bias_shapes():
    for reset_after, shape in [(True, (2, 9)), (False, (9,))]:
        layer = layers.GRU(3, reset_after=reset_after)
        layer(torch.zeros(1, 2, 4))
        assert [w.shape for w in layer.get_weights()] == [(4, 9), (3, 9), shape]


def test_regularizers_and_constraints_reach_the_cell_weights():
    layer = layers.LSTM(
        3,
        kernel_regularizer={"class_name": "L2", "config": {"l2": 1.0}},
        recurrent_constraint={"class_name": "NonNeg", "config": {}},
    )
    layer(torch.randn(2, 4, 4))
    assert len(layer.losses) == 1
    torch.testing.assert_close(layer.losses[0], (layer.cell.kernel**2).sum())
    layer.apply_constraints()
    assert (layer.cell.recurrent_kernel >= 0).all()


def test_rnn_config_round_trips_every_argument():
    """`RNN` with every argument off its default, over stacked cells, in float64."""
    rnn_kwargs = {
        "return_sequences": True,
        "return_state": True,
        "go_backwards": True,
        "stateful": True,
        "unroll": True,
        "zero_output_for_mask": True,
        "name": "r",
        "dtype": "float64",
        "trainable": False,
    }

    def make(m):
        cells = [
            m.LSTMCell(2, name="a", dtype="float64", unit_forget_bias=False),
            m.GRUCell(3, name="b", dtype="float64", reset_after=False, dropout=0.5),
        ]
        return m.RNN(m.StackedRNNCells(cells, name="s", dtype="float64"), **rnn_kwargs)

    ours, theirs = make(layers), make(keras.layers)
    config = ours.get_config()
    assert config == theirs.get_config()
    clone = layers.RNN.from_config(config)
    assert clone.get_config() == config
    for argument, value in rnn_kwargs.items():
        if argument != "dtype":
            assert getattr(clone, argument) == value, argument
    assert clone.dtype_torch == torch.float64
    outputs = clone(np.random.default_rng(0).normal(size=(2, 4, 3)))
    assert len(outputs) == 3 and outputs[0].dtype == torch.float64


@pytest.mark.parametrize(
    "class_name",
    ["SimpleRNN", "LSTM", "GRU", "SimpleRNNCell", "LSTMCell", "GRUCell", "RNN", "StackedRNNCells"],
)
def test_config_holds_every_constructor_argument(class_name):
    """Every named argument of the constructor is in the config (Keras's names)."""
    import inspect

    cls = getattr(layers, class_name)
    arguments = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    keras_arguments = set(inspect.signature(getattr(keras.layers, class_name).__init__).parameters)
    assert arguments == keras_arguments - {"self", "kwargs"}
    if class_name == "RNN":
        layer = cls(layers.GRUCell(2))
    elif class_name == "StackedRNNCells":
        layer = cls([layers.GRUCell(2)])
    else:
        # Arguments Keras leaves out of its configs at their defaults; ours keeps them when set.
        kept_when_set = {"use_cudnn": False, "seed": 1} if class_name != "SimpleRNNCell" else {}
        layer = cls(2, **{k: v for k, v in kept_when_set.items() if k in arguments})
    config = layer.get_config()
    assert arguments <= set(config), sorted(arguments - set(config))
    assert {"name", "dtype", "trainable"} <= set(config)
