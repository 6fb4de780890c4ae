"""Model builders shared by the saving tests: one code path builds the Keras and the birnn model.

`lib` is `keras` or `birnn`; both expose `Input`, `Sequential`, `Model` and `layers`.
"""

import numpy as np


def seed_stacked(lib):
    """The seed docstring's first model."""
    L = lib.layers
    model = lib.Sequential(
        [
            lib.Input(shape=(5, 10)),
            L.Bidirectional(L.LSTM(10, return_sequences=True)),
            L.Bidirectional(L.LSTM(10)),
            L.Dense(5, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop")
    return model


def seed_custom_backward(lib):
    """The seed docstring's second model (a custom `backward_layer`)."""
    L = lib.layers
    forward_layer = L.LSTM(10, return_sequences=True)
    backward_layer = L.LSTM(10, activation="relu", return_sequences=True, go_backwards=True)
    model = lib.Sequential(
        [
            lib.Input(shape=(5, 10)),
            L.Bidirectional(forward_layer, backward_layer=backward_layer),
            L.Dense(5, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop")
    return model


def masked_functional(lib):
    """Masked `Embedding` -> `Bidirectional(GRU, merge_mode=None)` -> `Concatenate`."""
    L = lib.layers
    inputs = lib.Input(shape=(None,), dtype="int32")
    x = L.Embedding(20, 6, mask_zero=True)(inputs)
    forward, backward = L.Bidirectional(L.GRU(7, return_sequences=True), merge_mode=None)(x)
    outputs = L.Concatenate()([forward, backward])
    model = lib.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model


def stateful(lib):
    """A stateful `Bidirectional` LSTM (fixed batch of 2)."""
    L = lib.layers
    return lib.Sequential(
        [
            lib.Input(batch_shape=(2, 3, 4)),
            L.Bidirectional(L.LSTM(3, stateful=True, return_sequences=True)),
            L.Dense(2),
        ]
    )


def kitchen_sink(lib):
    """Nested Sequential, TimeDistributed, StackedRNNCells, SimpleRNN, two outputs."""
    L = lib.layers
    inner = lib.Sequential([L.Dense(3), L.Dropout(0.2), L.Dense(3)], name="inner")
    inputs = lib.Input(shape=(4, 5))
    x = L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode="sum")(inputs)
    x = L.TimeDistributed(L.Dense(5))(x)
    x = L.RNN(
        L.StackedRNNCells([L.SimpleRNNCell(3), L.GRUCell(2, reset_after=False)]),
        return_sequences=True,
    )(x)
    x = L.Bidirectional(L.SimpleRNN(2, return_sequences=True), merge_mode="ave")(x)
    x = inner(x)
    pooled = L.GlobalAveragePooling1D()(x)
    first = L.Dense(2, name="first")(pooled)
    second = L.Dense(3, activation="tanh", name="second")(pooled)
    return lib.Model(inputs, [first, second])


def inputs_for(builder):
    """A deterministic input batch for a builder's model."""
    rng = np.random.default_rng(0)
    if builder is masked_functional:
        x = rng.integers(1, 20, size=(4, 6))
        x[0, 4:] = 0  # right padding
        x[1, :2] = 0  # left padding
        x[2, :] = 0  # fully masked row
        return x.astype("int32")
    if builder is stateful:
        return rng.random((2, 3, 4), dtype=np.float32)
    if builder is kitchen_sink:
        return rng.random((3, 4, 5), dtype=np.float32)
    return rng.random((3, 5, 10), dtype=np.float32)


BUILDERS = [seed_stacked, seed_custom_backward, masked_functional, stateful, kitchen_sink]
