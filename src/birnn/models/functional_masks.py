"""The masks of a functional graph, written as Keras operation nodes in its config.

birnn computes a mask while the model runs, from the tensors (`_keras_mask`);
Keras 3 records each mask as a chain of operation nodes (`NotEqual`, `Any`,
`LogicalOr`, `Concatenate`...) and writes it as the `mask` argument of every call
to a layer whose `call` takes one, when the call's first argument is a single
masked tensor. A file without those nodes still loads in Keras, but Keras then
makes the operations itself while it rebuilds the graph, named by its own
process-wide counter, and such a name can clash with a layer of the file:
a birnn `Concatenate` layer called `concatenate` and the `concatenate` operation
Keras makes for a masked concatenation, in a fresh Keras process.

`mask_operations` gives the nodes to write instead: for each mask a layer makes
(`Masking`, `Embedding(mask_zero=True)`, the merge layers, `Concatenate`), the
operations that compute it from the graph's tensors, built from the layers of
`birnn.saving.operations` on the symbolic tensors; a mask that passes through a
layer unchanged keeps its node. A mask no rule here can express (a `Lambda`'s
mask function, say) is left for Keras to compute, as before.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from birnn import backend
from birnn.keras_tensor import KerasTensor
from birnn.layers.core import Embedding, Masking
from birnn.layers.merging import Concatenate, Merge
from birnn.saving import operations as ops

if TYPE_CHECKING:
    from birnn.layers.layer import Layer
    from birnn.layers.node import Node

_UNKNOWN = object()
"""Stands for a mask that birnn computes but no rule here can write."""


@dataclasses.dataclass
class MaskOperations:
    """What a functional config gains so that Keras finds every mask in the file."""

    arguments: dict[int, KerasTensor] = dataclasses.field(default_factory=dict)
    """`id(node)` -> the `mask` argument to write for that layer call."""
    layers: list[Layer] = dataclasses.field(default_factory=list)
    """The operation layers those arguments come from, each called once, in call order."""


class _Builder:
    def __init__(self, taken: set[str]) -> None:
        self.result = MaskOperations()
        self._names = backend.NameCounter()
        self._taken = taken

    def __call__(self, operation: type[ops.Operation], *args: Any, **config: Any) -> KerasTensor:
        base = backend.to_snake_case(operation.__name__)
        name = self._names(base)
        while name in self._taken:
            name = self._names(base)
        layer = operation(name=name, **config)
        self.result.layers.append(layer)
        return layer(*args)


def _masks_in(structure: Any, refs: dict[int, Any]) -> Any:
    """The masks birnn gives a layer for `structure` (as `mask_of` finds them), as refs."""
    if isinstance(structure, (list, tuple)):
        masks = [_masks_in(x, refs) for x in structure]
        return None if all(m is None for m in masks) else masks
    if not isinstance(structure, KerasTensor) or structure._keras_mask is None:
        return None
    return refs.get(id(structure), _UNKNOWN)


def _given_mask(value: Any, refs: dict[int, Any]) -> Any:
    """An explicit `mask=` argument: graph tensors as they are, mask markers as refs."""
    if isinstance(value, (list, tuple)):
        return [_given_mask(v, refs) for v in value]
    if isinstance(value, KerasTensor) and value._keras_history is None:
        source = value.mask_source
        return _UNKNOWN if source is None else refs.get(id(source), _UNKNOWN)
    return value


def _leaves(structure: Any) -> list:
    if isinstance(structure, (list, tuple)):
        return [leaf for x in structure for leaf in _leaves(x)]
    return [structure]


def _masking(layer: Masking, x: KerasTensor, mask: Any, make: _Builder) -> KerasTensor:
    compute = layer.compute_dtype
    if layer.autocast and x.dtype.startswith("float") and x.dtype != compute:
        x = make(ops.Cast, x, dtype=compute)
    return make(ops.Any, make(ops.NotEqual, x, float(layer.mask_value)), axis=-1)


def _embedding(layer: Embedding, x: KerasTensor, mask: Any, make: _Builder) -> Any:
    return make(ops.NotEqual, x, 0) if layer.mask_zero else None


def _merge(layer: Merge, inputs: list, masks: Any, make: _Builder) -> Any:
    if masks is None or any(m is None for m in masks):
        return None
    out = masks[0]
    for m in masks[1:]:
        out = make(ops.LogicalOr, out, m)
    return out


def _concatenate(layer: Concatenate, inputs: list, masks: Any, make: _Builder) -> Any:
    if masks is None:
        return None
    full = []
    for x, m in zip(inputs, masks):
        if m is None:
            full.append(make(ops.OnesLike, x, dtype="bool"))
        elif m.ndim < x.ndim:
            expanded = make(ops.ExpandDims, m, axis=-1)
            full.append(make(ops.LogicalOr, expanded, make(ops.ZerosLike, x, dtype="bool")))
        else:
            full.append(m)
    return make(ops.Any, make(ops.Concatenate, full, axis=layer.axis), axis=-1)


_Rule = Callable[[Any, Any, Any, _Builder], Any]
_RULES: dict[Callable, _Rule] = {
    Masking.compute_mask: _masking,
    Embedding.compute_mask: _embedding,
    Merge.compute_mask: _merge,
    Concatenate.compute_mask: _concatenate,
}
"""A layer's `compute_mask` -> the operations that compute the same mask."""


