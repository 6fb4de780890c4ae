"""Global pooling over the time axis: `GlobalAveragePooling1D`, `GlobalMaxPooling1D`.

Both honour a `(batch, steps)` mask: masked steps are left out of the average or
the maximum. A row whose steps are all masked pools to zeros (Keras 3 gives NaN
for the average there, and its `GlobalMaxPooling1D` ignores masks altogether).
Neither passes a mask on: the time axis is gone.
"""

from __future__ import annotations

from typing import Any

import torch

from birnn.layers.core import _standardize_data_format
from birnn.layers.layer import InputSpec, Layer


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
