"""birnn's native LSTM / GRU kernels (`birnn.ops.native_rnn`) compute what PyTorch's do."""

import contextlib
import itertools
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch

import birnn
from birnn import layers
from birnn.ops import native_build, native_keras, native_rnn, side_by_side, traced_rnn

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


# Below 16 units the kernels keep each step unit-major, (gates * units, batch), and compute
# the input and weight gradients after the walk; from 16 units on they keep it row-major.
# Unit counts on both sides of that switch and of the vector widths (8, 16 float32 lanes),
# with a batch that fills vectors (32) and one that leaves tails (5).
@pytest.mark.parametrize("units", [1, 3, 10, 15, 16, 17, 33])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_kernel_matches_torch_around_the_unit_major_switch(kind, units):
    for dtype, batch, batch_first in (
        (torch.float32, 32, True),
        (torch.float64, 5, False),
        (torch.float32, 5, False),
    ):
        _compare(kind, 2, batch_first, True, True, dtype, time=4, batch=batch, units=units)
    _compare(kind, 1, True, False, False, torch.float32, time=3, batch=7, units=units)


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
def test_saturated_gates_keep_the_state_bit_for_bit(kind, dtype):
    """Pre-activations of +-1e6 give gates of exactly 0 and 1: through padded steps an
    LSTM keeps its carry and a GRU its state bit for bit."""
    x, states, weights = _saturating(kind, dtype, padded=slice(None))  # every step padded
    x = x.detach() * 100  # the other features large too: they must not leak in
    with torch.no_grad():
        outputs, final = _native(kind, x, states, weights, True, False, False)
    assert torch.equal(final[-1], states[-1])  # c (LSTM), h (GRU)
    if kind == "gru":
        assert torch.equal(outputs, states[0].expand_as(outputs))
    x, states, weights = _saturating(kind, dtype, padded=slice(3, None))
    with torch.no_grad():
        outputs, final = _native(kind, x, states, weights, True, False, False)
        valid, valid_final = _native(kind, x[:3], states, weights, True, False, False)
    tolerance = 1e-6 if dtype == torch.float32 else 1e-14  # only the products' rounding
    torch.testing.assert_close(final[-1], valid_final[-1], atol=tolerance, rtol=tolerance)
    if kind == "gru":
        assert torch.equal(outputs[3:], outputs[2:3].expand(3, -1, -1))


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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_double_backward_through_a_layer_with_the_native_kernels_off(native_off, kind, dtype):
    """PyTorch's CPU LSTM and GRU kernels are differentiable twice: `set_enabled(False)`
    (or `BIRNN_NATIVE=off`) is the way to higher-order gradients."""
    torch.manual_seed(0)
    rnn = {"lstm": layers.LSTM, "gru": layers.GRU}[kind]
    layer = layers.Bidirectional(rnn(4, return_sequences=True), dtype=dtype)
    x = torch.randn(2, 5, 3, dtype=getattr(torch, dtype), requires_grad=True)
    (grad,) = torch.autograd.grad(layer(x).square().sum(), x, create_graph=True)
    (second,) = torch.autograd.grad(grad.sum(), x)
    assert torch.isfinite(second).all() and second.abs().sum() > 0


# ------------------------------------------------------------------ layers: native on and off
RNNS = {"lstm": layers.LSTM, "gru": layers.GRU}
B, T, F, U = 4, 6, 3, 5


@pytest.fixture
def native_calls(monkeypatch):
    """`(kind, bidirectional, concurrent)` of each native kernel call (on PyTorch-layout
    weights, or on Keras-layout ones)."""
    calls = []
    original, original_keras = native_rnn.kernel, native_keras.kernel

    @torch.compiler.disable
    def recorded(kind, *args):
        calls.append((kind, args[4], args[6]))
        return original(kind, *args)

    @torch.compiler.disable
    def recorded_keras(kind, inputs, states, directions, batch_first, concurrent):
        calls.append((kind, len(directions) == 2, concurrent))
        return original_keras(kind, inputs, states, directions, batch_first, concurrent)

    monkeypatch.setattr(native_rnn, "kernel", recorded)
    monkeypatch.setattr(native_keras, "kernel", recorded_keras)
    return calls


