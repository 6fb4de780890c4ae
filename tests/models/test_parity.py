"""Models, losses, metrics and optimizers against Keras 3 (the oracle)."""

import numpy as np
import pytest
import torch

import birnn
from birnn import losses, metrics, optimizers
from tests.keras_oracle import copy_weights, keras


def _classifier(lib, vocab=12, steps=6):
    inp = lib.Input(shape=(steps,), dtype="int32", name="tokens")
    x = lib.layers.Embedding(vocab, 5, mask_zero=True)(inp)
    x = lib.layers.Bidirectional(lib.layers.LSTM(4))(x)
    out = lib.layers.Dense(3, activation="softmax")(x)
    return lib.Model(inp, out)


def _data(n=10, vocab=12, steps=6):
    rng = np.random.default_rng(1)
    x = rng.integers(1, vocab, size=(n, steps)).astype("int32")
    lengths = rng.integers(1, steps + 1, size=n)
    for i, length in enumerate(lengths):
        x[i, length:] = 0  # right padding, masked by Embedding(mask_zero=True)
    x[0, :2] = 0  # left padding too
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, size=n)]
    return x, y


def test_bidirectional_lstm_classifier_matches_keras_predict_evaluate_and_sgd_step():
    x, y = _data()
    km = _classifier(keras)
    bm = _classifier(birnn)
    copy_weights(km, bm)
    np.testing.assert_allclose(
        bm.predict(x, verbose=0), km.predict(x, verbose=0), atol=1e-5, rtol=0
    )
    km.compile(optimizer=keras.optimizers.SGD(0.5), loss="categorical_crossentropy")
    bm.compile(optimizer=optimizers.SGD(0.5), loss="categorical_crossentropy")
    k_loss = km.evaluate(x, y, verbose=0, batch_size=10)
    b_loss = bm.evaluate(x, y, verbose=0, batch_size=10)
    assert b_loss == pytest.approx(k_loss, abs=1e-5)
    km.train_on_batch(x, y)
    bm.train_on_batch(x, y)
    for kw, bw in zip(km.get_weights(), bm.get_weights()):
        np.testing.assert_allclose(bw, kw, atol=1e-4, rtol=0)
    assert bm.evaluate(x, y, verbose=0) == pytest.approx(km.evaluate(x, y, verbose=0), abs=1e-4)


def test_seed_model_weights_and_rmsprop_training_match_keras():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 5, 10)).astype("float32")
    y = np.eye(5, dtype="float32")[rng.integers(0, 5, 8)]

    def build(lib):
        return lib.Sequential(
            [
                lib.Input(shape=(5, 10)),
                lib.layers.Bidirectional(lib.layers.LSTM(10, return_sequences=True)),
                lib.layers.Bidirectional(lib.layers.LSTM(10)),
                lib.layers.Dense(5, activation="softmax"),
            ]
        )

    km, bm = build(keras), build(birnn)
    assert bm.count_params() == km.count_params() == 4265
    copy_weights(km, bm)
    km.compile(loss="categorical_crossentropy", optimizer="rmsprop")
    bm.compile(loss="categorical_crossentropy", optimizer="rmsprop")
    for _ in range(3):
        k = km.train_on_batch(x, y)
        b = bm.train_on_batch(x, y)
        assert b == pytest.approx(k, abs=1e-5)
    for kw, bw in zip(km.get_weights(), bm.get_weights()):
        np.testing.assert_allclose(bw, kw, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "name", ["sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax", "nadam"]
)
def test_optimizer_updates_match_keras(name):
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0, 0.5]))
    ours = optimizers.get(name)
    ours.build([w])
    theirs = keras.optimizers.get(name)
    kw = keras.Variable(np.array([1.0, -2.0, 3.0, 0.5], "float32"))
    assert ours.get_config().keys() == theirs.get_config().keys()
    for step in range(4):
        g = np.array([0.5, -1.0, 2.0, 1e-3], "float32") * (step + 1)
        w.grad = torch.tensor(g)
        ours.step()
        theirs.apply([keras.ops.convert_to_tensor(g)], [kw])
    np.testing.assert_allclose(w.detach().numpy(), keras.ops.convert_to_numpy(kw), atol=1e-6)


