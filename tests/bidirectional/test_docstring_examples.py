"""The two examples of the `Bidirectional` docstring, run through compile and a short fit.

Imports are swapped to birnn, and the first example's missing parenthesis (after
`Bidirectional(LSTM(10, return_sequences=True)`) is restored.
"""

import numpy as np

from birnn import Input, Sequential
from birnn.layers import LSTM, Bidirectional, Dense


def _one_hot(labels, classes=5):
    return np.eye(classes, dtype="float32")[labels]


def _fit_and_check(model, x, y):
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 2 and np.all(np.isfinite(losses))
    assert any(not np.allclose(b, a) for b, a in zip(before, model.get_weights()))
    predictions = model.predict(x, verbose=0)
    assert isinstance(predictions, np.ndarray) and predictions.shape == y.shape
    np.testing.assert_allclose(predictions.sum(axis=-1), 1.0, atol=1e-5)


def test_stacked_bidirectional_lstm_example():
    model = Sequential(
        [
            Input(shape=(5, 10)),
            Bidirectional(LSTM(10, return_sequences=True)),
            Bidirectional(LSTM(10)),
            Dense(5, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 5, 10)).astype("float32")
    y = _one_hot(rng.integers(0, 5, size=8))
    _fit_and_check(model, x, y)


def test_custom_backward_layer_example():
    forward_layer = LSTM(10, return_sequences=True)
    backward_layer = LSTM(10, activation="relu", return_sequences=True, go_backwards=True)
    model = Sequential(
        [
            Input(shape=(5, 10)),
            Bidirectional(forward_layer, backward_layer=backward_layer),
            Dense(5, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop")
    bidirectional = model.layers[0]
    assert bidirectional.backward_layer is backward_layer
    assert bidirectional.backward_layer.get_config()["activation"] == "relu"
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 5, 10)).astype("float32")
    y = _one_hot(rng.integers(0, 5, size=(8, 5)))
    _fit_and_check(model, x, y)
