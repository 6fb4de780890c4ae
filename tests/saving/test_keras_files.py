"""`.keras` and `.weights.h5` files cross between Keras 3.15.1 and birnn, both ways."""

import io
import json
import zipfile

import h5py
import numpy as np
import pytest
import torch

import birnn
from birnn.layers.serialization import deserialize_layer, serialize_layer
from tests.keras_oracle import assert_close, keras
from tests.saving import _models as M


def _predict(model, x):
    return model.predict(x, verbose=0)


def _h5_layout(source):
    """{path: shape} of every dataset, {path: None} of every group in a weights file.

    The optimizer's variables are left out: Keras writes only `iterations` and
    `learning_rate` until its optimizer is built (first step, or loading a file).
    """
    layout = {}
    with h5py.File(source, "r") as f:

        def visit(name, obj):
            if not name.startswith("optimizer"):
                layout[name] = obj.shape if isinstance(obj, h5py.Dataset) else None

        f.visititems(visit)
    return layout


def _reset_states(model):
    """Zeroes the states of a stateful model's layers (Keras or birnn)."""
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_states()


def _weights_member(path):
    return io.BytesIO(zipfile.ZipFile(path).read("model.weights.h5"))


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # Keras's own
@pytest.mark.parametrize("builder", M.BUILDERS, ids=lambda b: b.__name__)
def test_keras_file_loads_in_birnn(builder, tmp_path):
    path = tmp_path / "keras_made.keras"
    keras_model = builder(keras)
    keras_model.save(path)
    model = birnn.models.load_model(path)
    assert isinstance(model, birnn.Model)
    # `layers` leaves out the operation nodes that carry the masks, as in Keras.
    assert [la.name for la in model.layers] == [la.name for la in keras_model.layers]
    x = M.inputs_for(builder)
    for _ in range(2 if builder is M.stateful else 1):  # stateful: the state carries on
        assert_close(_predict(model, x), _predict(keras_model, x), atol=1e-5, what="predict")
    assert model.get_compile_config().keys() == keras_model.get_compile_config().keys()

    # Saved again by birnn (with the mask operations Keras recorded), it loads in Keras.
    # (States are not saved: both Keras models below start from zero states.)
    model.save(tmp_path / "resaved.keras")
    back = keras.models.load_model(tmp_path / "resaved.keras")
    assert_close(_predict(back, x), _predict(keras.models.load_model(path), x), atol=1e-6)
    assert _h5_layout(_weights_member(tmp_path / "resaved.keras")) == _h5_layout(
        _weights_member(path)
    )


@pytest.mark.parametrize("builder", M.BUILDERS, ids=lambda b: b.__name__)
def test_birnn_file_loads_in_keras(builder, tmp_path):
    # As in two fresh processes, one saving and one loading: both name counters start at
    # zero, so Keras names its own mask operations like the layers birnn named ("concatenate").
    birnn.backend.clear_session()
    keras.backend.clear_session()
    path = tmp_path / "birnn_made.keras"
    model = builder(birnn)
    model.save(path)
    keras_model = keras.models.load_model(path)
    x = M.inputs_for(builder)
    for _ in range(2 if builder is M.stateful else 1):
        assert_close(_predict(keras_model, x), _predict(model, x), atol=1e-5, what="predict")
    # Same archive members, same weights layout as a file Keras writes itself.
    assert zipfile.ZipFile(path).namelist() == ["metadata.json", "config.json", "model.weights.h5"]
    keras_path = tmp_path / "keras_resaved.keras"
    keras_model.save(keras_path)
    assert _h5_layout(_weights_member(path)) == _h5_layout(_weights_member(keras_path))
    # The file carries every mask's operations: Keras's graph has no operation of its own.
    assert _operations(keras_path) == _operations(path)
    assert sorted(la.name for la in keras_model.layers) == sorted(la.name for la in model.layers)


def _operations(path) -> list[tuple]:
    """The operation nodes of a `.keras` file's model: (class, config, inbound nodes)."""
    layers = json.loads(zipfile.ZipFile(path).read("config.json"))["config"].get("layers", [])
    found = [
        (
            la["class_name"],
            json.dumps(la["config"], sort_keys=True),
            json.dumps(la["inbound_nodes"]),
        )
        for la in layers
        if la["module"].startswith("keras.src.ops")
    ]
    return sorted(found)


