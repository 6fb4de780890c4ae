"""Parity of `Bidirectional` with Keras 3.15.1 (torch backend): outputs, states, gradients.

The grid is the full product of
    cell (SimpleRNN, LSTM, GRU reset_after=True, GRU reset_after=False)
  x merge_mode (concat, sum, mul, ave, None)
  x return_sequences x return_state
  x backward layer (automatic, or custom with activation="relu")
  x mask (none, right-padded, left-padded, holes, a fully masked row)
  x initial_state (given or not)
= 4 * 5 * 2 * 2 * 2 * 5 * 2 = 1600 cases, each batch 3, time 5, features 4, units 3.
Outputs and states agree within 1e-5; gradients of a random linear loss with respect to
the inputs, the initial states and every weight within 1e-4.
"""

import functools
import itertools
import zlib

import numpy as np
import pytest
import torch

import birnn
from tests.keras_oracle import assert_close, copy_weights, keras, to_numpy

BATCH, STEPS, FEATURES, UNITS = 3, 5, 4, 3

CELLS = {
    "simple_rnn": ("SimpleRNN", {}),
    "lstm": ("LSTM", {}),
    "gru_reset_after": ("GRU", {"reset_after": True}),
    "gru_reset_before": ("GRU", {"reset_after": False}),
}
NUM_STATES = {"SimpleRNN": 1, "LSTM": 2, "GRU": 1}
MERGE_MODES = ["concat", "sum", "mul", "ave", None]
MASKS = {
    "none": None,
    "right": [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]],
    "left": [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1]],
    "holes": [[1, 0, 1, 1, 0], [0, 1, 1, 0, 1], [1, 1, 0, 1, 1]],
    "masked_row": [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]],
}

STRUCTURES = list(
    itertools.product(CELLS, MERGE_MODES, [False, True], [False, True], ["auto", "custom"])
)


def _make(module, cell, **flags):
    class_name, extra = CELLS[cell]
    return getattr(module, class_name)(UNITS, **extra, **flags)


@functools.cache
def _pair(cell, merge_mode, return_sequences, return_state, backward):
    """A Keras layer and a birnn layer with the same weights (cached: both are stateless)."""
    flags = dict(return_sequences=return_sequences, return_state=return_state)
    layers = []
    for module in (keras.layers, birnn.layers):
        backward_layer = None
        if backward == "custom":
            backward_layer = _make(module, cell, activation="relu", go_backwards=True, **flags)
        layers.append(
            module.Bidirectional(
                _make(module, cell, **flags), merge_mode=merge_mode, backward_layer=backward_layer
            )
        )
    keras_layer, layer = layers
    keras_layer.build((BATCH, STEPS, FEATURES))
    layer.build((BATCH, STEPS, FEATURES))
    copy_weights(keras_layer, layer)
    return keras_layer, layer


def _as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _run(layer, weights, x, mask, initial_state, loss_weights):
    x = x.clone().requires_grad_(True)
    states = None
    if initial_state is not None:
        states = [s.clone().requires_grad_(True) for s in initial_state]
    kwargs = {"mask": mask} if mask is not None else {}
    if states is not None:
        kwargs["initial_state"] = states
    outputs = _as_list(layer(x, **kwargs))
    if loss_weights is None:
        loss_weights = [torch.randn(o.shape) for o in outputs]
    loss = sum((o * w).sum() for o, w in zip(outputs, loss_weights))
    wrt = [x, *(states or []), *weights]
    grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, wrt)]
    return [o.detach() for o in outputs], grads, loss_weights


