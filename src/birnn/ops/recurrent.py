"""Recurrent computations as pure tensor functions: a generic scan and one per cell type.

Nothing here knows about layers. `scan` runs any step function over the time axis
with Keras's masking rule; `simple_rnn`, `lstm` and `gru` compute the input
projection of every timestep in one matrix product and then scan a small step
function that only adds the recurrent projection.

Conventions shared by every function:

- `inputs` are batch-major `(batch, time, ...)`; `mask` is `(batch, time)` boolean,
  `True` for steps to process.
- The result is `(last_output, outputs, final_states)`. `outputs` is
  `(batch, time, ...)` in *processing* order (reversed time when
  `go_backwards=True`), as Keras returns it; with `return_all_outputs=False` it is
  only the last output, `(batch, 1, ...)`.
- The values at masked steps never enter the arithmetic (they are zeroed first),
  so results and gradients do not depend on them, even when they are NaN or
  infinite; the gradient with respect to a masked step is zero.
- At a masked step the states are kept and the output is the previous output
  (zeros before the first processed step), or zeros with
  `zero_output_for_mask=True`. `last_output` is the output at the last processed
  position, after that rule.
- Dropout masks are fixed over time: an input mask is `(batch, features)`, or
  `(gates, batch, features)` for a separate mask per gate; a recurrent mask is
  `(batch, units)` or `(gates, batch, units)`. Their entries are the scaled
  keep-multipliers (`0` or `1 / (1 - rate)`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from birnn.ops.masks import zero_masked_steps

StepFn = Callable[[torch.Tensor, list], tuple]
Activation = Callable[[torch.Tensor], torch.Tensor]

__all__ = ["gru", "input_projection", "lstm", "scan", "simple_rnn"]


def scan(
    step_fn: StepFn,
    inputs: torch.Tensor,
    initial_states: Sequence[torch.Tensor],
    mask: torch.Tensor | None = None,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    return_all_outputs: bool = True,
    time_major: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Runs `step_fn` over the time axis of `inputs` with Keras's masking rule.

    Args:
        step_fn: `step_fn(input_t, states) -> (output_t, new_states)`, where
            `states` is a list of tensors and `new_states` a sequence of the same
            length and shapes.
        inputs: Tensor `(batch, time, ...)`, or `(time, batch, ...)` with
            `time_major=True`.
        initial_states: The states before the first step, each `(batch, ...)`.
        mask: Optional boolean `(batch, time)`: `False` steps keep the states and
            repeat the previous output (zeros before the first unmasked step).
        go_backwards: Process the steps from last to first. The outputs stay in
            processing order (reversed time).
        zero_output_for_mask: Masked steps output zeros instead.
        return_all_outputs: If `False`, `outputs` holds only the last output.
        time_major: Whether `inputs` is `(time, batch, ...)`.

    Returns:
        `(last_output, outputs, final_states)`, `outputs` batch-major.

    Examples:

    >>> import torch
    >>> step = lambda x, states: (x + states[0], [x + states[0]])
    >>> x = torch.ones(1, 4, 1)
    >>> mask = torch.tensor([[True, False, True, True]])
    >>> last, outputs, states = scan(step, x, [torch.zeros(1, 1)], mask=mask)
    >>> outputs[0, :, 0].tolist(), states[0].item()
    ([1.0, 1.0, 2.0, 3.0], 3.0)
    """
    if mask is not None:
        inputs = zero_masked_steps(inputs, mask, time_major)
    return _scan(
        step_fn,
        inputs,
        initial_states,
        mask,
        go_backwards,
        zero_output_for_mask,
        return_all_outputs,
        time_major,
    )


