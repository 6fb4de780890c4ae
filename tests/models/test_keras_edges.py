"""Keras conformance at the edges: what migrating Keras code calls, against Keras 3.15.1."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import torch

import birnn
from birnn import layers, regularizers
from birnn.layers.serialization import deserialize_layer
from birnn.saving import deserialize_keras_object, serialize_keras_object
from tests.keras_oracle import to_numpy

# ---------------------------------------------------------------------------- metrics_names


def _dense(lib, **compile_kwargs):
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)])
    if compile_kwargs:
        model.compile("sgd", **compile_kwargs)
    return model


def _two_outputs(lib, **compile_kwargs):
    x = lib.Input((3,))
    model = lib.Model(x, [lib.layers.Dense(2, name="a")(x), lib.layers.Dense(1, name="b")(x)])
    model.compile("sgd", **compile_kwargs)
    return model


@pytest.mark.parametrize(
    "make, kwargs, data",
    [
        (_dense, {}, None),
        (_dense, {"loss": "mse"}, (np.ones((4, 3)), np.ones((4, 2)))),
        (_dense, {"loss": "mse", "metrics": ["mae"]}, (np.ones((4, 3)), np.ones((4, 2)))),
        (_dense, {"loss": "mse", "weighted_metrics": ["mae"]}, None),
        (
            _two_outputs,
            {"loss": ["mse", "mse"], "metrics": [["mae"], ["mse"]]},
            (np.ones((4, 3)), [np.ones((4, 2)), np.ones((4, 1))]),
        ),
    ],
)
def test_metrics_names_match_keras_before_and_after_fit(make, kwargs, data):
    km, bm = make(keras, **kwargs), make(birnn, **kwargs)
    assert bm.metrics_names == km.metrics_names
    if data is not None:
        x, y = np.asarray(data[0], "float32"), data[1]
        km.fit(x, y, verbose=0)
        bm.fit(x, y, verbose=0)
        assert bm.metrics_names == km.metrics_names


# ---------------------------------------------------------------------------- registries


def test_l1_l2_name_is_rejected_like_keras_and_never_regularizes_with_zeros():
    with pytest.raises(ValueError, match="l1_l2"):
        keras.regularizers.get("l1_l2")
    with pytest.raises(ValueError, match="Could not interpret regularizer identifier: 'l1_l2'"):
        regularizers.get("l1_l2")
    assert regularizers.l1_l2(l1=0.1).l1 == pytest.approx(0.1)  # the function stays
    assert regularizers.get("l2").l2 == pytest.approx(0.01)


def test_register_keras_serializable_is_keras_name_and_the_hint_names_it():
    assert birnn.saving.register_keras_serializable is birnn.saving.register_serializable
    with pytest.raises(ValueError, match=r"birnn\.saving\.register_keras_serializable"):
        deserialize_layer({"class_name": "NoSuchLayer", "config": {}, "module": None})


# ---------------------------------------------------------------------------- RNN arguments


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_legacy_implementation_0_is_accepted_and_computes_like_keras(name):
    x = np.random.default_rng(0).random((2, 4, 3)).astype("float32")
    kl = getattr(keras.layers, name)(5, implementation=0)
    bl = getattr(layers, name)(5, implementation=0)
    kl(x)
    bl(x)
    bl.set_weights(kl.get_weights())
    np.testing.assert_allclose(bl(x).detach().numpy(), to_numpy(kl(x)), atol=1e-6)
    assert bl.implementation == kl.cell.implementation == 0
    with pytest.raises(ValueError, match="`implementation` must be 0, 1 or 2"):
        getattr(layers, name)(5, implementation=3)


def test_use_cudnn_exists_on_lstm_and_gru_only():
    for name in ("SimpleRNN", "LSTM", "GRU"):
        assert hasattr(getattr(layers, name)(2), "use_cudnn") == hasattr(
            getattr(keras.layers, name)(2), "use_cudnn"
        ), name
    assert not hasattr(layers.SimpleRNN(2), "use_cudnn")
    assert "use_cudnn" not in layers.SimpleRNN(2).get_config()


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_integer_inputs_and_initial_states_are_cast_like_keras(name, bidirectional):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, (2, 4, 3)).astype("int32")
    num_states = 2 if name == "LSTM" else 1
    states = [rng.integers(0, 2, (2, 5)).astype("int32") for _ in range(num_states)]
    if bidirectional:
        states = states + states
        kl = keras.layers.Bidirectional(getattr(keras.layers, name)(5))
        bl = layers.Bidirectional(getattr(layers, name)(5))
    else:
        kl, bl = getattr(keras.layers, name)(5), getattr(layers, name)(5)
    kl(x.astype("float32"))
    bl(x.astype("float32"))
    bl.set_weights(kl.get_weights())
    expected = to_numpy(kl(x, initial_state=states))
    out = bl(x, initial_state=states)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-5)
    out = bl(torch.as_tensor(x, dtype=torch.int64))
    np.testing.assert_allclose(out.detach().numpy(), to_numpy(kl(x)), atol=1e-5)


# ---------------------------------------------------------------------------- models and data


def _lstm_model(lib, **input_kwargs):
    return lib.Sequential([lib.Input((6, 3), **input_kwargs), lib.layers.LSTM(2, name="enc")])


def test_input_batch_size_is_ignored_by_predict_outside_stateful_layers():
    km, bm = _lstm_model(keras, batch_size=4), _lstm_model(birnn, batch_size=4)
    bm.set_weights(km.get_weights())
    x = np.random.default_rng(2).random((6, 6, 3)).astype("float32")  # last batch has 2
    np.testing.assert_allclose(
        bm.predict(x, batch_size=4, verbose=0), km.predict(x, batch_size=4, verbose=0), atol=1e-6
    )


def test_other_number_of_timesteps_than_the_input_warns_and_runs():
    km, bm = _lstm_model(keras), _lstm_model(birnn)
    bm.set_weights(km.get_weights())
    x = np.random.default_rng(3).random((2, 9, 3)).astype("float32")
    with pytest.warns(UserWarning, match=r"expected shape \(None, 6, 3\).*\(2, 9, 3\)"):
        out = bm.predict(x, verbose=0)
    np.testing.assert_allclose(out, km.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(ValueError, match="incompatible with the model"):
        bm.predict(np.ones((2, 6)), verbose=0)  # a missing axis stays an error


def test_layer_input_output_and_model_shapes_give_the_feature_extractor_idiom():
    km, bm = (
        lib.Sequential(
            [
                lib.Input((5, 4)),
                lib.layers.Bidirectional(lib.layers.LSTM(3, return_sequences=True), name="bi"),
                lib.layers.GlobalAveragePooling1D(),
                lib.layers.Dense(2),
            ]
        )
        for lib in (keras, birnn)
    )
    bm.set_weights(km.get_weights())
    assert bm.input_shape == km.input_shape == (None, 5, 4)
    assert bm.output_shape == km.output_shape == (None, 2)
    bi = bm.get_layer("bi")
    assert tuple(bi.input.shape) == tuple(km.get_layer("bi").input.shape)
    assert tuple(bi.output.shape) == tuple(km.get_layer("bi").output.shape)
    kf = keras.Model(km.inputs, km.get_layer("bi").output)
    bf = birnn.Model(bm.inputs, bi.output)
    x = np.random.default_rng(4).random((3, 5, 4)).astype("float32")
    np.testing.assert_allclose(bf.predict(x, verbose=0), kf.predict(x, verbose=0), atol=1e-6)
    assert not hasattr(layers.Dense(2), "input")  # never called: no input, as in Keras


def test_several_inputs_and_outputs_give_lists_of_shapes_like_keras():
    def build(lib):
        a, b = lib.Input((3,)), lib.Input((4,))
        c = lib.layers.Concatenate()([a, b])
        return lib.Model([a, b], [lib.layers.Dense(2)(c), c]), c

    (km, _), (bm, bc) = build(keras), build(birnn)
    assert bm.input_shape == km.input_shape
    assert bm.output_shape == km.output_shape
    assert [t.shape for t in bc._keras_history[0].input] == [(None, 3), (None, 4)]


def test_fit_and_evaluate_on_zero_samples_raise_and_batch_size_must_be_whole():
    model = _dense(birnn, loss="mse")
    empty_x, empty_y = np.ones((0, 3), "float32"), np.ones((0, 2), "float32")
    with pytest.raises(ValueError, match="0 samples"):
        model.fit(empty_x, empty_y, verbose=0)
    with pytest.raises(ValueError, match="0 samples"):
        model.evaluate(empty_x, empty_y, verbose=0)
    x, y = np.ones((4, 3), "float32"), np.ones((4, 2), "float32")
    for bad in (2.5, 0, -1, True, "8"):
        with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
            model.fit(x, y, batch_size=bad, verbose=0)
    model.fit(x, y, batch_size=np.int64(2), verbose=0)


# ---------------------------------------------------------------------------- custom layers


class _Cell(birnn.layers.Layer):
    """A cell without `get_config`: Keras's automatic config must serve."""

    def __init__(self, units, sizes=(5,), **kwargs):
        super().__init__(**kwargs)
        self.units, self.sizes, self.state_size = units, sizes, units

    def build(self, input_shape):  # no super().build(): Keras still marks it built
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")

    def call(self, inputs, states):
        h = inputs @ self.kernel + states[0]
        return h, [h]


