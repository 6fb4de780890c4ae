"""Learning-rate schedules and `learning_rate.assign`, against Keras 3.15.1."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import birnn
from birnn import optimizers
from birnn.optimizers import schedules
from tests.keras_oracle import copy_weights, to_numpy

CASES = [
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 0.5}),
    (
        "ExponentialDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 0.5, "staircase": True},
    ),
    ("PiecewiseConstantDecay", {"boundaries": [3, 10], "values": [0.1, 0.05, 0.01]}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 12, "power": 2.0}),
    (
        "PolynomialDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 5, "end_learning_rate": 0.01, "cycle": True},
    ),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 4, "decay_rate": 0.3}),
    (
        "InverseTimeDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 4, "decay_rate": 0.3, "staircase": True},
    ),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 9, "alpha": 0.1}),
    (
        "CosineDecay",
        {
            "initial_learning_rate": 0.0,
            "decay_steps": 9,
            "warmup_target": 0.2,
            "warmup_steps": 5,
        },
    ),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 4}),
    (
        "CosineDecayRestarts",
        {"initial_learning_rate": 0.1, "first_decay_steps": 3, "t_mul": 1.0, "m_mul": 0.5},
    ),
    (
        "CosineDecayRestarts",
        {"initial_learning_rate": 0.1, "first_decay_steps": 3, "t_mul": 1.5, "alpha": 0.2},
    ),
]


@pytest.mark.parametrize("name, kwargs", CASES)
def test_schedule_values_match_keras_over_forty_steps(name, kwargs):
    ours = getattr(schedules, name)(**kwargs)
    theirs = getattr(keras.optimizers.schedules, name)(**kwargs)
    for step in range(40):
        assert ours(step) == pytest.approx(float(to_numpy(theirs(step))), rel=1e-5, abs=1e-8)
    again = schedules.deserialize(keras.optimizers.schedules.serialize(theirs))
    assert type(again) is type(ours) and again.get_config() == ours.get_config()


def _model(lib):
    return lib.Sequential(
        [lib.Input((4, 3)), lib.layers.Bidirectional(lib.layers.GRU(3)), lib.layers.Dense(1)]
    )


def test_training_with_a_schedule_matches_keras_and_the_file_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 4, 3)).astype("float32"), rng.random((32, 1)).astype("float32")
    km, bm = _model(keras), _model(birnn)
    copy_weights(km, bm)
    kwargs = {"initial_learning_rate": 0.05, "decay_steps": 3, "decay_rate": 0.5}
    km.compile(keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(**kwargs)), "mse")
    bm.compile(optimizers.SGD(schedules.ExponentialDecay(**kwargs)), "mse")
    kh = km.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    bh = bm.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(bh["loss"], kh["loss"], rtol=1e-4)
    for a, b in zip(bm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert float(bm.optimizer.learning_rate) == pytest.approx(
        float(to_numpy(km.optimizer.learning_rate)), rel=1e-6
    )
    km.save(tmp_path / "k.keras")
    loaded = birnn.models.load_model(tmp_path / "k.keras")  # optimizer state included
    assert isinstance(loaded.optimizer._schedule, schedules.ExponentialDecay)
    assert loaded.optimizer.iterations == int(to_numpy(km.optimizer.iterations)) == 8
    bm.save(tmp_path / "b.keras")
    kloaded = keras.models.load_model(tmp_path / "b.keras")
    assert int(to_numpy(kloaded.optimizer.iterations)) == 8
    assert isinstance(
        kloaded.optimizer._learning_rate, keras.optimizers.schedules.ExponentialDecay
    )


def test_learning_rate_assign_works_like_a_keras_variable():
    opt = optimizers.Adam(0.01)
    opt.learning_rate.assign(0.5)
    assert opt.learning_rate == 0.5 and opt.get_config()["learning_rate"] == 0.5
    model = _model(birnn)
    model.compile(opt, "mse")
    model.optimizer.learning_rate.assign(0.25)
    assert all(group["lr"] == 0.25 for group in model.optimizer.param_groups)
    assert model.optimizer.learning_rate.numpy() == np.float32(0.25)
    scheduled = optimizers.SGD(schedules.PolynomialDecay(0.1, 10))
    with pytest.raises(TypeError, match="not settable"):
        scheduled.learning_rate.assign(0.3)


def test_bad_schedule_arguments_are_value_errors():
    with pytest.raises(ValueError, match="1 less than"):
        schedules.PiecewiseConstantDecay([1, 2], [0.1])
    with pytest.raises(ValueError, match="`decay_steps` must be > 0"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="LearningRateSchedule"):
        optimizers.Adam("fast")
