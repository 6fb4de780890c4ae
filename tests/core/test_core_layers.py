"""Dense, Activation, Dropout, Embedding, Masking, Flatten against Keras 3.15."""

import keras
import numpy as np
import pytest
import torch

from birnn import layers
from tests.core._parity import check_layer_parity

RNG = np.random.RandomState(0)
X3 = RNG.randn(2, 4, 5).astype("float32")
MASK = np.array([[1, 1, 1, 0], [1, 0, 1, 1]], dtype=bool)


# ---------------------------------------------------------------- Dense
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"activation": "tanh", "use_bias": False},
        {"activation": "softmax", "kernel_initializer": "orthogonal", "bias_initializer": "ones"},
        {
            "kernel_regularizer": "l2",
            "bias_regularizer": keras.regularizers.L1(0.3),
            "activity_regularizer": "l1l2",
            "kernel_constraint": "max_norm",
            "bias_constraint": "non_neg",
        },
        {"kernel_initializer": keras.initializers.GlorotNormal(seed=3), "dtype": "float64"},
    ],
)
@pytest.mark.parametrize("shape", [(3, 5), (2, 4, 5), (2, 2, 3, 5)])
def test_dense_parity(kwargs, shape):
    x = RNG.randn(*shape).astype("float32")
    mask = np.ones(shape[:-1], dtype=bool) if len(shape) > 2 else None
    ours = layers.Dense(3, name="d", **kwargs)
    theirs = keras.layers.Dense(3, name="d", **kwargs)
    check_layer_parity(ours, theirs, x, mask=mask, atol=1e-5)


def test_dense_masked_parity_and_losses():
    ours = layers.Dense(3, kernel_regularizer="l2", activity_regularizer="l1", name="d")
    theirs = keras.layers.Dense(3, kernel_regularizer="l2", activity_regularizer="l1", name="d")
    out = check_layer_parity(ours, theirs, X3, mask=MASK)
    assert torch.equal(out._keras_mask, torch.tensor(MASK))
    np.testing.assert_allclose(
        sorted(float(v.detach()) for v in ours.losses),
        sorted(float(keras.ops.convert_to_numpy(v)) for v in theirs.losses),
        rtol=1e-5,
    )


def test_dense_weights_and_build():
    layer = layers.Dense(4)
    layer.build((None, 3))
    assert [tuple(w.shape) for w in layer.weights] == [(3, 4), (4,)]
    assert layer.count_params() == 16
    assert [n for n, _ in layer.named_parameters()] == ["kernel", "bias"]
    assert layers.Dense(2, use_bias=False)(torch.ones(1, 3)).shape == (1, 2)
    assert layer(np.ones((2, 3))).dtype == torch.float32
    assert layer(np.ones((2, 3), dtype="int64")).shape == (2, 4)


@pytest.mark.parametrize("units", [0, -3, 2.5, "4", True, None])
def test_dense_bad_units(units):
    with pytest.raises(ValueError, match=r"Dense.*units"):
        layers.Dense(units)


@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_reads_weights_wherever_torch_tools_put_them(use_bias):
    torch.manual_seed(0)
    dense = layers.Dense(3, use_bias=use_bias)
    x = torch.randn(4, 2)
    plain = dense(x)

    def expected(kernel, bias):
        return x @ kernel + (0 if bias is None else bias)

    bias = dense.bias
    torch.testing.assert_close(plain, expected(dense.kernel, bias))
    doubled = {"kernel": dense.kernel * 2}
    out = torch.func.functional_call(dense, doubled, (x,))
    torch.testing.assert_close(out, expected(doubled["kernel"], bias))

    class Halve(torch.nn.Module):
        def forward(self, w):
            return w / 2

    torch.nn.utils.parametrize.register_parametrization(dense, "kernel", Halve())
    kernel = dense.parametrizations.kernel.original
    torch.testing.assert_close(dense(x), expected(kernel / 2, bias))
    torch.nn.utils.parametrize.remove_parametrizations(dense, "kernel")
    del dense.kernel
    dense.kernel = kernel.detach() * 3  # a plain tensor attribute, not a parameter
    torch.testing.assert_close(dense(x), expected(kernel * 3, bias))


def test_dense_bad_inputs():
    layer = layers.Dense(2, name="dense_bad")
    with pytest.raises(ValueError, match=r"dense_bad.*min_ndim=2"):
        layer(torch.ones(3))
    layer(torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"dense_bad.*axis -1.*value 3"):
        layer(torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"activation function identifier: 'nope'"):
        layers.Dense(2, activation="nope")
    with pytest.raises(ValueError, match="Unrecognized keyword arguments passed to Dense"):
        layers.Dense(2, kernel_initialiser="zeros")
    with pytest.raises(NotImplementedError, match="lora_rank"):
        layers.Dense(2, lora_rank=2)


