"""`compile(jit_compile=...)`: Keras's attribute and config; compiled steps that match eager."""

import json
import warnings
import zipfile

import numpy as np
import pytest
import torch
import torch._dynamo.utils

import birnn
from birnn import callbacks
from tests.keras_oracle import copy_weights, keras


def _model(lib):
    return lib.Sequential(
        [
            lib.Input(shape=(4, 3)),
            lib.layers.Bidirectional(lib.layers.LSTM(3, return_sequences=True)),
            lib.layers.Bidirectional(lib.layers.GRU(2)),
            lib.layers.Dense(2),
        ]
    )


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"jit_compile": "auto"}, {"jit_compile": False}, {"jit_compile": True}],
    ids=["default", "auto", "false", "true"],
)
def test_attribute_and_config_match_keras(kwargs):
    ours, theirs = _model(birnn), _model(keras)
    assert ours.jit_compile is theirs.jit_compile is False  # before compile()
    ours.compile(loss="mse", **kwargs)
    theirs.compile(loss="mse", **kwargs)
    assert ours.jit_compile == theirs.jit_compile
    for key in ("jit_compile", "run_eagerly"):
        assert ours.get_compile_config()[key] == theirs.get_compile_config()[key], key


def test_run_eagerly_turns_jit_off_with_keras_warning():
    ours, theirs = _model(birnn), _model(keras)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours.compile(loss="mse", jit_compile=True, run_eagerly=True)
        theirs.compile(loss="mse", jit_compile=True, run_eagerly=True)
    messages = [str(w.message) for w in caught if "jit_compile" in str(w.message)]
    assert len(messages) == 2 and messages[0] == messages[1]
    assert ours.jit_compile is theirs.jit_compile is False
    assert ours.run_eagerly is True


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_bad_value_is_a_value_error(value):
    with pytest.raises(ValueError, match="jit_compile"):
        _model(birnn).compile(loss="mse", jit_compile=value)


def test_jit_compile_round_trips_through_keras_files(tmp_path):
    model = _model(birnn)
    model.compile(loss="mse", optimizer="adam", jit_compile=True)
    path = str(tmp_path / "jit.keras")
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    assert config["compile_config"]["jit_compile"] is True
    assert birnn.models.load_model(path).jit_compile is True
    assert keras.models.load_model(path).jit_compile is True


def test_compiled_fit_and_predict_match_eager():
    """Bidirectional LSTM and GRU: losses, weights and predictions within 1e-5 of
    eager, with a smaller last batch, a learning-rate schedule callback, and no
    recompilation once each batch size and mode has been seen (dynamo's counters)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 4, 3)).astype("float32")  # batches of 4, 4, then 2
    y = rng.normal(size=(10, 2)).astype("float32")
    eager, compiled = _model(birnn), _model(birnn)
    copy_weights(eager, compiled)
    for model, jit_compile in ((eager, False), (compiled, True)):
        model.compile(loss="mse", optimizer="adam", metrics=["mae"], jit_compile=jit_compile)
    assert compiled.jit_compile is True

    def fit(model, epochs):
        schedule = callbacks.LearningRateScheduler(lambda epoch, lr: 0.01 / (epoch + 1))
        kw = {"batch_size": 4, "shuffle": False, "verbose": 0, "callbacks": [schedule]}
        return model.fit(x, y, epochs=epochs, validation_data=(x[:6], y[:6]), **kw).history

    expected, got = fit(eager, 2), fit(compiled, 2)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=1e-5, err_msg=key)
    for a, b in zip(compiled.get_weights(), eager.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(
        compiled.predict(x, batch_size=4, verbose=0),
        eager.predict(x, batch_size=4, verbose=0),
        atol=1e-5,
    )

    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    fit(compiled, 1)
    compiled.predict(x, batch_size=4, verbose=0)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs
