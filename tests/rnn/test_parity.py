"""Parity with Keras 3 (torch backend) over the grid of recurrent-layer options.

For SimpleRNN, LSTM, GRU(reset_after=True) and GRU(reset_after=False): every
combination of `return_sequences`, `return_state`, `go_backwards`, masks (none,
right- and left-padded, holes, a fully masked row), `initial_state` and
`stateful` (two consecutive calls) gives Keras's outputs and states (1e-5) and
input and weight gradients (1e-4), from the same weights.

The variants run each path a layer can take, and each case checks that it took
the path its variant names (spying on the kernels):

- `default`: default arguments on the generic path (`use_cudnn=False`), the
  sequence function of `birnn.ops.recurrent` (one input matmul, then the scan);
- `activations`: non-default activations (generic path, chosen by `"auto"`);
- `no_bias`: `use_bias=False` with `use_cudnn="auto"` (fused for LSTM/GRU);
- `fused`: default arguments with `use_cudnn=True` (LSTM and GRU(reset_after=True),
  the configurations the fused kernels run);
- `per_step`: `RNN` over a built-in cell whose `call()` is overridden, so the
  scan calls the cell step by step as for a user's cell (with `return_state=True`,
  which checks the states too).
"""

from __future__ import annotations

import functools
import itertools
import zlib

import keras
import numpy as np
import pytest
import torch

import birnn.layers as layers
from birnn.ops import fused_rnn, recurrent
from tests.keras_oracle import assert_close, to_numpy

BATCH, TIME, FEATURES, UNITS = 3, 5, 4, 3

KINDS = {
    "simple_rnn": ("SimpleRNN", {}),
    "lstm": ("LSTM", {}),
    "gru": ("GRU", {}),
    "gru_reset_before": ("GRU", {"reset_after": False}),
}
# variant: (arguments for both libraries, arguments for ours only), per class name ("*": all).
VARIANTS = {
    "default": ({}, {"LSTM": {"use_cudnn": False}, "GRU": {"use_cudnn": False}}),
    "activations": (
        {
            "SimpleRNN": {"activation": "relu"},
            "LSTM": {"activation": "softsign", "recurrent_activation": "hard_sigmoid"},
            "GRU": {"activation": "relu", "recurrent_activation": "hard_sigmoid"},
        },
        {},
    ),
    "no_bias": ({"*": {"use_bias": False}}, {}),
    "fused": ({}, {"LSTM": {"use_cudnn": True}, "GRU": {"use_cudnn": True}}),
    "per_step": ({}, {}),
}
FUSED_KINDS = ("lstm", "gru")
MASKS = {
    "none": None,
    "right": [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]],
    "left": [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1]],
    "holes": [[1, 0, 1, 1, 0], [0, 1, 0, 1, 1], [1, 1, 0, 0, 1]],
    "fully_masked_row": [[1, 1, 1, 1, 1], [1, 1, 0, 1, 1], [0, 0, 0, 0, 0]],
}


def _expected_path(kind: str, variant: str) -> str:
    if variant == "per_step":
        return "step"
    if kind in FUSED_KINDS and variant in ("fused", "no_bias"):
        return "fused"
    return "sequence"


def _in_grid(kind: str, variant: str, return_state: bool) -> bool:
    if variant == "fused":
        return kind in FUSED_KINDS  # use_cudnn=True refuses the others (tests/fused)
    if variant == "per_step":
        return return_state
    return True


def _stepwise(cell_class: type) -> type:
    """A built-in cell class whose own `call()` makes `RNN` loop over it step by step."""

    class Stepwise(cell_class):
        def call(self, inputs, states, training=False):
            return super().call(inputs, states, training=training)

    Stepwise.__name__ = f"Stepwise{cell_class.__name__}"
    return Stepwise


STEPWISE = {
    name: _stepwise(getattr(layers, f"{name}Cell")) for name in ("SimpleRNN", "LSTM", "GRU")
}


def _arguments(kind: str, variant: str) -> tuple[str, dict, dict]:
    """`(class_name, arguments for both libraries, arguments for ours only)`."""
    class_name, kwargs = KINDS[kind]
    shared, ours_only = VARIANTS[variant]
    shared_kwargs = {**kwargs, **shared.get(class_name, {}), **shared.get("*", {})}
    return class_name, shared_kwargs, ours_only.get(class_name, {})


@functools.cache
def _keras_layer(kind, variant, return_sequences, return_state, go_backwards, stateful):
    """One Keras layer per configuration, reused across masks and initial states."""
    class_name, kwargs, _ = _arguments(kind, variant)
    layer = getattr(keras.layers, class_name)(
        UNITS,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        stateful=stateful,
        **kwargs,
    )
    layer.build((BATCH, TIME, FEATURES))
    rng = np.random.default_rng(len(layer.weights))
    layer.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype("float32") for w in layer.weights])
    return layer


def _our_layer(kind, variant, **rnn_kwargs):
    class_name, kwargs, ours_only = _arguments(kind, variant)
    if variant == "per_step":
        return layers.RNN(STEPWISE[class_name](UNITS, **kwargs), **rnn_kwargs)
    return getattr(layers, class_name)(UNITS, **rnn_kwargs, **kwargs, **ours_only)


