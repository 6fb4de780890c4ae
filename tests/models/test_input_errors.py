"""Bad model inputs and targets raise errors naming the input or argument."""

import numpy as np
import pytest
import torch

from birnn import Input, Model, Sequential, losses
from birnn.layers import Dense


def _x():
    return np.ones((2, 3), "float32")


def test_unknown_dict_key_for_a_single_input_model_names_the_input():
    a = Input(shape=(3,), name="a")
    model = Model(a, Dense(2)(a))
    with pytest.raises(ValueError, match=r"'a'.*\['x'\]"):
        model({"x": _x()})
    with pytest.raises(ValueError, match=r"'a'.*\['x'\]"):
        model.predict({"x": _x()}, verbose=0)
    assert model({"a": _x()}).shape == (2, 2)


def test_unknown_dict_key_for_a_sequential_model_names_the_input():
    model = Sequential([Input(shape=(3,), name="features"), Dense(2)], name="seq")
    with pytest.raises(ValueError, match=r"'seq'.*'features'.*\['x'\]"):
        model({"x": _x()})
    with pytest.raises(ValueError, match=r"'seq'.*'features'.*\['x'\]"):
        model.predict({"x": _x()}, verbose=0)
    assert model({"features": _x()}).shape == (2, 2)


@pytest.mark.parametrize(
    "loss",
    ["mse", "mae", "mape", "msle", "huber", "log_cosh", "hinge", "poisson", "kld"],
)
def test_y_shape_mismatch_names_the_arguments(loss):
    model = Sequential([Input(shape=(3,)), Dense(2)])
    model.compile(loss=loss, optimizer="sgd")
    with pytest.raises(ValueError, match=r"`y_true`.*`y_pred`.*\(4, 5\).*\(4, 2\)"):
        model.fit(np.ones((4, 3), "float32"), np.ones((4, 5), "float32"), verbose=0)


def test_broadcastable_targets_still_work():
    # Keras broadcasts `(batch, 1)` targets against `(batch, units)` predictions.
    value = losses.mean_squared_error(torch.ones(4, 1), torch.zeros(4, 2))
    assert value.shape == (4,) and torch.all(value == 1)
