"""Random recurrent layers against Keras 3.15.1, and values at masked steps.

Each example draws a layer configuration (cell, units, features, time >= 1,
batch >= 1, `Bidirectional` or not, merge mode, return flags, `go_backwards`,
the fused or the generic path, dtype), inputs, an optional mask of any pattern
(fully masked rows included) and optional initial states, then checks:

- against Keras with the same weights: outputs, final states, and gradients
  of a random linear loss with respect to the inputs, the initial states and
  every weight;
- that replacing the values at masked steps by NaN, +-inf or 1e30 changes none
  of them, and that the gradient at a masked step is exactly zero.

The number of examples comes from the Hypothesis profile (`_profiles.py`).
"""

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

import birnn
from tests.bidirectional._seq_layers import DecayCell
from tests.keras_oracle import assert_close, copy_weights, keras

from ._profiles import PROFILE

CELLS = {
    "simple_rnn": ("SimpleRNN", {}),
    "lstm": ("LSTM", {}),
    "gru": ("GRU", {"reset_after": True}),
    "gru_reset_before": ("GRU", {"reset_after": False}),
}
NUM_STATES = {"SimpleRNN": 1, "LSTM": 2, "GRU": 1}
# Keras 3.15.1 computes parts of a float64 layer at about float32 precision (SimpleRNN
# outputs off by ~1e-8 relative to an exact float64 reference), so float64 is compared at
# that level.
TOLERANCE = {"float32": (1e-5, 1e-4), "float64": (1e-6, 1e-5)}
POISON = [float("nan"), float("inf"), -float("inf"), 1e30]


@st.composite
def configurations(draw, custom_cells=False):
    cells = [*CELLS, "custom"] if custom_cells else list(CELLS)
    cell = draw(st.sampled_from(cells))
    bidirectional = draw(st.booleans())
    batch, time = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    masked = draw(st.booleans())
    mask = None
    if masked:
        rows = st.lists(st.booleans(), min_size=time, max_size=time)
        mask = draw(st.lists(rows, min_size=batch, max_size=batch))
    return {
        "cell": cell,
        "units": draw(st.integers(1, 4)),
        "features": draw(st.integers(1, 4)),
        "batch": batch,
        "time": time,
        "bidirectional": bidirectional,
        "merge_mode": draw(st.sampled_from(["concat", "sum", "mul", "ave", None])),
        "return_sequences": draw(st.booleans()),
        "return_state": draw(st.booleans()),
        # Keras cannot wrap a layer going backwards (see the Bidirectional parity tests).
        "go_backwards": (not bidirectional) and draw(st.booleans()),
        "use_cudnn": draw(st.sampled_from(["auto", False])),
        "unroll": draw(st.booleans()) and cell != "custom",
        "dtype": draw(st.sampled_from(["float32", "float32", "float64"])),
        "mask": mask,
        "initial_state": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def _layer(module, config, keras_side=False):
    flags = {
        "return_sequences": config["return_sequences"],
        "return_state": config["return_state"],
        "go_backwards": config["go_backwards"],
        "dtype": config["dtype"],
    }
    if config["cell"] == "custom":
        layer = module.RNN(DecayCell(config["units"], dtype=config["dtype"]), **flags)
    else:
        class_name, extra = CELLS[config["cell"]]
        if not keras_side:
            # Keras 3.15.1's torch backend fails on `unroll=True` going backwards with a mask
            # ("'tuple' object has no attribute 'shape'"); unrolling changes no number,
            # so the oracle always runs the loop.
            extra = {**extra, "unroll": config["unroll"]}
            if class_name != "SimpleRNN":
                extra["use_cudnn"] = config["use_cudnn"]
        layer = getattr(module, class_name)(config["units"], **extra, **flags)
    if config["bidirectional"]:
        layer = module.Bidirectional(layer, merge_mode=config["merge_mode"], dtype=config["dtype"])
    return layer


def _data(config):
    rng = np.random.default_rng(config["seed"])
    dtype = getattr(torch, config["dtype"])
    shape = (config["batch"], config["time"], config["features"])
    x = torch.tensor(rng.standard_normal(shape), dtype=dtype)
    mask = None if config["mask"] is None else torch.tensor(config["mask"], dtype=torch.bool)
    states = None
    if config["initial_state"]:
        count = 1 if config["cell"] == "custom" else NUM_STATES[CELLS[config["cell"]][0]]
        count *= 2 if config["bidirectional"] else 1
        states = [
            torch.tensor(rng.standard_normal((config["batch"], config["units"])), dtype=dtype)
            for _ in range(count)
        ]
    return x, mask, states


def _run(layer, weights, x, mask, states, loss_weights=None):
    x = x.clone().requires_grad_(True)
    kwargs = {}
    if mask is not None:
        kwargs["mask"] = mask
    if states is not None:
        states = [s.clone().requires_grad_(True) for s in states]
        kwargs["initial_state"] = states
    out = layer(x, **kwargs)
    outputs = list(out) if isinstance(out, (list, tuple)) else [out]
    if loss_weights is None:
        generator = torch.Generator().manual_seed(1)
        loss_weights = [torch.randn(o.shape, generator=generator, dtype=o.dtype) for o in outputs]
    loss = sum((o * w).sum() for o, w in zip(outputs, loss_weights))
    wrt = [x, *(states or []), *weights]
    grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, wrt)]
    return [o.detach() for o in outputs], grads, loss_weights


@PROFILE
@given(configurations())
def test_outputs_states_and_gradients_match_keras(config):
    x, mask, states = _data(config)
    keras_layer = _layer(keras.layers, config, keras_side=True)
    layer = _layer(birnn.layers, config)
    keras_layer.build(tuple(x.shape))
    layer.build(tuple(x.shape))
    copy_weights(keras_layer, layer)
    keras_weights = [v.value for v in keras_layer.trainable_weights]
    expected, expected_grads, loss_weights = _run(keras_layer, keras_weights, x, mask, states)
    actual, grads, _ = _run(layer, list(layer.trainable_weights), x, mask, states, loss_weights)
    atol, grad_atol = TOLERANCE[config["dtype"]]
    assert len(actual) == len(expected)
    assert_close(actual, expected, atol=atol, what="outputs and states")
    assert_close(grads, [g.detach() for g in expected_grads], atol=grad_atol, what="gradients")


@PROFILE
@given(configurations(custom_cells=True), st.sampled_from(POISON))
def test_values_at_masked_steps_change_nothing(config, poison):
    x, mask, states = _data(config)
    if mask is None:
        mask = torch.ones(config["batch"], config["time"], dtype=torch.bool)
        mask[0, -1] = False
    layer = _layer(birnn.layers, config)
    layer.build(tuple(x.shape))
    weights = list(layer.trainable_weights)
    expected, expected_grads, loss_weights = _run(layer, weights, x, mask, states)
    poisoned = x.clone()
    poisoned[~mask] = poison
    actual, grads, _ = _run(layer, weights, poisoned, mask, states, loss_weights)
    atol, grad_atol = TOLERANCE[config["dtype"]]
    assert_close(actual, expected, atol=atol, what="outputs and states")
    assert_close(grads, expected_grads, atol=grad_atol, what="gradients")
    assert torch.count_nonzero(grads[0][~mask]) == 0, "gradient at a masked step"
