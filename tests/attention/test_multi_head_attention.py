"""MultiHeadAttention against Keras 3.15: weights, outputs, scores, masks, gradients, configs."""

import keras
import numpy as np
import pytest
import torch

from birnn import layers
from tests.keras_oracle import assert_close, copy_weights, to_numpy

RNG = np.random.RandomState(0)
Q = RNG.randn(2, 3, 4).astype("float32")
V = RNG.randn(2, 5, 6).astype("float32")
K = RNG.randn(2, 5, 5).astype("float32")
Q_MASK = np.array([[1, 1, 0], [1, 0, 1]], dtype=bool)
V_MASK = np.array([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=bool)  # row 2: nothing to attend
K_MASK = np.array([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=bool)
ATT_MASK = RNG.rand(2, 3, 5) > 0.4


LEAVES = {}


def _t(x, mask=None, grad=False):
    t = torch.tensor(x, requires_grad=grad)
    leaf = t
    if mask is not None:
        t = t * 1
        t._keras_mask = torch.tensor(mask)
    LEAVES[id(t)] = leaf
    return t


def _pair(**kwargs):
    kwargs.setdefault("bias_initializer", "glorot_uniform")  # non-zero biases
    ours = layers.MultiHeadAttention(name="mha", **kwargs)
    theirs = keras.layers.MultiHeadAttention(name="mha", **kwargs)
    return ours, theirs


def _run(layer, q, v, k, masks, call_kwargs):
    """One call on fresh tensors (Keras removes the masks from its inputs)."""
    qm, vm, km = masks
    args = [_t(q, qm, True), _t(v, vm, True)]
    kw = dict(call_kwargs)
    if k is not None:
        kw["key"] = _t(k, km, True)
    return args, kw, layer(*args, **kw)


def check(ours, theirs, q=Q, v=V, k=None, masks=(None, None, None), atol=1e-5, **call_kwargs):
    _, _, k_out = _run(theirs, q, v, k, masks, call_kwargs)
    ours(_t(q), _t(v), key=None if k is None else _t(k))
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.weights]
    copy_weights(theirs, ours)
    k_args, k_kw, k_out = _run(theirs, q, v, k, masks, call_kwargs)
    o_args, o_kw, o_out = _run(ours, q, v, k, masks, call_kwargs)
    if call_kwargs.get("return_attention_scores"):
        assert_close(o_out[1], k_out[1], atol, "scores")
        assert getattr(o_out[1], "_keras_mask", None) is None  # scores carry no mask
        o_out, k_out = o_out[0], k_out[0]
    assert_close(o_out, k_out, atol, "outputs")
    assert not torch.isnan(o_out).any()
    k_mask, o_mask = getattr(k_out, "_keras_mask", None), getattr(o_out, "_keras_mask", None)
    assert (k_mask is None) == (o_mask is None)
    if k_mask is not None:
        np.testing.assert_array_equal(to_numpy(o_mask), to_numpy(k_mask))
    cot = torch.randn(o_out.shape, generator=torch.Generator().manual_seed(1))
    (o_out * cot).sum().backward()
    (k_out * cot).sum().backward()
    o_in = o_args + ([o_kw["key"]] if "key" in o_kw else [])
    k_in = k_args + ([k_kw["key"]] if "key" in k_kw else [])
    for a, b in zip(o_in, k_in):
        a, b = LEAVES[id(a)], LEAVES[id(b)]
        assert_close(a.grad, b.grad, 1e-4, "input gradient")
    for a, b in zip(ours.trainable_weights, theirs.trainable_weights):
        assert_close(a.grad, b.value.grad, 1e-4, "weight gradient")
    strip = lambda c: {k: v for k, v in c.items() if k != "name"}  # noqa: E731
    assert strip(ours.get_config()) == strip(theirs.get_config())
    assert ours.get_build_config() == theirs.get_build_config()
    assert tuple(ours.compute_output_shape(q.shape, v.shape)) == tuple(
        theirs.compute_output_shape(q.shape, v.shape)
    )
    return ours


LAYER_CASES = {
    "default": {"num_heads": 2, "key_dim": 3},
    "value_dim": {"num_heads": 3, "key_dim": 2, "value_dim": 4},
    "no_bias": {"num_heads": 2, "key_dim": 3, "use_bias": False},
    "output_shape": {"num_heads": 2, "key_dim": 3, "output_shape": 7},
    "output_shape_2d": {"num_heads": 1, "key_dim": 3, "output_shape": (2, 3)},
    "gate": {"num_heads": 2, "key_dim": 3, "value_dim": 2, "use_gate": True},
}
MASK_CASES = {
    "none": ((None, None, None), {}),
    "query_value": ((Q_MASK, V_MASK, None), {}),
    "value": ((None, V_MASK, None), {}),
    "query": ((Q_MASK, None, None), {}),
    "attention_mask": ((None, None, None), {"attention_mask": ATT_MASK}),
    "all_and_causal": (
        (Q_MASK, V_MASK, None),
        {"attention_mask": ATT_MASK, "use_causal_mask": True},
    ),
}


@pytest.mark.parametrize("case", list(LAYER_CASES))
@pytest.mark.parametrize("scores", [False, True], ids=["fused", "scores"])
def test_layer_arguments(case, scores):
    ours, theirs = _pair(**LAYER_CASES[case])
    check(ours, theirs, return_attention_scores=scores)


@pytest.mark.parametrize("case", list(MASK_CASES))
@pytest.mark.parametrize("scores", [False, True], ids=["fused", "scores"])
def test_masks(case, scores):
    masks, kwargs = MASK_CASES[case]
    ours, theirs = _pair(num_heads=2, key_dim=3)
    check(ours, theirs, masks=masks, return_attention_scores=scores, **kwargs)


@pytest.mark.parametrize("scores", [False, True], ids=["fused", "scores"])
def test_separate_key_with_its_mask(scores):
    ours, theirs = _pair(num_heads=2, key_dim=3)
    check(ours, theirs, k=K, masks=(Q_MASK, None, K_MASK), return_attention_scores=scores)


def test_dropout_inactive_in_inference_keeps_keras_zero_rows():
    ours, theirs = _pair(num_heads=2, key_dim=3, dropout=0.3)
    check(ours, theirs, masks=(Q_MASK, V_MASK, None))


@pytest.mark.parametrize("window,causal", [(2, False), (2, True)])
def test_sliding_window(window, causal):
    ours, theirs = _pair(num_heads=2, key_dim=3, sliding_window=window)
    q = RNG.randn(2, 5, 4).astype("float32")
    check(ours, theirs, q=q, use_causal_mask=causal, return_attention_scores=True)


@pytest.mark.parametrize("axes", [None, 2, (1, 2)])
def test_attention_axes_on_4d_inputs(axes):
    x = RNG.randn(2, 3, 4, 5).astype("float32")
    y = RNG.randn(2, 3, 2, 5).astype("float32") if axes == 2 else x
    ours, theirs = _pair(num_heads=2, key_dim=3, attention_axes=axes)
    check(ours, theirs, q=x, v=y, return_attention_scores=True)
    check(ours, theirs, q=x, v=y)


def test_dropout_in_training():
    layer = layers.MultiHeadAttention(2, 3, dropout=0.5, seed=3)
    x = torch.randn(2, 4, 6)
    a, b = layer(x, x, training=True), layer(x, x, training=True)
    assert not torch.allclose(a, b)
    assert torch.equal(layer(x, x), layer(x, x))
    _, scores = layer(x, x, training=True, return_attention_scores=True)
    torch.testing.assert_close(scores.sum(-1), torch.ones(2, 2, 4))


def test_functional_model_with_masks_and_weights_order():
    def build(lib):
        tokens = lib.Input((6,), dtype="int32")
        x = lib.layers.Embedding(12, 8, mask_zero=True)(tokens)
        x = lib.layers.MultiHeadAttention(2, 4)(x, x)
        return lib.Model(tokens, lib.layers.GlobalAveragePooling1D()(x))

    import birnn

    k_model, o_model = build(keras), build(birnn)
    assert [w.shape for w in o_model.get_weights()] == [tuple(w.shape) for w in k_model.weights]
    copy_weights(k_model, o_model)
    data = np.array([[1, 2, 3, 0, 0, 0], [4, 0, 0, 0, 0, 0]])
    assert_close(o_model.predict(data, verbose=0), k_model.predict(data, verbose=0), 1e-5)


def test_errors_name_the_layer():
    with pytest.raises(ValueError, match="num_heads"):
        layers.MultiHeadAttention(0, 3)
    with pytest.raises(ValueError, match="output_shape"):
        layers.MultiHeadAttention(2, 3, output_shape="x")
    with pytest.raises(ValueError, match=r"mha_bad.*rank >= 3"):
        layers.MultiHeadAttention(2, 3, name="mha_bad")(torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"mha_axes.*attention_mask"):
        layer = layers.MultiHeadAttention(2, 3, attention_axes=(1, 2), name="mha_axes")
        layer(torch.zeros(2, 3, 4, 5), torch.zeros(2, 3, 4, 5), use_causal_mask=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_heads": 2, "key_dim": 3, "use_gate": True, "output_shape": 5},
        {"num_heads": 2, "key_dim": 2, "value_dim": 3, "use_bias": False, "dropout": 0.1},
    ],
    ids=["gate_output_shape", "no_bias_dropout"],
)
def test_keras_files_both_ways(kwargs, tmp_path):
    import birnn

    def build(lib):
        query, value = lib.Input((3, 4)), lib.Input((5, 6))
        x = lib.layers.MultiHeadAttention(**kwargs)(query, value, use_causal_mask=False)
        return lib.Model([query, value], x)

    ours, theirs = build(birnn), build(keras)
    data = [Q, V]
    ours.save(tmp_path / "ours.keras")
    assert_close(
        keras.models.load_model(tmp_path / "ours.keras").predict(data, verbose=0),
        ours.predict(data, verbose=0),
        1e-5,
    )
    theirs.save(tmp_path / "theirs.keras")
    assert_close(
        birnn.models.load_model(tmp_path / "theirs.keras").predict(data, verbose=0),
        theirs.predict(data, verbose=0),
        1e-5,
    )
