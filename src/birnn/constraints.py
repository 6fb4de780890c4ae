"""Keras's weight constraints: projections `weight -> weight` applied after updates.

>>> import torch
>>> NonNeg()(torch.tensor([-1.0, 2.0]))
tensor([0., 2.])
>>> serialize(MaxNorm())
{'module': 'keras.constraints', 'class_name': 'MaxNorm', 'config': {'max_value': 2, 'axis': 0},
 'registered_name': None}
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from birnn import backend
from birnn._registry import Registry

__all__ = [
    "Constraint",
    "MaxNorm",
    "MinMaxNorm",
    "NonNeg",
    "UnitNorm",
    "deserialize",
    "get",
    "serialize",
]

_EPSILON = 1e-7


def _number(owner: str, name: str, value: Any, low: float = 0.0, high: float | None = None):
    """`value` as a Python number in `[low, high]`, or an error naming the argument."""
    if isinstance(value, (np.generic, torch.Tensor)) and np.ndim(value) == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: argument `{name}` must be a number. Received: {name}={value!r}")
    if not low <= value <= (math.inf if high is None else high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(
            f"{owner}: argument `{name}` must be {bounds}. Received: {name}={value!r}"
        )
    return value


def _axis(owner: str, axis: Any) -> Any:
    if axis is None:  # every axis
        return axis
    items = axis if isinstance(axis, (list, tuple)) else [axis]
    if not items or any(isinstance(a, bool) or not isinstance(a, int) for a in items):
        raise TypeError(
            f"{owner}: argument `axis` must be an integer or a list of integers. "
            f"Received: axis={axis!r}"
        )
    return axis


def _norms(w: torch.Tensor, axis: Any) -> torch.Tensor:
    dims = tuple(axis) if isinstance(axis, (list, tuple)) else axis
    return torch.sqrt(torch.sum(w.square(), dim=dims, keepdim=True))


class Constraint:
    """Base class of constraints: `c(weight)` returns the projected weight.

    Examples:

    >>> class Clip(Constraint):
    ...     def __call__(self, w):
    ...         return w.clamp(-1, 1)
    >>> Clip()(torch.tensor([3.0]))
    tensor([1.])
    """

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return w

    def get_config(self) -> dict:
        """The constructor arguments, as a JSON-serializable dict."""
        return {}

    @classmethod
    def from_config(cls, config: dict) -> Constraint:
        """Creates a constraint from `get_config()`'s output."""
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class MaxNorm(Constraint):
    """Rescales slices whose L2 norm along `axis` exceeds `max_value`.

    Args:
        max_value: Maximum norm.
        axis: Axis (or axes) along which norms are computed; `0` for a Dense
            kernel of shape `(input_dim, units)` constrains each unit's vector.

    >>> MaxNorm(1.0)(torch.tensor([[3.0], [4.0]]))
    tensor([[0.6000],
            [0.8000]])
    """

    def __init__(self, max_value: float = 2, axis: int | tuple[int, ...] = 0) -> None:
        self.max_value = _number("MaxNorm", "max_value", max_value)
        self.axis = _axis("MaxNorm", axis)

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = norms.clamp(0, self.max_value)
        return w * (desired / (_EPSILON + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Replaces negative weights with zero.

    >>> NonNeg()(torch.tensor([-1.0]))
    tensor([0.])
    """

    def __call__(self, w):
        return torch.clamp(w, min=0)


class UnitNorm(Constraint):
    """Rescales slices along `axis` to unit L2 norm.

    Args:
        axis: Axis (or axes) along which norms are computed.

    >>> UnitNorm()(torch.tensor([[3.0], [4.0]]))
    tensor([[0.6000],
            [0.8000]])
    """

    def __init__(self, axis: int | tuple[int, ...] = 0) -> None:
        self.axis = _axis("UnitNorm", axis)

    def __call__(self, w):
        return w / (_EPSILON + _norms(w, self.axis))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Moves the L2 norm of slices along `axis` towards `[min_value, max_value]`.

    The new norm is `rate * clip(norm, min_value, max_value) + (1 - rate) * norm`.

    Args:
        min_value: Minimum norm.
        max_value: Maximum norm.
        rate: Fraction of the way to move (1.0 enforces the bounds strictly).
        axis: Axis (or axes) along which norms are computed.

    >>> MinMaxNorm(1.0, 2.0)(torch.tensor([[0.3], [0.4]]))
    tensor([[0.6000],
            [0.8000]])
    """

    def __init__(
        self,
        min_value: float = 0.0,
        max_value: float = 1.0,
        rate: float = 1.0,
        axis: int | tuple[int, ...] = 0,
    ) -> None:
        self.min_value = _number("MinMaxNorm", "min_value", min_value)
        self.max_value = _number("MinMaxNorm", "max_value", max_value, low=self.min_value)
        self.rate = _number("MinMaxNorm", "rate", rate, high=1.0)
        self.axis = _axis("MinMaxNorm", axis)

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = self.rate * norms.clamp(self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (_EPSILON + norms))

    def get_config(self):
        return {
            "min_value": self.min_value,
            "max_value": self.max_value,
            "rate": self.rate,
            "axis": self.axis,
        }


_CLASSES = (Constraint, MaxNorm, MinMaxNorm, NonNeg, UnitNorm)
_OBJECTS: dict[str, Any] = {cls.__name__: cls for cls in _CLASSES}
_OBJECTS.update({backend.to_snake_case(cls.__name__): cls for cls in _CLASSES})
_REGISTRY = Registry("constraint", "keras.constraints", _OBJECTS)

max_norm = MaxNorm
min_max_norm = MinMaxNorm
non_neg = NonNeg
unit_norm = UnitNorm


def serialize(constraint: Any) -> Any:
    """The Keras 3 serialized dict of a constraint (`None` stays `None`).

    >>> serialize(UnitNorm(axis=1))["config"]
    {'axis': 1}
    """
    return _REGISTRY.serialize(constraint)


def deserialize(config: Any, custom_objects: dict | None = None) -> Any:
    """The constraint described by a name or a serialized dict.

    >>> deserialize("non_neg")
    NonNeg()
    """
    return _REGISTRY.deserialize(config, custom_objects)


def get(identifier: Any) -> Any:
    """Retrieves a constraint from a name, config dict, class, instance or callable.

    `None` gives `None`.

    Raises:
        ValueError: if `identifier` names no constraint.

    Examples:

    >>> get("max_norm")
    MaxNorm(max_value=2, axis=0)
    """
    return _REGISTRY.get(identifier)
