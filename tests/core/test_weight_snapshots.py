"""`get_weights()` returns snapshots; `set_weights()` assigns all arrays or none."""

import numpy as np
import pytest
import torch

from birnn import Input, Model, Sequential
from birnn.layers import LSTM, Dense, Layer


def _model():
    model = Sequential([Input(shape=(4, 3)), LSTM(5, name="enc"), Dense(2, name="head")])
    model.compile(loss="mse", optimizer="adam")
    return model


def test_model_layer_and_sequential_share_one_implementation():
    assert Model.get_weights is Layer.get_weights and Sequential.get_weights is Layer.get_weights
    assert Model.set_weights is Layer.set_weights and Sequential.set_weights is Layer.set_weights


def test_snapshot_restores_the_weights_after_fit():
    model = _model()
    x, y = np.random.rand(16, 4, 3).astype("float32"), np.random.rand(16, 2).astype("float32")
    best = model.get_weights()
    frozen = [w.copy() for w in best]
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    for kept, original in zip(best, frozen):
        np.testing.assert_array_equal(kept, original)  # the snapshot did not follow `fit`
    assert any(not np.array_equal(w, o) for w, o in zip(model.get_weights(), frozen))
    model.set_weights(best)
    for restored, original in zip(model.get_weights(), frozen):
        np.testing.assert_array_equal(restored, original)


def test_writing_into_a_returned_array_leaves_the_model_alone():
    model = _model()
    before = [w.detach().clone() for w in model.weights]
    arrays = model.get_weights()
    for array in arrays:
        array[...] = 7.0
    for weight, original in zip(model.weights, before):
        assert torch.equal(weight.detach(), original)
    for array, weight in zip(model.get_weights(), model.weights):
        assert not np.shares_memory(array, weight.detach().numpy())


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.array([["a"] * 2] * 5), "'enc'.*head/kernel.*str"),
        (np.empty((5, 2), dtype=object), "head/kernel.*object"),
        (np.ones((5, 2), dtype=np.complex64), "head/kernel.*complex"),
        (torch.ones(5, 2, dtype=torch.complex64), "head/kernel.*complex"),
        ([[1.0, 2.0]] * 4 + [[1.0]], "head/kernel"),  # ragged
    ],
)
def test_a_bad_fourth_array_leaves_every_weight_unchanged(bad, message):
    model = _model()
    before = model.get_weights()
    new = [w + 1.0 for w in before]
    new[3] = bad
    with pytest.raises((ValueError, TypeError), match=message.replace("'enc'.*", "")):
        model.set_weights(new)
    for weight, original in zip(model.get_weights(), before):
        np.testing.assert_array_equal(weight, original)


def test_set_weights_error_names_the_layer_and_the_weight():
    model = _model()
    new = model.get_weights()
    new[1] = np.full(new[1].shape, "x")
    with pytest.raises(TypeError, match=r"Layer '.*'.*real numbers.*'.*enc.*recurrent_kernel'"):
        model.set_weights(new)


def test_set_weights_accepts_integers_bools_and_tensors():
    layer = Dense(2)
    layer.build((None, 3))
    kernel = np.arange(6).reshape(3, 2)
    layer.set_weights([kernel, torch.tensor([True, False])])
    np.testing.assert_array_equal(layer.get_weights()[0], kernel.astype("float32"))
    np.testing.assert_array_equal(layer.get_weights()[1], [1.0, 0.0])
    assert layer.get_weights()[0].dtype == np.float32


def test_bidirectional_initial_weights_are_all_or_nothing():
    from birnn.layers import Bidirectional

    donor = Bidirectional(LSTM(2))
    donor.build((1, 3, 4))
    weights = [w + 1.0 for w in donor.get_weights()]
    weights[4] = np.full(weights[4].shape, "x")  # the backward layer's recurrent kernel
    layer = Bidirectional(LSTM(2), weights=weights)
    with pytest.raises(TypeError, match="backward_lstm.*recurrent_kernel"):
        layer.build((1, 3, 4))
    # The forward layer kept its own initial weights, not the given ones.
    assert not np.array_equal(layer.forward_layer.get_weights()[0], weights[0])
