"""LSTM and GRU through birnn's native CPU kernels, with PyTorch's kernel interface.

`kernel` takes what `torch._VF.lstm` / `torch._VF.gru` take for one layer
(PyTorch's flat weights and gate order, one or two directions, `batch_first`)
and returns `(outputs, final_states)` as they do. The arithmetic is PyTorch's;
the results agree with its kernels to float rounding (float32: within a few
1e-7, from other summation orders and a vectorized exp).

What the native kernels (`csrc/rnn_kernels.cpp`) do differently:
- With `concurrent=True`, the two directions run at once, each on one thread
  of the caller's OpenMP team, in the forward and in the backward pass. On a
  two-core machine that is most of the gain: each time step's product is too
  small to split over two cores, while two directions are independent work.
  Because the caller's own OpenMP threads do the work, no thread sits idle
  spinning while another waits for a core.
- The backward pass is written by hand: one fused element-wise loop per time
  step, and the input and weight gradients each as one product over all steps.

The autograd functions here are differentiable once: differentiating their
backward pass again (`create_graph=True`, then a second backward) raises a
`RuntimeError`. Models that need higher-order gradients through an RNN set
`BIRNN_NATIVE=off` (see `birnn.ops.native_build`) or call `set_enabled(False)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from birnn.ops import execution, native_build

__all__ = [
    "WeightLayout",
    "dtypes_supported",
    "enabled",
    "kernel",
    "run",
    "set_enabled",
    "stack_directions",
    "usable",
]

_DTYPES = (torch.float32, torch.float64)
_enabled = True


def set_enabled(value: bool) -> None:
    """Allow (`True`, the default) or forbid the native kernels in this process.

    `BIRNN_NATIVE=off` forbids them before anything is built; this switch
    changes course at run time (tests compare the two paths with it).
    """
    global _enabled
    _enabled = bool(value)


def enabled() -> bool:
    """Whether the native kernels may run: allowed, and built and loaded (builds on first call)."""
    return _enabled and native_build.load()


def usable(tensors: Sequence[torch.Tensor | None]) -> bool:
    """Whether the native kernels can compute on these tensors.

    Plain CPU tensors of one dtype, float32 or float64, in eager execution (no
    compiled or traced code, tensor subclass, dispatch or function mode, or
    functorch transform), outside autocast, with the kernels enabled. Where
    they can, birnn's fused path uses them: on a 2-core machine (batch 64, 100
    steps, 128 units; 500 steps, 64 units) they measured faster than PyTorch's
    kernels for the LSTM and the GRU, in training and in inference.
    """
    present = [t for t in tensors if t is not None]
    if not dtypes_supported(present) or not execution.plain_eager_cpu(present):
        return False
    return enabled()


def dtypes_supported(tensors: Sequence[torch.Tensor]) -> bool:
    """Whether the kernels compute in the dtype of `tensors`: one dtype, float32 or
    float64, outside CPU autocast (which would compute in another)."""
    dtype = tensors[0].dtype
    if dtype not in _DTYPES or torch.is_autocast_enabled("cpu"):
        return False
    return all(tensor.dtype == dtype for tensor in tensors)


def stack_directions(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """One weight per direction, stacked along a new first axis."""
    return parts[0].unsqueeze(0) if len(parts) == 1 else torch.stack(list(parts))


class WeightLayout:
    """How a kernel call's flat weights become the kernels' stacked ones, and back.

    `stack(kind, weights, like)` gives `(w_ih, w_hh, b_ih, b_hh)` stacked by direction
    (an LSTM's one bias as `b_ih`, its `b_hh` `None`; zeros where there are no
    biases); `gradients(kind, dw_ih, dw_hh, db_ih, db_hh)` maps the kernels' weight
    gradients back to the flat weights, one entry per weight. This class is PyTorch's
    layout (`[w_ih, w_hh(, b_ih, b_hh)]` per direction); `birnn.ops.native_keras`
    has Keras's. The conversion runs inside the autograd function, so it records no
    operations of its own.
    """

    def __init__(self, has_biases: bool) -> None:
        self.has_biases = has_biases

    def stack(
        self, kind: str, weights: Sequence[torch.Tensor | None], like: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        per_direction = 4 if self.has_biases else 2
        present = [w for w in weights if w is not None]
        w_ih, w_hh = (
            stack_directions(present[0::per_direction]),
            stack_directions(present[1::per_direction]),
        )
        if not self.has_biases:
            zeros = like.new_zeros(w_hh.shape[0], w_hh.shape[1])
            return w_ih, w_hh, zeros, (None if kind == "lstm" else zeros)
        b_ih, b_hh = (
            stack_directions(present[2::per_direction]),
            stack_directions(present[3::per_direction]),
        )
        return (w_ih, w_hh, b_ih + b_hh, None) if kind == "lstm" else (w_ih, w_hh, b_ih, b_hh)

    def gradients(
        self,
        kind: str,
        dw_ih: torch.Tensor,
        dw_hh: torch.Tensor,
        db_ih: torch.Tensor,
        db_hh: torch.Tensor | None,
    ) -> list[torch.Tensor | None]:
        grads: list[torch.Tensor | None] = []
        for d in range(dw_ih.shape[0]):
            grads += [dw_ih[d], dw_hh[d]]
            if self.has_biases:
                grads += [db_ih[d], db_ih[d] if db_hh is None else db_hh[d]]
        return grads


def kernel(
    kind: str,
    inputs: torch.Tensor,
    states: Sequence[torch.Tensor],
    weights: Sequence[torch.Tensor],
    has_biases: bool,
    bidirectional: bool,
    batch_first: bool,
    concurrent: bool,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One layer of PyTorch's LSTM / GRU kernel, natively: `(outputs, final_states)`.

    Args:
        kind: `"lstm"` or `"gru"`.
        inputs: `(batch, time, features)` with `batch_first`, else `(time, batch, features)`.
        states: `[h0, c0]` (LSTM) or `[h0]`, each `(directions, batch, units)`.
        weights: PyTorch's flat weights, `[w_ih, w_hh(, b_ih, b_hh)]` per direction.
        has_biases: Whether `weights` hold biases.
        bidirectional: Two directions, the second reading the sequence backwards
            (`weights` holds both).
        batch_first: The layout of `inputs` and of the outputs.
        concurrent: Run the two directions at once, one thread each.

    Returns:
        `outputs` in the layout of `inputs`, `(..., directions * units)`, and
        the final states, each `(directions, batch, units)`.

    Examples:

    >>> import torch
    >>> weights = [torch.rand(12, 3), torch.rand(12, 4)]
    >>> x, h0 = torch.rand(2, 5, 3), torch.zeros(1, 2, 4)
    >>> expected, h = torch._VF.gru(x, h0, weights, False, 1, 0.0, False, False, True)
    >>> if usable([x, h0, *weights]):  # a machine without a C++ compiler falls back
    ...     outputs, (h,) = kernel("gru", x, [h0], weights, False, False, True, False)
    ...     assert torch.allclose(outputs, expected, atol=1e-6)
    >>> h.shape
    torch.Size([1, 2, 4])
    """
    per_direction = 4 if has_biases else 2
    if len(weights) != per_direction * (2 if bidirectional else 1):
        raise ValueError(
            f"birnn.ops.native_rnn.kernel: expected {per_direction} weights per direction "
            f"({'two directions' if bidirectional else 'one direction'}), got {len(weights)}."
        )
    return run(kind, inputs, states, weights, WeightLayout(has_biases), batch_first, concurrent)


