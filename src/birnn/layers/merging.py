"""Merge layers: `Concatenate`, `Add`, `Subtract`, `Multiply`, `Average`, `Maximum`,
`Minimum`, `Dot`.

Each takes a list of tensors. Masks follow Keras 3: the output mask of the
element-wise merges is the element-wise OR of the input masks when every input
has one (else no mask); `Concatenate` combines whatever masks exist, taking
"all valid" for inputs without one; `Dot` passes no mask on. `Multiply` treats
masked entries as 1 and zeroes positions masked in every input.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from birnn.layers.layer import Layer


def _is_shape_list(input_shape: Any) -> bool:
    return isinstance(input_shape, (list, tuple)) and all(
        s is None or isinstance(s, (list, tuple)) for s in input_shape
    )


def _check_masks(layer_name: str, inputs: list, mask: Any, strict: bool) -> None:
    """Each input's mask, where given, must cover a leading part of its shape.

    With `strict` (layers that broadcast a mask over the last axis), the mask must
    have the input's shape without its last axis, or the input's own shape.
    """
    if mask is None:
        return
    if not isinstance(mask, (list, tuple)) or len(mask) != len(inputs):
        count = len(mask) if isinstance(mask, (list, tuple)) else "a non-list"
        raise ValueError(
            f"Layer '{layer_name}': argument `mask` must be a list with one mask (or None) "
            f"per input. Received {count} mask(s) for {len(inputs)} inputs."
        )
    for index, (x, m) in enumerate(zip(inputs, mask)):
        if m is None or not hasattr(x, "shape"):
            continue
        shape, mask_shape = tuple(x.shape), tuple(m.shape)
        fits = (
            mask_shape in (shape[:-1], shape)
            if strict
            else (len(mask_shape) >= 1 and mask_shape == shape[: len(mask_shape)])
        )
        if not fits:
            expected = (
                f"{shape[:-1]} (or the input's own shape)"
                if strict
                else (f"a leading part of {shape}, such as {shape[:-1]}")
            )
            raise ValueError(
                f"Layer '{layer_name}': argument `mask` for input {index} has shape "
                f"{mask_shape}, which does not fit the input's shape {shape}; expected "
                f"{expected}."
            )


class Merge(Layer):
    """Base class of the element-wise merge layers (`Add`, `Multiply`, `Average`).

    Inputs of different ranks are aligned by inserting size-1 axes after the
    batch axis; other axes broadcast (size 1 or equal).
    """

    supports_masking = True

    def _check_list(self, input_shape: Any) -> None:
        if not _is_shape_list(input_shape) or not input_shape:
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}) should be called on a list of "
                f"at least 1 input. Received: input_shape={input_shape}"
            )

    def _elementwise_shape(self, shape1: Any, shape2: Any) -> tuple | None:
        """The broadcast of two shapes without their batch axis, as Keras aligns them."""
        if shape1 is None or shape2 is None:
            return None
        if len(shape1) < len(shape2):
            shape1, shape2 = shape2, shape1
        if not shape2:
            return tuple(shape1)
        out = list(shape1[: len(shape1) - len(shape2)])
        for i, j in zip(shape1[len(shape1) - len(shape2) :], shape2):
            if i is None or j is None:
                out.append(None)
            elif i == 1:
                out.append(j)
            elif j == 1 or i == j:
                out.append(i)
            else:
                raise ValueError(
                    f"Layer '{self.name}' ({type(self).__name__}): inputs have incompatible "
                    f"shapes. Received shapes {tuple(shape1)} and {tuple(shape2)}"
                )
        return tuple(out)

    def compute_output_shape(self, input_shape: Any) -> tuple | None:
        self._check_list(input_shape)
        out = None if input_shape[0] is None else tuple(input_shape[0])[1:]
        for shape in input_shape[1:]:
            out = self._elementwise_shape(out, None if shape is None else tuple(shape)[1:])
        batch_sizes = {s[0] for s in input_shape if s is not None} - {None}
        if len(batch_sizes) > 1:
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}) cannot merge tensors with "
                f"different batch sizes. Received tensors with shapes {list(input_shape)}"
            )
        batch = next(iter(batch_sizes)) if batch_sizes else None
        return None if out is None else (batch, *out)

    def build(self, input_shape: Any) -> None:
        self.compute_output_shape(input_shape)
        self.built = True

    def _merge(self, inputs: list[torch.Tensor], masks: list | None) -> torch.Tensor:
        raise NotImplementedError

    def call(self, inputs: Any, mask: Any = None) -> torch.Tensor:
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}) should be called on a list of "
                f"inputs. Received: inputs={inputs!r} (not a list of tensors)"
            )
        inputs = list(inputs)
        _check_masks(self.name, inputs, mask, strict=isinstance(self, Multiply))
        ranks = [x.ndim for x in inputs]
        if len(set(ranks)) > 1:
            top = max(ranks)
            inputs = [x.reshape(x.shape[:1] + (1,) * (top - x.ndim) + x.shape[1:]) for x in inputs]
            mask = None  # Keras loses the masks of reshaped inputs too
        masks = list(mask) if isinstance(mask, (list, tuple)) else None
        return self._merge(inputs, masks)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None:
            return None
        if not isinstance(mask, (list, tuple)) or not isinstance(inputs, (list, tuple)):
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}): `inputs` and `mask` should be "
                f"lists. Received: mask={mask!r}"
            )
        if len(mask) != len(inputs):
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}): the lists `inputs` and `mask` "
                f"should have the same length. Received {len(inputs)} inputs and "
                f"{len(mask)} masks."
            )
        if any(m is None for m in mask):
            return None
        out = mask[0]
        for m in mask[1:]:
            out = torch.logical_or(out, m)
        return out


class Add(Merge):
    """Adds a list of inputs element-wise (shapes broadcast).

    Examples:

    >>> import torch
    >>> Add()([torch.ones(2, 3), torch.ones(2, 3)])
    tensor([[2., 2., 2.],
            [2., 2., 2.]])
    """

    def _merge(self, inputs, masks):
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out


class Average(Merge):
    """Averages a list of inputs element-wise (shapes broadcast).

    Examples:

    >>> import torch
    >>> Average()([torch.zeros(1, 2), torch.ones(1, 2)])
    tensor([[0.5000, 0.5000]])
    """

    def _merge(self, inputs, masks):
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out / len(inputs)


class Multiply(Merge):
    """Multiplies a list of inputs element-wise (shapes broadcast).

    Masked entries of an input count as 1; when every input has a mask, entries
    masked in all of them are output as 0.

    Examples:

    >>> import torch
    >>> Multiply()([torch.full((1, 2), 2.0), torch.full((1, 2), 3.0)])
    tensor([[6., 6.]])
    """

    def _merge(self, inputs, masks):
        masks = masks or [None] * len(inputs)
        all_masked = all(m is not None for m in masks)
        out = None
        out_mask = None
        for x, m in zip(inputs, masks):
            if m is not None:
                m = (m if m.ndim == x.ndim else m.unsqueeze(-1)).expand(x.shape)
                x = torch.where(m, x, torch.ones((), dtype=x.dtype, device=x.device))
                if all_masked:
                    out_mask = m if out_mask is None else torch.logical_or(out_mask, m)
            out = x if out is None else out * x
        if all_masked:
            assert out is not None and out_mask is not None  # one input or more, all masked
            out = torch.where(out_mask, out, torch.zeros((), dtype=out.dtype, device=out.device))
        return out


class Subtract(Merge):
    """Subtracts the second of exactly two inputs from the first (shapes broadcast).

    Examples:

    >>> import torch
    >>> Subtract()([torch.full((1, 2), 3.0), torch.ones(1, 2)])
    tensor([[2., 2.]])
    """

    def _check_list(self, input_shape: Any) -> None:
        if not _is_shape_list(input_shape) or len(input_shape) != 2:
            raise ValueError(
                f"Layer '{self.name}' (Subtract) should be called on exactly 2 inputs. "
                f"Received: input_shape={input_shape}"
            )

    def _merge(self, inputs, masks):
        if len(inputs) != 2:
            raise ValueError(
                f"Layer '{self.name}' (Subtract) should be called on exactly 2 inputs. "
                f"Received {len(inputs)} inputs."
            )
        return inputs[0] - inputs[1]


class _Extremum(Merge):
    """Element-wise maximum or minimum; masked entries are left out.

    An entry masked in every input takes the first input's value (as Keras).
    """

    _reduce = staticmethod(torch.maximum)
    _fill = -math.inf

    def _merge(self, inputs, masks):
        masks = masks or [None] * len(inputs)
        candidates = []
        for x, m in zip(inputs, masks):
            if m is not None:
                m = m if m.ndim == x.ndim else m.unsqueeze(-1)
                x = torch.where(m, x, torch.full((), self._fill, dtype=x.dtype, device=x.device))
            candidates.append(x)
        out = candidates[0]
        for x in candidates[1:]:
            out = self._reduce(out, x)
        if all(m is not None for m in masks):
            valid = masks[0]
            for m in masks[1:]:
                valid = torch.logical_or(valid, m)
            valid = valid if valid.ndim == out.ndim else valid.unsqueeze(-1)
            out = torch.where(valid, out, inputs[0])
        return out


class Maximum(_Extremum):
    """Element-wise maximum of a list of inputs (shapes broadcast).

    Masked entries of an input are left out; an entry masked in every input
    takes the first input's value.

    Examples:

    >>> import torch
    >>> Maximum()([torch.tensor([[1.0, 5.0]]), torch.tensor([[3.0, 2.0]])])
    tensor([[3., 5.]])
    """

    _reduce = staticmethod(torch.maximum)
    _fill = -math.inf


class Minimum(_Extremum):
    """Element-wise minimum of a list of inputs (shapes broadcast).

    Masked entries of an input are left out; an entry masked in every input
    takes the first input's value.

    Examples:

    >>> import torch
    >>> Minimum()([torch.tensor([[1.0, 5.0]]), torch.tensor([[3.0, 2.0]])])
    tensor([[1., 2.]])
    """

    _reduce = staticmethod(torch.minimum)
    _fill = math.inf


class Dot(Layer):
    """Dot product of two batched inputs along `axes` (Keras's `batch_dot`).

    For inputs `x` of shape `(batch, *a)` and `y` of shape `(batch, *b)`, the
    axis `axes[0]` of `x` is contracted with the axis `axes[1]` of `y`; the
    output has `x`'s remaining axes followed by `y`'s (`(batch, 1)` when nothing
    remains). E.g. `axes=(2, 2)` on `(b, n, d)` and `(b, m, d)` gives the
    `(b, n, m)` attention scores.

    Args:
        axes: Integer or pair of integers: the axis of each input to contract
            (axis 0 is the batch axis and cannot be contracted).
        normalize: Whether to L2-normalize both inputs along the contracted axes
            first (the output is then a cosine similarity).
        **kwargs: Base layer arguments.

    No mask is passed on.

    Examples:

    >>> import torch
    >>> Dot(axes=1)([torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0]])])
    tensor([[11.]])
    >>> Dot(axes=(2, 2))([torch.zeros(4, 5, 8), torch.zeros(4, 7, 8)]).shape
    torch.Size([4, 5, 7])
    """

    supports_masking = True

    def __init__(self, axes: int | tuple[int, int], normalize: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        ok = (isinstance(axes, int) and not isinstance(axes, bool)) or (
            isinstance(axes, (list, tuple))
            and len(axes) == 2
            and all(isinstance(a, int) and not isinstance(a, bool) for a in axes)
        )
        if not ok:
            raise TypeError(
                "Dot: argument `axes` must be an integer or a list/tuple of 2 integers. "
                f"Received: axes={axes!r}"
            )
        self.axes = axes
        self.normalize = bool(normalize)

    def _resolve_axes(self, shape1: tuple, shape2: tuple) -> tuple[int, int]:
        axes = (self.axes, self.axes) if isinstance(self.axes, int) else tuple(self.axes)
        out = []
        for axis, shape in zip(axes, (shape1, shape2)):
            rank = len(shape)
            if not -rank <= axis < rank or axis % rank == 0:
                raise ValueError(
                    f"Layer '{self.name}' (Dot): axis {axis} cannot be contracted for an input "
                    f"of shape {shape} (axis 0 is the batch axis)."
                )
            out.append(axis % rank)
        a1, a2 = out
        if shape1[a1] is not None and shape2[a2] is not None and shape1[a1] != shape2[a2]:
            raise ValueError(
                f"Layer '{self.name}' (Dot): incompatible input shapes: axis {a1} of "
                f"{shape1} has size {shape1[a1]}, axis {a2} of {shape2} has size {shape2[a2]}."
            )
        return a1, a2

    def _check_pair(self, inputs: Any) -> None:
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                f"Layer '{self.name}' (Dot) should be called on a list of exactly 2 inputs. "
                f"Received: {inputs!r}"
            )

    def build(self, input_shape: Any) -> None:
        self._check_pair(input_shape)
        self._resolve_axes(tuple(input_shape[0]), tuple(input_shape[1]))
        self.built = True

    def call(self, inputs: Any) -> torch.Tensor:
        self._check_pair(inputs)
        x, y = inputs
        a1, a2 = self._resolve_axes(tuple(x.shape), tuple(y.shape))
        if self.normalize:
            x = torch.nn.functional.normalize(x, dim=a1, eps=1e-12)
            y = torch.nn.functional.normalize(y, dim=a2, eps=1e-12)
        batch = x.shape[0]
        x = x.movedim(a1, -1)
        y = y.movedim(a2, 1)
        rest_x, rest_y = x.shape[1:-1], y.shape[2:]
        out = torch.bmm(x.reshape(batch, -1, x.shape[-1]), y.reshape(batch, y.shape[1], -1))
        out = out.reshape(batch, *rest_x, *rest_y)
        return out.reshape(batch, 1) if out.ndim == 1 else out

    def compute_output_shape(self, input_shape: Any) -> tuple:
        self._check_pair(input_shape)
        shape1, shape2 = tuple(input_shape[0]), tuple(input_shape[1])
        a1, a2 = self._resolve_axes(shape1, shape2)
        rest = shape1[1:a1] + shape1[a1 + 1 :] + shape2[1:a2] + shape2[a2 + 1 :]
        return (shape1[0], *rest) if rest else (shape1[0], 1)

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def get_config(self) -> dict:
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


class Concatenate(Layer):
    """Concatenates a list of inputs along `axis`.

    All inputs must have the same rank and the same sizes on every other axis.

    Args:
        axis: Concatenation axis (default: the last).
        **kwargs: Base layer arguments.

    Examples:

    >>> import torch
    >>> Concatenate()([torch.zeros(2, 3), torch.ones(2, 1)]).shape
    torch.Size([2, 4])
    """

    supports_masking = True

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(
                f"Concatenate: argument `axis` must be an integer. Received: axis={axis!r}"
            )
        self.axis = axis

    def _check_shapes(self, input_shape: Any) -> None:
        if not _is_shape_list(input_shape) or not input_shape:
            raise ValueError(
                f"Layer '{self.name}' (Concatenate) should be called on a list of at least 1 "
                f"input. Received: input_shape={input_shape}"
            )
        shapes = [tuple(s) for s in input_shape if s is not None]
        error = ValueError(
            f"Layer '{self.name}' (Concatenate) requires inputs with matching shapes except "
            f"for the concatenation axis {self.axis}. Received: input_shape={list(input_shape)}"
        )
        if len({len(s) for s in shapes}) > 1:
            raise error
        if not shapes:
            return
        rank = len(shapes[0])
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"Layer '{self.name}' (Concatenate): axis {self.axis} is out of range for "
                f"inputs of rank {rank}."
            )
        concat_axis = self.axis % rank
        for axis in range(rank):
            if axis != concat_axis and len({s[axis] for s in shapes} - {None}) > 1:
                raise error

    def build(self, input_shape: Any) -> None:
        self._check_shapes(input_shape)
        self.built = True

    def call(self, inputs: Any, mask: Any = None) -> torch.Tensor:
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(
                f"Layer '{self.name}' (Concatenate) should be called on a list of inputs. "
                f"Received: inputs={inputs!r}"
            )
        _check_masks(self.name, list(inputs), mask, strict=True)
        return torch.cat(list(inputs), dim=self.axis)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        self._check_shapes(input_shape)
        out = list(input_shape[0])
        for shape in input_shape[1:]:
            if out[self.axis] is None or shape[self.axis] is None:
                out[self.axis] = None
                break
            out[self.axis] += shape[self.axis]
        return tuple(out)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None:
            return None
        if not isinstance(mask, (list, tuple)) or not isinstance(inputs, (list, tuple)):
            raise ValueError(
                f"Layer '{self.name}' (Concatenate): `inputs` and `mask` should be lists. "
                f"Received: mask={mask!r}"
            )
        if len(mask) != len(inputs):
            raise ValueError(
                f"Layer '{self.name}' (Concatenate): the lists `inputs` and `mask` should have "
                f"the same length. Received {len(inputs)} inputs and {len(mask)} masks."
            )
        if all(m is None for m in mask):
            return None
        full = []
        for x, m in zip(inputs, mask):
            if m is None:
                full.append(torch.ones(x.shape, dtype=torch.bool, device=x.device))
            elif m.ndim < x.ndim:
                full.append(m.unsqueeze(-1).expand(x.shape))
            else:
                full.append(m)
        return torch.any(torch.cat(full, dim=self.axis), dim=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}
