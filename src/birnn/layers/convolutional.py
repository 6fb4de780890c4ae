"""Convolution layers: `Conv1D`, `Conv2D` (on `torch.nn.functional.conv1d`/`conv2d`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from birnn import activations, constraints, initializers, regularizers
from birnn.layers._arguments import int_tuple, padding_mode, standardize_data_format
from birnn.layers.arguments import get_argument
from birnn.layers.core import _check_positive_int
from birnn.layers.input_spec import InputSpec
from birnn.layers.layer import Layer
from birnn.ops import conv as conv_ops


class BaseConv(Layer):
    """What `Conv1D` and `Conv2D` share; `rank` is the number of spatial axes."""

    rank = 1

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: int | Sequence[int] = 1,
        groups: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        layer = type(self).__name__
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        rank = self.rank
        self.filters = _check_positive_int(layer, "filters", filters)
        self.kernel_size = int_tuple(layer, "kernel_size", kernel_size, rank)
        self.strides = int_tuple(layer, "strides", strides, rank)
        self.dilation_rate = int_tuple(layer, "dilation_rate", dilation_rate, rank)
        modes = ("valid", "same", "causal") if rank == 1 else ("valid", "same")
        self.padding = padding_mode(layer, padding, modes)
        self.data_format = standardize_data_format(layer, data_format)
        self.groups = _check_positive_int(layer, "groups", groups)
        if self.filters % self.groups:
            raise ValueError(
                f"{layer}: the number of filters must be divisible by the number of groups. "
                f"Received: groups={groups}, filters={filters}"
            )
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"{layer}: `strides > 1` is not supported together with `dilation_rate > 1`. "
                f"Received: strides={self.strides}, dilation_rate={self.dilation_rate}"
            )
        self.activation = get_argument(layer, "activation", activations.get, activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = get_argument(
            layer, "kernel_initializer", initializers.get, kernel_initializer
        )
        self.bias_initializer = get_argument(
            layer, "bias_initializer", initializers.get, bias_initializer
        )
        self.kernel_regularizer = get_argument(
            layer, "kernel_regularizer", regularizers.get, kernel_regularizer
        )
        self.bias_regularizer = get_argument(
            layer, "bias_regularizer", regularizers.get, bias_regularizer
        )
        self.kernel_constraint = get_argument(
            layer, "kernel_constraint", constraints.get, kernel_constraint
        )
        self.bias_constraint = get_argument(
            layer, "bias_constraint", constraints.get, bias_constraint
        )
        self.input_spec = InputSpec(min_ndim=rank + 2)

    @property
    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else 1

    def build(self, input_shape: Sequence[int | None]) -> None:
        layer = type(self).__name__
        channels = input_shape[self._channel_axis]
        if channels is None:
            raise ValueError(
                f"Layer '{self.name}' ({layer}): the channel axis of the input must be known. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if channels % self.groups:
            raise ValueError(
                f"Layer '{self.name}' ({layer}): the number of input channels must be "
                f"divisible by the number of groups. Received: groups={self.groups}, "
                f"input_shape={tuple(input_shape)}"
            )
        self.kernel = self.add_weight(
            shape=(*self.kernel_size, channels // self.groups, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
            name="kernel",
        )
        self.bias: torch.nn.Parameter | None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.filters,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
                name="bias",
            )
        else:
            self.bias = None
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={self._channel_axis: channels})
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        if not inputs.is_floating_point():
            inputs = inputs.to(self.kernel.dtype)
        out = conv_ops.conv(
            inputs,
            self.kernel,
            self.bias,
            strides=self.strides,
            padding=self.padding,
            dilation=self.dilation_rate,
            groups=self.groups,
            channels_last=self.data_format == "channels_last",
        )
        return self.activation(out)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if self.data_format == "channels_last":
            spatial = input_shape[1:-1]
        else:
            spatial = input_shape[2:]
        out = tuple(
            conv_ops.conv_output_length(n, k, s, self.padding, d)
            for n, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate)
        )
        if self.data_format == "channels_last":
            return (input_shape[0], *out, self.filters)
        return (input_shape[0], self.filters, *out)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
        }


class Conv1D(BaseConv):
    """1-D convolution over the steps of a sequence (e.g. text or time series).

    Computes a cross-correlation of the input with a kernel of shape
    `(kernel_size, input_channels // groups, filters)`, adds the bias and applies
    the activation.

    Args:
        filters: Number of output channels.
        kernel_size: Length of the convolution window (an integer or a 1-tuple).
        strides: Stride of the window.
        padding: `"valid"` (no padding), `"same"` (output length
            `ceil(steps / strides)`, extra padding at the end) or `"causal"`
            (left padding only: output step `t` sees inputs up to `t`).
        data_format: `"channels_last"` (default; `(batch, steps, channels)`) or
            `"channels_first"` (`(batch, channels, steps)`).
        dilation_rate: Spacing of the kernel taps (cannot exceed 1 with `strides > 1`).
        groups: Number of channel groups, each convolved with its own filters.
        activation: Activation function; `None` means linear.
        use_bias: Whether the layer uses a bias vector.
        kernel_initializer, bias_initializer: Initializers of the weights.
        kernel_regularizer, bias_regularizer, activity_regularizer: Regularizers.
        kernel_constraint, bias_constraint: Constraints of the weights.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: 3-D tensor. A mask is not propagated (as in Keras).

    Examples:

    >>> import torch
    >>> layer = Conv1D(4, 3, padding="causal")
    >>> layer(torch.ones(2, 10, 5)).shape
    torch.Size([2, 10, 4])
    >>> [w.shape for w in layer.get_weights()]
    [(3, 5, 4), (4,)]
    """

    rank = 1


class Conv2D(BaseConv):
    """2-D convolution over images (e.g. the feature extractor of a CRNN).

    The kernel has shape `(kernel_h, kernel_w, input_channels // groups, filters)`.

    Args:
        filters: Number of output channels.
        kernel_size: Height and width of the window (an integer or a 2-tuple).
        strides: Strides along height and width.
        padding: `"valid"` or `"same"` (output `ceil(size / strides)` per axis,
            extra padding at the end).
        data_format: `"channels_last"` (default; `(batch, rows, cols, channels)`)
            or `"channels_first"` (`(batch, channels, rows, cols)`).
        dilation_rate: Spacing of the kernel taps (cannot exceed 1 with `strides > 1`).
        groups: Number of channel groups.
        activation: Activation function; `None` means linear.
        use_bias: Whether the layer uses a bias vector.
        kernel_initializer, bias_initializer: Initializers of the weights.
        kernel_regularizer, bias_regularizer, activity_regularizer: Regularizers.
        kernel_constraint, bias_constraint: Constraints of the weights.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: 4-D tensor. A mask is not propagated (as in Keras).

    Examples:

    >>> import torch
    >>> layer = Conv2D(8, 3, strides=2, padding="same")
    >>> layer(torch.ones(1, 32, 100, 1)).shape
    torch.Size([1, 16, 50, 8])
    """

    rank = 2