def run(
    kind: str,
    inputs: torch.Tensor,
    states: Sequence[torch.Tensor],
    weights: Sequence[torch.Tensor | None],
    layout: WeightLayout,
    batch_first: bool,
    concurrent: bool,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """`kernel` on flat weights in any `layout`, in one autograd node where autograd records.

    `layout` turns `weights` into the kernels' stacked weights (and their gradients
    back); see `WeightLayout`. The rest is as `kernel`.
    """
    if not enabled():
        raise RuntimeError(
            "birnn.ops.native_rnn: the native kernels are not available "
            "(disabled, or not built: see birnn.ops.native_build); check `usable` first."
        )
    # Whether autograd records this call: only then are the activations kept for backward,
    # and the call made through an autograd function (which takes `inputs` as they are: a
    # batch-first transpose inside it is no node of its own).
    keep = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (inputs, *states, *weights)
    )
    if kind == "lstm":
        if keep:
            outputs, h_n, c_n = _LSTM.apply(
                inputs, states[0], states[1], batch_first, concurrent, layout, *weights
            )
        else:
            x = _time_major(inputs, batch_first)
            w_ih, w_hh, bias, _ = layout.stack(kind, weights, x)
            outputs, h_n, c_n, *_ = torch.ops.birnn_native.lstm_forward(
                x, states[0], states[1], w_ih, w_hh, bias, batch_first, concurrent, False
            )
        return outputs, [h_n, c_n]
    if keep:
        outputs, h_n = _GRU.apply(inputs, states[0], batch_first, concurrent, layout, *weights)
    else:
        x = _time_major(inputs, batch_first)
        w_ih, w_hh, b_ih, b_hh = layout.stack(kind, weights, x)
        outputs, h_n, *_ = torch.ops.birnn_native.gru_forward(
            x, states[0], w_ih, w_hh, b_ih, b_hh, batch_first, concurrent, False
        )
    return outputs, [h_n]


