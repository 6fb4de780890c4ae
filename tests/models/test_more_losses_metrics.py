"""The less common Keras losses and metrics a compiled `.keras` file may name, against Keras."""

import re

import numpy as np
import pytest
import torch

from birnn import losses, metrics
from tests.keras_oracle import keras


def _data(kind, rng, shape=(6, 4)):
    if kind == "binary":
        return rng.integers(0, 2, shape).astype("float32"), rng.random(shape).astype("float32")
    if kind == "binary3d":
        return _data("binary", rng, (6, 3, 4))
    if kind in ("probs", "logits"):
        y_true = np.eye(shape[-1], dtype="float32")[rng.integers(0, shape[-1], shape[0])]
        logits = rng.standard_normal(shape).astype("float32")
        if kind == "logits":
            return y_true, logits
        probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        probs[0, 0] = 0.0  # exercises the 1e-7 clipping
        return y_true, probs.astype("float32")
    if kind == "sparse":
        logits = rng.standard_normal(shape)
        probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        return rng.integers(0, shape[-1], shape[0]), probs.astype("float32")
    if kind in ("embedding", "embedding_raw"):
        y_pred = rng.standard_normal((8, 4)).astype("float32")
        if kind == "embedding":
            y_pred /= np.linalg.norm(y_pred, axis=-1, keepdims=True)
        else:
            y_pred *= 2.0  # dot products beyond 1 exercise the cap at 1
        return np.array([0, 1, 0, 2, 1, 1, 0, 3]), y_pred  # classes 2 and 3: no positive pair
    if kind == "regression":
        y_true = rng.standard_normal(shape).astype("float32")
        return y_true, (y_true + 0.7 * rng.standard_normal(shape)).astype("float32")
    raise AssertionError(kind)


def _np(x):
    return keras.ops.convert_to_numpy(x)


# ---------------------------------------------------------------------------- losses
LOSS_CASES = [
    ("Dice", "dice", {}, "binary"),
    ("Dice", "dice", {"axis": -1}, "binary"),
    ("Dice", "dice", {"axis": (1, 2)}, "binary3d"),
    ("Tversky", "tversky", {}, "binary"),
    ("Tversky", "tversky", {"alpha": 0.3, "beta": 0.7, "axis": -1}, "binary"),
    ("CategoricalFocalCrossentropy", "categorical_focal_crossentropy", {}, "probs"),
    (
        "CategoricalFocalCrossentropy",
        "categorical_focal_crossentropy",
        {"alpha": 0.5, "gamma": 1.0, "from_logits": True, "label_smoothing": 0.1},
        "logits",
    ),
    (
        "CategoricalGeneralizedCrossEntropy",
        "categorical_generalized_cross_entropy",
        {"q": 0.5},
        "sparse",
    ),
    (
        "CategoricalGeneralizedCrossEntropy",
        "categorical_generalized_cross_entropy",
        {"q": 0.2},
        "sparse",
    ),
    ("Circle", "circle", {}, "embedding"),
    ("Circle", "circle", {"gamma": 10.0, "margin": 0.2, "remove_diagonal": False}, "embedding"),
    ("Circle", "circle", {"gamma": 20.0}, "embedding_raw"),
]


@pytest.mark.parametrize(("class_name", "fn_name", "kwargs", "kind"), LOSS_CASES)
def test_loss_matches_keras(class_name, fn_name, kwargs, kind):
    rng = np.random.default_rng(3)
    y_true, y_pred = _data(kind, rng)
    sample_weight = rng.random(y_pred.shape[0]).astype("float32")
    ours_fn = getattr(losses, fn_name)(torch.tensor(y_true), torch.tensor(y_pred), **kwargs)
    theirs_fn = getattr(keras.losses, fn_name)(
        keras.ops.convert_to_tensor(y_true), keras.ops.convert_to_tensor(y_pred), **kwargs
    )
    np.testing.assert_allclose(ours_fn.numpy(), _np(theirs_fn), rtol=1e-5, atol=1e-6)

    ours = getattr(losses, class_name)(**kwargs)
    theirs = getattr(keras.losses, class_name)(**kwargs)
    for sw in (None, sample_weight):
        np.testing.assert_allclose(
            float(ours(y_true, y_pred, sample_weight=sw)),
            float(theirs(y_true, y_pred, sample_weight=sw)),
            rtol=1e-5,
            atol=1e-6,
        )
    assert ours.get_config() == theirs.get_config()
    assert losses.serialize(ours) == keras.losses.serialize(theirs)
    back = losses.deserialize(keras.losses.serialize(theirs))
    assert type(back) is type(ours) and back.get_config() == ours.get_config()
    again = type(ours).from_config(ours.get_config())
    assert float(again(y_true, y_pred)) == pytest.approx(float(ours(y_true, y_pred)))
    assert losses.get(fn_name) is getattr(losses, fn_name)
    assert losses.serialize(getattr(losses, fn_name)) == keras.losses.serialize(
        getattr(keras.losses, fn_name)
    )


