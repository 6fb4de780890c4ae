"""Convolution and pooling on torch's kernels, with TensorFlow-style padding.

`"valid"` padding adds nothing; `"same"` pads so that the output has
`ceil(size / stride)` positions, splitting the padding with the extra element
at the end (TensorFlow's rule, which Keras follows on every backend); `"causal"`
(1-D only) pads `(kernel - 1) * dilation` at the start. Inputs are
channels-first `(batch, channels, *spatial)` or channels-last
`(batch, *spatial, channels)`; a channels-last input is handed to torch as a
permuted view: 2-D convolutions run on it in torch's channels-last memory format
(their output is a contiguous channels-last tensor), 1-D ones let torch lay it out.
Kernels are in Keras's layout, `(*kernel_size, in_channels // groups, filters)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "average_pool",
    "conv",
    "conv_output_length",
    "max_pool",
    "padding_amounts",
]


def conv_output_length(
    size: int | None, kernel: int, stride: int, padding: str, dilation: int = 1
) -> int | None:
    """Output length of one spatial axis (`None` stays `None`).

    Examples:

    >>> conv_output_length(10, 3, 2, "same"), conv_output_length(10, 3, 2, "valid")
    (5, 4)
    """
    if size is None:
        return None
    if padding in ("same", "causal"):
        return (size + stride - 1) // stride
    span = (kernel - 1) * dilation + 1
    return (size - span) // stride + 1 if size >= span else 0


def padding_amounts(
    size: int, kernel: int, stride: int, padding: str, dilation: int = 1
) -> tuple[int, int]:
    """`(before, after)` padding of one spatial axis.

    Examples:

    >>> padding_amounts(5, 3, 2, "same"), padding_amounts(5, 2, 1, "same")
    ((1, 1), (0, 1))
    >>> padding_amounts(5, 3, 1, "causal", dilation=2)
    (4, 0)
    """
    span = (kernel - 1) * dilation + 1
    if padding == "valid":
        return (0, 0)
    if padding == "causal":
        return (span - 1, 0)
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + span - size, 0)
    return (total // 2, total - total // 2)


def _channels_first(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.movedim(-1, 1) if channels_last else x


def _restore(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.movedim(1, -1) if channels_last else x


def _pads(
    x: torch.Tensor,
    kernel: Sequence[int],
    strides: Sequence[int],
    padding: str,
    dilation: Sequence[int],
) -> list[tuple[int, int]]:
    """Padding of each spatial axis of a channels-first `x`."""
    spatial = x.shape[2:]
    return [
        padding_amounts(n, k, s, padding, d)
        for n, k, s, d in zip(spatial, kernel, strides, dilation)
    ]


def _pad_arg(pads: list[tuple[int, int]]) -> list[int]:
    """`F.pad`'s argument (last axis first) for per-axis `(before, after)` pads."""
    out: list[int] = []
    for before, after in reversed(pads):
        out += [before, after]
    return out


def conv(
    x: torch.Tensor,
    kernel: torch.Tensor,
    bias: torch.Tensor | None = None,
    strides: Sequence[int] = (1,),
    padding: str = "valid",
    dilation: Sequence[int] = (1,),
    groups: int = 1,
    channels_last: bool = True,
) -> torch.Tensor:
    """1-D or 2-D convolution (cross-correlation, as Keras) with a Keras-layout kernel.

    Args:
        x: `(batch, *spatial, channels)` if `channels_last`, else `(batch, channels, *spatial)`.
        kernel: `(*kernel_size, channels // groups, filters)`.
        bias: Optional `(filters,)`.
        strides, dilation: One integer per spatial axis.
        padding: `"valid"`, `"same"` or `"causal"` (1-D).
        groups: Number of channel groups.
        channels_last: Layout of `x` and of the result.

    Examples:

    >>> x = torch.arange(5.0).reshape(1, 5, 1)
    >>> conv(x, torch.ones(2, 1, 1), padding="causal").flatten().tolist()
    [0.0, 1.0, 3.0, 5.0, 7.0]
    """
    rank = kernel.ndim - 2
    weight = kernel.permute(rank + 1, rank, *range(rank))
    y = _channels_first(x, channels_last)
    pads = _pads(y, kernel.shape[:rank], strides, padding, dilation)
    if all(before == after for before, after in pads):
        torch_padding: Sequence[int] = [before for before, _ in pads]
    else:
        y = F.pad(y, _pad_arg(pads))
        torch_padding = [0] * rank
    fn = F.conv1d if rank == 1 else F.conv2d
    out = fn(y, weight, bias, tuple(strides), tuple(torch_padding), tuple(dilation), groups)
    return _restore(out, channels_last)


def max_pool(
    x: torch.Tensor,
    pool_size: Sequence[int],
    strides: Sequence[int],
    padding: str = "valid",
    channels_last: bool = True,
) -> torch.Tensor:
    """Max pooling over the 1 or 2 spatial axes; `"same"` padding never wins a maximum.

    Examples:

    >>> x = torch.tensor([[[1.0], [5.0], [2.0]]])
    >>> max_pool(x, (2,), (2,), "same").flatten().tolist()
    [5.0, 2.0]
    """
    rank = len(pool_size)
    y = _channels_first(x, channels_last)
    pads = _pads(y, pool_size, strides, padding, [1] * rank)
    if any(before or after for before, after in pads):
        if all(before == after and 2 * before <= k for (before, after), k in zip(pads, pool_size)):
            torch_padding = [before for before, _ in pads]
        else:
            y = F.pad(y, _pad_arg(pads), value=-math.inf)
            torch_padding = [0] * rank
    else:
        torch_padding = [0] * rank
    fn = F.max_pool1d if rank == 1 else F.max_pool2d
    out = fn(y, tuple(pool_size), tuple(strides), tuple(torch_padding))
    return _restore(out, channels_last)


def average_pool(
    x: torch.Tensor,
    pool_size: Sequence[int],
    strides: Sequence[int],
    padding: str = "valid",
    channels_last: bool = True,
) -> torch.Tensor:
    """Average pooling over the 1 or 2 spatial axes; `"same"` padding is left out of each mean.

    Examples:

    >>> x = torch.arange(5.0).reshape(1, 5, 1)
    >>> average_pool(x, (3,), (2,), "same").flatten().tolist()
    [0.5, 2.0, 3.5]
    """
    rank = len(pool_size)
    y = _channels_first(x, channels_last)
    pads = _pads(y, pool_size, strides, padding, [1] * rank)
    fn = F.avg_pool1d if rank == 1 else F.avg_pool2d
    if all(before == after and 2 * before <= k for (before, after), k in zip(pads, pool_size)):
        out = fn(
            y,
            tuple(pool_size),
            tuple(strides),
            tuple(before for before, _ in pads),
            count_include_pad=False,
        )
    else:
        summed = fn(F.pad(y, _pad_arg(pads)), tuple(pool_size), tuple(strides))
        ones = torch.ones((1, 1, *y.shape[2:]), dtype=y.dtype, device=y.device)
        counts = fn(F.pad(ones, _pad_arg(pads)), tuple(pool_size), tuple(strides))
        out = summed / counts
    return _restore(out, channels_last)