def _time_major(inputs: torch.Tensor, batch_first: bool) -> torch.Tensor:
    """The kernels' `x`, `(time, batch, features)`: a view of `inputs`."""
    return inputs.transpose(0, 1) if batch_first else inputs


class _LSTM(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        inputs: torch.Tensor,
        h0: torch.Tensor,
        c0: torch.Tensor,
        batch_first: bool,
        concurrent: bool,
        layout: WeightLayout,
        *weights: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = _time_major(inputs, batch_first)
        w_ih, w_hh, bias, _ = layout.stack("lstm", weights, x)
        y, h_n, c_n, gates, c, tanh_c = torch.ops.birnn_native.lstm_forward(
            x, h0, c0, w_ih, w_hh, bias, batch_first, concurrent, True
        )
        ctx.save_for_backward(inputs, h0, c0, w_ih, w_hh, y, gates, c, tanh_c)
        ctx.options = (batch_first, concurrent)
        ctx.layout = layout
        return y, h_n, c_n

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dy: torch.Tensor, dh_n: torch.Tensor, dc_n: torch.Tensor) -> tuple:
        inputs, h0, c0, w_ih, w_hh, y, gates, c, tanh_c = ctx.saved_tensors
        batch_first = ctx.options[0]
        x = _time_major(inputs, batch_first)
        dx, dh0, dc0, dw_ih, dw_hh, d_bias = torch.ops.birnn_native.lstm_backward(
            x, h0, c0, w_ih, w_hh, y, gates, c, tanh_c, dy, dh_n, dc_n, *ctx.options
        )
        weights = ctx.layout.gradients("lstm", dw_ih, dw_hh, d_bias, None)
        return _time_major(dx, batch_first), dh0, dc0, None, None, None, *weights


class _GRU(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        inputs: torch.Tensor,
        h0: torch.Tensor,
        batch_first: bool,
        concurrent: bool,
        layout: WeightLayout,
        *weights: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = _time_major(inputs, batch_first)
        w_ih, w_hh, b_ih, b_hh = layout.stack("gru", weights, x)
        y, h_n, gates, h_n_block = torch.ops.birnn_native.gru_forward(
            x, h0, w_ih, w_hh, b_ih, b_hh, batch_first, concurrent, True
        )
        ctx.save_for_backward(inputs, h0, w_ih, w_hh, y, gates, h_n_block)
        ctx.options = (batch_first, concurrent)
        ctx.layout = layout
        return y, h_n

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dy: torch.Tensor, dh_n: torch.Tensor) -> tuple:
        inputs, h0, w_ih, w_hh, y, gates, h_n_block = ctx.saved_tensors
        batch_first = ctx.options[0]
        x = _time_major(inputs, batch_first)
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = torch.ops.birnn_native.gru_backward(
            x, h0, w_ih, w_hh, y, gates, h_n_block, dy, dh_n, *ctx.options
        )
        weights = ctx.layout.gradients("gru", dw_ih, dw_hh, db_ih, db_hh)
        return _time_major(dx, batch_first), dh0, None, None, None, *weights
