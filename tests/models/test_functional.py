"""The functional API: graph building, masks, shared layers, several outputs, configs."""

import json

import numpy as np
import pytest
import torch

import birnn
from birnn import Input, Model
from birnn.keras_tensor import KerasTensor
from birnn.layers import (
    LSTM,
    Bidirectional,
    Concatenate,
    Dense,
    Dropout,
    Embedding,
    InputLayer,
    Layer,
    Masking,
)
from birnn.saving.serialization import deserialize_keras_object, serialize_keras_object
from tests.keras_oracle import copy_weights, keras


class CountingDense(Dense):
    calls = 0

    def call(self, inputs):
        CountingDense.calls += 1
        return super().call(inputs)


def test_input_returns_a_symbolic_tensor_and_layer_calls_infer_shapes_without_running():
    x = Input(shape=(5, 3), name="seq")
    assert isinstance(x, KerasTensor) and x.shape == (None, 5, 3)
    CountingDense.calls = 0
    y = CountingDense(4)(x)
    assert isinstance(y, KerasTensor) and y.shape == (None, 5, 4)
    assert CountingDense.calls == 0
    z = Bidirectional(LSTM(2, return_sequences=True))(y)
    assert z.shape == (None, 5, 4)
    assert Input(batch_shape=(8, None, 2), dtype="int32").shape == (8, None, 2)


def test_input_layer_config_matches_keras():
    ours = InputLayer(shape=(5, 3), name="seq").get_config()
    theirs = keras.layers.InputLayer(shape=(5, 3), name="seq").get_config()
    assert ours == {**theirs, "batch_shape": list(theirs["batch_shape"])}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "shape"),
        ({"shape": (3,), "batch_shape": (None, 3)}, "not both"),
        ({"shape": (-1,)}, "non-negative"),
        ({"shape": (3,), "sparse": True}, "sparse"),
    ],
)
def test_input_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Input(**kwargs)


def test_multi_input_multi_output_with_lists_and_dicts():
    a, b = Input((4,), name="a"), Input((2,), name="b")
    merged = Concatenate()([Dense(3)(a), b])
    out1, out2 = Dense(1, name="out1")(merged), Dense(2, name="out2")(merged)
    model = Model([a, b], [out1, out2])
    xa, xb = np.random.rand(6, 4), np.random.rand(6, 2)
    r1, r2 = model.predict([xa, xb], verbose=0)
    assert r1.shape == (6, 1) and r2.shape == (6, 2)
    by_name = model.predict({"a": xa, "b": xb}, verbose=0)
    np.testing.assert_allclose(by_name[0], r1, atol=1e-6)
    dict_model = Model({"a": a, "b": b}, {"x": out1, "y": out2})
    result = dict_model.predict({"a": xa, "b": xb}, verbose=0)
    assert set(result) == {"x", "y"}
    np.testing.assert_allclose(result["y"], r2, atol=1e-6)
    assert model.output_names == ["out1", "out2"] and model.input_names == ["a", "b"]
    eager = model([torch.tensor(xa, dtype=torch.float32), torch.tensor(xb, dtype=torch.float32)])
    assert isinstance(eager, list) and eager[0].shape == (6, 1)


def test_single_element_list_output_is_unwrapped_like_keras():
    x = Input((3,))
    model = Model([x], [Dense(2)(x)])
    assert isinstance(model.predict(np.ones((2, 3)), verbose=0), np.ndarray)


def test_shared_layers_reuse_weights_and_appear_once():
    shared = Dense(3, name="shared")
    a, b = Input((4,)), Input((4,))
    out = Concatenate()([shared(a), shared(b)])
    model = Model([a, b], out)
    assert [layer.name for layer in model.layers].count("shared") == 1
    assert len(model.weights) == 2
    x = np.random.rand(2, 4).astype("float32")
    y = model.predict([x, x], verbose=0)
    np.testing.assert_allclose(y[:, :3], y[:, 3:], atol=1e-6)


