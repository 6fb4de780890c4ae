"""birnn's native LSTM / GRU kernels (`birnn.ops.native_rnn`) compute what PyTorch's do."""

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from birnn import layers
from birnn.ops import native_build, native_rnn

GATES = {"lstm": 4, "gru": 3}
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


# ------------------------------------------------------------------ kernel against torch._VF
def _tensor(g, shape, dtype, contiguous=True):
    if contiguous:
        return torch.randn(shape, generator=g, dtype=dtype)
    # Every other column of a wider tensor: no dimension is contiguous but the first ones.
    wide = torch.randn((*shape[:-1], 2 * shape[-1]), generator=g, dtype=dtype)
    return wide[..., ::2]


def _problem(
    kind,
    directions,
    batch_first,
    has_biases,
    dtype,
    time=5,
    batch=3,
    features=4,
    units=6,
    contiguous=True,
    seed=0,
):
    """`(x, states, weights)` in `torch._VF.lstm / gru`'s layout, all requiring gradients."""
    g = torch.Generator().manual_seed(seed)
    gates = GATES[kind] * units
    shape = (batch, time, features) if batch_first else (time, batch, features)
    x = _tensor(g, shape, dtype, contiguous)
    states = [
        _tensor(g, (directions, batch, units), dtype, contiguous)
        for _ in range(2 if kind == "lstm" else 1)
    ]
    weights = []
    for _ in range(directions):
        weights += [
            _tensor(g, (gates, features), dtype, contiguous) / 2,
            _tensor(g, (gates, units), dtype, contiguous) / 2,
        ]
        if has_biases:
            weights += [_tensor(g, (gates,), dtype, contiguous) for _ in range(2)]
    return [t.requires_grad_() for t in (x, *states, *weights)]


def _vf(kind, x, states, weights, has_biases, bidirectional, batch_first):
    """PyTorch's own kernel: `(outputs, final_states)`."""
    hx = tuple(states) if kind == "lstm" else states[0]
    result = getattr(torch._VF, kind)(
        x, hx, weights, has_biases, 1, 0.0, False, bidirectional, batch_first
    )
    return result[0], list(result[1:])


def _native(kind, x, states, weights, has_biases, bidirectional, batch_first, concurrent=False):
    return native_rnn.kernel(
        kind, x, states, weights, has_biases, bidirectional, batch_first, concurrent
    )


def _results_and_gradients(run, leaves, seed=1):
    """Outputs, final states, and the gradient of a random projection of them w.r.t. `leaves`."""
    outputs, final = run()
    g = torch.Generator().manual_seed(seed)
    results = [outputs, *final]
    loss = sum(
        (r * torch.randn(r.shape, generator=g, dtype=r.dtype)).sum() for r in results if r.numel()
    )
    grads = torch.autograd.grad(loss, leaves, allow_unused=True) if loss else []
    return [r.detach() for r in results], list(grads)


def _assert_same(got, expected, atol):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        if b is None:
            assert a is None
            continue
        assert a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(a, b, atol=atol, rtol=atol)


def _compare(kind, directions, batch_first, has_biases, concurrent, dtype, **sizes):
    leaves = _problem(kind, directions, batch_first, has_biases, dtype, **sizes)
    count = 2 if kind == "lstm" else 1
    x, states, weights = leaves[0], leaves[1 : 1 + count], leaves[1 + count :]
    args = (kind, x, states, weights, has_biases, directions == 2, batch_first)
    expected = _results_and_gradients(lambda: _vf(*args), leaves)
    got = _results_and_gradients(lambda: _native(*args, concurrent), leaves)
    for g, e in zip(got, expected):
        _assert_same(g, e, TOLERANCE[dtype])
    return got


