"""Pooling layers: windowed (`MaxPooling1D/2D`, `AveragePooling1D/2D`) and global.

`GlobalAveragePooling1D` and `GlobalMaxPooling1D` honour a `(batch, steps)` mask:
masked steps are left out of the average or the maximum. A row whose steps are
all masked pools to zeros (Keras 3 gives NaN for the average there, and its
`GlobalMaxPooling1D` ignores masks altogether). Neither passes a mask on: the
time axis is gone. The windowed and 2-D layers, like Keras's, take no mask and
pass none on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from birnn.layers._arguments import int_tuple, padding_mode
from birnn.layers.core import _standardize_data_format
from birnn.layers.input_spec import InputSpec
from birnn.layers.layer import Layer
from birnn.ops import conv as conv_ops


class _GlobalPooling1D(Layer):
    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.data_format = _standardize_data_format(type(self).__name__, data_format)
        self.keepdims = bool(keepdims)
        self.input_spec = InputSpec(ndim=3)
        self.built = True

    @property
    def _steps_axis(self) -> int:
        return 1 if self.data_format == "channels_last" else 2

    def _expand_mask(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The `(batch, steps)` mask shaped to broadcast against the inputs."""
        expected = (inputs.shape[0], inputs.shape[self._steps_axis])
        if tuple(mask.shape) != tuple(expected):
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}): argument `mask` must have "
                f"shape (batch, steps) = {tuple(expected)} for inputs of shape "
                f"{tuple(inputs.shape)} (data_format={self.data_format!r}). "
                f"Received: mask of shape {tuple(mask.shape)}"
            )
        return mask.bool().unsqueeze(2 if self.data_format == "channels_last" else 1)

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if self.data_format == "channels_last":
            kept = input_shape[-1]
            return (input_shape[0], 1, kept) if self.keepdims else (input_shape[0], kept)
        kept = input_shape[1]
        return (input_shape[0], kept, 1) if self.keepdims else (input_shape[0], kept)

    def get_config(self) -> dict:
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling1D(_GlobalPooling1D):
    """Averages over the steps axis; with a mask, over the unmasked steps only.

    Args:
        data_format: `"channels_last"` (default; inputs `(batch, steps, features)`)
            or `"channels_first"` (inputs `(batch, features, steps)`).
        keepdims: Whether to keep the steps axis with size 1.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: 3-D tensor.
        mask: Optional boolean tensor `(batch, steps)`; `True` marks valid steps.

    Examples:

    >>> import torch
    >>> x = torch.tensor([[[1.0], [3.0], [100.0]]])
    >>> GlobalAveragePooling1D()(x, mask=torch.tensor([[True, True, False]]))
    tensor([[2.]])
    """

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        axis = self._steps_axis
        if mask is None:
            return inputs.mean(dim=axis, keepdim=self.keepdims)
        keep = self._expand_mask(inputs, mask)
        zero = torch.zeros((), dtype=inputs.dtype, device=inputs.device)
        total = torch.where(keep, inputs, zero).sum(dim=axis, keepdim=self.keepdims)
        count = keep.to(inputs.dtype).sum(dim=axis, keepdim=self.keepdims)
        return total / count.clamp(min=1)


class GlobalMaxPooling1D(_GlobalPooling1D):
    """Maximum over the steps axis; with a mask, over the unmasked steps only.

    Args:
        data_format: `"channels_last"` (default; inputs `(batch, steps, features)`)
            or `"channels_first"` (inputs `(batch, features, steps)`).
        keepdims: Whether to keep the steps axis with size 1.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: 3-D tensor.
        mask: Optional boolean tensor `(batch, steps)`; `True` marks valid steps.
            (Keras 3 ignores masks here; birnn leaves masked steps out.)

    Examples:

    >>> import torch
    >>> x = torch.tensor([[[1.0], [3.0], [100.0]]])
    >>> GlobalMaxPooling1D()(x, mask=torch.tensor([[True, True, False]]))
    tensor([[3.]])
    """

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        axis = self._steps_axis
        if mask is None:
            return inputs.amax(dim=axis, keepdim=self.keepdims)
        keep = self._expand_mask(inputs, mask)
        info = torch.finfo if inputs.is_floating_point() else torch.iinfo
        lowest = torch.full((), info(inputs.dtype).min, dtype=inputs.dtype, device=inputs.device)
        masked = torch.where(keep, inputs, lowest)
        out = masked.amax(dim=axis, keepdim=self.keepdims)
        any_valid = keep.any(dim=axis, keepdim=self.keepdims)
        return torch.where(any_valid, out, torch.zeros((), dtype=out.dtype, device=out.device))


class _GlobalPooling2D(Layer):
    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.data_format = _standardize_data_format(type(self).__name__, data_format)
        self.keepdims = bool(keepdims)
        self.input_spec = InputSpec(ndim=4)
        self.built = True

    @property
    def _spatial_axes(self) -> tuple[int, int]:
        return (1, 2) if self.data_format == "channels_last" else (2, 3)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if self.data_format == "channels_last":
            kept = input_shape[-1]
            return (input_shape[0], 1, 1, kept) if self.keepdims else (input_shape[0], kept)
        kept = input_shape[1]
        return (input_shape[0], kept, 1, 1) if self.keepdims else (input_shape[0], kept)

    def get_config(self) -> dict:
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPooling2D):
    """Averages over the two spatial axes of an image batch.

    Args:
        data_format: `"channels_last"` (default; `(batch, rows, cols, channels)`)
            or `"channels_first"` (`(batch, channels, rows, cols)`).
        keepdims: Whether to keep the spatial axes with size 1.
        **kwargs: Base layer arguments.

    Examples:

    >>> import torch
    >>> GlobalAveragePooling2D()(torch.ones(2, 4, 5, 3)).shape
    torch.Size([2, 3])
    """

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.mean(dim=self._spatial_axes, keepdim=self.keepdims)


