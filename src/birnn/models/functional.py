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

from collections import defaultdict
from typing import Any

from birnn import tree
from birnn.keras_tensor import KerasTensor
from birnn.layers.layer import Layer
from birnn.layers.node import Node


# ---------------------------------------------------------------------------- graph
class Graph:
    """The nodes between `inputs` and `outputs`, in Keras's order, ready to run.

    Args:
        inputs: A `KerasTensor`, or a (nested) list/tuple/dict of them.
        outputs: Likewise; each must be computable from `inputs`.

    Attributes:
        nodes: Every node between the inputs and outputs, in Keras's order.
        layers: Their layers, in Keras's order (`model.layers`).
        run_nodes: The nodes `run` executes, in order (those that compute
            something from the inputs).

    Raises:
        ValueError: if an output cannot be reached from the inputs (naming the
            tensor and layer that are missing), or the graph has a cycle.
    """

    def __init__(self, inputs: Any, outputs: Any) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.flat_inputs = tree.flatten(inputs)
        self.flat_outputs = tree.flatten(outputs)
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
                source = tensor.mask_source
                if source is not None:
                    visit(source)
                return
            layer, node_index, _ = history
            node = layer.inbound_nodes[node_index]
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
                node = layer.inbound_nodes[t._keras_history[1]]
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
        self.run_nodes: list[Node] = []
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
            self.run_nodes.append(node)

    def run(self, flat_values: list) -> Any:
        """Executes the graph on real tensors (one per flat input); returns outputs."""
        values: dict[int, Any] = {id(t): v for t, v in zip(self.flat_inputs, flat_values)}

        def resolve(x: Any) -> Any:
            if not isinstance(x, KerasTensor):
                return x
            key = id(x)
            if key in values:
                return values[key]
            source = getattr(x, "mask_source", None)
            if source is not None and id(source) in values:
                return getattr(values[id(source)], "_keras_mask", None)
            raise ValueError(f"Graph: no value for tensor {x!r}.")

        for node in self.run_nodes:
            args = [tree.map_structure(resolve, a) for a in node.call_args]
            kwargs = {k: tree.map_structure(resolve, v) for k, v in node.call_kwargs.items()}
            result = node.layer(*args, **kwargs)
            flat = tree.flatten(result)
            if len(flat) != len(node.flat_outputs):
                raise ValueError(
                    f"Layer '{node.layer.name}' returned {len(flat)} tensors at run time, but "
                    f"its symbolic call produced {len(node.flat_outputs)}."
                )
            for t, v in zip(node.flat_outputs, flat):
                values[id(t)] = v
        return tree.map_structure(lambda t: values[id(t)], self.outputs)
