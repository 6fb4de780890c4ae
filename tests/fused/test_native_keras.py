"""birnn's native kernels over Keras-layout weights (`birnn.ops.native_keras`): the same
numbers as the kernels on PyTorch-layout weights, in one autograd node."""

import pytest
import torch

from birnn.ops import fused_rnn, native_keras, native_rnn

GATES = {"lstm": 4, "gru": 3}

pytestmark = pytest.mark.usefixtures("needs_native")


def _problem(kind, directions, has_biases, dtype, time=4, batch=3, features=5, units=6, seed=0):
    """`(x, states, keras_weights)`, batch first, every tensor requiring gradients."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return (torch.randn(shape, generator=g, dtype=dtype) / 2).requires_grad_()

    gates = GATES[kind] * units
    x = rand(batch, time, features)
    states = [rand(directions, batch, units) for _ in range(2 if kind == "lstm" else 1)]
    bias_shape = (gates,) if kind == "lstm" else (2, gates)
    weights = [
        (rand(features, gates), rand(units, gates), rand(*bias_shape) if has_biases else None)
        for _ in range(directions)
    ]
    return x, states, weights


def _leaves(x, states, weights):
    return [x, *states, *(w for direction in weights for w in direction if w is not None)]


def _run_keras(kind, x, states, weights, batch_first, concurrent):
    inputs = x if batch_first else x.transpose(0, 1)
    outputs, final = native_keras.kernel(kind, inputs, states, weights, batch_first, concurrent)
    return outputs if batch_first else outputs.transpose(0, 1), final


def _run_torch_layout(kind, x, states, weights, batch_first, concurrent):
    """What the fused path ran before: the weights converted by autograd-recorded ops."""
    flat = [w for direction in weights for w in fused_rnn.torch_weights(kind, *direction)]
    inputs = x if batch_first else x.transpose(0, 1)
    has_biases = weights[0][2] is not None
    outputs, final = native_rnn.kernel(
        kind, inputs, states, flat, has_biases, len(weights) == 2, batch_first, concurrent
    )
    return outputs if batch_first else outputs.transpose(0, 1), final


def _results_and_gradients(run, args, leaves):
    outputs, final = run(*args)
    g = torch.Generator().manual_seed(1)
    results = [outputs, *final]
    loss = sum((r * torch.randn(r.shape, generator=g, dtype=r.dtype)).sum() for r in results)
    return [r.detach() for r in results], list(torch.autograd.grad(loss, leaves))


@pytest.mark.parametrize("has_biases", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("directions", [1, 2])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_same_numbers_as_the_kernels_on_converted_weights(kind, directions, has_biases):
    # Unit counts on both sides of the kernels' few-unit switch (16), both layouts.
    for units, batch_first, concurrent in ((6, True, True), (17, False, False)):
        x, states, weights = _problem(kind, directions, has_biases, torch.float32, units=units)
        leaves = _leaves(x, states, weights)
        args = (kind, x, states, weights, batch_first, concurrent)
        got = _results_and_gradients(_run_keras, args, leaves)
        expected = _results_and_gradients(_run_torch_layout, args, leaves)
        for a, b in zip(got[0] + got[1], expected[0] + expected[1]):
            assert a.shape == b.shape
            assert torch.equal(a, b)


@pytest.mark.parametrize("concurrent", [True, False], ids=["concurrent", "sequential"])
@pytest.mark.parametrize("has_biases", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("directions", [1, 2])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_gradcheck(kind, directions, has_biases, concurrent):
    x, states, weights = _problem(kind, directions, has_biases, torch.float64, 3, 2, 3, 2)
    count = len(states)
    per = 3 if has_biases else 2

    def function(x, *rest):
        states, flat = list(rest[:count]), rest[count:]
        triples = [
            (*flat[d * per : d * per + 2], flat[d * per + 2] if has_biases else None)
            for d in range(directions)
        ]
        outputs, final = _run_keras(kind, x, states, triples, True, concurrent)
        return outputs, *final

    assert torch.autograd.gradcheck(function, tuple(_leaves(x, states, weights)))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_gradcheck_time_major(kind):
    x, states, weights = _problem(kind, 2, True, torch.float64, 3, 2, 3, 2)
    count = len(states)

    def function(x, *rest):
        flat = rest[count:]
        triples = [tuple(flat[:3]), tuple(flat[3:])]
        outputs, final = _run_keras(kind, x, list(rest[:count]), triples, False, False)
        return outputs, *final

    assert torch.autograd.gradcheck(function, tuple(_leaves(x, states, weights)))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_one_autograd_node_per_call(kind):
    """The weights' conversion records nothing: the call's node leads straight to the
    Keras-layout weights."""
    x, states, weights = _problem(kind, 2, True, torch.float32)
    outputs, _ = native_keras.kernel(kind, x, states, weights, True, False)
    node = outputs.grad_fn
    assert type(node).__name__ == f"_{kind.upper()}Backward"
    following = [next_node for next_node, _ in node.next_functions if next_node is not None]
    # x is batch first: the transpose into the kernels' time-major layout is inside the node.
    assert type(following[0]).__name__ == "AccumulateGrad"
    assert [type(n).__name__ for n in following[len(states) + 1 :]] == ["AccumulateGrad"] * 6


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_without_gradients_the_same_outputs(kind):
    x, states, weights = _problem(kind, 2, True, torch.float32)
    with torch.no_grad():
        plain, plain_final = native_keras.kernel(kind, x, states, weights, True, True)
    recorded, recorded_final = native_keras.kernel(kind, x, states, weights, True, True)
    assert plain.grad_fn is None and recorded.grad_fn is not None
    for a, b in zip([plain, *plain_final], [recorded, *recorded_final]):
        assert torch.equal(a, b)


def test_disabled_kernels_raise():
    x, states, weights = _problem("gru", 1, True, torch.float32)
    native_rnn.set_enabled(False)
    try:
        with pytest.raises(RuntimeError, match="native kernels are not available"):
            native_keras.kernel("gru", x, states, weights, True, False)
    finally:
        native_rnn.set_enabled(True)
