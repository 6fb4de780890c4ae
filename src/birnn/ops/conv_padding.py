"""Keras's convolution padding arithmetic, as pure integer functions.

Keras's two paddings, along each spatial axis of length `n`, for a kernel of
size `k`, stride `s` and dilation `d` (so an effective kernel size
`e = d * (k - 1) + 1`):

- `"valid"`: no padding; the window must fit, so the output has
  `floor((n - e) / s) + 1` positions (none if `n < e`).
- `"same"`: the output has `ceil(n / s)` positions. The input is padded with
  `total = max((out - 1) * s + e - n, 0)` zeros, `total // 2` before and the
  rest after: an odd total puts the extra zero after (TensorFlow's rule, which
  Keras follows on every backend).

PyTorch's convolutions take one symmetric padding per axis, so an odd total
needs an explicit pad first (`same_padding` says how much on each side).
"""

from __future__ import annotations

__all__ = ["conv_output_length", "same_padding"]


def _effective_kernel(kernel_size: int, dilation: int) -> int:
    return dilation * (kernel_size - 1) + 1


def conv_output_length(
    length: int | None,
    kernel_size: int,
    stride: int = 1,
    padding: str = "valid",
    dilation: int = 1,
) -> int | None:
    """The output length of a convolution along one axis (`None` stays `None`).

    Args:
        length: The input length along the axis, or `None` if unknown.
        kernel_size: The kernel size along the axis.
        stride: The stride along the axis.
        padding: `"valid"` or `"same"`.
        dilation: The dilation rate along the axis.

    Returns:
        The output length, `0` when a `"valid"` window does not fit.

    Examples:

    >>> conv_output_length(7, 3), conv_output_length(7, 3, padding="same")
    (5, 7)
    >>> conv_output_length(7, 2, stride=3), conv_output_length(7, 2, 3, "same")
    (2, 3)
    >>> conv_output_length(5, 3, dilation=2), conv_output_length(None, 3)
    (1, None)
    """
    if length is None:
        return None
    if padding == "same":
        return -(-length // stride)
    effective = _effective_kernel(kernel_size, dilation)
    return max((length - effective) // stride + 1, 0)


def same_padding(length: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> tuple:
    """`(before, after)` zeros that `"same"` padding adds along one axis.

    Examples:

    >>> same_padding(7, 3), same_padding(7, 2), same_padding(7, 4, stride=2)
    ((1, 1), (0, 1), (1, 2))
    >>> same_padding(5, 3, dilation=2)
    (2, 2)
    """
    output = -(-length // stride)
    total = max((output - 1) * stride + _effective_kernel(kernel_size, dilation) - length, 0)
    return total // 2, total - total // 2
