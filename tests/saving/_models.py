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


def masked_merges(lib):
    """Masking and masked Embedding inputs through the merge layers (three inputs, four outputs).

    Keras records the masks of this graph as operation nodes (`NotEqual`, `Any`,
    `LogicalOr`, `ExpandDims`, `ZerosLike`, `OnesLike`, `Concatenate`) in its config.
    """
    L = lib.layers
    a = lib.Input(shape=(6, 3), name="a")
    b = lib.Input(shape=(6, 3), name="b")
    e = lib.Input(shape=(6,), dtype="int32", name="e")
    ma = L.Masking()(a)
    mb = L.Masking(1.0)(b)
    em = L.Embedding(5, 3, mask_zero=True)(e)
    added = L.Add()([ma, mb])
    multiplied = L.Multiply()([ma, em])
    averaged = L.Average()([ma, mb, em])
    joined = L.Concatenate()([added, multiplied, averaged])
    out1 = L.Bidirectional(L.LSTM(2), merge_mode="mul")(joined)
    in_time = L.Concatenate(axis=1)([ma, b])
    out2 = L.GlobalAveragePooling1D()(L.TimeDistributed(L.Dense(2))(in_time))
    forward, backward = L.Bidirectional(L.GRU(2, return_sequences=True), merge_mode=None)(em)
    out3 = L.Activation("relu")(L.SimpleRNN(2)(L.Concatenate()([forward, backward])))
    # GlobalMaxPooling1D on an unmasked path: Keras 3 ignores masks there, birnn does not.
    unmasked = L.Dropout(0.1)(L.Dense(2)(b))
    out4 = L.Concatenate()([L.GlobalMaxPooling1D()(unmasked), L.Flatten()(unmasked)])
    return lib.Model([a, b, e], [out1, out2, out3, out4])


def masked_concat_consumers(lib):
    """A masked `Concatenate` feeding attention, a nested model, TimeDistributed and an RNN.

    Each consumer reads the concatenated mask: Keras writes it as an explicit `mask`
    argument of the single-input calls, and recomputes it for the attention layers.
    """
    L = lib.layers
    a = lib.Input(shape=(5, 3), name="a")
    masked = L.Masking()(a)
    joined = L.Concatenate()([masked, masked])
    attended = L.MultiHeadAttention(2, 2)(joined, joined)
    scored = L.Attention()([joined, joined])
    inner = lib.Sequential([L.Dense(3)], name="inner")
    nested = L.GlobalAveragePooling1D()(inner(joined))
    per_step = L.TimeDistributed(L.Dense(2))(joined)
    summed = L.Bidirectional(L.LSTM(2), merge_mode="sum")(L.Concatenate()([per_step, attended]))
    pooled = L.GlobalAveragePooling1D()(scored)
    return lib.Model(a, [summed, pooled, nested])


def cells_and_states(lib):
    """`RNN` over single cells, a custom backward `RNN`, `return_state`, layer options."""
    L = lib.layers
    inputs = lib.Input(shape=(6, 3))
    x = L.Bidirectional(L.RNN(L.SimpleRNNCell(3, activation="relu"), return_sequences=True))(
        inputs
    )
    x = L.Bidirectional(
        L.LSTM(3, return_sequences=True, unit_forget_bias=False, use_bias=False, dropout=0.2),
        merge_mode="ave",
    )(x)
    x = L.Bidirectional(L.GRU(2, reset_after=False, recurrent_dropout=0.1, return_sequences=True))(
        x
    )
    out, forward_h, forward_c, backward_h, backward_c = L.Bidirectional(
        L.RNN(L.LSTMCell(3), return_state=True),
        backward_layer=L.RNN(L.LSTMCell(3), go_backwards=True, return_state=True),
    )(x)
    x = L.Concatenate()([out, forward_h, backward_c])
    x = L.Dense(
        2,
        kernel_regularizer="l2",
        bias_constraint="non_neg",
        kernel_initializer=lib.initializers.Orthogonal(gain=0.5, seed=1),
    )(x)
    return lib.Model(inputs, [x, forward_c, backward_h])


