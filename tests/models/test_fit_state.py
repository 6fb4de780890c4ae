"""The per-step walk of the layer tree (`Trainer._prepare_fit_state`) finds what the
public APIs list: the parameters in `parameters()` order (torch modules, shared and
frozen weights included), regularized weights and constraints; `train_on_batch` walks
again only after the tree changed."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import birnn
from birnn import layers


class _Holder(layers.Layer):
    """A torch module, a bare parameter, a weight shared with a sublayer and a frozen one."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.lin = nn.Linear(3, 4)
        self.gain = nn.Parameter(torch.full((4,), 2.0))
        self.inner = layers.Dense(4, kernel_regularizer="l2", bias_constraint="non_neg")
        self.frozen = layers.Dense(4)
        self.frozen.trainable = False

    def build(self, input_shape):
        self.w = self.add_weight(shape=(4,), initializer="ones", name="w", regularizer="l1")
        self.inner.build_on_device((None, 4), self.build_device)
        self.shared = self.inner.bias  # the same tensor under a second name

    def call(self, x):
        h = self.lin(x) * self.w * self.gain
        return self.frozen(self.inner(h)) + self.shared


def _model() -> birnn.Model:
    torch.manual_seed(0)
    inputs = birnn.Input((3,))
    model = birnn.Model(inputs, layers.Dense(2)(_Holder()(inputs)))
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_fit_state_lists_what_the_public_apis_list():
    model = _model()
    state = model._prepare_fit_state()
    expected = list(model.parameters())
    assert [id(p) for p in state["params"]] == [id(p) for p in expected]
    assert len(expected) == len({id(p) for p in expected})  # the shared bias once
    holder = next(layer for layer in model.layers if isinstance(layer, _Holder))
    regularized = [(param, type(reg).__name__) for param, reg in state["regularizers"]]
    assert [p for p, _ in regularized] == [holder.w, holder.inner.kernel]
    assert [name for _, name in regularized] == ["L1", "L2"]
    assert state["has_constraints"] is True


def test_a_layer_frozen_between_steps_stays_put():
    """As in Keras: its last gradient is not applied again."""
    model = _model()
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 2), "float32")
    model.train_on_batch(x, y)
    holder = next(layer for layer in model.layers if isinstance(layer, _Holder))
    holder.inner.trainable = False  # its kernel leaves; its regularizer no longer counts
    holder.lin.weight.requires_grad_(False)
    assert [p for p, _ in model._prepare_fit_state()["regularizers"]] == [holder.w]
    frozen = [holder.inner.kernel, holder.inner.bias, holder.lin.weight]
    before = [p.detach().clone() for p in frozen]
    model.train_on_batch(x, y)
    for param, value in zip(frozen, before):
        torch.testing.assert_close(param, value, rtol=0, atol=0)
    assert all(p.grad is None for p in frozen)


def test_direct_parameters_is_parameters_without_recursion():
    holder = _Holder()
    holder(torch.ones(2, 3))
    assert [id(p) for p in holder.direct_parameters()] == [
        id(p) for p in holder.parameters(recurse=False)
    ]
    # `gain`, `w` and `shared` (also `inner.bias`: the step's walk lists it once)
    assert len(holder.direct_parameters()) == 3


# ---------------------------------------------------------------------- the cache across calls
# `train_on_batch` keeps the walk's result for the next call while the layer tree stays the
# same; each change below must make the next call walk again.


def _batch() -> tuple[np.ndarray, np.ndarray]:
    return np.ones((4, 3), "float32"), np.zeros((4, 2), "float32")


def _cached(model: birnn.Model) -> dict:
    memo = model.__dict__["_fit_state_memo"]
    assert memo is not None
    return memo[-1]


def _summary(state: dict) -> tuple:
    return (
        [id(layer) for layer in state["layers"]],
        [id(p) for p in state["params"]],
        [(id(p), id(reg)) for p, reg in state["regularizers"]],
        state["has_constraints"],
    )


def _assert_current(model: birnn.Model) -> None:
    """The state the last step used is what a fresh walk finds now."""
    used = _summary(_cached(model))
    assert used == _summary(model._prepare_fit_state())


def test_train_on_batch_walks_the_tree_once_while_it_stays_the_same(monkeypatch):
    model = _model()
    x, y = _batch()
    model.train_on_batch(x, y)
    walks = []
    prepare = type(model)._prepare_fit_state

    def counting(self, modules=None):
        walks.append(1)
        return prepare(self, modules)

    monkeypatch.setattr(type(model), "_prepare_fit_state", counting)
    for _ in range(3):
        model.train_on_batch(x, y)
    assert walks == []
    model.layers[-1].trainable = False
    model.train_on_batch(x, y)
    model.train_on_batch(x, y)
    assert walks == [1]


def _holder(model: birnn.Model) -> _Holder:
    return next(layer for layer in model.layers if isinstance(layer, _Holder))


def _freeze(model):
    _holder(model).inner.trainable = False  # its regularizer leaves


def _add_constrained_weight(model):
    """A weight added to a built layer (no attribute set): its constraint must apply."""
    holder = _holder(model)
    holder.frozen.add_weight(shape=(2,), initializer="ones", constraint="non_neg", name="x")


def _register_parameter(model):
    _holder(model).frozen.register_parameter("extra", nn.Parameter(torch.ones(2)))


def _replace_torch_parameter(model):
    _holder(model).lin.weight = nn.Parameter(torch.ones(4, 3))


def _add_torch_module(model):
    _holder(model).lin.add_module("extra", nn.Linear(2, 2))


def _add_layer(model):
    _holder(model).later = layers.Dense(3, kernel_regularizer="l1")
    _holder(model).later.build((None, 2))


@pytest.mark.parametrize(
    "change",
    [
        _freeze,
        _add_constrained_weight,
        _register_parameter,
        _replace_torch_parameter,
        _add_torch_module,
        _add_layer,
    ],
)
def test_a_change_to_the_tree_is_seen_by_the_next_step(change):
    model = _model()
    x, y = _batch()
    for _ in range(2):
        model.train_on_batch(x, y)
    _assert_current(model)
    before = _summary(_cached(model))
    change(model)
    model.train_on_batch(x, y)
    _assert_current(model)
    assert _summary(_cached(model)) != before


def test_a_constraint_added_between_steps_applies():
    dense = layers.Dense(2)
    model = birnn.Sequential([birnn.Input((3,)), dense])  # no constraint yet
    model.compile(optimizer="sgd", loss="mse")
    x, y = _batch()
    for _ in range(2):  # the first call sets up the loss: the second is the usual step
        model.train_on_batch(x, y)
    weight = dense.add_weight(shape=(2,), constraint="non_neg", name="negative")
    with torch.no_grad():
        weight.fill_(-1.0)
    model.train_on_batch(x, y)
    torch.testing.assert_close(weight.detach(), torch.zeros(2), rtol=0, atol=0)


def test_a_copied_model_walks_its_own_tree():
    model = _model()
    x, y = _batch()
    model.train_on_batch(x, y)
    twin = copy.deepcopy(model)
    twin.train_on_batch(x, y)
    assert [id(p) for p in _cached(twin)["params"]] == [id(p) for p in twin.parameters()]
    _assert_current(twin)
