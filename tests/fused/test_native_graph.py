"""birnn's native kernels inside `torch.compile` graphs (`birnn.ops.native_graph`)."""

import re

import pytest
import torch
import torch._dynamo
from functorch.compile import make_boxed_func
from torch._dynamo.backends.common import aot_autograd
from torch._subclasses.fake_tensor import FakeTensorMode

from birnn.ops import fused_rnn, native_graph, native_rnn, traced_rnn

pytestmark = pytest.mark.usefixtures("needs_native")


def _recording_backend():
    """An AOTAutograd backend that keeps the text of each forward and backward graph."""
    graphs = {"forward": [], "backward": []}

    def compiler(part):
        def compile_graph(gm, _inputs):
            graphs[part].append(str(gm.graph))
            return make_boxed_func(gm.forward)

        return compile_graph

    backend = aot_autograd(fw_compiler=compiler("forward"), bw_compiler=compiler("backward"))
    return backend, graphs


def _calls(graphs, name):
    return sum(text.count(f"birnn_native.{name}") for text in graphs)


def _kernel_args(kind, directions, units, batch_first, dtype=torch.float32):
    torch.manual_seed(0)
    time, batch, features, gates = 4, 3, 5, 4 if kind == "lstm" else 3
    x = torch.randn(time, batch, features, dtype=dtype)
    h0 = torch.randn(directions, batch, units, dtype=dtype)
    w_ih = torch.randn(directions, gates * units, features, dtype=dtype)
    w_hh = torch.randn(directions, gates * units, units, dtype=dtype)
    bias = torch.randn(directions, gates * units, dtype=dtype)
    if kind == "lstm":
        return (x, h0, h0.clone(), w_ih, w_hh, bias)
    return (x, h0, w_ih, w_hh, bias, bias.clone())


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("units", [native_graph.FEW_UNITS - 1, native_graph.FEW_UNITS])
@pytest.mark.parametrize("keep", [True, False], ids=["keep", "inference"])
@pytest.mark.parametrize("directions, batch_first", [(1, True), (2, False)])
def test_fake_kernels_give_the_real_kernels_shapes(kind, units, keep, directions, batch_first):
    """On both sides of the few-unit layout switch, with and without the activations
    kept, the fake forward and backward kernels return what the real ones return."""
    native_graph.register_fakes()
    args = _kernel_args(kind, directions, units, batch_first)
    forward = getattr(torch.ops.birnn_native, f"{kind}_forward")
    backward = getattr(torch.ops.birnn_native, f"{kind}_backward")
    real = forward(*args, batch_first, False, keep)
    with FakeTensorMode() as mode:
        fake = forward(*(mode.from_tensor(a) for a in args), batch_first, False, keep)
    assert [(t.shape, t.dtype) for t in fake] == [(t.shape, t.dtype) for t in real]
    if not keep:
        return
    if kind == "lstm":
        x, h0, c0, w_ih, w_hh, _ = args
        y, h_n, c_n, *activations = real
        saved = (x, h0, c0, w_ih, w_hh, y, *activations, y, h_n, c_n)
    else:
        x, h0, w_ih, w_hh, *_ = args
        y, h_n, *activations = real
        saved = (x, h0, w_ih, w_hh, y, *activations, y, h_n)
    real_grads = backward(*saved, batch_first, False)
    with FakeTensorMode() as mode:
        fake_grads = backward(*(mode.from_tensor(t) for t in saved), batch_first, False)
    assert [t.shape for t in fake_grads] == [t.shape for t in real_grads]


def _pair(kind, dtype, bias, steps=4):
    torch.manual_seed(1)
    gates = 4 if kind == "lstm" else 3
    units, features = 3, 2

    def weights():
        b = None
        if bias:
            shape = (gates * units,) if kind == "lstm" else (2, gates * units)
            b = torch.randn(shape, dtype=dtype, requires_grad=True)
        return (
            torch.randn(features, gates * units, dtype=dtype, requires_grad=True),
            torch.randn(units, gates * units, dtype=dtype, requires_grad=True),
            b,
        )

    x = torch.randn(5, steps, features, dtype=dtype, requires_grad=True)
    return x, weights(), weights()


def _run(kind, directions, x, forward_weights, backward_weights):
    first = fused_rnn.Direction(kind, *forward_weights, return_all_outputs=True)
    if directions == 1:
        last, outputs, states = fused_rnn.run_direction(x, first)
        return outputs, *states
    second = fused_rnn.Direction(kind, *backward_weights, go_backwards=True)
    pair = fused_rnn.run_pair(x, first, second)
    return pair.outputs_side_by_side, *pair.states[0], *pair.states[1]


