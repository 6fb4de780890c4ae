"""`Model`: a `Layer` that trains. Functional (`Model(inputs, outputs)`) or subclassed."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from birnn import backend, tree
from birnn.keras_tensor import KerasTensor
from birnn.layers.layer import Layer
from birnn.models.functional import Graph
from birnn.models.trainer import Trainer
from birnn.saving.operations import is_operation


def output_names_of(outputs: Any) -> list[str]:
    """A name per flat output (in `tree.flatten` order), used for losses and metrics.

    A tensor's name is its layer's; under a dict, the key (a path like `"key/layer"`
    when the key holds several tensors). Repeated names get `_1`, `_2`... suffixes.
    """
    names = []
    for path, tensor in tree.flatten_with_path(outputs):
        layer_name = tensor._keras_history[0].name
        keys = [str(p) for p in path if isinstance(p, str)]
        if keys and isinstance(path[-1], str):
            names.append("/".join(keys))
        elif keys:
            names.append("/".join([*keys, layer_name]))
        else:
            names.append(layer_name)
    unique = backend.NameCounter()
    return [unique(name) for name in names]


def standardize_input(
    model_name: str, index: int, spec: KerasTensor, x: Any, device: torch.device | None
) -> Any:
    """Converts one model input to a tensor of the `Input`'s dtype, checking its shape.

    A trailing axis of size 1 may be missing or extra (as in Keras).

    Raises:
        ValueError: naming the model, the input and both shapes on a mismatch.
    """
    if x is None:
        return None
    mask = getattr(x, "_keras_mask", None)
    if not isinstance(x, torch.Tensor):
        x = backend.convert_to_tensor(x)
    dtype = backend.torch_dtype(spec.dtype)
    if x.dtype != dtype:
        x = x.to(dtype)
    if device is not None and x.device != device:
        x = x.to(device, non_blocking=True)
    expected = spec.shape
    if x.dim() == len(expected) + 1 and x.shape[-1] == 1:
        x = x.squeeze(-1)
    elif x.dim() == len(expected) - 1 and expected[-1] == 1:
        x = x.unsqueeze(-1)
    actual = tuple(x.shape)
    mismatch = len(actual) != len(expected)
    for a, e in zip(actual[1:], expected[1:]):  # a loop, not `any()`: every call checks
        if e is not None and a != e:
            mismatch = True
            break
    if mismatch:
        name = spec._keras_history[0].name if spec._keras_history else f"input_{index}"
        message = (
            f"Input {index} ('{name}') of model '{model_name}' is incompatible with the "
            f"model: expected shape {expected}, but received input with shape {actual}."
        )
        features_differ = expected[-1] is not None and actual[-1] != expected[-1]
        if len(actual) != len(expected) or features_differ:
            raise ValueError(message)  # Keras warns, then a layer fails on the features
        # Other axes (timesteps): Keras warns and runs. The batch axis of `Input` is
        # ignored, as in Keras: only stateful layers rely on it, and they check it.
        warnings.warn(message, stacklevel=4)
    if mask is not None:
        x._keras_mask = mask
    return x


class Model(Trainer, Layer):
    """A model: layers plus `compile`/`fit`/`evaluate`/`predict`, `summary` and saving.

    Two ways to make one:

    - Functional: `Model(inputs, outputs)`, where `inputs` come from `Input()` and
      `outputs` from layer calls on them (lists and dicts for several).
    - Subclassing: define layers in `__init__` and the forward pass in `call()`.

    Args:
        inputs: Input `KerasTensor`(s) (functional only).
        outputs: Output `KerasTensor`(s) (functional only).
        name: Name of the model.
        trainable: Whether its weights are trained.

    Examples:

    >>> import numpy as np
    >>> from birnn import Input, layers
    >>> inputs = Input(shape=(3,))
    >>> outputs = layers.Dense(2)(inputs)
    >>> model = Model(inputs, outputs)
    >>> model.predict(np.ones((4, 3)), verbose=0).shape
    (4, 2)
    """

    _graph: Graph | None  # a functional model's graph; None for a subclassed model
    _device_cache: torch.device | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        inputs = kwargs.pop("inputs", None)
        outputs = kwargs.pop("outputs", None)
        if args:
            inputs = args[0]
            if len(args) > 1:
                outputs = args[1]
        if inputs is None and outputs is None:
            Layer.__init__(self, **kwargs)
            self._graph = None
            self._device_cache = None
            return
        if inputs is None or outputs is None:
            raise ValueError(
                "Model: a functional model needs both `inputs` and `outputs`. "
                f"Received: inputs={inputs!r}, outputs={outputs!r}"
            )
        if kwargs.get("name") is None:
            kwargs["name"] = backend.unique_name("functional")
        Layer.__init__(self, **kwargs)
        self._graph = None
        self._device_cache = None
        self._init_graph(inputs, outputs)

    def _init_graph(self, inputs: Any, outputs: Any) -> None:
        if (
            isinstance(outputs, list)
            and len(outputs) == 1
            and not isinstance(outputs[0], (list, dict))
        ):
            run_outputs = outputs[0]
        else:
            run_outputs = outputs
        self._graph = Graph(inputs, run_outputs)
        self._inputs_struct = inputs
        self._outputs_struct = outputs
        self._layers = nn.ModuleList(self._graph.layers)
        # As in Keras, `layers` leaves out the operation nodes that carry masks.
        self._visible_layers = [la for la in self._graph.layers if not is_operation(la)]
        self.output_names = output_names_of(run_outputs)
        self.input_names = [t._keras_history[0].name for t in self._graph.flat_inputs]
        self.built = True

    # ------------------------------------------------------------------ graph API
    @property
    def layers(self) -> list[Layer]:
        """The model's layers (a functional model's include its `InputLayer`s, not the
        operation nodes that compute its masks)."""
        if self._graph is not None:
            return list(self._visible_layers)
        return super().layers

    @property
    def inputs(self) -> list[KerasTensor] | None:
        return list(self._graph.flat_inputs) if self._graph is not None else None

    @property
    def outputs(self) -> list[KerasTensor] | None:
        return list(self._graph.flat_outputs) if self._graph is not None else None

    @property
    def functional_graph(self) -> Graph | None:
        """The recorded layer calls between `inputs` and `outputs` (None for a subclassed
        model, or a `Sequential` model not built from an `Input`)."""
        return self._graph

    @property
    def input(self) -> Any:
        return self._inputs_struct if self._graph is not None else None

    @property
    def output(self) -> Any:
        return self._outputs_struct if self._graph is not None else None

    @property
    def input_shape(self) -> Any:
        """The shape of the graph's input, or a list of shapes for several inputs."""
        return self._graph_shapes(self.inputs, "inputs")

    @property
    def output_shape(self) -> Any:
        """The shape of the graph's output, or a list of shapes for several outputs."""
        return self._graph_shapes(self.outputs, "outputs")

    def _graph_shapes(self, tensors: list[KerasTensor] | None, what: str) -> Any:
        if tensors is None:
            raise AttributeError(
                f"Model '{self.name}' has no defined {what}: it is not a functional model, "
                "or a Sequential model that has not been built with an `Input`."
            )
        shapes = [tuple(t.shape) for t in tensors]
        return shapes[0] if len(shapes) == 1 else shapes

    def to_json(self, **kwargs: Any) -> str:
        """The model's serialized config as a JSON string (`json.dumps` keyword arguments
        pass through); `birnn.models.model_from_json` reads it back."""
        import json

        from birnn.saving.serialization import serialize_keras_object

        return json.dumps(serialize_keras_object(self), **kwargs)

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name or by index in `layers`.

        Raises:
            ValueError: if neither or both are given, or no layer matches.
        """
        if (name is None) == (index is None):
            raise ValueError(
                "get_layer(): provide exactly one of `name` or `index`. "
                f"Received: name={name!r}, index={index!r}"
            )
        layers = self.layers
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(
                    f"get_layer(): index {index} is out of range; model '{self.name}' has "
                    f"{len(layers)} layers."
                )
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(
            f"No such layer: {name}. Existing layers are: {[la.name for la in layers]}."
        )

    def summary(
        self,
        line_length: int | None = None,
        positions: Any = None,
        print_fn: Callable[[str], Any] | None = None,
        expand_nested: bool = False,
        show_trainable: bool = False,
        layer_range: Any = None,
    ) -> None:
        """Prints a table of the layers, their output shapes and parameter counts.

        Args:
            line_length: Total width of the table in characters. Defaults to 88 for a
                chain of layers and 108 for a graph, narrowed to the terminal's width.
            positions: Right edge of each column, as fractions of the line (all at
                most 1) or as character positions. Defaults to Keras's.
            print_fn: Called with each line instead of `print`.
            expand_nested: Whether to list the layers of nested models, indented
                under the model. Wrappers such as `Bidirectional` stay one row.
            show_trainable: Whether to add a "Trainable" column.
            layer_range: `(first, last)`: show only the top-level layers from the
                first to the last whose name matches one of these regular expressions
                (matched at the start of the name). The totals still cover the whole
                model.

        Example:

        >>> from birnn import Input, Sequential, layers
        >>> inner = Sequential([Input((4,)), layers.Dense(3, name="hidden")], name="inner")
        >>> model = Sequential([Input((4,)), inner, layers.Dense(2, name="out")])
        >>> lines = []
        >>> model.summary(print_fn=lines.append, expand_nested=True)
        >>> [line.split("(")[0].strip("│ └") for line in lines if line.startswith("│")]
        ['inner', 'hidden', 'out']
        >>> lines.clear()
        >>> model.summary(print_fn=lines.append, layer_range=("out", "out"))
        >>> [line.split("(")[0].strip("│ └") for line in lines if line.startswith("│")]
        ['out']
        """
        from birnn.models.summary import print_summary

        print_summary(
            self,
            line_length=line_length,
            positions=positions,
            print_fn=print_fn,
            expand_nested=expand_nested,
            show_trainable=show_trainable,
            layer_range=layer_range,
        )

    # ------------------------------------------------------------------ call
    def _apply(self, fn, *args, **kwargs):
        self._device_cache = None
        return super()._apply(fn, *args, **kwargs)

    def _device(self) -> torch.device | None:
        if self._device_cache is None:
            self._device_cache = next((p.device for p in self.parameters()), None)
        return self._device_cache

    def _flat_call_inputs(self, inputs: Any) -> list:
        graph = self._graph
        assert graph is not None  # called for functional models only
        specs = graph.flat_inputs
        struct = graph.inputs
        if isinstance(inputs, dict) and not isinstance(struct, dict):
            names = self.input_names
            missing = [n for n in names if n not in inputs]
            if missing:
                raise ValueError(
                    f"Model '{self.name}' expects inputs named {names}; missing {missing} in "
                    f"the dict given (keys {sorted(inputs)})."
                )
            return [inputs[n] for n in names]
        if isinstance(struct, dict) and isinstance(inputs, dict):
            missing = [k for k in struct if k not in inputs]
            if missing:
                raise ValueError(
                    f"Model '{self.name}' expects input keys {sorted(struct)}; missing {missing}."
                )
            return tree.flatten({k: inputs[k] for k in struct})
        if len(specs) == 1:
            if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
                return [inputs[0]]
            return [inputs]
        flat = tree.flatten(inputs) if isinstance(inputs, (list, tuple, dict)) else [inputs]
        if len(flat) != len(specs):
            raise ValueError(
                f"Model '{self.name}' expects {len(specs)} inputs {self.input_names}, but it "
                f"received {len(flat)} input tensor(s)."
            )
        return flat

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        """Runs the functional graph (subclassed models override this)."""
        if self._graph is None:
            raise NotImplementedError(
                f"Model '{self.name}' has no `call()`: subclass `Model` and implement `call`, "
                "or create it with `Model(inputs, outputs)`."
            )
        flat = self._flat_call_inputs(inputs)
        device = self._device()
        specs = self._graph.flat_inputs
        values = [
            standardize_input(self.name, i, s, x, device)
            for i, (s, x) in enumerate(zip(specs, flat))
        ]
        if mask is not None:
            masks = tree.flatten(mask) if isinstance(mask, (list, tuple)) else [mask]
            for value, m in zip(values, masks):
                if m is not None and value is not None:
                    value._keras_mask = m
        return self._graph.run(values)

    def compute_output_spec(self, *args: Any, **kwargs: Any) -> Any:
        if self._graph is None:
            return Layer.compute_output_spec(self, *args, **kwargs)
        batch = None
        first = next((t for t in tree.flatten(args[0]) if isinstance(t, KerasTensor)), None)
        if first is not None and first.shape:
            batch = first.shape[0]

        def fresh(t: KerasTensor) -> KerasTensor:
            shape = (batch, *t.shape[1:]) if t.shape else t.shape
            return KerasTensor(shape, dtype=t.dtype)

        return tree.map_structure(fresh, self._graph.outputs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        if self._graph is None:
            return Layer.compute_output_shape(self, input_shape)

        return tree.map_structure(lambda t: t.shape, self._graph.outputs)

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        """Keras's config: the graph for functional models, the base keys otherwise."""
        if self._graph is not None:
            from birnn.models.functional_config import functional_config

            return functional_config(self)
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> Model:
        """Rebuilds a model from `get_config()` (Keras's functional format included)."""
        if "layers" in config and "input_layers" in config and "output_layers" in config:
            from birnn.models.functional_config import functional_from_config

            return functional_from_config(cls, config, custom_objects)
        return cls(**config)

    def get_build_config(self) -> dict | None:
        if self._graph is not None:
            return {"input_shape": None}
        return None

    def build_from_config(self, config: dict) -> None:
        shape = (config or {}).get("input_shape")
        if shape is not None and not self.built:
            self.build(tuple(shape))

    def get_compile_config(self) -> dict:
        """What `compile()` was given, serialized as Keras writes it (`{}` if not compiled)."""
        if not self.compiled:
            return {}
        from birnn import losses, metrics, optimizers

        cfg = self._compile_config
        if any(losses.is_torch_loss(v) for v in tree.flatten(cfg["loss"])):
            warnings.warn(
                f"Model '{self.name}' was compiled with a PyTorch loss, which has no Keras "
                "config: the file is written without its compile config (weights and "
                "optimizer variables are saved; compile again after loading).",
                stacklevel=3,
            )
            return {}

        def ser(value: Any, module: Any) -> Any:
            if value is None or isinstance(value, str):
                return value
            if isinstance(value, (list, tuple)):
                return [ser(v, module) for v in value]
            if isinstance(value, dict):
                return {k: ser(v, module) for k, v in value.items()}
            return module.serialize(value)

        optimizer = self.optimizer
        if isinstance(optimizer, optimizers.LossScaleOptimizer) and optimizer.inner_optimizer is (
            getattr(self, "_compile_optimizer", None)
        ):  # wrapped by `compile` (mixed_float16): Keras records what compile was given
            optimizer = optimizer.inner_optimizer
        return {
            "optimizer": optimizers.serialize(optimizer),
            "loss": ser(cfg["loss"], losses),
            "loss_weights": cfg["loss_weights"],
            "metrics": ser(cfg["metrics"], metrics),
            "weighted_metrics": ser(cfg["weighted_metrics"], metrics),
            "run_eagerly": self.run_eagerly,
            "steps_per_execution": 1,
            "jit_compile": self.jit_compile,
        }

    def compile_from_config(self, config: dict) -> None:
        """Compiles from `get_compile_config()`'s output (or Keras's)."""
        if not config:
            return
        from birnn import losses, metrics, optimizers

        def de(value: Any, module: Any) -> Any:
            if value is None or isinstance(value, str):
                return value
            if isinstance(value, list):
                return [de(v, module) for v in value]
            if isinstance(value, dict):
                if "class_name" in value:
                    return module.deserialize(value)
                return {k: de(v, module) for k, v in value.items()}
            return value

        optimizer = config.get("optimizer") or "rmsprop"
        self.compile(
            optimizer=optimizers.get(optimizer),
            loss=de(config.get("loss"), losses),
            loss_weights=config.get("loss_weights"),
            metrics=de(config.get("metrics"), metrics),
            weighted_metrics=de(config.get("weighted_metrics"), metrics),
            run_eagerly=bool(config.get("run_eagerly", False)),
            jit_compile=bool(config.get("jit_compile", False)),
        )

    # ------------------------------------------------------------------ saving
    def save(
        self, filepath: Any, overwrite: bool = True, zipped: bool | None = None, **kwargs: Any
    ) -> None:
        """Saves the model as a Keras 3 `.keras` file (loadable by Keras and birnn).

        Arguments as `birnn.saving.save_model`'s (Keras's): `overwrite`, `zipped`,
        `include_optimizer` (legacy `.h5` only); other keywords raise `ValueError`.
        Under a distribution, every process may call it: process 0 writes the file
        and every process returns once it is complete.
        """
        from birnn.distribution.runtime import run_on_primary
        from birnn.saving.keras_file import save_model

        run_on_primary(
            f"saving {filepath}",
            lambda: save_model(self, filepath, overwrite=overwrite, zipped=zipped, **kwargs),
        )

    def export(
        self,
        filepath: Any,
        format: str = "onnx",
        verbose: bool | None = None,
        input_signature: Any = None,
        **kwargs: Any,
    ) -> None:
        """Exports the model as an artifact for inference: ONNX or a `torch.export` program.

        The artifact takes any batch size (1 included) and, for `Input` axes left
        as `None`, any number of timesteps; `Masking` and `Embedding(mask_zero=True)`
        masks are computed inside it exactly as `predict` computes them. It runs
        in inference mode (`training=False`); a stateful layer's state is not
        carried between calls.

        Args:
            filepath: `str` or `pathlib.Path`: where to write the artifact.
            format: `"onnx"` (an ONNX model; needs `pip install birnn[export]`)
                or `"torch"` (a `torch.export` program saved with
                `torch.export.save`; load it with
                `torch.export.load(filepath).module()`). Keras's
                `"tf_saved_model"`, `"litert"` and `"openvino"` are not supported.
            verbose: Whether to print a message once saved. Defaults to `None`
                (print).
            input_signature: Optional shapes and dtypes of the inputs: a
                structure (one entry per model input) of objects with `shape` and
                `dtype` (`InputSpec`, `KerasTensor`, a tensor or array, whose
                first axis then counts as the batch). `None` axes stay
                symbolic. Defaults to the model's `Input`s.
            **kwargs: `opset_version` (ONNX only; birnn writes opset 20 and
                converts to another one if asked).

        ONNX: `LSTM`, `GRU` and `SimpleRNN` layers (also wrapped in
        `Bidirectional`) with tanh, sigmoid or relu activations become ONNX's
        own `LSTM`/`GRU`/`RNN` operators (a `Bidirectional` pair one operator
        with `direction="bidirectional"`); other activations and
        `StackedRNNCells` become a `Scan` loop. Layers with no ONNX form in
        the converter raise a `ValueError` naming them; `format="torch"`
        exports any model.

        Raises:
            ValueError: an unsupported `format`, or a layer with no ONNX form.
            ImportError: `format="onnx"` without the `onnx` package.

        Examples:

        >>> import numpy as np, tempfile, os, torch
        >>> from birnn import Input, Sequential, layers
        >>> model = Sequential([Input((None, 3)), layers.Masking(),
        ...                     layers.Bidirectional(layers.GRU(4)), layers.Dense(2)])
        >>> path = os.path.join(tempfile.mkdtemp(), "model.pt2")
        >>> model.export(path, format="torch", verbose=False)
        >>> served = torch.export.load(path).module()
        >>> x = np.random.rand(1, 9, 3).astype("float32")
        >>> y = served(torch.from_numpy(x)).detach().numpy()
        >>> np.allclose(y, model.predict(x, verbose=0), atol=1e-5)
        True
        """
        from birnn.saving.export import export_model

        export_model(self, filepath, format, verbose, input_signature, **kwargs)

    def save_weights(self, filepath: Any, overwrite: bool = True) -> None:
        """Saves the weights as a Keras 3 `.weights.h5` file (once, as `save` does)."""
        from birnn.distribution.runtime import run_on_primary
        from birnn.saving.weights_file import save_weights

        run_on_primary(
            f"saving {filepath}", lambda: save_weights(self, filepath, overwrite=overwrite)
        )

    def load_weights(self, filepath: Any, skip_mismatch: bool = False, **kwargs: Any) -> None:
        """Loads weights saved by Keras 3 or birnn (`.weights.h5`, or a `.keras` file's).

        Args:
            filepath: A `.weights.h5` or `.keras` file.
            skip_mismatch: As in Keras: skip (with a warning) the layers whose weights
                differ from the file's in count or shape, instead of raising.

        Raises:
            ValueError: for keyword arguments Keras 3 does not take for these files.
            birnn.saving.WeightsMismatchError: the weights do not fit (nothing loaded).
        """
        if kwargs:
            raise ValueError(
                f"Model '{self.name}': load_weights() got unexpected keyword arguments "
                f"{sorted(kwargs)} (it takes `filepath` and `skip_mismatch`)."
            )
        from birnn.saving.keras_file import load_weights

        load_weights(self, filepath, skip_mismatch=bool(skip_mismatch))

    def extra_repr(self) -> str:
        return f"name={self.name!r}"
