"""birnn's native LSTM and GRU kernels over Keras-layout weights: one autograd node per call.

`kernel` computes what `birnn.ops.native_rnn.kernel` computes on the weights
that `birnn.ops.rnn_weights.torch_weights` makes from Keras's `kernel`,
`recurrent_kernel` and `bias`, with the same numbers. The difference is where
the conversion happens: inside the autograd function, so that it records no
operations of its own. Converting outside (a transpose per matrix, the GRU's
gate reorder, stacking the directions) puts about ten small operations per
call into the autograd graph, each one more node to record in the forward pass
and to run in the backward pass; at the seed model's sizes (5 steps, 10 units)
those cost more than the kernels' arithmetic. The backward pass takes the
kernels' weight gradients back to Keras's layout
(`birnn.ops.rnn_weights.keras_gradients`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from birnn.ops import native_rnn
from birnn.ops.rnn_weights import keras_gradients, torch_gate_order

__all__ = ["KerasWeights", "kernel"]

#: One direction's Keras-layout weights: `(kernel, recurrent_kernel, bias or None)`.
KerasWeights = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


def _stacked(
    kind: str, weights: Sequence[torch.Tensor | None], like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The kernels' weights from the flat Keras-layout `weights` (three per direction):
    `(w_ih, w_hh, b_ih, b_hh)` stacked by direction; an LSTM's one bias is `b_ih`
    (`b_hh` is `None`); zeros without biases."""
    kernels, recurrent, biases = weights[0::3], weights[1::3], weights[2::3]

    def stack(parts: list[torch.Tensor]) -> torch.Tensor:
        return parts[0].unsqueeze(0) if len(parts) == 1 else torch.stack(parts)

    w_ih = stack([torch_gate_order(kind, k.t(), dim=0) for k in kernels if k is not None])
    w_hh = stack([torch_gate_order(kind, r.t(), dim=0) for r in recurrent if r is not None])
    present = [b for b in biases if b is not None]
    if not present:
        zeros = like.new_zeros(w_hh.shape[0], w_hh.shape[1])
        return w_ih, w_hh, zeros, (None if kind == "lstm" else zeros)
    if kind == "lstm":
        return w_ih, w_hh, stack(present), None
    b_ih = stack([torch_gate_order(kind, b[0]) for b in present])
    b_hh = stack([torch_gate_order(kind, b[1]) for b in present])
    return w_ih, w_hh, b_ih, b_hh