@pytest.mark.parametrize(
    "kind, directions, bias, dtype",
    [
        ("lstm", 2, True, torch.float32),
        ("lstm", 1, False, torch.float64),
        ("lstm", 2, False, torch.float64),
        ("gru", 2, True, torch.float64),
        ("gru", 1, True, torch.float32),
        ("gru", 2, False, torch.float32),
    ],
)
def test_compiled_training_calls_the_kernels_and_matches_eager(kind, directions, bias, dtype):
    """One forward kernel in the forward graph, one backward kernel in the backward
    graph, no graph break; outputs, final states and every gradient equal eager's."""
    x, fw, bw = _pair(kind, dtype, bias)
    used = (*fw, *bw) if directions == 2 else fw
    leaves = [x, *(w for w in used if w is not None)]

    def loss(x):
        results = _run(kind, directions, x, fw, bw)
        return sum((r * (i + 1)).sum() for i, r in enumerate(results)), results

    expected_loss, expected = loss(x)
    expected_grads = torch.autograd.grad(expected_loss, leaves)
    torch._dynamo.reset()
    backend, graphs = _recording_backend()
    got_loss, got = torch.compile(loss, backend=backend, fullgraph=True)(x)
    got_grads = torch.autograd.grad(got_loss, leaves)
    assert _calls(graphs["forward"], f"{kind}_forward") == 1
    assert _calls(graphs["backward"], f"{kind}_backward") == 1
    assert _calls(graphs["forward"], f"{kind}_backward") == 0
    tolerance = {"atol": 1e-12, "rtol": 1e-12} if dtype == torch.float64 else {}
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, **tolerance)
    for a, b in zip(got_grads, expected_grads):
        torch.testing.assert_close(a, b, **tolerance)


def test_inductor_graph_matches_eager_without_recompiling():
    """Through inductor (what `jit_compile=True` uses): equal results and gradients over
    several calls with new weight values, and one graph for all of them."""
    x, fw, bw = _pair("lstm", torch.float32, True)
    leaves = [w for w in (*fw, *bw) if w is not None]

    def loss(x):
        return _run("lstm", 2, x, fw, bw)[0].square().sum()

    torch._dynamo.reset()
    compiled = torch.compile(loss, fullgraph=True)
    torch._dynamo.utils.counters.clear()
    for _ in range(3):
        expected = torch.autograd.grad(loss(x), leaves)
        got = torch.autograd.grad(compiled(x), leaves)
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b)
        with torch.no_grad():
            for w in leaves:
                w.add_(0.1)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


@pytest.mark.parametrize(
    "steps, native_calls",
    [(traced_rnn.MAX_TRACED_STEPS, 0), (traced_rnn.MAX_TRACED_STEPS + 1, 1)],
    ids=["short", "long"],
)
def test_inference_runs_short_sequences_unrolled(steps, native_calls):
    """Without gradients, a short sequence runs unrolled (faster there), a long one as
    one forward kernel call that keeps no activations; both in one graph."""
    x, fw, bw = _pair("gru", torch.float64, True, steps=steps)

    def call(x):
        return _run("gru", 2, x, fw, bw)

    expected = call(x)
    torch._dynamo.reset()
    backend, graphs = _recording_backend()
    with torch.no_grad():
        got = torch.compile(call, backend=backend, fullgraph=True)(x)
    assert _calls(graphs["forward"], "gru_forward") == native_calls
    if native_calls:  # keep_activations=False, the call's last argument
        call = re.search(
            r"birnn_native\.gru_forward\.default\]\(args = \((.*?)\), kwargs", graphs["forward"][0]
        )
        assert call is not None and call.group(1).endswith("False")
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


def test_long_sequences_train_in_one_graph():
    """Past `MAX_TRACED_STEPS` the kernels are in the graph too: no break."""
    x, fw, bw = _pair("lstm", torch.float32, True, steps=traced_rnn.MAX_TRACED_STEPS + 5)

    def call(x):
        return _run("lstm", 2, x, fw, bw)[0]

    torch._dynamo.reset()
    explained = torch._dynamo.explain(call)(x)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)


def test_without_the_kernels_the_recurrence_is_traced():
    """`set_enabled(False)`: the traced recurrence, as before (no native kernel in the
    graphs), with eager's results."""
    x, fw, bw = _pair("lstm", torch.float64, True)

    def loss(x):
        return _run("lstm", 2, x, fw, bw)[0].square().sum()

    torch._dynamo.reset()
    backend, graphs = _recording_backend()
    native_rnn.set_enabled(False)
    try:
        got = torch.compile(loss, backend=backend, fullgraph=True)(x)
        torch.autograd.grad(got, [x])
    finally:
        native_rnn.set_enabled(True)
    assert graphs["forward"] and not _calls(graphs["forward"] + graphs["backward"], "")
    torch.testing.assert_close(got, loss(x), atol=1e-12, rtol=1e-12)


def test_other_dtypes_are_traced():
    """bfloat16 is no dtype of the kernels: traced ops, in one graph."""
    x, fw, bw = _pair("gru", torch.bfloat16, True)

    def loss(x):
        return _run("gru", 2, x, fw, bw)[0].float().square().sum()

    torch._dynamo.reset()
    backend, graphs = _recording_backend()
    torch.compile(loss, backend=backend, fullgraph=True)(x).backward()
    assert graphs["forward"] and not _calls(graphs["forward"] + graphs["backward"], "")


def test_usable_only_while_tracing():
    x = torch.ones(1, 2, 3)
    assert not native_graph.usable([x])
    assert torch.compile(lambda x: x + native_graph.usable([x]), fullgraph=True)(x).eq(2).all()
    assert (
        torch.compile(
            lambda x: x + native_graph.usable([x.half()]), fullgraph=True, backend="eager"
        )(x)
        .eq(1)
        .all()
    )
