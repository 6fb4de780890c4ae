"""Exporting a trained birnn model for serving: `Model.export` and `export_for_serving`.

`Model.export(filepath, format=...)` (implemented by `export_model`) writes

- `format="onnx"`: an ONNX model built layer by layer (`onnx_export`), with
  ONNX's own `LSTM`/`GRU`/`RNN` operators where they compute what the layer
  computes and a `Scan` loop otherwise (`onnx_rnn`); needs the optional
  `birnn[export]` extra (onnx, onnxruntime, onnxscript).
- `format="torch"`: a `torch.export` program saved with `torch.export.save`;
  load it with `torch.export.load(path).module()`.

Both take any batch size (1 included) and any number of timesteps, compute
`Masking` / `Embedding(mask_zero=True)` masks inside the program as `predict`
does, and run inference only (`training=False`: dropout off; a stateful
layer's state is not carried between calls). While `torch.export` traces, the
recurrent layers run their time loop as PyTorch's `scan` operator rather than
a Python loop or the fused kernel (both of which `torch.export` unrolls into a
fixed number of steps), which keeps the time axis symbolic.

`export_for_serving(model, example)` is the lower-level route kept for code
that calls it: `method="export"` returns the same kind of `ExportedProgram`
(dynamic batch and time) without saving it; `method="trace"` returns a
TorchScript module from `torch.jit.trace` (for libtorch/C++). A trace records
whatever ran: `LSTM`/`GRU` layers on birnn's fused-kernel path (tanh/sigmoid,
GRU `reset_after=True`, no `unroll`) trace into length-generic kernels, while
layers on the generic per-timestep loop (`SimpleRNN`, custom cells or
activations) are unrolled over the example's length. `torch.jit.script` does
not work: TorchScript's compiler rejects birnn's Python.

`model.state_dict()` / `load_state_dict()` remain the plain PyTorch way to save
and restore weights (rebuild the architecture from code or `get_config()`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from birnn import tree

_FORMATS = ("onnx", "torch")
_KERAS_ONLY_FORMATS = ("tf_saved_model", "litert", "openvino")
_EXAMPLE_SIZES = (2, 3)  # batch, then any other free axis, for tracing only


class _Serving(nn.Module):
    """Calls a birnn model in inference mode on positional tensors."""

    def __init__(self, model: nn.Module, n_inputs: int) -> None:
        super().__init__()
        self.model = model
        self.n_inputs = n_inputs

    def forward(self, *inputs: torch.Tensor) -> Any:
        x = inputs[0] if self.n_inputs == 1 else list(inputs)
        outputs = self.model(x, training=False)
        if isinstance(outputs, list):
            return tuple(outputs)
        return outputs


def _as_tensors(example_inputs: Any) -> tuple[torch.Tensor, ...]:
    items = list(example_inputs) if isinstance(example_inputs, (list, tuple)) else [example_inputs]
    out = []
    for item in items:
        if not isinstance(item, torch.Tensor):
            array = np.asarray(item)
            if array.dtype == np.float64:
                array = array.astype("float32")
            item = torch.from_numpy(array)
        out.append(item)
    return tuple(out)


def export_for_serving(
    model: nn.Module,
    example_inputs: Any,
    method: str = "export",
    dynamic_batch: bool = True,
) -> Any:
    """Exports a trained birnn model for serving with `torch.export` or TorchScript.

    `Model.export(path, format="torch")` saves the same kind of program; this
    function returns it unsaved, and is the route to a TorchScript trace.

    Args:
        model: A built birnn model (or layer).
        example_inputs: An input array/tensor, or a list of them for a model with
            several inputs. With `"export"`, the axes that the model's `Input`s
            leave as `None` (the time axis) stay symbolic; for a model without
            `Input`s (a layer, a subclassed model) the example's sizes are
            fixed except the batch. A trace is fixed to what ran (see the
            module docstring).
        method: `"export"` for a `torch.export.ExportedProgram`, `"trace"` for a
            `torch.jit.ScriptModule`.
        dynamic_batch: Whether the batch axis may vary (`"export"` marks it
            dynamic, any example batch size, 1 included; a trace is
            shape-generic in the batch axis anyway).

    Returns:
        The exported program or traced module. Call it with the same tensors as
        `example_inputs` (an exported program through `.module()`).

    Raises:
        ValueError: an unknown `method`.

    Examples:

    >>> import torch, birnn
    >>> model = birnn.Sequential([birnn.Input((6, 3)),
    ...                          birnn.layers.Bidirectional(birnn.layers.GRU(4))])
    >>> x = torch.randn(2, 6, 3)
    >>> traced = export_for_serving(model, x, method="trace")
    >>> torch.allclose(traced(torch.ones(5, 6, 3)), model(torch.ones(5, 6, 3)))
    True
    """
    if method not in ("export", "trace"):
        raise ValueError(
            f"export_for_serving: `method` must be 'export' or 'trace'. Received: {method!r}"
        )
    inputs = _as_tensors(example_inputs)
    wrapper = _Serving(model, len(inputs)).eval()
    if method == "trace":
        with torch.no_grad(), warnings.catch_warnings():
            # Shape checks read sizes as Python values; the module docstring says
            # which sizes a trace generalizes over.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            return torch.jit.trace(wrapper, inputs, check_trace=False)
    free_axes = _free_axes(model, inputs, dynamic_batch)
    return torch_program(wrapper, _widened(inputs, free_axes), free_axes)


def _free_axes(model: nn.Module, inputs: tuple[torch.Tensor, ...], batch: bool) -> list[set]:
    """Per input, the axes an exported program keeps symbolic.

    The batch axis if `batch`; for a model with a functional graph, also every
    other axis its `Input` leaves as `None` (the time axis of sequences).
    """
    graph = getattr(model, "functional_graph", None)
    specs = graph.flat_inputs if graph is not None else [None] * len(inputs)
    axes = []
    for spec in specs:
        free = {0} if batch else set()
        if spec is not None:
            free |= {i for i, d in enumerate(spec.shape) if d is None and i > 0}
        axes.append(free)
    return axes


def _widened(inputs: tuple[torch.Tensor, ...], free_axes: list[set]) -> tuple:
    """The examples with every free axis at least 2 long (repeated), since
    `torch.export` specializes sizes 0 and 1."""
    out = []
    for x, axes in zip(inputs, free_axes):
        for axis in sorted(axes):
            if axis < x.dim() and x.shape[axis] < 2:
                x = torch.cat([x, x], dim=axis)
        out.append(x)
    return tuple(out)


def torch_program(
    wrapper: nn.Module, inputs: tuple[torch.Tensor, ...], free_axes: list[set]
) -> Any:
    """`torch.export` of `wrapper(*inputs)` with the `free_axes` of each input symbolic.

    Axis 0 is `batch`, axis 1 `time` (shared by all inputs), any other `dim<i>`.
    """
    names = {0: "batch", 1: "time"}
    dims: dict[int, Any] = {}

    def dim(axis: int) -> Any:
        if axis not in dims:
            dims[axis] = torch.export.Dim(names.get(axis, f"dim{axis}"))
        return dims[axis]

    dynamic_shapes = (tuple({axis: dim(axis) for axis in sorted(axes)} for axes in free_axes),)
    with torch.no_grad():
        program = torch.export.export(wrapper, inputs, dynamic_shapes=dynamic_shapes, strict=False)
    # Recurrent kernels are stored transposed (`base_cell._store_transposed`);
    # `torch.export.save` warns on any weight that does not cover its storage
    # in order, so the program keeps contiguous copies (same values).
    for name, value in list(program.state_dict.items()):
        if not value.is_contiguous():
            program.state_dict[name] = nn.Parameter(
                value.detach().contiguous(), requires_grad=value.requires_grad
            )
    return program


# ---------------------------------------------------------------------------- Model.export
class _Spec:
    """A model input's shape and dtype, whatever described it."""

    def __init__(self, shape: Any, dtype: Any) -> None:
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = str(dtype).replace("torch.", "")


