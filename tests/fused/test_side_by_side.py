"""Directions side by side (`birnn.ops.side_by_side`) compute what the sequential path does."""

import ast
import dataclasses
import faulthandler
import os
import subprocess
import sys
import threading

import pytest
import torch

import birnn
from birnn import layers
from birnn.ops import fused_rnn, native_keras, native_rnn, side_by_side

B, T, F, U = 5, 7, 3, 4
GATES = {"lstm": 4, "gru": 3}


@pytest.fixture
def mode():
    """Sets the side-by-side mode for one test, then puts `auto` back."""
    yield side_by_side.set_mode
    side_by_side.set_mode("auto")


@pytest.fixture
def threads_seen(monkeypatch):
    """The names of the threads that ran each direction's kernel call."""
    names = []
    original = fused_rnn._one_direction

    @torch.compiler.disable  # a spy, not part of what a compiled model traces
    def recorded(*args, **kwargs):
        names.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(fused_rnn, "_one_direction", recorded)
    return names


@pytest.fixture
def native_calls(monkeypatch):
    """`(bidirectional, concurrent)` of each call of the native kernel."""
    calls = []
    original, original_keras = native_rnn.kernel, native_keras.kernel

    @torch.compiler.disable
    def recorded(
        kind, inputs, states, weights, has_biases, bidirectional, batch_first, concurrent
    ):
        calls.append((bidirectional, concurrent))
        return original(
            kind, inputs, states, weights, has_biases, bidirectional, batch_first, concurrent
        )

    @torch.compiler.disable
    def recorded_keras(kind, inputs, states, directions, batch_first, concurrent):
        calls.append((len(directions) == 2, concurrent))
        return original_keras(kind, inputs, states, directions, batch_first, concurrent)

    monkeypatch.setattr(native_rnn, "kernel", recorded)
    monkeypatch.setattr(native_keras, "kernel", recorded_keras)
    return calls


# ------------------------------------------------------------------ the mechanism alone
def _product(x, w):
    y = x * w
    return y, y.sum(), y  # one output returned twice


def _two(a, b, concurrent=True):
    first = (_product, [a, b])
    second = (lambda x, none, w: (torch.sin(x) @ w.diag(),), [a, None, b.flip(0)])
    return side_by_side.run(first, second, side_by_side=concurrent)


def test_gradcheck_float64():
    a = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)

    def flat(a, b):
        (x, s, _), (y,) = _two(a, b)
        return x, s, y

    assert torch.autograd.gradcheck(flat, (a, b))