pytestmark = pytest.mark.usefixtures("needs_native")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("concurrent", [True, False], ids=["concurrent", "sequential"])
@pytest.mark.parametrize("has_biases", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_major"])
@pytest.mark.parametrize("directions", [1, 2])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_kernel_matches_torch(kind, directions, batch_first, has_biases, concurrent, dtype):
    _compare(kind, directions, batch_first, has_biases, concurrent, dtype)


SIZES = [
    {"time": 1},
    {"batch": 1},
    {"units": 1},
    {"features": 1},
    {"time": 1, "batch": 1, "units": 1, "features": 1},
    {"batch": 0},
    {"contiguous": False},
    {"time": 13, "batch": 2, "units": 17, "contiguous": False},  # odd units: vector tails
]


@pytest.mark.parametrize("sizes", SIZES, ids=str)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_kernel_matches_torch_at_edge_sizes(kind, sizes):
    for dtype, batch_first in ((torch.float32, True), (torch.float64, False)):
        _compare(kind, 2, batch_first, True, True, dtype, **sizes)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_concurrent_equals_one_direction_after_the_other(kind):
    for dtype in (torch.float32, torch.float64):
        runs = [
            _compare(kind, 2, True, True, concurrent, dtype, time=11, units=9, seed=5)
            for concurrent in (True, False)
        ]
        for a, b in zip(*runs):
            # The same arithmetic per direction; only the thread differs.
            _assert_same(a, b, 1e-6 if dtype == torch.float32 else 1e-14)


@pytest.mark.parametrize("concurrent", [True, False], ids=["concurrent", "sequential"])
@pytest.mark.parametrize("directions", [1, 2])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_gradcheck(kind, directions, concurrent):
    leaves = _problem(kind, directions, True, True, torch.float64, time=3, batch=2, units=2)
    count = 2 if kind == "lstm" else 1

    def function(x, *rest):
        states, weights = list(rest[:count]), list(rest[count:])
        outputs, final = _native(kind, x, states, weights, True, directions == 2, True, concurrent)
        return outputs, *final

    assert torch.autograd.gradcheck(function, tuple(leaves))


def _saturating(kind, dtype, padded):
    """One direction whose last input feature (1 at `padded` steps) saturates the gates
    that keep the state: an LSTM's input gate to 0 and forget gate to 1, a GRU's update
    gate to 1 (as `fused_rnn.torch_weights(..., padding_feature=True)` does)."""
    x, h0, *rest = _problem(kind, 1, False, True, dtype, time=6, batch=2, features=3, units=5)
    states = [h0, *rest[:-4]]
    w_ih, w_hh, b_ih, b_hh = (w.detach() for w in rest[-4:])
    units = w_hh.shape[1]
    column = torch.zeros(w_ih.shape[0], 1, dtype=dtype)
    if kind == "lstm":
        column[:units], column[units : 2 * units] = -1e6, 1e6
    else:
        column[units : 2 * units] = 1e6
    w_ih = torch.cat([w_ih, column], 1)
    feature = torch.zeros(x.shape[0], x.shape[1], 1, dtype=dtype)
    feature[padded] = 1.0
    x = torch.cat([x.detach(), feature], -1).requires_grad_()
    weights = [w.requires_grad_() for w in (w_ih, w_hh, b_ih, b_hh)]
    return x, [s.detach().requires_grad_() for s in states], weights


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_saturated_gates_are_exactly_0_or_1_and_keep_the_state(kind, dtype):
    x, states, weights = _saturating(kind, dtype, padded=slice(3, None))
    w_ih, w_hh, b_ih, b_hh = (w.detach()[None] for w in weights)
    x, states = x.detach(), [s.detach() for s in states]
    units = w_hh.shape[-1]
    if kind == "lstm":
        _, _, c_n, gates, c, _ = torch.ops.birnn_native.lstm_forward(
            x, *states, w_ih, w_hh, b_ih + b_hh, False, False
        )
        assert torch.equal(gates[0, 3:, :, :units], torch.zeros_like(gates[0, 3:, :, :units]))
        f = gates[0, 3:, :, units : 2 * units]
        assert torch.equal(f, torch.ones_like(f))
        kept, final = c[0], c_n[0]  # the carry, bit for bit through the padded steps
    else:
        y, h_n, gates, _ = torch.ops.birnn_native.gru_forward(
            x, *states, w_ih, w_hh, b_ih, b_hh, False, False
        )
        z = gates[0, 3:, :, units : 2 * units]
        assert torch.equal(z, torch.ones_like(z))
        kept, final = y, h_n[0]  # the state
    assert torch.equal(kept[3:], kept[2:3].expand(3, -1, -1))
    assert torch.equal(final, kept[2])
    assert not torch.equal(kept[2], kept[1])  # the valid steps did change it


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_saturated_gates_match_torch_with_finite_gradients(kind, dtype):
    x, states, weights = _saturating(kind, dtype, padded=slice(3, None))
    leaves = [x, *states, *weights]
    args = (kind, x, states, weights, True, False, False)
    expected = _results_and_gradients(lambda: _vf(*args), leaves)
    got = _results_and_gradients(lambda: _native(*args), leaves)
    assert all(torch.isfinite(g).all() for g in got[1])
    for g, e in zip(got, expected):
        _assert_same(g, e, TOLERANCE[dtype])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_inference_mode_and_no_grad(kind):
    leaves = _problem(kind, 2, True, True, torch.float32)
    count = 2 if kind == "lstm" else 1
    args = (kind, leaves[0], leaves[1 : 1 + count], leaves[1 + count :], True, True, True)
    expected, expected_final = _vf(*args)
    for concurrent, context in itertools.product(
        (True, False), (torch.no_grad, torch.inference_mode)
    ):
        with context():
            outputs, final = _native(*args, concurrent)
        assert not outputs.requires_grad
        assert outputs.is_inference() == (context is torch.inference_mode)
        _assert_same([outputs, *final], [expected, *expected_final], 1e-5)


def test_bad_input_raises_a_clear_error():
    x, h0, c0, *weights = _problem("lstm", 1, True, True, torch.float32)
    g_x, g_h0, *g_weights = _problem("gru", 1, True, True, torch.float32)
    cases = [
        ("lstm", x, [h0, c0[:, :, :-1]], weights, "c0"),
        ("lstm", x, [h0, torch.randn(1, 3, 7)], weights, "c0"),
        ("lstm", x, [h0, c0[:, :-1]], weights, "c0"),
        ("lstm", x, [h0, c0], [*weights[:2], torch.randn(1), torch.randn(1)], "bias"),
        ("gru", g_x, [g_h0], [*g_weights[:2], torch.randn(1), torch.randn(1)], "b_ih"),
        ("gru", g_x, [g_h0], [*g_weights[:3], torch.randn(1)], "b_hh"),
        ("gru", g_x, [g_h0[0]], g_weights, "states"),
        ("gru", g_x, [g_h0.double()], g_weights, "dtype"),
        ("lstm", x, [h0, c0.double()], weights, "dtype"),
        ("gru", g_x[:, :0], [g_h0], g_weights, "time step"),
    ]
    for kind, *args, message in cases:
        with pytest.raises(RuntimeError, match=rf"birnn::{kind}_forward: .*{message}"):
            _native(kind, *args, True, False, True)


def test_kernel_loads_the_library_on_first_use():
    """`kernel` works as the first call in a process (it builds or loads the library)."""
    script = textwrap.dedent(
        """
        import torch
        from birnn.ops import native_rnn
        weights = [torch.rand(12, 3), torch.rand(12, 4)]
        x, h0 = torch.rand(2, 5, 3), torch.zeros(1, 2, 4)
        outputs, (h,) = native_rnn.kernel("gru", x, [h0], weights, False, False, True, False)
        expected, _ = torch._VF.gru(x, h0, weights, False, 1, 0.0, False, False, True)
        assert torch.allclose(outputs, expected, atol=1e-6)
        """
    )
    src = str(Path(native_build.__file__).parents[2])
    environment = {**os.environ, "PYTHONPATH": src, "BIRNN_NATIVE": "on"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]


# ------------------------------------------------------------------ double backward
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_double_backward_raises_with_the_native_kernels(kind):
    leaves = _problem(kind, 2, True, True, torch.float64)
    count = 2 if kind == "lstm" else 1
    outputs, _ = _native(
        kind, leaves[0], leaves[1 : 1 + count], leaves[1 + count :], True, True, True
    )
    (grad,) = torch.autograd.grad(outputs.square().sum(), leaves[0], create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad.sum().backward()


def test_double_backward_through_a_gru_layer_with_the_native_kernels_off(native_off):
    """PyTorch's CPU GRU kernel is differentiable twice: `set_enabled(False)` is the way."""
    torch.manual_seed(0)
    layer = layers.Bidirectional(layers.GRU(4, return_sequences=True), dtype="float64")
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(layer(x).square().sum(), x, create_graph=True)
    (second,) = torch.autograd.grad(grad.sum(), x)
    assert torch.isfinite(second).all() and second.abs().sum() > 0
