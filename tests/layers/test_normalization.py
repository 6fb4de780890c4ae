"""BatchNormalization and LayerNormalization against Keras 3.15."""

import keras
import numpy as np
import pytest
import torch

import birnn
from birnn import layers
from tests.core._parity import check_layer_parity
from tests.keras_oracle import assert_close, to_numpy

RNG = np.random.RandomState(0)
MASK = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], dtype=bool)


def _random_bn_weights(theirs, shape):
    """Non-default gamma, beta and moving statistics (variance > 0) on a built Keras layer."""
    theirs.build(shape)
    theirs.set_weights(
        [
            RNG.uniform(0.5, 1.5, w.shape).astype("float32")
            if "variance" in w.path or "gamma" in w.path
            else RNG.randn(*w.shape).astype("float32")
            for w in theirs.weights
        ]
    )


BN_CASES = [
    ({}, (2, 5, 3), None, None),
    ({}, (2, 5, 3), None, True),
    ({}, (2, 5, 3), None, False),
    ({"momentum": 0.5, "epsilon": 1e-5}, (6, 3), None, True),
    ({"axis": 1}, (2, 3, 4, 5), None, True),  # channels_first images
    ({"axis": 2}, (2, 4, 3, 5), None, True),
    ({"center": False}, (2, 5, 3), None, True),
    ({"scale": False, "beta_regularizer": "l2"}, (2, 5, 3), None, True),
    ({"center": False, "scale": False}, (2, 5, 3), None, False),
    ({}, (2, 5, 3), MASK, True),  # masked steps are left out of the batch statistics
    ({"momentum": 0.8}, (2, 5, 3), MASK, False),
    ({}, (1, 1, 3), None, True),  # one value per feature: variance 0
]


@pytest.mark.parametrize("kwargs,shape,mask,training", BN_CASES, ids=str)
def test_batch_normalization_parity(kwargs, shape, mask, training):
    x = (RNG.randn(*shape) * 2 + 1).astype("float32")
    ours = layers.BatchNormalization(name="bn", **kwargs)
    theirs = keras.layers.BatchNormalization(name="bn", **kwargs)
    _random_bn_weights(theirs, shape)
    initial = theirs.get_weights()
    check_layer_parity(ours, theirs, x, mask=mask, training=training)
    # From the same weights, one call moves the statistics (training) or not alike.
    ours.set_weights(initial)
    theirs.set_weights(initial)
    kwargs = {"mask": None if mask is None else torch.tensor(mask), "training": training}
    ours(torch.tensor(x), **kwargs)
    theirs(torch.tensor(x), **kwargs)
    assert_close(ours.get_weights(), theirs.get_weights(), 1e-6, "weights after the call")
    moved = not np.allclose(to_numpy(theirs.weights[-1]), initial[-1])
    assert moved == bool(training)


def test_batch_normalization_weights_order_and_variance():
    layer = layers.BatchNormalization(momentum=0.9)
    x = torch.randn(8, 4) * 3
    layer(x, training=True)
    assert [n for n, _ in layer.named_parameters()] == [
        "gamma",
        "beta",
        "moving_mean",
        "moving_variance",
    ]
    assert [w is p for w, p in zip(layer.weights, layer.parameters())] == [True] * 4
    assert [id(w) for w in layer.non_trainable_weights] == [
        id(layer.moving_mean),
        id(layer.moving_variance),
    ]
    # Keras's convention: the biased batch variance, momentum on the old value.
    torch.testing.assert_close(layer.moving_variance, 0.9 + 0.1 * x.var(0, correction=0))
    torch.testing.assert_close(layer.moving_mean, 0.1 * x.mean(0))


def test_batch_normalization_frozen_runs_in_inference_mode():
    x = (RNG.randn(4, 5, 3) * 2 + 1).astype("float32")
    ours = layers.BatchNormalization(name="bn")
    theirs = keras.layers.BatchNormalization(name="bn")
    _random_bn_weights(theirs, x.shape)
    ours.trainable = theirs.trainable = False
    check_layer_parity(ours, theirs, x, training=True)
    assert_close(ours.get_weights(), theirs.get_weights(), 0, "frozen statistics")
    assert ours.trainable_weights == [] and len(ours.non_trainable_weights) == 4
    assert not any(p.requires_grad for p in ours.parameters())


def _bn_model(lib):
    L = lib.layers
    model = lib.Sequential(
        [
            lib.Input(shape=(6, 4)),
            L.Conv1D(5, 3, padding="same"),
            L.BatchNormalization(momentum=0.8),
            L.ReLU(),
            L.GlobalAveragePooling1D(),
            L.Dense(2),
        ]
    )
    model.compile(optimizer=lib.optimizers.SGD(0.1), loss="mse")
    return model


