"""CTC loss and decoding against Keras 3.15's `losses.CTC`, `losses.ctc` and `ops.ctc_decode`."""

import keras
import numpy as np
import pytest
import torch

import birnn
from birnn.ops import ctc_decode, ctc_loss
from tests.keras_oracle import assert_close, to_numpy

RNG = np.random.RandomState(0)
Y_PRED = RNG.randn(3, 7, 5).astype("float32")
Y_TRUE = np.array([[1, 2, 2, 0], [3, 0, 0, 0], [4, 1, 3, 2]])


@pytest.mark.parametrize(
    "y_true,y_pred",
    [
        (Y_TRUE, Y_PRED),
        (Y_TRUE, np.exp(Y_PRED) / np.exp(Y_PRED).sum(-1, keepdims=True)),  # softmax outputs
        (Y_TRUE.astype("float32"), Y_PRED),  # float labels
        (np.array([[1, 1, 1, 1]]), Y_PRED[:1, :6]),  # no alignment fits: inf
        (np.array([[1, 0, 2, 0]]), Y_PRED[:1]),  # a hole counts as padding
    ],
    ids=["logits", "softmax", "float_labels", "impossible", "hole"],
)
def test_loss_function_parity(y_true, y_pred):
    ours = birnn.losses.ctc(y_true, y_pred)
    theirs = keras.losses.ctc(y_true, y_pred)
    np.testing.assert_allclose(to_numpy(ours), to_numpy(theirs), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", None, "mean"])
def test_loss_class_parity_and_gradient(reduction):
    pred_k = torch.tensor(Y_PRED, requires_grad=True)
    pred_o = torch.tensor(Y_PRED, requires_grad=True)
    weights = np.array([1.0, 0.5, 2.0], "float32")
    theirs = keras.losses.CTC(reduction=reduction)(Y_TRUE, pred_k, sample_weight=weights)
    ours = birnn.losses.CTC(reduction=reduction)(Y_TRUE, pred_o, sample_weight=weights)
    assert_close(ours, theirs, 1e-5, "loss")
    theirs.sum().backward()
    ours.sum().backward()
    assert_close(pred_o.grad, pred_k.grad, 1e-5, "gradient")
    config = birnn.losses.CTC(reduction=reduction).get_config()
    assert config == keras.losses.CTC(reduction=reduction).get_config()


def test_ops_ctc_loss_parity():
    lengths = np.array([3, 1, 4])
    steps = np.array([7, 5, 6])
    ours = ctc_loss(Y_TRUE, Y_PRED, lengths, steps, mask_index=0)
    theirs = keras.ops.ctc_loss(Y_TRUE, Y_PRED, lengths, steps, mask_index=0)
    assert_close(ours, theirs, 1e-5)
    blank_last = np.where(Y_TRUE == 4, 1, Y_TRUE)
    ours = ctc_loss(blank_last, Y_PRED, lengths, steps, mask_index=4)
    theirs = keras.ops.ctc_loss(blank_last, Y_PRED, lengths, steps, mask_index=4)
    assert_close(ours, theirs, 1e-5)


DECODE_CASES = [
    {"strategy": "greedy"},
    {"strategy": "greedy", "merge_repeated": False},
    {"strategy": "greedy", "mask_index": None},
    {"strategy": "greedy", "mask_index": 2},
    {"strategy": "beam_search"},
    {"strategy": "beam_search", "beam_width": 3, "top_paths": 3},
    {"strategy": "beam_search", "beam_width": 2, "top_paths": 2, "mask_index": None},
    {"strategy": "beam_search", "beam_width": 4, "merge_repeated": False},
]


@pytest.mark.parametrize("kwargs", DECODE_CASES, ids=lambda k: "-".join(map(str, k.values())))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_decode_parity(kwargs, seed):
    rng = np.random.RandomState(seed)
    inputs = (2 * rng.randn(4, 8, 5)).astype("float32")
    lengths = np.array([8, 5, 1, 7])
    ours = ctc_decode(inputs, lengths, **kwargs)
    theirs = keras.ops.ctc_decode(inputs, lengths, **kwargs)
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype and tuple(a.shape) == tuple(b.shape)
    np.testing.assert_array_equal(to_numpy(ours[0]), to_numpy(theirs[0]))
    assert_close(ours[1], theirs[1], 1e-4, "log probabilities")


def test_decode_greedy_of_softmax_outputs_and_errors():
    probs = torch.softmax(torch.tensor(Y_PRED), -1)
    ours = ctc_decode(probs, torch.tensor([7, 7, 3]))
    theirs = keras.ops.ctc_decode(probs, np.array([7, 7, 3]))
    np.testing.assert_array_equal(to_numpy(ours[0]), to_numpy(theirs[0]))
    assert_close(ours[1], theirs[1], 1e-5)
    with pytest.raises(ValueError, match="strategy"):
        ctc_decode(probs, [7, 7, 7], strategy="best")
    with pytest.raises(ValueError, match="sequence_lengths"):
        ctc_decode(probs, [7, 7])
    with pytest.raises(ValueError, match="top_paths"):
        ctc_decode(probs, [7, 7, 7], strategy="beam_search", beam_width=2, top_paths=3)


def test_compiled_with_ctc_loads_both_ways(tmp_path):
    def build(lib, loss):
        inputs = lib.Input((7, 3))
        x = lib.layers.Bidirectional(lib.layers.LSTM(4, return_sequences=True))(inputs)
        model = lib.Model(inputs, lib.layers.Dense(5, activation="softmax")(x))
        model.compile(optimizer="adam", loss=loss)
        return model

    x = RNG.randn(3, 7, 3).astype("float32")
    for loss in ("ctc", "CTC"):
        theirs = build(keras, keras.losses.CTC() if loss == "CTC" else "ctc")
        theirs.save(tmp_path / "k.keras")
        ours = birnn.models.load_model(tmp_path / "k.keras")
        assert np.isfinite(float(ours.train_on_batch(x, Y_TRUE)))
        ours = build(birnn, birnn.losses.CTC() if loss == "CTC" else "ctc")
        ours.save(tmp_path / "o.keras")
        back = keras.models.load_model(tmp_path / "o.keras")
        assert type(back.loss).__name__ == type(theirs.loss).__name__
