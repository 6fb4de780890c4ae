"""Legacy HDF5 model files: Keras 3's `model.save("m.h5")` both ways, tf.keras 2.x fixtures."""

from __future__ import annotations

import json

import h5py
import keras
import numpy as np
import pytest

import birnn
from birnn.saving import WeightsMismatchError
from tests.keras_oracle import copy_weights


def _model(lib, masked=False):
    layers = [lib.Input((5, 10))]
    if masked:
        layers.append(lib.layers.Masking())
    layers += [
        lib.layers.Bidirectional(lib.layers.LSTM(4, return_sequences=True)),
        lib.layers.Bidirectional(lib.layers.GRU(3), merge_mode="sum"),
        lib.layers.Dense(2, activation="softmax"),
    ]
    return lib.Sequential(layers)


def _data():
    rng = np.random.default_rng(0)
    x = rng.random((6, 5, 10)).astype("float32")
    x[0, 3:] = 0.0
    return x, np.eye(2, dtype="float32")[rng.integers(0, 2, 6)]


@pytest.mark.parametrize("masked", [False, True])
def test_keras3_h5_file_loads_with_weights_and_compile_config(tmp_path, masked):
    x, y = _data()
    km = _model(keras, masked)
    km.compile(keras.optimizers.Adam(0.01), "categorical_crossentropy", metrics=["accuracy"])
    km.fit(x, y, verbose=0)
    km.save(tmp_path / "k.h5")
    bm = birnn.models.load_model(tmp_path / "k.h5")
    np.testing.assert_allclose(bm.predict(x, verbose=0), km.predict(x, verbose=0), atol=1e-5)
    assert bm.compiled and type(bm.optimizer).__name__ == "Adam"
    assert bm.optimizer.iterations == 1  # the optimizer's variables came along
    history = bm.fit(x, y, verbose=0).history
    assert "accuracy" in history


def test_birnn_h5_file_loads_in_keras_with_identical_predictions(tmp_path):
    x, y = _data()
    bm = _model(birnn, masked=True)
    bm.compile("rmsprop", "categorical_crossentropy")
    bm.fit(x, y, verbose=0)
    bm.save(tmp_path / "b.h5")
    km = keras.models.load_model(tmp_path / "b.h5")
    np.testing.assert_allclose(km.predict(x, verbose=0), bm.predict(x, verbose=0), atol=1e-5)
    again = birnn.models.load_model(tmp_path / "b.h5")
    np.testing.assert_allclose(again.predict(x, verbose=0), bm.predict(x, verbose=0))


def test_model_checkpoint_writes_h5_files(tmp_path):
    x, y = _data()
    model = _model(birnn)
    model.compile("adam", "categorical_crossentropy")
    path = tmp_path / "best.h5"
    model.fit(x, y, epochs=2, verbose=0, callbacks=[birnn.callbacks.ModelCheckpoint(str(path))])
    restored = birnn.models.load_model(path)
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0))


# ---------------------------------------------------------------------------- tf.keras 2.x
# tf.keras is not installable here, so these files are written from the documented HDF5
# layout with the config shapes tf.keras 2.x produces (`batch_input_shape`, string dtypes,
# `time_major`, list-form `inbound_nodes`, `:0` weight names).


def _lstm_config(name, units, return_sequences):
    return {
        "class_name": "LSTM",
        "config": {
            "name": name,
            "trainable": True,
            "dtype": "float32",
            "return_sequences": return_sequences,
            "return_state": False,
            "go_backwards": False,
            "stateful": False,
            "unroll": False,
            "time_major": False,
            "units": units,
            "activation": "tanh",
            "recurrent_activation": "sigmoid",
            "use_bias": True,
            "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "recurrent_initializer": {"class_name": "Orthogonal", "config": {"gain": 1.0}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "unit_forget_bias": True,
            "kernel_regularizer": None,
            "recurrent_regularizer": None,
            "bias_regularizer": None,
            "activity_regularizer": None,
            "kernel_constraint": None,
            "recurrent_constraint": None,
            "bias_constraint": None,
            "dropout": 0.0,
            "recurrent_dropout": 0.0,
            "implementation": 2,
        },
    }


