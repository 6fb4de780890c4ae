"""`Sequential`: a plain stack of layers, each feeding the next."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from torch import nn

from birnn import backend, dtype_policies, tree
from birnn.keras_tensor import KerasTensor
from birnn.layers.input_layer import InputLayer
from birnn.layers.layer import Layer
from birnn.models.functional import Graph
from birnn.models.model import Model, output_names_of, standardize_input


class Sequential(Model):
    """A linear stack of layers.

    With a leading `Input(...)` (or a first layer given `input_shape=`, or a built
    single-input model such as a `Sequential` starting with an `Input`), the model
    is built at once: shapes are inferred and `summary()` works. Otherwise it is
    built on its first call (or `build(input_shape)`). `layers` excludes the
    `InputLayer`, as in Keras.

    Args:
        layers: Optional list of layers (an `Input()` tensor may come first).
        trainable: Whether the weights are trained.
        name: Name of the model.

    Examples:

    >>> from birnn import Input, layers
    >>> model = Sequential([Input(shape=(5, 10)), layers.Dense(4), layers.Dense(1)])
    >>> [layer.name for layer in model.layers] == [model.layers[0].name, model.layers[1].name]
    True
    >>> model.count_params()
    49
    >>> _ = model.pop()
    >>> len(model.layers)
    1
    """

    def __init__(
        self, layers: list | None = None, trainable: bool = True, name: str | None = None
    ) -> None:
        super().__init__(trainable=trainable, name=name)
        self._layers = nn.ModuleList()
        for layer in layers or []:
            self.add(layer, rebuild=False)
        self._rebuild()

    # ------------------------------------------------------------------ structure
    @property
    def _input_layer(self) -> InputLayer | None:
        return _input_layer_of(self._layers)

    @property
    def layers(self) -> list[Layer]:
        """The layers, without the `InputLayer`."""
        return [cast(Layer, m) for m in self._layers if not isinstance(m, InputLayer)]

    def add(self, layer: Any, rebuild: bool = True) -> None:
        """Appends a layer (or an `Input()` tensor, first) to the stack.

        Raises:
            ValueError: for non-layers, a second input, a duplicate layer name, or a
                layer incompatible with the previous layer's output.
        """
        if isinstance(layer, KerasTensor) and layer._keras_history:
            source = layer._keras_history[0]
            if isinstance(source, InputLayer):
                layer = source
        if not isinstance(layer, Layer):
            raise ValueError(
                "Only instances of `Layer` can be added to a Sequential model. "
                f"Received: {layer!r} (of type {type(layer).__name__})"
            )
        if isinstance(layer, InputLayer):
            if len(self._layers):
                raise ValueError(
                    f"Sequential model '{self.name}': an InputLayer can only be added first "
                    f"(the model already has layers {[la.name for la in self._layers]})."
                )
        else:
            if layer.name in {la.name for la in self._layers}:
                raise ValueError(
                    "All layers added to a Sequential model should have unique names. Name "
                    f"'{layer.name}' is already the name of a layer in this model. Update the "
                    "`name` argument to pass a unique name."
                )
            if not len(self._layers):
                input_layer = _leading_input_layer(layer)
                if input_layer is not None:
                    self._layers.append(input_layer)
        self._layers.append(layer)
        if rebuild:
            self._rebuild()

    def pop(self, rebuild: bool = True) -> Layer:
        """Removes and returns the last layer.

        Raises:
            TypeError: if there are no layers.
        """
        if not self.layers:
            raise TypeError(f"There are no layers in the Sequential model '{self.name}'.")
        layer = cast(Layer, self._layers[-1])
        del self._layers[-1]
        if rebuild:
            self._rebuild()
        return layer

    def _rebuild(self) -> None:
        self._graph = None
        self.built = False
        self._layout_cache = None
        if self.compiled:  # the outputs may have changed: re-resolve losses and metrics
            self._compiled_loss = self._compiled_metrics = None
        input_layer = self._input_layer
        if input_layer is None or not self.layers:
            return
        x = input_layer.output
        layers = self.layers
        for i, layer in enumerate(layers):
            x = layer(x)
            if isinstance(x, (list, tuple)) and i < len(layers) - 1:
                raise ValueError(
                    f"Sequential model '{self.name}': layer '{layer.name}' returns "
                    f"{len(x)} tensors; only the last layer of a Sequential model may return "
                    "several (use the functional API)."
                )
        self._graph = Graph(input_layer.output, x)
        self._inputs_struct = input_layer.output
        self._outputs_struct = x
        self.input_names = [input_layer.name]
        self.output_names = output_names_of(x)
        self.built = True

    def build(self, input_shape: Any = None) -> None:
        """Builds the model for inputs of `input_shape` (batch axis included).

        Raises:
            ValueError: if the model has no layers or no shape is known.
        """
        if self._graph is not None:
            return
        if not self.layers:
            raise ValueError(
                f"Sequential model '{self.name}' cannot be built because it has no layers. "
                "Call `model.add(layer)`."
            )
        if input_shape is None:
            raise ValueError(
                f"Sequential model '{self.name}' cannot be built without an input shape: pass "
                "`build(input_shape)` or start the model with `Input(shape=...)`."
            )
        self._build_from(tuple(input_shape), None)

    def _build_from(self, shape: tuple, dtype: Any) -> None:
        if self._input_layer is None:
            self._layers.insert(0, InputLayer(batch_shape=(None, *shape[1:]), dtype=dtype))
        self._rebuild()

    def build_from_inputs(self, inputs: Any) -> None:
        if self.built:
            return
        tensors = tree.flatten(inputs)
        if len(tensors) == 1 and hasattr(tensors[0], "shape"):
            x = tensors[0]
            dtype = backend.standardize_dtype(x.dtype)
            self._build_from(tuple(x.shape), None if backend.is_float_dtype(dtype) else dtype)
        if not self.built:
            self.built = True

    # ------------------------------------------------------------------ call
    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        x = inputs
        stack = self._layers  # read once: torch's `__getattr__` finds it on every read
        input_layer = _input_layer_of(stack)
        if isinstance(x, dict):
            x = self._input_from_dict(x)
        if input_layer is not None and self._graph is not None:
            x = standardize_input(self.name, 0, input_layer.output, x, self._device())
        if mask is not None:
            x._keras_mask = mask
        for layer in stack:
            if not isinstance(layer, InputLayer):
                x = layer(x)
        return x

    def _input_from_dict(self, inputs: dict) -> Any:
        """The value for the model's one input from a dict keyed by the input's name."""
        name = self._input_layer.name if self._input_layer is not None else None
        if name is None or name not in inputs:
            expected = f"one input named '{name}'" if name else "one tensor input"
            raise ValueError(
                f"Sequential model '{self.name}' takes {expected}, but received a dict with "
                f"keys {sorted(map(str, inputs))}."
            )
        return inputs[name]

    def compute_output_spec(self, *args: Any, **kwargs: Any) -> Any:
        if self._graph is None:
            self.build_from_inputs(args[0])
        return super().compute_output_spec(*args, **kwargs)

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        """Keras's Sequential config: `layers` (InputLayer first) and `build_input_shape`."""
        from birnn.saving.serialization import serialize_keras_object

        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": dtype_policies.serialize(self.dtype_policy),
            "layers": [serialize_keras_object(layer) for layer in self._layers],
        }
        if self._input_layer is not None:
            config["build_input_shape"] = list(self._input_layer.batch_shape)
        return config

    @classmethod
    def from_config(cls, config: Any, custom_objects: dict | None = None) -> Sequential:
        from birnn.saving.serialization import deserialize_keras_object

        if isinstance(config, list):
            config = {"layers": config}
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        layer_configs = config.get("layers", [])
        for i, layer_config in enumerate(layer_configs):  # the graph is made once, at the end
            layer = deserialize_keras_object(layer_config, custom_objects)
            model.add(layer, rebuild=i == len(layer_configs) - 1)
        shape = config.get("build_input_shape")
        if not model.built and shape is not None and model.layers:
            model.build(tuple(shape))
        return model

    def get_build_config(self) -> dict | None:
        if self._input_layer is not None:
            return {"input_shape": list(self._input_layer.batch_shape)}
        return None


def _leading_input_layer(layer: Layer) -> InputLayer | None:
    """The `InputLayer` a Sequential model starting with `layer` is built from, if any.

    A layer given `input_shape=` gives one; so does a built model with a single input
    (a nested `Sequential` starting with an `Input`, or a functional model): the new
    `InputLayer` takes its input shape, as Keras's does, and its dtype (Keras's is the
    default float, which an integer-input inner model then casts back).
    """
    shape = layer.declared_input_shape
    if shape is not None:
        return InputLayer(batch_shape=shape)
    graph = layer.functional_graph if isinstance(layer, Model) else None
    if graph is not None and len(graph.flat_inputs) == 1:
        spec = graph.flat_inputs[0]
        return InputLayer(batch_shape=tuple(spec.shape), dtype=spec.dtype)
    return None


def _input_layer_of(stack: Iterable[nn.Module]) -> InputLayer | None:
    """The `InputLayer` a layer stack starts with, if it starts with one."""
    first = next(iter(stack), None)  # indexing a ModuleList is slow: every call asks
    return first if isinstance(first, InputLayer) else None
