"""activations / initializers / regularizers / constraints against Keras 3.15."""

import keras
import numpy as np
import pytest
import torch

from birnn import activations, constraints, initializers, regularizers
from tests.keras_oracle import to_numpy

KERAS_ACTIVATIONS = sorted(keras.src.activations.ALL_OBJECTS_DICT)
KERAS_INITIALIZERS = sorted(
    n
    for n in keras.src.initializers.ALL_OBJECTS_DICT
    if "stft" not in n.lower() and n not in ("Initializer", "initializer")
)
KERAS_REGULARIZERS = sorted(
    n for n in keras.src.regularizers.ALL_OBJECTS_DICT if n.lower() != "regularizer"
)
KERAS_CONSTRAINTS = sorted(
    n for n in keras.src.constraints.ALL_OBJECTS_DICT if n.lower() != "constraint"
)


# ---------------------------------------------------------------- activations
@pytest.mark.parametrize("name", KERAS_ACTIVATIONS)
def test_activation_matches_keras(name):
    x = np.random.RandomState(1).randn(3, 8).astype("float32") * 3
    ours = activations.get(name)
    assert activations.serialize(ours) == keras.activations.serialize(keras.activations.get(name))
    if name == "threshold":
        args = (0.5, -1.0)
    else:
        args = ()
    got = ours(torch.tensor(x), *args)
    if name == "sparsemax":  # Keras 3.15's torch sparsemax is wrong; check the definition
        assert torch.allclose(got.sum(-1), torch.ones(3))
        assert (got >= 0).all()
        return
    expected = keras.activations.get(name)(x, *args)
    np.testing.assert_allclose(got.numpy(), to_numpy(expected), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"negative_slope": 0.1},
        {"max_value": 6.0},
        {"max_value": 2.5},
        {"threshold": 0.5},
        {"negative_slope": 0.3, "max_value": 4.0, "threshold": 1.0},
        {"negative_slope": 0.3, "threshold": -0.5},
    ],
)
def test_relu_arguments_match_keras(kwargs):
    x = np.linspace(-8, 8, 41).astype("float32")
    got = activations.relu(torch.tensor(x), **kwargs)
    np.testing.assert_allclose(got.numpy(), to_numpy(keras.activations.relu(x, **kwargs)), 1e-6)


@pytest.mark.parametrize("approximate", [False, True])
def test_gelu_approximate_matches_keras(approximate):
    x = np.linspace(-4, 4, 17).astype("float32")
    got = activations.gelu(torch.tensor(x), approximate=approximate)
    expected = keras.activations.gelu(x, approximate=approximate)
    np.testing.assert_allclose(got.numpy(), to_numpy(expected), atol=1e-6)


def test_sparsemax_reference():
    z = np.array([[1.0, 0.5, -2.0, 0.9]], dtype="float32")
    # Martins & Astudillo: tau = (1 + 0.9 + 0.5 - 1) / 3
    expected = np.maximum(z - (1.0 + 0.9 + 0.5 - 1) / 3, 0)
    np.testing.assert_allclose(activations.sparsemax(torch.tensor(z)).numpy(), expected, 1e-6)


def test_softmax_axis():
    x = torch.randn(2, 3, 4)
    assert torch.allclose(activations.softmax(x, axis=1).sum(1), torch.ones(2, 4))
    assert torch.allclose(activations.softmax(x, axis=(1, 2)).sum((1, 2)), torch.ones(2))
    assert torch.allclose(activations.log_softmax(x, axis=(1, 2)).exp().sum((1, 2)), torch.ones(2))


def test_activation_get_variants():
    assert activations.get(None) is activations.linear
    assert activations.get("swish") is activations.silu
    assert activations.get(keras.activations.relu) is activations.relu
    assert activations.serialize(keras.activations.tanh) == "tanh"
    fn = torch.tanh
    assert activations.get(fn) is fn
    config = {"module": "keras.activations", "class_name": "function", "config": "relu"}
    assert activations.get({**config, "registered_name": None}) is activations.relu
    assert activations.deserialize("elu") is activations.elu