def test_automatic_get_config_recreates_a_custom_cell():
    cell = _Cell(4, sizes=(1, 2), name="c")
    config = cell.get_config()
    assert config["units"] == 4 and config["sizes"] == (1, 2) and config["name"] == "c"
    again = _Cell.from_config(config)
    assert (again.units, again.sizes) == (4, (1, 2))
    rnn = layers.RNN(_Cell(3))
    copy = layers.RNN.from_config(rnn.get_config(), custom_objects={"_Cell": _Cell})
    assert copy.cell.units == 3
    stacked = layers.StackedRNNCells([_Cell(2), _Cell(3)])
    restored = layers.StackedRNNCells.from_config(
        stacked.get_config(), custom_objects={"_Cell": _Cell}
    )
    assert [c.units for c in restored.cells] == [2, 3]


def test_automatic_get_config_refuses_arguments_that_are_not_plain_values():
    with pytest.raises(NotImplementedError, match="override `get_config"):
        _Cell(lambda x: x).get_config()


def test_bidirectional_copies_an_unregistered_cell_class_without_registration():
    layer = layers.Bidirectional(layers.RNN(_Cell(4)))
    out = layer(np.ones((2, 3, 2), "float32"))
    assert out.shape == (2, 3 * 0 + 8)
    assert layer.backward_layer.go_backwards and type(layer.backward_layer.cell) is _Cell