@pytest.mark.parametrize(
    "name", ["sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax", "nadam"]
)
def test_optimizer_state_loaded_from_keras_continues_like_keras(name):
    """Keras's variables loaded into a fresh and into an already-stepped optimizer."""
    init = np.array([1.0, -2.0, 3.0, 0.5], "float32")
    kwargs = {"momentum": 0.9} if name == "sgd" else {}
    theirs = type(keras.optimizers.get(name))(learning_rate=0.05, **kwargs)
    kw = keras.Variable(init)

    def grad(step):
        return np.array([0.5, -1.0, 2.0, 1e-3], "float32") * (step + 1)

    for step in range(3):
        theirs.apply([keras.ops.convert_to_tensor(grad(step))], [kw])
    store = {str(i): keras.ops.convert_to_numpy(v) for i, v in enumerate(theirs.variables)}
    for warm_steps in (0, 5):
        w = torch.nn.Parameter(torch.tensor(keras.ops.convert_to_numpy(kw)))
        ours = type(optimizers.get(name))(learning_rate=0.9, **kwargs)
        ours.build([w])
        for _ in range(warm_steps):
            w.grad = torch.ones(4)
            ours.step()
        with torch.no_grad():
            w.copy_(torch.tensor(keras.ops.convert_to_numpy(kw)))
        ours.load_own_variables(store)
        assert ours.iterations == 3 and ours.learning_rate == pytest.approx(0.05)
        kv = keras.Variable(keras.ops.convert_to_numpy(kw))
        follower = type(keras.optimizers.get(name))(learning_rate=0.05, **kwargs)
        follower.build([kv])
        follower.load_own_variables(dict(store))
        for step in range(3, 5):
            w.grad = torch.tensor(grad(step))
            ours.step()
            follower.apply([keras.ops.convert_to_tensor(grad(step))], [kv])
        np.testing.assert_allclose(
            w.detach().numpy(), keras.ops.convert_to_numpy(kv), atol=1e-6, err_msg=name
        )


@pytest.mark.parametrize("name", ["adam", "nadam", "rmsprop"])
def test_optimizer_load_own_variables_checks_everything_before_assigning(name):
    w = torch.nn.Parameter(torch.ones(3, 2))
    b = torch.nn.Parameter(torch.ones(2))
    ours = optimizers.get(name)
    ours.build([w, b])
    w.grad, b.grad = torch.full((3, 2), 0.5), torch.full((2,), 0.5)
    ours.step()
    good = {}
    ours.save_own_variables(good)
    snapshot = {k: np.copy(v) for k, v in good.items()}

    def unchanged():
        now = {}
        ours.save_own_variables(now)
        assert now.keys() == snapshot.keys()
        for key, value in snapshot.items():
            np.testing.assert_array_equal(now[key], value)

    changed = {k: np.asarray(v) + 7 for k, v in good.items()}  # iterations, lr, slots differ
    extra = {**changed, str(len(changed)): np.zeros(2, "float32")}
    with pytest.raises(ValueError, match=f"'{ours.name}'.*expects {len(good)} variables.*has "):
        ours.load_own_variables(extra)
    unchanged()
    misshapen = dict(changed)
    last_slot = max((k for k, v in good.items() if np.ndim(v)), key=int)
    misshapen[last_slot] = np.zeros(5, "float32")
    with pytest.raises(ValueError, match=f"variable {last_slot} .*shape \\(5,\\)"):
        ours.load_own_variables(misshapen)
    unchanged()
    gap = {k: v for k, v in changed.items() if k != "2"}
    with pytest.raises(ValueError, match="keyed '0', '1'"):
        ours.load_own_variables(gap)
    unchanged()
    with pytest.raises(ValueError, match="iterations"):
        ours.load_own_variables({**changed, "0": np.zeros(3)})
    unchanged()
    ours.load_own_variables(changed)
    assert ours.iterations == int(snapshot["0"]) + 7


