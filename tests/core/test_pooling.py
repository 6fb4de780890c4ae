"""GlobalAveragePooling1D and GlobalMaxPooling1D against Keras 3.15 and their mask rules."""

import keras
import numpy as np
import pytest
import torch

from birnn import layers
from tests.core._parity import check_layer_parity

RNG = np.random.RandomState(0)
X = RNG.randn(3, 5, 4).astype("float32")
MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 1, 0, 1, 0]], dtype=bool)
NAMES = ["GlobalAveragePooling1D", "GlobalMaxPooling1D"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_pooling_parity_without_mask(name, data_format, keepdims):
    ours = getattr(layers, name)(data_format=data_format, keepdims=keepdims, name="p")
    theirs = getattr(keras.layers, name)(data_format=data_format, keepdims=keepdims, name="p")
    check_layer_parity(ours, theirs, X)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_average_pooling_masked_parity(data_format, keepdims):
    ours = layers.GlobalAveragePooling1D(data_format=data_format, keepdims=keepdims, name="p")
    theirs = keras.layers.GlobalAveragePooling1D(
        data_format=data_format, keepdims=keepdims, name="p"
    )
    x = X if data_format == "channels_last" else X.transpose(0, 2, 1).copy()
    out = check_layer_parity(ours, theirs, x, mask=MASK)
    assert getattr(out, "_keras_mask", None) is None


def _masked_reference(x, mask, reduce):
    rows = []
    for row, keep in zip(x, mask):
        rows.append(reduce(row[keep], axis=0) if keep.any() else np.zeros(x.shape[-1]))
    return np.stack(rows)


@pytest.mark.parametrize("name,reduce", [(NAMES[0], np.mean), (NAMES[1], np.max)])
def test_masked_pooling_equals_pooling_of_valid_steps(name, reduce):
    mask = MASK.copy()
    mask[2] = False  # a fully masked row pools to zeros (Keras 3: NaN / ignores the mask)
    x = torch.tensor(X, requires_grad=True)
    out = getattr(layers, name)()(x, mask=torch.tensor(mask))
    np.testing.assert_allclose(out.detach().numpy(), _masked_reference(X, mask, reduce), 1e-6)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad[torch.tensor(~mask)] == 0).all()


def test_max_pooling_mask_channels_first_and_keepdims():
    x = torch.tensor(X).transpose(1, 2)
    out = layers.GlobalMaxPooling1D(data_format="channels_first", keepdims=True)(
        x, mask=torch.tensor(MASK)
    )
    assert out.shape == (3, 4, 1)
    np.testing.assert_allclose(out[..., 0].numpy(), _masked_reference(X, MASK, np.max), 1e-6)


def test_pooling_follows_embedding_mask():
    ids = torch.tensor([[3, 1, 0, 0], [2, 2, 2, 1]])
    emb = layers.Embedding(5, 2, mask_zero=True)
    out = layers.GlobalMaxPooling1D()(emb(ids))
    table = emb.embeddings.detach()
    torch.testing.assert_close(out[0], table[[3, 1]].amax(0))


@pytest.mark.parametrize("name", NAMES)
def test_pooling_errors(name):
    with pytest.raises(ValueError, match=r"expected ndim=3"):
        getattr(layers, name)()(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=rf"{name}.*data_format"):
        getattr(layers, name)(data_format="nchw")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("mask_shape", [(3, 4), (2, 5), (3, 5, 4), (3,)])
def test_pooling_bad_mask_shape_names_the_layer(name, data_format, mask_shape):
    x = torch.tensor(X if data_format == "channels_last" else X.transpose(0, 2, 1).copy())
    layer = getattr(layers, name)(data_format=data_format, name="pool_mask")
    with pytest.raises(ValueError, match=r"pool_mask.*`mask`.*\(3, 5\)"):
        layer(x, mask=torch.ones(mask_shape, dtype=torch.bool))