@pytest.mark.parametrize("reduction", [None, "sum", "mean_with_sample_weight"])
def test_circle_reference_embeddings_and_reductions_match_keras(reduction):
    rng = np.random.default_rng(15)
    y_true, y_pred = _data("embedding", rng)
    ref_labels = np.array([1, 0, 2, 2, 0])
    ref_embeddings = rng.standard_normal((5, 4)).astype("float32")
    ref_embeddings /= np.linalg.norm(ref_embeddings, axis=-1, keepdims=True)
    t = keras.ops.convert_to_tensor
    for remove_diagonal in (True, False):
        ours = losses.circle(
            y_true, y_pred, ref_labels, ref_embeddings, remove_diagonal=remove_diagonal
        )
        theirs = keras.losses.circle(
            t(y_true), t(y_pred), t(ref_labels), t(ref_embeddings), remove_diagonal=remove_diagonal
        )
        np.testing.assert_allclose(ours.detach().numpy(), _np(theirs), rtol=1e-5, atol=1e-4)
    sw = rng.random(8).astype("float32")
    ours = losses.Circle(gamma=16.0, reduction=reduction)(y_true, y_pred, sample_weight=sw)
    theirs = keras.losses.Circle(gamma=16.0, reduction=reduction)(y_true, y_pred, sample_weight=sw)
    np.testing.assert_allclose(ours.detach().numpy(), _np(theirs), rtol=1e-5, atol=1e-5)


def test_circle_gradient_is_finite_where_a_sample_has_no_positive_pair():
    y_pred = torch.nn.functional.normalize(torch.randn(4, 3), dim=-1).requires_grad_()
    loss = losses.Circle()(torch.tensor([0, 0, 1, 2]), y_pred)
    loss.backward()
    assert torch.isfinite(y_pred.grad).all() and torch.isfinite(loss)


def test_losses_are_differentiable_and_reject_bad_arguments():
    y_pred = torch.rand(4, 3, requires_grad=True)
    y_true = (torch.rand(4, 3) > 0.5).float()
    for loss in (losses.Dice(), losses.Tversky(), losses.CategoricalFocalCrossentropy()):
        y_pred.grad = None
        loss(y_true, y_pred).backward()
        assert torch.isfinite(y_pred.grad).all()
    with pytest.raises(ValueError, match="CategoricalGeneralizedCrossEntropy.*`q`"):
        losses.CategoricalGeneralizedCrossEntropy(q=1.5)
    with pytest.raises(ValueError, match="integer class indices"):
        losses.categorical_generalized_cross_entropy(torch.eye(3), torch.rand(3, 3), q=0.5)


def test_generalized_cross_entropy_accepts_labels_with_a_trailing_axis():
    # Keras broadcasts (batch, 1) labels against (batch,) here; birnn squeezes them.
    y_pred = torch.softmax(torch.randn(5, 3), -1)
    y_true = torch.tensor([0, 2, 1, 1, 0])
    flat = losses.categorical_generalized_cross_entropy(y_true, y_pred, q=0.5)
    column = losses.categorical_generalized_cross_entropy(y_true[:, None], y_pred, q=0.5)
    torch.testing.assert_close(flat, column)


# ---------------------------------------------------------------------------- metrics
def _metric_batches(kind, rng, weights):
    """Three batches of `(y_true, y_pred, sample_weight)`; `weights` picks their kind."""
    out = []
    for batch in range(3):
        y_true, y_pred = _data(kind, rng)
        if weights == "none" or batch == 0:
            sw = None
        elif weights == "int":
            sw = rng.integers(0, 3, y_pred.shape[0]).astype("float32")
        elif weights == "elementwise":
            sw = rng.random(y_true.shape).astype("float32")
        else:
            sw = rng.random(y_pred.shape[0]).astype("float32")
        out.append((y_true, y_pred, sw))
    return out


