"""Attention and AdditiveAttention against Keras 3.15: outputs, masks, gradients, configs."""

import keras
import numpy as np
import pytest
import torch

from birnn import layers
from tests.core._parity import check_layer_parity
from tests.keras_oracle import assert_close, copy_weights

RNG = np.random.RandomState(0)
Q = RNG.randn(2, 3, 4).astype("float32")
V = RNG.randn(2, 5, 4).astype("float32")
K = RNG.randn(2, 5, 4).astype("float32")
Q_MASK = np.array([[1, 1, 0], [1, 0, 1]], dtype=bool)
V_MASK = np.array([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=bool)  # row 2: nothing to attend

CASES = [
    ("Attention", {}),
    ("Attention", {"use_scale": True}),
    ("Attention", {"score_mode": "concat"}),
    ("Attention", {"score_mode": "concat", "use_scale": True}),
    ("AdditiveAttention", {}),
    ("AdditiveAttention", {"use_scale": False}),
]
MASKS = {
    "none": None,
    "both": [Q_MASK, V_MASK],
    "value": [None, V_MASK],
    "query": [Q_MASK, None],
}


def _pair(name, kwargs, **extra):
    ours = getattr(layers, name)(name="att", **kwargs, **extra)
    theirs = getattr(keras.layers, name)(name="att", **kwargs, **extra)
    return ours, theirs


def _randomize(layer):
    """Non-trivial weights (Attention's scales start at 1)."""
    layer.set_weights([np.full(w.shape, 0.7, "float32") for w in layer.get_weights()])


@pytest.mark.parametrize("name,kwargs", CASES)
@pytest.mark.parametrize("masks", list(MASKS), ids=list(MASKS))
@pytest.mark.parametrize("with_key", [False, True], ids=["qv", "qvk"])
def test_parity(name, kwargs, masks, with_key):
    ours, theirs = _pair(name, kwargs)
    inputs = [Q, V, K] if with_key else [Q, V]
    mask = MASKS[masks]
    if mask is not None and with_key:
        mask = [*mask, None]
    theirs([Q, V])
    _randomize(theirs)
    check_layer_parity(ours, theirs, inputs, mask=mask)


@pytest.mark.parametrize("name,kwargs", CASES[::2])
@pytest.mark.parametrize("causal", [False, True])
def test_scores_and_causal_mask(name, kwargs, causal):
    ours, theirs = _pair(name, kwargs)
    q = torch.tensor(Q)
    k_out, k_scores = theirs(
        [q, torch.tensor(V)],
        mask=[torch.tensor(Q_MASK), torch.tensor(V_MASK)],
        return_attention_scores=True,
        use_causal_mask=causal,
    )
    ours([q, torch.tensor(V)])
    copy_weights(theirs, ours)
    o_out, o_scores = ours(
        [q, torch.tensor(V)],
        mask=[torch.tensor(Q_MASK), torch.tensor(V_MASK)],
        return_attention_scores=True,
        use_causal_mask=causal,
    )
    assert_close(o_out, k_out, 1e-5, "outputs")
    assert_close(o_scores, k_scores, 1e-5, "scores")
    assert not torch.isnan(o_scores).any()
    assert o_out._keras_mask.tolist() == Q_MASK.tolist()
    assert getattr(o_scores, "_keras_mask", None) is None  # as Keras


def test_dropout_applies_in_training_only():
    layer = layers.Attention(dropout=0.5, seed=1)
    x = torch.randn(2, 4, 3)
    assert torch.equal(layer([x, x]), layer([x, x]))
    _, weights = layer([x, x], return_attention_scores=True)
    dropped = layer([x, x], training=True)
    assert not torch.allclose(dropped, layer([x, x]))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4))


def test_masks_travel_from_embedding_in_a_model():
    def build(lib):
        tokens = lib.Input((5,), dtype="int32")
        x = lib.layers.Embedding(10, 4, mask_zero=True)(tokens)
        x = lib.layers.Attention()([x, x])
        return lib.Model(tokens, lib.layers.GlobalAveragePooling1D()(x))

    k_model = build(keras)
    import birnn

    o_model = build(birnn)
    copy_weights(k_model, o_model)
    data = np.array([[1, 2, 3, 0, 0], [4, 0, 0, 0, 0]])
    assert_close(o_model.predict(data, verbose=0), k_model.predict(data, verbose=0), 1e-5)


def test_errors_name_the_layer():
    with pytest.raises(ValueError, match="score_mode"):
        layers.Attention(score_mode="bad")
    with pytest.raises(ValueError, match="dropout"):
        layers.AdditiveAttention(dropout=2)
    with pytest.raises(ValueError, match=r"att_bad.*\[query, value\]"):
        layers.Attention(name="att_bad")(torch.zeros(2, 3, 4))