def test_mixed_precision_masking_writes_its_cast(tmp_path):
    """Under a mixed policy `Masking` compares in float16: the file says so with a `Cast`."""

    def build(lib):
        L = lib.layers
        a = lib.Input((5, 3))
        masked = L.Masking(dtype="mixed_float16")(a)
        return lib.Model(a, L.LSTM(2)(L.Concatenate()([masked, masked])))

    birnn.backend.clear_session()
    keras.backend.clear_session()
    model = build(birnn)
    model.save(tmp_path / "b.keras")
    keras_model = keras.models.load_model(tmp_path / "b.keras")
    x = np.random.default_rng(3).random((3, 5, 3), dtype=np.float32)
    x[0, 3:] = 0
    x[1, 1] = 1e-8  # zero in float16: a masked step there, a kept one in float32
    assert_close(_predict(keras_model, x), _predict(model, x), atol=1e-5, what="predict")
    keras_model.save(tmp_path / "k.keras")
    assert _operations(tmp_path / "k.keras") == _operations(tmp_path / "b.keras")
    assert "Cast" in [op[0] for op in _operations(tmp_path / "b.keras")]


@pytest.mark.parametrize("builder", [M.masked_merges, M.masked_concat_consumers])
def test_birnn_config_builds_in_a_fresh_keras(builder):
    """`keras.Model.from_config(model.get_config())`, with Keras's names starting anew."""
    birnn.backend.clear_session()
    keras.backend.clear_session()
    model = builder(birnn)
    keras_model = keras.Model.from_config(model.get_config())
    keras_model.set_weights(model.get_weights())
    x = M.inputs_for(builder)
    assert_close(_predict(keras_model, x), _predict(model, x), atol=1e-5, what="predict")


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # Keras's own
@pytest.mark.parametrize("builder", M.BUILDERS, ids=lambda b: b.__name__)
def test_weights_files_cross_both_ways(builder, tmp_path):
    keras_model, model = builder(keras), builder(birnn)
    x = M.inputs_for(builder)
    keras_model.save_weights(tmp_path / "k.weights.h5")
    model.load_weights(tmp_path / "k.weights.h5")
    assert_close(_predict(model, x), _predict(keras_model, x), atol=1e-5, what="keras->birnn")

    fresh = builder(birnn)
    fresh.save_weights(tmp_path / "b.weights.h5")
    keras_model.load_weights(tmp_path / "b.weights.h5")
    _reset_states(keras_model)
    assert_close(_predict(keras_model, x), _predict(fresh, x), atol=1e-5, what="birnn->keras")
    assert _h5_layout(tmp_path / "b.weights.h5") == _h5_layout(tmp_path / "k.weights.h5")


def test_load_weights_from_a_keras_file(tmp_path):
    keras_model = M.seed_custom_backward(keras)
    keras_model.save(tmp_path / "m.keras")
    model = M.seed_custom_backward(birnn)
    model.load_weights(tmp_path / "m.keras")
    x = M.inputs_for(M.seed_custom_backward)
    assert_close(_predict(model, x), _predict(keras_model, x), atol=1e-5)


def test_compile_config_and_optimizer_state_cross_both_ways(tmp_path):
    x = np.random.default_rng(1).random((6, 5, 10), dtype=np.float32)
    y = np.eye(5, dtype="float32")[np.arange(6) % 5]
    keras_model = keras.Sequential(
        [
            keras.Input((5, 10)),
            keras.layers.Bidirectional(keras.layers.GRU(4)),
            keras.layers.Dense(5, activation="softmax"),
        ]
    )
    keras_model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.01),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
        metrics=["accuracy"],
    )
    keras_model.fit(x, y, epochs=2, batch_size=3, verbose=0)
    keras_model.save(tmp_path / "k.keras")

    model = birnn.models.load_model(tmp_path / "k.keras")
    assert type(model.optimizer).__name__ == "Adam"
    assert model.optimizer.get_config()["learning_rate"] == pytest.approx(0.01)
    assert model.optimizer.iterations == 4
    slots = {}
    model.optimizer.save_own_variables(slots)
    keras_slots = [np.asarray(v) for v in keras_model.optimizer.variables]
    assert len(slots) == len(keras_slots)
    for index, expected in enumerate(keras_slots):
        np.testing.assert_allclose(np.asarray(slots[str(index)]), expected, atol=1e-6)
    compile_config = model.get_compile_config()
    assert compile_config["loss"]["class_name"] == "CategoricalCrossentropy"
    assert compile_config["loss"]["config"]["label_smoothing"] == pytest.approx(0.1)
    assert compile_config["metrics"] == ["accuracy"]

    model.fit(x, y, epochs=1, batch_size=3, verbose=0)
    model.save(tmp_path / "b.keras")
    back = keras.models.load_model(tmp_path / "b.keras")
    assert int(back.optimizer.iterations) == 6
    assert float(back.optimizer.learning_rate) == pytest.approx(0.01)
    assert back.loss.get_config()["label_smoothing"] == pytest.approx(0.1)
    assert_close(_predict(back, x), _predict(model, x), atol=1e-5)