@pytest.mark.parametrize(
    "kwargs",
    [
        {"momentum": 0.9},
        {"centered": True},
        {"momentum": 0.5, "centered": True, "rho": 0.8},
        {"weight_decay": 0.1},
        {"clipnorm": 0.5},
        {"clipvalue": 0.1},
        {"global_clipnorm": 0.5},
    ],
)
def test_rmsprop_variants_match_keras(kwargs):
    rng = np.random.default_rng(3)
    init = rng.standard_normal((3, 2)).astype("float32")
    w = torch.nn.Parameter(torch.tensor(init))
    ours = optimizers.RMSprop(learning_rate=0.01, **kwargs)
    ours.build([w])
    theirs = keras.optimizers.RMSprop(learning_rate=0.01, **kwargs)
    kw = keras.Variable(init)
    for _ in range(5):
        g = rng.standard_normal((3, 2)).astype("float32")
        w.grad = torch.tensor(g)
        ours.step()
        theirs.apply([keras.ops.convert_to_tensor(g)], [kw])
    np.testing.assert_allclose(w.detach().numpy(), keras.ops.convert_to_numpy(kw), atol=1e-6)
    store = {}
    ours.save_own_variables(store)
    assert [np.shape(v) for v in store.values()] == [tuple(v.shape) for v in theirs.variables]
    for ours_v, theirs_v in zip(list(store.values())[2:], theirs.variables[2:]):
        np.testing.assert_allclose(ours_v, keras.ops.convert_to_numpy(theirs_v), atol=1e-6)


def test_rmsprop_epsilon_is_inside_the_square_root():
    w = torch.nn.Parameter(torch.tensor([0.0]))
    opt = optimizers.RMSprop(learning_rate=1.0, rho=0.0, epsilon=1.0)
    opt.build([w])
    w.grad = torch.tensor([1.0])
    opt.step()
    assert float(w.detach()) == pytest.approx(-1.0 / np.sqrt(2.0))  # torch's would give -1/2


LOSS_CASES = [
    ("mean_squared_error", {}, "regression"),
    ("mean_absolute_error", {}, "regression"),
    ("mean_absolute_percentage_error", {}, "regression"),
    ("mean_squared_logarithmic_error", {}, "positive"),
    ("huber", {}, "regression"),
    ("log_cosh", {}, "regression"),
    ("kl_divergence", {}, "probs"),
    ("poisson", {}, "positive"),
    ("hinge", {}, "binary"),
    ("squared_hinge", {}, "binary"),
    ("categorical_hinge", {}, "probs"),
    ("cosine_similarity", {}, "regression"),
    ("categorical_crossentropy", {}, "probs"),
    ("categorical_crossentropy", {"from_logits": True, "label_smoothing": 0.1}, "logits"),
    ("binary_crossentropy", {}, "binary"),
    ("binary_crossentropy", {"from_logits": True, "label_smoothing": 0.2}, "binary_logits"),
    ("sparse_categorical_crossentropy", {}, "sparse"),
    ("sparse_categorical_crossentropy", {"from_logits": True}, "sparse_logits"),
    ("binary_focal_crossentropy", {"gamma": 1.5}, "binary"),
]


