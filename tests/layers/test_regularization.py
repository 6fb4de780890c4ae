"""SpatialDropout1D and GaussianNoise: Keras configs and inference, the right noise in training."""

import keras
import numpy as np
import pytest
import torch

from birnn import layers
from tests.core._parity import check_layer_parity

RNG = np.random.RandomState(0)
X3 = RNG.randn(2, 5, 4).astype("float32")
MASK = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], dtype=bool)


@pytest.mark.parametrize("training", [None, False])
@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("SpatialDropout1D", {"rate": 0.5}),
        ("SpatialDropout1D", {"rate": 0.2, "seed": 3}),
        ("GaussianNoise", {"stddev": 0.5}),
        ("GaussianNoise", {"stddev": 1.0, "seed": 2}),
    ],
)
def test_noise_layers_inference_parity(name, kwargs, training):
    ours = getattr(layers, name)(name="n", **kwargs)
    theirs = getattr(keras.layers, name)(name="n", **kwargs)
    out = check_layer_parity(ours, theirs, X3, mask=MASK, training=training)
    np.testing.assert_array_equal(out.detach().numpy(), X3)
    assert torch.equal(out._keras_mask, torch.tensor(MASK))


def test_spatial_dropout_drops_whole_channels():
    x = torch.ones(400, 7, 10, requires_grad=True)
    out = layers.SpatialDropout1D(0.3)(x, training=True)
    assert torch.equal(out, out[:, :1].expand_as(out))
    kept = out[out != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.7))
    assert abs((out[:, 0] == 0).float().mean().item() - 0.3) < 0.03
    out.sum().backward()
    assert set(x.grad.unique().tolist()) <= {0.0, torch.tensor(1 / 0.7).item()}
    a, b = layers.SpatialDropout1D(0.5, seed=4), layers.SpatialDropout1D(0.5, seed=4)
    assert torch.equal(a(x, training=True), b(x, training=True))


def test_gaussian_noise_statistics_and_seed():
    x = torch.full((200, 100), 2.0)
    out = layers.GaussianNoise(0.5)(x, training=True)
    noise = out - x
    assert abs(noise.mean().item()) < 0.01
    assert abs(noise.std().item() - 0.5) < 0.01
    a, b = layers.GaussianNoise(0.5, seed=1), layers.GaussianNoise(0.5, seed=1)
    first = a(x, training=True)
    assert torch.equal(first, b(x, training=True))
    assert not torch.equal(first, a(x, training=True))
    assert torch.equal(layers.GaussianNoise(0.0)(x, training=True), x)


@pytest.mark.parametrize(
    "cls,kwargs,match",
    [
        ("SpatialDropout1D", {"rate": 1.5}, "rate"),
        ("SpatialDropout1D", {"rate": 0.5, "seed": "s"}, "seed"),
        ("GaussianNoise", {"stddev": -1}, "stddev"),
        ("GaussianNoise", {"stddev": "1"}, "stddev"),
        ("GaussianNoise", {"stddev": 1, "seed": 1.5}, "seed"),
    ],
)
def test_noise_layers_bad_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=rf"{match}"):
        getattr(layers, cls)(**kwargs)


def test_spatial_dropout_config_is_keras_own(tmp_path):
    config = layers.SpatialDropout1D(0.4, seed=2, name="sd").get_config()
    assert config == keras.layers.SpatialDropout1D(0.4, seed=2, name="sd").get_config()
    assert keras.layers.SpatialDropout1D.from_config(config).rate == 0.4


def test_spatial_dropout_needs_sequences():
    with pytest.raises(ValueError, match="sd.*ndim=3"):
        layers.SpatialDropout1D(0.5, name="sd")(torch.ones(2, 3), training=True)