def test_layer_order_and_weights_match_keras_for_a_branching_graph():
    def build(lib):
        a = lib.Input((6,), name="a")
        b = lib.Input((3,), name="b")
        x = lib.layers.Embedding(10, 4, mask_zero=True)(a)
        seq, h1, c1, h2, c2 = lib.layers.Bidirectional(lib.layers.LSTM(3, return_state=True))(x)
        y = lib.layers.Concatenate()([seq, b])
        return lib.Model(
            [a, b], [lib.layers.Dense(2, name="o1")(y), lib.layers.Dense(1, name="o2")(h2)]
        )

    km, bm = build(keras), build(birnn)
    keras_types = [type(la).__name__ for la in km.layers if type(la).__name__ != "NotEqual"]
    assert [type(la).__name__ for la in bm.layers] == keras_types
    assert [w.shape for w in bm.get_weights()] == [w.shape for w in km.get_weights()]
    copy_weights(km, bm)
    xa = np.random.randint(0, 10, (5, 6))
    xa[:, 4:] = 0
    xb = np.random.rand(5, 3).astype("float32")
    for k, b in zip(km.predict([xa, xb], verbose=0), bm.predict([xa, xb], verbose=0)):
        np.testing.assert_allclose(b, k, atol=1e-5)


def test_bidirectional_return_state_gives_five_outputs_with_merge_mode_none_pairs():
    x = Input((4, 2))
    outs = Bidirectional(LSTM(3, return_state=True))(x)
    assert isinstance(outs, tuple) and len(outs) == 5
    assert [o.shape for o in outs] == [(None, 6)] + [(None, 3)] * 4
    fwd, bwd = Bidirectional(LSTM(3), merge_mode=None)(x)
    model = Model(x, [fwd, bwd])
    f, b = model.predict(np.random.rand(2, 4, 2), verbose=0)
    assert f.shape == b.shape == (2, 3)


def test_symbolic_masks_are_marked_and_runtime_masks_flow_through_the_graph():
    tokens = Input((None,), dtype="int32")
    emb = Embedding(7, 3, mask_zero=True)(tokens)
    assert emb._keras_mask is not None and emb._keras_mask.shape == (None, None)
    seq = LSTM(2, return_sequences=True)(emb)
    assert seq._keras_mask is not None
    last = LSTM(2)(seq)
    assert last._keras_mask is None
    model = Model(tokens, [seq, last])
    x = np.array([[1, 2, 0, 0, 0], [3, 4, 5, 6, 1]])
    seq_out, last_out = model(torch.tensor(x))
    np.testing.assert_array_equal(seq_out._keras_mask.numpy(), x != 0)
    # masked steps keep the state: the padded row equals its 2-step prefix alone
    _, prefix_last = model(torch.tensor([[1, 2]]))
    np.testing.assert_allclose(
        last_out[0].detach().numpy(), prefix_last[0].detach().numpy(), atol=1e-6
    )

    features = Input((4, 2))
    masked = Masking(0.0)(features)
    assert masked._keras_mask is not None and masked._keras_mask.shape == (None, 4)


def test_explicit_mask_argument_from_a_mask_marker():
    x = Input((4, 2))
    masked = Masking()(x)
    out = LSTM(3)(x, mask=masked._keras_mask)
    model = Model(x, out)
    data = np.random.rand(2, 4, 2).astype("float32")
    data[0, 2:] = 0
    reference = LSTM(3)
    reference(torch.zeros(1, 4, 2))
    reference.set_weights(model.layers[-1].get_weights())
    expected = reference(torch.tensor(data[:1, :2])).detach().numpy()
    np.testing.assert_allclose(model.predict(data, verbose=0)[:1], expected, atol=1e-6)


def test_functional_model_is_a_layer_inside_another_model():
    inner_in = Input((3,))
    inner = Model(inner_in, Dense(2)(inner_in), name="inner")
    outer_in = Input((3,))
    outer = Model(outer_in, Dense(1)(inner(outer_in)))
    assert outer.predict(np.ones((4, 3)), verbose=0).shape == (4, 1)
    assert outer.count_params() == 8 + 3


def test_training_flag_reaches_dropout_only_in_training():
    x = Input((100,))
    model = Model(x, Dropout(0.5)(x))
    data = torch.ones(2, 100)
    assert torch.equal(model(data), data)
    assert (model(data, training=True) == 0).any()


def test_graph_errors_name_the_problem():
    a, b = Input((3,), name="a"), Input((3,), name="b")
    out = Concatenate()([a, b])
    with pytest.raises(ValueError, match="Graph disconnected"):
        Model(a, out)
    with pytest.raises(ValueError, match="KerasTensor"):
        Model(a, np.ones(3))
    model = Model(a, Dense(2)(a))
    with pytest.raises(ValueError, match=r"expected shape \(None, 3\).*\(4, 5\)"):
        model.predict(np.ones((4, 5)), verbose=0)
    with pytest.raises(ValueError, match="expects 2 inputs"):
        Model([a, b], out)(np.ones((2, 3)))
    with pytest.raises(ValueError, match="incompatible"):
        Dense(2)(Input((3,)))  # fine
        LSTM(2)(Input((3,)))


