"""Keras-layout LSTM and GRU weights in PyTorch's layout, and gradients back.

Keras keeps `kernel (features, gates * units)`, `recurrent_kernel (units,
gates * units)` and the bias per layer, gates in the order `i, f, c, o` (LSTM)
or `z, r, h` (GRU); PyTorch's kernels take `w_ih (gates * units, features)`,
`w_hh (gates * units, units)`, `b_ih` and `b_hh`, GRU gates in the order
`r, z, n`. `torch_weights` converts one way; `keras_gradients` takes the
gradients of PyTorch's weights back to the Keras-layout weights (the
conversion's adjoint: transposes and a gate reorder, so the values are the
same numbers, moved).
"""

from __future__ import annotations

import torch

__all__ = ["keras_gate_order", "keras_gradients", "torch_gate_order", "torch_weights"]

# Pre-activation added at padding slots: far beyond where sigmoid rounds to exactly 0 or 1.
_SATURATE = {torch.float16: 3.0e4}
_DEFAULT_SATURATE = 1.0e6


def torch_gate_order(kind: str, weight: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Keras's gate blocks (along `dim`) in PyTorch's order: GRU `z, r, h` -> `r, z, n`.

    An LSTM's order is already PyTorch's: `weight` comes back as it is (a view).

    Examples:

    >>> import torch
    >>> torch_gate_order("gru", torch.tensor([1, 2, 3]))
    tensor([2, 1, 3])
    """
    if kind == "lstm":
        return weight  # `i, f, c, o` is PyTorch's `i, f, g, o`
    update, reset, candidate = weight.chunk(3, dim=dim)
    return torch.cat([reset, update, candidate], dim=dim)


def keras_gate_order(kind: str, weight: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """PyTorch's gate blocks (along `dim`) in Keras's order: GRU `r, z, n` -> `z, r, h`.

    The inverse of `torch_gate_order` (the GRU's swap is its own inverse).

    Examples:

    >>> import torch
    >>> keras_gate_order("gru", torch_gate_order("gru", torch.tensor([1, 2, 3])))
    tensor([1, 2, 3])
    """
    return torch_gate_order(kind, weight, dim)


def torch_weights(
    kind: str,
    kernel: torch.Tensor,
    recurrent_kernel: torch.Tensor,
    bias: torch.Tensor | None,
    padding_feature: bool = False,
) -> list[torch.Tensor]:
    """Keras-layout weights as PyTorch's flat RNN weights `[w_ih, w_hh(, b_ih, b_hh)]`.

    Args:
        kind: `"lstm"` or `"gru"` (`reset_after=True`).
        kernel: `(features, gates * units)`.
        recurrent_kernel: `(units, gates * units)`.
        bias: `(4 * units,)` for an LSTM, `(2, 3 * units)` (input and recurrent
            biases) for a GRU, or `None`.
        padding_feature: Append the weights of one extra input feature that
            saturates the gates so that a step with that feature at 1 keeps the
            LSTM cell state (input gate 0, forget gate 1) or the GRU state
            (update gate 1) exactly.

    Examples:

    >>> import torch
    >>> w_ih, w_hh, b_ih, b_hh = torch_weights(
    ...     "gru", torch.zeros(5, 12), torch.zeros(4, 12), torch.zeros(2, 12))
    >>> w_ih.shape, w_hh.shape, b_ih.shape
    (torch.Size([12, 5]), torch.Size([12, 4]), torch.Size([12]))
    """
    # Reordering a transposed GRU matrix along its rows gives PyTorch contiguous weights,
    # which its native GRU kernel runs faster on than strided ones.
    w_ih = torch_gate_order(kind, kernel.t(), dim=0)
    w_hh = torch_gate_order(kind, recurrent_kernel.t(), dim=0)
    if padding_feature:
        units = recurrent_kernel.shape[0]
        big = _SATURATE.get(kernel.dtype, _DEFAULT_SATURATE)
        column = torch.zeros(w_ih.shape[0], 1, dtype=kernel.dtype, device=kernel.device)
        if kind == "lstm":
            column[:units] = -big  # input gate -> 0
            column[units : 2 * units] = big  # forget gate -> 1
        else:
            column[units : 2 * units] = big  # update gate (PyTorch's second block) -> 1
        w_ih = torch.cat([w_ih, column], dim=1)
    weights = [w_ih, w_hh]
    if bias is not None:
        if kind == "lstm":
            weights += [bias, torch.zeros_like(bias)]
        else:
            weights += [torch_gate_order(kind, bias[0]), torch_gate_order(kind, bias[1])]
    return weights


def keras_gradients(
    kind: str,
    d_w_ih: torch.Tensor,
    d_w_hh: torch.Tensor,
    d_b_ih: torch.Tensor | None,
    d_b_hh: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The gradients of PyTorch's weights (one direction) as those of the Keras-layout
    weights they came from: `(d_kernel, d_recurrent_kernel, d_bias)`.

    The adjoint of `torch_weights` without the padding feature: `d_b_ih` and
    `d_b_hh` are the gradients of `b_ih` and `b_hh`, or `None` without biases;
    an LSTM's `b_hh` is a constant zero there, so its bias gradient is
    `d_b_ih`'s. `d_kernel` and `d_recurrent_kernel` are transposed views.

    Examples:

    >>> import torch
    >>> kernel, recurrent, bias = torch.rand(5, 12), torch.rand(4, 12), torch.rand(2, 12)
    >>> w_ih, w_hh, b_ih, b_hh = torch_weights("gru", kernel, recurrent, bias)
    >>> back = keras_gradients("gru", w_ih, w_hh, b_ih, b_hh)
    >>> all(torch.equal(a, b) for a, b in zip(back, (kernel, recurrent, bias)))
    True
    """
    d_kernel = keras_gate_order(kind, d_w_ih, dim=0).t()
    d_recurrent_kernel = keras_gate_order(kind, d_w_hh, dim=0).t()
    d_bias = None
    if d_b_ih is not None:
        if kind == "lstm":
            d_bias = d_b_ih
        else:
            assert d_b_hh is not None
            d_bias = torch.stack([keras_gate_order(kind, d_b_ih), keras_gate_order(kind, d_b_hh)])
    return d_kernel, d_recurrent_kernel, d_bias