def test_compile_false_leaves_the_model_uncompiled(tmp_path):
    M.seed_stacked(keras).save(tmp_path / "m.keras")
    model = birnn.models.load_model(tmp_path / "m.keras", compile=False)
    assert not model.compiled
    assert model.get_compile_config() == {}


def test_metadata_and_config_are_keras_shaped(tmp_path):
    model = M.masked_functional(birnn)
    model.save(tmp_path / "m.keras")
    archive = zipfile.ZipFile(tmp_path / "m.keras")
    assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
    metadata = json.loads(archive.read("metadata.json"))
    assert metadata["keras_version"] == "3.15.1"
    assert len(metadata["date_saved"]) == len("2026-11-25@07:13:37")
    config = json.loads(archive.read("config.json"))
    assert config["module"] == "keras.src.models.functional"
    assert config["class_name"] == config["registered_name"] == "Functional"
    assert config["compile_config"]["optimizer"]["class_name"] == "Adam"
    assert [layer["class_name"] for layer in config["config"]["layers"]][:2] == [
        "InputLayer",
        "Embedding",
    ]


def test_model_save_load_round_trip_in_birnn(tmp_path):
    model = M.kitchen_sink(birnn)
    model.save(tmp_path / "m.keras")
    restored = birnn.models.load_model(tmp_path / "m.keras")
    x = M.inputs_for(M.kitchen_sink)
    assert_close(_predict(restored, x), _predict(model, x), atol=1e-6)
    assert restored.get_config() == model.get_config()


def test_overwrite_false_refuses_existing_files(tmp_path):
    model = M.stateful(birnn)
    model.save(tmp_path / "m.keras")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "m.keras", overwrite=False)
    model.save_weights(tmp_path / "m.weights.h5")
    with pytest.raises(FileExistsError):
        model.save_weights(tmp_path / "m.weights.h5", overwrite=False)


def test_wrong_extensions_are_rejected(tmp_path):
    model = M.stateful(birnn)
    with pytest.raises(ValueError, match=r"\.keras"):
        model.save(tmp_path / "m.txt")  # (a `.h5` path writes the legacy format)
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        model.save_weights(tmp_path / "m.h5")


def _compile_parts(model):
    """A compile config without what legitimately differs (optimizer module, float rounding)."""
    config = keras.saving.serialize_keras_object(model.get_compile_config())
    optimizer = config.pop("optimizer")
    opt_config = dict(optimizer["config"])
    opt_config["learning_rate"] = round(float(opt_config["learning_rate"]), 6)
    return {**config, "optimizer": (optimizer["class_name"], opt_config)}


def _multi_output_list(lib):
    model = M.kitchen_sink(lib)
    model.compile(
        optimizer=lib.optimizers.RMSprop(0.002, rho=0.8),
        loss=["mse", lib.losses.LogCosh()],
        loss_weights=[1.0, 0.3],
        metrics=[["mae"], ["mse", lib.metrics.RootMeanSquaredError()]],
    )
    return model