def _assert_metric_matches_keras(class_name, kwargs, batches):
    ours = getattr(metrics, class_name)(**kwargs)
    theirs = getattr(keras.metrics, class_name)(**kwargs)
    for y_true, y_pred, sw in batches:
        ours.update_state(y_true, y_pred, sample_weight=sw)
        theirs.update_state(y_true, y_pred, sample_weight=sw)
        np.testing.assert_allclose(
            ours.result().numpy(), _np(theirs.result()), rtol=1e-5, atol=1e-6
        )
    ours.reset_state()
    theirs.reset_state()
    ours.update_state(*batches[0][:2])
    theirs.update_state(*batches[0][:2])
    np.testing.assert_allclose(ours.result().numpy(), _np(theirs.result()), rtol=1e-5, atol=1e-6)
    # Keras numbers default names per session ("io_u_1"); birnn keeps the plain name.
    assert ours.name == re.sub(r"_\d+$", "", theirs.name)
    ours.name = theirs.name
    assert ours.get_config() == theirs.get_config()
    assert metrics.serialize(ours) == keras.metrics.serialize(theirs)
    back = metrics.deserialize(keras.metrics.serialize(theirs))
    assert type(back) is type(ours) and back.get_config() == ours.get_config()
    again = type(ours).from_config(ours.get_config())
    assert again.get_config() == ours.get_config()
    return ours, theirs


REGRESSION_CASES = [
    ("R2Score", {}, "sample"),
    ("R2Score", {}, "elementwise"),
    ("R2Score", {"class_aggregation": None}, "sample"),
    ("R2Score", {"class_aggregation": "variance_weighted_average"}, "sample"),
    ("R2Score", {"num_regressors": 3}, "sample"),
    ("R2Score", {"num_regressors": 2, "class_aggregation": None}, "none"),
    ("PearsonCorrelation", {}, "sample"),
    ("PearsonCorrelation", {"axis": 0}, "none"),
    ("ConcordanceCorrelation", {}, "sample"),
    ("ConcordanceCorrelation", {"axis": 0}, "none"),
]


@pytest.mark.parametrize(("class_name", "kwargs", "weights"), REGRESSION_CASES)
def test_regression_metrics_match_keras_over_several_batches(class_name, kwargs, weights):
    rng = np.random.default_rng(8)
    _assert_metric_matches_keras(class_name, kwargs, _metric_batches("regression", rng, weights))


@pytest.mark.parametrize("fn_name", ["pearson_correlation", "concordance_correlation"])
def test_correlation_functions_match_keras(fn_name):
    rng = np.random.default_rng(9)
    y_true, y_pred = _data("regression", rng, (5, 7))
    y_pred[0] = 1.0  # a constant row: nan (Pearson) or 0 (concordance), as in Keras
    for axis in (-1, 0):
        ours = getattr(metrics, fn_name)(torch.tensor(y_true), torch.tensor(y_pred), axis=axis)
        theirs = getattr(keras.metrics, fn_name)(
            keras.ops.convert_to_tensor(y_true), keras.ops.convert_to_tensor(y_pred), axis=axis
        )
        np.testing.assert_allclose(ours.numpy(), _np(theirs), rtol=1e-5, atol=1e-6)
    flat = metrics.pearson_correlation(torch.tensor(y_true[:, 1]), torch.tensor(y_pred[:, 1]))
    assert float(flat) == pytest.approx(np.corrcoef(y_true[:, 1], y_pred[:, 1])[0, 1], abs=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "y_true", "y_pred"),
    [
        ({"class_aggregation": None}, [[1.0, 0.0], [1.0, 2.0], [1.0, 1.0]], np.zeros((3, 2))),
        ({}, np.ones((3, 2)), np.ones((3, 2))),
        ({"class_aggregation": "variance_weighted_average"}, np.ones((3, 2)), np.zeros((3, 2))),
    ],
)
def test_r2_score_degenerate_columns_match_keras(kwargs, y_true, y_pred):
    y_true, y_pred = np.asarray(y_true, "float32"), np.asarray(y_pred, "float32")
    ours, theirs = metrics.R2Score(**kwargs), keras.metrics.R2Score(**kwargs)
    ours.update_state(y_true, y_pred)
    theirs.update_state(y_true, y_pred)
    np.testing.assert_allclose(ours.result().numpy(), _np(theirs.result()), atol=1e-6)


