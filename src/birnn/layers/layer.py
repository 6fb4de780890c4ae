"""`Layer`: a `torch.nn.Module` with Keras's lazy build, weights, masks and config."""

from __future__ import annotations

import functools
import inspect
import itertools
import types
import weakref
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.modules.module as torch_module
from torch import nn
from torch.nn.parameter import UninitializedParameter, is_lazy

from birnn import backend, dtype_policies, tree
from birnn.keras_tensor import KerasTensor, is_symbolic
from birnn.layers.arguments import get_argument
from birnn.layers.input_spec import check_input_compatibility
from birnn.layers.node import mask_of, symbolic_call
from birnn.layers.tracking import TrackedStructure, holds_trackable, track

_BASE_KWARGS = frozenset(
    {
        "name",
        "trainable",
        "dtype",
        "autocast",
        "activity_regularizer",
        "input_shape",
        "input_dim",
        "batch_input_shape",
        "batch_size",
    }
)


# Changes whenever an attribute of any layer is set or deleted: facts computed from
# layers' configuration are cached per call under it (`Layer._config_cached`). Taken
# from a counter (atomic) after the change, a version is never current twice.
_versions = itertools.count(1)
_config_version = 0


# `Layer.__call__`: the call was given its `training` (none inherited from a scope).
_NOT_INHERITED = object()


def config_version() -> int:
    """A number that changes whenever an attribute of any layer is set or deleted, or a
    layer gets a weight (`add_weight`, `register_parameter`)."""
    return _config_version


def _configuration_changed() -> None:
    global _config_version
    _config_version = next(_versions)


@dataclass
class _WeightSpec:
    """What `add_weight` knows about a weight beyond its tensor."""

    keras_name: str
    trainable: bool
    regularizer: Any = None
    constraint: Any = None
    autocast: bool = True


def _shape_of(structure: Any) -> Any:
    return tree.map_structure(
        lambda x: tuple(x.shape) if hasattr(x, "shape") and x is not None else None, structure
    )


def _is_number_nest(structure: Any) -> bool:
    """Whether `structure` is a (nested) list/tuple of plain numbers only."""
    if isinstance(structure, (list, tuple)):
        return len(structure) > 0 and all(_is_number_nest(x) for x in structure)
    return isinstance(structure, (int, float, bool, np.number, np.bool_))


def _set_mask(outputs: Any, mask: Any) -> None:
    if isinstance(outputs, (list, tuple)):
        masks = mask if isinstance(mask, (list, tuple)) else [mask] * len(outputs)
        for out, m in zip(outputs, masks):
            _set_mask(out, m)
    elif isinstance(outputs, (torch.Tensor, KerasTensor)):
        if mask is None and getattr(outputs, "_keras_mask", None) is None:
            return  # nothing to set or clear; a first attribute costs a tensor a `__dict__`
        try:
            outputs._keras_mask = mask  # type: ignore[union-attr]  # Keras's mask slot
        except (AttributeError, RuntimeError):  # tensors that refuse attributes
            pass


