"""The convolutional LSTM recurrence as pure tensor functions, in Keras's weight layout.

A ConvLSTM is an LSTM whose matrix products are convolutions: at each step
`z = conv(x_t, kernel) + bias + conv(h, recurrent_kernel)`, split into the gates
`i, f, c, o` along the channel axis. The input convolution has the layer's
`strides`, `padding` and `dilation_rate`; the recurrent one (Keras's rule)
always has stride 1, no dilation and `"same"` padding, so the states keep the
spatial shape of the input convolution's output.

`conv_lstm` computes the input convolution of every timestep in one batched
call (time folded into the batch) and then scans a step that only runs the
recurrent convolution. It works channels-first inside (PyTorch's layout):
a `channels_last` input is copied once into it and the results are returned as
`channels_last` views, so every per-step convolution and gate slice reads
contiguous memory.

Weights have Keras's shapes: `kernel (*kernel_size, channels, 4 * filters)`,
`recurrent_kernel (*kernel_size, filters, 4 * filters)`, `bias (4 * filters,)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch
import torch.nn.functional as F

from birnn.ops.conv_padding import same_padding
from birnn.ops.recurrent import scan

Activation = Callable[[torch.Tensor], torch.Tensor]

__all__ = ["conv_lstm", "torch_conv_weight"]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def torch_conv_weight(kernel: torch.Tensor) -> torch.Tensor:
    """A Keras convolution kernel `(*kernel_size, in, out)` as PyTorch's `(out, in, *kernel_size)`.

    A view: contiguous when the kernel is stored in PyTorch's layout (see
    `birnn.layers.rnn.conv_lstm`).

    Examples:

    >>> torch_conv_weight(torch.zeros(3, 5, 2, 8)).shape
    torch.Size([8, 2, 3, 5])
    """
    rank = kernel.dim() - 2
    return kernel.permute(rank + 1, rank, *range(rank))


class _Conv(Protocol):
    def __call__(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor: ...


def _convolution(
    weight: torch.Tensor,
    spatial: Sequence[int],
    strides: Sequence[int],
    padding: str,
    dilation: Sequence[int],
    groups: int = 1,
) -> _Conv:
    """`(x, bias) -> conv(x, weight) + bias` on channels-first `x` of spatial shape `spatial`.

    Keras's padding: symmetric padding goes to the convolution itself; an uneven `"same"`
    padding is added with `F.pad` first. With `groups=4`, each gate's block of
    output channels reads its own block of input channels.
    """
    rank = len(spatial)
    conv = _CONV[rank]
    kernel_size = weight.shape[2:]
    pads = [(0, 0)] * rank
    if padding == "same":
        pads = [
            same_padding(n, k, s, d) for n, k, s, d in zip(spatial, kernel_size, strides, dilation)
        ]
    symmetric = all(before == after for before, after in pads)
    stride, dilation = tuple(strides), tuple(dilation)
    if symmetric:
        inner = tuple(before for before, _ in pads)

        def symmetric_conv(x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
            return conv(x, weight, bias, stride, inner, dilation, groups)

        return symmetric_conv
    # `F.pad` lists the last axis first.
    flat_pads = tuple(p for pair in reversed(pads) for p in pair)

    def padded_conv(x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        return conv(F.pad(x, flat_pads), weight, bias, stride, 0, dilation, groups)

    return padded_conv


def _channels_first(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """`(batch, *spatial, channels)` as a contiguous `(batch, channels, *spatial)`."""
    return x.movedim(-1, 1).contiguous() if channels_last else x.contiguous()


def conv_lstm(
    inputs: torch.Tensor,
    initial_h: torch.Tensor,
    initial_c: torch.Tensor,
    kernel: torch.Tensor,
    recurrent_kernel: torch.Tensor,
    bias: torch.Tensor | None,
    activation: Activation,
    recurrent_activation: Activation,
    strides: Sequence[int],
    padding: str,
    dilation_rate: Sequence[int],
    channels_last: bool = True,
    mask: torch.Tensor | None = None,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    return_all_outputs: bool = True,
    dropout_mask: torch.Tensor | None = None,
    recurrent_dropout_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """A ConvLSTM over a sequence: one batched input convolution, then the recurrent scan.

    Args:
        inputs: `(batch, time, *spatial, channels)`, or with
            `channels_last=False` `(batch, time, channels, *spatial)`; 1 to 3
            spatial axes.
        initial_h: The first memory state, `(batch, *out_spatial, filters)`
            (channels-first: `(batch, filters, *out_spatial)`).
        initial_c: The first carry state, shaped like `initial_h`.
        kernel: `(*kernel_size, channels, 4 * filters)`.
        recurrent_kernel: `(*kernel_size, filters, 4 * filters)`.
        bias: Optional `(4 * filters,)`.
        activation: Cell activation (`tanh` in Keras's default).
        recurrent_activation: Gate activation (`sigmoid` in Keras's default).
        strides: Input convolution strides, one per spatial axis.
        padding: Input convolution padding, `"valid"` or `"same"`.
        dilation_rate: Input convolution dilation, one per spatial axis.
        channels_last: The layout of inputs, states and results.
        mask: Optional boolean `(batch, time)` (see `birnn.ops.recurrent.scan`).
        go_backwards: Process the steps from last to first.
        zero_output_for_mask: Masked steps output zeros.
        return_all_outputs: If `False`, `outputs` holds only the last output.
        dropout_mask: Optional input multiplier shaped like one input step,
            `(batch, *spatial, channels)`, the same for every step and gate; or
            `(4, batch, *spatial, channels)`, one per gate `i, f, c, o` (Keras's
            ConvLSTM cell draws four).
        recurrent_dropout_mask: Optional multiplier of `h`, shaped like it, or
            four of them stacked on a leading axis, one per gate.

    Returns:
        `(last_output, outputs, [h, c])` in the layout of `inputs`; `outputs`
        is `(batch, time, ...)` in processing order.

    Examples:

    >>> import torch
    >>> h0 = torch.zeros(2, 4, 4, 3)
    >>> last, outputs, (h, c) = conv_lstm(
    ...     torch.ones(2, 5, 6, 6, 1), h0, h0, torch.ones(3, 3, 1, 12) / 10,
    ...     torch.zeros(3, 3, 3, 12), None, torch.tanh, torch.sigmoid,
    ...     strides=(1, 1), padding="valid", dilation_rate=(1, 1))
    >>> outputs.shape, c.shape
    (torch.Size([2, 5, 4, 4, 3]), torch.Size([2, 4, 4, 3]))
    """
    batch, steps = inputs.shape[0], inputs.shape[1]
    rank = inputs.dim() - 3
    groups = 1
    if dropout_mask is not None and dropout_mask.dim() == inputs.dim():
        # One mask per gate: the four masked copies side by side on the channel axis, each
        # convolved with its gate's kernel block (a convolution with 4 groups).
        groups = 4
        x = inputs.unsqueeze(0) * dropout_mask.unsqueeze(2)  # (4, batch, time, ...)
        x = x.permute(2, 1, 0, *range(3, x.dim()))  # (time, batch, 4, ...)
        if channels_last:
            x = x.movedim(-1, 3)
        x = x.reshape(steps * batch, -1, *x.shape[4:]).contiguous()
    else:
        if dropout_mask is not None:
            inputs = inputs * dropout_mask.unsqueeze(1)
        # Time-major and channels-first: one copy of the (usually small) input.
        x = inputs.transpose(0, 1).reshape(steps * batch, *inputs.shape[2:])
        x = _channels_first(x, channels_last)
    input_conv = _convolution(
        torch_conv_weight(kernel), x.shape[2:], strides, padding, dilation_rate, groups
    )
    projected = input_conv(x, bias)
    projected = projected.view(steps, batch, *projected.shape[1:])

    h0 = _channels_first(initial_h, channels_last)
    c0 = _channels_first(initial_c, channels_last)
    ones = (1,) * rank
    recurrent_mask = None
    recurrent_groups = 1
    if recurrent_dropout_mask is not None:
        if recurrent_dropout_mask.dim() == initial_h.dim() + 1:  # one mask per gate
            recurrent_groups = 4
            masks = (
                recurrent_dropout_mask.movedim(-1, 2) if channels_last else recurrent_dropout_mask
            )
            recurrent_mask = masks.transpose(0, 1).contiguous()  # (batch, 4, filters, ...)
        else:
            recurrent_mask = _channels_first(recurrent_dropout_mask, channels_last)
    recurrent_conv = _convolution(
        torch_conv_weight(recurrent_kernel), h0.shape[2:], ones, "same", ones, recurrent_groups
    )

    def step(x_proj: torch.Tensor, states: list) -> tuple:
        h, c = states
        if recurrent_groups == 4:
            h = (h.unsqueeze(1) * recurrent_mask).flatten(1, 2)
        elif recurrent_mask is not None:
            h = h * recurrent_mask
        # `chunk` rather than indexing: its backward is one concatenation, where each
        # indexed gate's backward would zero-fill a gradient the size of all four.
        i, f, g, o = (x_proj + recurrent_conv(h)).chunk(4, 1)
        c = recurrent_activation(f) * c + recurrent_activation(i) * activation(g)
        h = recurrent_activation(o) * activation(c)
        return h, [h, c]

    last, outputs, (h, c) = scan(
        step,
        projected,
        [h0, c0],
        mask,
        go_backwards,
        zero_output_for_mask,
        return_all_outputs,
        time_major=True,
    )
    if channels_last:
        last, outputs, h, c = (
            _channels_last(t, 1 if t.dim() == rank + 2 else 2) for t in (last, outputs, h, c)
        )
    return last, outputs, [h, c]


class _ChannelsFirstGrad(torch.autograd.Function):
    """Identity whose backward hands on a contiguous gradient.

    The results leave `conv_lstm` as channels-last views of channels-first
    tensors, so their gradients arrive channels-last; left so, every step's
    gate arithmetic and recurrent-convolution backward would mix layouts (and
    the convolution would copy its gradient). One copy of the whole sequence's
    gradient here keeps the backward scan in contiguous memory.
    """

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


def _channels_last(t: torch.Tensor, channel_axis: int) -> torch.Tensor:
    """A channels-first result as a channels-last view, its gradient made channels-first."""
    if t.requires_grad and not torch.compiler.is_exporting():
        t = _ChannelsFirstGrad.apply(t)
    return t.movedim(channel_axis, -1)
