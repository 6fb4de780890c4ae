"""TimeDistributed against Keras 3.15."""

import keras
import numpy as np
import pytest
import torch

from birnn import layers
from birnn.layers.layer import Layer
from birnn.layers.serialization import register_layer_class
from tests.core._parity import check_layer_parity

RNG = np.random.RandomState(0)
X = RNG.randn(2, 5, 3).astype("float32")
MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)


@pytest.mark.parametrize("mask", [None, MASK], ids=["no_mask", "mask"])
def test_time_distributed_dense_parity(mask):
    ours = layers.TimeDistributed(layers.Dense(4, activation="relu", name="inner"), name="td")
    theirs = keras.layers.TimeDistributed(
        keras.layers.Dense(4, activation="relu", name="inner"), name="td"
    )
    out = check_layer_parity(ours, theirs, X, mask=mask)
    assert [w.shape for w in ours.get_weights()] == [(3, 4), (4,)]
    config = ours.get_config()["layer"]
    assert config["module"] == "keras.layers" and config["class_name"] == "Dense"
    assert config["registered_name"] is None
    if mask is not None:
        assert torch.equal(out._keras_mask, torch.tensor(MASK))


@pytest.mark.parametrize(
    "inner",
    [
        lambda m: m.layers.Dense(2),
        lambda m: m.layers.Flatten(),
        lambda m: m.layers.Dropout(0.5),
        lambda m: m.layers.Activation("tanh"),
        lambda m: m.layers.GlobalAveragePooling1D(),
    ],
    ids=["dense", "flatten", "dropout", "activation", "pooling"],
)
def test_time_distributed_4d_parity(inner):
    x = RNG.randn(2, 3, 4, 5).astype("float32")
    ours = layers.TimeDistributed(inner(__import__("birnn")), name="td")
    theirs = keras.layers.TimeDistributed(inner(keras), name="td")
    check_layer_parity(ours, theirs, x, check_config=False)
    inner_config = ours.get_config()["layer"]["config"]
    their_inner = theirs.get_config()["layer"]["config"]
    assert {k: v for k, v in inner_config.items() if k != "name"} == {
        k: v for k, v in their_inner.items() if k != "name"
    }


def test_time_distributed_passes_mask_slices_to_inner_layer():
    x = torch.tensor(RNG.randn(2, 3, 4, 5).astype("float32"))
    mask = torch.tensor(RNG.rand(2, 3, 4) > 0.3)
    mask[..., 0] = True
    out = layers.TimeDistributed(layers.GlobalAveragePooling1D())(x, mask=mask)
    ours_manual = (x * mask[..., None]).sum(2) / mask.sum(2, keepdim=True)
    torch.testing.assert_close(out, ours_manual)


def test_time_distributed_training_flag_reaches_inner_layer():
    layer = layers.TimeDistributed(layers.Dropout(0.5, seed=0))
    x = torch.ones(4, 6, 8)
    assert torch.equal(layer(x), x)
    assert (layer(x, training=True) == 0).any()


def test_time_distributed_round_trip_custom_inner_layer():
    @register_layer_class(package="tests")
    class Scale(Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    layer = layers.TimeDistributed(Scale(3.0))
    config = layer.get_config()
    assert config["layer"]["registered_name"] == "tests>Scale"
    clone = layers.TimeDistributed.from_config(config)
    assert isinstance(clone.layer, Scale) and clone.layer.factor == 3.0
    assert clone.layer is not layer.layer
    torch.testing.assert_close(clone(torch.ones(1, 2, 3)), torch.full((1, 2, 3), 3.0))


def test_time_distributed_errors():
    with pytest.raises(ValueError, match="TimeDistributed.*Layer"):
        layers.TimeDistributed(torch.nn.Linear(2, 2))
    layer = layers.TimeDistributed(layers.Dense(2), name="td_bad")
    with pytest.raises(ValueError, match=r"td_bad.*at least 3"):
        layer(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"td_bad.*mask"):
        layer(torch.zeros(2, 3, 4), mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"td_bad.*at least 2D"):
        layer(torch.zeros(2, 3, 4), mask=torch.ones(2, dtype=torch.bool))
