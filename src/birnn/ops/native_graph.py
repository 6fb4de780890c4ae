"""birnn's native LSTM / GRU kernels inside `torch.compile` graphs.

The native kernels (`csrc/rnn_kernels.cpp`, driven by `birnn.ops.native_rnn`)
are custom operators, `torch.ops.birnn_native.*`. For TorchDynamo to put one
in a graph, and for AOTAutograd and inductor to plan around it, each needs a
fake kernel: a Python function that returns empty tensors of the shapes,
dtypes and device the real kernel returns, without computing. `register_fakes`
registers those four (`lstm_forward`, `lstm_backward`, `gru_forward`,
`gru_backward`); `usable` does it, once the library is loaded, before the
first trace that calls them.

No autograd formula is registered on the operators: dynamo traces
`native_rnn`'s autograd functions themselves, so AOTAutograd puts the forward
kernel (and the conversion from the layers' weights to the kernels' stacked
ones) into the forward graph and the backward kernel (and the weight
gradients' way back) into the backward graph. The eager path is untouched:
its calls dispatch exactly as before.

`usable` says, during tracing, whether a traced recurrence may take that
route; where it may not (CUDA, other dtypes, autocast, kernels disabled or not
built), `birnn.ops.fused_rnn` traces the recurrence as plain ops instead
(`birnn.ops.traced_rnn`). `wanted` is the size rule on top: where gradients
are recorded, or the sequence is too long to unroll, the native kernels; a
short sequence in inference runs unrolled, which inductor fuses into less
time than the kernel call takes (`docs/jit_compile.md` has the numbers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar, cast

import torch

from birnn.ops import native_build, native_rnn, side_by_side, traced_rnn

__all__ = [
    "FEW_UNITS",
    "concurrent",
    "distinct",
    "distinct_parts",
    "register_fakes",
    "usable",
    "wanted",
]

#: Below this many units the kernels keep their activations unit-major,
#: `(..., gates * units, batch)` per step, else batch-major; it is the C++
#: source's `BIRNN_FEW_UNITS`, and the fake kernels must give the same shapes
#: (`tests/fused/test_native_graph.py` compares them with the real kernels').
FEW_UNITS = 16

_T = TypeVar("_T", bound=torch.Tensor | None)
_registered = False


def _activation(
    x: torch.Tensor, directions: int, slots: int, rows: int, batch: int, few: bool
) -> torch.Tensor:
    """A per-step activation buffer, `(directions, slots, rows, batch)` unit-major when
    `few`, else `(directions, slots, batch, rows)`."""
    shape = (directions, slots, rows, batch) if few else (directions, slots, batch, rows)
    return x.new_empty(shape)


def _sizes(x: torch.Tensor, h0: torch.Tensor, w_ih: torch.Tensor) -> tuple:
    """A forward kernel's `(time, batch, directions, units, few)` from its arguments
    (`x` time-major), `few` saying whether its activations are unit-major."""
    units = h0.shape[2]
    return x.shape[0], x.shape[1], w_ih.shape[0], units, units < FEW_UNITS


def _slots(keep: bool, time: int, needed: int) -> int:
    """As the kernels: every step's activations when kept for backward, else a ring."""
    return time if keep else torch.sym_min(time, needed)