def test_main_module_cell_class_is_copied_by_bidirectional(monkeypatch):
    monkeypatch.setattr(_Cell, "__module__", "__main__")
    layer = layers.Bidirectional(layers.RNN(_Cell(2)))
    assert layer(np.ones((1, 3, 2), "float32")).shape == (1, 4)


def test_build_without_super_build_marks_the_layer_built_and_keeps_set_weights():
    cell = _Cell(3)
    cell.build((None, 2))
    assert cell.built
    cell.set_weights([np.ones((2, 3), "float32")])
    h, _ = cell(torch.ones(1, 2), [torch.zeros(1, 3)])
    np.testing.assert_allclose(h.detach().numpy(), np.full((1, 3), 2.0))


def test_tuples_in_nested_configs_stay_tuples_like_keras():
    rnn = layers.RNN(_Cell(3, sizes=(7,)))
    restored = deserialize_keras_object(
        serialize_keras_object(rnn), custom_objects={"_Cell": _Cell}
    )
    assert restored.cell.sizes == (7,) and isinstance(restored.cell.sizes, tuple)
    assert serialize_keras_object({"a": (1, None)}) == keras.saving.serialize_keras_object(
        {"a": (1, None)}
    )


def test_wrapper_is_public_and_the_base_of_time_distributed_as_in_keras():
    assert issubclass(layers.TimeDistributed, layers.Wrapper)
    assert issubclass(keras.layers.TimeDistributed, keras.layers.Wrapper)
    assert not issubclass(layers.Bidirectional, layers.Wrapper)  # nor in Keras 3.15
    assert not issubclass(keras.layers.Bidirectional, keras.layers.Wrapper)

    class Doubled(layers.Wrapper):
        def call(self, inputs):
            return 2 * self.layer(inputs)

    w = Doubled(layers.Dense(3))
    assert w(torch.ones(2, 4)).shape == (2, 3) and w.layer.built
    assert len(w.weights) == 2
    assert type(Doubled.from_config(w.get_config()).layer) is layers.Dense
    with pytest.raises(ValueError, match="Doubled: argument `layer` must be"):
        Doubled("dense")


