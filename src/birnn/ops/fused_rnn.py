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

`lstm` and `gru` return Keras's triple `(last_output, outputs, states)`:
`outputs` is `(batch, time, units)` in processing order (reversed time when
`go_backwards=True`), or `(batch, 1, units)` holding only the last output when
`return_all_outputs=False`; `states` is `[h, c]` (LSTM) or `[h]` (GRU).
`bidirectional` returns one such triple per direction, both with outputs in
time order, and the two outputs side by side, as a `Pair`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import torch

from birnn.ops import masks, packed_rnn

__all__ = ["Direction", "Pair", "bidirectional", "gru", "lstm", "torch_weights"]

Triple = tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]

_GATES = {"lstm": 4, "gru": 3}
_VF_KERNELS = {"lstm": torch._VF.lstm, "gru": torch._VF.gru}
# Pre-activation added at padding slots: far beyond where sigmoid rounds to exactly 0 or 1.
_SATURATE = {torch.float16: 3.0e4}
_DEFAULT_SATURATE = 1.0e6


class Direction(NamedTuple):
    """One direction of a bidirectional run: Keras-layout weights and options.

    `initial_states` of `None` means zeros; `dropout_mask` is an optional
    `(batch, features)` multiplier applied to the inputs of this direction.
    """

    kernel: torch.Tensor
    recurrent_kernel: torch.Tensor
    bias: torch.Tensor | None
    initial_states: Sequence[torch.Tensor] | None = None
    go_backwards: bool = False
    zero_output_for_mask: bool = False
    return_all_outputs: bool = True
    dropout_mask: torch.Tensor | None = None