def test_results_and_gradients_equal_the_sequential_path_bit_for_bit():
    a = torch.randn(3, 4, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    grads = []
    for concurrent in (False, True):
        (x, s, x2), (y,) = _two(a, b, concurrent)
        assert x2 is x
        (x.sum() * 2 + s + y.square().sum()).backward()
        grads.append((x.detach(), y.detach(), a.grad, b.grad))
        a.grad = b.grad = None
    for sequential, concurrent in zip(*grads):
        assert torch.equal(sequential, concurrent)


def test_backward_through_one_side_only_and_twice_with_retain_graph():
    a = torch.randn(3, 4, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    (_, _, _), (y,) = _two(a, b)
    y.sum().backward(retain_graph=True)
    once = a.grad.clone()
    y.sum().backward()
    torch.testing.assert_close(a.grad, 2 * once)
    with pytest.raises(RuntimeError, match="second time"):
        y.sum().backward()


def test_double_backward_raises_rather_than_being_wrong():
    a = torch.randn(3, 4, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    (x, _, _), _ = _two(a, b)
    (grad,) = torch.autograd.grad(x.square().sum(), a, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad.sum().backward()


def test_no_grad_and_inference_mode_record_nothing():
    a = torch.randn(3, 4, requires_grad=True)
    b = torch.randn(4)
    with torch.no_grad():
        (x, _, _), (y,) = _two(a, b)
    assert x.grad_fn is None and not y.requires_grad
    with torch.inference_mode():
        (x, _, _), (y,) = _two(a, b)
    assert x.is_inference() and y.is_inference()


def test_worker_gets_grad_mode_autocast_and_half_the_threads():
    seen = {}

    def probe(x):
        seen[threading.current_thread().name] = (
            torch.is_grad_enabled(),
            torch.is_autocast_enabled("cpu"),
            torch.get_autocast_dtype("cpu"),
            torch.get_num_threads(),
        )
        return (x @ x.t(),)

    x = torch.randn(4, 4, requires_grad=True)
    threads = torch.get_num_threads()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (a,), (b,) = side_by_side.run((probe, [x]), (probe, [x]), side_by_side=True)
    assert a.dtype == b.dtype == torch.bfloat16  # `matmul` ran under the caller's autocast
    assert sorted(seen) == ["birnn-side-by-side-0", "birnn-side-by-side-1"]
    for state in seen.values():
        assert state == (True, True, torch.bfloat16, max(1, threads // 2))
    assert torch.get_num_threads() == threads
    started_later = []
    thread = threading.Thread(target=lambda: started_later.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert started_later == [threads]  # the workers' setting did not leak as the default


def test_an_error_in_a_worker_reaches_the_caller():
    def fails(x):
        raise ValueError("boom")

    x = torch.randn(2)
    with pytest.raises(ValueError, match="boom"):
        side_by_side.run((fails, [x]), (lambda t: (t,), [x]), side_by_side=True)
    (y,), _ = side_by_side.run((lambda t: (t + 1,), [x]), (lambda t: (t,), [x]), True)
    torch.testing.assert_close(y, x + 1)  # the workers live on


def test_wanted_follows_the_mode_the_size_and_the_device(mode):
    x = torch.zeros(2, 3)
    mode("auto")
    assert not side_by_side.wanted([x], work=1e5)
    assert side_by_side.wanted([x], work=1e9) == (torch.get_num_threads() >= 2)
    mode("on")
    assert side_by_side.wanted([x], work=1)
    assert not side_by_side.wanted([torch.zeros(2, 3, device="meta")], work=1e9)
    mode("off")
    assert not side_by_side.wanted([x], work=1e9)
    with pytest.raises(ValueError, match="mode"):
        mode("sometimes")


def test_auto_stays_sequential_with_one_thread(mode):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert not side_by_side.wanted([torch.zeros(2)], work=1e12)
    finally:
        torch.set_num_threads(threads)


def test_mode_from_the_environment(monkeypatch):
    for value, expected in [("0", "off"), ("on", "on"), ("", "auto"), ("AUTO", "auto")]:
        monkeypatch.setenv("BIRNN_SIDE_BY_SIDE", value)
        assert side_by_side._mode_from_environment() == expected
    monkeypatch.setenv("BIRNN_SIDE_BY_SIDE", "fast")
    with pytest.raises(ValueError, match="BIRNN_SIDE_BY_SIDE"):
        side_by_side._mode_from_environment()


def test_saved_tensor_hooks_and_workers_themselves_stay_sequential(mode):
    mode("on")
    x = torch.zeros(2)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
        assert not side_by_side.wanted([x], work=1)
    inside = side_by_side.run(
        (lambda t: (torch.tensor(side_by_side.wanted([t], work=1)),), [x]),
        (lambda t: (t,), [x]),
        side_by_side=True,
    )
    assert not inside[0][0]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_forked_child_starts_its_own_workers():
    x = torch.randn(3, requires_grad=True)
    side_by_side.run((lambda t: (t * 2,), [x]), (lambda t: (t * 3,), [x]), True)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        faulthandler.enable(all_threads=True)  # a crash prints where, into the captured output
        code = 1
        try:
            (a,), (b,) = side_by_side.run(
                (lambda t: (t * 2,), [x]), (lambda t: (t * 3,), [x]), True
            )
            (a.sum() + b.sum()).backward()
            code = 0 if torch.allclose(x.grad, torch.full((3,), 5.0)) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


_FORKING_SCRIPT = """
import os, torch
from birnn.ops import side_by_side

(torch.randn(4, requires_grad=True) * 2).sum().backward()
x = torch.randn(3, requires_grad=True)
codes = []
for _ in range(60):
    side_by_side.run((lambda t: (t * 2,), [x]), (lambda t: (t * 3,), [x]), True)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            side_by_side.run((lambda t: (t * 2,), [x]), (lambda t: (t * 3,), [x]), True)
            code = 0
        finally:
            os._exit(code)
    codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
print(codes)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_forked_children_start_their_workers_without_crashing():
    # PyTorch rebuilds its autograd engine in a forked child on the first differentiable op,
    # without a lock. Once the parent had run a backward pass, two new workers making their
    # first ops at once crashed about one child in fifteen (SIGSEGV). A fresh interpreter:
    # the state pytest leaves behind hid the crash.
    done = subprocess.run(
        [sys.executable, "-c", _FORKING_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    exit_codes = ast.literal_eval(done.stdout.strip())
    assert len(exit_codes) == 60
    assert [code for code in exit_codes if code != 0] == []


# ------------------------------------------------------------------ fused kernels
def _weights(kind, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    gates = GATES[kind]
    bias_shape = (gates * U,) if kind == "lstm" else (2, gates * U)
    return [
        (torch.randn(F, gates * U, generator=g, dtype=dtype) / 2).requires_grad_(),
        (torch.randn(U, gates * U, generator=g, dtype=dtype) / 2).requires_grad_(),
        torch.randn(bias_shape, generator=g, dtype=dtype).requires_grad_(),
    ]


def _mask(pattern):
    if pattern == "none":
        return None
    mask = torch.arange(T) < torch.tensor([7, 5, 3, 1, 6])[:, None]
    if pattern == "holes":
        mask[0, 2] = mask[2, 0] = False
    if pattern == "fully_masked_row":
        mask[3] = False
    return mask


def _pair(kind, mask, states, dropout, backward_first, zero_output, last_only, dtype):
    """Leaf tensors and the two `Direction`s reading them."""
    x = torch.randn(B, T, F, dtype=dtype, requires_grad=True)
    count = 2 if kind == "lstm" else 1
    directions, leaves = [], [x]
    for seed, go_backwards in ((0, backward_first), (1, not backward_first)):
        weights = _weights(kind, seed, dtype)
        initial = None
        if states:
            initial = [torch.randn(B, U, dtype=dtype, requires_grad=True) for _ in range(count)]
            leaves += initial
        drop = None
        if dropout:
            drop = (torch.rand(B, F, generator=torch.Generator().manual_seed(seed)) > 0.3).to(
                dtype
            )
        directions.append(
            fused_rnn.Direction(
                kind,
                *weights,
                initial_states=initial,
                mask=mask,
                go_backwards=go_backwards,
                zero_output_for_mask=zero_output,
                return_all_outputs=not last_only,
                dropout_mask=drop,
            )
        )
        leaves += weights
    return x, directions, leaves


def _everything(x, directions, leaves):
    pair = fused_rnn.run_pair(x, *directions)
    results = [*pair.last_outputs, *pair.states[0], *pair.states[1]]
    if pair.sequences is not None:
        results.append(pair.sequences)
    total = sum((r.double() * (i + 1)).sin().sum() for i, r in enumerate(results))
    grads = torch.autograd.grad(total, leaves, allow_unused=True)
    return [r.detach() for r in results] + [g for g in grads if g is not None]


CASES = [
    # pattern, initial states, dropout, backward first, zero output for mask, last only
    ("none", False, False, False, False, False),
    ("none", True, True, True, False, True),
    ("holes", False, False, False, True, False),
    ("holes", True, False, False, False, False),
    ("fully_masked_row", False, True, True, True, False),
    ("fully_masked_row", True, False, False, True, True),
]


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("case", CASES)
def test_bidirectional_side_by_side_equals_sequential(
    mode, threads_seen, native_calls, native, few_threads, kind, case
):
    pattern, states, dropout, backward_first, zero_output, last_only = case
    torch.manual_seed(0)
    x, directions, leaves = _pair(
        kind,
        _mask(pattern),
        states,
        dropout,
        backward_first,
        zero_output,
        last_only,
        torch.float32,
    )
    mode("off")
    expected = _everything(x, directions, leaves)
    assert not any(concurrent for _, concurrent in native_calls)
    assert bool(native_calls) == native
    threads_seen.clear()
    native_calls.clear()
    mode("on")
    got = _everything(x, directions, leaves)
    if native and fused_rnn._one_call_possible(*directions):
        # Both directions at once in one native call, on the caller's threads.
        assert threads_seen == []
        assert native_calls == [(True, True)]
    else:
        assert sorted(threads_seen) == ["birnn-side-by-side-0", "birnn-side-by-side-1"]
        assert native_calls == ([(False, False)] * 2 if native else [])
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_gradcheck_bidirectional_side_by_side(mode, native, kind):
    mode("on")
    x, directions, leaves = _pair(
        kind, _mask("holes"), True, False, False, False, False, torch.float64
    )

    def function(*tensors):
        x = tensors[0]
        rest = list(tensors[1:])
        rebuilt = []
        for d in directions:
            n = 0 if d.initial_states is None else len(d.initial_states)
            states, rest = rest[:n], rest[n:]
            (kernel, recurrent_kernel, bias), rest = rest[:3], rest[3:]
            rebuilt.append(
                dataclasses.replace(
                    d,
                    kernel=kernel,
                    recurrent_kernel=recurrent_kernel,
                    bias=bias,
                    initial_states=states or None,
                )
            )
        pair = fused_rnn.run_pair(x, *rebuilt)
        return pair.sequences, *pair.states[0], *pair.states[1]

    assert torch.autograd.gradcheck(function, tuple(leaves), atol=1e-6, fast_mode=True)


# ------------------------------------------------------------------ layers and models
def _model(kind, **kwargs):
    torch.manual_seed(0)
    rnn = {"lstm": layers.LSTM, "gru": layers.GRU}[kind]
    return birnn.Sequential(
        [
            birnn.Input((T, F)),
            layers.Masking(0.0),
            layers.Bidirectional(rnn(U, return_sequences=True, **kwargs)),
            layers.Bidirectional(rnn(U, **kwargs)),
            layers.Dense(2),
        ]
    )


def _data():
    x = torch.randn(B, T, F)
    x[1, 4:] = 0.0
    x[3, :2] = 0.0
    return x


def _train_step(model, x, **kwargs):
    model.zero_grad(set_to_none=True)
    out = model(x, **kwargs)
    out.square().sum().backward()
    return [out.detach()] + [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_model_with_dropout_trains_alike(mode, threads_seen, native, kind):
    model = _model(kind, dropout=0.3)
    x = _data()
    results = []
    for setting in ("off", "on"):
        mode(setting)
        torch.manual_seed(1)
        results.append(_train_step(model, x, training=True))
    assert "birnn-side-by-side-0" in threads_seen
    for got, expected in zip(results[1], results[0]):
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_stateful_bidirectional_alike(mode, native, few_threads, kind):
    rnn = {"lstm": layers.LSTM, "gru": layers.GRU}[kind]
    torch.manual_seed(0)
    layer = layers.Bidirectional(rnn(U, stateful=True, return_sequences=True))
    xs = [torch.randn(B, T, F) for _ in range(2)]
    results = []
    for setting in ("off", "on"):
        mode(setting)
        layer.reset_states()
        results.append([layer(x) for x in xs])
    for got, expected in zip(results[1], results[0]):
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)


def test_two_threads_calling_one_layer(mode, native, few_threads):
    mode("on")
    torch.manual_seed(0)
    layer = layers.Bidirectional(layers.LSTM(U, return_sequences=True))
    inputs = [torch.randn(B, T, F) for _ in range(2)]
    with torch.no_grad():
        expected = [layer(x) for x in inputs]
    results = {}

    def work(index):
        for _ in range(20):
            x = inputs[index].clone().requires_grad_()
            out = layer(x)
            (grad,) = torch.autograd.grad(out.sum(), x)
            results.setdefault(index, []).append((out.detach(), grad))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index in range(2):
        assert len(results[index]) == 20
        first_grad = results[index][0][1]
        for out, grad in results[index]:
            torch.testing.assert_close(out, expected[index], atol=1e-6, rtol=1e-6)
            assert torch.equal(grad, first_grad)


def test_torch_compile_keeps_the_sequential_path_and_matches(mode, threads_seen, native):
    mode("on")
    torch.manual_seed(0)
    model = birnn.Sequential(
        [birnn.Input((T, F)), layers.Bidirectional(layers.GRU(U, dropout=0.2)), layers.Dense(2)]
    )
    x = _data()
    torch.manual_seed(1)
    expected = _train_step(model, x, training=True)
    assert "birnn-side-by-side-0" in threads_seen
    threads_seen.clear()
    compiled = torch.compile(model, backend="aot_eager")
    torch.manual_seed(1)
    got = _train_step(compiled, x, training=True)
    assert not any(name.startswith("birnn-side") for name in threads_seen)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, atol=1e-6, rtol=1e-6)
