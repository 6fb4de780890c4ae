"""The functional graph: recording layer calls on `KerasTensor`s, and running them.

`symbolic_call` is what `Layer.__call__` does when an argument is a `KerasTensor`:
it builds the layer from the symbolic shapes, infers the outputs with
`compute_output_spec` (nothing runs on data), records a `Node` (layer, call
arguments, outputs) and marks outputs that will carry a mask. `Graph` orders the
nodes between some inputs and outputs the way Keras does (so `model.layers` and
`model.weights` come in Keras's order) and executes them on real tensors; masks
travel on the tensors (`_keras_mask`) at run time, as in eager calls.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any

import torch

from birnn.keras_tensor import KerasTensor
from birnn.layers.layer import Layer, check_input_compatibility, flatten_structure, map_structure


class Node:
    """One call of a layer in a graph: its arguments and the tensors it produced.

    Creating a node appends it to `layer._inbound_nodes` and stamps each output
    `KerasTensor` with `_keras_history = (layer, node_index, tensor_index)`. The
    tensor index counts the outputs in `flatten_io` order (dict keys sorted, as
    Keras flattens them), so a nested model with dict outputs is referred to by
    the same indices in birnn's and Keras's configs.
    """

    def __init__(self, layer: Layer, call_args: tuple, call_kwargs: dict, outputs: Any) -> None:
        self.layer = layer
        self.call_args = tuple(call_args)
        self.call_kwargs = dict(call_kwargs)
        self.outputs = outputs
        self.flat_outputs = [t for t in flatten_io(outputs) if isinstance(t, KerasTensor)]
        self.input_tensors = [
            t
            for t in flatten_structure([list(self.call_args), self.call_kwargs])
            if isinstance(t, KerasTensor)
        ]
        nodes = layer.__dict__.setdefault("_inbound_nodes", [])
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
            source = getattr(t, "_mask_source", None)
            out.append(source if source is not None and t._keras_history is None else t)
        return out

    @property
    def parent_nodes(self) -> list[Node]:
        parents = []
        for t in self.dependencies:
            history = t._keras_history
            if history:
                parents.append(history[0]._inbound_nodes[history[1]])
        return parents

    def __repr__(self) -> str:
        return f"<Node {self.layer.name}[{self.index}]>"


def _dict_keys(d: dict) -> list:
    try:
        return sorted(d)
    except TypeError:  # keys that do not compare: keep their order
        return list(d)


def flatten_io(structure: Any) -> list:
    """Leaves of a model's input/output structure, dict keys sorted (as Keras orders them).

    >>> flatten_io({"b": 1, "a": [2, 3]})
    [2, 3, 1]
    """
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten_io(item)]
    if isinstance(structure, dict):
        return [leaf for key in _dict_keys(structure) for leaf in flatten_io(structure[key])]
    return [structure]


def leaf_paths(structure: Any, prefix: tuple = ()) -> list[tuple]:
    """The path (keys and indices) to each leaf, in `flatten_io` order."""
    if isinstance(structure, (list, tuple)):
        return [p for i, item in enumerate(structure) for p in leaf_paths(item, (*prefix, i))]
    if isinstance(structure, dict):
        return [p for k in _dict_keys(structure) for p in leaf_paths(structure[k], (*prefix, k))]
    return [prefix]


# ---------------------------------------------------------------------------- symbolic call
def _mask_marker(source: KerasTensor, ndim: int | None) -> KerasTensor:
    shape = source.shape if ndim is None else source.shape[:ndim]
    marker = KerasTensor(shape, dtype="bool")
    marker._mask_source = source
    return marker


def _uses_masks(layer: Layer) -> bool:
    return bool(layer.supports_masking) or type(layer).compute_mask is not Layer.compute_mask


def _dummy(kt: Any) -> Any:
    if not isinstance(kt, KerasTensor):
        return kt
    from birnn import backend  # noqa: PLC0415

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
        leaves = flatten_structure(result) if isinstance(result, (list, tuple)) else [result]
        if all(x is None or isinstance(x, KerasTensor) for x in leaves):
            return map_structure(lambda m: None if m is None else m.ndim, result)
    except Exception:  # noqa: BLE001  (falls back to zeros below)
        pass
    try:
        dummy_mask = map_structure(
            lambda m: None if m is None else torch.ones(_dummy(m).shape, dtype=torch.bool), mask
        )
        with torch.no_grad():
            result = layer.compute_mask(map_structure(_dummy, inputs), dummy_mask)
        return map_structure(lambda m: m.dim() if isinstance(m, torch.Tensor) else None, result)
    except Exception:  # noqa: BLE001
        if mask is None:
            return None
        return map_structure(lambda m: None if m is None else m.ndim, mask)


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


def symbolic_call(layer: Layer, args: tuple, kwargs: dict) -> Any:
    """Records `layer(*args, **kwargs)` on `KerasTensor`s and returns symbolic outputs.

    The layer is built from the symbolic input shapes and its input spec checked,
    so shape errors surface while the model is being defined.
    """
    if not args:
        if "inputs" not in kwargs:
            raise TypeError(f"Layer '{layer.name}' was called without inputs.")
        kwargs = dict(kwargs)
        args = (kwargs.pop("inputs"),)
    inputs = args[0]
    check_input_compatibility(layer.name, layer.input_spec, inputs)
    layer._maybe_build(inputs)
    spec_kwargs = {k: v for k, v in kwargs.items() if k not in ("training", "mask")}
    try:
        outputs = layer.compute_output_spec(*args, **spec_kwargs)
    except TypeError:
        outputs = layer.compute_output_spec(*args)
    if isinstance(outputs, list):
        outputs = tuple(outputs)
    if _uses_masks(layer):
        mask = kwargs.get("mask")
        if mask is None:
            mask = _symbolic_mask_of(inputs)
        _attach_masks(outputs, _output_mask_ranks(layer, inputs, mask))
    Node(layer, args, kwargs, outputs)
    return outputs


def _symbolic_mask_of(inputs: Any) -> Any:
    if isinstance(inputs, (list, tuple)):
        masks = [_symbolic_mask_of(x) for x in inputs]
        return None if all(m is None for m in masks) else masks
    return getattr(inputs, "_keras_mask", None)


# ---------------------------------------------------------------------------- graph
class Graph:
    """The nodes between `inputs` and `outputs`, in Keras's order, ready to run.

    Args:
        inputs: A `KerasTensor`, or a (nested) list/tuple/dict of them.
        outputs: Likewise; each must be computable from `inputs`.

    Raises:
        ValueError: if an output cannot be reached from the inputs (naming the
            tensor and layer that are missing), or the graph has a cycle.
    """

    def __init__(self, inputs: Any, outputs: Any) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.flat_inputs = flatten_io(inputs)
        self.flat_outputs = flatten_io(outputs)
        for t in self.flat_inputs + self.flat_outputs:
            if not isinstance(t, KerasTensor):
                raise ValueError(
                    "Model inputs and outputs must be KerasTensors (from `Input()` and layer "
                    f"calls on them). Received: {t!r}"
                )
        for t in self.flat_inputs:
            layer = t._keras_history[0] if t._keras_history else None
            if layer is None:
                raise ValueError(f"Model input {t!r} was not created by `Input()`.")
        self.nodes, self.layers = self._map_graph()
        self.node_keys = {(n.layer, n.index) for n in self.nodes}
        self._check_computable()

    def _map_graph(self) -> tuple[list[Node], list[Layer]]:
        finished: set[int] = set()
        in_progress: set[int] = set()
        ordered: list[Node] = []
        layer_index: dict[int, int] = {}
        input_ids = {id(t) for t in self.flat_inputs}

        def visit(tensor: KerasTensor) -> None:
            history = tensor._keras_history
            if not history:
                source = getattr(tensor, "_mask_source", None)
                if source is not None:
                    visit(source)
                return
            layer, node_index, _ = history
            node = layer._inbound_nodes[node_index]
            if id(node) in finished:
                return
            if not node.is_input and id(tensor) in input_ids:
                finished.add(id(node))
                return
            if id(node) in in_progress:
                raise ValueError(
                    f"Tensor {tensor!r} from layer '{layer.name}' is part of a cycle."
                )
            layer_index.setdefault(id(layer), len(layer_index))
            in_progress.add(id(node))
            if not node.is_input:
                for t in node.input_tensors:
                    visit(t)
            in_progress.discard(id(node))
            finished.add(id(node))
            ordered.append(node)

        for t in self.flat_outputs:
            visit(t)
        in_graph = {id(n) for n in ordered}
        node_depth: dict[int, int] = {}
        layer_depth: dict[int, int] = {}
        layers_by_id: dict[int, Layer] = {}
        for node in reversed(ordered):
            depth = node_depth.setdefault(id(node), 0)
            depth = max(depth, layer_depth.get(id(node.layer), 0))
            layer_depth[id(node.layer)] = depth
            layers_by_id[id(node.layer)] = node.layer
            node_depth[id(node)] = depth
            if id(node.layer) not in layer_index:
                layer_index[id(node.layer)] = len(layer_index)
            for parent in node.parent_nodes:
                if id(parent) in in_graph:
                    node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
        for t in self.flat_inputs:
            layer = t._keras_history[0]
            if id(layer) not in layer_depth:
                node = layer._inbound_nodes[t._keras_history[1]]
                if node.is_input:
                    layer_depth[id(layer)] = 0
                    layer_index[id(layer)] = -1
                    layers_by_id[id(layer)] = layer
                    ordered.insert(0, node)
        by_depth: dict[int, list[Layer]] = defaultdict(list)
        for lid, depth in layer_depth.items():
            by_depth[depth].append(layers_by_id[lid])
        layers: list[Layer] = []
        for depth in sorted(by_depth, reverse=True):
            layers.extend(sorted(by_depth[depth], key=lambda la: layer_index[id(la)]))
        return ordered, layers

    def _check_computable(self) -> None:
        input_ids = {id(t) for t in self.flat_inputs}
        available = set(input_ids)
        done: list[str] = []
        self._run_nodes = []
        for node in self.nodes:
            if node.is_input or all(id(t) in input_ids for t in node.flat_outputs):
                continue
            for t in node.dependencies:
                if id(t) not in available:
                    raise ValueError(
                        f"Graph disconnected: cannot obtain value for tensor {t!r} at layer "
                        f"'{node.layer.name}'. The following previous layers were accessed "
                        f"without issue: {done}. Pass every `Input` the outputs depend on "
                        "in `inputs`."
                    )
            available.update(id(t) for t in node.flat_outputs)
            done.append(node.layer.name)
            self._run_nodes.append(node)

    def run(self, flat_values: list) -> Any:
        """Executes the graph on real tensors (one per flat input); returns outputs."""
        values: dict[int, Any] = {id(t): v for t, v in zip(self.flat_inputs, flat_values)}

        def resolve(x: Any) -> Any:
            if not isinstance(x, KerasTensor):
                return x
            key = id(x)
            if key in values:
                return values[key]
            source = getattr(x, "_mask_source", None)
            if source is not None and id(source) in values:
                return getattr(values[id(source)], "_keras_mask", None)
            raise ValueError(f"Graph: no value for tensor {x!r}.")

        for node in self._run_nodes:
            args = [map_structure(resolve, a) for a in node.call_args]
            kwargs = {k: map_structure(resolve, v) for k, v in node.call_kwargs.items()}
            result = node.layer(*args, **kwargs)
            flat = flatten_io(result)
            if len(flat) != len(node.flat_outputs):
                raise ValueError(
                    f"Layer '{node.layer.name}' returned {len(flat)} tensors at run time, but "
                    f"its symbolic call produced {len(node.flat_outputs)}."
                )
            for t, v in zip(node.flat_outputs, flat):
                values[id(t)] = v
        return map_structure(lambda t: values[id(t)], self.outputs)
