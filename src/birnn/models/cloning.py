"""`clone_model`, `model_from_json`: new models with a model's architecture."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

from birnn import tree
from birnn.keras_tensor import KerasTensor
from birnn.layers.input_layer import Input, InputLayer
from birnn.layers.layer import Layer
from birnn.models.model import Model
from birnn.models.sequential import Sequential


def _fresh_copy(layer: Layer) -> Layer:
    from birnn.saving.serialization import recreate_layer

    return cast(Layer, recreate_layer(layer))


def clone_model(
    model: Model,
    input_tensors: Any = None,
    clone_function: Callable[[Layer], Layer] | None = None,
    call_function: Callable[..., Any] | None = None,
    recursive: bool = False,
    **kwargs: Any,
) -> Model:
    """A new model with `model`'s architecture and freshly initialised weights.

    As Keras's `clone_model`: layers are recreated (by default from their configs;
    weights are not shared or copied), and the graph is rebuilt on new inputs.

    Args:
        model: A functional or `Sequential` model.
        input_tensors: Optional `KerasTensor`(s) to build the clone on (functional
            models), or one `Input` tensor for a `Sequential` model.
        clone_function: `layer -> new layer`, called once per layer (default: a
            fresh layer from the layer's config). Return `layer` itself to share it.
        call_function: Optional `(layer, *args, **kwargs) -> outputs` used instead of
            `layer(*args, **kwargs)` when rebuilding a functional graph.
        recursive: Whether `clone_function` also applies inside nested functional
            or `Sequential` models.
        **kwargs: Keras's other arguments, which birnn does not use; an unknown one
            is a `ValueError`.

    Returns:
        The clone, uncompiled.

    Examples:

    >>> from birnn import Input, Sequential, layers
    >>> model = Sequential([Input((5, 3)), layers.Bidirectional(layers.LSTM(4))])
    >>> clone = clone_model(model)
    >>> clone.count_params() == model.count_params(), clone.layers[0] is model.layers[0]
    (True, False)
    """
    if kwargs:
        raise ValueError(f"clone_model: unexpected keyword arguments {sorted(kwargs)}.")
    if not isinstance(model, Model):
        raise ValueError(
            f"clone_model: argument `model` must be a birnn `Model`. Received: {model!r}"
        )
    clone = clone_function or _fresh_copy
    if recursive:
        plain = clone

        def clone(layer: Layer) -> Layer:
            if isinstance(layer, Model) and layer.inputs is not None:
                return clone_model(layer, clone_function=plain, recursive=True)
            return plain(layer)

    if isinstance(model, Sequential):
        return _clone_sequential(model, input_tensors, clone)
    if model.inputs is None:
        if clone_function is not None or input_tensors is not None:
            raise ValueError(
                "clone_model: a subclassed model can only be cloned from its config, "
                "without `clone_function` or `input_tensors`."
            )
        return cast(Model, _fresh_copy(model))
    return _clone_functional(model, input_tensors, clone, call_function)


def _clone_sequential(model: Sequential, input_tensors: Any, clone: Callable) -> Sequential:
    layers = [clone(layer) for layer in model.layers]
    start: list = []
    if input_tensors is not None:
        start = [input_tensors]
    elif model.inputs is not None:
        spec = model.inputs[0]
        start = [Input(batch_shape=spec.shape, dtype=spec.dtype, name=spec.name)]
    return Sequential([*start, *layers], name=model.name, trainable=model.trainable)


def _clone_functional(
    model: Model, input_tensors: Any, clone: Callable, call_function: Callable | None
) -> Model:
    graph, old_inputs = model.functional_graph, model.inputs
    assert graph is not None and old_inputs is not None  # a functional model
    if input_tensors is None:
        new_inputs = [
            # A graph's input tensors always carry their (InputLayer, 0, 0) history.
            Input(batch_shape=t.shape, dtype=t.dtype, name=cast(tuple, t._keras_history)[0].name)
            for t in old_inputs
        ]
    else:
        new_inputs = list(tree.flatten(input_tensors))
        if len(new_inputs) != len(old_inputs):
            raise ValueError(
                f"clone_model: `input_tensors` must hold {len(old_inputs)} tensor(s), one "
                f"per model input. Received {len(new_inputs)}."
            )
    mapping = {id(old): new for old, new in zip(old_inputs, new_inputs)}
    clones: dict[int, Layer] = {}

    def swap(value: Any) -> Any:
        if isinstance(value, KerasTensor):
            if id(value) not in mapping:
                raise ValueError(
                    f"clone_model: tensor {value!r} is not computed from the model's inputs."
                )
            return mapping[id(value)]
        return value

    for node in graph.nodes:
        if node.is_input or isinstance(node.layer, InputLayer):
            continue
        layer = node.layer
        if id(layer) not in clones:
            clones[id(layer)] = clone(layer)
        args = tree.map_structure(swap, list(node.call_args))
        kwargs = {k: tree.map_structure(swap, v) for k, v in node.call_kwargs.items()}
        if call_function is not None:
            outputs = call_function(clones[id(layer)], *args, **kwargs)
        else:
            outputs = clones[id(layer)](*args, **kwargs)
        for old, new in zip(node.flat_outputs, tree.flatten(outputs)):
            mapping[id(old)] = new
    inputs = tree.map_structure(swap, model.input)
    outputs = tree.map_structure(swap, model.output)
    return Model(inputs, outputs, name=model.name, trainable=model.trainable)


def model_from_json(json_string: str, custom_objects: dict | None = None) -> Model:
    """The (uncompiled, freshly initialised) model described by `model.to_json()`.

    Examples:

    >>> from birnn import Input, Sequential, layers
    >>> model = Sequential([Input((5, 3)), layers.LSTM(4)])
    >>> model_from_json(model.to_json()).output_shape
    (None, 4)
    """
    from birnn.saving.serialization import deserialize_keras_object

    return deserialize_keras_object(json.loads(json_string), custom_objects=custom_objects)