def _output_masks(layer: Layer, inputs: Any, masks: Any, make: _Builder) -> Any:
    rule = _RULES.get(type(layer).compute_mask)
    if rule is not None:
        return rule(layer, inputs, masks, make)
    # Any other layer: its mask may only pass an input's mask through, unchanged.
    try:
        result = layer.compute_mask(inputs, masks)
    except Exception:  # needs real values: not a pass-through
        return _UNKNOWN
    given = {id(m) for m in _leaves(masks) if m is not None}
    if all(m is None or id(m) in given for m in _leaves(result)):
        return result
    return _UNKNOWN


def _assign(node: Node, result: Any, refs: dict[int, Any]) -> None:
    """Records the mask of each output that carries one in birnn."""
    outputs = node.flat_outputs
    if result is _UNKNOWN:
        return
    per_output = list(result) if isinstance(result, (list, tuple)) else [result] * len(outputs)
    if len(per_output) != len(outputs):
        return
    for tensor, mask in zip(outputs, per_output):
        marker = tensor._keras_mask
        if marker is None or mask is None or mask is _UNKNOWN or isinstance(mask, list):
            continue
        if mask.ndim == marker.ndim:
            refs[id(tensor)] = mask


def _takes_mask(layer: Layer) -> bool:
    try:
        return "mask" in inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return False


def mask_operations(nodes: list[Node], layer_names: set[str]) -> MaskOperations:
    """The mask operations to write for a graph's `nodes` (in the order they run).

    `layer_names` are the names already used in the graph; the operations get others.
    """
    make = _Builder(set(layer_names))
    refs: dict[int, Any] = {}
    for node in nodes:
        if node.is_input:
            continue
        inputs = node.call_args[0] if node.call_args else None
        given = node.call_kwargs.get("mask")
        masks = _masks_in(inputs, refs) if given is None else _given_mask(given, refs)
        if any(m is _UNKNOWN for m in _leaves(masks)):
            continue
        if (
            given is None
            and isinstance(inputs, KerasTensor)
            and isinstance(masks, KerasTensor)
            and _takes_mask(node.layer)
        ):
            make.result.arguments[id(node)] = masks
        _assign(node, _output_masks(node.layer, inputs, masks, make), refs)
    return _used(make.result)


def _used(result: MaskOperations) -> MaskOperations:
    """Keeps the operations some written mask needs (a model output's mask has no reader)."""
    needed: set[int] = set()
    pending = list(result.arguments.values())
    while pending:
        tensor = pending.pop()
        history = tensor._keras_history
        if history is None or id(history[0]) in needed:
            continue
        needed.add(id(history[0]))
        pending.extend(history[0].inbound_nodes[history[1]].input_tensors)
    result.layers = [layer for layer in result.layers if id(layer) in needed]
    return result