def shared_and_nested(lib):
    """A functional model inside a functional model, a shared layer, two inputs."""
    L = lib.layers
    inner_in = lib.Input(shape=(5, 3))
    inner_out = L.Bidirectional(L.GRU(2, return_sequences=True))(inner_in)
    inner = lib.Model(inner_in, inner_out, name="inner_functional")
    shared = L.Bidirectional(L.LSTM(2), name="shared")
    a = lib.Input(shape=(5, 3))
    b = lib.Input(shape=(5, 3))
    merged = L.Add()([shared(inner(a)), shared(inner(b))])
    return lib.Model([a, b], L.Dense(1)(merged))


def nested_sequential(lib):
    """A Sequential model whose first layer is a Sequential model starting with an `Input`."""
    L = lib.layers
    inner = lib.Sequential(
        [lib.Input(shape=(5, 3)), L.Bidirectional(L.LSTM(4, return_sequences=True))],
        name="inner_sequential",
    )
    model = lib.Sequential([inner, L.GRU(3), L.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def nested_dict_outputs(lib):
    """A nested functional model whose outputs are a dict written out of key order.

    Keras numbers the inner model's output tensors in sorted-key order ("alpha"
    before "zeta"), and so refers to them in the outer model's config.
    """
    L = lib.layers
    inner_in = lib.Input(shape=(4, 3))
    h = L.Bidirectional(L.GRU(2, return_sequences=True))(inner_in)
    outputs = {"zeta": L.Dense(2, name="zeta")(h), "alpha": L.Dense(3, name="alpha")(h)}
    inner = lib.Model(inner_in, outputs, name="inner_dict")
    x = lib.Input(shape=(4, 3))
    out = inner(x)
    joined = L.Concatenate()([out["zeta"], out["alpha"]])
    head = L.Dense(1, name="head")(L.GlobalAveragePooling1D()(out["alpha"]))
    return lib.Model(x, [joined, head])


def conv_lstm(lib):
    """`Bidirectional` over two `ConvLSTM2D` layers on 5-D inputs, then a dense head."""
    L = lib.layers
    model = lib.Sequential(
        [
            lib.Input(shape=(4, 6, 5, 2)),
            L.Bidirectional(L.ConvLSTM2D(3, 3, padding="same", return_sequences=True)),
            L.Bidirectional(
                L.ConvLSTM2D(2, (2, 3), strides=(1, 2), dropout=0.1, recurrent_dropout=0.1),
                merge_mode="ave",
            ),
            L.Flatten(),
            L.Dense(3),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    return model


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
    if builder is masked_merges:
        a = rng.integers(0, 2, size=(4, 6, 3)).astype("float32")  # many all-zero steps
        a[0, 4:] = 0
        b = rng.integers(0, 2, size=(4, 6, 3)).astype("float32")
        b[1, :3] = 1  # masked by Masking(1.0)
        e = rng.integers(0, 5, size=(4, 6)).astype("int32")
        e[2] = 0  # fully masked row
        return [a, b, e]
    if builder is masked_concat_consumers:
        a = rng.integers(0, 2, size=(4, 5, 3)).astype("float32")
        a[0, 3:] = 0
        a[2, 1:] = 0  # one step left (birnn pools a fully masked row to zeros, Keras to NaN)
        return a
    if builder is cells_and_states:
        return rng.random((3, 6, 3), dtype=np.float32)
    if builder is nested_dict_outputs:
        return rng.random((3, 4, 3), dtype=np.float32)
    if builder is nested_sequential:
        return rng.random((3, 5, 3), dtype=np.float32)
    if builder is conv_lstm:
        return rng.random((3, 4, 6, 5, 2), dtype=np.float32)
    if builder is shared_and_nested:
        return [rng.random((3, 5, 3), dtype=np.float32) for _ in range(2)]
    return rng.random((3, 5, 10), dtype=np.float32)


BUILDERS = [
    seed_stacked,
    seed_custom_backward,
    masked_functional,
    stateful,
    kitchen_sink,
    masked_merges,
    masked_concat_consumers,
    cells_and_states,
    shared_and_nested,
    nested_sequential,
    nested_dict_outputs,
    conv_lstm,
]
