"""compile / fit / evaluate / predict: data kinds, weights, regularization, errors."""

import numpy as np
import pytest
import torch

import birnn
from birnn import Input, Model, Sequential, optimizers
from birnn.layers import LSTM, Bidirectional, Dense, Dropout, Embedding, Layer
from tests.keras_oracle import copy_weights, keras


def seed_model_1():
    # The seed docstring's first example, imports swapped to birnn.
    from birnn import Input, Sequential
    from birnn.layers import LSTM, Bidirectional, Dense

    model = Sequential(
        [
            Input(shape=(5, 10)),
            Bidirectional(LSTM(10, return_sequences=True)),
            Bidirectional(LSTM(10)),
            Dense(5, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop")
    return model


def seed_model_2():
    # The seed docstring's second example (custom backward layer).
    from birnn import Input, Sequential
    from birnn.layers import LSTM, Bidirectional, Dense

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
    return model


def test_seed_example_1_compiles_fits_evaluates_predicts():
    model = seed_model_1()
    assert model.count_params() == 4265
    x = np.random.rand(40, 5, 10).astype("float32")
    y = np.eye(5, dtype="float32")[np.random.randint(0, 5, 40)]
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert len(history.history["loss"]) == 2 and history.history["loss"][1] < 2.0
    assert isinstance(model.evaluate(x, y, verbose=0), float)
    pred = model.predict(x, verbose=0)
    assert pred.shape == (40, 5) and np.allclose(pred.sum(1), 1.0, atol=1e-5)


def test_seed_example_2_compiles_fits_evaluates_predicts():
    model = seed_model_2()
    x = np.random.rand(20, 5, 10).astype("float32")
    y = np.random.dirichlet(np.ones(5), size=(20, 5)).astype("float32")
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert len(history.history["loss"]) == 2
    assert np.isfinite(model.evaluate(x, y, verbose=0))
    assert model.predict(x, verbose=0).shape == (20, 5, 5)


def _dense_model(compile_kwargs=None):
    model = Sequential([Input((3,)), Dense(4, activation="relu"), Dense(1)])
    model.compile(**(compile_kwargs or {"optimizer": "adam", "loss": "mse", "metrics": ["mae"]}))
    return model


def _xy(n=24):
    x = np.random.rand(n, 3).astype("float32")
    return x, x.sum(1, keepdims=True)


@pytest.mark.parametrize("kind", ["numpy", "torch", "dataset", "dataloader", "generator"])
def test_fit_accepts_arrays_tensors_datasets_loaders_and_generators(kind):
    x, y = _xy()
    model = _dense_model()
    if kind == "numpy":
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    elif kind == "torch":
        history = model.fit(torch.tensor(x), torch.tensor(y), batch_size=8, epochs=2, verbose=0)
    else:
        dataset = torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y))
        if kind == "dataset":
            history = model.fit(dataset, batch_size=8, epochs=2, verbose=0)
        elif kind == "dataloader":
            loader = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=True)
            history = model.fit(loader, epochs=2, verbose=0, validation_data=loader)
            assert "val_loss" in history.history
        else:

            def batches():
                while True:
                    for i in range(0, 24, 8):
                        yield x[i : i + 8], y[i : i + 8]

            history = model.fit(batches(), steps_per_epoch=3, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert set(history.history) >= {"loss", "mae"}


def test_dict_inputs_by_name_and_multi_output_losses_with_weights():
    a, b = Input((3,), name="a"), Input((2,), name="b")
    h = birnn.layers.Concatenate()([a, b])
    model = Model(
        {"a": a, "b": b}, [Dense(1, name="reg")(h), Dense(3, activation="softmax", name="cls")(h)]
    )
    model.compile(
        "adam",
        loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
        loss_weights={"reg": 0.5, "cls": 2.0},
        metrics={"cls": ["accuracy"], "reg": ["mae"]},
    )
    xa, xb = np.random.rand(16, 3), np.random.rand(16, 2)
    yr, yc = np.random.rand(16, 1), np.random.randint(0, 3, 16)
    history = model.fit({"a": xa, "b": xb}, {"reg": yr, "cls": yc}, epochs=1, verbose=0)
    # Keras 3 sorts the logs' keys
    assert list(history.history) == ["cls_accuracy", "cls_loss", "loss", "reg_loss", "reg_mae"]
    logs = model.evaluate({"a": xa, "b": xb}, [yr, yc], verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(0.5 * logs["reg_loss"] + 2.0 * logs["cls_loss"], rel=1e-5)
    flat = model.evaluate({"a": xa, "b": xb}, [yr, yc], verbose=0)
    # Keras's order: loss, per-output losses in output order, then metrics by name
    order = ["loss", "reg_loss", "cls_loss", "cls_accuracy", "reg_mae"]
    assert flat == [logs[k] for k in order]


def test_validation_split_takes_the_tail_and_validation_data_is_used():
    x, y = _xy(20)
    model = _dense_model()
    history = model.fit(x, y, validation_split=0.25, epochs=1, verbose=0, shuffle=False)
    val = model.evaluate(x[15:], y[15:], verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(val[0], rel=1e-5)
    history = model.fit(x, y, validation_data=(x[:4], y[:4]), epochs=1, verbose=0)
    assert "val_mae" in history.history


def test_sample_weight_and_class_weight_scale_the_loss():
    x = np.random.rand(8, 3).astype("float32")
    y = np.random.randint(0, 2, (8, 1)).astype("float32")
    model = Sequential([Input((3,)), Dense(1, activation="sigmoid")])
    model.compile(optimizers.SGD(0.0), "binary_crossentropy", weighted_metrics=["accuracy"])
    base = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    weighted = model.evaluate(x, y, sample_weight=np.full(8, 2.0), verbose=0, return_dict=True)
    assert weighted["loss"] == pytest.approx(2 * base, rel=1e-5)
    history = model.fit(x, y, class_weight={0: 3.0, 1: 3.0}, epochs=1, verbose=0, batch_size=8)
    assert history.history["loss"][0] == pytest.approx(3 * base, rel=1e-5)


def test_regularization_losses_are_added_and_constraints_applied():
    x, y = _xy(8)
    model = Sequential(
        [
            Input((3,)),
            Dense(
                1,
                kernel_regularizer=birnn.regularizers.L2(0.5),
                kernel_constraint=birnn.constraints.NonNeg(),
            ),
        ]
    )
    model.compile(optimizers.SGD(0.0), "mse")
    plain = float(((model.predict(x, verbose=0) - y) ** 2).mean())
    kernel = model.layers[0].kernel.detach().numpy()
    assert model.evaluate(x, y, verbose=0) == pytest.approx(
        plain + 0.5 * (kernel**2).sum(), rel=1e-5
    )
    model.compile(optimizers.SGD(10.0), "mse")
    model.fit(x, -10 * y, epochs=2, verbose=0, batch_size=8)
    assert (model.layers[0].kernel.detach().numpy() >= 0).all()


def test_training_flag_reaches_dropout_only_during_fit():
    seen = []

    class Probe(Layer):
        def call(self, x, training=None):
            seen.append(training)
            return x

    model = Sequential([Input((4,)), Dropout(0.5), Probe(), Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.ones((4, 4)), np.ones((4, 1))
    model.fit(x, y, epochs=1, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert seen[1:] == [True, False, False]


def test_recurrent_dropout_active_in_training_only():
    model = Sequential([Input((6, 3)), LSTM(4, dropout=0.5, recurrent_dropout=0.5)])
    x = torch.ones(2, 6, 3)
    np.testing.assert_allclose(model(x).detach(), model(x).detach())
    assert not torch.allclose(model(x, training=True), model(x, training=True))


def test_on_batch_methods_and_predict_batching():
    x, y = _xy(10)
    model = _dense_model()
    loss, mae = model.train_on_batch(x, y)
    assert loss > 0 and mae > 0
    assert set(model.test_on_batch(x, y, return_dict=True)) == {"loss", "mae"}
    np.testing.assert_allclose(
        model.predict_on_batch(x), model.predict(x, batch_size=3, verbose=0), atol=1e-6
    )


def test_any_torch_optimizer_instance_and_keras_optimizer_objects_work():
    x, y = _xy(16)
    model = Sequential([Input((3,)), Dense(1)])
    model.compile(torch.optim.SGD(model.parameters(), lr=0.1), "mse")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before
    model.compile(optimizers.Adam(learning_rate=0.05), birnn.losses.Huber(delta=0.5))
    model.fit(x, y, epochs=1, verbose=0)
    assert isinstance(model.optimizer, torch.optim.Adam) and model.optimizer.iterations == 1


def test_masked_tagger_trains_with_sequence_targets():
    model = Sequential(
        [
            Input((6,), dtype="int32"),
            Embedding(12, 4, mask_zero=True),
            Bidirectional(LSTM(3, return_sequences=True)),
            Dense(2, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.randint(1, 12, (8, 6))
    x[:, 4:] = 0
    y = np.random.randint(0, 2, (8, 6))
    history = model.fit(x, y, epochs=1, verbose=0)
    assert 0.0 <= history.history["accuracy"][0] <= 1.0


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m, x, y: m.fit(x, y[:-1], verbose=0), ValueError, r"x sizes: 12; y sizes: 11"),
        (lambda m, x, y: m.fit(x[:, :2], y, verbose=0), ValueError, r"expected shape \(None, 3\)"),
        (lambda m, x, y: m.fit(x, [y, y], verbose=0), ValueError, "1 output"),
        (lambda m, x, y: m.fit(iter([(x, y)]), y, verbose=0), ValueError, "`y` must be None"),
        (
            lambda m, x, y: m.fit(x, y, validation_split=1.5, verbose=0),
            ValueError,
            "in \\(0, 1\\)",
        ),
        (lambda m, x, y: m.fit(x, y, verbose=7), ValueError, "`verbose`"),
        (lambda m, x, y: m.fit(object(), verbose=0), TypeError, "Unrecognized data type"),
    ],
)
def test_bad_data_errors_name_what_is_wrong(call, error, match):
    model = _dense_model()
    x, y = _xy(12)
    with pytest.raises(error, match=match):
        call(model, x, y)


def test_unknown_names_and_fit_before_compile_are_clear_errors():
    model = Sequential([Input((3,)), Dense(1)])
    with pytest.raises(RuntimeError, match=r"must call `compile\(\)`.*`fit\(\)`"):
        model.fit(np.ones((2, 3)), np.ones((2, 1)))
    with pytest.raises(RuntimeError, match="evaluate"):
        model.evaluate(np.ones((2, 3)), np.ones((2, 1)))
    with pytest.raises(ValueError, match="unknown loss 'mse2'"):
        model.compile("adam", "mse2")
    with pytest.raises(ValueError, match="optimizer identifier: 'adamm'"):
        model.compile("adamm", "mse")
    with pytest.raises(ValueError, match="unknown metric 'acuracy'"):
        model.compile("adam", "mse", metrics=["acuracy"])
    with pytest.raises(ValueError, match="2 entries but the model has 1"):
        model.compile("adam", ["mse", "mae"])
        model.fit(np.ones((2, 3)), np.ones((2, 1)), verbose=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_model_to_cuda_moves_inputs_to_the_model_device():
    model = seed_model_1().to("cuda")
    x = np.random.rand(8, 5, 10).astype("float32")
    y = np.eye(5, dtype="float32")[np.random.randint(0, 5, 8)]
    model.fit(x, y, epochs=1, verbose=0)
    assert model.predict(x, verbose=0).shape == (8, 5)
    assert next(model.parameters()).device.type == "cuda"


def _two_output(lib):
    a = lib.Input((3,), name="a")
    return lib.Model(
        a,
        [
            lib.layers.Dense(1, name="zed")(a),
            lib.layers.Dense(3, activation="softmax", name="alpha")(a),
        ],
    )


@pytest.mark.parametrize(
    "compile_kwargs",
    [
        {"metrics": ["mae", "accuracy"]},  # a flat list: one metric per output
        {"metrics": {"alpha": ["accuracy", "mse"], "zed": "mae"}},
        {"metrics": [["mse", "mae"], ["accuracy"]]},
        {"metrics": [["mae"], ["mae"]], "weighted_metrics": [["mae"], ["mse"]]},
        {"loss": ["mse", None]},
    ],
)
def test_multi_output_metrics_names_and_order_match_keras(compile_kwargs):
    km, bm = _two_output(keras), _two_output(birnn)
    copy_weights(km, bm)
    kwargs = {"loss": ["mse", "categorical_crossentropy"], **compile_kwargs}
    km.compile(keras.optimizers.SGD(0.1), **kwargs)
    bm.compile(optimizers.SGD(0.1), **kwargs)
    rng = np.random.default_rng(9)
    x = rng.random((16, 3)).astype("float32")
    y = [rng.random((16, 1)), np.eye(3)[rng.integers(0, 3, 16)]]
    kh = km.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0).history
    bh = bm.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0).history
    assert list(bh) == list(kh)
    for key in kh:
        np.testing.assert_allclose(bh[key], kh[key], atol=1e-5, err_msg=key)
    k_list, b_list = km.evaluate(x, y, verbose=0), bm.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(b_list, k_list, atol=1e-5)


def test_multi_output_metrics_list_of_the_wrong_length_is_a_clear_error():
    model = _two_output(birnn)
    with pytest.raises(ValueError, match=r"2 outputs \['zed', 'alpha'\].*list of 3"):
        model.compile("sgd", "mse", metrics=["mae", "mse", "accuracy"])
    with pytest.raises(ValueError, match="key 'beta' that names no model output"):
        model.compile("sgd", {"zed": "mse", "beta": "mse"})


def test_weighted_metric_with_the_name_of_a_metric_gets_a_weighted_prefix():
    model = _dense_model({"loss": "mse", "metrics": ["mae"], "weighted_metrics": ["mae", "mse"]})
    x, y = _xy(8)
    logs = model.evaluate(x, y, sample_weight=np.arange(8.0), verbose=0, return_dict=True)
    assert list(logs) == ["loss", "mae", "mse", "weighted_mae"]  # sorted, like Keras
    assert logs["mae"] != pytest.approx(logs["weighted_mae"])
    flat = model.evaluate(x, y, sample_weight=np.arange(8.0), verbose=0)
    assert flat == [logs[k] for k in ("loss", "mae", "weighted_mae", "mse")]  # compile order


FIT_CASES = [
    {"class_weight": {0: 1.0, 1: 2.0, 2: 0.5}},
    {"class_weight": {0: 1.0, 1: 2.0, 2: 0.5}, "validation_split": 0.2},
    {"sample_weight": "sw", "validation_split": 0.2},
    {"steps_per_epoch": 2, "epochs": 4},  # continues through the data like Keras
    {"steps_per_epoch": 3, "epochs": 3},
    {"initial_epoch": 1, "epochs": 3, "validation_data": "val", "validation_freq": 2},
    {"epochs": 2, "validation_data": "val_sw", "validation_batch_size": 2, "validation_steps": 2},
]


@pytest.mark.parametrize("case", FIT_CASES)
def test_fit_arguments_give_keras_histories(case):
    rng = np.random.default_rng(10)
    x = rng.random((20, 4)).astype("float32")
    y = rng.integers(0, 3, 20)
    sw = rng.random(20).astype("float32")
    values = {"sw": sw, "val": (x[:5], y[:5]), "val_sw": (x[:5], y[:5], sw[:5])}
    kwargs = {"batch_size": 8, "shuffle": False, "verbose": 0, "epochs": 1}
    kwargs.update({k: values.get(v, v) if isinstance(v, str) else v for k, v in case.items()})

    def build(lib):
        return lib.Sequential([lib.Input((4,)), lib.layers.Dense(3, activation="softmax")])

    km, bm = build(keras), build(birnn)
    copy_weights(km, bm)
    compile_kwargs = {
        "loss": "sparse_categorical_crossentropy",
        "metrics": ["accuracy"],
        "weighted_metrics": ["accuracy"],
    }
    km.compile(keras.optimizers.SGD(0.5), **compile_kwargs)
    bm.compile(optimizers.SGD(0.5), **compile_kwargs)
    kh = km.fit(x, y, **kwargs).history
    bh = bm.fit(x, y, **kwargs).history
    assert list(bh) == list(kh)
    for key in kh:
        np.testing.assert_allclose(bh[key], kh[key], atol=1e-5, err_msg=key)


def test_recurrent_dropout_is_applied_by_fit_and_not_by_evaluate():
    model = Sequential(
        [Input((6, 3)), Bidirectional(LSTM(4, dropout=0.5, recurrent_dropout=0.5)), Dense(1)]
    )
    model.compile(optimizers.SGD(0.0), "mse")
    x, y = np.random.rand(8, 6, 3), np.random.rand(8, 1)
    assert model.test_on_batch(x, y) == model.test_on_batch(x, y)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(model.test_on_batch(x, y))
    train = [model.train_on_batch(x, y) for _ in range(2)]
    assert train[0] != train[1] and model.test_on_batch(x, y) not in train


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: m.train_on_batch(np.ones((2, 3)), np.ones((2, 1))), RuntimeError, "compile"),
        (lambda m: m.test_on_batch(np.ones((2, 3)), np.ones((2, 1))), RuntimeError, "compile"),
    ],
)
def test_on_batch_methods_before_compile_are_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(Sequential([Input((3,)), Dense(1)]))


def test_bad_inputs_for_a_multi_input_model_name_what_is_wrong():
    a, b = Input((3,), name="a"), Input((2,), name="b")
    model = Model({"a": a, "b": b}, Dense(1)(birnn.layers.Concatenate()([a, b])))
    model.compile("sgd", "mse")
    xa, xb, y = np.ones((4, 3)), np.ones((4, 2)), np.ones((4, 1))
    with pytest.raises(ValueError, match=r"missing \['b'\]"):
        model.fit({"a": xa}, y, verbose=0)
    with pytest.raises(ValueError, match=r"Input 1 \('b'\).*expected shape \(None, 2\)"):
        model.fit({"a": xa, "b": np.ones((4, 5))}, y, verbose=0)
    with pytest.raises(ValueError, match=r"x sizes: 4, 3; y sizes: 4"):
        model.fit({"a": xa, "b": xb[:3]}, y, verbose=0)
    with pytest.raises(ValueError, match="expects 2 inputs"):
        model.predict([xa, xb, xb], verbose=0)
    with pytest.raises(ValueError, match="cannot be specified at the same time"):
        _dense_model().fit(xa, y, class_weight={0: 1.0}, sample_weight=np.ones(4), verbose=0)
    with pytest.raises(ValueError, match="has a loss but no target"):
        model.fit({"a": xa, "b": xb}, verbose=0)


def test_subclassed_model_with_several_outputs_trains_with_dict_targets():
    class TwoHeads(Model):
        def __init__(self):
            super().__init__()
            self.body = Bidirectional(LSTM(3))
            self.p, self.q = Dense(1), Dense(2, activation="softmax")

        def call(self, x, training=None):
            h = self.body(x)
            return {"p": self.p(h), "q": self.q(h)}

    model = TwoHeads()
    model.compile(
        "adam", {"p": "mse", "q": "sparse_categorical_crossentropy"}, metrics={"q": ["accuracy"]}
    )
    x = np.random.rand(8, 4, 2)
    history = model.fit(x, {"p": np.zeros((8, 1)), "q": np.ones(8)}, epochs=1, verbose=0)
    assert list(history.history) == ["loss", "p_loss", "q_accuracy", "q_loss"]
    assert set(model.predict(x, verbose=0)) == {"p", "q"}
