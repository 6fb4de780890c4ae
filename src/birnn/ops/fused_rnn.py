"""Fused LSTM and GRU: PyTorch's RNN kernels over Keras-layout weights, with any mask.

The functions here compute what `birnn.ops.recurrent.lstm` / `gru` compute for
the standard activations (`tanh`, `sigmoid`; GRU with `reset_after=True`), but
run the time loop in PyTorch's fused kernels (`torch._VF.lstm` / `gru`: oneDNN
or C++ loops on CPU, cuDNN on GPU). Weights stay in Keras's layout and are
converted on every call (a transpose, and the GRU gate reorder `z, r, h` to
PyTorch's `r, z, n`), so gradients flow to the Keras-shaped tensors.

Masks (`(batch, time)` boolean, `True` = process) follow Keras's rule: a masked
step keeps the states and repeats the previous output (zeros before the first
valid step), or outputs zeros with `zero_output_for_mask=True`. Any mask is
first reduced to right padding by moving each row's valid steps to its front
(`birnn.ops.masks`), so the kernel runs on a plain padded batch, never a
`PackedSequence`. The masked steps are zeroed first, so nothing they held
(NaN, infinities, huge values) reaches the kernel's arithmetic, its results or
its gradients. The padding slots get one extra input feature whose weights
saturate the gates (LSTM: input gate 0 and forget gate 1; GRU: update gate 1),
so a padding step leaves the cell state of an LSTM, and the whole state of a
GRU, bit-for-bit unchanged. That gives the exact final LSTM carry state of
every row from one padded run, and lets one bidirectional kernel call serve
both directions of a masked batch: its backward direction sees the padding
first and, from zero initial states, stays exactly zero through it.

`lstm` and `gru` (and `run_direction`, which runs one `Direction`) return
Keras's triple `(last_output, outputs, states)`: `outputs` is
`(batch, time, units)` in processing order (reversed time when
`go_backwards=True`), or `(batch, 1, units)` holding only the last output when
`return_all_outputs=False`; `states` is `[h, c]` (LSTM) or `[h]` (GRU).
`run_pair` runs two directions over the same inputs, in one kernel call where
it can, and returns both as a `Pair`, their outputs in time order.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import torch

from birnn.ops import (
    masks,
    native_graph,
    native_keras,
    native_rnn,
    packed_rnn,
    side_by_side,
    traced_rnn,
)
from birnn.ops.outside_graphs import outside_graphs
from birnn.ops.rnn_weights import torch_weights

__all__ = ["Direction", "Pair", "gru", "lstm", "run_direction", "run_pair", "torch_weights"]

Triple = tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]

_GATES = {"lstm": 4, "gru": 3}
# `torch._VF` is where PyTorch's own `nn.LSTM` / `nn.GRU` reach these kernels.
_VF_KERNELS: dict[str, Callable[..., Any]] = {"lstm": torch._VF.lstm, "gru": torch._VF.gru}


@dataclass(frozen=True)
class Direction:
    """One direction of a fused run: the kernel, its Keras-layout weights and options.

    `kind` is `"lstm"` or `"gru"` (`reset_after=True`); `initial_states` of
    `None` means zeros; `mask` is an optional boolean `(batch, time)` (`True` =
    process); `dropout_mask` an optional `(batch, features)` multiplier of the
    inputs. The built-in layers make one with `fused_direction()`.
    """

    kind: str
    kernel: torch.Tensor
    recurrent_kernel: torch.Tensor
    bias: torch.Tensor | None
    initial_states: Sequence[torch.Tensor] | None = None
    mask: torch.Tensor | None = None
    go_backwards: bool = False
    zero_output_for_mask: bool = False
    return_all_outputs: bool = True
    dropout_mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.kind not in _GATES:
            raise ValueError(
                f"fused_rnn.Direction: `kind` must be 'lstm' or 'gru'. Received: {self.kind!r}"
            )


def _kernel(
    kind: str,
    inputs: torch.Tensor,
    states: list[torch.Tensor],
    weights: list[torch.Tensor],
    has_biases: bool,
    bidirectional: bool,
    batch_first: bool = True,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One call of a fused kernel: `(outputs, final_states)`.

    States are `(directions, batch, units)`; `outputs` has the layout of `inputs`.
    Under `torch.compile` the recurrence joins the compiled graph: as birnn's
    native kernels where `native_graph.wanted` (one operator in the forward
    graph, one in the backward graph), else, for a sequence of up to
    `traced_rnn.MAX_TRACED_STEPS` steps, as traceable ops (`birnn.ops.traced_rnn`);
    a longer one calls the kernel outside the graph.
    """
    steps = inputs.shape[1 if batch_first else 0]
    if torch.compiler.is_compiling():
        if native_graph.wanted([inputs, *states, *weights], steps):
            unique_states, unique_weights = native_graph.distinct_parts(states, weights)
            return native_rnn.kernel(
                kind,
                inputs,
                unique_states,
                unique_weights,
                has_biases,
                bidirectional,
                batch_first,
                bidirectional and native_graph.concurrent(),
            )
        if steps <= traced_rnn.MAX_TRACED_STEPS:
            return traced_rnn.kernel(
                kind, inputs, states, weights, has_biases, bidirectional, batch_first
            )
    return _opaque_kernel(kind, inputs, states, weights, has_biases, bidirectional, batch_first)


