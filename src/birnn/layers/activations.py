"""Activation layers: `ReLU`, `LeakyReLU`, `PReLU`, `ELU`, `Softmax`.

Each passes the input mask on unchanged. `Softmax` also reads the mask: masked
entries get (almost) zero probability.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch

from birnn import activations, constraints, initializers, regularizers
from birnn.layers.arguments import get_argument
from birnn.layers.input_spec import InputSpec
from birnn.layers.layer import Layer


def _number(layer: str, name: str, value: Any, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"{layer}: argument `{name}` must be a number. Received: {name}={value!r}"
        )
    if minimum is not None and value < minimum:
        raise ValueError(
            f"{layer}: argument `{name}` must be >= {minimum}. Received: {name}={value!r}"
        )
    return value


class _Elementwise(Layer):
    supports_masking = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.built = True

    def compute_output_shape(self, input_shape):
        return input_shape


class ReLU(_Elementwise):
    """Rectified linear unit with an optional ceiling, slope and threshold.

    Output: `max_value` if `x >= max_value`; `x` if `threshold <= x < max_value`;
    `negative_slope * (x - threshold)` otherwise.

    Args:
        max_value: Optional ceiling (non-negative float).
        negative_slope: Slope below the threshold (non-negative float).
        threshold: Threshold below which values are damped (non-negative float).
        **kwargs: Base layer arguments.

    Examples:

    >>> import torch
    >>> ReLU(max_value=1.0)(torch.tensor([-1.0, 0.5, 3.0])).tolist()
    [0.0, 0.5, 1.0]
    """

    def __init__(
        self,
        max_value: float | None = None,
        negative_slope: float = 0.0,
        threshold: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_value is not None:
            _number("ReLU", "max_value", max_value, 0.0)
        self.max_value = max_value
        self.negative_slope = _number("ReLU", "negative_slope", negative_slope, 0.0)
        self.threshold = _number("ReLU", "threshold", threshold, 0.0)

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return activations.relu(
            inputs,
            negative_slope=self.negative_slope,
            max_value=self.max_value,
            threshold=self.threshold,
        )

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "max_value": self.max_value,
            "negative_slope": self.negative_slope,
            "threshold": self.threshold,
        }


class LeakyReLU(_Elementwise):
    """`x` for `x >= 0`, `negative_slope * x` otherwise.

    Args:
        negative_slope: Slope for negative inputs (default 0.3, as Keras).
        **kwargs: Base layer arguments (the Keras 2 name `alpha` is accepted
            for `negative_slope`, with a warning).

    Examples:

    >>> import torch
    >>> LeakyReLU(0.5)(torch.tensor([-2.0, 2.0])).tolist()
    [-1.0, 2.0]
    """

    def __init__(self, negative_slope: float = 0.3, **kwargs: Any) -> None:
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn(
                "LeakyReLU: argument `alpha` is deprecated. Use `negative_slope` instead.",
                stacklevel=2,
            )
        super().__init__(**kwargs)
        self.negative_slope = _number("LeakyReLU", "negative_slope", negative_slope, 0.0)

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return activations.leaky_relu(inputs, negative_slope=self.negative_slope)

    def get_config(self) -> dict:
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(_Elementwise):
    """Exponential linear unit: `x` for `x > 0`, `alpha * (exp(x) - 1)` otherwise.

    Args:
        alpha: Scale of the negative part.
        **kwargs: Base layer arguments.

    Examples:

    >>> import torch
    >>> ELU()(torch.tensor([0.0, 2.0])).tolist()
    [0.0, 2.0]
    """

    def __init__(self, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = _number("ELU", "alpha", alpha)

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return activations.elu(inputs, alpha=self.alpha)

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha}


class Softmax(_Elementwise):
    """Softmax over `axis`; masked entries get (almost) zero probability.

    Args:
        axis: Integer or tuple of integers, the axes to normalize over.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: Tensor of any rank.
        mask: Optional boolean tensor broadcastable to `inputs`; `False` entries
            are pushed to a large negative logit before the softmax (Keras's rule),
            so a row with everything masked comes out uniform.

    Examples:

    >>> import torch
    >>> Softmax()(torch.zeros(1, 4), mask=torch.tensor([[True, True, False, False]])).tolist()
    [[0.5, 0.5, 0.0, 0.0]]
    """

    def __init__(self, axis: int | Sequence[int] = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        ok = isinstance(axis, int) or (
            isinstance(axis, (list, tuple)) and all(isinstance(a, int) for a in axis)
        )
        if not ok or isinstance(axis, bool):
            raise TypeError(
                f"Softmax: argument `axis` must be an integer or a tuple of integers. "
                f"Received: axis={axis!r}"
            )
        self.axis = axis

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            try:
                torch.broadcast_shapes(mask.shape, inputs.shape)
            except RuntimeError:
                raise ValueError(
                    f"Layer '{self.name}' (Softmax): argument `mask` of shape "
                    f"{tuple(mask.shape)} does not broadcast to the inputs' shape "
                    f"{tuple(inputs.shape)}."
                ) from None
            big = -3e4 if inputs.dtype in (torch.float16, torch.bfloat16) else -1e9
            inputs = inputs + (~mask).to(inputs.dtype) * big
        axis = self.axis if isinstance(self.axis, int) else tuple(self.axis)
        return activations.softmax(inputs, axis=axis)

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}


class PReLU(Layer):
    """Leaky ReLU with a learned slope per input entry: `max(x, 0) + alpha * min(x, 0)`.

    `alpha` has the shape of a sample (the input shape without its batch axis),
    with size 1 along the `shared_axes`.

    Args:
        alpha_initializer: Initializer of `alpha` (default zeros).
        alpha_regularizer: Regularizer of `alpha`.
        alpha_constraint: Constraint of `alpha`.
        shared_axes: Axes (counting the batch axis as 0) along which one slope is
            shared, e.g. `[1]` for one slope per feature of a sequence.
        **kwargs: Base layer arguments.

    The input mask, if any, passes through unchanged.

    Examples:

    >>> import torch
    >>> layer = PReLU(shared_axes=[1])
    >>> layer(torch.ones(2, 10, 4)).shape, layer.get_weights()[0].shape
    (torch.Size([2, 10, 4]), (1, 4))
    """

    supports_masking = True

    def __init__(
        self,
        alpha_initializer: Any = "Zeros",
        alpha_regularizer: Any = None,
        alpha_constraint: Any = None,
        shared_axes: int | Sequence[int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        name = "PReLU"
        self.alpha_initializer = get_argument(
            name, "alpha_initializer", initializers.get, alpha_initializer
        )
        self.alpha_regularizer = get_argument(
            name, "alpha_regularizer", regularizers.get, alpha_regularizer
        )
        self.alpha_constraint = get_argument(
            name, "alpha_constraint", constraints.get, alpha_constraint
        )
        self.shared_axes: list[Any] | None
        if shared_axes is None:
            self.shared_axes = None
        elif isinstance(shared_axes, int) and not isinstance(shared_axes, bool):
            self.shared_axes = [shared_axes]
        else:
            given: Any = shared_axes  # a bool or a non-iterable fails the check below
            try:
                self.shared_axes = list(given)
            except TypeError:
                self.shared_axes = [None]
        if self.shared_axes is not None and any(
            isinstance(a, bool) or not isinstance(a, int) or a < 1 for a in self.shared_axes
        ):
            raise ValueError(
                "PReLU: argument `shared_axes` must be an integer or a list of integers >= 1 "
                f"(axis 0 is the batch axis). Received: shared_axes={shared_axes!r}"
            )

    def build(self, input_shape: Sequence[int | None]) -> None:
        shape = list(input_shape[1:])
        for axis in self.shared_axes or []:
            if axis >= len(input_shape):
                raise ValueError(
                    f"Layer '{self.name}' (PReLU): shared axis {axis} is out of range for "
                    f"inputs of shape {tuple(input_shape)}."
                )
            shape[axis - 1] = 1
        if any(d is None for d in shape):
            raise ValueError(
                f"Layer '{self.name}' (PReLU): every non-shared axis of the input must have a "
                f"known size. Received: input_shape={tuple(input_shape)}"
            )
        sizes = [d for d in shape if d is not None]  # all of them
        self.alpha = self.add_weight(
            shape=tuple(sizes),
            initializer=self.alpha_initializer,
            regularizer=self.alpha_regularizer,
            constraint=self.alpha_constraint,
            name="alpha",
        )
        axes = {i + 1: d for i, d in enumerate(sizes) if d != 1}
        self.input_spec = InputSpec(ndim=len(input_shape), axes=axes)
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.relu(inputs) - self.alpha * torch.relu(-inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "alpha_initializer": initializers.serialize(self.alpha_initializer),
            "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
            "alpha_constraint": constraints.serialize(self.alpha_constraint),
            "shared_axes": self.shared_axes,
        }
