"""Exporting a trained birnn model for serving without Python model code.

Every birnn model is a `torch.nn.Module`, so the plain PyTorch routes apply:

- `model.state_dict()` / `load_state_dict()` save and restore the weights in
  PyTorch's own format (keys are the attribute paths, e.g.
  `_layers.1.forward_layer.cell.kernel` in a `Sequential`); rebuild the
  architecture from code or from `model.get_config()` first.
- **`torch.export` works** (non-strict mode, the default in torch 2.13):
  `export_for_serving(model, example)` returns an `ExportedProgram` with a
  dynamic batch axis; save it with `torch.export.save(program, "m.pt2")`, load
  it with `torch.export.load("m.pt2").module()`, or compile it ahead of time
  with AOTInductor for C++ serving.
- **`torch.jit.trace` works** (`method="trace"`): it returns a TorchScript
  module that `torch.jit.save`/`torch.jit.load` (and libtorch in C++) run.
- `torch.jit.script` does **not** work: birnn layers are written in Python that
  TorchScript's compiler rejects (it fails on the first annotation it cannot
  parse).

Sequence length. `torch.export` specializes the number of timesteps to the
example's: the program accepts any batch size but only sequences of that
length (marking time dynamic fails: the layers branch on it). A trace records
whatever ran: `LSTM`/`GRU` layers on birnn's fused-kernel path (tanh/sigmoid,
GRU `reset_after=True`, no `unroll`) trace into length-generic kernels and
accept any length, masked or not; layers on the generic per-timestep loop
(`SimpleRNN`, custom cells or activations) are unrolled over the example's
length and fail on another one. The safe rule for both: export at your longest
length and pad shorter sequences; with a `Masking` layer or
`Embedding(mask_zero=True)` in the model the padding is masked, so the outputs
equal those of the unpadded sequences (tested). Both routes run inference only
(`training=False`: dropout off); a stateful layer's state is not carried between
calls of the exported program.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn


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

    Args:
        model: A built birnn model (or layer).
        example_inputs: An input array/tensor, or a list of them for a model with
            several inputs; fixes the number of timesteps of the export.
        method: `"export"` for a `torch.export.ExportedProgram`, `"trace"` for a
            `torch.jit.ScriptModule`.
        dynamic_batch: Whether the batch axis may vary (`"export"` marks it
            dynamic; a trace is shape-generic in the batch axis anyway). With
            `"export"` the example batch must have at least 2 rows.

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
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch")
        dynamic_shapes = (tuple({0: batch} for _ in inputs),)  # one entry: `*inputs`
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
