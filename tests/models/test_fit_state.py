"""The per-step walk of the layer tree (`Trainer._prepare_fit_state`) finds what the
public APIs list: the trainable parameters in `parameters()` order (torch modules
and shared weights included), regularized weights and constraints."""

from __future__ import annotations

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
    expected = [p for p in model.parameters() if p.requires_grad]
    assert [id(p) for p in state["params"]] == [id(p) for p in expected]
    assert len(expected) == len({id(p) for p in expected})  # the shared bias once
    holder = next(layer for layer in model.layers if isinstance(layer, _Holder))
    regularized = [(param, type(reg).__name__) for param, reg in state["regularizers"]]
    assert [p for p, _ in regularized] == [holder.w, holder.inner.kernel]
    assert [name for _, name in regularized] == ["L1", "L2"]
    assert state["has_constraints"] is True


def test_direct_parameters_is_parameters_without_recursion():
    holder = _Holder()
    holder(torch.ones(2, 3))
    assert [id(p) for p in holder.direct_parameters()] == [
        id(p) for p in holder.parameters(recurse=False)
    ]
    # `gain`, `w` and `shared` (also `inner.bias`: the step's walk lists it once)
    assert len(holder.direct_parameters()) == 3