@pytest.fixture
def side_by_side_mode():
    """Sets the side-by-side mode for one test, then puts `auto` back."""
    yield side_by_side.set_mode
    side_by_side.set_mode("auto")


def _mask(pattern):
    if pattern is None:
        return None
    mask = torch.arange(T) < torch.tensor([6, 4, 1, 5])[:, None]
    if pattern == "holes":
        mask[0, 2] = mask[1, 0] = False
        mask[2] = False  # a fully masked row
    return mask


def _run(layer, x, mask, context, training, seed=3):
    """Outputs (and states), then the gradients of the input and of every weight."""
    x = x.clone().requires_grad_(context is contextlib.nullcontext)
    torch.manual_seed(seed)  # the same dropout masks on each run
    with context():
        outputs = layer(x, mask=mask, training=training)
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    if not x.requires_grad:
        return [o.clone() for o in outputs]
    loss = sum((o * torch.linspace(-1, 1, o.shape[-1])).sum() for o in outputs)
    leaves = [x, *layer.parameters()]
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return [o.detach() for o in outputs] + [g for g in grads if g is not None]


LAYER_CASES = [
    # options of the recurrent layer, mask pattern, context, training
    ({"return_sequences": True, "return_state": True}, None, "grad", False),
    ({"return_sequences": True}, "holes", "grad", False),
    ({"zero_output_for_mask": True, "return_sequences": True}, "holes", "grad", False),
    ({"go_backwards": True, "return_sequences": True}, "holes", "grad", False),
    ({"dropout": 0.3, "return_sequences": True}, "right", "grad", True),
    ({"use_bias": False}, "right", "grad", False),
    ({"return_sequences": True, "return_state": True}, "holes", "no_grad", False),
    ({"return_sequences": True}, None, "inference_mode", False),
    ({"return_state": True}, "right", "inference_mode", False),
]
CONTEXTS = {
    "grad": contextlib.nullcontext,
    "no_grad": torch.no_grad,
    "inference_mode": torch.inference_mode,
}


