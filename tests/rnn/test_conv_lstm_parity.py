"""Parity of `ConvLSTM1D/2D/3D`, alone and in `Bidirectional`, with Keras 3.15.1 (torch backend).

The grid is the full product of
    rank (1D, 2D, 3D) x padding (valid, same) x data_format (channels_last, channels_first)
  x return_sequences x return_state x go_backwards
  x mask (none, holes with a fully masked row) x initial_state (given or not)
  x wrapped (alone, or in `Bidirectional`)
= 3 * 2 * 2 * 2 * 2 * 2 * 2 * 2 * 2 = 768 cases, plus per rank a strided, a dilated and
a dropout-in-inference case (9): 777 cases. Wrapped cases cycle through the merge modes
(concat, sum, mul, ave, None); a wrapped layer going backwards gets an explicit
`backward_layer` (Keras 3.15 cannot wrap it otherwise). Sizes are small: batch 2, time 3,
2 input channels, 2 filters, kernels with even sizes (so `"same"` pads unevenly).
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
from tests.keras_oracle import assert_close, keras, to_numpy

BATCH, STEPS, CHANNELS, FILTERS = 2, 3, 2, 2
SPATIAL = {1: (5,), 2: (4, 3), 3: (3, 3, 2)}
KERNELS = {1: 3, 2: (2, 3), 3: 2}
MERGE_MODES = ["concat", "sum", "mul", "ave", None]
MASKS = {"none": None, "holes": [[1, 0, 1], [0, 0, 0]]}

GRID = list(
    itertools.product(
        (1, 2, 3),  # rank
        ("valid", "same"),  # padding
        ("channels_last", "channels_first"),  # data_format
        (False, True),  # return_sequences
        (False, True),  # return_state
        (False, True),  # go_backwards
        (False, True),  # wrapped
    )
)
# Each structure: (rank, padding, data_format, return_sequences, return_state, go_backwards,
# wrapper, extra arguments as a tuple of items, training).
STRUCTURES = []
_wrapped = 0
for *_flags, _wrap in GRID:
    wrapper = None
    if _wrap:
        wrapper = MERGE_MODES[_wrapped % len(MERGE_MODES)] or "none"
        _wrapped += 1
    STRUCTURES.append((*_flags, wrapper, (), None))
EXTRAS = []
for _rank in (1, 2, 3):
    EXTRAS += [
        (_rank, "valid", "channels_last", True, True, False, "concat", (("strides", 2),), None),
        (_rank, "same", "channels_first", True, False, False, None, (("dilation_rate", 2),), None),
        (
            _rank,
            "same",
            "channels_last",
            True,
            True,
            False,
            "ave",
            (("dropout", 0.3), ("recurrent_dropout", 0.2)),
            False,
        ),
    ]
CASES = [
    (structure, mask, initial_state)
    for structure in STRUCTURES
    for mask in MASKS
    for initial_state in (False, True)
] + [(extra, "holes", True) for extra in EXTRAS]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny convolutions: extra threads only add synchronisation (most of the time here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _input_shape(rank, data_format):
    spatial = SPATIAL[rank]
    if data_format == "channels_last":
        return (BATCH, STEPS, *spatial, CHANNELS)
    return (BATCH, STEPS, CHANNELS, *spatial)


def _make(module, rank, padding, data_format, extra, **flags):
    layer_class = getattr(module, f"ConvLSTM{rank}D")
    return layer_class(
        FILTERS,
        KERNELS[rank],
        padding=padding,
        data_format=data_format,
        **dict(extra),
        **flags,
    )


@functools.cache
def _pair(
    rank, padding, data_format, return_sequences, return_state, go_backwards, wrapper, extra
):
    """A Keras layer and a birnn layer with the same random weights (both stateless)."""
    flags = dict(
        return_sequences=return_sequences, return_state=return_state, go_backwards=go_backwards
    )
    layers = []
    for module in (keras.layers, birnn.layers):
        layer = _make(module, rank, padding, data_format, extra, **flags)
        if wrapper is not None:
            backward_layer = None
            if go_backwards:
                backward_flags = {**flags, "go_backwards": False}
                backward_layer = _make(module, rank, padding, data_format, extra, **backward_flags)
            merge_mode = None if wrapper == "none" else wrapper
            layer = module.Bidirectional(
                layer, merge_mode=merge_mode, backward_layer=backward_layer
            )
        layers.append(layer)
    keras_layer, layer = layers
    shape = _input_shape(rank, data_format)
    keras_layer.build(shape)
    layer.build(shape)
    rng = np.random.default_rng(zlib.crc32(repr(shape).encode()))
    weights = [rng.uniform(-0.5, 0.5, w.shape).astype("float32") for w in keras_layer.weights]
    keras_layer.set_weights(weights)
    layer.set_weights(weights)
    return keras_layer, layer


def _as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _run(layer, weights, x, mask, initial_state, training, loss_weights):
    x = x.clone().requires_grad_(True)
    states = None
    if initial_state is not None:
        states = [s.clone().requires_grad_(True) for s in initial_state]
    kwargs = {"mask": mask} if mask is not None else {}
    if states is not None:
        kwargs["initial_state"] = states
    if training is not None:
        kwargs["training"] = training
    outputs = _as_list(layer(x, **kwargs))
    if loss_weights is None:
        generator = torch.Generator().manual_seed(1)
        loss_weights = [torch.randn(o.shape, generator=generator) for o in outputs]
    loss = sum((o * w).sum() for o, w in zip(outputs, loss_weights))
    wrt = [x, *(states or []), *weights]
    grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, wrt)]
    return [o.detach() for o in outputs], grads, loss_weights


def _case_id(case):
    (rank, padding, fmt, seqs, state, back, wrapper, extra, training), mask, init = case
    parts = [
        f"{rank}d",
        padding,
        "last" if fmt == "channels_last" else "first",
        "seq" if seqs else "last_out",
        "state" if state else "no_state",
        "backwards" if back else "forwards",
        f"bi_{wrapper}" if wrapper else "alone",
        *(f"{k}{v}" for k, v in extra),
        mask,
        "init" if init else "no_init",
    ]
    return "-".join(parts)


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_parity(case):
    structure, mask_name, initial_state = case
    rank, padding, data_format, _, _, _, wrapper, _, training = structure
    keras_layer, layer = _pair(*structure[:-1])
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    shape = _input_shape(rank, data_format)
    x = torch.tensor(rng.standard_normal(shape), dtype=torch.float32)
    mask = MASKS[mask_name]
    mask = None if mask is None else torch.tensor(mask, dtype=torch.bool)
    states = None
    if initial_state:
        inner = layer.forward_layer if wrapper else layer
        state_shape = inner.cell.state_shape((BATCH, *shape[2:]))
        count = 4 if wrapper else 2
        states = [
            torch.tensor(rng.standard_normal(state_shape), dtype=torch.float32)
            for _ in range(count)
        ]

    keras_weights = [v.value for v in keras_layer.trainable_weights]
    expected, expected_grads, loss_weights = _run(
        keras_layer, keras_weights, x, mask, states, training, None
    )
    actual, grads, _ = _run(
        layer, layer.trainable_weights, x, mask, states, training, loss_weights
    )

    assert [tuple(a.shape) for a in actual] == [tuple(e.shape) for e in expected]
    assert_close(actual, expected, atol=1e-5, what="outputs")
    assert_close(grads, [to_numpy(g) for g in expected_grads], atol=1e-4, what="gradients")
    assert torch.count_nonzero(grads[0]), "the inputs get no gradient"
    weight_grads = grads[len(grads) - len(layer.trainable_weights) :]
    assert all(torch.count_nonzero(g) for g in weight_grads), "a weight gets no gradient"

    expected_shapes = keras_layer.compute_output_shape(shape)
    assert _shapes(layer.compute_output_shape(shape)) == _shapes(expected_shapes)


def _shapes(shapes):
    if shapes and isinstance(shapes[0], (list, tuple)):
        return [tuple(s) for s in shapes]
    return [tuple(shapes)]


def test_grid_size():
    assert len(GRID) == 3 * 2**6
    assert len(STRUCTURES) * len(MASKS) * 2 == 768
    assert len(CASES) == 777
    wrapped_modes = [s[6] for s in STRUCTURES if s[6] is not None]
    assert {m: wrapped_modes.count(m) for m in set(wrapped_modes)} == {
        "concat": 20,
        "sum": 19,
        "mul": 19,
        "ave": 19,
        "none": 19,
    }