def test_custom_activation_serialization_matches_keras():
    def my_activation(x):
        return 2 * x

    expected = keras.activations.serialize(my_activation)
    got = activations.serialize(my_activation)
    assert {k: v for k, v in got.items() if k != "module"} == {
        k: v for k, v in expected.items() if k != "module"
    }
    assert activations.deserialize(got, custom_objects={"my_activation": my_activation}) is (
        my_activation
    )


@pytest.mark.parametrize("bad", ["foo", 3, {"class_name": "function", "config": "nope"}])
def test_unknown_activation_raises(bad):
    with pytest.raises(ValueError, match="activation function identifier"):
        activations.get(bad)


# ---------------------------------------------------------------- initializers
@pytest.mark.parametrize("name", KERAS_INITIALIZERS)
def test_initializer_serialization_matches_keras(name):
    if name.lower() == "constant":
        ours, theirs = initializers.Constant(2.0), keras.initializers.Constant(2.0)
    else:
        ours, theirs = initializers.get(name), keras.initializers.get(name)
    expected = keras.initializers.serialize(theirs)
    assert initializers.serialize(ours) == expected
    back = initializers.deserialize(expected)
    assert type(back) is type(ours)
    assert initializers.serialize(back) == expected


@pytest.mark.parametrize(
    "initializer",
    [
        keras.initializers.GlorotUniform(seed=3),
        keras.initializers.HeNormal(seed=1),
        keras.initializers.Orthogonal(gain=2.0, seed=5),
        keras.initializers.RandomNormal(mean=1.0, stddev=0.5, seed=2),
        keras.initializers.RandomUniform(-2.0, 1.0),
        keras.initializers.TruncatedNormal(stddev=0.2),
        keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal", seed=4),
        keras.initializers.VarianceScaling(distribution="normal", input_axes=[0], output_axes=[1]),
    ],
    ids=lambda i: type(i).__name__,
)
def test_initializer_with_arguments_round_trips_keras_config(initializer):
    expected = keras.initializers.serialize(initializer)
    ours = initializers.get(expected)
    assert initializers.serialize(ours) == expected


STATS = [
    # (initializer, shape, expected mean, expected std, bound or None)
    ("glorot_uniform", (200, 300), 0.0, np.sqrt(2 / 500), np.sqrt(6 / 500)),
    ("glorot_normal", (200, 300), 0.0, np.sqrt(2 / 500), 2 * np.sqrt(2 / 500) / 0.8796),
    ("he_uniform", (200, 300), 0.0, np.sqrt(2 / 200), np.sqrt(6 / 200)),
    ("he_normal", (200, 300), 0.0, np.sqrt(2 / 200), 2 * np.sqrt(2 / 200) / 0.8796),
    ("lecun_uniform", (200, 300), 0.0, np.sqrt(1 / 200), np.sqrt(3 / 200)),
    ("lecun_normal", (200, 300), 0.0, np.sqrt(1 / 200), 2 * np.sqrt(1 / 200) / 0.8796),
    ("random_normal", (300, 300), 0.0, 0.05, None),
    ("random_uniform", (300, 300), 0.0, 0.1 / np.sqrt(12), 0.05),
    ("truncated_normal", (300, 300), 0.0, 0.05 * 0.8796, 0.1),
    ("glorot_uniform", (3, 40, 50), 0.0, np.sqrt(2 / 270), np.sqrt(6 / 270)),
]


@pytest.mark.parametrize("name,shape,mean,std,bound", STATS)
def test_initializer_statistics(name, shape, mean, std, bound):
    values = initializers.get(name)(shape, dtype="float32")
    assert isinstance(values, torch.Tensor)
    assert tuple(values.shape) == shape and values.dtype == torch.float32
    assert abs(values.mean().item() - mean) < 0.05 * std + 1e-3
    assert abs(values.std().item() - std) / std < 0.03
    if bound is not None:
        assert values.abs().max().item() <= bound * (1 + 1e-6)
    theirs = to_numpy(keras.initializers.get(name)(shape))
    assert abs(theirs.std() - values.std().item()) / std < 0.05


