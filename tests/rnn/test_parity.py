"""Parity with Keras 3 (torch backend) over the grid of recurrent-layer options.

For SimpleRNN, LSTM, GRU(reset_after=True) and GRU(reset_after=False), and for
default and non-default arguments (other activations, no bias): every
combination of `return_sequences`, `return_state`, `go_backwards`, masks (none,
right- and left-padded, holes, a fully masked row), `initial_state` and
`stateful` (two consecutive calls) gives Keras's outputs and states (1e-5) and
input and weight gradients (1e-4), from the same weights.
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
from tests.keras_oracle import assert_close, to_numpy

BATCH, TIME, FEATURES, UNITS = 3, 5, 4, 3

KINDS = {
    "simple_rnn": ("SimpleRNN", {}),
    "lstm": ("LSTM", {}),
    "gru": ("GRU", {}),
    "gru_reset_before": ("GRU", {"reset_after": False}),
}
# `default` forces the generic loop (`use_cudnn=False`); `no_bias` leaves `use_cudnn="auto"`,
# so LSTM/GRU(reset_after=True) take the fused path there (birnn.ops.fused_rnn).
VARIANTS = {
    "default": {"LSTM": {"use_cudnn": False}, "GRU": {"use_cudnn": False}},
    "activations": {
        "SimpleRNN": {"activation": "relu"},
        "LSTM": {"activation": "softsign", "recurrent_activation": "hard_sigmoid"},
        "GRU": {"activation": "relu", "recurrent_activation": "hard_sigmoid"},
    },
    "no_bias": {"*": {"use_bias": False}},
}
MASKS = {
    "none": None,
    "right": [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]],
    "left": [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1]],
    "holes": [[1, 0, 1, 1, 0], [0, 1, 0, 1, 1], [1, 1, 0, 0, 1]],
    "fully_masked_row": [[1, 1, 1, 1, 1], [1, 1, 0, 1, 1], [0, 0, 0, 0, 0]],
}


def _arguments(kind: str, variant: str) -> tuple[str, dict]:
    class_name, kwargs = KINDS[kind]
    extra = VARIANTS[variant]
    return class_name, {**kwargs, **extra.get(class_name, {}), **extra.get("*", {})}


@functools.cache
def _keras_layer(kind, variant, return_sequences, return_state, go_backwards, stateful):
    """One Keras layer per configuration, reused across masks and initial states."""
    class_name, kwargs = _arguments(kind, variant)
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


GRID = list(
    itertools.product(
        KINDS, VARIANTS, (False, True), (False, True), (False, True), MASKS, (False, True)
    )
)


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
):
    keras_layer = _keras_layer(
        kind, variant, return_sequences, return_state, go_backwards, stateful
    )
    if stateful:
        keras_layer.reset_state()
    class_name, kwargs = _arguments(kind, variant)
    ours = getattr(layers, class_name)(
        UNITS,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        stateful=stateful,
        **kwargs,
    )
    ours.build((BATCH, TIME, FEATURES))
    ours.set_weights(keras_layer.get_weights())
    num_states = 2 if class_name == "LSTM" else 1
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
        actual, actual_grads = _run(ours, ours.trainable_weights, x, mask, state)
        assert len(actual) == len(expected) == (1 + num_states if return_state else 1)
        assert_close(actual, expected, atol=1e-5, what=f"call {index} outputs")
        assert_close(actual_grads, expected_grads, atol=1e-4, what=f"call {index} gradients")
    if stateful:
        assert_close(list(ours.states), [to_numpy(v) for v in keras_layer.states], atol=1e-5)