def _scan(
    step_fn: StepFn,
    inputs: torch.Tensor,
    initial_states: Sequence[torch.Tensor],
    mask: torch.Tensor | None,
    go_backwards: bool,
    zero_output_for_mask: bool,
    return_all_outputs: bool,
    time_major: bool,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """`scan` over inputs whose masked steps are already zeros: a Python loop, or under
    `torch.export` one loop operator whose number of steps stays symbolic."""
    run = _exportable_scan if torch.compiler.is_exporting() else _loop_scan
    return run(
        step_fn,
        inputs,
        initial_states,
        mask,
        go_backwards,
        zero_output_for_mask,
        return_all_outputs,
        time_major,
    )


def _loop_scan(
    step_fn: StepFn,
    inputs: torch.Tensor,
    initial_states: Sequence[torch.Tensor],
    mask: torch.Tensor | None,
    go_backwards: bool,
    zero_output_for_mask: bool,
    return_all_outputs: bool,
    time_major: bool,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    time_axis = 0 if time_major else 1
    steps = inputs.unbind(time_axis)
    num_steps = len(steps)
    if num_steps == 0:
        raise ValueError(
            "scan: `inputs` must have at least one timestep. "
            f"Received shape {tuple(inputs.shape)}."
        )
    order = range(num_steps - 1, -1, -1) if go_backwards else range(num_steps)
    states = list(initial_states)
    outputs: list[torch.Tensor] = []
    if mask is None:
        for t in order:
            output, states = step_fn(steps[t], states)
            states = list(states)
            if return_all_outputs:
                outputs.append(output)
        last = output
    else:
        mask_steps = mask.to(torch.bool).unbind(1)
        previous: torch.Tensor | None = None
        zeros: torch.Tensor | None = None
        for t in order:
            output, new_states = step_fn(steps[t], states)
            keep = mask_steps[t]
            if zeros is None:
                zeros = torch.zeros_like(output)
                previous = zeros
            fallback = zeros if zero_output_for_mask or previous is None else previous
            output = torch.where(_expand(keep, output), output, fallback)
            states = [
                torch.where(_expand(keep, new), new, old) for new, old in zip(new_states, states)
            ]
            previous = output
            if return_all_outputs:
                outputs.append(output)
        last = previous
    stacked = torch.stack(outputs, 1) if return_all_outputs else last.unsqueeze(1)
    return last, stacked, states


def _exportable_scan(
    step_fn: StepFn,
    inputs: torch.Tensor,
    initial_states: Sequence[torch.Tensor],
    mask: torch.Tensor | None,
    go_backwards: bool,
    zero_output_for_mask: bool,
    return_all_outputs: bool,
    time_major: bool,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """`scan` as one `torch.export`-able loop whose number of steps stays symbolic.

    A Python loop over the steps would be unrolled into the exported program,
    fixing its sequence length; PyTorch's `scan` operator keeps the time axis
    dynamic. Same arguments and results as `scan`.
    """
    from torch._higher_order_ops.scan import scan as torch_scan

    steps = inputs if time_major else inputs.transpose(0, 1)
    if steps.shape[0] == 0:
        raise ValueError(
            "scan: `inputs` must have at least one timestep. "
            f"Received shape {tuple(inputs.shape)}."
        )
    keep = None if mask is None else mask.to(torch.bool).transpose(0, 1)
    if go_backwards:
        steps = steps.flip(0)
        keep = None if keep is None else keep.flip(0)
    # The output's shape, for the zeros a masked step may output before any step ran;
    # only its shape is read, so the probe step is dead code in the program.
    probe, _ = step_fn(steps[0], list(initial_states))
    zeros = torch.zeros(probe.shape, dtype=probe.dtype, device=probe.device)

    def combine(carry: tuple, xs: tuple) -> tuple:
        states, previous = list(carry[0]), carry[1]
        output, new_states = step_fn(xs[0], states)
        new_states = list(new_states)
        if keep is not None:
            step_keep = xs[1]
            fallback = torch.zeros_like(output) if zero_output_for_mask else previous
            output = torch.where(_expand(step_keep, output), output, fallback)
            new_states = [
                torch.where(_expand(step_keep, new), new, old)
                for new, old in zip(new_states, states)
            ]
        return (new_states, output.clone()), output.clone()

    xs = (steps,) if keep is None else (steps, keep)
    (states, last), outputs = torch_scan(combine, (list(initial_states), zeros), xs)
    stacked = outputs.transpose(0, 1) if return_all_outputs else last.unsqueeze(1)
    return last, stacked, list(states)


def _expand(keep: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A `(batch,)` mask viewed to broadcast against `like`."""
    return keep.view(keep.shape[0], *([1] * (like.dim() - 1)))


def input_projection(
    inputs: torch.Tensor,
    kernel: torch.Tensor,
    bias: torch.Tensor | None = None,
    dropout_mask: torch.Tensor | None = None,
    time_major_output: bool = False,
) -> torch.Tensor:
    """`inputs @ kernel + bias` for every timestep at once, after input dropout.

    Args:
        inputs: `(batch, time, features)` or a single step `(batch, features)`.
        kernel: `(features, gates * units)`.
        bias: Optional `(gates * units,)`.
        dropout_mask: Optional `(batch, features)` multiplier shared by all gates,
            or `(gates, batch, features)` with one mask per gate (Keras's
            `implementation=1`), the gates being the column blocks of `kernel`.
        time_major_output: Return `(time, batch, gates * units)` (contiguous, for
            fast per-step slicing) instead of batch-major.

    Examples:

    >>> import torch
    >>> input_projection(torch.ones(2, 3, 4), torch.ones(4, 6)).shape
    torch.Size([2, 3, 6])
    """
    sequence = inputs.dim() == 3
    # A contiguous time-major copy of the (small) inputs makes the product one plain GEMM
    # writing the (large) time-major result directly.
    x = inputs.transpose(0, 1).contiguous() if sequence and time_major_output else inputs
    if dropout_mask is None or dropout_mask.dim() == 2:
        if dropout_mask is not None:
            x = x * (
                dropout_mask.unsqueeze(-2) if sequence and not time_major_output else dropout_mask
            )
        flat = x.reshape(-1, x.shape[-1])
        if bias is None:
            return torch.mm(flat, kernel).reshape(*x.shape[:-1], kernel.shape[1])
        return torch.addmm(bias, flat, kernel).reshape(*x.shape[:-1], kernel.shape[1])
    else:
        gates = dropout_mask.shape[0]
        features, width = kernel.shape
        mask = dropout_mask
        if sequence:  # broadcast the (gates, batch, features) masks over time
            mask = mask.unsqueeze(1 if time_major_output else 2)
        lead = x.shape[:-1]
        per_gate = (x.unsqueeze(0) * mask).reshape(gates, -1, features)
        kernels = kernel.reshape(features, gates, width // gates).transpose(0, 1)
        projected = torch.bmm(per_gate, kernels).transpose(0, 1).reshape(*lead, width)
    if bias is not None:
        projected = projected + bias
    return projected


def _recurrent(
    h: torch.Tensor,
    recurrent_kernel: torch.Tensor,
    mask: torch.Tensor | None,
    add: torch.Tensor | None = None,
) -> torch.Tensor:
    """`add + h @ recurrent_kernel`, with one dropout mask per gate block when given."""
    if mask is None or mask.dim() == 2:
        h = h if mask is None else h * mask
        if add is None:
            return torch.mm(h, recurrent_kernel)
        return torch.addmm(add, h, recurrent_kernel)
    gates = mask.shape[0]
    units, width = recurrent_kernel.shape
    kernels = recurrent_kernel.reshape(units, gates, width // gates).transpose(0, 1)
    per_gate = torch.bmm(h.unsqueeze(0) * mask, kernels)
    product = per_gate.transpose(0, 1).reshape(h.shape[0], width)
    return product if add is None else add + product


def simple_rnn_step(
    x_proj: torch.Tensor,
    h: torch.Tensor,
    recurrent_kernel: torch.Tensor,
    activation: Activation | None,
    recurrent_dropout_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """One SimpleRNN step: `activation(x_proj + h @ recurrent_kernel)`."""
    output = _recurrent(h, recurrent_kernel, recurrent_dropout_mask, add=x_proj)
    return activation(output) if activation is not None else output


def lstm_step(
    x_proj: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    recurrent_kernel: torch.Tensor,
    activation: Activation,
    recurrent_activation: Activation,
    recurrent_dropout_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step (gates `i, f, c, o`); `x_proj` already holds the input bias."""
    z = _recurrent(h, recurrent_kernel, recurrent_dropout_mask, add=x_proj)
    gates = z.reshape(z.shape[0], 4, -1)
    input_forget = recurrent_activation(gates[:, :2])
    c = input_forget[:, 1] * c + input_forget[:, 0] * activation(gates[:, 2])
    h = recurrent_activation(gates[:, 3]) * activation(c)
    return h, c


def gru_step(
    x_proj: torch.Tensor,
    h: torch.Tensor,
    recurrent_kernel: torch.Tensor,
    recurrent_bias: torch.Tensor | None,
    activation: Activation,
    recurrent_activation: Activation,
    reset_after: bool = True,
    recurrent_dropout_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """One GRU step (gates `z, r, h`); `x_proj` already holds the input bias.

    With `reset_after=True` the reset gate scales `h @ U_h + b_h` (cuDNN's
    formulation, `recurrent_bias` used); with `False` it scales `h` before the
    product.
    """
    units = h.shape[-1]
    x = x_proj.reshape(x_proj.shape[0], 3, units)
    mask = recurrent_dropout_mask
    if reset_after:
        inner = _recurrent(h, recurrent_kernel, mask, add=recurrent_bias)
        inner = inner.reshape(h.shape[0], 3, units)
        update_reset = recurrent_activation(x[:, :2] + inner[:, :2])
        candidate = activation(x[:, 2] + update_reset[:, 1] * inner[:, 2])
    else:
        gate_mask = mask if mask is None or mask.dim() == 2 else mask[:2]
        inner = _recurrent(h, recurrent_kernel[:, : 2 * units], gate_mask)
        update_reset = recurrent_activation(x[:, :2] + inner.reshape(h.shape[0], 2, units))
        h_candidate = h if mask is None else h * (mask if mask.dim() == 2 else mask[2])
        candidate = activation(
            x[:, 2]
            + torch.matmul(update_reset[:, 1] * h_candidate, recurrent_kernel[:, 2 * units :])
        )
    z = update_reset[:, 0]
    return z * h + (1 - z) * candidate


def simple_rnn(
    inputs: torch.Tensor,
    initial_state: torch.Tensor,
    kernel: torch.Tensor,
    recurrent_kernel: torch.Tensor,
    bias: torch.Tensor | None,
    activation: Activation | None,
    mask: torch.Tensor | None = None,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    return_all_outputs: bool = True,
    dropout_mask: torch.Tensor | None = None,
    recurrent_dropout_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """A SimpleRNN over a sequence: one input matmul, then the recurrent scan.

    Weights have Keras's shapes: `kernel (features, units)`, `recurrent_kernel
    (units, units)`, `bias (units,)`. Returns `(last_output, outputs, [h])`.

    Examples:

    >>> import torch
    >>> last, outputs, (h,) = simple_rnn(
    ...     torch.ones(2, 5, 3), torch.zeros(2, 4), torch.ones(3, 4) / 10,
    ...     torch.eye(4) / 2, None, torch.tanh)
    >>> outputs.shape, torch.equal(last, h)
    (torch.Size([2, 5, 4]), True)
    """
    if mask is not None:
        inputs = zero_masked_steps(inputs, mask)
    projected = input_projection(inputs, kernel, bias, dropout_mask, time_major_output=True)

    def step(x_proj: torch.Tensor, states: list) -> tuple:
        h = simple_rnn_step(
            x_proj, states[0], recurrent_kernel, activation, recurrent_dropout_mask
        )
        return h, [h]

    return _scan(
        step,
        projected,
        [initial_state],
        mask,
        go_backwards,
        zero_output_for_mask,
        return_all_outputs,
        time_major=True,
    )


def lstm(
    inputs: torch.Tensor,
    initial_h: torch.Tensor,
    initial_c: torch.Tensor,
    kernel: torch.Tensor,
    recurrent_kernel: torch.Tensor,
    bias: torch.Tensor | None,
    activation: Activation,
    recurrent_activation: Activation,
    mask: torch.Tensor | None = None,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    return_all_outputs: bool = True,
    dropout_mask: torch.Tensor | None = None,
    recurrent_dropout_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """An LSTM over a sequence: one input matmul, then the recurrent scan.

    Weights have Keras's shapes and gate order `i, f, c, o`: `kernel (features,
    4 * units)`, `recurrent_kernel (units, 4 * units)`, `bias (4 * units,)`.
    Returns `(last_output, outputs, [h, c])`.

    Examples:

    >>> import torch
    >>> zeros = torch.zeros(2, 4)
    >>> last, outputs, (h, c) = lstm(
    ...     torch.ones(2, 5, 3), zeros, zeros, torch.ones(3, 16) / 10,
    ...     torch.zeros(4, 16), None, torch.tanh, torch.sigmoid)
    >>> outputs.shape, c.shape
    (torch.Size([2, 5, 4]), torch.Size([2, 4]))
    """
    if mask is not None:
        inputs = zero_masked_steps(inputs, mask)
    projected = input_projection(inputs, kernel, bias, dropout_mask, time_major_output=True)

    def step(x_proj: torch.Tensor, states: list) -> tuple:
        h, c = lstm_step(
            x_proj,
            states[0],
            states[1],
            recurrent_kernel,
            activation,
            recurrent_activation,
            recurrent_dropout_mask,
        )
        return h, [h, c]

    return _scan(
        step,
        projected,
        [initial_h, initial_c],
        mask,
        go_backwards,
        zero_output_for_mask,
        return_all_outputs,
        time_major=True,
    )


def gru(
    inputs: torch.Tensor,
    initial_state: torch.Tensor,
    kernel: torch.Tensor,
    recurrent_kernel: torch.Tensor,
    bias: torch.Tensor | None,
    activation: Activation,
    recurrent_activation: Activation,
    reset_after: bool = True,
    mask: torch.Tensor | None = None,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    return_all_outputs: bool = True,
    dropout_mask: torch.Tensor | None = None,
    recurrent_dropout_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """A GRU over a sequence: one input matmul, then the recurrent scan.

    Weights have Keras's shapes and gate order `z, r, h`: `kernel (features,
    3 * units)`, `recurrent_kernel (units, 3 * units)`; `bias` is `(2, 3 * units)`
    (input and recurrent biases) with `reset_after=True`, else `(3 * units,)`.
    Returns `(last_output, outputs, [h])`.

    Examples:

    >>> import torch
    >>> last, outputs, (h,) = gru(
    ...     torch.ones(2, 5, 3), torch.zeros(2, 4), torch.ones(3, 12) / 10,
    ...     torch.zeros(4, 12), torch.zeros(2, 12), torch.tanh, torch.sigmoid)
    >>> outputs.shape
    torch.Size([2, 5, 4])
    """
    input_bias = recurrent_bias = None
    if bias is not None:
        if reset_after:
            input_bias, recurrent_bias = bias[0], bias[1]
        else:
            input_bias = bias
    if mask is not None:
        inputs = zero_masked_steps(inputs, mask)
    projected = input_projection(inputs, kernel, input_bias, dropout_mask, time_major_output=True)

    def step(x_proj: torch.Tensor, states: list) -> tuple:
        h = gru_step(
            x_proj,
            states[0],
            recurrent_kernel,
            recurrent_bias,
            activation,
            recurrent_activation,
            reset_after,
            recurrent_dropout_mask,
        )
        return h, [h]

    return _scan(
        step,
        projected,
        [initial_state],
        mask,
        go_backwards,
        zero_output_for_mask,
        return_all_outputs,
        time_major=True,
    )
