"""Reshaping layers: `Reshape`, `Permute`, `RepeatVector`, `ZeroPadding1D`, `Cropping1D`,
`UpSampling1D`.

None of them takes a mask or passes one on (as in Keras, where a mask reaching
them is dropped): their outputs no longer line up step for step with the input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F

from birnn.layers._arguments import int_tuple, standardize_data_format
from birnn.layers.core import _check_positive_int
from birnn.layers.input_spec import InputSpec
from birnn.layers.layer import Layer


class Reshape(Layer):
    """Reshapes every sample to `target_shape` (the batch axis is kept).

    Args:
        target_shape: Tuple of integers, the shape of a sample; one entry may be
            `-1`, inferred from the others.
        **kwargs: Base layer arguments.

    Examples:

    >>> import torch
    >>> Reshape((25, -1))(torch.zeros(2, 8, 25, 4).transpose(1, 2)).shape
    torch.Size([2, 25, 32])
    """

    def __init__(self, target_shape: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        try:
            shape = tuple(target_shape)
        except TypeError:
            shape = None
        if shape is None or any(
            isinstance(d, bool) or not isinstance(d, int) or (d <= 0 and d != -1) for d in shape
        ):
            raise ValueError(
                "Reshape: argument `target_shape` must be a tuple of positive integers (one "
                f"of them may be -1). Received: target_shape={target_shape!r}"
            )
        if shape.count(-1) > 1:
            raise ValueError(
                "Reshape: argument `target_shape` may contain -1 only once. "
                f"Received: target_shape={target_shape!r}"
            )
        self.target_shape = shape
        self.built = True

    def _resolve(self, sample_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        shape = self.target_shape
        if -1 not in shape:
            known = math.prod(shape)
            if None not in sample_shape and math.prod(cast(Sequence[int], sample_shape)) != known:
                raise ValueError(self._mismatch(sample_shape))
            return shape
        if None in sample_shape:
            return tuple(None if d == -1 else d for d in shape)
        rest = math.prod(d for d in shape if d != -1)
        total = math.prod(cast(Sequence[int], sample_shape))  # no None: returned above
        if rest == 0 or total % rest:
            raise ValueError(self._mismatch(sample_shape))
        return tuple(total // rest if d == -1 else d for d in shape)

    def _mismatch(self, sample_shape: Sequence) -> str:
        return (
            f"Layer '{self.name}' (Reshape): the input's sample shape {tuple(sample_shape)} "
            f"cannot be reshaped to target_shape={self.target_shape}."
        )

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        self._resolve(tuple(inputs.shape[1:]))
        return inputs.reshape(inputs.shape[0], *self.target_shape)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        return (input_shape[0], *self._resolve(input_shape[1:]))

    def get_config(self) -> dict:
        return {**super().get_config(), "target_shape": self.target_shape}


class Permute(Layer):
    """Permutes the axes of every sample (`dims` counts from 1; the batch axis stays).

    Args:
        dims: Tuple, a permutation of `1..rank-1`; `(2, 1)` swaps the two axes
            of a `(batch, steps, features)` input.
        **kwargs: Base layer arguments.

    Examples:

    >>> import torch
    >>> Permute((2, 1))(torch.zeros(4, 10, 3)).shape
    torch.Size([4, 3, 10])
    """

    def __init__(self, dims: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        given: tuple[int, ...] | None
        try:
            given = tuple(dims)
        except TypeError:
            given = None
        if given is None or sorted(given) != list(range(1, len(given) + 1)):
            raise ValueError(
                "Permute: argument `dims` must be a permutation of the integers 1..n (the "
                f"axes after the batch axis). Received: dims={dims!r}"
            )
        self.dims = given
        self.input_spec = InputSpec(ndim=len(given) + 1)
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.permute(0, *self.dims)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def get_config(self) -> dict:
        return {**super().get_config(), "dims": self.dims}


class RepeatVector(Layer):
    """Repeats a `(batch, features)` input `n` times: `(batch, n, features)`.

    The usual bridge from an encoder's last state to a decoder's sequence in a
    seq2seq autoencoder.

    Args:
        n: Number of repetitions.
        **kwargs: Base layer arguments.

    Examples:

    >>> import torch
    >>> RepeatVector(3)(torch.zeros(2, 5)).shape
    torch.Size([2, 3, 5])
    """

    def __init__(self, n: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n = _check_positive_int("RepeatVector", "n", n)
        self.input_spec = InputSpec(ndim=2)
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.unsqueeze(1).expand(-1, self.n, -1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self) -> dict:
        return {**super().get_config(), "n": self.n}


def _steps_axis(data_format: str) -> int:
    return 1 if data_format == "channels_last" else 2


class ZeroPadding1D(Layer):
    """Pads the steps axis of a `(batch, steps, features)` input with zeros.

    Args:
        padding: Integer (the same at both ends) or `(before, after)`.
        data_format: `"channels_last"` (default; `(batch, steps, features)`) or
            `"channels_first"` (`(batch, features, steps)`).
        **kwargs: Base layer arguments.

    Examples:

    >>> import torch
    >>> ZeroPadding1D((1, 2))(torch.ones(1, 2, 1)).flatten().tolist()
    [0.0, 1.0, 1.0, 0.0, 0.0]
    """

    def __init__(
        self, padding: int | Sequence[int] = 1, data_format: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.padding = int_tuple("ZeroPadding1D", "padding", padding, 2, allow_zero=True)
        self.data_format = standardize_data_format("ZeroPadding1D", data_format)
        self.input_spec = InputSpec(ndim=3)
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        before, after = self.padding
        if self.data_format == "channels_first":
            return F.pad(inputs, (before, after))
        return F.pad(inputs, (0, 0, before, after))

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        axis = _steps_axis(self.data_format)
        if shape[axis] is not None:
            shape[axis] += sum(self.padding)
        return tuple(shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}


class Cropping1D(Layer):
    """Removes steps from the start and the end of a `(batch, steps, features)` input.

    Args:
        cropping: Integer (the same at both ends) or `(start, end)`.
        **kwargs: Base layer arguments.

    Examples:

    >>> import torch
    >>> Cropping1D((1, 2))(torch.arange(5.0).reshape(1, 5, 1)).flatten().tolist()
    [1.0, 2.0]
    """

    def __init__(self, cropping: int | Sequence[int] = (1, 1), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cropping = int_tuple("Cropping1D", "cropping", cropping, 2, allow_zero=True)
        self.input_spec = InputSpec(ndim=3)
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        start, end = self.cropping
        steps = inputs.shape[1]
        if start + end >= steps:
            raise ValueError(
                f"Layer '{self.name}' (Cropping1D): cropping={self.cropping} removes every "
                f"step of an input with {steps} steps."
            )
        return inputs[:, start : steps - end]

    def compute_output_shape(self, input_shape):
        steps = input_shape[1]
        return (
            input_shape[0],
            None if steps is None else steps - sum(self.cropping),
            input_shape[2],
        )

    def get_config(self) -> dict:
        return {**super().get_config(), "cropping": self.cropping}


class UpSampling1D(Layer):
    """Repeats each step `size` times along the steps axis.

    Args:
        size: Number of repetitions of each step.
        **kwargs: Base layer arguments.

    Examples:

    >>> import torch
    >>> UpSampling1D(2)(torch.tensor([[[1.0], [2.0]]])).flatten().tolist()
    [1.0, 1.0, 2.0, 2.0]
    """

    def __init__(self, size: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size = _check_positive_int("UpSampling1D", "size", size)
        self.input_spec = InputSpec(ndim=3)
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.repeat_interleave(inputs, self.size, dim=1)

    def compute_output_shape(self, input_shape):
        steps = input_shape[1]
        return (input_shape[0], None if steps is None else steps * self.size, input_shape[2])

    def get_config(self) -> dict:
        return {**super().get_config(), "size": self.size}
