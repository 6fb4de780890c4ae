"""The Keras operations that Keras 3 records in functional configs to carry masks.

When a Keras 3 functional model is built, the mask a layer computes is made of
`keras.ops` calls on symbolic tensors, and those calls become nodes of the model
(layers of module `keras.src.ops.numpy` in `config.json`) whose output is passed
as `mask=` to the next layer. Keras 3.15.1 writes these for the layers birnn has
(observed on the files it saves):

- `Embedding(mask_zero=True)`: `NotEqual(x, 0)`;
- `Masking(v)`: `Any(NotEqual(x, v), axis=-1)`;
- `Add`/`Multiply`/`Average` of masked inputs: `LogicalOr` of the masks;
- `Concatenate` of masked inputs: `ExpandDims`, `ZerosLike`/`OnesLike`,
  `LogicalOr`, `Concatenate(axis)` and `Any(axis=-1)`, with a
  `ConvertToTensor` (module `keras.src.ops.core`) in front of a mask that an
  attention layer passed on;
- under a mixed precision policy, `Masking` casts its input first: `Cast(dtype)`
  (module `keras.src.ops.core`).

Each class here is a weightless birnn `Layer` that computes the same thing with
torch and writes the same config Keras does (module `keras.src.ops.numpy`,
`registered_name` = class name, no `build_config`), so such a file loads in
birnn and, saved again, in Keras. `OPERATIONS` maps Keras's class names to them;
a Keras operation not in it is reported as unknown.
"""

from __future__ import annotations

import typing

import torch

from birnn import backend
from birnn.keras_tensor import KerasTensor
from birnn.layers.layer import Layer

KERAS_MODULE = "keras.src.ops.numpy"


def _broadcast(*shapes: tuple) -> tuple:
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded):
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ValueError(f"Shapes {shapes} cannot be broadcast together.")
        if known:
            out.append(known.pop())
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def _shape(x: typing.Any) -> tuple:
    return tuple(x.shape) if isinstance(x, (KerasTensor, torch.Tensor)) else ()


def _dtype(x: typing.Any) -> str:
    if isinstance(x, KerasTensor):
        return x.dtype
    if isinstance(x, torch.Tensor):
        return backend.standardize_dtype(x.dtype)
    return "float32"


def _axes(axis: typing.Any, ndim: int) -> list[int]:
    axes = list(range(ndim)) if axis is None else list(axis) if isinstance(axis, list) else [axis]
    return sorted(a % ndim for a in axes) if ndim else []


class Operation(Layer):
    """A weightless graph node standing for one Keras operation."""

    keras_module = KERAS_MODULE

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name, autocast=False)
        self.built = True

    def get_config(self) -> dict:
        return {"name": self.name}

    def get_build_config(self) -> None:
        return None  # Keras operations have no build step

    def output_spec(self, *args: typing.Any) -> tuple[tuple, str]:
        """`(shape, dtype)` of the result for symbolic arguments."""
        raise NotImplementedError

    def compute_output_spec(self, *args: typing.Any, **kwargs: typing.Any) -> KerasTensor:
        shape, dtype = self.output_spec(*args, **kwargs)
        return KerasTensor(shape, dtype=dtype)

    def compute_output_shape(self, input_shape: typing.Any) -> typing.Any:
        raise NotImplementedError


class _Compare(Operation):
    def output_spec(self, x: typing.Any, y: typing.Any = 0) -> tuple[tuple, str]:
        return _broadcast(_shape(x), _shape(y)), "bool"


class NotEqual(_Compare):
    """`x != y`, elementwise."""

    def call(self, x: typing.Any, y: typing.Any = 0) -> torch.Tensor:
        return torch.ne(x, torch.as_tensor(y, device=x.device))


class Equal(_Compare):
    """`x == y`, elementwise."""

    def call(self, x: typing.Any, y: typing.Any = 0) -> torch.Tensor:
        return torch.eq(x, torch.as_tensor(y, device=x.device))


class LogicalOr(_Compare):
    """`x or y`, elementwise."""

    def call(self, x: typing.Any, y: typing.Any) -> torch.Tensor:
        return torch.logical_or(x, torch.as_tensor(y, device=x.device))


class LogicalAnd(_Compare):
    """`x and y`, elementwise."""

    def call(self, x: typing.Any, y: typing.Any) -> torch.Tensor:
        return torch.logical_and(x, torch.as_tensor(y, device=x.device))


class LogicalNot(Operation):
    """`not x`, elementwise."""

    def call(self, x: typing.Any) -> torch.Tensor:
        return torch.logical_not(x)

    def output_spec(self, x: typing.Any) -> tuple[tuple, str]:
        return _shape(x), "bool"


class _Reduce(Operation):
    def __init__(
        self, axis: typing.Any = None, keepdims: bool = False, name: str | None = None
    ) -> None:
        super().__init__(name=name)
        self.axis = axis
        self.keepdims = bool(keepdims)

    def get_config(self) -> dict:
        return {"name": self.name, "axis": self.axis, "keepdims": self.keepdims}

    def output_spec(self, x: typing.Any) -> tuple[tuple, str]:
        shape = _shape(x)
        axes = _axes(self.axis, len(shape))
        if self.keepdims:
            return tuple(1 if i in axes else d for i, d in enumerate(shape)), "bool"
        return tuple(d for i, d in enumerate(shape) if i not in axes), "bool"

    def _reduce(self, fn: typing.Any, x: torch.Tensor) -> torch.Tensor:
        axes = _axes(self.axis, x.dim())
        x = x.bool()
        if not axes:
            return x
        return fn(x, dim=tuple(axes), keepdim=self.keepdims)