def _multi_output_dict(lib):
    model = M.kitchen_sink(lib)
    model.compile(
        optimizer="adam",
        loss={"first": "mse", "second": "mae"},
        loss_weights={"first": 2.0, "second": 1.0},
        metrics={"first": "mae"},
        weighted_metrics={"second": ["mse"]},
    )
    return model


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # Keras's own
@pytest.mark.parametrize("builder", [_multi_output_list, _multi_output_dict])
def test_multi_output_compile_config_crosses_both_ways(builder, tmp_path):
    x = M.inputs_for(M.kitchen_sink)
    y = [np.ones((3, 2), "float32"), np.zeros((3, 3), "float32")]
    if builder is _multi_output_dict:
        y = {"first": y[0], "second": y[1]}
    for lib, other in ((keras, birnn), (birnn, keras)):
        model = builder(lib)
        model.save(tmp_path / "m.keras")
        loaded = other.models.load_model(tmp_path / "m.keras")
        assert _compile_parts(loaded) == _compile_parts(model), lib.__name__
        # The loaded model trains with those losses and metrics.
        logs = loaded.evaluate(x, y, verbose=0, return_dict=True)
        expected = model.evaluate(x, y, verbose=0, return_dict=True)
        assert logs.keys() == expected.keys()
        for key in expected:
            assert logs[key] == pytest.approx(expected[key], abs=1e-5), key


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # Keras's own
def test_bfloat16_weights_cross_both_ways(tmp_path):
    """Keras stores bfloat16 weights as raw 16-bit opaque data marked `dtype="bfloat16"`."""
    x = np.random.default_rng(0).random((2, 5, 10), dtype=np.float32)

    def build(lib):
        L = lib.layers
        return lib.Sequential([lib.Input((5, 10)), L.Dense(3, dtype="bfloat16"), L.Dense(2)])

    keras_model = build(keras)
    keras_model.save(tmp_path / "k.keras")
    model = birnn.models.load_model(tmp_path / "k.keras")
    assert model.layers[0].kernel.dtype == torch.bfloat16
    assert_close(_predict(model, x).astype("float32"), _predict(keras_model, x), atol=1e-6)

    model.save(tmp_path / "b.keras")
    with h5py.File(_weights_member(tmp_path / "b.keras"), "r") as f:
        kernel = f["layers/dense/vars/0"]
        assert kernel.dtype.itemsize == 2 and kernel.attrs["dtype"] == "bfloat16"
    back = keras.models.load_model(tmp_path / "b.keras")
    assert_close(_predict(back, x), _predict(keras_model, x), atol=1e-6)


@keras.saving.register_keras_serializable(package="tests_cross")
class KerasMinimalCell(keras.layers.Layer):
    """A user's RNN cell on the Keras side (`h = tanh(x W + h U)`)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units), name="recurrent_kernel"
        )

    def call(self, inputs, states):
        h = keras.ops.tanh(inputs @ self.kernel + states[0] @ self.recurrent_kernel)
        return h, [h]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@birnn.saving.register_serializable(package="tests_cross", name="KerasMinimalCell")
class BirnnMinimalCell(birnn.layers.Layer):
    """The same cell on the birnn side, registered under the same name."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units), name="recurrent_kernel"
        )

    def call(self, inputs, states):
        h = torch.tanh(inputs @ self.kernel + states[0] @ self.recurrent_kernel)
        return h, [h]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_registered_custom_cell_crosses_both_ways(tmp_path):
    x = np.random.default_rng(0).random((2, 5, 3), dtype=np.float32)
    for lib, other, cell in ((keras, birnn, KerasMinimalCell), (birnn, keras, BirnnMinimalCell)):
        L = lib.layers
        model = lib.Sequential(
            [
                lib.Input((5, 3)),
                L.Bidirectional(L.RNN(cell(4), return_sequences=True)),
                L.Dense(2),
            ]
        )
        model.save(tmp_path / "cell.keras")
        config = json.loads(zipfile.ZipFile(tmp_path / "cell.keras").read("config.json"))
        cell_config = config["config"]["layers"][1]["config"]["layer"]["config"]["cell"]
        assert cell_config["registered_name"] == "tests_cross>KerasMinimalCell"
        loaded = other.models.load_model(tmp_path / "cell.keras")
        expected_cell = BirnnMinimalCell if other is birnn else KerasMinimalCell
        assert type(loaded.layers[0].forward_layer.cell) is expected_cell
        assert_close(_predict(loaded, x), _predict(model, x), atol=1e-6, what=lib.__name__)