def _loss_data(kind, rng):
    shape = (6, 4)
    if kind == "regression":
        return rng.standard_normal(shape), rng.standard_normal(shape)
    if kind == "positive":
        return rng.random(shape) * 3, rng.random(shape) * 3
    if kind in ("probs", "logits"):
        y_true = np.eye(4)[rng.integers(0, 4, 6)]
        logits = rng.standard_normal(shape)
        probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        probs[0, 0] = 0.0  # exercises Keras's 1e-7 clipping
        return y_true, logits if kind == "logits" else probs
    if kind in ("binary", "binary_logits"):
        y_true = rng.integers(0, 2, shape).astype("float64")
        pred = rng.standard_normal(shape) if kind == "binary_logits" else rng.random(shape)
        if kind == "binary":
            pred[0, 0] = 1.0
        return y_true, pred
    y_true = rng.integers(0, 4, (6,))
    logits = rng.standard_normal(shape)
    if kind == "sparse_logits":
        return y_true, logits
    return y_true, np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)


@pytest.mark.parametrize(("name", "kwargs", "kind"), LOSS_CASES)
def test_losses_match_keras(name, kwargs, kind):
    rng = np.random.default_rng(4)
    y_true, y_pred = (a.astype("float32") for a in _loss_data(kind, rng))
    sample_weight = rng.random(6).astype("float32")
    ours_fn = getattr(losses, name)(torch.tensor(y_true), torch.tensor(y_pred), **kwargs)
    keras_fn = getattr(keras.losses, name)(y_true, y_pred, **kwargs)
    np.testing.assert_allclose(ours_fn.numpy(), keras.ops.convert_to_numpy(keras_fn), atol=1e-5)
    ours_cls = losses.get({"class_name": _class_of(name), "config": kwargs})
    keras_cls = keras.losses.get({"class_name": _class_of(name), "config": kwargs})
    np.testing.assert_allclose(
        float(ours_cls(y_true, y_pred, sample_weight=sample_weight)),
        float(keras_cls(y_true, y_pred, sample_weight=sample_weight)),
        atol=1e-5,
    )
    for key, value in keras_cls.get_config().items():
        assert ours_cls.get_config()[key] == value


_CLASSES = {
    "huber": "Huber",
    "log_cosh": "LogCosh",
    "kl_divergence": "KLDivergence",
    "poisson": "Poisson",
    "hinge": "Hinge",
    "squared_hinge": "SquaredHinge",
    "categorical_hinge": "CategoricalHinge",
    "cosine_similarity": "CosineSimilarity",
}


def _class_of(name):
    if name in _CLASSES:
        return _CLASSES[name]
    return "".join(p.capitalize() for p in name.split("_"))


def test_masked_sequence_loss_matches_keras():
    rng = np.random.default_rng(5)
    y_true = rng.standard_normal((3, 4, 2)).astype("float32")
    y_pred = rng.standard_normal((3, 4, 2)).astype("float32")
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], bool)
    ours_pred = torch.tensor(y_pred)
    ours_pred._keras_mask = torch.tensor(mask)
    keras_pred = keras.ops.convert_to_tensor(y_pred)
    keras_pred._keras_mask = keras.ops.convert_to_tensor(mask)
    sw = rng.random((3,)).astype("float32")
    for ours_kwargs, keras_kwargs in (
        ({}, {}),
        ({"sample_weight": sw}, {"sample_weight": np.repeat(sw[:, None], 4, axis=1)}),
    ):
        ours = losses.MeanSquaredError()(y_true, ours_pred, **ours_kwargs)
        theirs = keras.losses.MeanSquaredError()(y_true, keras_pred, **keras_kwargs)
        assert float(ours) == pytest.approx(float(theirs), abs=1e-6)
    ours_metric = metrics.MeanAbsoluteError()
    theirs_metric = keras.metrics.MeanAbsoluteError()
    ours_metric.update_state(y_true, ours_pred)
    theirs_metric.update_state(y_true, keras_pred)
    assert float(ours_metric.result()) == pytest.approx(float(theirs_metric.result()), abs=1e-6)


