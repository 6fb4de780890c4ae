"""`.keras` and `.weights.h5` files cross between Keras 3.15.1 and birnn, both ways."""

import io
import json
import zipfile

import h5py
import numpy as np
import pytest

import birnn
from tests.keras_oracle import assert_close, keras
from tests.saving import _models as M


def _predict(model, x):
    return model.predict(x, verbose=0)


def _h5_layout(source):
    """{dataset path: shape} of a weights file, optimizer excluded."""
    layout = {}
    with h5py.File(source, "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.startswith("optimizer"):
                layout[name] = obj.shape

        f.visititems(visit)
    return layout


def _weights_member(path):
    return io.BytesIO(zipfile.ZipFile(path).read("model.weights.h5"))


@pytest.mark.parametrize("builder", M.BUILDERS, ids=lambda b: b.__name__)
def test_keras_file_loads_in_birnn(builder, tmp_path):
    path = tmp_path / "keras_made.keras"
    keras_model = builder(keras)
    keras_model.save(path)
    model = birnn.models.load_model(path)
    assert isinstance(model, birnn.Model)
    x = M.inputs_for(builder)
    for _ in range(2 if builder is M.stateful else 1):  # stateful: the state carries on
        assert_close(_predict(model, x), _predict(keras_model, x), atol=1e-5, what="predict")


@pytest.mark.parametrize("builder", M.BUILDERS, ids=lambda b: b.__name__)
def test_birnn_file_loads_in_keras(builder, tmp_path):
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


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # Keras's own
@pytest.mark.parametrize("builder", [M.seed_stacked, M.masked_functional, M.kitchen_sink])
def test_weights_files_cross_both_ways(builder, tmp_path):
    keras_model, model = builder(keras), builder(birnn)
    x = M.inputs_for(builder)
    keras_model.save_weights(tmp_path / "k.weights.h5")
    model.load_weights(tmp_path / "k.weights.h5")
    assert_close(_predict(model, x), _predict(keras_model, x), atol=1e-5, what="keras->birnn")

    fresh = builder(birnn)
    fresh.save_weights(tmp_path / "b.weights.h5")
    keras_model.load_weights(tmp_path / "b.weights.h5")
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
        model.save(tmp_path / "m.h5")
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        model.save_weights(tmp_path / "m.h5")
