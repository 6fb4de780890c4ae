"""A seq2seq autoencoder and a CRNN trained with CTC, against Keras 3.15.

Each model is built by one function for both libraries: the same weights give
Keras's predictions, a training step gives Keras's loss and weights, and
`.keras` files cross both ways with identical predictions. The CRNN's outputs
are decoded greedily with `birnn.ops.ctc_decode`, compared with `keras.ops`.
"""

import numpy as np
import pytest

import birnn
from tests.keras_oracle import assert_close, keras, to_numpy
from tests.models.test_conv_architectures import CHARS, HEIGHT, WIDTH

STEPS, FEATURES = 7, 3


def seq2seq_autoencoder(lib):
    """Masking -> Bidirectional(LSTM) -> RepeatVector -> LSTM -> TimeDistributed(Dense)."""
    L = lib.layers
    inputs = lib.Input(shape=(STEPS, FEATURES))
    x = L.Masking(0.0)(inputs)
    code = L.Bidirectional(L.LSTM(6))(x)
    x = L.RepeatVector(STEPS)(code)
    x = L.LSTM(6, return_sequences=True)(x)
    outputs = L.TimeDistributed(L.Dense(FEATURES))(x)
    model = lib.Model(inputs, outputs)
    model.compile(optimizer=lib.optimizers.SGD(0.1), loss="mse")
    return model


def crnn_ctc(lib):
    """Conv2D/MaxPooling2D -> Reshape -> Dense -> two BiLSTMs -> softmax, trained with CTC."""
    L = lib.layers
    inputs = lib.Input(shape=(WIDTH, HEIGHT, 1))
    x = L.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = L.MaxPooling2D(2)(x)
    x = L.Reshape((WIDTH // 2, (HEIGHT // 2) * 8))(x)
    x = L.Dense(16, activation="relu")(x)
    x = L.Bidirectional(L.LSTM(8, return_sequences=True))(x)
    x = L.Bidirectional(L.LSTM(8, return_sequences=True))(x)
    outputs = L.Dense(CHARS + 1, activation="softmax")(x)  # class 0: the CTC blank
    model = lib.Model(inputs, outputs)
    model.compile(optimizer=lib.optimizers.SGD(0.05), loss=lib.losses.CTC())
    return model


def _sequences():
    x = np.random.default_rng(2).random((6, STEPS, FEATURES)).astype("float32")
    x[0, 4:] = 0.0  # padded rows: the Masking layer hides them
    x[1, 6:] = 0.0
    return x, x


def _images():
    rng = np.random.default_rng(3)
    x = rng.random((4, WIDTH, HEIGHT, 1)).astype("float32")
    labels = rng.integers(1, CHARS + 1, size=(4, 5)).astype("int32")
    labels[0, 3:] = 0  # shorter labels, padded with the blank
    return x, labels


@pytest.mark.parametrize(
    "build,data", [(seq2seq_autoencoder, _sequences), (crnn_ctc, _images)], ids=["s2s", "ctc"]
)
def test_training_step_and_files_match_keras(build, data, tmp_path):
    x, y = data()
    theirs, ours = build(keras), build(birnn)
    ours.set_weights(theirs.get_weights())
    assert_close(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), 1e-5, "predict")
    k_loss = float(np.asarray(theirs.train_on_batch(x, y)))
    b_loss = float(np.asarray(ours.train_on_batch(x, y)))
    assert b_loss == pytest.approx(k_loss, rel=1e-5)
    assert_close(ours.get_weights(), theirs.get_weights(), 1e-4, "weights after a step")
    ours.save(tmp_path / "birnn.keras")
    loaded = keras.models.load_model(tmp_path / "birnn.keras")
    assert_close(loaded.predict(x, verbose=0), ours.predict(x, verbose=0), 1e-5, "to keras")
    theirs.save(tmp_path / "keras.keras")
    back = birnn.models.load_model(tmp_path / "keras.keras")
    assert_close(back.predict(x, verbose=0), theirs.predict(x, verbose=0), 1e-5, "to birnn")
    back.fit(x, y, epochs=1, verbose=0)  # the compile config (CTC included) came along


def test_crnn_outputs_decode_greedily_like_keras():
    x, labels = _images()
    theirs, ours = crnn_ctc(keras), crnn_ctc(birnn)
    ours.set_weights(theirs.get_weights())
    ours.fit(x, labels, epochs=2, verbose=0)
    theirs.fit(x, labels, epochs=2, verbose=0)
    probs = ours.predict(x, verbose=0)
    lengths = np.full((len(x),), probs.shape[1], "int32")
    lengths[1] = probs.shape[1] - 3  # a shorter valid length for one sample
    decoded, scores = birnn.ops.ctc_decode(probs, lengths, strategy="greedy")
    k_decoded, k_scores = keras.ops.ctc_decode(probs, lengths, strategy="greedy")
    np.testing.assert_array_equal(to_numpy(decoded), to_numpy(k_decoded))
    np.testing.assert_allclose(to_numpy(scores), to_numpy(k_scores), rtol=1e-5)
    assert_close(probs, theirs.predict(x, verbose=0), 1e-4, "predict after two epochs")
