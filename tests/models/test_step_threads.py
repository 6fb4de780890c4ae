"""The size rule that runs small training, evaluation and prediction steps on one thread."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import birnn
from birnn.models import trainer
from birnn.ops import threads


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _model(time_steps: int, features: int, units: int) -> birnn.Model:
    model = birnn.Sequential(
        [
            birnn.Input((time_steps, features)),
            birnn.layers.Bidirectional(birnn.layers.LSTM(units)),
            birnn.layers.Dense(5, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    return model


def _data(batch: int, time_steps: int, features: int):
    rng = np.random.default_rng(0)
    x = rng.random((batch, time_steps, features), dtype=np.float32)
    y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, batch)]
    return x, y


def _threads_seen_by_layers(model: birnn.Model) -> list[int]:
    seen: list[int] = []
    model.layers[-1].register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    return seen


def _every_step_kind(model: birnn.Model, x: np.ndarray, y: np.ndarray) -> None:
    model.train_on_batch(x, y)
    model.test_on_batch(x, y)
    model.predict_on_batch(x)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    model.evaluate(x, y, batch_size=16, verbose=0)
    model.predict(x, batch_size=16, verbose=0)


def test_a_small_model_steps_on_one_thread(two_threads):
    """The seed model's size: every kind of step runs on one intra-op thread, and the
    caller's count is back after each."""
    model = _model(5, 10, 10)
    x, y = _data(32, 5, 10)
    model.predict_on_batch(x)  # builds the weights
    parameters = sum(p.numel() for p in model.parameters())
    assert parameters * 32 * 5 < trainer._ONE_THREAD_STEP_WORK
    seen = _threads_seen_by_layers(model)
    _every_step_kind(model, x, y)
    assert seen == [1] * 9
    assert torch.get_num_threads() == 2


def test_a_larger_model_keeps_the_callers_threads(two_threads):
    model = _model(50, 32, 64)
    x, y = _data(32, 50, 32)
    model.predict_on_batch(x)
    parameters = sum(p.numel() for p in model.parameters())
    assert parameters * 32 * 50 >= trainer._ONE_THREAD_STEP_WORK
    seen = _threads_seen_by_layers(model)
    _every_step_kind(model, x, y)
    assert seen == [2] * 9


def test_the_rule_counts_weights_built_after_the_first_step(two_threads):
    """A model without an `Input` has no weights before its first call: that step counts
    as small; the weights it builds count from the next step on."""
    model = birnn.Sequential(
        [birnn.layers.Bidirectional(birnn.layers.LSTM(64)), birnn.layers.Dense(5)]
    )
    model.compile(loss="mse", optimizer="rmsprop")
    x, y = _data(32, 50, 32)
    seen = _threads_seen_by_layers(model)
    model.train_on_batch(x, y)
    model.train_on_batch(x, y)
    model.predict_on_batch(x)
    assert seen == [1, 2, 2]


def test_a_failing_step_gives_the_threads_back(two_threads):
    model = _model(5, 10, 10)
    x, y = _data(32, 5, 10)
    with pytest.raises(ValueError):
        model.train_on_batch(x, y[:, :3])  # targets of the wrong width
    assert torch.get_num_threads() == 2


def test_one_thread_trains_to_the_same_weights_as_two(two_threads, monkeypatch):
    """The rule changes where the work runs, not what it computes."""
    x, y = _data(32, 5, 10)
    results = []
    for limit in (trainer._ONE_THREAD_STEP_WORK, 0.0):  # the rule on, then off
        monkeypatch.setattr(trainer, "_ONE_THREAD_STEP_WORK", limit)
        birnn.utils.set_random_seed(0)
        model = _model(5, 10, 10)
        seen = _threads_seen_by_layers(model)
        for _ in range(3):
            model.train_on_batch(x, y)
        assert seen == [1 if limit else 2] * 3
        results.append(model.get_weights())
    for one, two in zip(*results, strict=True):
        np.testing.assert_allclose(one, two, rtol=0, atol=1e-6)


def test_cuda_or_structured_inputs_follow_the_rule_per_tensor():
    assert trainer._cpu_rows(torch.zeros(4, 5, 3)) == 20
    assert trainer._cpu_rows([torch.zeros(4, 3), torch.zeros(4)]) == 8
    assert trainer._cpu_rows(torch.zeros(4, 5, 0)) == 0
    assert trainer._cpu_rows([torch.zeros(2, 2, device="meta")]) is None
    assert trainer._cpu_rows(["text"]) is None


def test_one_intra_op_thread_is_inactive_while_compiling(two_threads):
    """A traced `with OneIntraOpThread()` block adds nothing to the graph and breaks none
    (`fullgraph=True`); the threads change only in eager code."""

    @torch.compile(backend="eager", fullgraph=True)
    def double(x):
        with threads.OneIntraOpThread():
            return x * 2

    assert double(torch.ones(())).item() == 2
    assert torch.get_num_threads() == 2