@pytest.mark.parametrize("case", LAYER_CASES, ids=lambda c: f"{c[1]}-{c[2]}-{sorted(c[0])}")
# "bidirectional": a pair's two directions one after the other; "..._side_by_side": at once.
@pytest.mark.parametrize("layout", ["one_way", "bidirectional", "bidirectional_side_by_side"])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_layer_native_on_equals_off(
    kind, layout, case, side_by_side_mode, few_threads, native_calls
):
    options, pattern, context, training = case
    bidirectional = layout != "one_way"
    concurrent_pairs = layout == "bidirectional_side_by_side"
    side_by_side_mode("on" if concurrent_pairs else "off")
    torch.manual_seed(0)
    layer = RNNS[kind](U, **options)
    if bidirectional:
        layer = layers.Bidirectional(layer)
    x, mask = torch.randn(B, T, F), _mask(pattern)
    layer(x)  # builds (drawing the weights) before the runs draw their dropout masks
    native_calls.clear()
    results = {}
    for native in (True, False):
        native_rnn.set_enabled(native)
        try:
            results[native] = _run(layer, x, mask, CONTEXTS[context], training)
        finally:
            native_rnn.set_enabled(True)
        if native:
            # At least: a GRU always, an LSTM wherever it records gradients.
            if kind == "gru" or context == "grad":
                assert native_calls
            concurrent = [c for (_, two, c) in native_calls if two]
            if bidirectional and "dropout" not in options and native_calls:
                assert concurrent  # the pair in one call (dropout: one mask per direction)
            if concurrent_pairs:
                assert all(concurrent)
            else:
                assert not any(concurrent)
    _assert_same(results[True], results[False], 1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_stateful_layer_native_on_equals_off(kind, few_threads):
    torch.manual_seed(0)
    layer = layers.Bidirectional(RNNS[kind](U, stateful=True, return_sequences=True))
    xs = [torch.randn(B, T, F) for _ in range(3)]
    results = {}
    for native in (True, False):
        native_rnn.set_enabled(native)
        try:
            layer.reset_states()
            results[native] = [_run(layer, x, None, contextlib.nullcontext, False) for x in xs]
        finally:
            native_rnn.set_enabled(True)
    for got, expected in zip(results[True], results[False]):
        _assert_same(got, expected, 1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_cpu_autocast_runs_torch_kernel(kind, native_calls):
    torch.manual_seed(0)
    layer = layers.Bidirectional(RNNS[kind](U, return_sequences=True))
    x = torch.randn(B, T, F)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not native_rnn.usable([x, *layer.parameters()])
        results = {}
        for native in (True, False):
            native_rnn.set_enabled(native)
            try:
                results[native] = _run(layer, x, _mask("holes"), contextlib.nullcontext, False)
            finally:
                native_rnn.set_enabled(True)
    assert native_calls == []
    assert results[True][0].dtype == torch.bfloat16
    for got, expected in zip(results[True], results[False]):
        assert torch.equal(got, expected)


def test_double_and_mixed_dtypes():
    """float64 runs natively; mixed dtypes (not something the kernel takes) do not."""
    x32, x64 = torch.zeros(2, 3, 4), torch.zeros(2, 3, 4, dtype=torch.float64)
    assert native_rnn.usable([x64, x64]) and native_rnn.usable([x32, x32])
    assert not native_rnn.usable([x32, x64])
    assert not native_rnn.usable([x32.half()])
    assert not native_rnn.usable([torch.zeros(2, device="meta")])


# ------------------------------------------------------------------ threads and torch.compile
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_two_threads_calling_one_layer(kind, few_threads, native_calls):
    side_by_side.set_mode("on")  # tiny shapes: both directions at once all the same
    try:
        torch.manual_seed(0)
        layer = layers.Bidirectional(RNNS[kind](U, return_sequences=True))
        inputs = [torch.randn(B, T, F) for _ in range(2)]
        expected = [_run(layer, x, None, contextlib.nullcontext, False) for x in inputs]
        assert native_calls and all(call == (kind, True, True) for call in native_calls)
        results = {0: [], 1: []}
        failures = []

        def work(index):
            try:
                for _ in range(15):
                    results[index].append(
                        _run(layer, inputs[index], None, contextlib.nullcontext, False)
                    )
            except BaseException as error:  # reported by the main thread
                failures.append(error)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        side_by_side.set_mode("auto")
    assert failures == []
    for index in range(2):
        assert len(results[index]) == 15
        for got in results[index]:
            _assert_same(got, expected[index], 1e-6)


def test_torch_compile_runs_the_native_kernel_and_matches_eager(few_threads, native_calls):
    steps = traced_rnn.MAX_TRACED_STEPS + 2  # longer than what compiles as traced steps
    torch.manual_seed(0)
    model = birnn.Sequential(
        [
            birnn.Input((steps, F)),
            layers.Bidirectional(layers.GRU(U, return_sequences=True)),
            layers.Bidirectional(layers.LSTM(U)),
            layers.Dense(2),
        ]
    )
    x = torch.randn(B, steps, F)

    def step(function):
        model.zero_grad(set_to_none=True)
        out = function(x)
        out.square().sum().backward()
        return [out.detach()] + [p.grad.clone() for p in model.parameters()]

    native_rnn.set_enabled(False)
    try:
        reference = step(model)
    finally:
        native_rnn.set_enabled(True)
    assert native_calls == []
    eager = step(model)
    eager_calls = list(native_calls)
    assert [kind for kind, _, _ in eager_calls] == ["gru", "lstm"]
    native_calls.clear()
    compiled = step(torch.compile(model, backend="eager"))
    # The same native calls, each pair in one call (whether its two directions run at
    # once is a speed matter: a compiled caller may run them one after the other).
    assert [call[:2] for call in native_calls] == [call[:2] for call in eager_calls]
    _assert_same(compiled, eager, 1e-6)
    _assert_same(compiled, reference, 1e-5)