class _LayerType(type):
    """Runs `Layer._after_init` once the outermost `__init__` of a layer has returned."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        layer = super().__call__(*args, **kwargs)
        layer._after_init()
        return layer


class Layer(nn.Module, metaclass=_LayerType):
    """The base class of every birnn layer: a `torch.nn.Module` with Keras's contract.

    A layer creates its weights lazily in `build(input_shape)` the first time it is
    called, computes in `call(inputs, ...)`, and carries a mask from layer to layer
    on its output tensors (the `_keras_mask` attribute), as Keras does. Weights are
    `torch.nn.Parameter`s, so `parameters()`, `state_dict()`, optimizers, DDP and
    `torch.compile` work as for any module; `get_weights()`/`set_weights()` use
    Keras's order and shapes.

    Args:
        trainable: Whether the layer's weights are updated by training.
        name: Name of the layer; by default a unique snake_case name derived from
            the class name (`dense`, `dense_1`, ...).
        dtype: The layer's dtype policy: a `DTypePolicy`, a policy name
            (`"mixed_float16"`, `"mixed_bfloat16"`: float32 weights, reduced
            precision computation) or a dtype (`"float32"`: both). Defaults to
            the global policy (`birnn.mixed_precision.set_global_policy`).
        autocast: Whether to cast floating inputs to the compute dtype (and, under
            a mixed policy, read the weights in it).
        activity_regularizer: Optional regularizer applied to the layer's outputs,
            added to `layer.losses`.
        input_shape: Optional shape (without the batch axis) for the first layer
            of a `Sequential` model.

    Call arguments:
        inputs: A tensor, NumPy array or nested list of those.
        mask: Optional boolean mask, passed to `call()` when it accepts one.
            Defaults to the mask carried by `inputs`.
        training: Whether to run in training mode (dropout). Defaults to the
            value of the enclosing call, else `False`.

    Examples:

    >>> import torch
    >>> class Scale(Layer):
    ...     def build(self, input_shape):
    ...         self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones",
    ...                                      name="scale")
    ...     def call(self, inputs):
    ...         return inputs * self.scale
    >>> layer = Scale()
    >>> layer(torch.ones(2, 3)).shape
    torch.Size([2, 3])
    >>> [w.shape for w in layer.get_weights()]
    [(3,)]
    """

    supports_masking: bool = False
    # A layer whose `build` only creates its own weights sets this to a batch
    # shape with which `build` can run before the first call (see `_after_init`).
    _lazy_build_probe: tuple | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> Layer:
        layer = super().__new__(cls)
        if cls.get_config is Layer.get_config and cls.__init__ is not Layer.__init__:
            # Keras's automatic config: a subclass that does not write `get_config`
            # is saved with the arguments it was constructed with.
            try:
                bound = inspect.signature(cls.__init__).bind(layer, *args, **kwargs)
            except TypeError:
                bound = None  # `__init__` raises the error itself
            if bound is not None:
                arguments = dict(list(bound.arguments.items())[1:])
                for name, parameter in inspect.signature(cls.__init__).parameters.items():
                    if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                        arguments.update(arguments.pop(name, {}))
                    elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                        arguments.pop(name, None)
                object.__setattr__(layer, "_auto_config", arguments)
        return layer

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        build = cls.__dict__.get("build")
        if build is not None and build not in _BUILDS_THAT_MARK:
            cls.build = _marking_built(build)  # type: ignore[method-assign]  # see _marking_built

    def __init__(self, **kwargs: Any) -> None:
        unknown = set(kwargs) - _BASE_KWARGS
        if unknown:
            raise ValueError(
                f"Unrecognized keyword arguments passed to {type(self).__name__}: "
                f"{ {k: kwargs[k] for k in sorted(unknown)} }"
            )
        super().__init__()
        self.training = False  # a new layer infers when called without `training` (Keras)
        name = kwargs.get("name")
        if name is not None and not isinstance(name, str):
            raise TypeError(
                f"{type(self).__name__}: argument `name` must be a string. Received: {name!r}"
            )
        self.name = name or backend.unique_name(backend.to_snake_case(type(self).__name__))
        self._dtype_policy = get_argument(
            type(self).__name__, "dtype", dtype_policies.get, kwargs.get("dtype")
        )
        self.autocast = bool(kwargs.get("autocast", True))
        self._trainable = bool(kwargs.get("trainable", True))
        self.built = False
        self.input_spec: Any = None
        self._weight_specs: dict[str, _WeightSpec] = {}
        self._call_losses: list[torch.Tensor] = []
        self._build_device: torch.device | None = None
        from birnn import regularizers

        self.activity_regularizer = get_argument(
            type(self).__name__,
            "activity_regularizer",
            regularizers.get,
            kwargs.get("activity_regularizer"),
        )
        self._input_shape_arg = self._input_shape_from_kwargs(kwargs)
        self._lazy_attrs: set[str] = set()
        self._give_own_forward()
        call_params = inspect.signature(self.call).parameters
        self._call_has_mask = "mask" in call_params
        self._call_has_training = "training" in call_params
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in call_params.values())
        self._call_keywords = (
            None
            if takes_any
            else frozenset(
                {"mask", "training"}
                | {
                    n
                    for n, p in call_params.items()
                    if p.kind is not inspect.Parameter.POSITIONAL_ONLY
                }
            )
        )

    def _after_init(self) -> None:
        """Makes the weights exist before the first call where that can be done.

        With `input_shape=` (or `batch_input_shape=`/`input_dim=`) the layer is
        built now. Otherwise a layer that declares `_lazy_build_probe` registers
        its weights as `torch.nn.UninitializedParameter`s (PyTorch's lazy-module
        protocol, as `nn.LazyLinear`): an optimizer made now holds them, and
        the first call (or `load_state_dict`) materializes them in place.
        """
        if self.built:
            return
        if self._input_shape_arg is not None:
            shape = self._input_shape_arg
            self.build(shape)
            self.built = True
            self._build_input_shape = shape
        elif self._lazy_build_probe is not None and type(self).build.__module__.startswith(
            "birnn."
        ):  # only builds known to create nothing but their own weights
            self._register_lazy_weights(self._lazy_build_probe)

    def _register_lazy_weights(self, probe_shape: tuple) -> None:
        state_before = dict(self.__dict__)
        params_before = set(self._parameters)
        specs_before = set(self._weight_specs)
        try:
            self.build(probe_shape)
        except Exception:  # the layer simply stays lazy the Keras way
            for name in set(self._parameters) - params_before:
                del self._parameters[name]
            for name in set(self._weight_specs) - specs_before:
                del self._weight_specs[name]
            new_names: list[str] = []
        else:
            new_names = [n for n in self._parameters if n not in params_before]
        for name in new_names:
            probe = self._parameters[name]
            assert probe is not None  # add_weight registers parameters, never None
            # torch's stub of UninitializedParameter lacks the factory keywords it accepts
            # and its Parameter base class.
            placeholder = UninitializedParameter(  # type: ignore[call-arg]
                requires_grad=probe.requires_grad, device=probe.device, dtype=probe.dtype
            )
            self._parameters[name] = placeholder  # type: ignore[assignment]
        keep = {"_parameters", "_weight_specs", "_modules", "_buffers"}
        for key in [k for k in self.__dict__ if k not in state_before]:
            del self.__dict__[key]
        for key, value in state_before.items():
            if key not in keep:
                self.__dict__[key] = value
        self._lazy_attrs = set(new_names)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        for name in self._lazy_attrs:
            param = self._parameters.get(name)
            source = state_dict.get(prefix + name)
            if param is not None and is_lazy(param) and source is not None:
                with torch.no_grad():
                    param.materialize(source.shape)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def __setattr__(self, name: str, value: Any) -> None:
        state = self.__dict__
        modules: dict[str, Any] | None = state.get("_modules")
        if modules is not None and isinstance(modules.get(name), TrackedStructure):
            del modules[name]  # the attribute is replaced: so is its registration
        if "_weight_specs" not in state:  # before `Layer.__init__` has run
            super().__setattr__(name, value)
        elif (
            isinstance(value, (list, tuple, dict))
            and not name.startswith("_")  # private attributes: internal caches
            and holds_trackable(value)
        ):
            value, tracker = track(value)
            super().__setattr__(name, value)
            assert modules is not None  # Layer.__init__ has run (_weight_specs exists)
            modules[name] = tracker
            for module in tracker.children():
                if is_torch_leaf(module):
                    module.train(self.training)
        elif isinstance(value, nn.Module) and not isinstance(value, Layer):
            if is_torch_leaf(value):
                value.train(self.training)  # one mode for the whole tree
            super().__setattr__(name, value)
        elif isinstance(value, nn.Parameter):
            super().__setattr__(name, value)
            specs = self._weight_specs
            if name not in specs and not any(self._parameters[n] is value for n in specs):
                self._weight_specs[name] = _WeightSpec(
                    keras_name=name, trainable=bool(value.requires_grad)
                )
        else:
            super().__setattr__(name, value)
        _configuration_changed()

    def __delattr__(self, name: str) -> None:
        modules = self.__dict__.get("_modules")
        if modules is not None and isinstance(modules.get(name), TrackedStructure):
            del modules[name]
            object.__delattr__(self, name)
        else:
            self.__dict__.get("_weight_specs", {}).pop(name, None)
            super().__delattr__(name)
        _configuration_changed()

    def register_parameter(self, name: str, param: nn.Parameter | None) -> None:
        super().register_parameter(name, param)
        _configuration_changed()

    def _input_shape_from_kwargs(self, kwargs: dict) -> tuple | None:
        """The batch shape given by `input_shape`/`input_dim`/`batch_input_shape`, if any."""
        if kwargs.get("batch_input_shape") is not None:
            return tuple(kwargs["batch_input_shape"])
        if kwargs.get("input_shape") is not None:
            return (kwargs.get("batch_size"), *tuple(kwargs["input_shape"]))
        if kwargs.get("input_dim") is not None:
            return (kwargs.get("batch_size"), kwargs["input_dim"])
        return None

    # ------------------------------------------------------------------ weights
    @property
    def dtype_policy(self) -> dtype_policies.DTypePolicy:
        """The layer's `DTypePolicy` (settable with a policy or its name)."""
        return self._dtype_policy

    @dtype_policy.setter
    def dtype_policy(self, value: Any) -> None:
        self._dtype_policy = get_argument(type(self).__name__, "dtype", dtype_policies.get, value)

    @property
    def dtype(self) -> str:
        """The dtype of the layer's weights, as in Keras (setting it sets the policy)."""
        return self._dtype_policy.variable_dtype

    @dtype.setter
    def dtype(self, value: Any) -> None:
        self.dtype_policy = value

    @property
    def compute_dtype(self) -> str:
        """The dtype the layer computes in (follows `.to(dtype)`/`.double()`)."""
        return self._dtype_policy.compute_dtype

    @property
    def variable_dtype(self) -> str:
        """The dtype of the layer's weights."""
        return self._dtype_policy.variable_dtype

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        # `.to(dtype)`, `.double()`, `.half()`...: the layer then computes in the new dtype
        # (and an unbuilt layer creates its weights in it).
        result = super()._apply(fn, *args, **kwargs)
        if backend.is_float_dtype(self.dtype):
            try:
                probe = fn(torch.empty(0, dtype=backend.torch_dtype(self.dtype)))
            except Exception:  # an `fn` that is not a conversion
                probe = None
            if isinstance(probe, torch.Tensor) and probe.is_floating_point():
                if probe.dtype != backend.torch_dtype(self.dtype):
                    self.dtype = backend.standardize_dtype(probe.dtype)
        return result

    def requires_grad_(self, requires_grad: bool = True) -> Layer:
        """Sets `trainable` (and so every trainable weight's `requires_grad`)."""
        self.trainable = requires_grad
        return self

    @property
    def dtype_torch(self) -> torch.dtype:
        """The layer's compute dtype as a `torch.dtype`."""
        return backend.torch_dtype(self._dtype_policy.compute_dtype)

    def add_weight(
        self,
        shape: Sequence[int] | None = None,
        initializer: Any = None,
        dtype: Any = None,
        trainable: bool = True,
        autocast: bool = True,
        regularizer: Any = None,
        constraint: Any = None,
        aggregation: str = "none",
        name: str | None = None,
    ) -> nn.Parameter:
        """Creates a weight, registers it as a parameter and returns it.

        Args:
            shape: Shape tuple of the weight (default: scalar).
            initializer: Initializer name, instance or callable `(shape, dtype)`.
                Defaults to `"glorot_uniform"` for floats, `"zeros"` otherwise.
            dtype: Dtype of the weight (default: the layer's dtype).
            trainable: Whether training updates it.
            autocast: Whether a mixed precision policy reads the weight in the
                compute dtype during calls (`False` for statistics updated in place).
            regularizer: Regularizer name, instance or callable; adds to `losses`.
            constraint: Constraint applied after each optimizer step in `fit`.
            aggregation: Accepted for Keras compatibility.
            name: Name of the weight; also its `state_dict` key (made unique).
        """
        from birnn import constraints, initializers, regularizers

        where = f"Layer '{self.name}': add_weight({name or 'variable'!r})"
        if isinstance(shape, int) and not isinstance(shape, bool):
            shape = (shape,)
        try:
            dims = tuple(shape or ())
        except TypeError:
            dims = None
        if dims is None or any(
            isinstance(d, bool) or not isinstance(d, (int, np.integer)) for d in dims
        ):
            raise TypeError(
                f"{where}: argument `shape` must be a tuple of integers. Received: shape={shape!r}"
            )
        shape = tuple(int(d) for d in dims)
        if any(d < 0 for d in shape):
            raise ValueError(
                f"Layer '{self.name}': cannot create weight '{name}' with negative shape {shape}."
            )
        dtype = get_argument(where, "dtype", backend.standardize_dtype, dtype or self.dtype)
        if initializer is None:
            initializer = "glorot_uniform" if backend.is_float_dtype(dtype) else "zeros"
        init = get_argument(where, "initializer", initializers.get, initializer)
        value = torch.as_tensor(init(shape, dtype=dtype), dtype=backend.torch_dtype(dtype))
        if self._build_device is not None:
            value = value.to(self._build_device)
        keras_name = name or "variable"
        attr = keras_name
        suffix = 1
        while (attr in self._parameters and attr not in self._lazy_attrs) or (
            hasattr(self, attr) and attr not in self._parameters
        ):
            attr = f"{keras_name}_{suffix}"
            suffix += 1
        is_float = value.is_floating_point() or value.is_complex()
        requires_grad = bool(trainable and self._trainable and is_float)
        if attr in self._lazy_attrs:
            param = self._claim_lazy_weight(attr, value, requires_grad)
        else:
            param = nn.Parameter(value, requires_grad=requires_grad)
            self.register_parameter(attr, param)
        self._weight_specs[attr] = _WeightSpec(
            keras_name=keras_name,
            trainable=bool(trainable),
            regularizer=get_argument(where, "regularizer", regularizers.get, regularizer),
            constraint=get_argument(where, "constraint", constraints.get, constraint),
            autocast=bool(autocast),
        )
        _configuration_changed()
        return param

    def _claim_lazy_weight(
        self, attr: str, value: torch.Tensor, requires_grad: bool
    ) -> nn.Parameter:
        """The placeholder registered for `attr` before the first call, now holding `value`.

        The parameter object stays the same, so optimizers made before the first
        call update it. Values loaded by `load_state_dict` into the fresh layer
        are kept.
        """
        self._lazy_attrs.discard(attr)
        param = self._parameters[attr]
        assert param is not None  # add_weight registers parameters, never None
        if is_lazy(param):
            dtype = param.dtype if value.is_floating_point() else value.dtype
            with torch.no_grad():
                param.materialize(value.shape, device=value.device, dtype=dtype)
                param.copy_(value)
        elif tuple(param.shape) != tuple(value.shape):
            raise ValueError(
                f"Layer '{self.name}': weight '{attr}' was loaded with shape "
                f"{tuple(param.shape)}, but the input calls for shape {tuple(value.shape)}."
            )
        param.requires_grad = requires_grad
        return param

    def _own_weight_items(self) -> list[tuple[str, nn.Parameter, bool]]:
        """`(keras_name, parameter, trainable)` for the layer's own weights, in Keras order.

        Own weights are those made by `add_weight`, `nn.Parameter`s assigned as
        attributes and those held in list/tuple/dict attributes: the trainable
        ones (as created) first, then the others. A floating weight counts as
        trainable exactly when it `requires_grad`.
        """
        items = []
        for n, spec in self._weight_specs.items():
            param = self._parameters[n]
            if param is None or is_lazy(param):
                continue
            if param.is_floating_point() or param.is_complex():
                effective = bool(param.requires_grad)
            else:
                effective = spec.trainable and self._trainable
            items.append((spec.keras_name, param, spec.trainable, effective))
        for child in self._modules.values():
            if isinstance(child, TrackedStructure):
                for param in child.own_parameters():
                    trainable = bool(param.requires_grad)
                    items.append(("variable", param, trainable, trainable))
        ordered = [i for i in items if i[2]] + [i for i in items if not i[2]]
        return [(name, param, effective) for name, param, _, effective in ordered]

    def named_own_weights(self) -> list[tuple[str, nn.Parameter]]:
        """`(keras_name, weight)` for the layer's own weights (not its sublayers'),
        in Keras's order: the trainable ones, then the others."""
        return [(name, param) for name, param, _ in self._own_weight_items()]

    @property
    def declared_input_shape(self) -> tuple | None:
        """The input shape (batch axis first) given to the constructor as
        `input_shape=`, `batch_input_shape=` or `input_dim=`, else `None`."""
        return self._input_shape_arg

    def direct_parameters(self) -> list[nn.Parameter]:
        """The parameters registered on this module itself, not on its children: what
        `parameters(recurse=False)` yields, read without its generators (the training
        step asks every layer once per batch)."""
        found: list[nn.Parameter] = []
        seen: set[int] = set()
        for param in self._parameters.values():
            if param is not None and id(param) not in seen:
                seen.add(id(param))
                found.append(param)
        return found

    def own_weight_specs(self) -> Mapping[str, _WeightSpec]:
        """What `add_weight` was told about each of the layer's own weights, by
        attribute name (read-only): `keras_name`, `trainable`, `regularizer`,
        `constraint` and `autocast`."""
        return types.MappingProxyType(self._weight_specs)

    def _own_weights(self, trainable: bool | None = None) -> list[nn.Parameter]:
        return [
            param
            for _, param, effective in self._own_weight_items()
            if trainable is None or effective == trainable
        ]

    @property
    def layers(self) -> list[Layer]:
        """Direct sublayers, in the order they were assigned."""
        found: list[Layer] = []

        def visit(module: nn.Module) -> None:
            for child in module.children():
                if isinstance(child, Layer):
                    found.append(child)
                else:  # ModuleList / ModuleDict containers, tracked lists and dicts
                    visit(child)

        visit(self)
        return found

    def _weight_children(self) -> list[nn.Module]:
        """Sublayers and plain torch modules (which own weights too), in tracking order."""
        found: list[nn.Module] = []

        def visit(module: nn.Module) -> None:
            for child in module.children():
                if isinstance(child, Layer) or is_torch_leaf(child):
                    found.append(child)
                else:
                    visit(child)

        visit(self)
        return found

    def _collect(self, trainable: bool | None) -> list[nn.Parameter]:
        seen: set[int] = set()
        out: list[nn.Parameter] = []
        for w in self._own_weights(trainable):
            if id(w) not in seen:
                seen.add(id(w))
                out.append(w)
        for child in self._weight_children():
            if isinstance(child, Layer):
                found = child._collect(trainable)
            else:
                found = [
                    p
                    for p in child.parameters()
                    if trainable is None or bool(p.requires_grad) == trainable
                ]
            for w in found:
                if id(w) not in seen:
                    seen.add(id(w))
                    out.append(w)
        return out

    @property
    def weights(self) -> list[nn.Parameter]:
        """All weights: own (trainable first), then each sublayer's, as in Keras."""
        return self._collect(None)

    @property
    def trainable_weights(self) -> list[nn.Parameter]:
        return self._collect(True) if self._trainable else []

    @property
    def non_trainable_weights(self) -> list[nn.Parameter]:
        if not self._trainable:
            return self.weights
        return self._collect(False)

    @property
    def variables(self) -> list[nn.Parameter]:
        return self.weights

    @property
    def trainable_variables(self) -> list[nn.Parameter]:
        return self.trainable_weights

    @property
    def non_trainable_variables(self) -> list[nn.Parameter]:
        return self.non_trainable_weights

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        value = bool(value)
        self._trainable = value
        for name, spec in self._weight_specs.items():
            param = self._parameters[name]
            assert param is not None  # add_weight registers parameters, never None
            if param.is_floating_point():
                param.requires_grad = spec.trainable and value
        for child in self._modules.values():
            if isinstance(child, TrackedStructure):
                for param in child.own_parameters():
                    if param.is_floating_point():
                        param.requires_grad_(value)
        for child in self._weight_children():
            if isinstance(child, Layer):
                child.trainable = value
            else:
                for param in child.parameters():
                    if param.is_floating_point():
                        param.requires_grad_(value)

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights as NumPy arrays, in `weights` order.

        The arrays are snapshots on every device: training the layer later does
        not change them, and writing into them does not change the layer.
        """
        return [w.detach().to("cpu", copy=True).numpy() for w in self.weights]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Sets the weights from NumPy arrays (or tensors), in `weights` order.

        All arrays are checked and converted before any weight changes, so a bad
        array leaves every weight as it was.

        Raises:
            ValueError: if the number of arrays or any shape does not match, or
                an array cannot be converted.
            TypeError: if an array does not hold real numbers (strings, objects,
                complex numbers).
        """
        own = self.weights
        if isinstance(weights, (np.ndarray, torch.Tensor)) or not isinstance(weights, Iterable):
            raise TypeError(
                f"Layer '{self.name}': set_weights() expects a list of arrays (one per weight). "
                f"Received: {type(weights).__name__}"
            )
        weights = list(weights)
        if len(weights) != len(own):
            hint = "" if self.built else " The layer isn't built yet: call it or build() it first."
            raise ValueError(
                f"Layer '{self.name}' expected {len(own)} weights, but received "
                f"{len(weights)} weights in set_weights().{hint}"
            )
        names = self.weight_paths()
        converted = [
            self._weight_value(name, param, value)
            for name, param, value in zip(names, own, weights)
        ]
        with torch.no_grad():
            for param, value in zip(own, converted):
                param.copy_(value)

    def _weight_value(self, name: str, param: torch.Tensor, value: Any) -> torch.Tensor:
        """`value` checked against the weight `param` and converted to its dtype and device."""
        if isinstance(value, torch.Tensor):
            real = not value.is_complex()
            kind = str(value.dtype).replace("torch.", "")
        else:
            try:
                value = np.asarray(value)
            except (ValueError, TypeError) as error:
                raise ValueError(
                    f"Layer '{self.name}': set_weights() could not convert the array for "
                    f"weight '{name}' to numbers: {error}"
                ) from None
            real = value.dtype.kind in "biuf"
            kind = "str" if value.dtype.kind in "US" else value.dtype.name
        if not real:
            raise TypeError(
                f"Layer '{self.name}': set_weights() expects real numbers for weight "
                f"'{name}', but received an array of dtype {kind}."
            )
        value_shape = tuple(value.shape)
        if value_shape != tuple(param.shape):
            raise ValueError(
                f"Layer '{self.name}': weight '{name}' has shape {tuple(param.shape)}, "
                f"but set_weights() received an array of shape {value_shape}."
            )
        if not isinstance(value, torch.Tensor):  # (`ascontiguousarray` makes 0-d arrays 1-d)
            value = torch.from_numpy(np.ascontiguousarray(value).reshape(value_shape))
        return value.to(device=param.device, dtype=param.dtype)

    def weight_paths(self) -> list[str]:
        """Keras-style paths (`lstm/lstm_cell/kernel`) of `weights`, in order.

        A weight shared by several sublayers has the path of its first owner.

        Example:

        >>> from birnn.layers import Dense
        >>> layer = Dense(2, name="dense")
        >>> layer.build((None, 3))
        >>> layer.weight_paths()
        ['dense/kernel', 'dense/bias']
        """
        by_id: dict[int, str] = {}
        for keras_name, param in self.named_own_weights():
            by_id.setdefault(id(param), f"{self.name}/{keras_name}")
        for sub in self._weight_children():
            if isinstance(sub, Layer):
                for param, path in zip(sub.weights, sub.weight_paths()):
                    by_id.setdefault(id(param), f"{self.name}/{path}")
            else:
                for name, param in sub.named_parameters():
                    by_id.setdefault(id(param), f"{self.name}/{type(sub).__name__}/{name}")
        return [by_id.get(id(w), "?") for w in self.weights]

    def count_params(self) -> int:
        """Total number of scalars in the layer's weights."""
        if not self.built:
            raise ValueError(
                f"You tried to call `count_params` on layer '{self.name}', but the layer "
                "isn't built. You can build it manually via: `layer.build(input_shape)`."
            )
        return int(sum(w.numel() for w in self.weights))

    def apply_constraints(self) -> None:
        """Projects every weight onto its constraint (called after optimizer steps)."""
        with torch.no_grad():
            for name, spec in self._weight_specs.items():
                if spec.constraint is not None:
                    param = self._parameters[name]
                    assert param is not None  # add_weight registers parameters, never None
                    param.copy_(spec.constraint(param))
        for layer in self.layers:
            layer.apply_constraints()

    # ------------------------------------------------------------------ losses
    def add_loss(self, loss: torch.Tensor) -> None:
        """Adds a scalar loss (e.g. an activity penalty) to `layer.losses`."""
        self._call_losses.append(loss)

    @property
    def losses(self) -> list[torch.Tensor]:
        """Losses from `add_loss` in the last call and from weight regularizers."""
        out = list(self._call_losses)
        for name, spec in self._weight_specs.items():
            if spec.regularizer is not None and spec.trainable and self._trainable:
                param = self._parameters[name]
                if param is not None and not is_lazy(param):
                    out.append(spec.regularizer(param))
        for layer in self.layers:
            out.extend(layer.losses)
        return out

    # ------------------------------------------------------------------ graph
    @property
    def input(self) -> Any:
        """The `KerasTensor`(s) this layer was first called on in a functional graph.

        A list where that call took several; an `AttributeError` (as in Keras) if the
        layer was never called on `KerasTensor`s.
        """
        return self._first_node_tensors("input_tensors")

    @property
    def output(self) -> Any:
        """The `KerasTensor`(s) this layer's first functional call produced."""
        return self._first_node_tensors("flat_outputs")

    @property
    def inbound_nodes(self) -> list:
        """The `Node` of each call of this layer on symbolic inputs, in call order."""
        return self.__dict__.setdefault("_inbound_nodes", [])

    def _first_node_tensors(self, attribute: str) -> Any:
        nodes = self.__dict__.get("_inbound_nodes")
        if not nodes:
            raise AttributeError(
                f"Layer '{self.name}' has never been called on symbolic inputs and thus has "
                "no defined input or output."
            )
        tensors = getattr(nodes[0], attribute)
        return tensors[0] if len(tensors) == 1 else list(tensors)

    # ------------------------------------------------------------------ build & call
    def build(self, input_shape: Any) -> None:
        """Creates the layer's weights. Called once, before the first `call`."""
        self.built = True

    def call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """The layer's computation. Subclasses override it."""
        return inputs

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.call(*args, **kwargs)

    def _give_own_forward(self) -> None:
        """Gives this layer a `forward` with its own code object.

        `torch.compile` (dynamo) keeps its compiled variants per code object,
        with a limit of 8: were all layers to share `Layer.forward`'s, a model of
        a few layers would exhaust it after a train/eval switch and a new
        sequence length. A copy of the code keeps each layer's variants apart.
        """
        if type(self).forward is not Layer.forward:
            return
        function = Layer.forward
        own = types.FunctionType(
            function.__code__.replace(), function.__globals__, function.__name__
        )
        self.__dict__["forward"] = types.MethodType(own, self)

    def __setstate__(self, state: dict) -> None:
        state.pop("_config_cache", None)
        super().__setstate__(state)
        self._give_own_forward()

    def _config_cached(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """`compute()`, a fact that depends only on layers' attributes, cached per `key`
        until an attribute of any layer changes (`config_version()`).

        Compiled code recomputes it: a graph then never guards on the version.
        """
        if torch.compiler.is_compiling():
            return compute()
        cache: tuple[int, dict[Hashable, Any]] | None = self.__dict__.get("_config_cache")
        if cache is None or cache[0] != _config_version:
            cache = (_config_version, {})
            self.__dict__["_config_cache"] = cache  # not `setattr`: that changes the version
        facts = cache[1]
        if key not in facts:
            facts[key] = compute()
        return facts[key]

    def build_from_inputs(self, inputs: Any) -> None:
        """Builds the layer (unless built) for the shapes of `inputs`, its weights on
        the device of the first tensor among them: what its first call does.

        `inputs` may be tensors or `KerasTensor`s; a subclass whose build needs more
        than shapes (`Sequential`: the input dtype) overrides this.
        """
        if self.built:
            return
        first = next((x for x in tree.flatten(inputs) if isinstance(x, torch.Tensor)), None)
        self.build_on_device(_shape_of(inputs), first.device if first is not None else None)

    def build_on_device(self, input_shape: Any, device: torch.device | None) -> None:
        """Builds the layer for `input_shape` with its weights created on `device`, as
        its first call would, unless it is built already; marks it built.

        A layer that holds sublayers builds them with this from its own `build`,
        passing its build device, so every weight lands where the inputs are.
        """
        if self.built:
            return
        self._build_device = device
        try:
            self.build(input_shape)
        finally:
            self._build_device = None
        self.built = True
        self._build_input_shape = input_shape  # Keras's `build_config`

    @property
    def build_device(self) -> torch.device | None:
        """The device weights are created on while `build` runs (None outside a build)."""
        return self._build_device

    def _convert_inputs(self, inputs: Any) -> Any:
        if isinstance(inputs, torch.Tensor) and not (
            self.autocast and inputs.is_floating_point() and inputs.dtype != self.dtype_torch
        ):
            return inputs  # the usual call: nothing to convert
        compute = self.dtype_torch

        def convert(x: Any) -> Any:
            if x is None or isinstance(x, KerasTensor):
                return x
            if not isinstance(x, torch.Tensor):
                if isinstance(x, (str, bytes)):
                    raise TypeError(
                        f"Layer '{self.name}' expects tensor-like inputs. Received: {x!r}"
                    )
                try:
                    x = backend.convert_to_tensor(x)
                except (ValueError, TypeError) as e:
                    kind = TypeError if isinstance(e, TypeError) else ValueError
                    raise kind(
                        f"Layer '{self.name}': argument `inputs` could not be converted to a "
                        f"tensor ({e}). Received: {type(x).__name__}"
                    ) from None
            if self.autocast and x.is_floating_point() and compute.is_floating_point:
                if x.dtype != compute:
                    mask = getattr(x, "_keras_mask", None)
                    x = x.to(compute)
                    if mask is not None:
                        x._keras_mask = mask
            return x

        if isinstance(inputs, torch.Tensor) or _is_number_nest(inputs):
            return convert(inputs)  # `[[1.0, 2.0]]` is one tensor, not a structure
        return tree.map_structure(convert, inputs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not args:
            if "inputs" not in kwargs:
                raise TypeError(f"Layer '{self.name}' was called without inputs.")
            args = (kwargs.pop("inputs"),)
        inputs = args[0]
        # The usual eager call, one plain tensor and no keywords, holds no KerasTensor.
        if type(inputs) is not torch.Tensor or len(args) > 1 or kwargs:
            if is_symbolic(args) or is_symbolic(kwargs):
                return symbolic_call(self, args, kwargs, uses_masks=self._produces_masks())
        if self._call_keywords is not None:
            for key in kwargs:
                if key not in self._call_keywords:
                    raise TypeError(
                        f"Layer '{self.name}' ({type(self).__name__}) got an unexpected call "
                        f"argument `{key}`. Its call() accepts: "
                        f"{sorted(self._call_keywords)}"
                    )
        converted = self._convert_inputs(inputs)
        if converted is not inputs:
            inputs = converted
            args = (inputs, *args[1:])

        mask = kwargs.pop("mask", None)
        if mask is None:
            mask = mask_of(inputs)
        if mask is not None:
            to_bool = lambda m: None if m is None else backend.convert_to_tensor(m, dtype="bool")  # noqa: E731
            # `[[True, False]]` is one mask, not a structure of scalar masks.
            mask = to_bool(mask) if _is_number_nest(mask) else tree.map_structure(to_bool, mask)
        if self._call_has_mask:
            kwargs["mask"] = mask

        training = kwargs.pop("training", None)
        inherited: Any = _NOT_INHERITED
        if training is None:
            training = inherited = backend.current_training()
            if training is None and self.training:  # after `.train()`
                training = True
        if self._call_has_training:
            kwargs["training"] = training

        check_input_compatibility(self.name, self.input_spec, inputs)
        if not self.built:
            self.build_from_inputs(inputs)
        self._call_losses.clear()  # in place: `nn.Module.__setattr__` is slow
        dtype_scope = dtype_policies.call_scope(self)
        # A call inside a scope of the same `training` (a sublayer called without it)
        # enters no scope of its own: its sublayers see the same value either way.
        scope = None if training is inherited else backend.training_scope(training)
        if scope is not None:
            scope.__enter__()
        try:
            if dtype_scope is None:
                outputs = super().__call__(*args, **kwargs)
            else:
                with dtype_scope:
                    outputs = super().__call__(*args, **kwargs)
        finally:
            if scope is not None:
                scope.__exit__(None, None, None)

        if self.activity_regularizer is not None:
            for out in tree.flatten(outputs):
                if isinstance(out, torch.Tensor):
                    loss = self.activity_regularizer(out)
                    if out.ndim > 0 and out.shape[0] > 0:  # per-sample, as Keras
                        loss = loss / out.shape[0]
                    self.add_loss(loss)
        if self.supports_masking or type(self).compute_mask is not Layer.compute_mask:
            _set_mask(outputs, self.compute_mask(inputs, mask))
        return outputs

    def has_call_hooks(self) -> bool:
        """Whether torch hooks would run on a call of this layer: its own forward or
        backward hooks, or global ones (`torch.nn.modules.module.register_module_*`)."""
        return bool(
            self._forward_hooks
            or self._forward_pre_hooks
            or self._backward_hooks
            or self._backward_pre_hooks
            or torch_module._global_forward_hooks
            or torch_module._global_forward_pre_hooks
            or torch_module._global_backward_hooks
            or torch_module._global_backward_pre_hooks
        )

    def _produces_masks(self) -> bool:
        """Whether outputs may carry a mask: the layer passes one on or computes its own."""
        return bool(self.supports_masking) or type(self).compute_mask is not Layer.compute_mask

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """The mask of the outputs: by default, the input mask passes through."""
        return mask

    def compute_output_shape(self, input_shape: Any) -> Any:
        """The output shape for an input shape (batch axis included, `None` = unknown).

        Layers override it; the default runs the layer once on zeros of that shape
        (unknown sizes taken as 1) to find out.
        """
        return _shape_of(self._dummy_call(input_shape))

    def compute_output_spec(self, *args: Any, **kwargs: Any) -> Any:
        """Output `KerasTensor`s for symbolic inputs, without running on real data."""
        inputs = args[0]
        shapes = tree.map_structure(lambda t: t.shape if t is not None else None, inputs)
        try:
            out_shape = self.compute_output_shape(shapes)
        except NotImplementedError:
            out_shape = _shape_of(self._dummy_call(shapes))
        first = next(x for x in tree.flatten(inputs) if isinstance(x, KerasTensor))
        compute = self.compute_dtype
        dtype = compute if backend.is_float_dtype(compute) else first.dtype

        def is_shape(s: Any) -> bool:
            return isinstance(s, tuple) and all(d is None or isinstance(d, int) for d in s)

        def to_spec(s: Any) -> Any:
            if is_shape(s):
                return KerasTensor(s, dtype=dtype)
            return type(s)(to_spec(x) for x in s)

        return to_spec(tuple(out_shape) if isinstance(out_shape, list) else out_shape)

    def _dummy_call(self, input_shape: Any) -> Any:
        def zeros(shape: Any) -> Any:
            if shape is None:
                return None
            return torch.zeros(tuple(1 if d is None else d for d in shape), dtype=self.dtype_torch)

        is_single = isinstance(input_shape, tuple) and all(
            d is None or isinstance(d, int) for d in input_shape
        )
        dummy = zeros(input_shape) if is_single else tree.map_shape_structure(zeros, input_shape)
        with torch.no_grad():
            out = self(dummy)
        return tree.map_structure(
            lambda t: t,
            _replace_batch(out, input_shape),
        )

    # ------------------------------------------------------------------ config
    def get_build_config(self) -> dict | None:
        """`{"input_shape": ...}`: the shape the layer was built for (None until built).

        Saved beside the config, so that `build_from_config` recreates the weights
        before they are loaded.
        """
        shape = self.__dict__.get("_build_input_shape")
        if self.built and shape is not None:
            return {"input_shape": shape}
        return None

    def build_from_config(self, config: dict) -> None:
        """Builds the layer from what `get_build_config` returned (as loading does)."""
        if not config or self.built:
            return
        if config.get("input_shape") is not None:
            self.build_on_device(_shape_from_json(config["input_shape"]), None)
        elif config.get("shapes_dict"):
            self.build(**_shape_from_json(config["shapes_dict"]))
            self.built = True

    def get_config(self) -> dict:
        """The constructor arguments that recreate this layer (weights excluded).

        A subclass that does not override `get_config` gets, as in Keras, the
        arguments it was constructed with, if they are plain values (numbers,
        strings, `None`, and lists, tuples and dicts of those); otherwise it must
        write `get_config`.
        """
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": dtype_policies.serialize(self._dtype_policy),
        }
        if self.activity_regularizer is not None:
            from birnn import regularizers

            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        arguments = self.__dict__.get("_auto_config")
        if arguments is not None:
            if not all(_is_plain_value(v) for v in arguments.values()):
                raise NotImplementedError(
                    f"Layer {type(self).__name__} was created with arguments that are not "
                    "plain values (numbers, strings, None, lists/tuples/dicts of those) and "
                    "does not override `get_config()`, so it cannot be serialized. Implement "
                    "`get_config()` returning `{**super().get_config(), <your arguments>}`."
                )
            config = {**arguments, **config}
        return config

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        """Creates a layer from `get_config()`'s output."""
        return cls(**config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


def _shape_from_json(value: Any) -> Any:
    """JSON lists back to shape tuples (a list of shapes stays a list)."""
    if isinstance(value, (list, tuple)) and all(v is None or isinstance(v, int) for v in value):
        return tuple(value)
    if isinstance(value, (list, tuple)):
        return [_shape_from_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _shape_from_json(v) for k, v in value.items()}
    return value


def _is_plain_value(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain_value(v) for k, v in value.items())
    return False


_BUILDS_THAT_MARK: weakref.WeakSet = weakref.WeakSet()  # wrapped once, not again by a subclass


def _marking_built(build: Any) -> Any:
    """`build` that also marks the layer built, as Keras does for any `build` call
    (a user's `build` need not call `super().build()`)."""

    @functools.wraps(build)
    def build_and_mark(self: Layer, *args: Any, **kwargs: Any) -> None:
        build(self, *args, **kwargs)
        self.built = True
        if args and "_build_input_shape" not in self.__dict__:
            self._build_input_shape = args[0]

    _BUILDS_THAT_MARK.add(build_and_mark)
    return build_and_mark


def _replace_batch(outputs: Any, input_shape: Any) -> Any:
    """Marks the batch axis of dummy outputs as unknown when the input's was."""
    first = input_shape
    while (
        isinstance(first, (list, tuple)) and first and not isinstance(first[0], (int, type(None)))
    ):
        first = first[0]
    batch_unknown = isinstance(first, tuple) and first and first[0] is None

    def fix(t: Any) -> Any:
        if not isinstance(t, torch.Tensor):
            return t
        shape: tuple[int | None, ...] = tuple(t.shape)
        if batch_unknown and shape:
            shape = (None, *shape[1:])
        return _ShapeOnly(shape)

    return tree.map_structure(fix, outputs)


class _ShapeOnly:
    """Stands in for a tensor where only its `shape` is wanted."""

    def __init__(self, shape: tuple) -> None:
        self.shape = shape


def is_torch_leaf(module: nn.Module) -> bool:
    """Whether `module` is a plain torch module (no birnn layer inside): a weight owner.

    Keras on the torch backend wraps such a module in a `TorchModuleWrapper`
    layer whose weights are the module's parameters.
    """
    if isinstance(module, (Layer, TrackedStructure)):
        return False
    return not any(isinstance(m, Layer) for m in module.modules())


def iter_layers(layer: Layer) -> Iterable[Layer]:
    """`layer` and all its sublayers, depth first."""
    yield layer
    for sub in layer.layers:
        yield from iter_layers(sub)