# ---------------------------------------------------------------- Activation
@pytest.mark.parametrize("activation", ["relu", "softmax", "gelu", "swish", "hard_sigmoid"])
def test_activation_parity(activation):
    ours = layers.Activation(activation, name="a")
    theirs = keras.layers.Activation(activation, name="a")
    check_layer_parity(ours, theirs, X3, mask=MASK)


def test_activation_callable_and_errors():
    assert layers.Activation(torch.relu)(torch.tensor([[-1.0]])).item() == 0
    with pytest.raises(ValueError, match="activation function identifier"):
        layers.Activation("nope")


# ---------------------------------------------------------------- Dropout
@pytest.mark.parametrize("kwargs", [{"rate": 0.5}, {"rate": 0.2, "noise_shape": (None, 1, 5)}])
def test_dropout_inference_parity(kwargs):
    ours = layers.Dropout(name="dr", seed=1, **kwargs)
    theirs = keras.layers.Dropout(name="dr", seed=1, **kwargs)
    check_layer_parity(ours, theirs, X3, mask=MASK, training=False)
    out = check_layer_parity(ours, theirs, X3, mask=MASK, check_config=False)
    np.testing.assert_array_equal(out.detach().numpy(), X3)


def test_dropout_training():
    x = torch.ones(200, 50)
    layer = layers.Dropout(0.3)
    out = layer(x, training=True)
    kept = out[out != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.7))
    assert abs((out == 0).float().mean().item() - 0.3) < 0.03
    assert torch.equal(layer(x, training=False), x)
    assert torch.equal(layer(x), x)
    assert torch.equal(layers.Dropout(1.0)(x, training=True), torch.zeros_like(x))
    assert torch.equal(layers.Dropout(0.0)(x, training=True), x)


def test_dropout_noise_shape_and_seed():
    x = torch.ones(4, 6, 5)
    out = layers.Dropout(0.5, noise_shape=(None, 1, 5), seed=3)(x, training=True)
    assert torch.equal(out, out[:, :1, :].expand_as(out))
    a = layers.Dropout(0.5, seed=3)
    b = layers.Dropout(0.5, seed=3)
    first = a(x, training=True)
    assert torch.equal(first, b(x, training=True))
    assert not torch.equal(first, a(x, training=True))  # the sequence advances


def test_dropout_keeps_mask_and_gradient():
    x = torch.ones(2, 4, 3, requires_grad=True)
    xm = x * 1
    xm._keras_mask = torch.tensor(MASK)
    out = layers.Dropout(0.5, seed=0)(xm, training=True)
    assert torch.equal(out._keras_mask, torch.tensor(MASK))
    out.sum().backward()
    assert set(x.grad.unique().tolist()) <= {0.0, 2.0}


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"rate": 1.5}, "rate"),
        ({"rate": -0.1}, "rate"),
        ({"rate": "0.5"}, "rate"),
        ({"rate": 0.5, "noise_shape": "abc"}, "noise_shape"),
        ({"rate": 0.5, "noise_shape": (None, 0)}, "noise_shape"),
        ({"rate": 0.5, "noise_shape": 3}, "noise_shape"),
        ({"rate": 0.5, "seed": "x"}, "seed"),
    ],
)
def test_dropout_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=rf"Dropout.*{match}"):
        layers.Dropout(**kwargs)


# ---------------------------------------------------------------- Embedding
@pytest.mark.parametrize("mask_zero", [False, True])
@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4)])
def test_embedding_parity(mask_zero, shape):
    x = RNG.randint(0, 7, size=shape).astype("int32")
    x[0, 0] = 0
    ours = layers.Embedding(7, 4, mask_zero=mask_zero, name="e")
    theirs = keras.layers.Embedding(7, 4, mask_zero=mask_zero, name="e")
    out = check_layer_parity(ours, theirs, x, grads=False)
    if mask_zero:
        np.testing.assert_array_equal(out._keras_mask.numpy(), x != 0)
    else:
        assert getattr(out, "_keras_mask", None) is None
    assert [w.shape for w in ours.get_weights()] == [(7, 4)]
    assert ours.weights[0] is ours.embeddings