def test_get_layer_by_name_and_index():
    x = Input((3,), name="x")
    model = Model(x, Dense(2, name="d")(x))
    assert model.get_layer("d") is model.layers[1]
    assert model.get_layer(index=0).name == "x"
    with pytest.raises(ValueError, match="No such layer: nope"):
        model.get_layer("nope")
    with pytest.raises(ValueError, match="exactly one"):
        model.get_layer()


def test_subclassed_model_with_custom_call_trains():
    class Tagger(Model):
        def __init__(self):
            super().__init__(name="tagger")
            self.embed = Embedding(10, 4, mask_zero=True)
            self.rnn = Bidirectional(LSTM(3, return_sequences=True))
            self.head = Dense(2, activation="softmax")

        def call(self, tokens, training=None):
            return self.head(self.rnn(self.embed(tokens)))

    model = Tagger()
    x = np.random.randint(1, 10, (8, 5))
    y = np.random.randint(0, 2, (8, 5))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    assert [la.name for la in model.layers][-1] == model.head.name
    assert model.predict(x, verbose=0).shape == (8, 5, 2)


def test_functional_config_round_trips_and_crosses_to_keras_both_ways():
    a = Input((6,), name="tokens")
    x = Embedding(10, 4, mask_zero=True)(a)
    x = Bidirectional(LSTM(3))(x)
    model = Model(a, Dense(2, activation="softmax")(x), name="clf")
    model.compile("rmsprop", "categorical_crossentropy", metrics=["accuracy"])
    data = np.random.randint(0, 10, (4, 6))
    data[:, 4:] = 0
    config = json.loads(json.dumps(serialize_keras_object(model)))
    assert config["class_name"] == "Functional"
    keras_model = keras.saving.deserialize_keras_object(config)
    copy_weights(model, keras_model)
    expected = model.predict(data, verbose=0)
    np.testing.assert_allclose(keras_model.predict(data, verbose=0), expected, atol=1e-5)
    keras_config = json.loads(json.dumps(keras.saving.serialize_keras_object(keras_model)))
    assert any(la["class_name"] == "NotEqual" for la in keras_config["config"]["layers"])
    back = deserialize_keras_object(keras_config)
    assert isinstance(back, Model) and back.compiled
    copy_weights(model, back)
    np.testing.assert_allclose(back.predict(data, verbose=0), expected, atol=1e-6)
    again = Model.from_config(model.get_config())
    assert [la.name for la in again.layers] == [la.name for la in model.layers]


def test_get_config_matches_keras_structure_for_shared_and_multi_output():
    def build(lib):
        a = lib.Input((3,), name="a")
        shared = lib.layers.Dense(3, name="shared")
        h = shared(a)
        h2 = shared(h)
        return lib.Model(a, [lib.layers.Dense(1, name="o")(h2), h], name="m")

    ours, theirs = build(birnn).get_config(), build(keras).get_config()
    assert ours["input_layers"] == theirs["input_layers"]
    assert ours["output_layers"] == [list(x) for x in theirs["output_layers"]]
    for ol, tl in zip(ours["layers"], theirs["layers"]):
        assert ol["name"] == tl["name"]
        assert json.loads(json.dumps(ol["inbound_nodes"])) == json.loads(
            json.dumps(tl["inbound_nodes"])
        )


def test_custom_layer_without_compute_output_shape_still_builds_a_graph():
    class Twice(Layer):
        def call(self, x):
            return 2 * x

    x = Input((3,))
    y = Twice()(x)
    assert y.shape == (None, 3)
    model = Model(x, y)
    np.testing.assert_allclose(model.predict(np.ones((2, 3)), verbose=0), 2.0)