@pytest.mark.parametrize(("num_regressors", "phrase"), [(11, "division by zero"), (15, "more")])
def test_r2_score_falls_back_to_plain_r2_with_a_warning(num_regressors, phrase):
    rng = np.random.default_rng(10)
    y_true, y_pred = _data("regression", rng, (4, 3))
    plain = metrics.R2Score()
    plain.update_state(y_true, y_pred)
    adjusted = metrics.R2Score(num_regressors=num_regressors)
    adjusted.update_state(y_true, y_pred)
    with pytest.warns(UserWarning, match=phrase):
        value = adjusted.result()
    assert float(value) == pytest.approx(float(plain.result()))


def test_r2_score_rejects_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="R2Score.*class_aggregation"):
        metrics.R2Score(class_aggregation="median")
    with pytest.raises(ValueError, match="R2Score.*num_regressors"):
        metrics.R2Score(num_regressors=-1)
    m = metrics.R2Score()
    assert np.isnan(float(m.result()))  # nothing seen yet (Keras raises AttributeError)
    with pytest.raises(ValueError, match=r"R2Score expects 2D inputs"):
        m.update_state(np.zeros(4), np.zeros(4))
    m.update_state(np.zeros((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="R2Score.*first updated with 3"):
        m.update_state(np.zeros((2, 2)), np.ones((2, 2)))


def _iou_batches(kind, rng, weights="int", num_classes=3, shape=(6, 4)):
    out = []
    for batch in range(3):
        labels = rng.integers(0, num_classes, shape)
        if kind == "binary":
            y_true, y_pred = labels.astype("float32"), rng.random(shape).astype("float32")
            y_pred[0, 0] = 0.5  # on the threshold: counts as class 1
        else:
            y_true = labels if kind in ("sparse", "sparse_scores") else np.eye(num_classes)[labels]
            if kind in ("sparse", "onehot_sparse"):
                y_pred = rng.integers(0, num_classes, shape)
            else:
                y_pred = rng.random((*shape, num_classes)).astype("float32")
        if batch == 0:
            sw = None
        elif weights == "int":
            sw = rng.integers(0, 3, shape)
        else:
            sw = rng.random(shape).astype("float32")
        out.append((y_true, y_pred, sw))
    return out


IOU_CASES = [
    ("IoU", {"num_classes": 3, "target_class_ids": [0, 2]}, "sparse", "int"),
    ("IoU", {"num_classes": 3, "target_class_ids": [1], "ignore_class": 0}, "sparse", "int"),
    (
        "IoU",
        {"num_classes": 3, "target_class_ids": [0, 1, 2], "sparse_y_pred": False},
        "sparse_scores",
        "int",
    ),
    (
        "IoU",
        {"num_classes": 3, "target_class_ids": [2], "sparse_y_true": False},
        "onehot_sparse",
        "int",
    ),
    ("MeanIoU", {"num_classes": 3}, "sparse", "int"),
    ("MeanIoU", {"num_classes": 3, "ignore_class": 2}, "sparse", "int"),
    ("MeanIoU", {"num_classes": 3, "dtype": "float32"}, "sparse", "float"),
    ("BinaryIoU", {}, "binary", "int"),
    ("BinaryIoU", {"target_class_ids": [1], "threshold": 0.3}, "binary", "int"),
    ("OneHotIoU", {"num_classes": 3, "target_class_ids": [1]}, "onehot", "int"),
    (
        "OneHotIoU",
        {"num_classes": 3, "target_class_ids": [0, 2], "sparse_y_pred": True},
        "onehot_sparse",
        "int",
    ),
    ("OneHotMeanIoU", {"num_classes": 3}, "onehot", "int"),
    ("OneHotMeanIoU", {"num_classes": 3, "ignore_class": 1}, "onehot", "int"),
]


@pytest.mark.parametrize(("class_name", "kwargs", "kind", "weights"), IOU_CASES)
def test_iou_metrics_match_keras_over_several_batches(class_name, kwargs, kind, weights):
    rng = np.random.default_rng(12)
    batches = _iou_batches(kind, rng, weights)
    ours, theirs = _assert_metric_matches_keras(class_name, kwargs, batches)
    np.testing.assert_array_equal(
        ours.total_confusion_matrix.numpy(), _np(theirs.variables[0].value)
    )


def test_iou_truncates_float_weights_of_an_int_state_with_a_warning_like_keras():
    y_true, y_pred, sw = np.array([0, 1, 2, 1]), np.array([0, 1, 1, 1]), np.array([0.5, 1.5, 2, 1])
    ours, theirs = metrics.MeanIoU(3), keras.metrics.MeanIoU(3)
    with pytest.warns(UserWarning, match="MeanIoU.*truncated"):
        ours.update_state(y_true, y_pred, sample_weight=sw)
    with pytest.warns(UserWarning):
        theirs.update_state(y_true, y_pred, sample_weight=sw)
    np.testing.assert_array_equal(
        ours.total_confusion_matrix.numpy(), [[0, 0, 0], [0, 2, 0], [0, 2, 0]]
    )
    assert float(ours.result()) == pytest.approx(float(theirs.result()))


def test_iou_leaves_out_labels_and_predictions_outside_the_classes_like_keras():
    y_true, y_pred = np.array([0, 1, 2, -1, 5, 1]), np.array([0, 5, -1, 0, 1, 1])
    ours, theirs = metrics.IoU(3, [0, 1]), keras.metrics.IoU(3, [0, 1])
    ours.update_state(y_true, y_pred)
    theirs.update_state(y_true, y_pred)
    np.testing.assert_array_equal(
        ours.total_confusion_matrix.numpy(), _np(theirs.variables[0].value)
    )
    assert float(ours.result()) == pytest.approx(float(theirs.result()))
    assert float(metrics.MeanIoU(4).result()) == 0.0


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: metrics.IoU(3, [3]), "IoU: target class id 3 is out of range"),
        (lambda: metrics.BinaryIoU([2]), "BinaryIoU: target class id 2"),
        (lambda: metrics.IoU(3, []), "IoU: `target_class_ids`"),
        (lambda: metrics.MeanIoU(0), "MeanIoU: `num_classes`"),
    ],
)
def test_iou_rejects_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