METRIC_CASES = [
    ("BinaryAccuracy", {}, "binary"),
    ("BinaryAccuracy", {"threshold": 0.3}, "binary"),
    ("CategoricalAccuracy", {}, "probs"),
    ("SparseCategoricalAccuracy", {}, "sparse"),
    ("TopKCategoricalAccuracy", {"k": 2}, "probs"),
    ("SparseTopKCategoricalAccuracy", {"k": 2}, "sparse"),
    ("MeanAbsoluteError", {}, "regression"),
    ("MeanSquaredError", {}, "regression"),
    ("RootMeanSquaredError", {}, "regression"),
    ("MeanAbsolutePercentageError", {}, "regression"),
    ("CategoricalCrossentropy", {}, "probs"),
    ("SparseCategoricalCrossentropy", {}, "sparse"),
    ("BinaryCrossentropy", {}, "binary"),
    ("KLDivergence", {}, "probs"),
    ("CosineSimilarity", {}, "regression"),
    ("LogCoshError", {}, "regression"),
    ("AUC", {}, "binary"),
    ("AUC", {"curve": "PR"}, "binary"),
    ("AUC", {"num_thresholds": 7, "summation_method": "minoring"}, "binary"),
    ("AUC", {"multi_label": True}, "binary"),
    ("Precision", {}, "binary"),
    ("Recall", {"thresholds": 0.3}, "binary"),
    ("Precision", {"top_k": 2}, "binary"),
    ("Recall", {"class_id": 1}, "binary"),
    ("TruePositives", {}, "binary"),
    ("FalseNegatives", {"thresholds": [0.2, 0.7]}, "binary"),
]


@pytest.mark.parametrize(("name", "kwargs", "kind"), METRIC_CASES)
def test_metrics_match_keras_over_two_batches(name, kwargs, kind):
    rng = np.random.default_rng(6)
    ours = getattr(metrics, name)(**kwargs)
    theirs = getattr(keras.metrics, name)(**kwargs)
    for batch in range(2):
        y_true, y_pred = (a.astype("float32") for a in _loss_data(kind, rng))
        sw = rng.random(6).astype("float32") if batch else None
        ours.update_state(y_true, y_pred, sample_weight=sw)
        theirs.update_state(y_true, y_pred, sample_weight=sw)
    np.testing.assert_allclose(
        ours.result().numpy(), keras.ops.convert_to_numpy(theirs.result()), atol=1e-5
    )
    ours.reset_state()
    theirs.reset_state()
    assert float(np.sum(ours.result().numpy())) == float(
        np.sum(keras.ops.convert_to_numpy(theirs.result()))
    )
    config = theirs.get_config()
    for key, value in ours.get_config().items():
        if key != "name":
            assert config[key] == value, key


@pytest.mark.parametrize(
    ("y_true_shape", "y_pred_shape", "expected"),
    [
        ((4, 1), (4, 1), "BinaryAccuracy"),
        ((4,), (4, 3), "SparseCategoricalAccuracy"),
        ((4, 1), (4, 3), "SparseCategoricalAccuracy"),
        ((4, 3), (4, 3), "CategoricalAccuracy"),
    ],
)
def test_accuracy_is_resolved_like_keras(y_true_shape, y_pred_shape, expected):
    metric = metrics.resolve("accuracy", torch.zeros(y_true_shape), torch.zeros(y_pred_shape))
    assert type(metric).__name__ == expected
    assert metric.name == "accuracy"


def test_fit_history_matches_keras_for_a_dense_model():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, 3)).astype("float32")
    y = (x.sum(1, keepdims=True) > 0).astype("float32")

    def build(lib):
        return lib.Sequential(
            [
                lib.Input((3,)),
                lib.layers.Dense(4, activation="tanh"),
                lib.layers.Dense(1, activation="sigmoid"),
            ]
        )

    km, bm = build(keras), build(birnn)
    copy_weights(km, bm)
    km.compile(keras.optimizers.SGD(0.1), "binary_crossentropy", metrics=["accuracy", "mae"])
    bm.compile(optimizers.SGD(0.1), "binary_crossentropy", metrics=["accuracy", "mae"])
    kh = km.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_split=0.25)
    bh = bm.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_split=0.25)
    assert set(kh.history) == set(bh.history)
    for key, values in kh.history.items():
        np.testing.assert_allclose(bh.history[key], values, atol=1e-5, err_msg=key)