class Any(_Reduce):
    """Whether any element along `axis` is true."""

    def call(self, x: torch.Tensor) -> torch.Tensor:
        return self._reduce(torch.any, x)


class All(_Reduce):
    """Whether every element along `axis` is true."""

    def call(self, x: torch.Tensor) -> torch.Tensor:
        return self._reduce(torch.all, x)


class ExpandDims(Operation):
    """Inserts axes of size 1 at `axis`."""

    def __init__(self, axis: typing.Any, name: str | None = None) -> None:
        super().__init__(name=name)
        self.axis = axis

    def get_config(self) -> dict:
        return {"name": self.name, "axis": self.axis}

    def _positions(self, ndim: int) -> list[int]:
        axes = self.axis if isinstance(self.axis, (list, tuple)) else [self.axis]
        out_ndim = ndim + len(axes)
        return sorted(a % out_ndim for a in axes)

    def call(self, x: torch.Tensor) -> torch.Tensor:
        for position in self._positions(x.dim()):
            x = x.unsqueeze(position)
        return x

    def output_spec(self, x: typing.Any) -> tuple[tuple, str]:
        shape = list(_shape(x))
        for position in self._positions(len(shape)):
            shape.insert(position, 1)
        return tuple(shape), _dtype(x)


class _FilledLike(Operation):
    fill = 0

    def __init__(self, dtype: typing.Any = None, name: str | None = None) -> None:
        super().__init__(name=name)
        self.fill_dtype = None if dtype is None else backend.standardize_dtype(dtype)

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.fill_dtype}

    def call(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype if self.fill_dtype is None else backend.torch_dtype(self.fill_dtype)
        return torch.full_like(x, self.fill, dtype=dtype)

    def output_spec(self, x: typing.Any) -> tuple[tuple, str]:
        return _shape(x), self.fill_dtype or _dtype(x)


class ZerosLike(_FilledLike):
    """Zeros of `x`'s shape (and of `dtype`, else `x`'s dtype)."""


class OnesLike(_FilledLike):
    """Ones of `x`'s shape (and of `dtype`, else `x`'s dtype)."""

    fill = 1


class Concatenate(Operation):
    """The tensors of a list joined along `axis`."""

    def __init__(self, axis: int = 0, name: str | None = None) -> None:
        super().__init__(name=name)
        self.axis = axis

    def get_config(self) -> dict:
        return {"name": self.name, "axis": self.axis}

    def call(self, xs: list) -> torch.Tensor:
        return torch.cat(list(xs), dim=self.axis)

    def output_spec(self, xs: list) -> tuple[tuple, str]:
        shapes = [list(_shape(x)) for x in xs]
        axis = self.axis % len(shapes[0])
        out = shapes[0]
        sizes = [s[axis] for s in shapes]
        out[axis] = None if any(d is None for d in sizes) else sum(sizes)
        return tuple(out), _dtype(xs[0])


class ConvertToTensor(Operation):
    """`x` as a tensor of `dtype` (Keras's `ops.convert_to_tensor`; `None` keeps its dtype)."""

    keras_module = "keras.src.ops.core"

    def __init__(
        self,
        dtype: typing.Any = None,
        sparse: typing.Any = None,
        ragged: typing.Any = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.to_dtype = None if dtype is None else backend.standardize_dtype(dtype)

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.to_dtype, "sparse": None, "ragged": None}

    def call(self, x: typing.Any) -> torch.Tensor:
        return backend.convert_to_tensor(x, dtype=self.to_dtype)

    def output_spec(self, x: typing.Any) -> tuple[tuple, str]:
        return _shape(x), self.to_dtype or _dtype(x)


class Cast(Operation):
    """`x` converted to `dtype` (Keras's `ops.cast`; Keras 3.15.1 writes one in front of
    `Masking`'s `NotEqual` when the layer computes in another dtype than its input's,
    as under a mixed precision policy)."""

    keras_module = "keras.src.ops.core"

    def __init__(self, dtype: typing.Any, name: str | None = None) -> None:
        super().__init__(name=name)
        self.to_dtype = backend.standardize_dtype(dtype)

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.to_dtype}

    def call(self, x: typing.Any) -> torch.Tensor:
        return backend.convert_to_tensor(x).to(backend.torch_dtype(self.to_dtype))

    def output_spec(self, x: typing.Any) -> tuple[tuple, str]:
        return _shape(x), self.to_dtype


OPERATIONS: dict[str, type[Operation]] = {
    cls.__name__: cls
    for cls in (
        NotEqual,
        Equal,
        LogicalOr,
        LogicalAnd,
        LogicalNot,
        Any,
        All,
        ExpandDims,
        ZerosLike,
        OnesLike,
        Concatenate,
        ConvertToTensor,
        Cast,
    )
}
"""Keras operation class name -> the birnn layer that computes it."""


def is_operation(layer: typing.Any) -> bool:
    """Whether `layer` stands for a Keras operation (it has no weights in Keras's files)."""
    return isinstance(layer, Operation)
