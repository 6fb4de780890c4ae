"""Recording layer calls on `KerasTensor`s: `Node` and `symbolic_call`.

`symbolic_call` is what `Layer.__call__` does when an argument is a `KerasTensor`:
it builds the layer from the symbolic shapes, infers the outputs with
`compute_output_spec` (nothing runs on data), records a `Node` (layer, call
arguments, outputs) and marks outputs that will carry a mask. `models.functional`
orders and runs the recorded nodes.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch

from birnn import backend, tree
from birnn.keras_tensor import KerasTensor
from birnn.layers.input_spec import check_input_compatibility

if TYPE_CHECKING:
    from birnn.layers.layer import Layer


class Node:
    """One call of a layer in a graph: its arguments and the tensors it produced.

    Creating a node appends it to `layer.inbound_nodes` and stamps each output
    `KerasTensor` with `_keras_history = (layer, node_index, tensor_index)`. The
    tensor index counts the outputs in `tree.flatten` order (dict keys sorted, as
    Keras flattens them), so a nested model with dict outputs is referred to by
    the same indices in birnn's and Keras's configs.
    """

    def __init__(self, layer: Layer, call_args: tuple, call_kwargs: dict, outputs: Any) -> None:
        self.layer = layer
        self.call_args = tuple(call_args)
        self.call_kwargs = dict(call_kwargs)
        self.outputs = outputs
        self.flat_outputs = [t for t in tree.flatten(outputs) if isinstance(t, KerasTensor)]
        self.input_tensors = [
            t
            for t in tree.flatten([list(self.call_args), self.call_kwargs])
            if isinstance(t, KerasTensor)
        ]
        nodes = layer.inbound_nodes
        self.index = len(nodes)
        nodes.append(self)
        for i, t in enumerate(self.flat_outputs):
            t._keras_history = (layer, self.index, i)

    @property
    def is_input(self) -> bool:
        return not self.input_tensors

    @property
    def dependencies(self) -> list[KerasTensor]:
        """Graph tensors this node needs (a mask marker stands for its source tensor)."""
        out = []
        for t in self.input_tensors:
            source = t.mask_source
            out.append(source if source is not None and t._keras_history is None else t)
        return out

    @property
    def parent_nodes(self) -> list[Node]:
        parents = []
        for t in self.dependencies:
            history = t._keras_history
            if history:
                parents.append(history[0].inbound_nodes[history[1]])
        return parents

    def __repr__(self) -> str:
        return f"<Node {self.layer.name}[{self.index}]>"


def _mask_marker(source: KerasTensor, ndim: int | None) -> KerasTensor:
    shape = source.shape if ndim is None else source.shape[:ndim]
    marker = KerasTensor(shape, dtype="bool")
    marker.mask_source = source
    return marker


def _dummy(kt: Any) -> Any:
    if not isinstance(kt, KerasTensor):
        return kt
    shape = tuple(2 if d is None else d for d in kt.shape)
    return torch.zeros(shape, dtype=backend.torch_dtype(kt.dtype))


def _output_mask_ranks(layer: Layer, inputs: Any, mask: Any) -> Any:
    """Which outputs carry a mask (and its rank), found without running `call`.

    Tries `compute_mask` on the symbolic tensors first; when the layer's
    `compute_mask` needs real values (`inputs != 0`), runs it on zeros.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = layer.compute_mask(inputs, mask)
        leaves = tree.flatten(result) if isinstance(result, (list, tuple)) else [result]
        if all(x is None or isinstance(x, KerasTensor) for x in leaves):
            return tree.map_structure(lambda m: None if m is None else m.ndim, result)
    except Exception:  # falls back to zeros below
        pass
    try:
        dummy_mask = tree.map_structure(
            lambda m: None if m is None else torch.ones(_dummy(m).shape, dtype=torch.bool), mask
        )
        with torch.no_grad():
            result = layer.compute_mask(tree.map_structure(_dummy, inputs), dummy_mask)
        return tree.map_structure(
            lambda m: m.dim() if isinstance(m, torch.Tensor) else None, result
        )
    except Exception:
        if mask is None:
            return None
        return tree.map_structure(lambda m: None if m is None else m.ndim, mask)


def _attach_masks(outputs: Any, ranks: Any) -> None:
    if ranks is None:
        return
    if isinstance(outputs, KerasTensor):
        if isinstance(ranks, (list, tuple)):
            ranks = ranks[0] if ranks else None
        if isinstance(ranks, int):
            outputs._keras_mask = _mask_marker(outputs, ranks)
        return
    if isinstance(outputs, (list, tuple)):
        per_output = ranks if isinstance(ranks, (list, tuple)) else [ranks] * len(outputs)
        for out, rank in zip(outputs, per_output):
            _attach_masks(out, rank)


def symbolic_call(layer: Layer, args: tuple, kwargs: dict, uses_masks: bool) -> Any:
    """Records `layer(*args, **kwargs)` on `KerasTensor`s and returns symbolic outputs.

    `args[0]` holds the inputs; `uses_masks` says whether the layer's outputs may
    carry a mask (then their ranks are worked out without running `call`).

    The layer is built from the symbolic input shapes and its input spec checked,
    so shape errors surface while the model is being defined.
    """
    inputs = args[0]
    check_input_compatibility(layer.name, layer.input_spec, inputs)
    layer.build_from_inputs(inputs)
    spec_kwargs = {k: v for k, v in kwargs.items() if k not in ("training", "mask")}
    try:
        outputs = layer.compute_output_spec(*args, **spec_kwargs)
    except TypeError:
        outputs = layer.compute_output_spec(*args)
    if isinstance(outputs, list):
        outputs = tuple(outputs)
    if uses_masks:
        mask = kwargs.get("mask")
        if mask is None:
            mask = mask_of(inputs)
        _attach_masks(outputs, _output_mask_ranks(layer, inputs, mask))
    Node(layer, args, kwargs, outputs)
    return outputs


def mask_of(structure: Any) -> Any:
    """The `_keras_mask` carried by each tensor of a structure (None where absent)."""
    if isinstance(structure, (list, tuple)):
        masks = [mask_of(x) for x in structure]
        return None if all(m is None for m in masks) else masks
    return getattr(structure, "_keras_mask", None)
