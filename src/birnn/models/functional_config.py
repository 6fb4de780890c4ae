"""Functional models to and from Keras 3's config (`layers` with `inbound_nodes`...).

The format is the one `keras.Model.get_config()` writes, so `.keras` files cross
both ways: each layer's serialized config plus its `name` and `inbound_nodes`
(`{"args": [...], "kwargs": {...}}`, symbolic tensors written as
`__keras_tensor__` dicts with `keras_history: [layer name, node index, tensor
index]`, node indices counted among the nodes of this model only), and
`input_layers`/`output_layers` in the structure of the model's inputs/outputs.
Keras's older list form of `inbound_nodes` is read too. The masks are written as
the operation nodes Keras records for them (`birnn.models.functional_masks`).
"""

from __future__ import annotations

from typing import Any

from birnn.keras_tensor import KerasTensor
from birnn.models.functional_masks import mask_operations


def _is_functional(layer: Any) -> bool:
    return (
        getattr(layer, "functional_graph", None) is not None
        and type(layer).__name__ != "Sequential"
    )


def _node_map(model: Any, io: bool = False) -> dict[tuple[int, int], int]:
    """(layer id, node index) -> index among the nodes that belong to `model`.

    Keras counts a nested functional model's calls from 1 in `input_layers`/
    `output_layers` (its own graph is node 0 there) but from 0 in `inbound_nodes`.
    """
    graph = model.functional_graph
    keys = graph.node_keys
    mapping = {}
    for layer in graph.layers:
        kept = 1 if io and _is_functional(layer) else 0
        for node in layer.inbound_nodes:
            if (layer, node.index) in keys:
                mapping[(id(layer), node.index)] = kept
                kept += 1
    return mapping


def _tensor_config(t: KerasTensor, mapping: dict) -> dict:
    assert t._keras_history is not None  # every tensor of a graph has its history
    layer, node_index, tensor_index = t._keras_history
    return {
        "class_name": "__keras_tensor__",
        "config": {
            "shape": list(t.shape),
            "dtype": t.dtype,
            "keras_history": [
                layer.name,
                mapping.get((id(layer), node_index), node_index),
                tensor_index,
            ],
        },
    }


def _serialize_args(value: Any, mapping: dict) -> Any:
    from birnn.saving.serialization import serialize_keras_object

    if isinstance(value, KerasTensor):
        return _tensor_config(value, mapping)
    if isinstance(value, (list, tuple)):
        return [_serialize_args(v, mapping) for v in value]
    if isinstance(value, dict):
        return {k: _serialize_args(v, mapping) for k, v in value.items()}
    return serialize_keras_object(value)


def _serialize_node(node: Any, mapping: dict, mask: KerasTensor | None = None) -> dict | None:
    if node.is_input:
        return None
    kwargs = {
        k: v
        for k, v in node.call_kwargs.items()
        if not (isinstance(v, KerasTensor) and v._keras_history is None)
    }
    if mask is not None:
        kwargs["mask"] = mask
    return {
        "args": _serialize_args(list(node.call_args), mapping),
        "kwargs": _serialize_args(kwargs, mapping),
    }


def _structure(struct: Any, fn) -> Any:
    if isinstance(struct, KerasTensor):
        return fn(struct)
    if isinstance(struct, dict):
        return {k: _structure(v, fn) for k, v in struct.items()}
    return [_structure(v, fn) for v in struct]


def functional_config(model: Any) -> dict:
    """Keras's `get_config()` of a functional model."""
    from birnn.saving.serialization import serialize_keras_object

    mapping = _node_map(model)
    graph = model.functional_graph
    masks = mask_operations(graph.nodes, {layer.name for layer in graph.layers})
    keys = graph.node_keys | {(op, node.index) for op in masks.layers for node in op.inbound_nodes}
    layer_configs = []
    for layer in [*graph.layers, *masks.layers]:
        config = serialize_keras_object(layer)
        config["name"] = layer.name
        nodes = []
        for node in layer.inbound_nodes:
            if (layer, node.index) in keys:
                data = _serialize_node(node, mapping, masks.arguments.get(id(node)))
                if data is not None:
                    nodes.append(data)
        config["inbound_nodes"] = nodes
        layer_configs.append(config)

    io_mapping = _node_map(model, io=True)

    def history(t: KerasTensor) -> list:
        assert t._keras_history is not None  # every tensor of a graph has its history
        layer, node_index, tensor_index = t._keras_history
        return [layer.name, io_mapping.get((id(layer), node_index), node_index), tensor_index]

    return {
        "name": model.name,
        "trainable": model.trainable,
        "layers": layer_configs,
        "input_layers": _structure(model.input, history),
        "output_layers": _structure(model.output, history),
    }


