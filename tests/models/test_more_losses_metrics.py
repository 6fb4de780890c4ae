"""The less common Keras losses and metrics a compiled `.keras` file may name, against Keras."""

import numpy as np
import pytest
import torch

from birnn import losses
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