AT_CASES = [
    ("SensitivityAtSpecificity", {"specificity": 0.5}, "sample"),
    ("SensitivityAtSpecificity", {"specificity": 0.8, "num_thresholds": 7}, "none"),
    ("SpecificityAtSensitivity", {"sensitivity": 0.6}, "sample"),
    ("SpecificityAtSensitivity", {"sensitivity": 0.4, "class_id": 2}, "sample"),
    ("PrecisionAtRecall", {"recall": 0.7}, "sample"),
    ("PrecisionAtRecall", {"recall": 0.3, "num_thresholds": 1}, "none"),
    ("RecallAtPrecision", {"precision": 0.6}, "sample"),
    ("RecallAtPrecision", {"precision": 0.9, "class_id": 1, "num_thresholds": 20}, "sample"),
    ("RecallAtPrecision", {"precision": 1.0}, "none"),  # unreachable: 0, as in Keras
]


@pytest.mark.parametrize(("class_name", "kwargs", "weights"), AT_CASES)
def test_rate_at_rate_metrics_match_keras_over_several_batches(class_name, kwargs, weights):
    rng = np.random.default_rng(13)
    batches = _metric_batches("binary", rng, weights)
    # predictions lean towards the labels, so the curves are not flat
    batches = [(t, np.clip(0.6 * p + 0.4 * t, 0, 1), w) for t, p, w in batches]
    ours, _ = _assert_metric_matches_keras(class_name, kwargs, batches)
    assert ours.true_positives.shape == (kwargs.get("num_thresholds", 200),)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: metrics.PrecisionAtRecall(1.5), "PrecisionAtRecall.*`recall`.*range"),
        (lambda: metrics.RecallAtPrecision(-0.1), "RecallAtPrecision.*`precision`"),
        (
            lambda: metrics.SensitivityAtSpecificity(0.5, num_thresholds=0),
            "SensitivityAtSpecificity.*`num_thresholds`",
        ),
    ],
)
def test_rate_at_rate_metrics_reject_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ---------------------------------------------------------------------------- .keras files
def _compile_setups(lib):
    return {
        "binary": {
            "loss": lib.losses.Tversky(alpha=0.3, beta=0.7),
            "metrics": [
                lib.metrics.R2Score(),
                lib.metrics.BinaryIoU(target_class_ids=[1], threshold=0.4),
                lib.metrics.PrecisionAtRecall(0.5, num_thresholds=50),
                "pearson_correlation",
            ],
        },
        "categorical": {
            "loss": lib.losses.CategoricalFocalCrossentropy(gamma=1.0, label_smoothing=0.05),
            "metrics": [
                lib.metrics.OneHotMeanIoU(num_classes=3),
                lib.metrics.SpecificityAtSensitivity(0.4),
                lib.metrics.ConcordanceCorrelation(),
            ],
            "weighted_metrics": [lib.metrics.OneHotIoU(3, [0, 2], dtype="float32")],
        },
    }


