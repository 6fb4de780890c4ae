"""Masked GRU inference that skips each row's padding: PyTorch's packed kernel.

After compaction (`birnn.ops.masks`) every masked batch is right-padded: row
`b` holds its `lengths[b]` valid steps in its first slots, then padding. The
padded kernel call of `birnn.ops.fused_rnn` runs every row through every slot,
the padding steps kept harmless by the saturating padding feature. PyTorch's
packed kernel instead shrinks the batch as rows end (rows sorted by length),
so it computes only the valid steps. Given the same compacted inputs, initial
states and weights (the padding feature included: it is zero at every valid
step, so it adds exact zeros), it returns what the padded call returns at
every slot a caller reads: the outputs at each row's valid slots, the final
states (an LSTM's carry and a GRU's state are frozen through padding in the
padded call, so both end where each row's valid steps end), and the reverse
direction's results, which the padded call reaches from exact zeros. An empty
row runs one padding step (the packed format needs one), which leaves its
state bit for bit unchanged, as the padded call's padding does. The results
agree to float rounding, not bit for bit: the packed kernel multiplies
matrices of other sizes (measured: at most 2e-7 apart at the benchmark shape).

Where it wins is measured (benchmark shape: batch 64, 100 steps, lengths
between 50 and 100, 128 units, inference, CPU): PyTorch's packed GRU kernel is
about 1.3x faster than the padded one there, but slower for small layers (16
units or fewer) and tiny sequences, and its training (backward) is 2x slower;
the padded LSTM kernel (oneDNN) beats the packed one even with a quarter of
the steps padding. `worth_packing` keeps it to that measured ground.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.utils import rnn as rnn_utils

from birnn.ops.outside_graphs import outside_graphs

__all__ = ["MIN_SAVED", "MIN_UNITS", "bidirectional_kernel", "worth_packing"]

_VF_PACKED: dict[str, Any] = {"lstm": torch._VF.lstm, "gru": torch._VF.gru}
# The size rule: at least this many units per direction, and at least this fraction of
# the batch's row-steps padding.
MIN_UNITS = 64
MIN_SAVED = 0.1


def worth_packing(
    kind: str, inputs: torch.Tensor, weights: list[torch.Tensor], lengths: torch.Tensor
) -> bool:
    """Whether `bidirectional_kernel` beats the padded kernel call on this batch.

    True only for a GRU on CPU, outside autocast, tracing and compiling (a
    trace would record this batch's lengths), when no gradient is needed,
    with at least `MIN_UNITS` units and at least `MIN_SAVED` of the
    `(slots, batch)` row-steps of `inputs` past their row's length.

    Examples:

    >>> import torch
    >>> x = torch.zeros(100, 64, 33)  # compacted, time-major
    >>> weights = [torch.zeros(384, 33), torch.zeros(384, 128)]
    >>> lengths = torch.full((64,), 60)
    >>> with torch.no_grad():
    ...     worth_packing("gru", x, weights, lengths), worth_packing("lstm", x, weights, lengths)
    (True, False)
    """
    if kind != "gru" or inputs.device.type != "cpu" or torch.is_autocast_enabled("cpu"):
        return False
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False  # a trace or graph would freeze this batch's lengths into the program
    if torch.is_grad_enabled() and (inputs.requires_grad or any(w.requires_grad for w in weights)):
        return False
    if weights[1].shape[1] < MIN_UNITS:  # `w_hh` is `(gates * units, units)`
        return False
    steps, batch = inputs.shape[:2]
    return int(lengths.sum()) <= (1.0 - MIN_SAVED) * steps * batch


@outside_graphs
def bidirectional_kernel(
    kind: str,
    inputs: torch.Tensor,
    states: list[torch.Tensor],
    weights: list[torch.Tensor],
    has_biases: bool,
    lengths: torch.Tensor,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A bidirectional kernel call over right-padded rows that runs only their valid steps.

    Args:
        kind: `"lstm"` or `"gru"`.
        inputs: Compacted, time-major `(slots, batch, features)`.
        states: Initial states, each `(2, batch, units)` (`[h, c]` or `[h]`).
        weights: PyTorch's flat weights of both directions.
        has_biases: Whether `weights` hold biases.
        lengths: `(batch,)` valid steps of each row (0 allowed).

    Returns:
        `(outputs, final_states)` as the padded call returns them:
        `outputs` `(max(lengths, 1), batch, 2 * units)`, zeros past each
        row's length; `final_states` each `(2, batch, units)`.

    Examples:

    >>> import torch
    >>> weights = [torch.rand(12, 3), torch.rand(12, 4), torch.rand(12, 3), torch.rand(12, 4)]
    >>> zeros = torch.zeros(2, 2, 4)
    >>> outputs, (h,) = bidirectional_kernel(
    ...     "gru", torch.rand(5, 2, 3), [zeros], weights, False, torch.tensor([3, 1]))
    >>> outputs.shape, torch.equal(h[0, 1], outputs[0, 1, :4])
    (torch.Size([3, 2, 8]), True)
    """
    steps = lengths.clamp(min=1).to(device="cpu", dtype=torch.int64)
    packed = rnn_utils.pack_padded_sequence(inputs, steps, enforce_sorted=False)
    order, restore = packed.sorted_indices, packed.unsorted_indices
    assert order is not None and restore is not None  # `enforce_sorted=False` sets both
    hx = [state.index_select(1, order) for state in states]
    hx_arg = (hx[0], hx[1]) if kind == "lstm" else hx[0]
    train = torch.is_grad_enabled()
    data, *final = _VF_PACKED[kind](
        packed.data, packed.batch_sizes, hx_arg, weights, has_biases, 1, 0.0, train, True
    )
    result = rnn_utils.PackedSequence(data, packed.batch_sizes, order, restore)
    outputs, _ = rnn_utils.pad_packed_sequence(result)
    return outputs, [state.index_select(1, restore) for state in final]