@pytest.mark.parametrize("initial_state", [False, True], ids=["no_init", "init"])
@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize(
    "structure", STRUCTURES, ids=lambda s: "-".join(str(v) for v in s).replace("None", "none")
)
def test_parity(structure, mask_name, initial_state):
    cell, merge_mode, return_sequences, return_state, backward = structure
    keras_layer, layer = _pair(*structure)
    rng = np.random.default_rng(zlib.crc32(repr((structure, mask_name, initial_state)).encode()))
    x = torch.tensor(rng.standard_normal((BATCH, STEPS, FEATURES)), dtype=torch.float32)
    mask = MASKS[mask_name]
    mask = None if mask is None else torch.tensor(mask, dtype=torch.bool)
    states = None
    if initial_state:
        count = 2 * NUM_STATES[CELLS[cell][0]]
        states = [
            torch.tensor(rng.standard_normal((BATCH, UNITS)), dtype=torch.float32)
            for _ in range(count)
        ]

    keras_weights = [v.value for v in keras_layer.trainable_weights]
    expected, expected_grads, loss_weights = _run(
        keras_layer, keras_weights, x, mask, states, None
    )
    actual, grads, _ = _run(layer, layer.trainable_weights, x, mask, states, loss_weights)

    assert len(actual) == len(expected)
    assert_close(actual, expected, atol=1e-5, what="outputs")
    assert_close(grads, [to_numpy(g) for g in expected_grads], atol=1e-4, what="gradients")
    if backward == "auto":
        # The comparison means something only if the gradients reach both directions: a
        # weight left out of the graph on both sides would compare zeros with zeros. (A
        # custom relu direction may legitimately be dead, so only tanh pairs are checked.)
        weight_grads = grads[len(grads) - len(layer.trainable_weights) :]
        half = len(weight_grads) // 2
        for name, direction in (
            ("forward", weight_grads[:half]),
            ("backward", weight_grads[half:]),
        ):
            assert any(torch.count_nonzero(g) for g in direction), f"no {name} weight gradient"
        assert torch.count_nonzero(grads[0]), "the inputs get no gradient"


def test_grid_size():
    assert len(STRUCTURES) * len(MASKS) * 2 == 1600


@pytest.mark.parametrize("cell", list(CELLS))
def test_wrapped_go_backwards_layer_matches_keras_with_explicit_backward_layer(cell):
    # Keras 3.15 cannot wrap a layer with `go_backwards=True` (it sets True on the
    # backward copy too); given an explicit backward layer it computes what the
    # documented flip gives.
    flags = dict(return_sequences=True, return_state=True)
    with pytest.raises(ValueError, match="go_backwards"):
        keras.layers.Bidirectional(_make(keras.layers, cell, go_backwards=True, **flags))
    keras_layer = keras.layers.Bidirectional(
        _make(keras.layers, cell, go_backwards=True, **flags),
        backward_layer=_make(keras.layers, cell, go_backwards=False, **flags),
    )
    layer = birnn.layers.Bidirectional(_make(birnn.layers, cell, go_backwards=True, **flags))
    keras_layer.build((BATCH, STEPS, FEATURES))
    layer.build((BATCH, STEPS, FEATURES))
    copy_weights(keras_layer, layer)
    x = torch.randn(BATCH, STEPS, FEATURES)
    mask = torch.tensor(MASKS["holes"], dtype=torch.bool)
    assert_close(list(layer(x, mask=mask)), list(keras_layer(x, mask=mask)), atol=1e-5)


def _normalize_names(config):
    """Configs with the automatic layer names (which count per process) blanked."""
    if isinstance(config, dict):
        return {k: ("?" if k == "name" else _normalize_names(v)) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [_normalize_names(v) for v in config]
    return config


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("backward", ["auto", "custom"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_get_config_matches_keras_and_loads_both_ways(cell, backward, return_sequences):
    configs, layers = [], []
    for module in (keras.layers, birnn.layers):
        backward_layer = None
        if backward == "custom":
            backward_layer = _make(
                module,
                cell,
                activation="relu",
                go_backwards=True,
                return_sequences=return_sequences,
            )
        layer = module.Bidirectional(
            _make(module, cell, return_sequences=return_sequences, zero_output_for_mask=True),
            merge_mode="ave",
            backward_layer=backward_layer,
        )
        layers.append(layer)
        configs.append(layer.get_config())
    keras_config, config = configs
    assert _normalize_names(config) == _normalize_names(keras_config)
    assert config["layer"]["config"]["name"].startswith("forward_")

    from_keras = birnn.layers.Bidirectional.from_config(keras_config)
    assert _normalize_names(from_keras.get_config()) == _normalize_names(keras_config)
    to_keras = keras.layers.Bidirectional.from_config(config)
    assert _normalize_names(to_keras.get_config()) == _normalize_names(config)
