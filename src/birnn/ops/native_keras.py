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
(what `birnn.ops.rnn_weights.keras_gradients` does, for both directions at once).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from birnn.ops import native_rnn
from birnn.ops.rnn_weights import keras_gate_order, torch_gate_order

__all__ = ["KerasLayout", "KerasWeights", "kernel"]

#: One direction's Keras-layout weights: `(kernel, recurrent_kernel, bias or None)`.
KerasWeights = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


class KerasLayout(native_rnn.WeightLayout):
    """Keras's layout: `(kernel, recurrent_kernel, bias or None)` per direction, in
    Keras's gate order (a GRU's `bias` `(2, 3 * units)`); `has_biases=False`: the
    biases are `None`."""

    def stack(
        self, kind: str, weights: Sequence[torch.Tensor | None], like: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        kernels, recurrent, biases = weights[0::3], weights[1::3], weights[2::3]
        w_ih = native_rnn.stack_directions(
            [torch_gate_order(kind, k.t(), dim=0) for k in kernels if k is not None]
        )
        w_hh = native_rnn.stack_directions(
            [torch_gate_order(kind, r.t(), dim=0) for r in recurrent if r is not None]
        )
        present = [b for b in biases if b is not None]
        if not present:
            zeros = like.new_zeros(w_hh.shape[0], w_hh.shape[1])
            return w_ih, w_hh, zeros, (None if kind == "lstm" else zeros)
        if kind == "lstm":
            return w_ih, w_hh, native_rnn.stack_directions(present), None
        b_ih = native_rnn.stack_directions([torch_gate_order(kind, b[0]) for b in present])
        b_hh = native_rnn.stack_directions([torch_gate_order(kind, b[1]) for b in present])
        return w_ih, w_hh, b_ih, b_hh

    def gradients(
        self,
        kind: str,
        dw_ih: torch.Tensor,
        dw_hh: torch.Tensor,
        db_ih: torch.Tensor,
        db_hh: torch.Tensor | None,
    ) -> list[torch.Tensor | None]:
        # `keras_gradients` of every direction at once: the gate order along the rows
        # (a GRU's), each direction's matrices transposed (views), the biases split.
        kernels = keras_gate_order(kind, dw_ih, dim=1).transpose(1, 2).unbind(0)
        recurrent = keras_gate_order(kind, dw_hh, dim=1).transpose(1, 2).unbind(0)
        biases: Sequence[torch.Tensor | None]
        if not self.has_biases:
            biases = [None] * len(kernels)
        elif kind == "lstm":
            biases = db_ih.unbind(0)
        else:
            assert db_hh is not None  # a GRU's two biases
            both = [keras_gate_order(kind, db_ih, dim=1), keras_gate_order(kind, db_hh, dim=1)]
            biases = torch.stack(both, dim=1).unbind(0)
        return [g for direction in zip(kernels, recurrent, biases) for g in direction]


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
    weights = [w for direction in directions for w in direction]
    layout = KerasLayout(has_biases=weights[2] is not None)
    return native_rnn.run(kind, inputs, states, weights, layout, batch_first, concurrent)