@pytest.mark.parametrize(
    "obj",
    [
        optimizers.Adam(learning_rate=0.01, beta_1=0.8),
        optimizers.RMSprop(momentum=0.5, centered=True),
        optimizers.SGD(0.1, momentum=0.9, nesterov=True, clipnorm=1.0),
        optimizers.AdamW(weight_decay=0.01),
    ],
)
def test_optimizer_serialization_crosses_to_keras_and_back(obj):
    config = optimizers.serialize(obj)
    theirs = keras.optimizers.deserialize(config)
    assert type(theirs).__name__ == type(obj).__name__
    ours_config = obj.get_config()
    for key, value in theirs.get_config().items():
        if key != "name":
            assert ours_config[key] == pytest.approx(value), key
    back = optimizers.deserialize(keras.optimizers.serialize(theirs))
    assert type(back) is type(obj) and back.learning_rate == pytest.approx(obj.learning_rate)


def test_plain_torch_optimizers_serialize_as_their_keras_equivalent():
    w = [torch.nn.Parameter(torch.zeros(2))]
    config = optimizers.serialize(torch.optim.Adam(w, lr=0.02, betas=(0.8, 0.9)))
    assert config["class_name"] == "Adam" and config["config"]["beta_1"] == 0.8
    assert optimizers.serialize(torch.optim.LBFGS(w)) is None
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier: 'nope'"):
        optimizers.get("nope")


@pytest.mark.parametrize(
    ("module", "keras_module", "obj"),
    [
        (losses, keras.losses, losses.CategoricalCrossentropy(from_logits=True)),
        (losses, keras.losses, losses.mean_squared_error),
        (losses, keras.losses, losses.BinaryCrossentropy(label_smoothing=0.1)),
        (metrics, keras.metrics, metrics.AUC(num_thresholds=50)),
        (metrics, keras.metrics, metrics.BinaryAccuracy(threshold=0.3)),
        (metrics, keras.metrics, metrics.mean_absolute_error),
    ],
)
def test_loss_and_metric_serialization_crosses_to_keras(module, keras_module, obj):
    config = module.serialize(obj)
    theirs = keras.saving.deserialize_keras_object(config)
    if callable(obj) and not hasattr(obj, "get_config"):
        assert theirs.__name__ == obj.__name__ and module.deserialize(config) is obj
    else:
        back = module.deserialize(keras_module.serialize(theirs))
        assert type(back) is type(obj)
        assert back.get_config() == obj.get_config()


def test_metric_names_keras_resolves_in_compile_give_keras_values():
    names = ["auc", "precision", "recall", "root_mean_squared_error", "acc", "bce", "mape"]
    rng = np.random.default_rng(11)
    x = rng.standard_normal((24, 3)).astype("float32")
    y = (rng.random((24, 1)) > 0.5).astype("float32")

    def build(lib):
        return lib.Sequential([lib.Input((3,)), lib.layers.Dense(1, activation="sigmoid")])

    km, bm = build(keras), build(birnn)
    copy_weights(km, bm)
    km.compile("sgd", "binary_crossentropy", metrics=names)
    bm.compile("sgd", "binary_crossentropy", metrics=names)
    k = km.evaluate(x, y, verbose=0, batch_size=10, return_dict=True)
    b = bm.evaluate(x, y, verbose=0, batch_size=10, return_dict=True)
    assert list(b) == list(k)
    for key in k:
        assert b[key] == pytest.approx(k[key], abs=1e-5), key