def _deserialize_layer(layer_data: dict, custom_objects: dict | None) -> Any:
    from birnn.saving.serialization import deserialize_keras_object

    data = {k: v for k, v in layer_data.items() if k not in ("name", "inbound_nodes")}
    return deserialize_keras_object(data, custom_objects)


class _NotReady(Exception):
    """A node refers to a tensor whose producing node is not created yet."""


def _lookup(
    created: dict, name: str, node_index: int, tensor_index: int, io: bool = False
) -> KerasTensor:
    if name not in created:
        raise ValueError(f"Invalid functional model config: unknown layer '{name}'.")
    layer = created[name]
    if io and _is_functional(layer):
        node_index -= 1
    nodes = layer.inbound_nodes
    if node_index < 0:
        raise ValueError(f"Invalid functional model config: no node {node_index} of '{name}'.")
    if node_index >= len(nodes):
        raise _NotReady
    return nodes[node_index].flat_outputs[tensor_index]


def _deserialize_value(value: Any, created: dict) -> Any:
    from birnn.saving.serialization import deserialize_keras_object

    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            history = value["config"]["keras_history"]
            return _lookup(created, *history)
        if "class_name" in value and "config" in value:
            return deserialize_keras_object(value)
        return {k: _deserialize_value(v, created) for k, v in value.items()}
    if isinstance(value, list):
        return [_deserialize_value(v, created) for v in value]
    return value


def _node_call(node_data: Any, created: dict) -> tuple[list, dict]:
    if isinstance(node_data, dict):
        args = _deserialize_value(node_data.get("args", []), created)
        kwargs = _deserialize_value(node_data.get("kwargs", {}), created)
        return args, kwargs
    tensors, kwargs = [], {}
    for entry in node_data:  # Keras 2: [[name, node_index, tensor_index, kwargs], ...]
        tensors.append(_lookup(created, entry[0], entry[1], entry[2]))
        if len(entry) > 3 and entry[3]:
            kwargs = _deserialize_value(entry[3], created)
    return [tensors[0] if len(tensors) == 1 else tensors], kwargs


def _map_io(struct: Any, created: dict) -> Any:
    if isinstance(struct, list) and len(struct) == 3 and isinstance(struct[0], str):
        return _lookup(created, struct[0], struct[1], struct[2], io=True)
    if isinstance(struct, dict):
        return {k: _map_io(v, created) for k, v in struct.items()}
    return [_map_io(v, created) for v in struct]


def _as_json(value: Any) -> Any:
    """`value` with its tuples as lists, the way a JSON round trip gives it back.

    `keras.Model.get_config()` in memory holds tuples (node `args`, shapes) where
    the `.keras` file's JSON has lists; both forms are read the same way.
    """
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_json(v) for v in value]
    return value


def functional_from_config(cls: type, config: dict, custom_objects: dict | None = None) -> Any:
    """Rebuilds a functional model from Keras's config (replaying each layer call).

    The config may come from JSON (a `.keras` file) or from `get_config()` in memory.
    """
    config = _as_json(config)
    created: dict[str, Any] = {}
    pending: dict[str, list] = {}
    order = []
    for layer_data in config["layers"]:
        layer = _deserialize_layer(layer_data, custom_objects)
        created[layer_data["name"]] = layer
        order.append(layer_data["name"])
        pending[layer_data["name"]] = list(layer_data.get("inbound_nodes") or [])
    while any(pending.values()):
        progressed = False
        for name in order:
            queue = pending[name]
            while queue:
                try:
                    args, kwargs = _node_call(queue[0], created)
                except _NotReady:
                    break
                created[name](*args, **kwargs)
                queue.pop(0)
                progressed = True
        if not progressed:
            stuck = [n for n in order if pending[n]]
            raise ValueError(
                "Invalid functional model config: the graph has loops or disconnected nodes. "
                f"Unresolved layers: {stuck}"
            )
    inputs = _map_io(config["input_layers"], created)
    outputs = _map_io(config["output_layers"], created)
    extra = {
        k: v for k, v in config.items() if k not in ("layers", "input_layers", "output_layers")
    }
    extra.pop("dtype", None)
    return cls(inputs=inputs, outputs=outputs, **extra)
