"""`Optimizer.fast_step()`, the step `fit` and `train_on_batch` take: torch's per-call
step wrapper is skipped only where it has nothing to do, so step hooks (the optimizer's
and the global ones), the profiler's label and replaced `step` methods keep working."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.optim import optimizer as torch_optimizer

import birnn
from birnn import layers, optimizers


def _model(optimizer: optimizers.Optimizer) -> birnn.Sequential:
    torch.manual_seed(0)
    model = birnn.Sequential([birnn.Input((3,)), layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


def _batch() -> tuple[np.ndarray, np.ndarray]:
    return np.ones((4, 3), "float32"), np.zeros((4, 2), "float32")


def _wrapper_runs(model: birnn.Sequential, monkeypatch: pytest.MonkeyPatch) -> list:
    """Records each run of torch's step wrapper (it calls `_optimizer_step_code`)."""
    runs: list = []
    monkeypatch.setattr(model.optimizer, "_optimizer_step_code", lambda: runs.append(1))
    return runs


def test_train_on_batch_skips_the_idle_wrapper(monkeypatch):
    model = _model(optimizers.RMSprop())
    model.train_on_batch(*_batch())
    runs = _wrapper_runs(model, monkeypatch)
    model.train_on_batch(*_batch())
    model.fit(*_batch(), epochs=2, verbose=0)
    assert runs == []
    assert model.optimizer.iterations == 4


def test_step_hooks_still_run(monkeypatch):
    model = _model(optimizers.RMSprop())
    model.train_on_batch(*_batch())
    calls: list = []
    opt = model.optimizer
    handles = [
        opt.register_step_pre_hook(lambda *args: calls.append("pre")),
        opt.register_step_post_hook(lambda *args: calls.append("post")),
    ]
    runs = _wrapper_runs(model, monkeypatch)
    model.train_on_batch(*_batch())
    assert calls == ["pre", "post"] and runs == [1]
    for handle in handles:
        handle.remove()
    model.train_on_batch(*_batch())
    assert calls == ["pre", "post"] and runs == [1]


@pytest.mark.parametrize("which", ["pre", "post"])
def test_global_step_hooks_still_run(which):
    model = _model(optimizers.Adam())
    model.train_on_batch(*_batch())
    calls: list = []
    register = getattr(torch_optimizer, f"register_optimizer_step_{which}_hook")
    handle = register(lambda optimizer, args, kwargs: calls.append(optimizer))
    try:
        model.train_on_batch(*_batch())
    finally:
        handle.remove()
    assert calls == [model.optimizer]


def test_the_profiler_still_sees_the_step():
    model = _model(optimizers.RMSprop())
    model.train_on_batch(*_batch())
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        model.train_on_batch(*_batch())
    names = {event.name for event in prof.events()}
    assert "Optimizer.step#RMSprop.step" in names


def test_a_replaced_step_is_called():
    class Counting(optimizers.SGD):
        calls = 0

        def step(self, closure=None):
            type(self).calls += 1
            return super().step(closure)

    model = _model(Counting(learning_rate=0.1))
    model.train_on_batch(*_batch())
    model.train_on_batch(*_batch())
    assert Counting.calls == 2

    instance: list = []
    opt = model.optimizer
    step = opt.step
    opt.step = lambda closure=None: (instance.append(1), step(closure))[1]
    model.train_on_batch(*_batch())
    assert instance == [1] and Counting.calls == 3


@pytest.mark.parametrize(
    "make",
    [
        lambda: optimizers.RMSprop(learning_rate=0.01, momentum=0.5),
        lambda: optimizers.Adam(learning_rate=0.01, clipnorm=0.5),
        lambda: optimizers.LossScaleOptimizer(optimizers.SGD(learning_rate=0.1)),
    ],
    ids=["rmsprop", "adam_clipnorm", "loss_scale"],
)
def test_the_same_weights_as_step(make):
    fast, plain = _model(make()), _model(make())
    plain.set_weights(fast.get_weights())
    x, y = _batch()
    for _ in range(3):
        fast.train_on_batch(x, y)
        # What the loop did before: the wrapped `step()`, with a hook that does nothing.
        handle = plain.optimizer.register_step_pre_hook(lambda *args: None)
        plain.train_on_batch(x, y)
        handle.remove()
    for a, b in zip(fast.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert fast.optimizer.iterations == plain.optimizer.iterations == 3


def test_an_unbuilt_optimizer_raises_as_step_does():
    opt = optimizers.SGD()
    with pytest.raises(RuntimeError, match="not bound to any parameters"):
        opt.fast_step()


@pytest.mark.parametrize(
    "name,torch_class",
    [
        ("SGD", torch.optim.SGD),
        ("Adam", torch.optim.Adam),
        ("AdamW", torch.optim.AdamW),
        ("Adagrad", torch.optim.Adagrad),
        ("Adadelta", torch.optim.Adadelta),
        ("Adamax", torch.optim.Adamax),
        ("RMSprop", torch.optim.RMSprop),
    ],
)
def test_hooks_run_once_per_step_after_a_plain_torch_optimizer_exists(name, torch_class):
    """torch wraps a class's `step` with the hooks the first time one of its instances
    is made. birnn's optimizers run their update through their torch class's `step`: once
    a plain torch optimizer of that class exists, its wrapper must not run the hooks a
    second time."""
    torch_class([torch.nn.Parameter(torch.ones(1))], lr=0.1)
    optimizer = getattr(optimizers, name)()
    model = _model(optimizer)
    model.train_on_batch(*_batch())
    calls: list = []
    pre = optimizer.register_step_pre_hook(lambda *args: calls.append("pre"))
    post = optimizer.register_step_post_hook(lambda *args: calls.append("post"))
    model.train_on_batch(*_batch())
    optimizer.step()
    pre.remove()
    post.remove()
    assert calls == ["pre", "post", "pre", "post"]