def _tf2_layers():
    return [
        {
            "class_name": "InputLayer",
            "config": {
                "batch_input_shape": [None, 7],
                "dtype": "int32",
                "sparse": False,
                "ragged": False,
                "name": "tokens",
            },
        },
        {
            "class_name": "Embedding",
            "config": {
                "name": "embedding",
                "trainable": True,
                "dtype": "float32",
                "batch_input_shape": [None, 7],
                "input_dim": 20,
                "output_dim": 6,
                "embeddings_initializer": {
                    "class_name": "RandomUniform",
                    "config": {"minval": -0.05, "maxval": 0.05, "seed": None},
                },
                "embeddings_regularizer": None,
                "activity_regularizer": None,
                "embeddings_constraint": None,
                "mask_zero": True,
                "input_length": 7,
            },
        },
        {
            "class_name": "Bidirectional",
            "config": {
                "name": "bidirectional",
                "trainable": True,
                "dtype": "float32",
                "layer": _lstm_config("lstm", 5, False),
                "merge_mode": "concat",
            },
        },
        {
            "class_name": "Dense",
            "config": {
                "name": "dense",
                "trainable": True,
                "dtype": "float32",
                "units": 3,
                "activation": "softmax",
                "use_bias": True,
                "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
                "bias_initializer": {"class_name": "Zeros", "config": {}},
                "kernel_regularizer": None,
                "bias_regularizer": None,
                "activity_regularizer": None,
                "kernel_constraint": None,
                "bias_constraint": None,
            },
        },
    ]


_TF2_WEIGHT_NAMES = {
    "embedding": ["embedding/embeddings:0"],
    "bidirectional": [
        f"bidirectional/{d}_lstm/lstm_cell_{i}/{w}:0"
        for d, i in (("forward", 1), ("backward", 2))
        for w in ("kernel", "recurrent_kernel", "bias")
    ],
    "dense": ["dense/kernel:0", "dense/bias:0"],
}


def _functional_config():
    layers = _tf2_layers()
    inbound = {"embedding": "tokens", "bidirectional": "embedding", "dense": "bidirectional"}
    for layer in layers:
        name = layer["config"]["name"]
        layer["name"] = name
        layer["inbound_nodes"] = [[[inbound[name], 0, 0, {}]]] if name in inbound else []
        layer["config"].pop("batch_input_shape", None) if name != "tokens" else None
    return {
        "class_name": "Functional",
        "config": {
            "name": "model",
            "layers": layers,
            "input_layers": [["tokens", 0, 0]],
            "output_layers": [["dense", 0, 0]],
        },
    }


def _write_tf2_file(path, model_config, weights, training_config=None, root_weights=False):
    """A file laid out as tf.keras 2.x's `model.save('x.h5')` (or `save_weights`)."""
    with h5py.File(path, "w") as f:
        group = f
        if not root_weights:
            f.attrs["model_config"] = json.dumps(model_config).encode("utf8")
            f.attrs["keras_version"] = b"2.15.0"
            f.attrs["backend"] = b"tensorflow"
            if training_config is not None:
                f.attrs["training_config"] = json.dumps(training_config).encode("utf8")
            group = f.create_group("model_weights")
        names = [layer["config"]["name"] for layer in model_config["config"]["layers"]]
        group.attrs["layer_names"] = np.array([n.encode("utf8") for n in names])
        group.attrs["keras_version"] = b"2.15.0"
        group.attrs["backend"] = b"tensorflow"
        arrays = iter(weights)
        for name in names:
            layer_group = group.create_group(name)
            weight_names = _TF2_WEIGHT_NAMES.get(name, [])
            layer_group.attrs["weight_names"] = np.array([n.encode("utf8") for n in weight_names])
            for weight_name in weight_names:
                layer_group.create_dataset(weight_name, data=next(arrays))