def test_batch_normalization_statistics_after_fit_match_keras():
    x = RNG.randn(16, 6, 4).astype("float32") * 2 + 0.5
    y = RNG.randn(16, 2).astype("float32")
    theirs, ours = _bn_model(keras), _bn_model(birnn)
    ours.set_weights(theirs.get_weights())
    theirs.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    ours.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    bn = ours.layers[1]
    assert float(bn.moving_variance.sub(1).abs().max()) > 0.1  # the statistics moved
    assert_close(ours.get_weights(), theirs.get_weights(), 1e-5, "weights after fit")
    assert_close(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), 1e-5, "predict")


LN_CASES = [
    ({}, (2, 5, 3)),
    ({"axis": [1, 2]}, (2, 5, 3)),
    ({"axis": [-2, -1]}, (2, 3, 4, 5)),
    ({"epsilon": 1e-6, "center": False}, (2, 5, 3)),
    ({"scale": False, "gamma_regularizer": "l2"}, (2, 5, 3)),
    ({"rms_scaling": True}, (2, 5, 3)),
    ({"beta_initializer": "ones", "gamma_initializer": "random_normal"}, (4, 6)),
]


@pytest.mark.filterwarnings("ignore:.*rms_scaling=True")
@pytest.mark.parametrize("kwargs,shape", LN_CASES, ids=str)
def test_layer_normalization_parity(kwargs, shape):
    x = (RNG.randn(*shape) * 2 + 1).astype("float32")
    mask = MASK if shape == (2, 5, 3) else None
    ours = layers.LayerNormalization(name="ln", **kwargs)
    theirs = keras.layers.LayerNormalization(name="ln", **kwargs)
    theirs.build(shape)
    theirs.set_weights([RNG.randn(*w.shape).astype("float32") for w in theirs.weights])
    check_layer_parity(ours, theirs, x, mask=mask)


def test_layer_normalization_rms_scaling_warns_as_keras():
    with pytest.warns(UserWarning, match="rms_scaling=True.*variance"):
        layers.LayerNormalization(rms_scaling=True)


@pytest.mark.parametrize("axis", [1, [1, 3], [3, 1]])
def test_layer_normalization_over_leading_axes(axis):
    # Keras 3.15 on torch fails on these (it hands them to torch's layer_norm,
    # which only normalizes trailing axes); the reference is the formula.
    x = RNG.randn(2, 4, 3, 5).astype("float32")
    layer = layers.LayerNormalization(axis=axis, gamma_initializer="random_normal")
    out = layer(torch.tensor(x)).detach().numpy()
    axes = tuple(np.atleast_1d(axis))
    mean, var = x.mean(axes, keepdims=True), x.var(axes, keepdims=True)
    gamma = layer.gamma.detach().numpy()
    if list(axes) != sorted(axes):
        gamma = gamma.T
    shape = [1, 1, 1, 1]
    for a in sorted(axes):
        shape[a] = x.shape[a]
    expected = (x - mean) / np.sqrt(var + 1e-3) * gamma.reshape(shape)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)
    assert layer.gamma.shape == tuple(x.shape[a] for a in axes)


@pytest.mark.parametrize(
    "cls,kwargs,error,match",
    [
        ("BatchNormalization", {"axis": "1"}, TypeError, "axis"),
        ("BatchNormalization", {"momentum": "0.9"}, ValueError, "momentum"),
        ("BatchNormalization", {"renorm": True}, NotImplementedError, "renorm"),
        ("BatchNormalization", {"gamma_initializer": "nope"}, ValueError, "gamma_initializer"),
        ("LayerNormalization", {"axis": 1.5}, TypeError, "axis"),
        ("LayerNormalization", {"epsilon": None}, ValueError, "epsilon"),
        ("LayerNormalization", {"beta_constraint": "nope"}, ValueError, "beta_constraint"),
    ],
)
def test_normalization_bad_arguments(cls, kwargs, error, match):
    with pytest.raises(error, match=rf"{cls}.*{match}"):
        getattr(layers, cls)(**kwargs)


def test_normalization_bad_inputs():
    with pytest.raises(ValueError, match="bn_axis.*axis 3 is out of range"):
        layers.BatchNormalization(axis=3, name="bn_axis")(torch.ones(2, 3))
    layer = layers.LayerNormalization(name="ln_in")
    layer(torch.ones(2, 3))
    with pytest.raises(ValueError, match="ln_in.*axis 1 "):
        layer(torch.ones(2, 4))
