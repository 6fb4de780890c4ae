"""`InputSpec`: the rank, dtype and shape a layer accepts, and the check against it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from birnn import backend
from birnn.layers.arguments import get_argument


def _check_rank_argument(name: str, value: Any) -> Any:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise TypeError(
            f"InputSpec: argument `{name}` must be a non-negative integer or None. "
            f"Received: {name}={value!r}"
        )
    return value


class InputSpec:
    """Specifies the rank, dtype and shape of every input to a layer.

    A layer checks its inputs against `layer.input_spec` (one spec, or a list of
    specs for several inputs) on every call and raises a `ValueError` that names
    the layer and both shapes when they disagree.

    Args:
        dtype: Expected dtype of the input.
        shape: Expected shape tuple; `None` entries match any size.
        ndim: Expected rank.
        max_ndim: Maximum rank.
        min_ndim: Minimum rank.
        axes: Dictionary mapping integer axes to a specific dimension value.
        allow_last_axis_squeeze: If `True`, a trailing axis of size 1 may be
            missing or extra.
        name: Expected name of the input.
        optional: Whether the input may be `None`.

    Examples:

    >>> spec = InputSpec(ndim=3, axes={-1: 8})
    >>> spec
    InputSpec(ndim=3, axes={-1: 8})
    """

    def __init__(
        self,
        dtype: Any = None,
        shape: Sequence[int | None] | None = None,
        ndim: int | None = None,
        max_ndim: int | None = None,
        min_ndim: int | None = None,
        axes: dict[int, int] | None = None,
        allow_last_axis_squeeze: bool = False,
        name: str | None = None,
        optional: bool = False,
    ) -> None:
        self.dtype = (
            get_argument("InputSpec", "dtype", backend.standardize_dtype, dtype)
            if dtype is not None
            else None
        )
        self.shape = tuple(shape) if shape is not None else None
        ndim = _check_rank_argument("ndim", ndim)
        self.ndim = len(self.shape) if self.shape is not None else ndim
        self.max_ndim = _check_rank_argument("max_ndim", max_ndim)
        self.min_ndim = _check_rank_argument("min_ndim", min_ndim)
        self.name = name
        self.optional = optional
        self.allow_last_axis_squeeze = allow_last_axis_squeeze
        try:
            self.axes = {int(k): v for k, v in (axes or {}).items()}
        except (ValueError, TypeError) as e:
            raise TypeError(
                f"InputSpec: argument `axes` must be a dict with integer keys. Received: {axes}"
            ) from e
        if self.axes and (self.ndim is not None or self.max_ndim is not None):
            max_dim = (self.ndim if self.ndim is not None else self.max_ndim) - 1
            if max(self.axes) > max_dim:
                raise ValueError(
                    f"InputSpec: argument `axes` names axis {max(self.axes)}, greater than "
                    f"the maximum allowed value {max_dim}."
                )

    def __repr__(self) -> str:
        fields = [
            f"{k}={v}"
            for k, v in (
                ("dtype", self.dtype),
                ("shape", self.shape),
                ("ndim", self.ndim),
                ("max_ndim", self.max_ndim),
                ("min_ndim", self.min_ndim),
                ("axes", self.axes or None),
            )
            if v is not None
        ]
        return f"InputSpec({', '.join(fields)})"

    def get_config(self) -> dict:
        return {
            "dtype": self.dtype,
            "shape": self.shape,
            "ndim": self.ndim,
            "max_ndim": self.max_ndim,
            "min_ndim": self.min_ndim,
            "axes": self.axes,
        }

    @classmethod
    def from_config(cls, config: dict) -> InputSpec:
        return cls(**config)


def check_input_compatibility(layer_name: str, input_spec: Any, inputs: Any) -> None:
    """Raises a `ValueError` naming the layer if `inputs` do not meet `input_spec`."""
    if input_spec is None:
        return
    if (
        isinstance(input_spec, InputSpec)
        and isinstance(inputs, torch.Tensor)
        and _spec_problem(input_spec, inputs.shape) is None
    ):
        return  # the usual call: one tensor that meets one spec
    specs = list(input_spec) if isinstance(input_spec, (list, tuple)) else [input_spec]
    flat_inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if len(specs) != len(flat_inputs) and not (len(specs) == 1 and len(flat_inputs) == 1):
        raise ValueError(
            f"Layer '{layer_name}' expects {len(specs)} input(s), "
            f"but it received {len(flat_inputs)} input tensors."
        )
    for index, (spec, x) in enumerate(zip(specs, flat_inputs)):
        if spec is None:
            continue
        if x is None:
            if spec.optional:
                continue
            raise ValueError(f"Input {index} of layer '{layer_name}' is None.")
        if not hasattr(x, "shape"):
            raise TypeError(f"Inputs to layer '{layer_name}' should be tensors. Received: {x!r}")
        problem = _spec_problem(spec, tuple(x.shape))
        if problem is not None:
            raise ValueError(
                f"Input {index} of layer '{layer_name}' is incompatible with the layer: {problem}"
            )


def _spec_problem(spec: InputSpec, shape: Sequence[int | None]) -> str | None:
    """How a tensor of `shape` (a tuple or `torch.Size`) fails `spec`, or `None` if it
    meets it."""
    ndim = len(shape)
    expected = None
    if spec.ndim is not None and not spec.allow_last_axis_squeeze and ndim != spec.ndim:
        expected = f"ndim={spec.ndim}"
    elif spec.max_ndim is not None and ndim > spec.max_ndim:
        expected = f"max_ndim={spec.max_ndim}"
    elif spec.min_ndim is not None and ndim < spec.min_ndim:
        expected = f"min_ndim={spec.min_ndim}"
    if expected is not None:
        return f"expected {expected}, found ndim={ndim}. Full shape received: {tuple(shape)}"
    for axis, value in spec.axes.items():
        if value is None:
            continue
        if not -ndim <= axis < ndim or shape[axis] not in (value, None):
            return (
                f"expected axis {axis} of input shape to have value {value}, "
                f"but received input with shape {tuple(shape)}"
            )
    if spec.shape is not None and len(spec.shape) == ndim:
        for want, actual in zip(spec.shape, shape):
            if want is not None and actual is not None and want != actual:
                return f"expected shape={spec.shape}, found shape={tuple(shape)}"
    return None