def _signature(model: nn.Module, input_signature: Any) -> list[_Spec]:
    """One `_Spec` per flat model input, from `input_signature` or the model's `Input`s."""
    if input_signature is None:
        graph = getattr(model, "functional_graph", None)
        if graph is None:
            raise ValueError(
                f"Model '{model.name}' has no `Input` to read shapes from (a subclassed "
                "model, or a Sequential model without an `Input`); pass `input_signature`, "
                "e.g. [birnn.layers.InputSpec(shape=(None, None, 10))]."
            )
        return [_Spec(t.shape, t.dtype) for t in graph.flat_inputs]

    items = (
        tree.flatten(input_signature)
        if isinstance(input_signature, (list, tuple, dict))
        else [input_signature]
    )
    specs = []
    for item in items:
        shape = getattr(item, "shape", None)
        dtype = getattr(item, "dtype", None) or "float32"
        if shape is None:
            raise TypeError(
                "Model.export: each `input_signature` entry must have a `shape` (an "
                f"InputSpec, KerasTensor, tensor or array). Received: {item!r}"
            )
        if isinstance(item, (torch.Tensor, np.ndarray)):  # a concrete example: free batch
            shape = (None, *tuple(shape)[1:])
        specs.append(_Spec(shape, dtype))
    return specs


