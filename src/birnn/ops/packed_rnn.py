"""Masked GRU inference that skips each row's padding: packed or segmented kernel calls.

These serve PyTorch's kernels only: where birnn's native kernels run
(`birnn.ops.native_rnn`), one padded native call is faster, and `fused_rnn`
does not ask for packing or segments.

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

One direction at a time (the two directions of a `Bidirectional` layer run
side by side, each compacted in its own reading order), `segmented_kernel`
skips most of the padding with a few padded calls instead: rows sorted by
length, the time axis cut where evenly spaced rows end, each segment run over
the rows still running. For the GRU at the benchmark shape on one thread it
took 0.81-0.86x the time of one padded call (batches of varying lengths
included). The LSTM is left to its one padded call: segments gained 0-5% with
the lengths of one batch repeated and lost as much with lengths that vary
from batch to batch (oneDNN builds a kernel for each new shape).
`worth_segmenting` keeps it to the ground of `worth_packing`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.utils import rnn as rnn_utils

from birnn.ops.outside_graphs import outside_graphs

__all__ = [
    "MIN_SAVED",
    "MIN_UNITS",
    "bidirectional_kernel",
    "by_length",
    "segmented_kernel",
    "worth_packing",
    "worth_segmenting",
]

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
    row_steps = inputs.shape[0] * inputs.shape[1]  # time-major or not
    return int(lengths.sum()) <= (1.0 - MIN_SAVED) * row_steps


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


# Segments of a direction's run (`segmented_kernel`).
SEGMENTS = 8


def worth_segmenting(
    kind: str, inputs: torch.Tensor, weights: list[torch.Tensor], lengths: torch.Tensor
) -> bool:
    """Whether `segmented_kernel` beats one padded kernel call of one direction.

    The ground of `worth_packing`: a GRU on CPU, outside autocast, tracing and
    compiling, no gradient needed, at least `MIN_UNITS` units and at least
    `MIN_SAVED` of the row-steps of `inputs` (`(batch, time, features)`, or
    time-major) padding.

    Examples:

    >>> import torch
    >>> x = torch.zeros(64, 100, 32)
    >>> weights = [torch.zeros(384, 32), torch.zeros(384, 128)]
    >>> with torch.no_grad():
    ...     worth_segmenting("gru", x, weights, torch.full((64,), 60))
    True
    """
    return worth_packing(kind, inputs, weights, lengths)


def by_length(lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """`(order, rows, sorted_lengths)`: the rows longest first, as `segmented_kernel` wants.

    `order[j]` is the row at position `j`, `rows[b]` the position of row `b`,
    `sorted_lengths` the lengths in that order (stable: ties keep their order).

    Examples:

    >>> import torch
    >>> order, rows, sorted_lengths = by_length(torch.tensor([2, 5, 0, 5]))
    >>> order.tolist(), rows.tolist(), sorted_lengths
    ([1, 3, 0, 2], [2, 0, 3, 1], [5, 5, 2, 0])
    """
    on_cpu = lengths.to("cpu")
    order = torch.argsort(on_cpu, descending=True, stable=True)
    sorted_lengths = on_cpu.index_select(0, order).tolist()
    rows = torch.empty_like(order)
    rows[order] = torch.arange(order.shape[0])
    return order.to(lengths.device), rows.to(lengths.device), sorted_lengths


def _segment_ends(sorted_lengths: list[int], count: int) -> list[int]:
    """Where the segments end: at the lengths of evenly spaced rows (the longest last)."""
    last = len(sorted_lengths) - 1
    ends = {sorted_lengths[last * (count - 1 - j) // max(count - 1, 1)] for j in range(count)}
    return sorted(end for end in ends if end > 0)


@outside_graphs
def segmented_kernel(
    kind: str,
    inputs: torch.Tensor,
    states: list[torch.Tensor],
    weights: list[torch.Tensor],
    has_biases: bool,
    sorted_lengths: list[int],
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One direction's kernel over right-padded rows, in a few calls that skip most padding.

    The rows come sorted by length, longest first (`by_length`). The time axis
    is cut into `SEGMENTS` segments that end at the lengths of evenly spaced
    rows; each segment runs in one call of the padded kernel over only
    the rows still running at its start, from the states the previous segment
    left them. A row that ends inside a segment runs that segment's padding, as
    in one padded call; what lies past every row's segments is skipped. Each
    row's valid steps thus see the inputs and states they see in one padded
    call (the results agree to float rounding: the kernels multiply matrices
    of other sizes).

    Args:
        kind: `"lstm"` or `"gru"`.
        inputs: Compacted, time-major `(slots, batch, features)`, rows sorted.
        states: Initial states, each `(1, batch, units)` (`[h, c]` or `[h]`).
        weights: PyTorch's flat weights of the direction.
        has_biases: Whether `weights` hold biases.
        sorted_lengths: Valid steps of each row, non-increasing (0 allowed).

    Returns:
        `(outputs, final_states)`, rows in the sorted order: `outputs`
        `(slots, batch, units)` holds the padded call's outputs at each row's
        valid slots, zeros where a row did not run; `final_states` each
        `(1, batch, units)`: each row's states after the last segment it ran
        in. Where `inputs` carry the saturating padding feature, those are the
        padded call's final values of the states it keeps through padding (an
        LSTM's carry, a GRU's state). A row of length 0 keeps its initial
        states.

    Examples:

    >>> import torch
    >>> weights = [torch.rand(12, 3), torch.rand(12, 4)]
    >>> x, h0 = torch.rand(5, 3, 3), torch.zeros(1, 3, 4)
    >>> outputs, (h,) = segmented_kernel("gru", x, [h0], weights, False, [5, 2, 0])
    >>> padded, _ = torch._VF.gru(x, h0, weights, False, 1, 0.0, False, False, False)
    >>> torch.allclose(outputs[:2, 1], padded[:2, 1]), bool(outputs[:, 2].eq(0).all())
    (True, True)
    """
    slots, batch = inputs.shape[:2]
    outputs = inputs.new_empty(slots, batch, weights[1].shape[1])
    final = [state.clone() for state in states]
    kernel = _VF_PACKED[kind]
    start, running = 0, batch
    for end in _segment_ends(sorted_lengths, SEGMENTS):
        while running and sorted_lengths[running - 1] <= start:
            running -= 1  # the rows that are done: the last ones
        hx = [state[:, :running] for state in final]
        hx_arg = (hx[0], hx[1]) if kind == "lstm" else hx[0]
        part, *part_final = kernel(
            inputs[start:end, :running], hx_arg, weights, has_biases, 1, 0.0, False, False, False
        )
        outputs[start:end, :running] = part
        outputs[start:end, running:] = 0.0
        for state, new in zip(final, part_final):
            state[:, :running] = new
        start = end
    outputs[start:] = 0.0
    return outputs, final
