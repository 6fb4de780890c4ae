"""Keras's weight regularizers: callables `weight -> scalar tensor` added to `losses`.

>>> import torch
>>> L2(0.5)(torch.ones(2, 2))
tensor(2.)
>>> serialize(L1())
{'module': 'keras.regularizers', 'class_name': 'L1', 'config': {'l1': 0.009999999776482582},
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
    "L1",
    "L1L2",
    "L2",
    "OrthogonalRegularizer",
    "Regularizer",
    "deserialize",
    "get",
    "serialize",
]


def _validate_penalty(owner: str, value: Any, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or math.isinf(value)
        or math.isnan(value)
        or value < 0
    ):
        raise ValueError(
            f"{owner}: invalid value for argument `{name}`: expected a non-negative float. "
            f"Received: {name}={value!r}"
        )
    return float(value)


class Regularizer:
    """Base class of regularizers: `reg(weight)` returns a scalar penalty tensor.

    Examples:

    >>> class Sum(Regularizer):
    ...     def __call__(self, x):
    ...         return x.sum()
    >>> Sum()(torch.ones(3))
    tensor(3.)
    """

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros((), dtype=x.dtype, device=x.device)

    def get_config(self) -> dict:
        """The constructor arguments, as a JSON-serializable dict."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_config().")

    @classmethod
    def from_config(cls, config: dict) -> Regularizer:
        """Creates a regularizer from `get_config()`'s output."""
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1L2(Regularizer):
    """`l1 * sum(abs(x)) + l2 * sum(square(x))`.

    Args:
        l1: Non-negative L1 factor.
        l2: Non-negative L2 factor.

    >>> L1L2(l1=1.0, l2=1.0)(torch.tensor([1.0, -2.0]))
    tensor(8.)
    """

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1 = _validate_penalty("L1L2", l1, "l1")
        self.l2 = _validate_penalty("L1L2", l2, "l2")

    def __call__(self, x):
        out = torch.zeros((), dtype=x.dtype, device=x.device)
        if self.l1:
            out = out + self.l1 * x.abs().sum()
        if self.l2:
            out = out + self.l2 * x.square().sum()
        return out

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    """`l1 * sum(abs(x))`.

    Args:
        l1: Non-negative factor (stored in float32, as Keras does).

    >>> L1(1.0)(torch.tensor([1.0, -2.0]))
    tensor(3.)
    """

    def __init__(self, l1: float = 0.01) -> None:
        self.l1 = float(np.float32(_validate_penalty("L1", l1, "l1")))

    def __call__(self, x):
        return self.l1 * x.abs().sum()

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """`l2 * sum(square(x))`.

    Args:
        l2: Non-negative factor.

    >>> L2(1.0)(torch.tensor([1.0, -2.0]))
    tensor(5.)
    """

    def __init__(self, l2: float = 0.01) -> None:
        self.l2 = _validate_penalty("L2", l2, "l2")

    def __call__(self, x):
        return self.l2 * x.square().sum()

    def get_config(self):
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """Penalizes non-orthogonal rows (or columns) of a 2-D weight.

    `factor * mean over pairs i < j of |<u_i, u_j>|`, with `u` the L2-normalized
    rows (`mode="rows"`) or columns (`mode="columns"`).

    Args:
        factor: Non-negative factor.
        mode: `"rows"` or `"columns"`.

    >>> OrthogonalRegularizer(1.0)(torch.eye(3))
    tensor(0.)
    """

    def __init__(self, factor: float = 0.01, mode: str = "rows") -> None:
        self.factor = float(
            np.float32(_validate_penalty("OrthogonalRegularizer", factor, "factor"))
        )
        if mode not in ("rows", "columns"):
            raise ValueError(
                "OrthogonalRegularizer: invalid value for argument `mode`. Expected one of "
                f"('rows', 'columns'). Received: mode={mode!r}"
            )
        self.mode = mode

    def __call__(self, x):
        if x.ndim != 2:
            raise ValueError(
                "Inputs to OrthogonalRegularizer must have rank 2. "
                f"Received: shape={tuple(x.shape)}"
            )
        if self.mode == "columns":
            x = x.T
        x = x * torch.rsqrt(torch.clamp(x.square().sum(dim=1, keepdim=True), min=1e-12))
        product = x @ x.T
        size = product.shape[0]
        off_diagonal = product * (1.0 - torch.eye(size, dtype=x.dtype, device=x.device))
        pairs = size * (size - 1.0) / 2.0
        return self.factor * 0.5 * off_diagonal.abs().sum() / pairs

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


_CLASSES = (Regularizer, L1, L2, L1L2, OrthogonalRegularizer)
_OBJECTS: dict[str, Any] = {cls.__name__: cls for cls in _CLASSES}
_OBJECTS.update({backend.to_snake_case(cls.__name__): cls for cls in _CLASSES})
_REGISTRY = Registry("regularizer", "keras.regularizers", _OBJECTS)

l1 = L1
l2 = L2
l1_l2 = L1L2
orthogonal_regularizer = OrthogonalRegularizer


def serialize(regularizer: Any) -> Any:
    """The Keras 3 serialized dict of a regularizer (`None` stays `None`).

    >>> serialize(L2(0.5))["config"]
    {'l2': 0.5}
    """
    return _REGISTRY.serialize(regularizer)


def deserialize(config: Any, custom_objects: dict | None = None) -> Any:
    """The regularizer described by a name or a serialized dict.

    >>> deserialize({"class_name": "L2", "config": {"l2": 0.1}}).l2
    0.1
    """
    return _REGISTRY.deserialize(config, custom_objects)


def get(identifier: Any) -> Any:
    """Retrieves a regularizer from a name, config dict, class, instance or callable.

    `None` gives `None`.

    Raises:
        ValueError: if `identifier` names no regularizer.

    Examples:

    >>> get("l2")
    L2(l2=0.01)
    """
    return _REGISTRY.get(identifier)