def _native_keras_kernel(
    kind: str,
    inputs: torch.Tensor,
    states: list[torch.Tensor],
    directions: list[native_keras.KerasWeights],
    batch_first: bool = True,
) -> tuple[torch.Tensor, list[torch.Tensor]] | None:
    """`_kernel`'s result from one or two directions' Keras-layout weights
    `(kernel, recurrent_kernel, bias)`, natively in one autograd node
    (`birnn.ops.native_keras`), also inside a compiled graph; `None` where the
    native kernels are not usable (then `_kernel` runs on the weights in
    PyTorch's layout, `_torch_layout`)."""
    tensors = [inputs, *states, *(w for direction in directions for w in direction)]
    if native_rnn.usable(tensors):
        concurrent = len(directions) == 2 and side_by_side.wanted_natively()
        return native_keras.kernel(kind, inputs, states, directions, batch_first, concurrent)
    if not native_graph.wanted(tensors, inputs.shape[1 if batch_first else 0]):
        return None
    # Inside a graph being traced: no tensor may enter the kernel's autograd function twice.
    distinct_states, weights = native_graph.distinct_parts(states, tensors[1 + len(states) :])
    distinct_directions = [
        (cast(torch.Tensor, weights[i]), cast(torch.Tensor, weights[i + 1]), weights[i + 2])
        for i in range(0, len(weights), 3)
    ]
    concurrent = len(directions) == 2 and native_graph.concurrent()
    return native_keras.kernel(
        kind, inputs, distinct_states, distinct_directions, batch_first, concurrent
    )


def _torch_layout(kind: str, directions: list[native_keras.KerasWeights]) -> list[torch.Tensor]:
    """PyTorch's flat weights of one or two directions' Keras-layout weights."""
    return [w for direction in directions for w in torch_weights(kind, *direction)]


