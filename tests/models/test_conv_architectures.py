"""Whole Bidirectional models built around convolutions, against Keras 3.15.

Each architecture is built by one function for both libraries. The tests check
that a training step from the same weights gives the same loss and weights as
Keras (batch statistics and moving statistics of BatchNormalization included),
and that `.keras` files cross both ways with identical predictions.
"""

import numpy as np
import pytest

import birnn
from tests.keras_oracle import assert_close, keras

VOCAB, STEPS, CLASSES = 40, 12, 3
WIDTH, HEIGHT, CHARS = 32, 16, 6  # CRNN images: (width, height, 1), width read as time


def cnn_bilstm_classifier(lib, noise=True):
    """Embedding -> Conv1D -> BatchNormalization -> MaxPooling1D -> BiLSTM -> Dense."""
    L = lib.layers
    inputs = lib.Input(shape=(STEPS,), dtype="int32", name="tokens")
    x = L.Embedding(VOCAB, 8)(inputs)
    x = L.Conv1D(16, 3, padding="same", activation="relu")(x)
    x = L.BatchNormalization()(x)
    x = L.MaxPooling1D(2)(x)
    if noise:
        x = L.SpatialDropout1D(0.2)(x)
    x = L.Bidirectional(L.LSTM(8))(x)
    outputs = L.Dense(CLASSES, activation="softmax")(x)
    model = lib.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def crnn(lib):
    """Conv2D/MaxPooling2D -> Reshape -> Dense -> two BiLSTMs -> per-step softmax."""
    L = lib.layers
    inputs = lib.Input(shape=(WIDTH, HEIGHT, 1), name="image")
    x = L.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = L.MaxPooling2D(2)(x)
    x = L.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = L.BatchNormalization()(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Reshape((WIDTH // 4, (HEIGHT // 4) * 16))(x)
    x = L.Dense(32, activation="relu")(x)
    x = L.Bidirectional(L.LSTM(16, return_sequences=True))(x)
    x = L.Bidirectional(L.LSTM(8, return_sequences=True))(x)
    outputs = L.Dense(CHARS + 1, activation="softmax")(x)
    model = lib.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _text_data(n=8):
    rng = np.random.default_rng(0)
    return (
        rng.integers(0, VOCAB, size=(n, STEPS)).astype("int32"),
        rng.integers(0, CLASSES, size=(n,)).astype("int32"),
    )


def _image_data(n=4):
    rng = np.random.default_rng(1)
    return (
        rng.random((n, WIDTH, HEIGHT, 1)).astype("float32"),
        rng.integers(0, CHARS + 1, size=(n, WIDTH // 4)).astype("int32"),
    )


ARCHITECTURES = [
    (lambda lib: cnn_bilstm_classifier(lib, noise=False), _text_data),
    (crnn, _image_data),
]


@pytest.mark.parametrize("build,data", ARCHITECTURES, ids=["cnn_bilstm", "crnn"])
def test_training_step_matches_keras(build, data):
    x, y = data()
    theirs, ours = build(keras), build(birnn)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.weights]
    ours.set_weights(theirs.get_weights())
    assert_close(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), 1e-5, "predict")
    k_loss = theirs.train_on_batch(x, y)
    b_loss = ours.train_on_batch(x, y)
    k_loss = k_loss[0] if isinstance(k_loss, list) else k_loss
    b_loss = b_loss[0] if isinstance(b_loss, list) else b_loss
    assert b_loss == pytest.approx(float(k_loss), abs=1e-5)
    # Adam moved every trainable weight; BatchNormalization moved its statistics.
    assert_close(ours.get_weights(), theirs.get_weights(), 1e-4, "weights after training")
    assert_close(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), 1e-4, "predict")


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
@pytest.mark.parametrize(
    "build,data", [(cnn_bilstm_classifier, _text_data), (crnn, _image_data)], ids=["cnn", "crnn"]
)
def test_trained_files_cross_both_ways(build, data, tmp_path):
    x, y = data()
    theirs = build(keras)
    theirs.fit(x, y, epochs=1, batch_size=4, verbose=0)
    theirs.save(tmp_path / "keras.keras")
    model = birnn.models.load_model(tmp_path / "keras.keras")
    assert_close(model.predict(x, verbose=0), theirs.predict(x, verbose=0), 1e-5, "keras->birnn")
    bn = next(layer for layer in model.layers if type(layer).__name__ == "BatchNormalization")
    assert float((bn.moving_variance - 1).abs().max()) > 0  # trained statistics arrived
    # Training carries on in birnn; the file it writes loads in Keras, which trains on.
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "birnn.keras")
    loaded = keras.models.load_model(tmp_path / "birnn.keras")
    assert_close(loaded.predict(x, verbose=0), model.predict(x, verbose=0), 1e-5, "birnn->keras")
    assert [type(layer).__name__ for layer in loaded.layers] == [
        type(layer).__name__ for layer in model.layers
    ]
    loaded.fit(x, y, epochs=1, batch_size=4, verbose=0)