def test_nested_functional_model_called_twice_serializes_like_keras():
    def build(lib):
        ii = lib.Input((3,))
        inner = lib.Model(ii, lib.layers.Dense(3)(ii), name="inner")
        oi = lib.Input((3,))
        h = inner(oi)
        h2 = inner(lib.layers.Dense(3)(h))
        return lib.Model(oi, [lib.layers.Dense(1)(h2), h], name="outer")

    ours, theirs = build(birnn), build(keras)

    def refs(config):
        return [
            [n["args"][0]["config"]["keras_history"][1:] for n in layer["inbound_nodes"]]
            for layer in config["config"]["layers"]
        ]

    ours_config = json.loads(json.dumps(serialize_keras_object(ours)))
    theirs_config = json.loads(json.dumps(keras.saving.serialize_keras_object(theirs)))
    assert refs(ours_config) == refs(theirs_config)
    assert [x[1:] for x in ours_config["config"]["output_layers"]] == [
        x[1:] for x in theirs_config["config"]["output_layers"]
    ]
    x = np.random.rand(2, 3).astype("float32")
    from_ours = keras.saving.deserialize_keras_object(ours_config)
    copy_weights(ours, from_ours)
    from_theirs = deserialize_keras_object(theirs_config)
    copy_weights(theirs, from_theirs)
    for a, b in zip(from_ours.predict(x, verbose=0), ours.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for a, b in zip(from_theirs.predict(x, verbose=0), theirs.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_encoder_decoder_with_initial_state_from_bidirectional_states():
    def build(lib):
        enc_in = lib.Input((6, 3), name="enc")
        dec_in = lib.Input((4, 2), name="dec")
        _, fh, fc, bh, bc = lib.layers.Bidirectional(lib.layers.LSTM(5, return_state=True))(enc_in)
        h = lib.layers.Concatenate()([fh, bh])
        c = lib.layers.Concatenate()([fc, bc])
        seq = lib.layers.LSTM(10, return_sequences=True)(dec_in, initial_state=[h, c])
        return lib.Model([enc_in, dec_in], lib.layers.Dense(2)(seq))

    km, bm = build(keras), build(birnn)
    copy_weights(km, bm)
    xe = np.random.rand(3, 6, 3).astype("float32")
    xd = np.random.rand(3, 4, 2).astype("float32")
    np.testing.assert_allclose(
        bm.predict([xe, xd], verbose=0), km.predict([xe, xd], verbose=0), atol=1e-5
    )
    again = Model.from_config(json.loads(json.dumps(bm.get_config())))
    copy_weights(bm, again)
    np.testing.assert_allclose(
        again.predict([xe, xd], verbose=0), bm.predict([xe, xd], verbose=0), atol=1e-6
    )


def _nested_model(lib):
    a, b, c = lib.Input((4,), name="a"), lib.Input((4,), name="b"), lib.Input((2,), name="c")
    shared = lib.layers.Dense(3, name="shared")
    o1, o2 = shared(a), shared(b)
    o3 = lib.layers.Concatenate(name="cat")([o1, c])
    return lib.Model(inputs=[a, [b, c]], outputs={"x": o1, "y": [o2, o3]})


def test_nested_inputs_and_outputs_predict_and_train_like_keras():
    km, bm = _nested_model(keras), _nested_model(birnn)
    copy_weights(km, bm)
    rng = np.random.default_rng(8)
    x = [rng.random((5, 4)), [rng.random((5, 4)), rng.random((5, 2))]]
    pred = bm.predict(x, verbose=0)
    assert isinstance(pred, dict) and isinstance(pred["y"], list)
    for k, b in zip(keras.tree.flatten(km.predict(x, verbose=0)), keras.tree.flatten(pred)):
        np.testing.assert_allclose(b, k, atol=1e-6)
    y = {"x": np.zeros((5, 3)), "y": [np.zeros((5, 3)), np.ones((5, 5))]}
    # a dict of losses (and weights) by top-level key, nested like the outputs
    for model, opt in ((km, keras.optimizers.SGD(0.1)), (bm, birnn.optimizers.SGD(0.1))):
        model.compile(opt, {"x": "mse", "y": ["mae", "mse"]}, loss_weights={"x": 1, "y": [2, 0.5]})
    kh = km.fit(x, y, epochs=2, batch_size=5, verbose=0).history
    bh = bm.fit(x, y, epochs=2, batch_size=5, verbose=0).history
    assert list(bh) == list(kh) == ["loss", "x_loss", "y/cat_loss", "y/shared_loss"]
    for key in kh:
        np.testing.assert_allclose(bh[key], kh[key], atol=1e-5, err_msg=key)


def test_dict_inputs_and_outputs_are_ordered_by_key_like_keras():
    def build(lib):
        q, p = lib.Input((4,), name="q"), lib.Input((5,), name="p")
        y, x = lib.layers.Dense(3, name="yy")(q), lib.layers.Dense(2, name="xx")(p)
        return lib.Model(inputs={"q": q, "p": p}, outputs={"y": y, "x": x})

    km, bm = build(keras), build(birnn)
    assert [la.name for la in bm.layers] == [la.name for la in km.layers] == ["p", "q", "xx", "yy"]
    assert [w.shape for w in bm.get_weights()] == [w.shape for w in km.get_weights()]
    assert [t.name for t in km.inputs] == bm.input_names == ["p", "q"]
    copy_weights(km, bm)
    x = {"p": np.random.rand(6, 5), "q": np.random.rand(6, 4)}
    y = {"x": np.zeros((6, 2)), "y": np.ones((6, 3))}
    for model in (km, bm):
        model.compile("sgd", "mse", metrics={"x": ["mae"], "y": ["mse"]})
    k = km.evaluate(x, y, verbose=0)
    b = bm.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(b, k, atol=1e-6)
    assert list(bm.evaluate(x, y, verbose=0, return_dict=True)) == [
        "loss",
        "x_loss",
        "x_mae",
        "y_loss",
        "y_mse",
    ]


def test_bidirectional_return_state_model_trains_with_a_loss_on_some_outputs():
    def build(lib):
        i = lib.Input((5, 3))
        out, fh, fc, bh, bc = lib.layers.Bidirectional(lib.layers.LSTM(4, return_state=True))(i)
        return lib.Model(i, [out, fh, bc])

    km, bm = build(keras), build(birnn)
    copy_weights(km, bm)
    x = np.random.rand(4, 5, 3).astype("float32")
    y = [np.zeros((4, 8)), np.zeros((4, 4)), np.ones((4, 4))]
    km.compile(keras.optimizers.SGD(0.1), ["mse", None, "mae"])
    bm.compile(birnn.optimizers.SGD(0.1), ["mse", None, "mae"])
    k_loss = km.fit(x, y, epochs=2, verbose=0, shuffle=False).history["loss"]
    history = bm.fit(x, y, epochs=2, verbose=0, shuffle=False).history
    np.testing.assert_allclose(history["loss"], k_loss, atol=1e-5)
    # per-output losses only for the outputs that have one
    name = bm.output_names
    assert sorted(history) == sorted(["loss", f"{name[0]}_loss", f"{name[2]}_loss"])


def test_shared_masked_layers_across_inputs_give_keras_losses_and_sgd_step():
    # Independent of the tests run before: both libraries restart automatic layer names
    # (the outputs are named, so the loss and metric keys do not depend on them anyway).
    keras.backend.clear_session()
    birnn.backend.reset_uids()

    def build(lib):
        a = lib.Input((6,), dtype="int32", name="a")
        b = lib.Input((6,), dtype="int32", name="b")
        emb = lib.layers.Embedding(10, 4, mask_zero=True)
        rnn = lib.layers.Bidirectional(lib.layers.GRU(3, return_sequences=True))
        summed = lib.layers.Add()([rnn(emb(a)), rnn(emb(b))])
        tags = lib.layers.TimeDistributed(lib.layers.Dense(2, activation="softmax"), name="tags")(
            summed
        )
        pooled = lib.layers.GlobalAveragePooling1D()(summed)
        return lib.Model([a, b], [tags, lib.layers.Dense(1, name="score")(pooled)])

    km, bm = build(keras), build(birnn)
    copy_weights(km, bm)
    rng = np.random.default_rng(12)
    xa, xb = rng.integers(0, 10, (5, 6)), rng.integers(0, 10, (5, 6))
    xa[:, 4:] = 0  # right padding
    xb[:, :2] = 0  # left padding
    xb[1] = 0  # a fully masked row
    y = [rng.integers(0, 2, (5, 6)), rng.random((5, 1))]
    for k, b in zip(km.predict([xa, xb], verbose=0), bm.predict([xa, xb], verbose=0)):
        np.testing.assert_allclose(b, k, atol=1e-5)
    compile_kwargs = {
        "loss": ["sparse_categorical_crossentropy", "mse"],
        "metrics": [["accuracy"], ["mae"]],
    }
    km.compile(keras.optimizers.SGD(0.1), **compile_kwargs)
    bm.compile(birnn.optimizers.SGD(0.1), **compile_kwargs)
    k_logs = km.evaluate([xa, xb], y, verbose=0, return_dict=True)
    b_logs = bm.evaluate([xa, xb], y, verbose=0, return_dict=True)
    assert list(b_logs) == list(k_logs)
    for key in k_logs:
        assert b_logs[key] == pytest.approx(k_logs[key], abs=1e-5), key
    km.train_on_batch([xa, xb], y)
    bm.train_on_batch([xa, xb], y)
    for kw, bw in zip(km.get_weights(), bm.get_weights()):
        np.testing.assert_allclose(bw, kw, atol=1e-4)