# TorchDynamo runs PyTorch's own RNN modules eagerly (`torch._dynamo.config.allow_rnn`
# is False by default): traced into a compiled training graph, the LSTM kernel fails in
# inductor (`mkldnn_rnn_layer`, torch 2.13). The kernel call is likewise left out of
# compiled graphs.
@outside_graphs
def _opaque_kernel(
    kind: str,
    inputs: torch.Tensor,
    states: list[torch.Tensor],
    weights: list[torch.Tensor],
    has_biases: bool,
    bidirectional: bool,
    batch_first: bool = True,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """`_kernel`, always in a kernel outside any compiled graph: birnn's native one
    where `native_rnn.usable` (two directions at once where
    `side_by_side.wanted_natively`; decided here, which runs eagerly also inside
    compiled models), else PyTorch's."""
    device_type = inputs.device.type
    if torch.is_autocast_enabled(device_type):
        # As `nn.LSTM` under autocast: compute in the autocast dtype (CPU autocast does not
        # list `gru`, and mixed-dtype states would fail); the outputs keep that dtype.
        dtype = torch.get_autocast_dtype(device_type)
        with torch.autocast(device_type, enabled=False):
            return _opaque_kernel(
                kind,
                inputs.to(dtype),
                [s.to(dtype) for s in states],
                [w.to(dtype) for w in weights],
                has_biases,
                bidirectional,
                batch_first,
            )
    if native_rnn.usable([inputs, *states, *weights]):
        concurrent = bidirectional and side_by_side.wanted_natively()
        return native_rnn.kernel(
            kind, inputs, states, weights, has_biases, bidirectional, batch_first, concurrent
        )
    train = torch.is_grad_enabled() and (
        any(w.requires_grad for w in weights) or any(t.requires_grad for t in (inputs, *states))
    )
    hx = (states[0], states[1]) if kind == "lstm" else states[0]
    args = (inputs, hx, weights, has_biases, 1, 0.0, train, bidirectional, batch_first)
    function = _VF_KERNELS[kind]
    if inputs.is_cuda:
        # cuDNN wants one flat weight buffer; ours are converted on every call anyway.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="RNN module weights are not part")
            outputs, *final = function(*args)
    else:
        outputs, *final = function(*args)
    return outputs, final


def _with_padding_feature(inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`inputs` with one more feature, 1 at masked steps: after compaction, the padding."""
    return torch.cat([inputs, (~mask).unsqueeze(-1).to(inputs.dtype)], dim=-1)


def _dropped(inputs: torch.Tensor, dropout_mask: torch.Tensor | None) -> torch.Tensor:
    if dropout_mask is None:
        return inputs
    if dropout_mask.dim() != 2:
        raise ValueError(
            "fused_rnn: `dropout_mask` must be one `(batch, features)` mask shared by all "
            f"gates. Received shape {tuple(dropout_mask.shape)}."
        )
    return inputs * dropout_mask.unsqueeze(1)


def _packaged(last: torch.Tensor, outputs: torch.Tensor | None, states: list) -> Triple:
    return last, (last.unsqueeze(1) if outputs is None else outputs), states


def _one_direction(
    kind: str,
    inputs: torch.Tensor,
    initial_states: Sequence[torch.Tensor],
    kernel: torch.Tensor,
    recurrent_kernel: torch.Tensor,
    bias: torch.Tensor | None,
    mask: torch.Tensor | None,
    go_backwards: bool,
    zero_output_for_mask: bool,
    return_all_outputs: bool,
    dropout_mask: torch.Tensor | None,
    time_order: bool = False,
) -> Triple:
    """One direction through the fused kernel (see `lstm` and `gru`).

    With `time_order=True` a backwards run returns its outputs in time order
    rather than in its processing order.
    """
    if mask is not None:
        inputs = masks.zero_masked_steps(inputs, mask)
    x = _dropped(inputs, dropout_mask)
    hx = [state.unsqueeze(0).contiguous() for state in initial_states]
    if mask is None:
        x = x.flip(1) if go_backwards else x
        directions = [(kernel, recurrent_kernel, bias)]
        result = _native_keras_kernel(kind, x, hx, directions)
        if result is None:
            result = _kernel(kind, x, hx, _torch_layout(kind, directions), bias is not None, False)
        outputs, final = result
        states = [s[0] for s in final]
        if return_all_outputs and go_backwards and time_order:
            outputs = outputs.flip(1)
        return _packaged(states[0], outputs if return_all_outputs else None, states)
    mask = mask.to(torch.bool)
    index, counts, lengths = masks.compaction(mask, reverse=go_backwards)
    # The LSTM needs its carry state at each row's last valid step: keep it through padding.
    keep_carry = kind == "lstm"
    if keep_carry:
        x = _with_padding_feature(x, mask)
    weights = torch_weights(kind, kernel, recurrent_kernel, bias, padding_feature=keep_carry)
    rows = None  # where each row is in the kernel's batch
    if not native_rnn.usable([x, *hx, *weights]) and packed_rnn.worth_segmenting(
        kind, x, weights, lengths
    ):  # skips most of the padding
        order, rows, sorted_lengths = packed_rnn.by_length(lengths)
        x = masks.gather_time_major(x, index, order)
        hx = [state.index_select(1, order) for state in hx]
        outputs, final = packed_rnn.segmented_kernel(
            kind, x, hx, weights, bias is not None, sorted_lengths
        )
        final = [state.index_select(1, rows) for state in final]
    else:
        x = masks.gather_time_major(x, index)
        outputs, final = _kernel(kind, x, hx, weights, bias is not None, False, batch_first=False)
    any_valid = (lengths > 0).unsqueeze(1)
    last_valid = masks.take_slots(outputs, lengths - 1, rows=rows)
    h = torch.where(any_valid, last_valid, initial_states[0])
    states = [h, final[1][0]] if kind == "lstm" else [h]
    processed = mask.flip(1) if go_backwards else mask
    keep_last = any_valid & processed[:, -1:] if zero_output_for_mask else any_valid
    last = torch.where(keep_last, last_valid, 0.0)
    expanded = None
    if return_all_outputs:
        # Each step shows the output of the last valid step read so far (none: zeros).
        slots = counts - 1
        if go_backwards and time_order:
            slots, processed = slots.flip(1), mask
        valid = slots >= 0
        if zero_output_for_mask:
            valid = valid & processed
        expanded = masks.take_slots(outputs, slots, valid, rows=rows)
    return _packaged(last, expanded, states)


def lstm(
    inputs: torch.Tensor,
    initial_h: torch.Tensor,
    initial_c: torch.Tensor,
    kernel: torch.Tensor,
    recurrent_kernel: torch.Tensor,
    bias: torch.Tensor | None,
    mask: torch.Tensor | None = None,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    return_all_outputs: bool = True,
    dropout_mask: torch.Tensor | None = None,
) -> Triple:
    """An LSTM (`tanh`, `sigmoid`) over a sequence in PyTorch's fused kernel.

    Same arguments and result as `birnn.ops.recurrent.lstm` without the
    activations: Keras's weight shapes and gate order `i, f, c, o`,
    `kernel (features, 4 * units)`, `recurrent_kernel (units, 4 * units)`,
    `bias (4 * units,)` or `None`. `dropout_mask` is one `(batch, features)`
    multiplier for the inputs. Returns `(last_output, outputs, [h, c])`.

    Examples:

    >>> import torch
    >>> zeros = torch.zeros(2, 4)
    >>> mask = torch.tensor([[True, True, False], [False, True, True]])
    >>> last, outputs, (h, c) = lstm(
    ...     torch.ones(2, 3, 5), zeros, zeros, torch.ones(5, 16) / 10,
    ...     torch.zeros(4, 16), None, mask=mask)
    >>> outputs.shape, torch.equal(outputs[0, 2], outputs[0, 1]), torch.equal(last, h)
    (torch.Size([2, 3, 4]), True, True)
    """
    return _one_direction(
        "lstm",
        inputs,
        [initial_h, initial_c],
        kernel,
        recurrent_kernel,
        bias,
        mask,
        go_backwards,
        zero_output_for_mask,
        return_all_outputs,
        dropout_mask,
    )


def gru(
    inputs: torch.Tensor,
    initial_state: torch.Tensor,
    kernel: torch.Tensor,
    recurrent_kernel: torch.Tensor,
    bias: torch.Tensor | None,
    mask: torch.Tensor | None = None,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    return_all_outputs: bool = True,
    dropout_mask: torch.Tensor | None = None,
) -> Triple:
    """A GRU (`reset_after=True`, `tanh`, `sigmoid`) over a sequence in PyTorch's fused kernel.

    Same arguments and result as `birnn.ops.recurrent.gru` without the
    activations: Keras's weight shapes and gate order `z, r, h`,
    `kernel (features, 3 * units)`, `recurrent_kernel (units, 3 * units)`,
    `bias (2, 3 * units)` (input and recurrent biases) or `None`.
    Returns `(last_output, outputs, [h])`.

    Examples:

    >>> import torch
    >>> last, outputs, (h,) = gru(
    ...     torch.ones(2, 3, 5), torch.zeros(2, 4), torch.ones(5, 12) / 10,
    ...     torch.zeros(4, 12), torch.zeros(2, 12), go_backwards=True)
    >>> outputs.shape, torch.equal(last, outputs[:, -1])
    (torch.Size([2, 3, 4]), True)
    """
    return _one_direction(
        "gru",
        inputs,
        [initial_state],
        kernel,
        recurrent_kernel,
        bias,
        mask,
        go_backwards,
        zero_output_for_mask,
        return_all_outputs,
        dropout_mask,
    )


def _states_or_zeros(direction: Direction, like: torch.Tensor) -> list[torch.Tensor]:
    if direction.initial_states is not None:
        return list(direction.initial_states)
    units = direction.recurrent_kernel.shape[0]
    zeros = like.new_zeros(like.shape[0], units)
    return [zeros, zeros] if direction.kind == "lstm" else [zeros]


def run_direction(inputs: torch.Tensor, direction: Direction, time_order: bool = False) -> Triple:
    """One `Direction` over `inputs` `(batch, time, features)`: `lstm` / `gru`'s triple.

    With `time_order=True` a backwards direction returns its outputs in time
    order rather than in its processing order.

    Examples:

    >>> import torch
    >>> direction = Direction("gru", torch.ones(5, 12) / 10, torch.zeros(4, 12), None)
    >>> last, outputs, (h,) = run_direction(torch.ones(2, 3, 5), direction)
    >>> outputs.shape, torch.equal(last, h)
    (torch.Size([2, 3, 4]), True)
    """
    return _one_direction(
        direction.kind,
        inputs,
        _states_or_zeros(direction, inputs),
        direction.kernel,
        direction.recurrent_kernel,
        direction.bias,
        direction.mask,
        direction.go_backwards,
        direction.zero_output_for_mask,
        direction.return_all_outputs,
        direction.dropout_mask,
        time_order=time_order,
    )


def _one_call_possible(forward: Direction, backward: Direction) -> bool:
    """Whether one bidirectional kernel call computes both directions exactly."""
    return (
        forward.kind == backward.kind
        and forward.go_backwards != backward.go_backwards
        and forward.mask is backward.mask
        and forward.kernel.shape == backward.kernel.shape
        and forward.recurrent_kernel.shape == backward.recurrent_kernel.shape
        and forward.kernel.dtype == backward.kernel.dtype
        and forward.dropout_mask is backward.dropout_mask
        and forward.return_all_outputs == backward.return_all_outputs
        and (forward.bias is None) == (backward.bias is None)
        and (
            forward.mask is None
            or (forward.initial_states is None and backward.initial_states is None)
        )
    )


@dataclass(frozen=True)
class Pair:
    """Both directions of a bidirectional run (what `run_pair` returns).

    Every field holds the forward direction's part first. Outputs are in time
    order for both directions: step `t` holds the output after reading input
    step `t`, so the two line up step by step.

    Attributes:
        last_outputs: Each direction's last output, `(batch, units)`.
        states: Each direction's final states, `[h, c]` or `[h]`.
        sequences: Both directions' outputs side by side on the last axis,
            `(batch, time, units_fw + units_bw)`; `None` unless both return
            all outputs.
    """

    last_outputs: tuple[torch.Tensor, torch.Tensor]
    states: tuple[list[torch.Tensor], list[torch.Tensor]]
    sequences: torch.Tensor | None = None

    @property
    def outputs_side_by_side(self) -> torch.Tensor:
        """`sequences`, or a `ValueError` if the directions did not return all outputs."""
        if self.sequences is None:
            raise ValueError(
                "fused_rnn.Pair: this pair has no sequences (a direction was run with "
                "`return_all_outputs=False`)."
            )
        return self.sequences

    @property
    def outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each direction's outputs, views of `sequences` (see `outputs_side_by_side`)."""
        sequences = self.outputs_side_by_side
        units = self.last_outputs[0].shape[-1]
        return sequences[..., :units], sequences[..., units:]


def run_pair(inputs: torch.Tensor, forward: Direction, backward: Direction) -> Pair:
    """Two directions of a bidirectional LSTM or GRU over the same `inputs`.

    Each direction computes what `run_direction` computes for it alone, except
    that both return their outputs in time order (a backwards direction's
    flipped back from its processing order), lined up for merging; see `Pair`.
    When the two directions run the same kernel on the same inputs (the same
    mask and dropout mask, or none) and either there is no mask or both start
    from zero states, both run in one bidirectional kernel call, whose
    side-by-side output is `sequences` itself; otherwise one call per direction.

    Args:
        inputs: `(batch, time, features)`.
        forward: The first direction (usually `go_backwards=False`).
        backward: The second direction (the other `go_backwards`).

    Examples:

    >>> import torch
    >>> kernel, recurrent_kernel = torch.ones(5, 16) / 10, torch.zeros(4, 16)
    >>> mask = torch.tensor([[True, True, False], [False, True, True]])
    >>> fwd = Direction("lstm", kernel, recurrent_kernel, None, mask=mask)
    >>> bwd = Direction("lstm", kernel, recurrent_kernel, None, mask=mask, go_backwards=True)
    >>> pair = run_pair(torch.rand(2, 3, 5), fwd, bwd)
    >>> pair.outputs[0].shape, pair.sequences.shape
    (torch.Size([2, 3, 4]), torch.Size([2, 3, 8]))
    >>> torch.equal(pair.last_outputs[1], pair.outputs[1][:, 0])  # backward ends at step 0
    True
    """
    # Two directions at once: on two workers, unless one native kernel call can take the
    # pair (that call runs them at once itself, wherever it is made).
    one_call = _one_call_possible(forward, backward)
    tensors: list[torch.Tensor | None] = [inputs]
    for d in (forward, backward):
        tensors += [d.kernel, d.recurrent_kernel, d.bias]
    concurrent = _side_by_side(inputs, tensors, forward, backward)
    if concurrent and one_call and _native_pair(tensors):
        concurrent = False
    if concurrent or not one_call:
        (last_fw, out_fw, states_fw), (last_bw, out_bw, states_bw) = _each_direction(
            inputs, (forward, backward), concurrent
        )
        sequences = None
        if forward.return_all_outputs and backward.return_all_outputs:
            sequences = torch.cat([out_fw, out_bw], dim=-1)
        return Pair((last_fw, last_bw), (states_fw, states_bw), sequences)
    swapped = forward.go_backwards
    first, second = (backward, forward) if swapped else (forward, backward)
    mask = forward.mask
    if mask is None:
        pair = _unmasked_pair(_dropped(inputs, forward.dropout_mask), first, second)
    else:
        mask = mask.to(torch.bool)
        x = _dropped(masks.zero_masked_steps(inputs, mask), forward.dropout_mask)
        pair = _masked_pair(x, first, second, mask)
    if not swapped:
        return pair
    # The kernel's in-time direction is the second of this pair: exchange the two.
    sequences = pair.sequences
    if sequences is not None:
        in_time, reverse = _halves(sequences)
        sequences = torch.cat([reverse, in_time], dim=-1)
    last_in_time, last_reverse = pair.last_outputs
    states_in_time, states_reverse = pair.states
    return Pair((last_reverse, last_in_time), (states_reverse, states_in_time), sequences)


def _side_by_side(
    inputs: torch.Tensor, tensors: list[torch.Tensor | None], *directions: Direction
) -> bool:
    """Whether the two directions, reading `tensors`, run side by side on two workers
    (`birnn.ops.side_by_side`)."""
    batch, time, features = inputs.shape
    work = max(
        batch
        * time
        * _GATES[d.kind]
        * d.recurrent_kernel.shape[0]
        * (features + d.recurrent_kernel.shape[0])
        for d in directions
    )
    return side_by_side.wanted(tensors, work)


def _native_pair(tensors: list[torch.Tensor | None]) -> bool:
    """Whether the pair goes to one native kernel call, which runs both directions
    at once (one thread each), rather than to two workers.

    With four or more threads each direction gets half of them on a worker
    instead (`birnn.ops.side_by_side`), so that no core sits idle.
    """
    return torch.get_num_threads() < 4 and native_rnn.usable(tensors)


def _each_direction(
    inputs: torch.Tensor, directions: tuple[Direction, Direction], concurrent: bool
) -> list[Triple]:
    """Each direction in its own kernel call: one after the other, or side by side.

    The side-by-side runner records each computation on its own copies of the
    tensors it is given, so every tensor a direction reads is passed as an
    argument and put back into the `Direction` inside the computation.
    """

    def computation(d: Direction) -> side_by_side.Computation:
        count = len(d.initial_states) if d.initial_states is not None else 0

        def compute(*args: Any) -> tuple[torch.Tensor, ...]:
            x, mask, dropout_mask, kernel, recurrent_kernel, bias, *states = args
            direction = replace(
                d,
                kernel=kernel,
                recurrent_kernel=recurrent_kernel,
                bias=bias,
                initial_states=states if count else None,
                mask=mask,
                dropout_mask=dropout_mask,
            )
            last, outputs, final = run_direction(x, direction, time_order=True)
            return last, outputs, *final

        states = list(d.initial_states or ())
        args = [inputs, d.mask, d.dropout_mask, d.kernel, d.recurrent_kernel, d.bias, *states]
        return compute, args

    first, second = (computation(d) for d in directions)
    results = side_by_side.run(first, second, side_by_side=concurrent)
    return [(result[0], result[1], list(result[2:])) for result in results]


def _halves(sequences: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    in_time, reverse = sequences.chunk(2, dim=-1)
    return in_time, reverse


def _unmasked_pair(x: torch.Tensor, first: Direction, second: Direction) -> Pair:
    """Both directions of an unmasked batch in one kernel call (`first` reads in time order)."""
    kind = first.kind
    if first.initial_states is None and second.initial_states is None:
        zeros = x.new_zeros(2, x.shape[0], first.recurrent_kernel.shape[0])
        hx = [zeros, zeros] if kind == "lstm" else [zeros]
    else:
        hx = [
            torch.stack([a, b])
            for a, b in zip(_states_or_zeros(first, x), _states_or_zeros(second, x))
        ]
    directions = [(d.kernel, d.recurrent_kernel, d.bias) for d in (first, second)]
    result = _native_keras_kernel(kind, x, hx, directions)
    if result is None:
        weights = _torch_layout(kind, directions)
        result = _kernel(kind, x, hx, weights, first.bias is not None, True)
    sequences, final = result
    # Without a mask, each direction's last output is its final `h`.
    halves = [state.unbind(0) for state in final]
    states_in_time = [in_time for in_time, _ in halves]
    states_reverse = [reverse for _, reverse in halves]
    return Pair(
        (states_in_time[0], states_reverse[0]),
        (states_in_time, states_reverse),
        sequences if first.return_all_outputs else None,
    )


def _masked_pair(
    x: torch.Tensor,
    first: Direction,
    second: Direction,
    mask: torch.Tensor,
) -> Pair:
    """Both directions of a masked batch from zero states in one kernel call.

    The valid steps are compacted to the front of each row; the padding slots
    carry the saturating feature. The in-time direction (`first`) reads its
    valid steps then padding (which keeps an LSTM's carry state); the reverse
    direction reads the padding first and stays exactly zero through it.
    """
    kind = first.kind
    index, counts, lengths = masks.compaction(mask)
    x = masks.gather_time_major(_with_padding_feature(x, mask), index)
    weights = torch_weights(kind, first.kernel, first.recurrent_kernel, first.bias, True)
    weights += torch_weights(kind, second.kernel, second.recurrent_kernel, second.bias, True)
    units = first.recurrent_kernel.shape[0]
    zeros = x.new_zeros(2, x.shape[1], units)
    hx = [zeros, zeros] if kind == "lstm" else [zeros]
    native = native_rnn.usable([x, *hx, *weights])
    if not native and packed_rnn.worth_packing(kind, x, weights, lengths):  # skips padding
        outputs, final = packed_rnn.bidirectional_kernel(
            kind, x, hx, weights, first.bias is not None, lengths
        )
    else:
        outputs, final = _kernel(kind, x, hx, weights, first.bias is not None, True, False)

    # In-time direction: results at each row's last valid slot; zero state if none.
    h = masks.take_slots(outputs, lengths - 1, lengths > 0, direction=0, directions=2)
    in_time_last = torch.where(mask[:, -1:], h, 0.0) if first.zero_output_for_mask else h
    in_time_states = [h, final[1][0]] if kind == "lstm" else [h]
    # Reverse direction: it ends on slot 0, and on exact zeros for a fully masked row.
    first_slot = outputs[0, :, units:]
    reverse_last = (
        torch.where(mask[:, :1], first_slot, 0.0) if second.zero_output_for_mask else first_slot
    )
    reverse_states = [s[1] for s in final]

    sequences = None
    if first.return_all_outputs:
        # At step `t`: the in-time direction shows its output after the valid steps up to
        # `t`, the reverse one its output after the valid steps from `t` on (read from slot
        # `before`, counting down from the end: its compacted order is the same).
        before = counts - mask.to(counts.dtype)  # valid steps strictly before each time
        slots = torch.stack([counts - 1, before], dim=-1)
        valid = torch.stack([counts > 0, before < lengths.unsqueeze(1)], dim=-1)
        zero_masked = torch.tensor(
            [first.zero_output_for_mask, second.zero_output_for_mask], device=mask.device
        )
        valid = valid & (mask.unsqueeze(-1) | ~zero_masked)
        directions = torch.arange(2, device=mask.device)
        taken = masks.take_slots(outputs, slots, valid, direction=directions, directions=2)
        sequences = taken.flatten(-2)
    return Pair((in_time_last, reverse_last), (in_time_states, reverse_states), sequences)