class GlobalMaxPooling2D(_GlobalPooling2D):
    """Maximum over the two spatial axes of an image batch.

    Args:
        data_format: `"channels_last"` (default; `(batch, rows, cols, channels)`)
            or `"channels_first"` (`(batch, channels, rows, cols)`).
        keepdims: Whether to keep the spatial axes with size 1.
        **kwargs: Base layer arguments.

    Examples:

    >>> import torch
    >>> GlobalMaxPooling2D(keepdims=True)(torch.ones(2, 4, 5, 3)).shape
    torch.Size([2, 1, 1, 3])
    """

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.amax(dim=self._spatial_axes, keepdim=self.keepdims)


class _Pooling(Layer):
    """Windowed pooling over `rank` spatial axes."""

    rank = 1

    def __init__(
        self,
        pool_size: int | Sequence[int],
        strides: int | Sequence[int] | None = None,
        padding: str = "valid",
        data_format: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        layer = type(self).__name__
        self.pool_size = int_tuple(layer, "pool_size", pool_size, self.rank)
        self.strides = (
            self.pool_size if strides is None else int_tuple(layer, "strides", strides, self.rank)
        )
        self.padding = padding_mode(layer, padding, ("valid", "same"))
        self.data_format = _standardize_data_format(layer, data_format)
        self.input_spec = InputSpec(ndim=self.rank + 2)
        self.built = True

    def _pool(self, inputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return self._pool(inputs)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        channels_last = self.data_format == "channels_last"
        spatial = input_shape[1:-1] if channels_last else input_shape[2:]
        out = tuple(
            conv_ops.conv_output_length(n, k, s, self.padding)
            for n, k, s in zip(spatial, self.pool_size, self.strides)
        )
        if channels_last:
            return (input_shape[0], *out, input_shape[-1])
        return (input_shape[0], input_shape[1], *out)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "padding": self.padding,
            "strides": self.strides,
            "data_format": self.data_format,
        }


class _MaxPooling(_Pooling):
    def _pool(self, inputs: torch.Tensor) -> torch.Tensor:
        return conv_ops.max_pool(
            inputs,
            self.pool_size,
            self.strides,
            self.padding,
            channels_last=self.data_format == "channels_last",
        )


class _AveragePooling(_Pooling):
    def _pool(self, inputs: torch.Tensor) -> torch.Tensor:
        return conv_ops.average_pool(
            inputs,
            self.pool_size,
            self.strides,
            self.padding,
            channels_last=self.data_format == "channels_last",
        )


class MaxPooling1D(_MaxPooling):
    """Maximum over windows of steps: `(batch, steps, channels)` -> `(batch, steps', channels)`.

    Args:
        pool_size: Size of the pooling window (an integer; default 2).
        strides: Step of the window (default: `pool_size`).
        padding: `"valid"` (windows inside the input only) or `"same"` (output
            `ceil(steps / strides)`; the padding never wins a maximum).
        data_format: `"channels_last"` (default) or `"channels_first"`.
        **kwargs: Base layer arguments.

    Examples:

    >>> import torch
    >>> MaxPooling1D()(torch.arange(6.0).reshape(1, 6, 1)).flatten().tolist()
    [1.0, 3.0, 5.0]
    """

    rank = 1

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class AveragePooling1D(_AveragePooling):
    """Average over windows of steps: `(batch, steps, channels)` -> `(batch, steps', channels)`.

    Args:
        pool_size: Size of the pooling window (an integer).
        strides: Step of the window (default: `pool_size`).
        padding: `"valid"` (windows inside the input only) or `"same"` (output
            `ceil(steps / strides)`; padded positions are left out of each mean).
        data_format: `"channels_last"` (default) or `"channels_first"`.
        **kwargs: Base layer arguments.

    Examples:

    >>> import torch
    >>> AveragePooling1D(2)(torch.arange(6.0).reshape(1, 6, 1)).flatten().tolist()
    [0.5, 2.5, 4.5]
    """

    rank = 1


class MaxPooling2D(_MaxPooling):
    """Maximum over windows of rows and columns of an image batch.

    Args:
        pool_size: Window size, an integer or `(rows, cols)` (default `(2, 2)`).
        strides: Steps of the window (default: `pool_size`).
        padding: `"valid"` or `"same"` (output `ceil(size / strides)` per axis;
            the padding never wins a maximum).
        data_format: `"channels_last"` (default; `(batch, rows, cols, channels)`)
            or `"channels_first"`.
        **kwargs: Base layer arguments.

    Examples:

    >>> import torch
    >>> MaxPooling2D((2, 1))(torch.ones(1, 32, 100, 8)).shape
    torch.Size([1, 16, 100, 8])
    """

    rank = 2

    def __init__(
        self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs
    ):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class AveragePooling2D(_AveragePooling):
    """Average over windows of rows and columns of an image batch.

    Args:
        pool_size: Window size, an integer or `(rows, cols)`.
        strides: Steps of the window (default: `pool_size`).
        padding: `"valid"` or `"same"` (output `ceil(size / strides)` per axis;
            padded positions are left out of each mean).
        data_format: `"channels_last"` (default; `(batch, rows, cols, channels)`)
            or `"channels_first"`.
        **kwargs: Base layer arguments.

    Examples:

    >>> import torch
    >>> AveragePooling2D(2)(torch.ones(1, 4, 6, 3)).shape
    torch.Size([1, 2, 3, 3])
    """

    rank = 2
