"""The per-step walk of the layer tree (`Trainer._prepare_fit_state`) finds what the
public APIs list: the parameters in `parameters()` order (torch modules, shared and
frozen weights included), regularized weights and constraints."""

from __future__ import annotations

import numpy as np
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
