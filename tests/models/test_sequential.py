"""`Sequential`: construction, add/pop, deferred build, configs, summary."""

import json

import numpy as np
import pytest
import torch

import birnn
from birnn import Input, Sequential
from birnn.layers import LSTM, Bidirectional, Dense, Dropout, Embedding, InputLayer
from birnn.saving.serialization import deserialize_keras_object, serialize_keras_object
from tests.keras_oracle import copy_weights, keras


def test_leading_input_builds_at_once_and_layers_exclude_the_input_layer():
    model = Sequential(
        [
            Input((5, 10)),
            Bidirectional(LSTM(10, return_sequences=True)),
            Bidirectional(LSTM(10)),
            Dense(5, activation="softmax"),
        ]
    )
    assert model.built and model.count_params() == 4265
    assert [type(la).__name__ for la in model.layers] == [
        "Bidirectional",
        "Bidirectional",
        "Dense",
    ]
    assert model.outputs[0].shape == (None, 5)


def test_first_layer_input_shape_argument_creates_the_input():
    model = Sequential([Dense(4, input_shape=(3,)), Dense(1)])
    assert model.built and model.count_params() == 16 + 5
    assert isinstance(model._layers[0], InputLayer) and model._layers[0].batch_shape == (None, 3)


def test_a_nested_model_with_an_input_as_first_layer_builds_the_outer_model():
    # Keras builds the outer model from the inner one's input (an `InputLayer` first).
    inner = Sequential([Input((5,), dtype="int32"), Embedding(10, 3)])
    model = Sequential([inner, LSTM(2)])
    assert model.built and isinstance(model._layers[0], InputLayer)
    assert model._layers[0].batch_shape == (None, 5) and model._layers[0].dtype == "int32"
    assert model.layers == [inner, model.layers[1]] and model.outputs[0].shape == (None, 2)
    assert model.get_config()["build_input_shape"] == [None, 5]
    tokens = np.array([[1, 2, 3, 4, 5]], dtype="int32")
    assert model.predict(tokens, verbose=0).shape == (1, 2)
    x = Input((4,))
    functional = birnn.Model(x, Dense(3)(x))
    assert Sequential([functional, Dense(1)]).count_params() == 15 + 4
    # An unbuilt inner model still defers the build.
    assert not Sequential([Sequential([Dense(3)]), Dense(1)]).built


def test_deferred_build_on_first_call_and_explicit_build():
    model = Sequential([Dense(4), Dense(2)])
    assert not model.built
    out = model(torch.ones(3, 7))
    assert out.shape == (3, 2) and model.built and model.count_params() == 32 + 10
    other = Sequential([Embedding(10, 3), LSTM(2)])
    other.build((None, 6))
    assert other.count_params() == 30 + 4 * (3 * 2 + 2 * 2 + 2)
    with pytest.raises(ValueError, match="no layers"):
        Sequential().build((None, 3))
    tokens = Sequential([Embedding(10, 3, mask_zero=True), LSTM(2)])
    assert tokens.predict(np.array([[1, 2, 0], [3, 0, 0]]), verbose=0).shape == (2, 2)
    assert tokens._layers[0].dtype == "int64" and tokens._layers[0].batch_shape == (None, 3)


def test_add_and_pop_rebuild_the_model():
    model = Sequential()
    model.add(Input((4,)))
    model.add(Dense(3))
    model.add(Dense(2))
    assert model.outputs[0].shape == (None, 2)
    popped = model.pop()
    assert isinstance(popped, Dense) and model.outputs[0].shape == (None, 3)
    assert model.predict(np.ones((2, 4)), verbose=0).shape == (2, 3)
    model.pop()
    with pytest.raises(TypeError, match="no layers"):
        model.pop()


def test_add_errors_name_the_problem():
    model = Sequential([Input((4,)), Dense(3, name="d")])
    with pytest.raises(ValueError, match="Only instances of `Layer`"):
        model.add("dense")
    with pytest.raises(ValueError, match="unique names"):
        model.add(Dense(2, name="d"))
    with pytest.raises(ValueError, match="can only be added first"):
        model.add(Input((3,)))
    with pytest.raises(ValueError, match="expected ndim=3"):
        model.add(LSTM(2))