@pytest.mark.parametrize(
    "builder",
    [
        M.seed_custom_backward,
        M.masked_merges,
        M.masked_concat_consumers,
        M.shared_and_nested,
        M.nested_sequential,
        M.nested_dict_outputs,
    ],
    ids=lambda b: b.__name__,
)
@pytest.mark.parametrize("form", ["json", "in_memory"])
def test_keras_get_config_builds_the_birnn_model(builder, form):
    keras_model = builder(keras)
    cls = birnn.Sequential if isinstance(keras_model, keras.Sequential) else birnn.Model
    config = keras_model.get_config()  # in memory: tuples where JSON has lists
    if form == "json":  # the config as a `.keras` file carries it
        config = json.loads(json.dumps(config))
    model = cls.from_config(config)
    model.set_weights([np.asarray(w) for w in keras_model.get_weights()])
    x = M.inputs_for(builder)
    assert_close(_predict(model, x), _predict(keras_model, x), atol=1e-5)


@keras.saving.register_keras_serializable(package="tests_cross")
def keras_squared_error(y_true, y_pred):
    return keras.ops.mean((y_true - y_pred) ** 2, axis=-1)


def test_custom_loss_in_a_keras_compile_config(tmp_path):
    """Keras writes a registered loss as "package>name"; birnn finds it or says what to do."""
    keras_model = M.seed_stacked(keras)
    keras_model.compile(optimizer="adam", loss=keras_squared_error, metrics=[keras_squared_error])
    keras_model.save(tmp_path / "k.keras")

    hint = r"k.keras: .*custom_objects.*compile=False"
    with pytest.raises(birnn.saving.ConfigError, match=hint):
        birnn.models.load_model(tmp_path / "k.keras")
    assert not birnn.models.load_model(tmp_path / "k.keras", compile=False).compiled

    def squared_error(y_true, y_pred):
        return torch.mean((y_true - y_pred) ** 2, dim=-1)

    for key in ("keras_squared_error", "tests_cross>keras_squared_error"):
        model = birnn.models.load_model(tmp_path / "k.keras", custom_objects={key: squared_error})
        assert model.compiled
        x = M.inputs_for(M.seed_stacked)
        y = np.eye(5, dtype="float32")[[0, 1, 2]]
        ours = model.evaluate(x, y, verbose=0, return_dict=True)
        theirs = keras_model.evaluate(x, y, verbose=0, return_dict=True)
        assert ours["loss"] == pytest.approx(theirs["loss"], abs=1e-6)


def _small_compiled_model():
    model = birnn.Sequential([birnn.Input((3,)), birnn.layers.Dense(2)])
    model.compile("adam", "mse")
    model.fit(np.ones((4, 3), "float32"), np.ones((4, 2), "float32"), verbose=0)
    return model


def test_save_refuses_keywords_keras_does_not_take(tmp_path):
    model = _small_compiled_model()
    path = tmp_path / "m.keras"
    with pytest.raises(ValueError, match=r"unexpected keyword arguments \['foo'\]"):
        model.save(path, foo=1)
    with pytest.raises(ValueError, match="zipped=False"):
        model.save(tmp_path / "dir", zipped=False)
    assert not path.exists()
    keras_model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="foo"):  # Keras refuses it the same way
        keras_model.save(tmp_path / "k.keras", foo=1)


def test_save_accepts_keras_keywords(tmp_path):
    model = _small_compiled_model()
    model.save(tmp_path / "a.keras", overwrite=True, zipped=True, include_optimizer=False)
    with pytest.warns(DeprecationWarning, match="save_format"):
        model.save(tmp_path / "b.keras", save_format="keras")
    for name in ("a.keras", "b.keras"):  # a .keras file keeps the optimizer, as in Keras
        with zipfile.ZipFile(tmp_path / name) as zf:
            weights = h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r")
            assert "optimizer" in weights
    model.save(tmp_path / "with.h5")
    model.save(tmp_path / "without.h5", include_optimizer=False)
    with h5py.File(tmp_path / "with.h5", "r") as f:
        assert "training_config" in f.attrs and "optimizer_weights" in f
    with h5py.File(tmp_path / "without.h5", "r") as f:
        assert "training_config" not in f.attrs and "optimizer_weights" not in f
    restored = birnn.saving.load_model(tmp_path / "without.h5")
    assert not restored.compiled


