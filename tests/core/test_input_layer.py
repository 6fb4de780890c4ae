"""Input and InputLayer against Keras 3.15: shapes, dtypes, configs and argument errors."""

import keras
import pytest

import birnn
from birnn.keras_tensor import KerasTensor
from birnn.layers import InputLayer

CASES = [
    {"shape": (5, 3)},
    {"shape": (None, 4), "batch_size": 8},
    {"shape": ()},
    {"batch_shape": (2, None, 3)},
    {"shape": (6,), "dtype": "int32"},
    {"shape": (6,), "dtype": "float64"},
    {"shape": (6,), "dtype": "bool"},
    {"shape": (3,), "optional": True},
]


@pytest.mark.parametrize("kwargs", CASES, ids=lambda k: "-".join(f"{a}={b}" for a, b in k.items()))
def test_input_matches_keras(kwargs):
    ours = birnn.Input(name="inp", **kwargs)
    theirs = keras.Input(name="inp", **kwargs)
    assert isinstance(ours, KerasTensor)
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert ours.dtype == theirs.dtype
    ours_layer = InputLayer(name="inp", **kwargs)
    theirs_layer = keras.layers.InputLayer(name="inp", **kwargs)
    ours_config, theirs_config = ours_layer.get_config(), theirs_layer.get_config()
    assert ours_config == {**theirs_config, "batch_shape": list(theirs_config["batch_shape"])}
    assert ours_layer.batch_shape == tuple(theirs_layer.batch_shape)
    assert ours_layer.output.shape == tuple(theirs_layer.output.shape)
    # configs cross over both ways
    assert InputLayer.from_config(theirs_config).get_config() == ours_config
    assert keras.layers.InputLayer.from_config(ours_config).get_config() == theirs_config


def test_input_layer_defaults_and_properties():
    layer = InputLayer(shape=(4,))
    assert layer.name.startswith("input_layer")
    assert layer.dtype == "float32" and layer.batch_shape == (None, 4)
    assert layer.compute_output_shape() == (None, 4)
    assert layer.get_weights() == [] and layer.built
    assert InputLayer(input_shape=(2, 3)).batch_shape == (None, 2, 3)  # Keras 2 spelling
    assert InputLayer(batch_input_shape=(5, 3)).batch_shape == (5, 3)
    assert InputLayer(shape=7).batch_shape == (None, 7)  # Keras 3.15 refuses a bare int
    wrapped = InputLayer(input_tensor=birnn.Input((3,), dtype="int64"))
    assert wrapped.batch_shape == (None, 3) and wrapped.dtype == "int64"


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({}, ValueError, r"`shape`"),
        ({"shape": (3,), "batch_shape": (None, 3)}, ValueError, r"`shape` or `batch_shape`"),
        ({"batch_size": 2, "batch_shape": (2, 3)}, ValueError, r"`batch_size` or `batch_shape`"),
        ({"shape": (-1,)}, ValueError, r"argument `shape`"),
        ({"shape": (2.5,)}, ValueError, r"argument `shape`"),
        ({"shape": 3.0}, TypeError, r"argument `shape`"),
        ({"batch_shape": (None, -3)}, ValueError, r"argument `batch_shape`"),
        ({"shape": (3,), "batch_size": -1}, ValueError, r"argument `batch_size`"),
        ({"shape": (3,), "batch_size": 0}, ValueError, r"argument `batch_size`"),
        ({"shape": (3,), "batch_size": "8"}, ValueError, r"argument `batch_size`"),
        ({"shape": (3,), "dtype": "float7"}, ValueError, r"argument `dtype`"),
        ({"shape": (3,), "sparse": True}, ValueError, "sparse"),
        ({"shape": (3,), "name": 3}, TypeError, r"argument `name`"),
        ({"shape": (3,), "tensor": object()}, ValueError, "input_tensor"),
    ],
)
def test_input_bad_arguments_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=rf"InputLayer.*{match}"):
        birnn.Input(**kwargs)
