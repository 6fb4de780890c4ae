"""Keras 3 configs <-> birnn objects, without models."""

import keras
import numpy as np
import pytest
import torch

import birnn
from birnn import _registry
from birnn.saving import serialization as S
from birnn.saving.errors import SavingError, UnknownObjectError


@pytest.mark.parametrize(
    "value",
    [None, 3, 2.5, True, "text", [1, [2, None]], {"a": [1, 2], "b": {"c": None}}],
)
def test_plain_values_round_trip(value):
    assert S.deserialize_keras_object(S.serialize_keras_object(value)) == value


def test_tuples_stay_tuples_as_in_keras():
    assert S.serialize_keras_object((1, None, (2, 3))) == (1, None, (2, 3))
    assert S.serialize_keras_object([1, (2,)]) == [1, (2,)]


def test_special_values_round_trip():
    array = np.arange(6, dtype="float32").reshape(2, 3)
    back = S.deserialize_keras_object(S.serialize_keras_object(array))
    np.testing.assert_array_equal(back, array)
    assert back.dtype == np.float32
    tensor = torch.arange(4, dtype=torch.int64)
    back = S.deserialize_keras_object(S.serialize_keras_object(tensor))
    assert torch.equal(back, tensor)
    assert S.serialize_keras_object(np.float32(1.5)) == 1.5
    assert S.deserialize_keras_object(S.serialize_keras_object(b"xy")) == b"xy"
    assert S.deserialize_keras_object(S.serialize_keras_object(slice(1, None, 2))) == slice(
        1, None, 2
    )
    assert S.deserialize_keras_object(S.serialize_keras_object(Ellipsis)) is Ellipsis


def test_lambdas_load_only_outside_safe_mode():
    config = S.serialize_keras_object(lambda x, k=3: x * k)
    assert config["class_name"] == "__lambda__"
    with pytest.raises(SavingError, match=r"`lambda` object.*safe_mode=False"):
        S.deserialize_keras_object(config)
    assert S.deserialize_keras_object(config, safe_mode=False)(2) == 6
    with pytest.raises(SavingError, match="lambda"):
        S.deserialize_keras_object({"class_name": "__lambda__", "config": {"value": "..."}})
    with pytest.raises(SavingError, match="Python version"):
        S.deserialize_keras_object(
            {"class_name": "__lambda__", "config": {"value": "..."}}, safe_mode=False
        )


def test_builtin_function_is_written_as_keras_writes_it():
    ours = S.serialize_keras_object(birnn.activations.get("relu"))
    assert ours == keras.saving.serialize_keras_object(keras.activations.relu)
    assert S.deserialize_keras_object(ours) is birnn.activations.get("relu")


@pytest.mark.parametrize(
    "keras_object",
    [
        keras.initializers.Orthogonal(gain=2.0, seed=3),
        keras.initializers.RandomUniform(-0.1, 0.2),
        keras.initializers.Zeros(),
        keras.regularizers.L1L2(l1=0.01, l2=0.02),
        keras.constraints.MaxNorm(2.0),
    ],
    ids=lambda o: type(o).__name__,
)
def test_keras_registry_objects_load_as_birnn_objects(keras_object):
    config = keras.saving.serialize_keras_object(keras_object)
    ours = S.deserialize_keras_object(config)
    assert type(ours).__module__.startswith("birnn")
    assert type(ours).__name__ == type(keras_object).__name__
    assert S.serialize_keras_object(ours) == config


def test_register_serializable_function_round_trips_without_custom_objects():
    @S.register_serializable(package="tests_saving")
    def doubled(x):
        return 2 * x

    config = S.serialize_keras_object(doubled)
    assert config["registered_name"] == "tests_saving>doubled"
    assert S.deserialize_keras_object(config) is doubled
    assert birnn.saving.register_serializable is S.register_serializable


def test_register_serializable_rejects_class_without_get_config():
    with pytest.raises(ValueError, match="get_config"):

        @S.register_serializable()
        class NoConfig:
            pass


def test_register_serializable_rejects_empty_package():
    with pytest.raises(ValueError, match="package"):
        S.register_serializable(package="")


def test_custom_objects_find_unregistered_functions():
    def halved(x):
        return x / 2

    config = {
        "module": "__main__",
        "class_name": "function",
        "config": "halved",
        "registered_name": "halved",
    }
    assert S.deserialize_keras_object(config, custom_objects={"halved": halved}) is halved
    with pytest.raises(UnknownObjectError, match="halved"):
        S.deserialize_keras_object(config)


def test_unknown_class_error_names_class_and_module():
    config = {
        "module": "my_package.layers",
        "class_name": "FancyLayer",
        "config": {},
        "registered_name": "my_package>FancyLayer",
    }
    with pytest.raises(UnknownObjectError, match="FancyLayer.*my_package.layers") as info:
        S.deserialize_keras_object(config)
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    assert "custom_objects" in str(info.value)


def test_custom_object_scope_is_restored():
    before = dict(_registry.CUSTOM_OBJECTS)
    with S.custom_object_scope({"temp_object": len}):
        assert S.get_registered_object("temp_object") is len
        assert _registry.CUSTOM_OBJECTS["temp_object"] is len
    assert _registry.CUSTOM_OBJECTS == before
    assert S.get_registered_object("temp_object") is None


def test_keras_operations_do_not_resolve_to_layers_of_the_same_name():
    config = {"module": "keras.src.ops.numpy", "class_name": "Add", "config": {"name": "add"}}
    with pytest.raises(UnknownObjectError, match="Add"):
        S.deserialize_keras_object(config)