def test_time_distributed_mask_error_keeps_keras_key_phrase():
    layer = layers.TimeDistributed(layers.Dense(2))
    with pytest.raises(ValueError, match="is incompatible with the input shape"):
        layer(torch.ones(2, 5, 3), mask=torch.ones(2, 4, dtype=torch.bool))


def test_no_warning_for_matching_shapes():
    model = _lstm_model(birnn)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict(np.ones((2, 6, 3), "float32"), verbose=0)


# ---------------------------------------------------------------------------- utils & models


@pytest.mark.parametrize(
    "args, kwargs",
    [
        (([[1, 2, 3], [4], []],), {}),
        (([[1, 2, 3], [4]],), {"maxlen": 2, "padding": "post", "truncating": "post", "value": -1}),
        (([[1.5, 2], [3]],), {"dtype": "float32"}),
        (([[[1, 2], [3, 4]], [[5, 6]]],), {"padding": "post"}),
        (([[1, 2, 3, 4], [5, 6]],), {"maxlen": 3}),
    ],
)
def test_pad_sequences_matches_keras(args, kwargs):
    expected = keras.utils.pad_sequences(*args, **kwargs)
    out = birnn.utils.pad_sequences(*args, **kwargs)
    assert out.dtype == expected.dtype
    np.testing.assert_array_equal(out, expected)


def test_pad_sequences_errors_name_the_argument():
    with pytest.raises(ValueError, match='Padding type "mid" not understood'):
        birnn.utils.pad_sequences([[1]], padding="mid")
    with pytest.raises(ValueError, match='Truncating type "mid" not understood'):
        birnn.utils.pad_sequences([[1]], truncating="mid")
    assert birnn.utils.pad_sequences([], maxlen=3).shape == (0, 3)


@pytest.mark.parametrize(
    "labels, num_classes",
    [([0, 2, 1], None), (np.array([[1], [0]]), None), (np.array([[1, 0]]), 3), ([1, 0], 4)],
)
def test_to_categorical_matches_keras(labels, num_classes):
    expected = keras.utils.to_categorical(labels, num_classes)
    out = birnn.utils.to_categorical(labels, num_classes)
    assert out.shape == expected.shape and out.dtype == expected.dtype
    np.testing.assert_array_equal(out, expected)


def test_to_categorical_refuses_labels_out_of_range_instead_of_wrapping():
    with pytest.raises(ValueError, match=r"\[0, num_classes=2\)"):
        birnn.utils.to_categorical([3], num_classes=2)
    with pytest.raises(ValueError, match=r"\[0, num_classes=2\)"):
        birnn.utils.to_categorical([-1], num_classes=2)  # Keras silently wraps this one


def test_set_random_seed_makes_initialisation_repeatable():
    birnn.utils.set_random_seed(7)
    first = layers.LSTM(3)
    first.build((None, 2, 4))
    birnn.utils.set_random_seed(7)
    second = layers.LSTM(3)
    second.build((None, 2, 4))
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="`seed` argument to be an integer"):
        birnn.utils.set_random_seed(1.5)