def _file_model(lib, setup, activation):
    model = lib.Sequential(
        [lib.Input((5,)), lib.layers.Dense(3, activation=activation, name="out")]
    )
    model.compile(optimizer=lib.optimizers.SGD(0.05), **_compile_setups(lib)[setup])
    return model


def _assert_same_compile_config(model, other):
    ours, theirs = model.get_compile_config(), other.get_compile_config()
    for key in ("loss", "metrics", "weighted_metrics"):
        assert ours[key] == theirs[key], key


def _evaluate(model, x, y, sw):
    return model.evaluate(x, y, sample_weight=sw, batch_size=4, verbose=0, return_dict=True)


@pytest.mark.parametrize(
    ("setup", "activation"), [("binary", "sigmoid"), ("categorical", "softmax")]
)
def test_keras_files_compiled_with_these_load_compiled_both_ways(tmp_path, setup, activation):
    import birnn

    rng = np.random.default_rng(14)
    x = rng.standard_normal((10, 5)).astype("float32")
    if setup == "binary":
        y = rng.integers(0, 2, (10, 3)).astype("float32")
    else:
        y = np.eye(3, dtype="float32")[rng.integers(0, 3, 10)]
    sw = rng.integers(1, 3, 10).astype("float32")

    keras_model = _file_model(keras, setup, activation)
    keras_model.fit(x, y, batch_size=5, epochs=1, verbose=0)
    keras_model.save(tmp_path / "k.keras")
    model = birnn.models.load_model(tmp_path / "k.keras")
    _assert_same_compile_config(model, keras_model)
    assert _evaluate(model, x, y, sw) == pytest.approx(_evaluate(keras_model, x, y, sw), abs=1e-5)
    model.fit(x, y, batch_size=10, epochs=1, verbose=0)
    keras_model.fit(x, y, batch_size=10, epochs=1, verbose=0)
    np.testing.assert_allclose(
        model.get_layer("out").get_weights()[0],
        keras_model.get_layer("out").get_weights()[0],
        atol=1e-5,
    )

    ours = _file_model(birnn, setup, activation)
    ours.set_weights(model.get_weights())
    ours.fit(x, y, batch_size=5, epochs=1, verbose=0)
    ours.save(tmp_path / "b.keras")
    back = keras.models.load_model(tmp_path / "b.keras")
    _assert_same_compile_config(back, ours)
    assert _evaluate(back, x, y, sw) == pytest.approx(_evaluate(ours, x, y, sw), abs=1e-5)


def test_iou_takes_a_per_sample_weight_for_multi_axis_labels():
    rng = np.random.default_rng(16)
    (y_true, y_pred, _), (_, _, sw) = _iou_batches("sparse", rng)[:2]
    per_sample = sw[:, 0]
    ours = metrics.MeanIoU(3)
    ours.update_state(y_true, y_pred, sample_weight=per_sample)
    theirs = keras.metrics.MeanIoU(3)
    theirs.update_state(y_true, y_pred, sample_weight=np.repeat(per_sample[:, None], 4, axis=1))
    np.testing.assert_array_equal(
        ours.total_confusion_matrix.numpy(), _np(theirs.variables[0].value)
    )


@pytest.mark.parametrize(
    ("module", "keras_module", "name"),
    [
        (losses, keras.losses, "dice"),
        (losses, keras.losses, "Tversky"),
        (losses, keras.losses, "circle"),
        (metrics, keras.metrics, "R2Score"),
        (metrics, keras.metrics, "r2_score"),
        (metrics, keras.metrics, "BinaryIoU"),
    ],
)
def test_names_resolve_like_keras(module, keras_module, name):
    ours, theirs = module.get(name), keras_module.get(name)
    if callable(theirs) and not hasattr(theirs, "get_config"):
        assert ours.__name__ == theirs.__name__
    else:
        assert type(ours).__name__ == type(theirs).__name__
        assert ours.get_config()["name"] == re.sub(r"_\d+$", "", theirs.get_config()["name"])
