"""serialize_layer / deserialize_layer against Keras 3.15's layer configs."""

import keras
import numpy as np
import pytest
import torch

from birnn import layers
from birnn.layers.layer import Layer
from birnn.layers.serialization import (
    deserialize_layer,
    get_layer_class,
    register_layer_class,
    serialize_layer,
)

CASES = [
    ("Dense", (3,), {"activation": "relu", "kernel_regularizer": "l2"}),
    ("Embedding", (10, 4), {"mask_zero": True}),
    ("Masking", (), {"mask_value": -1.0}),
    ("Dropout", (0.3,), {"noise_shape": (None, 1, 4), "seed": 2}),
    ("Activation", ("gelu",), {}),
    ("Flatten", (), {}),
    ("Concatenate", (), {"axis": 1}),
    ("Add", (), {}),
    ("Multiply", (), {}),
    ("Average", (), {}),
    ("GlobalAveragePooling1D", (), {"keepdims": True}),
    ("GlobalMaxPooling1D", (), {"data_format": "channels_first"}),
]


@pytest.mark.parametrize("name,args,kwargs", CASES, ids=[c[0] for c in CASES])
def test_serialized_layer_equals_keras(name, args, kwargs):
    ours = getattr(layers, name)(*args, name="x", **kwargs)
    theirs = getattr(keras.layers, name)(*args, name="x", **kwargs)
    expected = keras.saving.serialize_keras_object(theirs)
    assert serialize_layer(ours) == expected
    back = deserialize_layer(expected)
    assert type(back) is type(ours)
    assert back.get_config() == ours.get_config()
    # and Keras reads ours
    assert keras.saving.deserialize_keras_object(serialize_layer(ours)).get_config() == (
        theirs.get_config()
    )


def test_build_config_matches_keras_and_rebuilds():
    ours, theirs = layers.Dense(2, name="d"), keras.layers.Dense(2, name="d")
    x = np.ones((4, 3), "float32")
    ours(x)
    theirs(x)
    expected = keras.saving.serialize_keras_object(theirs)
    assert serialize_layer(ours) == expected
    rebuilt = deserialize_layer(expected)
    assert rebuilt.built and [w.shape for w in rebuilt.get_weights()] == [(3, 2), (2,)]


def test_keras2_style_config_and_nested_wrapper():
    layer = deserialize_layer({"class_name": "Dense", "config": {"units": 4, "name": "k2"}})
    assert isinstance(layer, layers.Dense) and layer.units == 4
    td = deserialize_layer(serialize_layer(layers.TimeDistributed(layers.Dense(2))))
    assert isinstance(td, layers.TimeDistributed) and isinstance(td.layer, layers.Dense)


def test_custom_classes():
    class Plain(Layer):
        def call(self, x):
            return x

    config = serialize_layer(Plain(name="p"))
    assert config["class_name"] == "Plain" and config["registered_name"] == "Plain"
    assert config["module"] == __name__
    with pytest.raises(ValueError, match=r"Unknown layer class 'Plain'.*custom_objects"):
        deserialize_layer(config)
    assert isinstance(deserialize_layer(config, custom_objects={"Plain": Plain}), Plain)

    @register_layer_class(package="pkg", name="Renamed")
    class Registered(Layer):
        pass

    config = serialize_layer(Registered())
    assert config["registered_name"] == "pkg>Renamed"
    assert isinstance(deserialize_layer(config), Registered)
    assert get_layer_class("pkg>Renamed") is Registered
    assert get_layer_class("Dense") is layers.Dense
    assert get_layer_class("NoSuchLayer") is None


def test_subclass_of_builtin_is_not_written_as_keras():
    class MyDense(layers.Dense):
        pass

    config = serialize_layer(MyDense(2))
    assert config["module"] == __name__ and config["registered_name"] == "MyDense"


def test_bad_configs():
    with pytest.raises(ValueError, match="class_name"):
        deserialize_layer({"config": {}})
    with pytest.raises(ValueError, match="expected a dict"):
        deserialize_layer(42)
    layer = layers.Dense(1)
    assert deserialize_layer(layer) is layer
    assert serialize_layer(None) is None and deserialize_layer(None) is None


def test_round_trip_preserves_function():
    ours = layers.Dense(3, activation="tanh", kernel_initializer="ones", name="d")
    clone = deserialize_layer(serialize_layer(ours))
    x = torch.ones(2, 4)
    torch.testing.assert_close(ours(x), clone(x))