def _reference():
    """A Keras 3 model with the same architecture, whose weights fill the fixtures."""
    inputs = keras.Input((7,), dtype="int32")
    x = keras.layers.Embedding(20, 6, mask_zero=True)(inputs)
    x = keras.layers.Bidirectional(keras.layers.LSTM(5))(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def _tokens():
    tokens = np.random.default_rng(1).integers(1, 20, (4, 7)).astype("int32")
    tokens[0, 4:] = 0
    tokens[1, 6:] = 0
    return tokens


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_tf_keras_2_h5_model_files_load_with_their_weights(tmp_path, kind):
    reference = _reference()
    if kind == "sequential":
        config = {"class_name": "Sequential", "config": {"name": "seq", "layers": _tf2_layers()}}
    else:
        config = _functional_config()
    training = {
        "loss": "sparse_categorical_crossentropy",
        "metrics": [
            [
                {
                    "class_name": "MeanMetricWrapper",
                    "config": {"name": "accuracy", "dtype": "float32", "fn": "accuracy"},
                }
            ]
        ],
        "weighted_metrics": None,
        "loss_weights": None,
        "optimizer_config": {
            "class_name": "Adam",
            "config": {
                "name": "Adam",
                "learning_rate": 0.002,
                "decay": 0.0,
                "beta_1": 0.9,
                "beta_2": 0.999,
                "epsilon": 1e-07,
                "amsgrad": False,
                "jit_compile": False,
                "is_legacy_optimizer": False,
            },
        },
    }
    path = tmp_path / "tf2.h5"
    _write_tf2_file(path, config, reference.get_weights(), training)
    model = birnn.models.load_model(path)
    tokens = _tokens()
    np.testing.assert_allclose(
        model.predict(tokens, verbose=0), reference.predict(tokens, verbose=0), atol=1e-5
    )
    assert model.compiled and model.optimizer.learning_rate == pytest.approx(0.002)
    model.fit(tokens, np.array([0, 1, 2, 0]), verbose=0)


def test_tf_keras_2_weights_file_loads_into_a_built_model(tmp_path):
    reference = _reference()
    config = {"class_name": "Sequential", "config": {"name": "seq", "layers": _tf2_layers()}}
    path = tmp_path / "weights.h5"
    _write_tf2_file(path, config, reference.get_weights(), root_weights=True)
    model = _reference_birnn()
    model.load_weights(path)
    tokens = _tokens()
    np.testing.assert_allclose(
        model.predict(tokens, verbose=0), reference.predict(tokens, verbose=0), atol=1e-5
    )


def _reference_birnn():
    inputs = birnn.Input((7,), dtype="int32")
    x = birnn.layers.Embedding(20, 6, mask_zero=True)(inputs)
    x = birnn.layers.Bidirectional(birnn.layers.LSTM(5))(x)
    return birnn.Model(inputs, birnn.layers.Dense(3, activation="softmax")(x))


def test_legacy_weights_that_do_not_fit_leave_the_model_untouched(tmp_path):
    reference = _reference()
    config = {"class_name": "Sequential", "config": {"name": "seq", "layers": _tf2_layers()}}
    path = tmp_path / "weights.h5"
    weights = reference.get_weights()
    weights[-2] = np.zeros((4, 3), "float32")  # a Dense kernel of another shape
    _write_tf2_file(path, config, weights, root_weights=True)
    model = _reference_birnn()
    before = model.get_weights()
    with pytest.raises(WeightsMismatchError, match="'dense'"):
        model.load_weights(path)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_copy_weights_helper_still_matches_after_h5_round_trip(tmp_path):
    bm = _model(birnn)
    km = _model(keras)
    copy_weights(km, bm)
    bm.save(tmp_path / "m.hdf5")
    x, _ = _data()
    np.testing.assert_allclose(
        birnn.models.load_model(tmp_path / "m.hdf5").predict(x, verbose=0),
        km.predict(x, verbose=0),
        atol=1e-5,
    )


def test_legacy_weights_that_are_not_numbers_change_nothing(tmp_path):
    reference = _reference()
    config = {"class_name": "Sequential", "config": {"name": "seq", "layers": _tf2_layers()}}
    path = tmp_path / "weights.h5"
    weights = reference.get_weights()
    weights[-1] = np.array([b"a", b"b", b"c"])  # the Dense bias, as strings
    _write_tf2_file(path, config, weights, root_weights=True)
    model = _reference_birnn()
    before = model.get_weights()
    with pytest.raises(WeightsMismatchError, match="'dense' cannot be loaded"):
        model.load_weights(path)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
