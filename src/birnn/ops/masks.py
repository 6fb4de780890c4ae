"""Sequence masks reduced to right padding: compact the valid steps, read results back.

An RNN that keeps its state at masked steps computes, over a masked sequence,
exactly what it computes over the *compacted* sequence of its valid steps. So
any mask (right or left padding, holes, fully masked rows) becomes right
padding: move the valid steps of each row to the front in their order
(`compaction`, `gather_time_major`), run a kernel that handles right padding,
and read its per-slot results back at the original positions (`take_slots`).

A mask is a boolean `(batch, time)` tensor, `True` for the steps to process.
The compacted sequence is time-major, `(slots, batch, features)`, the layout
PyTorch's RNN kernels work in. Nothing here loops in Python or sorts: each
function is a few vectorised index operations copying whole feature rows
(`index_select`, far faster on CPU than `gather` with a broadcast index),
differentiable where it moves values.
"""

from __future__ import annotations

import torch

__all__ = ["compaction", "gather_time_major", "take_slots", "zero_masked_steps"]


def zero_masked_steps(
    inputs: torch.Tensor, mask: torch.Tensor, time_major: bool = False
) -> torch.Tensor:
    """`inputs` with zeros at the masked steps, whatever they held (NaN, inf, ...).

    A recurrent computation replaces its results at masked steps, but the values
    there still pass through its arithmetic, and a NaN or an infinity there turns
    the gradients of everything they met into NaN (`0 * nan` is NaN) even where
    the forward results are kept out. Zeroing the masked steps before any
    arithmetic makes results and gradients independent of them; the gradient
    with respect to a masked step is zero.

    Args:
        inputs: `(batch, time, ...)`, or `(time, batch, ...)` with `time_major=True`;
            or a single step `(batch, ...)` with a `(batch,)` mask.
        mask: Boolean `(batch, time)` (or `(batch,)`), `True` for the steps to keep.
        time_major: Whether `inputs` is time-major.

    Examples:

    >>> import torch
    >>> x = torch.tensor([[[1.0], [float("nan")], [3.0]]])
    >>> zero_masked_steps(x, torch.tensor([[True, False, True]]))[..., 0].tolist()
    [[1.0, 0.0, 3.0]]
    """
    keep = mask.to(torch.bool)
    if time_major:
        keep = keep.t()
    keep = keep.view(*keep.shape, *([1] * (inputs.dim() - keep.dim())))
    return torch.where(keep, inputs, torch.zeros((), dtype=inputs.dtype, device=inputs.device))


def compaction(
    mask: torch.Tensor, reverse: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """How to move the valid steps of every row to its front, keeping their order.

    Args:
        mask: Boolean `(batch, time)`.
        reverse: Read each row from its last step to its first (the processing
            order of an RNN going backwards).

    Returns:
        `(index, counts, lengths)`: `index[b, k]` is the time of the `k`-th valid
        step of row `b` (in reading order) for `k < lengths[b]`, then the masked
        steps; `counts[b, p]` is the number of valid steps among the first `p + 1`
        read; `lengths[b]` the number of valid steps of row `b`.

    Examples:

    >>> import torch
    >>> mask = torch.tensor([[False, True, False, True]])
    >>> index, counts, lengths = compaction(mask)
    >>> index.tolist(), counts.tolist(), lengths.tolist()
    ([[1, 3, 0, 2]], [[0, 1, 1, 2]], [2])
    >>> compaction(mask, reverse=True)[0].tolist()
    [[3, 1, 2, 0]]
    """
    mask = mask.to(torch.bool)
    if reverse:
        mask = mask.flip(1)
    counts = mask.cumsum(1)
    lengths = counts[:, -1]
    steps = torch.arange(mask.shape[1], device=mask.device).expand_as(counts)
    # Valid steps go to slot `count - 1`; masked ones after all valid steps, in order.
    destination = torch.where(mask, counts - 1, lengths.unsqueeze(1) + steps - counts)
    index = torch.empty_like(destination).scatter_(1, destination, steps)
    if reverse:
        index = mask.shape[1] - 1 - index
    return index, counts, lengths


def _batch_offsets(batch: int, scale: int, device: torch.device) -> torch.Tensor:
    return torch.arange(0, batch * scale, scale, device=device)


def gather_time_major(
    values: torch.Tensor, index: torch.Tensor, order: torch.Tensor | None = None
) -> torch.Tensor:
    """`values[b, index[b, k]]` at `[k, b]`: batch-major steps, gathered time-major.

    Args:
        values: `(batch, time, features)`.
        index: `(batch, slots)` times to read.
        order: Optional `(batch,)` permutation of the rows: position `j` of
            the result's batch axis then holds row `order[j]`.

    Returns:
        `(slots, batch, features)`, contiguous.

    Examples:

    >>> import torch
    >>> x = torch.tensor([[[1.0], [2.0], [3.0]], [[4.0], [5.0], [6.0]]])
    >>> gather_time_major(x, torch.tensor([[2, 0], [1, 1]]))[..., 0].tolist()
    [[3.0, 5.0], [1.0, 5.0]]
    >>> gather_time_major(x, torch.tensor([[2, 0], [1, 1]]), torch.tensor([1, 0]))[..., 0].tolist()
    [[5.0, 3.0], [5.0, 1.0]]
    """
    batch, steps, features = values.shape
    if order is None:
        rows = index.t() + _batch_offsets(batch, steps, index.device)
    else:
        rows = index.index_select(0, order).t() + order * steps
    flat = values.reshape(batch * steps, features).index_select(0, rows.reshape(-1))
    return flat.view(*rows.shape, features)


def take_slots(
    outputs: torch.Tensor,
    slots: torch.Tensor,
    valid: torch.Tensor | None = None,
    direction: int | torch.Tensor = 0,
    directions: int = 1,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-row results of a time-major kernel output: `outputs[slots[b, ...], b]`.

    Args:
        outputs: `(slots, batch, directions * units)`, as PyTorch's RNN kernels
            return it (the directions side by side on the last axis).
        slots: `(batch,)` or `(batch, steps)` slot to read for each row (and
            step); clamped into range.
        valid: Optional boolean shaped like `slots`: zeros where `False`.
        direction: Which direction's part of the last axis to read: an index,
            or a tensor of indices broadcast against `slots` (to read
            several directions at once, each from its own slot).
        directions: How many directions `outputs` holds.
        rows: Optional `(batch,)` position of each row in the batch axis of
            `outputs` (of a kernel run over permuted rows): then the result
            is `outputs[slots[b, ...], rows[b]]`.

    Returns:
        `(*slots.shape, units)`, batch-major and contiguous.

    Examples:

    >>> import torch
    >>> out = torch.arange(12.0).view(3, 2, 2)  # 3 slots, batch 2, 2 directions of 1 unit
    >>> slots = torch.tensor([[0, 2], [1, 1]])
    >>> take_slots(out, slots, direction=1, directions=2)[..., 0].tolist()
    [[1.0, 9.0], [7.0, 7.0]]
    """
    num_slots, batch, width = outputs.shape
    units = width // directions
    positions = _batch_offsets(batch, 1, slots.device) if rows is None else rows
    offsets = positions.view(batch, *([1] * (slots.dim() - 1)))
    flat_index = (slots.clamp(0, num_slots - 1) * batch + offsets) * directions + direction
    flat = outputs.reshape(num_slots * batch * directions, units)
    taken = flat.index_select(0, flat_index.reshape(-1)).view(*slots.shape, units)
    if valid is None:
        return taken
    return torch.where(valid.unsqueeze(-1), taken, 0.0)