def _example(spec: _Spec) -> torch.Tensor:
    """A tracing example for `spec`: free axes at 2 (batch) or 3 (others)."""
    shape = [
        (_EXAMPLE_SIZES[0] if i == 0 else _EXAMPLE_SIZES[1]) if d is None else d
        for i, d in enumerate(spec.shape)
    ]
    dtype = getattr(torch, spec.dtype)
    if dtype.is_floating_point:
        return torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    return torch.ones(shape, dtype=dtype)  # valid indices, none masked by `mask_zero`


def export_model(
    model: nn.Module,
    filepath: Any,
    format: str = "onnx",
    verbose: bool | None = None,
    input_signature: Any = None,
    **kwargs: Any,
) -> None:
    """Writes `model` to `filepath` as an ONNX model or a `torch.export` program.

    See `Model.export`, which calls this.
    """
    if format in _KERAS_ONLY_FORMATS:
        raise ValueError(
            f"Model.export: format={format!r} is a Keras format that birnn does not "
            f"support. Supported formats: {', '.join(repr(f) for f in _FORMATS)}."
        )
    if format not in _FORMATS:
        raise ValueError(
            f"Model.export: unknown format {format!r}. Supported formats: "
            f"{', '.join(repr(f) for f in _FORMATS)}."
        )
    opset = kwargs.pop("opset_version", None)
    if kwargs:
        raise TypeError(f"Model.export: unexpected keyword arguments {sorted(kwargs)}.")
    specs = _signature(model, input_signature)
    path = Path(filepath)
    if format == "onnx":
        from birnn.saving import onnx_export
        from birnn.saving.onnx_graph import OPSET, require_onnx

        onnx = require_onnx()
        proto = onnx_export.model_to_onnx(model, specs, list(getattr(model, "output_names", [])))
        if opset is not None and opset != OPSET:
            proto = onnx.version_converter.convert_version(proto, int(opset))
        onnx.save(proto, str(path))
    else:
        if opset is not None:
            raise TypeError("Model.export: `opset_version` applies to format='onnx' only.")
        inputs = tuple(_example(spec) for spec in specs)
        free = [{i for i, d in enumerate(spec.shape) if d is None} for spec in specs]
        wrapper = _Serving(model, len(inputs)).eval()
        with torch.no_grad():
            wrapper(*inputs)  # builds a model that was never called, outside the trace
        program = torch_program(wrapper, inputs, free)
        torch.export.save(program, str(path))
    if verbose or verbose is None:
        print(f"Saved artifact at '{path}'.")