class _Batches(birnn.utils.PyDataset):
    def __init__(self, x, y, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.epochs_ended = x, y, 0

    def __len__(self):
        return 3

    def __getitem__(self, index):
        return self.x[index * 4 : (index + 1) * 4], self.y[index * 4 : (index + 1) * 4]

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_pydataset_fits_like_arrays_and_calls_epoch_hooks():
    rng = np.random.default_rng(5)
    x, y = rng.random((12, 3)).astype("float32"), rng.random((12, 2)).astype("float32")
    a, b = _dense(birnn, loss="mse"), _dense(birnn, loss="mse")
    b.set_weights(a.get_weights())
    data = _Batches(x, y, workers=2)
    history = a.fit(data, epochs=2, verbose=0).history
    expected = b.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(history["loss"], expected["loss"], rtol=1e-6)
    assert data.epochs_ended == 2 and data.num_batches == 3
    np.testing.assert_allclose(a.predict(data, verbose=0), b.predict(x, verbose=0), atol=1e-6)


def test_plot_model_without_pydot_is_a_clear_import_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pydot(name, *args, **kwargs):
        if name == "pydot":
            raise ImportError("no pydot")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pydot)
    with pytest.raises(ImportError, match=r"install pydot \(`pip install pydot`\)"):
        birnn.utils.plot_model(_dense(birnn))


def test_clear_session_restarts_names_and_set_floatx_sets_new_layer_dtypes():
    birnn.backend.clear_session()
    assert layers.Dense(2).name == "dense"
    assert layers.Dense(2).name == "dense_1"
    birnn.backend.clear_session()
    assert layers.Dense(2).name == "dense"
    try:
        birnn.config.set_floatx("float64")
        layer = layers.LSTM(2)
        assert layer(np.ones((1, 3, 2))).dtype == torch.float64
    finally:
        birnn.config.set_floatx("float32")
    with pytest.raises(ValueError, match="Unknown `floatx` value"):
        birnn.config.set_floatx("float8")


def _masked_bi_model(lib):
    i = lib.Input((5, 3))
    x = lib.layers.Masking()(i)
    x = lib.layers.Bidirectional(lib.layers.LSTM(4, return_sequences=True), name="bi")(x)
    return lib.Model(i, lib.layers.Dense(2)(x))


def test_clone_model_gives_fresh_weights_and_same_function_once_weights_are_copied():
    model = _masked_bi_model(birnn)
    clone = birnn.models.clone_model(model)
    assert [type(a) for a in clone.layers] == [type(b) for b in model.layers]
    assert all(a is not b for a, b in zip(clone.layers, model.layers))
    assert clone.get_config()["layers"][2]["config"] == model.get_config()["layers"][2]["config"]
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(6).random((2, 5, 3)).astype("float32")
    x[0, 3:] = 0.0
    np.testing.assert_allclose(clone.predict(x, verbose=0), model.predict(x, verbose=0))
    shared = birnn.models.clone_model(model, clone_function=lambda layer: layer)
    assert shared.get_layer("bi") is model.get_layer("bi")
    seq = birnn.Sequential([birnn.Input((5, 3)), layers.LSTM(4, name="enc")])
    renamed = birnn.models.clone_model(seq, clone_function=lambda layer: layers.GRU(4, name="g"))
    assert [type(layer) for layer in renamed.layers] == [layers.GRU]


def test_to_json_loads_in_keras_and_back():
    model = _masked_bi_model(birnn)
    kmodel = keras.models.model_from_json(model.to_json())
    assert [type(layer).__name__ for layer in kmodel.layers] == [
        type(layer).__name__ for layer in model.layers
    ]
    back = birnn.models.model_from_json(_masked_bi_model(keras).to_json())
    assert back.output_shape == (None, 5, 2)
    kmodel.set_weights(model.get_weights())
    x = np.random.default_rng(8).random((2, 5, 3)).astype("float32")
    np.testing.assert_allclose(
        model.predict(x, verbose=0), kmodel.predict(x, verbose=0), atol=1e-5
    )


def test_summary_fits_a_narrow_terminal_and_cuts_long_names_like_keras(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    model = birnn.Sequential(
        [birnn.Input((5, 3)), layers.Bidirectional(layers.LSTM(4), name="x" * 70)]
    )
    lines = []
    model.summary(print_fn=lines.append)
    table = [line for line in lines if line[:1] in "┏┃┡│├└"]
    assert table and all(len(line) <= 60 for line in table)
    assert any("…" in line for line in table) and any("(Bidirectional)" in t for t in table)