def _outputs(
    x: torch.Tensor, directions: int, units: int, batch_first: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    time, batch = x.shape[0], x.shape[1]
    shape = (batch, time, directions * units) if batch_first else (time, batch, directions * units)
    return x.new_empty(shape), x.new_empty((directions, batch, units))


def _lstm_forward(
    x: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    bias: torch.Tensor,
    batch_first: bool,
    concurrent: bool,
    keep_activations: bool,
) -> list[torch.Tensor]:
    time, batch, directions, units, few = _sizes(x, h0, w_ih)
    own, carried = _slots(keep_activations, time, 1), _slots(keep_activations, time, 2)
    y, h_n = _outputs(x, directions, units, batch_first)
    return [
        y,
        h_n,
        x.new_empty((directions, batch, units)),
        _activation(x, directions, own, 4 * units, batch, few),
        _activation(x, directions, carried, units, batch, few),
        _activation(x, directions, own, units, batch, few),
    ]


def _lstm_backward(
    x: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    y: torch.Tensor,
    gates: torch.Tensor,
    c: torch.Tensor,
    tanh_c: torch.Tensor,
    dy: torch.Tensor,
    dh_n: torch.Tensor,
    dc_n: torch.Tensor,
    batch_first: bool,
    concurrent: bool,
) -> list[torch.Tensor]:
    return [
        x.new_empty(x.shape),
        h0.new_empty(h0.shape),
        c0.new_empty(c0.shape),
        w_ih.new_empty(w_ih.shape),
        w_hh.new_empty(w_hh.shape),
        w_hh.new_empty((w_hh.shape[0], w_hh.shape[1])),
    ]


def _gru_forward(
    x: torch.Tensor,
    h0: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    batch_first: bool,
    concurrent: bool,
    keep_activations: bool,
) -> list[torch.Tensor]:
    time, batch, directions, units, few = _sizes(x, h0, w_ih)
    own = _slots(keep_activations, time, 1)
    y, h_n = _outputs(x, directions, units, batch_first)
    return [
        y,
        h_n,
        _activation(x, directions, own, 3 * units, batch, few),
        _activation(x, directions, own, units, batch, few),
    ]


def _gru_backward(
    x: torch.Tensor,
    h0: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    y: torch.Tensor,
    gates: torch.Tensor,
    h_n_block: torch.Tensor,
    dy: torch.Tensor,
    dh_n: torch.Tensor,
    batch_first: bool,
    concurrent: bool,
) -> list[torch.Tensor]:
    bias_shape = (w_hh.shape[0], w_hh.shape[1])
    return [
        x.new_empty(x.shape),
        h0.new_empty(h0.shape),
        w_ih.new_empty(w_ih.shape),
        w_hh.new_empty(w_hh.shape),
        w_hh.new_empty(bias_shape),
        w_hh.new_empty(bias_shape),
    ]


_FAKES: dict[str, Callable[..., list[torch.Tensor]]] = {
    "lstm_forward": _lstm_forward,
    "lstm_backward": _lstm_backward,
    "gru_forward": _gru_forward,
    "gru_backward": _gru_backward,
}


def register_fakes() -> None:
    """Register the fake kernels of the four `birnn_native` operators (once per process).

    The library must be loaded (`birnn.ops.native_build.load`): it defines the
    operators.
    """
    global _registered
    if _registered:
        return
    for name, fake in _FAKES.items():
        torch.library.register_fake(f"birnn_native::{name}", fake)
    _registered = True


_F = TypeVar("_F", bound=Callable[..., bool])


def _constant_while_tracing(function: _F) -> _F:
    """`function`, called eagerly by TorchDynamo while it traces, its result a constant of
    the graph: what `torch.compiler.assume_constant_result` does. That applies a mark
    that TorchDynamo reads, but importing it first imports `torch._dynamo`, seconds of
    import time for programs that never compile; the mark alone is set here."""
    function._dynamo_marked_constant = True  # type: ignore[attr-defined]
    return function


@_constant_while_tracing
def _loaded() -> bool:
    # Builds and loads the library at most once per process, and registers the fake
    # kernels; run outside the trace, so that tracing never enters the build's lock.
    if not native_build.load():
        return False
    register_fakes()
    return True


def usable(tensors: Sequence[torch.Tensor | None]) -> bool:
    """Whether a recurrence being traced by `torch.compile` may call the native kernels.

    CPU tensors of one dtype, float32 or float64, outside autocast, with the
    kernels allowed (`birnn.ops.native_rnn.set_enabled`) and loaded. Outside
    tracing it is False: eager code asks `birnn.ops.native_rnn.usable`; under
    `torch.export` too, so that an exported program does not need birnn's
    library.
    """
    if not torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return False
    present = [t for t in tensors if t is not None]
    if not native_rnn.dtypes_supported(present):
        return False
    if any(t.device.type != "cpu" for t in present):
        return False
    return _loaded() and native_rnn.enabled()


@_constant_while_tracing
def concurrent() -> bool:
    """`birnn.ops.side_by_side.wanted_natively`, read once when a graph is traced.

    Dynamo cannot trace `torch.get_num_threads()` (a graph break), so the
    answer is a constant of the graph: a graph traced at one thread keeps
    running the two directions one after the other after a change of the
    thread count (slower, never different numbers), until it is compiled again.
    """
    return side_by_side.wanted_natively()


def distinct(tensors: Sequence[_T]) -> list[_T]:
    """`tensors` with each repeat of an earlier entry replaced by a copy.

    Dynamo cannot trace an autograd function that receives one tensor as two
    inputs (as the zero `h0` and `c0` that a layer without initial states
    passes); a copy, traced as one more graph operation, keeps the numbers and
    the gradients.

    Examples:

    >>> zeros = torch.zeros(2)
    >>> first, second = distinct([zeros, zeros])
    >>> first is zeros, second is zeros, torch.equal(first, second)
    (True, False, True)
    """
    seen: set[int] = set()
    result: list[_T] = []
    for tensor in tensors:
        if tensor is not None and id(tensor) in seen:
            tensor = tensor.clone()  # type: ignore[assignment]
        elif tensor is not None:
            seen.add(id(tensor))
        result.append(tensor)
    return result


def distinct_parts(
    states: Sequence[torch.Tensor], weights: Sequence[_T]
) -> tuple[list[torch.Tensor], list[_T]]:
    """`distinct` over a kernel call's states and weights together, split back."""
    unique = distinct([*cast(Sequence[_T], states), *weights])
    return cast(list[torch.Tensor], unique[: len(states)]), unique[len(states) :]


def wanted(tensors: Sequence[torch.Tensor | None], steps: int) -> bool:
    """Whether a recurrence being traced should call the native kernels (see the module
    docstring): `usable`, and either recording gradients or longer than
    `birnn.ops.traced_rnn.MAX_TRACED_STEPS` steps."""
    if not usable(tensors):
        return False
    if steps > traced_rnn.MAX_TRACED_STEPS:
        return True
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