def test_wrong_input_shape_for_the_model_is_a_clear_error():
    model = Sequential([Input((5, 10)), LSTM(2)])
    with pytest.raises(ValueError, match=r"expected shape \(None, 5, 10\).*\(3, 5, 11\)"):
        model.predict(np.ones((3, 5, 11)), verbose=0)


def test_sequential_matches_keras_outputs_and_weights_order():
    def build(lib):
        return lib.Sequential(
            [
                lib.Input((4, 3)),
                lib.layers.LSTM(5, return_sequences=True),
                lib.layers.Dropout(0.3),
                lib.layers.Dense(2),
            ]
        )

    km, bm = build(keras), build(birnn)
    assert [w.shape for w in bm.get_weights()] == [w.shape for w in km.get_weights()]
    copy_weights(km, bm)
    x = np.random.rand(3, 4, 3).astype("float32")
    np.testing.assert_allclose(bm.predict(x, verbose=0), km.predict(x, verbose=0), atol=1e-5)


def test_config_round_trip_and_keras_cross_reading():
    model = Sequential([Input((5, 3)), LSTM(4), Dropout(0.1), Dense(2)], name="seq")
    config = json.loads(json.dumps(serialize_keras_object(model)))
    assert config["class_name"] == "Sequential" and config["module"] == "keras"
    assert config["config"]["layers"][0]["class_name"] == "InputLayer"
    assert config["config"]["build_input_shape"] == [None, 5, 3]
    keras_model = keras.saving.deserialize_keras_object(config)
    copy_weights(model, keras_model)
    x = np.random.rand(2, 5, 3).astype("float32")
    np.testing.assert_allclose(
        keras_model.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5
    )
    keras_config = json.loads(json.dumps(keras.saving.serialize_keras_object(keras_model)))
    back = deserialize_keras_object(keras_config)
    assert isinstance(back, Sequential) and back.built
    assert [type(la).__name__ for la in back.layers] == ["LSTM", "Dropout", "Dense"]
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    from_keras = deserialize_keras_object(keras.saving.serialize_keras_object(unbuilt))
    assert not from_keras.built


def test_summary_table_has_keras_columns_and_totals():
    model = Sequential(
        [
            Input((5, 10)),
            Bidirectional(LSTM(10, return_sequences=True)),
            Bidirectional(LSTM(10)),
            Dense(5, activation="softmax"),
        ],
        name="seed",
    )
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert lines[0] == 'Model: "seed"'
    for needle in (
        "Layer (type)",
        "Output Shape",
        "Param #",
        "(None, 5, 20)",
        "1,680",
        "2,480",
        "105",
        "Total params: 4,265 (16.66 KB)",
        "Trainable params: 4,265 (16.66 KB)",
        "Non-trainable params: 0 (0.00 B)",
    ):
        assert needle in text, needle
    assert "InputLayer" not in text


def test_functional_summary_shows_connections_and_frozen_params():
    a = Input((3,), name="a")
    frozen = Dense(2, name="frozen")
    frozen.trainable = False
    model = birnn.Model(a, Dense(1, name="head")(frozen(a)))
    lines = []
    model.summary(print_fn=lines.append, show_trainable=True)
    text = "\n".join(lines)
    assert "Connected to" not in text  # a plain chain prints like Sequential
    assert "Non-trainable params: 8" in text and "Trainable params: 3" in text
    b = Input((3,), name="b")
    merged = birnn.layers.Add()([a, b])
    two = birnn.Model([a, b], merged)
    lines.clear()
    two.summary(print_fn=lines.append)
    assert "Connected to" in "\n".join(lines) and "a[0][0], b[0][0]" in "\n".join(lines)


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_summary_totals_include_optimizer_params_like_keras(optimizer):
    x = np.random.rand(8, 5, 3).astype("float32")
    y = np.random.rand(8, 1).astype("float32")

    def totals(lib):
        model = lib.Sequential(
            [
                lib.layers.Bidirectional(lib.layers.LSTM(4)),
                lib.layers.Dense(2),
                lib.layers.Dense(1),
            ]
        )
        model.compile(optimizer, "mse")
        model.fit(x, y, verbose=0)
        lines = []
        model.summary(print_fn=lambda line, **kwargs: lines.append(line))
        return [line for line in "\n".join(lines).splitlines() if "params:" in line]

    assert totals(birnn) == totals(keras)