def test_embedding_gradient_and_configs():
    ours = layers.Embedding(
        5,
        3,
        embeddings_initializer="he_normal",
        embeddings_regularizer="l2",
        embeddings_constraint="unit_norm",
        activity_regularizer="l1",
        name="e",
    )
    theirs = keras.layers.Embedding(
        5,
        3,
        embeddings_initializer="he_normal",
        embeddings_regularizer="l2",
        embeddings_constraint="unit_norm",
        activity_regularizer="l1",
        name="e",
    )
    x = np.array([[1, 2, 2], [4, 0, 1]])
    check_layer_parity(ours, theirs, x, grads=False)
    theirs_x = torch.tensor(x)
    keras_out = theirs(theirs_x)
    our_out = ours(torch.tensor(x))
    g = torch.randn(our_out.shape)
    (keras_out * g).sum().backward()
    (our_out * g).sum().backward()
    torch.testing.assert_close(ours.embeddings.grad, theirs.embeddings.value.grad)


def test_embedding_float_indices_weights_argument_and_errors():
    table = np.arange(12, dtype="float32").reshape(4, 3)
    layer = layers.Embedding(4, 3, weights=[table])
    assert layer.built
    np.testing.assert_array_equal(layer(np.array([[3.0, 1.0]])).detach()[0], table[[3, 1]])
    np.testing.assert_array_equal(layers.Embedding(4, 3, weights=table).get_weights()[0], table)
    for bad in (0, -1, 2.0, None):
        with pytest.raises(ValueError, match=r"Embedding.*input_dim"):
            layers.Embedding(bad, 3)
        with pytest.raises(ValueError, match=r"Embedding.*output_dim"):
            layers.Embedding(3, bad)
    with pytest.warns(UserWarning, match="input_length"):
        layers.Embedding(3, 2, input_length=5)
    with pytest.raises(ValueError, match=r"weight 'embedding.*/embeddings'.*\(4, 3\)"):
        layers.Embedding(4, 3, weights=[np.zeros((3, 3))])


# ---------------------------------------------------------------- Masking
@pytest.mark.parametrize("mask_value", [0.0, -1.0])
def test_masking_parity(mask_value):
    x = X3.copy()
    x[0, 1] = mask_value
    x[1, 3] = mask_value
    x[1, 0, :2] = mask_value  # a partly padded step stays
    ours = layers.Masking(mask_value=mask_value, name="m")
    theirs = keras.layers.Masking(mask_value=mask_value, name="m")
    out = check_layer_parity(ours, theirs, x)
    np.testing.assert_array_equal(
        out._keras_mask.numpy(), [[True, False, True, True], [True, True, True, False]]
    )
    assert (out[0, 1] == 0).all()


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64"])
def test_masking_zero_value_treats_every_number_as_keras(dtype):
    """`mask_value=0`: NaN, infinities, tiny numbers and negative zeros decide the mask as
    `!=` does; masked steps come out as positive zeros, the others as they are."""
    nan, inf = float("nan"), float("inf")
    rows = [[0.0, -0.0], [nan, 0.0], [0.0, -inf], [1e-30, -0.0], [-0.0, -0.0], [2.0, 3.0]]
    x = torch.tensor([rows], dtype=getattr(torch, dtype))
    with torch.no_grad():
        out = layers.Masking(dtype=dtype)(x)
    assert torch.equal(out._keras_mask, torch.any(x != 0, dim=-1))
    theirs = keras.ops.convert_to_numpy(keras.layers.Masking(dtype=dtype)(x.numpy()))
    np.testing.assert_array_equal(out.numpy(), theirs)
    np.testing.assert_array_equal(np.signbit(out.numpy()), np.signbit(theirs))


def test_masking_zero_value_gradients_and_other_dtypes():
    x = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]], requires_grad=True)
    layers.Masking()(x).sum().backward()
    assert x.grad.tolist() == [[[1.0, 1.0], [0.0, 0.0]]]  # none to the masked step, as Keras
    ints = torch.tensor([[[0, 0], [-(2**31), 0], [0, 5]]], dtype=torch.int32)
    assert layers.Masking(dtype="int32")(ints)._keras_mask.tolist() == [[False, True, True]]
    empty = layers.Masking()(torch.zeros(2, 3, 0))
    assert empty._keras_mask.shape == (2, 3) and not empty._keras_mask.any()


