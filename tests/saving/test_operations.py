"""The Keras operations that carry masks in functional configs, against `keras.ops`."""

import numpy as np
import pytest
import torch
from keras.src.ops import numpy as keras_numpy_ops

import birnn
from birnn.saving import operations as O
from birnn.saving import serialization as S
from tests.keras_oracle import keras, to_numpy

_rng = np.random.default_rng(0)
X = _rng.integers(0, 3, size=(4, 6, 3)).astype("float32")
Y = _rng.integers(0, 3, size=(4, 6, 3)).astype("float32")
M1 = _rng.random((4, 6, 1)) > 0.5
M2 = _rng.random((4, 6, 3)) > 0.5

# (name, constructor kwargs, positional arguments, Keras function)
CASES = [
    ("NotEqual", {}, (X, 0.0), lambda x, y: keras.ops.not_equal(x, y)),
    ("NotEqual", {}, (X, Y), lambda x, y: keras.ops.not_equal(x, y)),
    ("Equal", {}, (X, 1.0), lambda x, y: keras.ops.equal(x, y)),
    ("LogicalOr", {}, (M1, M2), lambda x, y: keras.ops.logical_or(x, y)),
    ("LogicalAnd", {}, (M1, M2), lambda x, y: keras.ops.logical_and(x, y)),
    ("LogicalNot", {}, (M2,), lambda x: keras.ops.logical_not(x)),
    ("Any", {"axis": -1}, (X,), lambda x: keras.ops.any(x, axis=-1)),
    ("Any", {"axis": None}, (M2,), lambda x: keras.ops.any(x)),
    ("Any", {"axis": [0, 2], "keepdims": True}, (M2,), lambda x: keras.ops.any(x, [0, 2], True)),
    ("All", {"axis": 1}, (M2,), lambda x: keras.ops.all(x, axis=1)),
    ("ExpandDims", {"axis": -1}, (M2,), lambda x: keras.ops.expand_dims(x, -1)),
    ("ExpandDims", {"axis": 1}, (X,), lambda x: keras.ops.expand_dims(x, 1)),
    ("ZerosLike", {"dtype": "bool"}, (X,), lambda x: keras.ops.zeros_like(x, dtype="bool")),
    ("OnesLike", {"dtype": None}, (X,), lambda x: keras.ops.ones_like(x)),
    ("OnesLike", {"dtype": "bool"}, (X,), lambda x: keras.ops.ones_like(x, dtype="bool")),
    ("Concatenate", {"axis": 1}, ([M2, M2[:, :2]],), lambda xs: keras.ops.concatenate(xs, 1)),
    ("Concatenate", {"axis": -1}, ([X, Y],), lambda xs: keras.ops.concatenate(xs, -1)),
]
IDS = [f"{name}-{i}" for i, (name, *_) in enumerate(CASES)]


def _torch(value):
    if isinstance(value, list):
        return [_torch(v) for v in value]
    return torch.from_numpy(value) if isinstance(value, np.ndarray) else value


def _symbolic(lib, value):
    if isinstance(value, list):
        return [_symbolic(lib, v) for v in value]
    if not isinstance(value, np.ndarray):
        return value
    dtype = "bool" if value.dtype == bool else "float32"
    return lib.Input(shape=value.shape[1:], dtype=dtype)


@pytest.mark.parametrize(("name", "kwargs", "args", "keras_fn"), CASES, ids=IDS)
def test_operation_matches_keras(name, kwargs, args, keras_fn):
    op = O.OPERATIONS[name](**kwargs)
    expected = to_numpy(keras_fn(*args))
    actual = op(*[_torch(a) for a in args]).numpy()
    assert actual.dtype == expected.dtype
    np.testing.assert_array_equal(actual, expected)

    # Symbolic calls (what a loaded functional model does) give Keras's shape and dtype.
    ours = O.OPERATIONS[name](**kwargs)(*[_symbolic(birnn, a) for a in args])
    theirs = keras_fn(*[_symbolic(keras, a) for a in args])
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert ours.dtype == theirs.dtype


@pytest.mark.parametrize(("name", "kwargs"), [(c[0], c[1]) for c in CASES], ids=IDS)
def test_operation_config_is_keras_config(name, kwargs):
    ours = O.OPERATIONS[name](name="op", **kwargs)
    theirs = getattr(keras_numpy_ops, name)(name="op", **kwargs)
    assert ours.get_config() == theirs.get_config()
    config = S.serialize_keras_object(ours)
    assert config == {
        "module": "keras.src.ops.numpy",
        "class_name": name,
        "config": theirs.get_config(),
        "registered_name": name,
    }
    back = S.deserialize_keras_object(config)
    assert type(back) is type(ours) and back.get_config() == ours.get_config()


def test_operations_own_no_weights_and_pass_no_mask():
    op = O.Any(axis=-1)
    x = torch.ones(2, 3, 4)
    x._keras_mask = torch.ones(2, 3, dtype=torch.bool)
    out = op(x)
    assert getattr(out, "_keras_mask", None) is None
    assert op.get_weights() == [] and op.get_build_config() is None
    assert O.is_operation(op) and not O.is_operation(birnn.layers.Dense(2))


def test_unknown_keras_operation_is_reported():
    config = {
        "module": "keras.src.ops.numpy",
        "class_name": "Einsum",
        "config": {"name": "einsum", "subscripts": "ij->ji"},
        "registered_name": "Einsum",
    }
    with pytest.raises(birnn.saving.UnknownObjectError, match="Einsum"):
        S.deserialize_keras_object(config)
