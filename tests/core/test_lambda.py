"""Lambda against Keras 3.15: calls, masks, shapes, configs, and the safe-mode rule for files."""

import keras
import numpy as np
import pytest
import torch

import birnn
from birnn import layers
from birnn.saving import SavingError
from tests.core._parity import check_layer_parity
from tests.keras_oracle import assert_close

X = np.random.RandomState(0).randn(2, 3, 4).astype("float32")
MASK = np.array([[1, 1, 0], [1, 0, 0]], dtype=bool)


def triple(x):
    return x * 3.0


def scaled(x, factor=1.0):
    return x * factor


@pytest.mark.parametrize(
    "kwargs",
    [
        {"function": triple},
        {"function": scaled, "arguments": {"factor": 0.5}},
        {"function": lambda x: x[:, :2], "output_shape": (2, 4)},
        {"function": lambda x: x.sum(-1)},
    ],
    ids=["named", "arguments", "output_shape", "inferred_shape"],
)
def test_parity(kwargs):
    ours, theirs = layers.Lambda(name="lam", **kwargs), keras.layers.Lambda(name="lam", **kwargs)
    check_layer_parity(ours, theirs, X, check_config=False)


@pytest.mark.parametrize(
    "mask",
    [None, lambda inputs, mask: mask, lambda inputs, mask: inputs[..., 0] > 0],
    ids=["dropped", "passed", "computed"],
)
def test_masks(mask):
    ours, theirs = layers.Lambda(triple, mask=mask), keras.layers.Lambda(triple, mask=mask)
    check_layer_parity(ours, theirs, X, mask=MASK, check_config=False)


def test_mask_tensor_and_function_arguments():
    fixed = np.array([True, False, True])
    out = layers.Lambda(triple, mask=fixed)(torch.tensor(X))
    assert out._keras_mask.tolist() == fixed.tolist()
    seen = {}

    def spy(x, mask=None, training=None):
        seen.update(mask=mask, training=training)
        return x

    x = torch.tensor(X)
    x._keras_mask = torch.tensor(MASK)
    layers.Lambda(spy)(x, training=True)
    assert seen["training"] is True and seen["mask"].tolist() == MASK.tolist()


def test_config_matches_keras_and_round_trips():
    for kwargs in (
        {"function": lambda x, k=2.0: x * k, "arguments": {"k": 3.0}},
        {"function": triple, "output_shape": (3, 4), "mask": lambda i, m: m},
    ):
        ours, theirs = layers.Lambda(**kwargs), keras.layers.Lambda(**kwargs)
        mine, keras_config = ours.get_config(), theirs.get_config()
        assert mine.keys() == keras_config.keys()
        assert mine["arguments"] == keras_config["arguments"]
        with birnn.saving.serialization.lambdas.safe_mode_scope(False):
            back = layers.Lambda.from_config(
                keras_config if "lambda" in str(keras_config) else mine,
                custom_objects={"triple": triple},
            )
        assert_close(back(torch.tensor(X)), ours(torch.tensor(X)))


def _model(lib, function):
    inputs = lib.Input((3, 4))
    outputs = lib.layers.Dense(2)(lib.layers.Lambda(function, arguments={"k": 2.0})(inputs))
    return lib.Model(inputs, outputs)


def test_lambda_files_load_only_outside_safe_mode(tmp_path):
    ours = _model(birnn, lambda x, k: x * k)
    ours.save(tmp_path / "ours.keras")
    with pytest.raises(SavingError, match=r"`Lambda` layer whose `function`.*safe_mode=False"):
        birnn.models.load_model(tmp_path / "ours.keras")
    back = birnn.models.load_model(tmp_path / "ours.keras", safe_mode=False)
    assert_close(back.predict(X, verbose=0), ours.predict(X, verbose=0))

    with pytest.raises(ValueError, match="safe_mode=False"):
        keras.models.load_model(tmp_path / "ours.keras")
    in_keras = keras.models.load_model(tmp_path / "ours.keras", safe_mode=False)
    assert_close(in_keras.predict(X, verbose=0), ours.predict(X, verbose=0), 1e-6)

    # Keras's own file (Keras 3.15.1 itself fails on a lambda with defaults; birnn loads it).
    theirs = _model(keras, lambda x, k=1.0: x * k)
    theirs.save(tmp_path / "theirs.keras")
    with pytest.raises(SavingError, match="safe_mode=False"):
        birnn.models.load_model(tmp_path / "theirs.keras")
    loaded = birnn.models.load_model(tmp_path / "theirs.keras", safe_mode=False)
    assert_close(loaded.predict(X, verbose=0), theirs.predict(X, verbose=0), 1e-6)


def test_named_function_files_need_custom_objects(tmp_path):
    theirs = _model(keras, scaled_k)
    theirs.save(tmp_path / "named.keras")
    custom = {"scaled_k": scaled_k}
    loaded = birnn.models.load_model(tmp_path / "named.keras", custom_objects=custom)
    assert_close(loaded.predict(X, verbose=0), theirs.predict(X, verbose=0), 1e-6)
    with pytest.raises(birnn.saving.UnknownObjectError, match="scaled_k"):
        birnn.models.load_model(tmp_path / "named.keras")


def scaled_k(x, k=1.0):
    return x * k


def test_errors_name_the_argument():
    with pytest.raises(TypeError, match="function"):
        layers.Lambda(3)
    with pytest.raises(TypeError, match="arguments"):
        layers.Lambda(triple, arguments=[1])
    with pytest.raises(TypeError, match="output_shape"):
        layers.Lambda(triple, output_shape=3)