def test_seeded_initializers_are_deterministic():
    for cls in (initializers.GlorotUniform, initializers.HeNormal, initializers.Orthogonal):
        a = cls(seed=7)((5, 6))
        assert torch.equal(a, cls(seed=7)((5, 6)))
        assert torch.equal(a, cls(seed=7)((5, 6)))  # same instance values on every call
        assert not torch.equal(a, cls(seed=8)((5, 6)))
    torch.manual_seed(0)
    a = initializers.GlorotUniform()((4, 4))
    torch.manual_seed(0)
    assert torch.equal(a, initializers.GlorotUniform()((4, 4)))
    assert not torch.equal(a, initializers.GlorotUniform()((4, 4)))


@pytest.mark.parametrize("shape", [(6, 6), (4, 9), (9, 4), (2, 3, 8)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal_is_orthogonal(shape, gain):
    w = initializers.Orthogonal(gain=gain, seed=1)(shape).reshape(-1, shape[-1]).double()
    rows, cols = w.shape
    gram = w @ w.T if rows < cols else w.T @ w
    assert torch.allclose(gram, gain**2 * torch.eye(min(rows, cols), dtype=w.dtype), atol=1e-5)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_orthogonal_in_half_precision_and_an_lstm_built_in_it(dtype):
    """torch has no QR for 16-bit floats: the matrix is made in float32, then cast."""
    from birnn.layers import LSTM

    tdtype = getattr(torch, dtype)
    w = initializers.Orthogonal(gain=2.0, seed=3)((6, 4), dtype=dtype)
    assert w.dtype == tdtype
    reference = initializers.Orthogonal(gain=2.0, seed=3)((6, 4))
    assert torch.equal(w, reference.to(tdtype))
    layer = LSTM(5, dtype=dtype)
    out = layer(torch.randn(2, 3, 4))
    kernel = layer.cell.recurrent_kernel
    assert out.dtype == kernel.dtype == tdtype and kernel.shape == (5, 20)
    gram = kernel.detach().float() @ kernel.detach().float().T  # orthonormal rows
    assert torch.allclose(gram, torch.eye(5), atol=0.02)
    assert torch.isfinite(out.float()).all()


def test_orthogonal_rejects_vectors():
    with pytest.raises(ValueError, match="rank >= 2"):
        initializers.Orthogonal()((3,))


def test_constant_ones_zeros_identity_dtypes():
    assert torch.equal(initializers.get("ones")((2,), dtype="int32"), torch.ones(2).int())
    assert initializers.get("zeros")((2, 2), dtype="float64").dtype == torch.float64
    assert torch.equal(initializers.Constant(1.5)((2,)), torch.full((2,), 1.5))
    assert torch.equal(initializers.Identity(gain=2.0)((2, 3)), 2 * torch.eye(2, 3))
    assert initializers.get("he_uniform")((3, 3), dtype="float16").dtype == torch.float16
    with pytest.raises(ValueError, match="2D"):
        initializers.Identity()((2, 2, 2))


def test_identity_keeps_gain_in_config():
    ident = initializers.deserialize(initializers.serialize(initializers.Identity(gain=3.0)))
    assert ident.gain == 3.0


def test_compute_fans_matches_keras():
    from keras.src.initializers.random_initializers import compute_fans

    for shape in [(), (7,), (3, 5), (2, 3, 5), (2, 2, 3, 5)]:
        assert initializers.compute_fans(shape) == compute_fans(shape)


def test_initializer_get_variants():
    assert initializers.get(None) is None
    assert isinstance(initializers.get(initializers.Orthogonal), initializers.Orthogonal)
    init = initializers.HeNormal(seed=1)
    assert initializers.get(init) is init
    array = np.arange(6, dtype="float32").reshape(2, 3)
    from_array = initializers.get(array)
    assert torch.equal(from_array((2, 3)), torch.tensor(array))
    with pytest.raises(ValueError, match="shape"):
        from_array((3, 2))
    assert isinstance(initializers.get("normal"), initializers.RandomNormal)
    assert isinstance(initializers.get("GlorotUniform"), initializers.GlorotUniform)


def test_initializer_argument_errors():
    with pytest.raises(ValueError, match="Could not interpret initializer identifier: 'foo'"):
        initializers.get("foo")
    with pytest.raises(ValueError, match="scale"):
        initializers.VarianceScaling(scale=0)
    with pytest.raises(ValueError, match="mode"):
        initializers.VarianceScaling(mode="fan_x")
    with pytest.raises(ValueError, match="distribution"):
        initializers.VarianceScaling(distribution="cauchy")
    with pytest.raises(ValueError, match="seed"):
        initializers.GlorotUniform(seed="abc")


# ---------------------------------------------------------------- regularizers
@pytest.mark.parametrize("name", KERAS_REGULARIZERS)
def test_regularizer_serialization_matches_keras(name):
    expected = keras.regularizers.serialize(keras.regularizers.get(name))
    assert regularizers.serialize(regularizers.get(name)) == expected
    assert regularizers.serialize(regularizers.deserialize(expected)) == expected


@pytest.mark.parametrize(
    "ours,theirs",
    [
        (regularizers.L1(0.3), keras.regularizers.L1(0.3)),
        (regularizers.L2(0.2), keras.regularizers.L2(0.2)),
        (regularizers.L1L2(0.1, 0.2), keras.regularizers.L1L2(0.1, 0.2)),
        (regularizers.L1L2(l2=0.5), keras.regularizers.L1L2(l2=0.5)),
        (
            regularizers.OrthogonalRegularizer(0.1, "columns"),
            keras.regularizers.OrthogonalRegularizer(0.1, "columns"),
        ),
        (regularizers.OrthogonalRegularizer(0.2), keras.regularizers.OrthogonalRegularizer(0.2)),
    ],
    ids=lambda r: type(r).__name__,
)
def test_regularizer_values_match_keras(ours, theirs):
    w = np.random.RandomState(0).randn(4, 5).astype("float32")
    got = ours(torch.tensor(w))
    assert got.ndim == 0
    np.testing.assert_allclose(got.item(), to_numpy(theirs(torch.tensor(w))), rtol=1e-5)
    assert regularizers.serialize(ours) == keras.regularizers.serialize(theirs)


def test_regularizer_get_variants_and_errors():
    assert regularizers.get(None) is None
    assert isinstance(regularizers.get("l1l2"), regularizers.L1L2)  # Keras's names
    with pytest.raises(ValueError, match="l1_l2"):  # refused by Keras 3 too
        regularizers.get("l1_l2")
    assert isinstance(regularizers.get(regularizers.L2), regularizers.L2)
    fn = lambda w: w.sum()  # noqa: E731
    assert regularizers.get(fn) is fn
    with pytest.raises(ValueError, match="Could not interpret regularizer identifier: 'foo'"):
        regularizers.get("foo")
    with pytest.raises(ValueError, match="l2"):
        regularizers.L2(-1.0)
    with pytest.raises(ValueError, match="l1"):
        regularizers.L1(float("nan"))
    with pytest.raises(ValueError, match="mode"):
        regularizers.OrthogonalRegularizer(mode="diag")


# ---------------------------------------------------------------- constraints
@pytest.mark.parametrize("name", KERAS_CONSTRAINTS)
def test_constraint_serialization_matches_keras(name):
    expected = keras.constraints.serialize(keras.constraints.get(name))
    assert constraints.serialize(constraints.get(name)) == expected
    assert constraints.serialize(constraints.deserialize(expected)) == expected


@pytest.mark.parametrize(
    "ours,theirs",
    [
        (constraints.MaxNorm(), keras.constraints.MaxNorm()),
        (constraints.MaxNorm(1.5, axis=1), keras.constraints.MaxNorm(1.5, axis=1)),
        (constraints.MaxNorm(1.0, axis=[0, 1]), keras.constraints.MaxNorm(1.0, axis=[0, 1])),
        (constraints.NonNeg(), keras.constraints.NonNeg()),
        (constraints.UnitNorm(), keras.constraints.UnitNorm()),
        (constraints.UnitNorm(axis=1), keras.constraints.UnitNorm(axis=1)),
        (constraints.MinMaxNorm(0.5, 1.5), keras.constraints.MinMaxNorm(0.5, 1.5)),
        (
            constraints.MinMaxNorm(1.0, 2.0, rate=0.5, axis=1),
            keras.constraints.MinMaxNorm(1.0, 2.0, rate=0.5, axis=1),
        ),
    ],
    ids=lambda c: type(c).__name__,
)
def test_constraint_values_match_keras(ours, theirs):
    w = np.random.RandomState(0).randn(4, 5).astype("float32") * 2
    np.testing.assert_allclose(ours(torch.tensor(w)).numpy(), to_numpy(theirs(w)), atol=1e-6)
    assert constraints.serialize(ours) == keras.constraints.serialize(theirs)


def test_constraint_get_variants_and_errors():
    assert constraints.get(None) is None
    assert isinstance(constraints.get("MaxNorm"), constraints.MaxNorm)
    assert isinstance(constraints.get(constraints.NonNeg), constraints.NonNeg)
    with pytest.raises(ValueError, match="Could not interpret constraint identifier: 'foo'"):
        constraints.get("foo")
    with pytest.raises(ValueError, match="Unknown_Class|Could not interpret"):
        constraints.deserialize({"class_name": "Unknown_Class", "config": {}})


def test_custom_class_serialization_and_custom_objects():
    class Clip(constraints.Constraint):
        def __init__(self, limit=1.0):
            self.limit = limit

        def __call__(self, w):
            return w.clamp(-self.limit, self.limit)

        def get_config(self):
            return {"limit": self.limit}

    config = constraints.serialize(Clip(2.0))
    assert config["class_name"] == "Clip" and config["registered_name"] == "Clip"
    assert config["config"] == {"limit": 2.0}
    back = constraints.deserialize(config, custom_objects={"Clip": Clip})
    assert isinstance(back, Clip) and back.limit == 2.0


# ---------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: initializers.Constant("a"), r"Constant: argument `value`"),
        (lambda: initializers.Constant(None), r"Constant: argument `value`"),
        (lambda: initializers.Identity(gain="2"), r"Identity: argument `gain`"),
        (lambda: initializers.RandomNormal(stddev="0.1"), r"RandomNormal: argument `stddev`"),
        (lambda: initializers.TruncatedNormal(mean=[0.0]), r"TruncatedNormal: argument `mean`"),
        (lambda: initializers.RandomUniform(minval=None), r"RandomUniform: argument `minval`"),
        (lambda: initializers.Orthogonal(gain="a"), r"Orthogonal: argument `gain`"),
        (lambda: initializers.VarianceScaling(scale="2"), r"VarianceScaling: argument `scale`"),
        (lambda: constraints.MaxNorm("2"), r"MaxNorm: argument `max_value`"),
        (lambda: constraints.MaxNorm(axis="0"), r"MaxNorm: argument `axis`"),
        (lambda: constraints.UnitNorm(axis=[0.5]), r"UnitNorm: argument `axis`"),
        (lambda: constraints.MinMaxNorm(rate=None), r"MinMaxNorm: argument `rate`"),
    ],
)
def test_non_numeric_arguments_raise_type_error(make, match):
    with pytest.raises(TypeError, match=match):
        make()


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: constraints.MaxNorm(-1.0), r"MaxNorm: argument `max_value` must be >= 0"),
        (lambda: constraints.MinMaxNorm(min_value=-0.5), r"MinMaxNorm: argument `min_value`"),
        (lambda: constraints.MinMaxNorm(2.0, 1.0), r"MinMaxNorm: argument `max_value`"),
        (lambda: constraints.MinMaxNorm(rate=1.5), r"MinMaxNorm: argument `rate`.*\[0.0, 1.0\]"),
    ],
)
def test_out_of_range_constraint_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_numeric_arguments_accept_numpy_scalars_and_axis_none():
    assert initializers.Constant(np.float32(1.5)).get_config() == {"value": 1.5}
    assert initializers.RandomNormal(stddev=np.float64(0.2)).stddev == 0.2
    assert constraints.MaxNorm(np.int64(3), axis=None).get_config() == {
        "max_value": 3,
        "axis": None,
    }
    w = torch.tensor([[3.0, 0.0], [4.0, 0.0]])
    torch.testing.assert_close(constraints.MaxNorm(1.0, axis=None)(w), w / 5, atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", [(2, -1), (2.5,), "ab", None, (True, 2)])
def test_initializer_bad_shape(shape):
    with pytest.raises(ValueError, match=r"Initializer: argument `shape`"):
        initializers.GlorotUniform()(shape)