def _torch_gate_order(kind: str, weight: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Keras's gate blocks (along `dim`) in PyTorch's order: GRU `z, r, h` -> `r, z, n`.

    An LSTM's order is already PyTorch's: `weight` comes back as it is (a view).
    """
    if kind == "lstm":
        return weight  # `i, f, c, o` is PyTorch's `i, f, g, o`
    update, reset, candidate = weight.chunk(3, dim=dim)
    return torch.cat([reset, update, candidate], dim=dim)


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
    # which its native GRU kernel runs about 4% faster on (benchmark GRU row, 2026-11-30).
    w_ih = _torch_gate_order(kind, kernel.t(), dim=0)
    w_hh = _torch_gate_order(kind, recurrent_kernel.t(), dim=0)
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
            weights += [_torch_gate_order(kind, bias[0]), _torch_gate_order(kind, bias[1])]
    return weights


# TorchDynamo runs PyTorch's own RNN modules eagerly (`torch._dynamo.config.allow_rnn`
# is False by default): traced into a compiled training graph, the LSTM kernel fails in
# AOTAutograd (torch 2.13). The kernel call is likewise left out of compiled graphs.
@torch.compiler.disable
def _kernel(
    kind: str,
    inputs: torch.Tensor,
    states: list[torch.Tensor],
    weights: list[torch.Tensor],
    has_biases: bool,
    bidirectional: bool,
    batch_first: bool = True,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One call of PyTorch's fused kernel: `(outputs, final_states)`.

    States are `(directions, batch, units)`; `outputs` has the layout of `inputs`.
    """
    device_type = inputs.device.type
    if torch.is_autocast_enabled(device_type):
        # As `nn.LSTM` under autocast: compute in the autocast dtype (CPU autocast does not
        # list `gru`, and mixed-dtype states would fail); the outputs keep that dtype.
        dtype = torch.get_autocast_dtype(device_type)
        with torch.autocast(device_type, enabled=False):
            return _kernel(
                kind,
                inputs.to(dtype),
                [s.to(dtype) for s in states],
                [w.to(dtype) for w in weights],
                has_biases,
                bidirectional,
                batch_first,
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


def _run(
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
        weights = torch_weights(kind, kernel, recurrent_kernel, bias)
        x = x.flip(1) if go_backwards else x
        outputs, final = _kernel(kind, x, hx, weights, bias is not None, False)
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
    x = masks.gather_time_major(x, index)
    weights = torch_weights(kind, kernel, recurrent_kernel, bias, padding_feature=keep_carry)
    outputs, final = _kernel(kind, x, hx, weights, bias is not None, False, batch_first=False)
    any_valid = (lengths > 0).unsqueeze(1)
    last_valid = masks.take_slots(outputs, lengths - 1)
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
        expanded = masks.take_slots(outputs, slots, valid)
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
    return _run(
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
    return _run(
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


def _zeros_states(kind: str, direction: Direction, like: torch.Tensor) -> list[torch.Tensor]:
    if direction.initial_states is not None:
        return list(direction.initial_states)
    units = direction.recurrent_kernel.shape[0]
    zeros = like.new_zeros(like.shape[0], units)
    return [zeros, zeros] if kind == "lstm" else [zeros]


def _one_call_possible(forward: Direction, backward: Direction, mask: torch.Tensor | None) -> bool:
    """Whether one bidirectional kernel call computes both directions exactly."""
    return (
        forward.go_backwards != backward.go_backwards
        and forward.kernel.shape == backward.kernel.shape
        and forward.recurrent_kernel.shape == backward.recurrent_kernel.shape
        and forward.kernel.dtype == backward.kernel.dtype
        and forward.dropout_mask is backward.dropout_mask
        and forward.return_all_outputs == backward.return_all_outputs
        and (forward.bias is None) == (backward.bias is None)
        and (mask is None or (forward.initial_states is None and backward.initial_states is None))
    )


class Pair:
    """Both directions of a bidirectional run (what `bidirectional` returns).

    `forward` and `backward` are each direction's `(last_output, outputs,
    states)`, with `outputs` in time order for both directions: step `t` holds
    the output after reading input step `t`, so the two line up step by step.
    `sequences` holds the two directions' `outputs` side by side on the last
    axis, `forward` first, `(batch, time, units_fw + units_bw)`; `None` unless
    both directions return all outputs.

    It unpacks and indexes as `(forward, backward, sequences)`. The parts are
    also readable one kind at a time, each as a `(forward, backward)` pair:
    `last_outputs`, `outputs` and `states`. They are views of the kernel's
    results made on first read, so a caller that needs only `sequences` (a
    concatenating `Bidirectional`) or only the last outputs pays for no other
    views.
    """

    __slots__ = ("sequences", "_last_outputs", "_outputs", "_states")

    def __init__(
        self,
        sequences: torch.Tensor | None,
        last_outputs: Any,
        outputs: Any,
        states: Any,
    ) -> None:
        """Each of `last_outputs`, `outputs` and `states` is a `(forward, backward)`
        pair or a function of no arguments that returns one; `outputs` may be
        `None`: the last outputs, each with a time axis of 1."""
        self.sequences = sequences
        self._last_outputs = last_outputs
        self._outputs = outputs
        self._states = states

    @property
    def last_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        if callable(self._last_outputs):
            self._last_outputs = self._last_outputs()
        return self._last_outputs

    @property
    def outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._outputs is None:
            self._outputs = tuple(last.unsqueeze(1) for last in self.last_outputs)
        elif callable(self._outputs):
            self._outputs = self._outputs()
        return self._outputs

    @property
    def states(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if callable(self._states):
            self._states = self._states()
        return self._states

    @property
    def forward(self) -> Triple:
        return self.last_outputs[0], self.outputs[0], self.states[0]

    @property
    def backward(self) -> Triple:
        return self.last_outputs[1], self.outputs[1], self.states[1]

    def __iter__(self) -> Iterator[Any]:
        return iter((self.forward, self.backward, self.sequences))

    def __getitem__(self, index: int | slice) -> Any:
        return (self.forward, self.backward, self.sequences)[index]

    def __len__(self) -> int:
        return 3

    def swapped(self, sequences: torch.Tensor | None) -> Pair:
        """The same run with the two directions exchanged, and these `sequences`."""

        def swap(part: Any) -> Any:
            if part is None:
                return None
            return lambda: tuple(reversed(part() if callable(part) else part))

        return Pair(sequences, swap(self._last_outputs), swap(self._outputs), swap(self._states))


def bidirectional(
    kind: str,
    inputs: torch.Tensor,
    forward: Direction,
    backward: Direction,
    mask: torch.Tensor | None = None,
) -> Pair:
    """Both directions of a bidirectional LSTM or GRU.

    Each direction computes what `lstm` / `gru` compute for it alone, except
    that both return their outputs in time order (a backwards direction's
    flipped back from its processing order), lined up for merging; see `Pair`.
    When the two directions read the same inputs (no dropout mask, or the same
    one) and either there is no mask or both start from zero states, both run
    in one bidirectional kernel call, whose side-by-side output is `sequences`
    itself; otherwise one call per direction.

    Args:
        kind: `"lstm"` or `"gru"`.
        inputs: `(batch, time, features)`.
        forward: The first direction (usually `go_backwards=False`).
        backward: The second direction (the other `go_backwards`).
        mask: Optional boolean `(batch, time)` shared by both directions.

    Examples:

    >>> import torch
    >>> kernel, recurrent_kernel = torch.ones(5, 16) / 10, torch.zeros(4, 16)
    >>> fwd = Direction(kernel, recurrent_kernel, None)
    >>> bwd = Direction(kernel, recurrent_kernel, None, go_backwards=True)
    >>> mask = torch.tensor([[True, True, False], [False, True, True]])
    >>> pair = bidirectional("lstm", torch.rand(2, 3, 5), fwd, bwd, mask)
    >>> pair.forward[1].shape, pair.sequences.shape
    (torch.Size([2, 3, 4]), torch.Size([2, 3, 8]))
    >>> torch.equal(pair.backward[0], pair.backward[1][:, 0])  # backward ends at step 0
    True
    """
    if kind not in _GATES:
        raise ValueError(f"fused_rnn: `kind` must be 'lstm' or 'gru'. Received: {kind!r}")
    if not _one_call_possible(forward, backward, mask):
        triples = [
            _run(
                kind,
                inputs,
                _zeros_states(kind, d, inputs),
                d.kernel,
                d.recurrent_kernel,
                d.bias,
                mask,
                d.go_backwards,
                d.zero_output_for_mask,
                d.return_all_outputs,
                d.dropout_mask,
                time_order=True,
            )
            for d in (forward, backward)
        ]
        sequences = None
        if forward.return_all_outputs and backward.return_all_outputs:
            sequences = torch.cat([triples[0][1], triples[1][1]], dim=-1)
        (last_fw, out_fw, states_fw), (last_bw, out_bw, states_bw) = triples
        return Pair(sequences, (last_fw, last_bw), (out_fw, out_bw), (states_fw, states_bw))
    swapped = forward.go_backwards
    first, second = (backward, forward) if swapped else (forward, backward)
    if mask is None:
        pair = _unmasked_pair(kind, _dropped(inputs, forward.dropout_mask), first, second)
    else:
        mask = mask.to(torch.bool)
        x = _dropped(masks.zero_masked_steps(inputs, mask), forward.dropout_mask)
        pair = _masked_pair(kind, x, first, second, mask)
    if not swapped:
        return pair
    sequences = pair.sequences
    if sequences is not None:  # the kernel's in-time direction is the second of this pair
        sequences = torch.cat(pair.outputs[::-1], dim=-1)
    return pair.swapped(sequences)


def _halves(sequences: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return sequences.chunk(2, dim=-1)


def _unmasked_pair(kind: str, x: torch.Tensor, first: Direction, second: Direction) -> Pair:
    """Both directions of an unmasked batch in one kernel call (`first` reads in time order)."""
    weights = torch_weights(kind, first.kernel, first.recurrent_kernel, first.bias)
    weights += torch_weights(kind, second.kernel, second.recurrent_kernel, second.bias)
    if first.initial_states is None and second.initial_states is None:
        zeros = x.new_zeros(2, x.shape[0], first.recurrent_kernel.shape[0])
        hx = [zeros, zeros] if kind == "lstm" else [zeros]
    else:
        hx = [
            torch.stack([a, b])
            for a, b in zip(_zeros_states(kind, first, x), _zeros_states(kind, second, x))
        ]
    sequences, final = _kernel(kind, x, hx, weights, first.bias is not None, True)
    if not first.return_all_outputs:
        sequences = None

    def states() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        in_time, reverse = zip(*(state.unbind(0) for state in final))
        return list(in_time), list(reverse)

    return Pair(
        sequences,
        lambda: tuple(final[0].unbind(0)),  # without a mask, the last output is the final `h`
        None if sequences is None else lambda: _halves(sequences),
        states,
    )


def _masked_pair(
    kind: str, x: torch.Tensor, first: Direction, second: Direction, mask: torch.Tensor
) -> Pair:
    """Both directions of a masked batch from zero states in one kernel call.

    The valid steps are compacted to the front of each row; the padding slots
    carry the saturating feature. The in-time direction (`first`) reads its
    valid steps then padding (which keeps an LSTM's carry state); the reverse
    direction reads the padding first and stays exactly zero through it.
    """
    index, counts, lengths = masks.compaction(mask)
    x = masks.gather_time_major(_with_padding_feature(x, mask), index)
    weights = torch_weights(kind, first.kernel, first.recurrent_kernel, first.bias, True)
    weights += torch_weights(kind, second.kernel, second.recurrent_kernel, second.bias, True)
    units = first.recurrent_kernel.shape[0]
    zeros = x.new_zeros(2, x.shape[1], units)
    hx = [zeros, zeros] if kind == "lstm" else [zeros]
    if packed_rnn.worth_packing(kind, x, weights, lengths):  # skips each row's padding
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
    return Pair(
        sequences,
        (in_time_last, reverse_last),
        None if sequences is None else lambda: _halves(sequences),
        (in_time_states, reverse_states),
    )