@pytest.fixture
def paths(monkeypatch):
    """The kernels our layers called: `fused`, `sequence` (recurrent.lstm...) or `step`."""
    taken: list[str] = []

    def spy(module, name, label):
        original = getattr(module, name)

        def counted(*args, **kwargs):
            taken.append(label)
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)

    for name in ("run_direction", "run_pair"):
        spy(fused_rnn, name, "fused")
    for name in ("lstm", "gru", "simple_rnn"):
        spy(recurrent, name, "sequence")
    spy(recurrent, "scan", "scan")  # also called by the sequence functions
    return taken


def _path(taken: list[str]) -> str:
    kinds = set(taken) - {"scan"}
    if not kinds:
        return "step" if "scan" in taken else "none"
    assert len(kinds) == 1, taken
    return kinds.pop()


def _data(seed: int, num_states: int):
    rng = np.random.default_rng(seed)
    x = [rng.normal(size=(BATCH, TIME, FEATURES)).astype("float32") for _ in range(2)]
    states = [rng.normal(size=(BATCH, UNITS)).astype("float32") for _ in range(num_states)]
    return x, states


def _as_list(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _run(layer, params, x, mask, initial_state):
    """Outputs of one call and the gradients of a fixed projection of them."""
    x = torch.tensor(x, requires_grad=True)
    kwargs = {}
    if mask is not None:
        kwargs["mask"] = torch.tensor(mask, dtype=torch.bool)
    if initial_state is not None:
        kwargs["initial_state"] = [torch.tensor(s) for s in initial_state]
    outputs = _as_list(layer(x, **kwargs))
    rng = np.random.default_rng(7)
    loss = sum(
        (out * torch.tensor(rng.normal(size=tuple(out.shape)).astype("float32"))).sum()
        for out in outputs
    )
    grads = torch.autograd.grad(loss, [x, *params])
    return [to_numpy(o) for o in outputs], [to_numpy(g) for g in grads]


GRID = [
    case
    for case in itertools.product(
        KINDS, VARIANTS, (False, True), (False, True), (False, True), MASKS, (False, True)
    )
    if _in_grid(case[0], case[1], case[3])
]


@pytest.mark.parametrize("stateful", [False, True], ids=["stateless", "stateful"])
@pytest.mark.parametrize(
    "kind,variant,return_sequences,return_state,go_backwards,mask_name,with_initial_state",
    GRID,
    ids=[
        f"{k}-{v}-{'seq' if rs else 'last'}-{'state' if st else 'nostate'}-"
        f"{'bwd' if gb else 'fwd'}-{m}-{'init' if i else 'zeros'}"
        for k, v, rs, st, gb, m, i in GRID
    ],
)
def test_parity_with_keras(
    kind,
    variant,
    return_sequences,
    return_state,
    go_backwards,
    mask_name,
    with_initial_state,
    stateful,
    paths,
):
    keras_layer = _keras_layer(
        kind, variant, return_sequences, return_state, go_backwards, stateful
    )
    if stateful:
        keras_layer.reset_state()
    ours = _our_layer(
        kind,
        variant,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        stateful=stateful,
    )
    ours.build((BATCH, TIME, FEATURES))
    ours.set_weights(keras_layer.get_weights())
    num_states = 2 if KINDS[kind][0] == "LSTM" else 1
    (x1, x2), initial = _data(zlib.crc32(f"{kind}{mask_name}".encode()), num_states)
    initial = initial if with_initial_state else None
    mask = MASKS[mask_name]
    keras_params = [w.value for w in keras_layer.trainable_weights]

    calls = [(x1, initial), (x2, None)] if stateful else [(x1, initial)]
    for index, (x, state) in enumerate(calls):
        # Keras's stateful LSTM/GRU on torch feed its state variables to the graph and
        # then overwrite them in place, which breaks its backward pass; passing a copy
        # of the stored states explicitly computes the same function.
        keras_state = state
        if stateful and state is None:
            keras_state = [to_numpy(v).copy() for v in keras_layer.states]
        expected, expected_grads = _run(keras_layer, keras_params, x, mask, keras_state)
        paths.clear()
        actual, actual_grads = _run(ours, ours.trainable_weights, x, mask, state)
        assert _path(paths) == _expected_path(kind, variant), paths
        assert len(actual) == len(expected) == (1 + num_states if return_state else 1)
        assert_close(actual, expected, atol=1e-5, what=f"call {index} outputs")
        assert_close(actual_grads, expected_grads, atol=1e-4, what=f"call {index} gradients")
    if stateful:
        assert_close(list(ours.states), [to_numpy(v) for v in keras_layer.states], atol=1e-5)


def test_grid_size():
    """Each layer's full grid, for the record (the closing note cites these numbers)."""
    per_kind = {kind: 2 * sum(case[0] == kind for case in GRID) for kind in KINDS}
    # 3 full variants x (2 x 2 x 2 x 5 masks x 2 initial states x 2 stateful) = 480,
    # plus per_step (return_state only) 80, plus fused 160 where it applies.
    assert per_kind == {"simple_rnn": 560, "lstm": 720, "gru": 720, "gru_reset_before": 560}