@pytest.mark.parametrize("limit,expected", [(None, 1), (3, 2)])
def test_masking_works_on_one_thread_for_small_inputs(limit, expected, monkeypatch):
    """A small input is masked with one intra-op thread (no OpenMP helper left spinning
    on the cores a recurrent layer needs next); the caller's count comes back, also after
    an error."""
    from birnn.layers import core

    if limit is not None:
        monkeypatch.setattr(core, "_ONE_THREAD_MAX", limit)
    seen = []
    step_mask = core.Masking._step_mask

    def spy(self, inputs, keepdim):
        seen.append(torch.get_num_threads())
        return step_mask(self, inputs, keepdim)

    monkeypatch.setattr(core.Masking, "_step_mask", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = layers.Masking()(torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]))
        assert seen == [expected, expected] and torch.get_num_threads() == 2
        assert out._keras_mask.tolist() == [[True, False]]
        monkeypatch.setattr(core.Masking, "_step_mask", lambda *args, **kwargs: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            layers.Masking()(torch.ones(1, 2, 2))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_masking_feeds_dense_and_pooling():
    x = torch.tensor(X3)
    x[:, 2] = 0.0
    masked = layers.Masking()(x)
    dense_out = layers.Dense(2)(masked)
    assert torch.equal(dense_out._keras_mask, masked._keras_mask)
    pooled = layers.GlobalAveragePooling1D()(masked)
    manual = x[:, [0, 1, 3]].mean(1)
    torch.testing.assert_close(pooled, manual)


# ---------------------------------------------------------------- Flatten
@pytest.mark.parametrize("data_format", [None, "channels_first", "channels_last"])
@pytest.mark.parametrize("shape", [(2, 3), (2, 4, 5), (2, 3, 2, 4)])
def test_flatten_parity(data_format, shape):
    x = RNG.randn(*shape).astype("float32")
    ours = layers.Flatten(data_format=data_format, name="f")
    theirs = keras.layers.Flatten(data_format=data_format, name="f")
    check_layer_parity(ours, theirs, x)


def test_flatten_shapes_and_errors():
    assert layers.Flatten()(torch.zeros(3)).shape == (3, 1)
    assert layers.Flatten().compute_output_shape((None, None, 4)) == (None, None)
    with pytest.raises(ValueError, match="data_format"):
        layers.Flatten(data_format="channels_middle")


# ---------------------------------------------------------------- bad arguments and inputs
@pytest.mark.parametrize(
    "argument,value",
    [
        ("activation", "nope"),
        ("kernel_initializer", "nope"),
        ("bias_initializer", 3),
        ("kernel_regularizer", "nope"),
        ("bias_regularizer", "l3"),
        ("activity_regularizer", "nope"),
        ("kernel_constraint", "nope"),
        ("bias_constraint", {"class_name": "Nope", "config": {}}),
        ("dtype", "float7"),
    ],
)
def test_dense_bad_argument_names_layer_and_argument(argument, value):
    with pytest.raises(ValueError, match=rf"Dense: invalid value for argument `{argument}`"):
        layers.Dense(2, **{argument: value})


@pytest.mark.parametrize(
    "argument", ["embeddings_initializer", "embeddings_regularizer", "embeddings_constraint"]
)
def test_embedding_bad_argument_names_layer_and_argument(argument):
    with pytest.raises(ValueError, match=rf"Embedding: invalid value for argument `{argument}`"):
        layers.Embedding(4, 2, **{argument: "nope"})


def test_activation_bad_argument_names_layer():
    with pytest.raises(ValueError, match=r"Activation: invalid value for argument `activation`"):
        layers.Activation(3)


def test_dense_ragged_list_input_names_layer():
    with pytest.raises(ValueError, match=r"dense_ragged.*argument `inputs`"):
        layers.Dense(2, name="dense_ragged")([[1.0, 2.0], [1.0]])


@pytest.mark.parametrize(
    "noise_shape,shape",
    [((2, 1), (2, 3, 4)), ((None, 3, 4), (2, 5, 4)), ((None, 1, 1, 4), (2, 3, 4))],
)
def test_dropout_noise_shape_must_fit_inputs(noise_shape, shape):
    layer = layers.Dropout(0.5, noise_shape=noise_shape, name="drop_ns")
    assert torch.equal(layer(torch.ones(shape)), torch.ones(shape))  # inference: no check
    with pytest.raises(ValueError, match=r"drop_ns.*noise_shape"):
        layer(torch.ones(shape), training=True)


@pytest.mark.parametrize("index", [-1, 5, 6])
def test_embedding_indices_out_of_range(index):
    # Keras on torch raises IndexError for 5 and silently wraps -1.
    layer = layers.Embedding(5, 2, name="emb_range")
    with pytest.raises(ValueError, match=r"emb_range.*\[0, input_dim=5\)"):
        layer(torch.tensor([[0, index]]))
    assert layer(torch.tensor([[0, 4]])).shape == (1, 2, 2)
    assert layer(torch.zeros(0, 3, dtype=torch.int64)).shape == (0, 3, 2)


@pytest.mark.parametrize("mask_value", ["0", None, [0.0, 1.0]])
def test_masking_mask_value_must_be_a_number(mask_value):
    with pytest.raises(TypeError, match=r"Masking.*mask_value"):
        layers.Masking(mask_value=mask_value)


def test_masking_accepts_numpy_and_tensor_scalars():
    assert layers.Masking(np.float32(-1.0)).get_config()["mask_value"] == -1.0
    assert layers.Masking(torch.tensor(2)).mask_value == 2