def kernel(
    kind: str,
    inputs: torch.Tensor,
    states: Sequence[torch.Tensor],
    directions: Sequence[KerasWeights],
    batch_first: bool,
    concurrent: bool,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One layer of an LSTM / GRU natively from Keras-layout weights: `(outputs, final_states)`.

    Args:
        kind: `"lstm"` or `"gru"` (`reset_after=True`).
        inputs: `(batch, time, features)` with `batch_first`, else `(time, batch, features)`.
        states: `[h0, c0]` (LSTM) or `[h0]`, each `(directions, batch, units)`.
        directions: One or two directions' `(kernel, recurrent_kernel, bias)` in Keras's
            layout and gate order (`bias` `(4 * units,)`, `(2, 3 * units)` for a GRU, or
            `None` in both); the second reads the sequence backwards.
        batch_first: The layout of `inputs` and of the outputs.
        concurrent: Run the two directions at once, one thread each.

    Returns:
        As `birnn.ops.native_rnn.kernel`: `outputs` `(..., directions * units)` in the
        layout of `inputs`, and the final states, each `(directions, batch, units)`.

    Examples:

    >>> import torch
    >>> from birnn.ops import rnn_weights
    >>> kernel_, recurrent, bias = torch.rand(3, 12), torch.rand(4, 12), torch.rand(2, 12)
    >>> x, h0 = torch.rand(2, 5, 3), torch.zeros(1, 2, 4)
    >>> weights = rnn_weights.torch_weights("gru", kernel_, recurrent, bias)
    >>> expected, _ = torch._VF.gru(x, h0, weights, True, 1, 0.0, False, False, True)
    >>> if native_rnn.usable([x, h0, *weights]):  # a machine without a C++ compiler falls back
    ...     outputs, _ = kernel("gru", x, [h0], [(kernel_, recurrent, bias)], True, False)
    ...     assert torch.allclose(outputs, expected, atol=1e-6)
    """
    if not native_rnn.enabled():
        raise RuntimeError(
            "birnn.ops.native_keras.kernel: the native kernels are not available "
            "(disabled, or not built: see birnn.ops.native_build); check "
            "`native_rnn.usable` first."
        )
    weights = [w for direction in directions for w in direction]
    x = inputs.transpose(0, 1) if batch_first else inputs
    # Whether autograd records this call: only then are the activations kept for backward,
    # and the call made through an autograd function.
    keep = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (inputs, *states, *weights)
    )
    if kind == "lstm":
        if keep:
            outputs, h_n, c_n = _LSTM.apply(
                x, states[0], states[1], batch_first, concurrent, *weights
            )
        else:
            w_ih, w_hh, bias, _ = _stacked(kind, weights, x)
            outputs, h_n, c_n, *_ = torch.ops.birnn_native.lstm_forward(
                x, states[0], states[1], w_ih, w_hh, bias, batch_first, concurrent, False
            )
        return outputs, [h_n, c_n]
    if keep:
        outputs, h_n = _GRU.apply(x, states[0], batch_first, concurrent, *weights)
    else:
        w_ih, w_hh, b_ih, b_hh = _stacked(kind, weights, x)
        outputs, h_n, *_ = torch.ops.birnn_native.gru_forward(
            x, states[0], w_ih, w_hh, b_ih, b_hh, batch_first, concurrent, False
        )
    return outputs, [h_n]


def _weight_gradients(
    kind: str,
    has_biases: bool,
    d_w_ih: torch.Tensor,
    d_w_hh: torch.Tensor,
    d_b_ih: torch.Tensor,
    d_b_hh: torch.Tensor | None,
) -> list[torch.Tensor | None]:
    """The kernels' weight gradients (stacked by direction) in Keras's layout, flat."""
    grads: list[torch.Tensor | None] = []
    for d in range(d_w_ih.shape[0]):
        grads += keras_gradients(
            kind,
            d_w_ih[d],
            d_w_hh[d],
            d_b_ih[d] if has_biases else None,
            d_b_hh[d] if has_biases and d_b_hh is not None else None,
        )
    return grads


class _LSTM(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        h0: torch.Tensor,
        c0: torch.Tensor,
        batch_first: bool,
        concurrent: bool,
        *weights: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w_ih, w_hh, bias, _ = _stacked("lstm", weights, x)
        y, h_n, c_n, gates, c, tanh_c = torch.ops.birnn_native.lstm_forward(
            x, h0, c0, w_ih, w_hh, bias, batch_first, concurrent, True
        )
        ctx.save_for_backward(x, h0, c0, w_ih, w_hh, y, gates, c, tanh_c)
        ctx.options = (batch_first, concurrent)
        ctx.has_biases = weights[2] is not None
        return y, h_n, c_n

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dy: torch.Tensor, dh_n: torch.Tensor, dc_n: torch.Tensor) -> tuple:
        x, h0, c0, w_ih, w_hh, y, gates, c, tanh_c = ctx.saved_tensors
        dx, dh0, dc0, dw_ih, dw_hh, d_bias = torch.ops.birnn_native.lstm_backward(
            x, h0, c0, w_ih, w_hh, y, gates, c, tanh_c, dy, dh_n, dc_n, *ctx.options
        )
        weights = _weight_gradients("lstm", ctx.has_biases, dw_ih, dw_hh, d_bias, None)
        return dx, dh0, dc0, None, None, *weights


class _GRU(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        h0: torch.Tensor,
        batch_first: bool,
        concurrent: bool,
        *weights: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w_ih, w_hh, b_ih, b_hh = _stacked("gru", weights, x)
        y, h_n, gates, h_n_block = torch.ops.birnn_native.gru_forward(
            x, h0, w_ih, w_hh, b_ih, b_hh, batch_first, concurrent, True
        )
        ctx.save_for_backward(x, h0, w_ih, w_hh, y, gates, h_n_block)
        ctx.options = (batch_first, concurrent)
        ctx.has_biases = weights[2] is not None
        return y, h_n

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dy: torch.Tensor, dh_n: torch.Tensor) -> tuple:
        x, h0, w_ih, w_hh, y, gates, h_n_block = ctx.saved_tensors
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = torch.ops.birnn_native.gru_backward(
            x, h0, w_ih, w_hh, y, gates, h_n_block, dy, dh_n, *ctx.options
        )
        weights = _weight_gradients("gru", ctx.has_biases, dw_ih, dw_hh, db_ih, db_hh)
        return dx, dh0, None, None, *weights