# Nested custom classes: a registered RNN subclass wrapped in `Bidirectional`, and a
# registered cell in `StackedRNNCells`. Loading a file deserializes the nested configs
# with their `build_config` (Keras builds them through `build_from_config`, and so does
# birnn: one function, `deserialize_layer`, for every nested layer or cell).
BUILT: list = []


def _recording_build(cls):
    def build_from_config(self, config):
        BUILT.append(
            (type(self).__module__.split(".")[0], self.name, tuple(config["input_shape"]))
        )
        super(cls, self).build_from_config(config)

    cls.build_from_config = build_from_config
    return cls


def _nested_classes(lib, register):
    """A registered RNN subclass and cell subclass, of the same names in both libraries
    (Keras names a nested layer's weights in the file after its class)."""

    @register(package="tests_nested")
    @_recording_build
    class CountingRNN(lib.layers.SimpleRNN):
        pass

    @register(package="tests_nested")
    @_recording_build
    class StackCell(lib.layers.SimpleRNNCell):
        pass

    return CountingRNN, StackCell


NESTED = {
    keras: _nested_classes(keras, keras.saving.register_keras_serializable),
    birnn: _nested_classes(birnn, birnn.saving.register_serializable),
}


def _nested_model(lib, kind):
    L = lib.layers
    rnn_cls, cell_cls = NESTED[lib]
    if kind == "bidirectional":
        layer = L.Bidirectional(rnn_cls(3, return_sequences=True, name="inner"), name="bi")
    else:
        cells = [cell_cls(3, name="c1"), cell_cls(2, name="c2")]
        layer = L.RNN(L.StackedRNNCells(cells, name="stack"), return_sequences=True, name="rnn")
    return lib.Sequential([lib.Input((5, 4)), layer], name="m")


def _nested_layers(layer):
    if hasattr(layer, "forward_layer"):
        return [layer.forward_layer, layer.backward_layer]
    return list(layer.cell.cells)


@pytest.mark.parametrize("kind", ["bidirectional", "stacked"])
def test_nested_custom_classes_load_built_from_their_build_config_as_in_keras(kind, tmp_path):
    x = np.random.default_rng(0).random((2, 5, 4), dtype=np.float32)
    builds = {}
    for lib, other in ((keras, birnn), (birnn, keras)):
        model = _nested_model(lib, kind)
        model.save(tmp_path / f"{lib.__name__}.keras")
        BUILT.clear()
        loaded = other.models.load_model(tmp_path / f"{lib.__name__}.keras")
        builds[other.__name__] = sorted({(name, shape) for _, name, shape in BUILT})
        nested = _nested_layers(loaded.layers[0])
        expected = _nested_layers(_nested_model(other, kind).layers[0])
        assert [type(n) for n in nested] == [type(e) for e in expected]
        assert all(n.built for n in nested)
        assert_close(_predict(loaded, x), _predict(model, x), atol=1e-6, what=lib.__name__)
    # The same nested layers are built from the same saved input shapes on both sides.
    assert builds["birnn"] == builds["keras"] and builds["keras"]
    # The same through the config alone, with no file (`keras.layers.deserialize`).
    for lib, serialize, deserialize in (
        (keras, keras.layers.serialize, keras.layers.deserialize),
        (birnn, serialize_layer, deserialize_layer),
    ):
        layer = _nested_model(lib, kind).layers[0]
        BUILT.clear()
        restored = deserialize(serialize(layer))
        builds[lib.__name__] = sorted({(name, shape) for _, name, shape in BUILT})
        assert all(n.built for n in _nested_layers(restored))
    assert builds["birnn"] == builds["keras"]


def test_unknown_nested_class_is_a_clear_error_naming_it(tmp_path):
    for kind in ("bidirectional", "stacked"):
        model = _nested_model(birnn, kind)
        config = serialize_layer(model.layers[0])
        inner = config["config"]["layer"] if kind == "bidirectional" else None
        if inner is None:
            inner = config["config"]["cell"]["config"]["cells"][1]
        inner["registered_name"] = inner["class_name"] = "NoSuchLayer"
        inner["module"] = "somewhere"
        with pytest.raises(
            ValueError, match=r"Unknown layer class 'NoSuchLayer' \(module 'somewhere'\)"
        ):
            deserialize_layer(config)
        with pytest.raises(TypeError, match="NoSuchLayer|could not be deserialized"):
            keras.layers.deserialize(config)  # Keras refuses it too
