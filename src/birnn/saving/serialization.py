"""Keras 3 configs for birnn objects: `serialize_keras_object` and its inverse.

An object with a `get_config()` becomes Keras 3's dict:

    {"module": "keras.layers", "class_name": "LSTM", "config": {...},
     "registered_name": None, "build_config": {...}, "compile_config": {...}}

birnn's public classes are written under the Keras module of the same name
(`birnn.layers.LSTM` -> `keras.layers`, `birnn.Sequential` -> `keras`, a functional
`birnn.Model` -> `keras.src.models.functional.Functional`, registries under
`keras.initializers` ...), so Keras reads them as its own; on the way back any
`keras...` module path naming one of those areas (`keras.src.layers.rnn.lstm`,
`keras.src.backend.torch.optimizers.torch_adam`) finds the birnn class of the
same name. Everything else is a custom object: it is found by its registered
name (`"package>Name"`, see `register_keras_serializable`) or its class name in
`custom_objects`.

Plain values pass through; tensors, NumPy arrays, bytes, slices and symbolic
tensors use Keras's `__tensor__`/`__numpy__`/`__bytes__`/`__slice__`/
`__keras_tensor__` forms. Python lambdas are refused both ways: a config file
must never carry code.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from birnn import _registry
from birnn.layers.serialization import (
    build_config_of,
    build_from_config,
    register_layer_class,
)
from birnn.layers.serialization import (
    registered_name as registered_layer_name,
)
from birnn.saving import lambdas
from birnn.saving.errors import ConfigError, SavingError, UnknownObjectError

_AREAS = (
    "layers",
    "models",
    "activations",
    "initializers",
    "regularizers",
    "constraints",
    "losses",
    "metrics",
    "optimizers",
)
"""birnn namespaces whose public names are Keras's, under `keras.<area>`."""

_REGISTRY_AREAS = frozenset(_AREAS) - {"layers", "models"}

_REGISTERED_NAMES: dict[Any, str] = {}
"""Object -> "package>name" for everything `register_keras_serializable` saw."""


# ---------------------------------------------------------------------------- registration
def register_keras_serializable(package: str = "Custom", name: str | None = None) -> Callable:
    """Registers a class or function so that saved configs can name it.

    The object is stored under the key `"package>name"` (`name` defaults to the
    object's `__name__`); configs written after that carry the key as their
    `registered_name`, and loading finds the object by it without
    `custom_objects`. Keras's name; `register_serializable` is an alias.

    Args:
        package: The package part of the key.
        name: The name part of the key; defaults to the object's `__name__`.

    Returns:
        A decorator that registers its argument and returns it unchanged.

    Raises:
        ValueError: if a class has no `get_config()` method.

    Examples:

    >>> import birnn
    >>> @birnn.saving.register_keras_serializable(package="demo")
    ... def scaled_tanh(x):
    ...     return 2 * birnn.activations.get("tanh")(x)
    >>> birnn.saving.get_registered_name(scaled_tanh)
    'demo>scaled_tanh'
    >>> birnn.saving.get_registered_object("demo>scaled_tanh") is scaled_tanh
    True
    """
    if not isinstance(package, str) or not package:
        raise ValueError(
            "register_keras_serializable: `package` must be a non-empty string. "
            f"Received: {package!r}"
        )

    def decorator(obj: Any) -> Any:
        key = f"{package}>{name if name is not None else obj.__name__}"
        if inspect.isclass(obj) and not hasattr(obj, "get_config"):
            raise ValueError(
                f"register_keras_serializable: cannot register class {obj.__name__}: "
                "it has no get_config() method."
            )
        _registry.register_custom_object(key, obj)
        _REGISTERED_NAMES[obj] = key
        if inspect.isclass(obj) and _is_layer_class(obj):
            register_layer_class(obj, name=key.split(">", 1)[1], package=package)
        return obj

    return decorator


register_serializable = register_keras_serializable


def get_registered_name(obj: Any) -> str:
    """The key `obj` was registered under, else its `__name__`.

    Args:
        obj: A class or function.

    Returns:
        `"package>name"` for registered objects, the plain name otherwise.

    Examples:

    >>> get_registered_name(len)
    'len'
    """
    try:
        return _REGISTERED_NAMES[obj]
    except (KeyError, TypeError):
        pass
    if inspect.isclass(obj):
        return registered_layer_name(obj)
    return obj.__name__


def _is_layer_class(cls: type) -> bool:
    from birnn.layers.layer import Layer

    return issubclass(cls, Layer)


_scope = threading.local()


def _scoped_objects() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for table in getattr(_scope, "stack", []):
        merged.update(table)
    return merged


def get_registered_object(name: str, custom_objects: dict[str, Any] | None = None) -> Any:
    """The class or function known by `name`, or `None`.

    Looks in `custom_objects`, then in the active `custom_object_scope`s, then
    among the objects registered with `register_keras_serializable`.

    Args:
        name: A registered key (`"package>name"`) or a custom object's name.
        custom_objects: Optional mapping of names to objects, searched first.

    Returns:
        The object, or `None` when no table knows the name.
    """
    for table in (custom_objects or {}, _scoped_objects(), _registry.CUSTOM_OBJECTS):
        if name in table:
            return table[name]
    return None


@contextlib.contextmanager
def custom_object_scope(custom_objects: dict[str, Any] | None) -> Iterator[None]:
    """Makes `custom_objects` visible to every deserialization inside the block.

    Nested `from_config()` calls (a `Bidirectional` deserializing its wrapped
    layer, a layer deserializing a custom activation) see them too, including
    the `birnn.activations`/`initializers`/... registries.

    Args:
        custom_objects: Mapping of names to classes or functions.

    Examples:

    >>> def my_act(x):
    ...     return x
    >>> with custom_object_scope({"my_act": my_act}):
    ...     get_registered_object("my_act") is my_act
    True
    >>> get_registered_object("my_act") is None
    True
    """
    custom_objects = dict(custom_objects or {})
    stack = getattr(_scope, "stack", None)
    if stack is None:
        stack = _scope.stack = []
    saved = {
        k: _registry.CUSTOM_OBJECTS[k] for k in custom_objects if k in _registry.CUSTOM_OBJECTS
    }
    stack.append(custom_objects)
    _registry.CUSTOM_OBJECTS.update(custom_objects)
    try:
        yield
    finally:
        stack.pop()
        for key in custom_objects:
            if key in saved:
                _registry.CUSTOM_OBJECTS[key] = saved[key]
            else:
                _registry.CUSTOM_OBJECTS.pop(key, None)


def recreate_layer(layer: Any, config: dict | None = None) -> Any:
    """A new layer of `layer`'s class from `config` (default: `layer.get_config()`).

    Meanwhile the classes of `layer`'s sublayers are known by their names, so a
    live layer that holds a user's unregistered layer or cell (`Bidirectional`
    over `RNN(MyCell(...))`) is copied without registering them. A config alone
    (a file, `from_config` of a dict) finds only registered classes and those
    in `custom_objects`, as in Keras.

    Args:
        layer: The layer to copy (its weights are not copied).
        config: The config to create the new layer from.

    Returns:
        The new, unbuilt layer.

    Examples:

    >>> from birnn.layers import Dense
    >>> recreate_layer(Dense(3), {"units": 4, "name": "wider"}).units
    4
    """
    from birnn.layers.layer import Layer

    classes = {type(m).__name__: type(m) for m in layer.modules() if isinstance(m, Layer)}
    with custom_object_scope(classes):
        return type(layer).from_config(layer.get_config() if config is None else config)


@contextlib.contextmanager
def object_sharing_scope() -> Iterator[None]:
    """Objects that a config marks with the same `shared_object_id` load as one object."""
    previous = getattr(_scope, "shared", None)
    _scope.shared = {}
    try:
        yield
    finally:
        _scope.shared = previous


# ---------------------------------------------------------------------------- class lookup
def _area_module(area: str) -> Any:
    try:
        return importlib.import_module(f"birnn.{area}")
    except ImportError:
        return None


def _public(area: str, name: str) -> Any:
    module = _area_module(area)
    if module is None:
        return None
    try:
        return getattr(module, name, None)
    except (ImportError, AttributeError):
        return None


def _is_functional_class(cls: type) -> bool:
    return cls is _public("models", "Model") or cls.__name__ == "Functional"


def _keras_identity(cls: type) -> tuple[str, str, str | None] | None:
    """`(module, class_name, registered_name)` Keras uses for a birnn public class."""
    name = cls.__name__
    module = getattr(cls, "keras_module", None)
    if module is not None and _operation_class(name, module) is cls:
        return module, name, name
    for area in _AREAS:
        if _public(area, name) is not cls:
            continue
        if area == "models":
            if name == "Sequential":
                return "keras", "Sequential", None
            return "keras.src.models.functional", "Functional", "Functional"
        return f"keras.{area}", name, None
    return None


def _areas_for_module(module: str | None) -> list[str]:
    """birnn areas where a Keras (or birnn) module path's classes live."""
    if not module:
        return []
    parts = module.split(".")
    if parts[0] not in ("keras", "birnn", "tf_keras") or "ops" in parts:
        return []  # Keras operations (`keras.src.ops.numpy.Add`) are not the layers of that name
    named = [area for area in _AREAS if area in parts]
    if named:
        return named
    return ["layers", "models"]  # `keras.Sequential`, `keras.Model`, `keras.Input`


def _operation_class(class_name: str, module: str | None) -> type | None:
    """The birnn layer for a Keras operation node (`keras.src.ops.numpy.Any`...)."""
    if not module or "ops" not in module.split(".") or module.split(".")[0] != "keras":
        return None
    from birnn.saving.operations import OPERATIONS

    return OPERATIONS.get(class_name)


def _find_public(class_name: str, module: str | None) -> tuple[str, Any] | None:
    operation = _operation_class(class_name, module)
    if operation is not None:
        return "operations", operation
    areas = _areas_for_module(module)
    for area in areas:
        name = "Model" if area == "models" and class_name == "Functional" else class_name
        obj = _public(area, name)
        if obj is not None:
            return area, obj
    return None


def _unknown(kind: str, name: str, module: str | None) -> UnknownObjectError:
    where = f" (module '{module}')" if module else ""
    return UnknownObjectError(
        f"Could not locate {kind} '{name}'{where}. birnn has no class of that name: pass "
        "it in `custom_objects={...}`, or decorate it with "
        "`@birnn.saving.register_keras_serializable()` and import it before loading."
    )


# ---------------------------------------------------------------------------- serialize
def _function_config(fn: Callable) -> dict:
    if lambdas.is_lambda(fn):
        return lambdas.serialize_lambda(fn)  # Keras's form; loads only outside safe mode
    for area in _REGISTRY_AREAS:
        if _public(area, fn.__name__) is fn:
            return {  # Keras 3.15 writes its built-in functions this way
                "module": "builtins",
                "class_name": "function",
                "config": fn.__name__,
                "registered_name": "function",
            }
    key = get_registered_name(fn)
    return {
        "module": fn.__module__,
        "class_name": "function",
        "config": key,
        "registered_name": key,
    }


def serialize_keras_object(obj: Any) -> Any:
    """The Keras 3 config of `obj` (a layer, model, registry object, function or value).

    Args:
        obj: Anything a Keras config may hold.

    Returns:
        JSON-ready data that `deserialize_keras_object` turns back into `obj`.

    Raises:
        TypeError: if `obj` has no `get_config()` and is no known value type.

    Examples:

    >>> import birnn
    >>> config = serialize_keras_object(birnn.layers.LSTM(4, name="lstm_a"))
    >>> config["module"], config["class_name"], config["config"]["units"]
    ('keras.layers', 'LSTM', 4)
    >>> serialize_keras_object((1, None, "x"))
    (1, None, 'x')
    """
    from birnn.keras_tensor import KerasTensor

    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    if isinstance(obj, list):
        return [serialize_keras_object(x) for x in obj]
    if isinstance(obj, tuple):  # kept a tuple, as Keras does (a JSON file makes it a list)
        return tuple(serialize_keras_object(x) for x in obj)
    if isinstance(obj, dict):
        return {key: serialize_keras_object(value) for key, value in obj.items()}
    if isinstance(obj, bytes):
        return {"class_name": "__bytes__", "config": {"value": obj.decode("utf-8")}}
    if isinstance(obj, slice):
        return {
            "class_name": "__slice__",
            "config": {
                "start": serialize_keras_object(obj.start),
                "stop": serialize_keras_object(obj.stop),
                "step": serialize_keras_object(obj.step),
            },
        }
    if obj is Ellipsis:
        return {"class_name": "__ellipsis__", "config": {}}
    if isinstance(obj, KerasTensor):
        history = getattr(obj, "_keras_history", None)
        if history:
            history = [history[0].name, *history[1:]]
        return {
            "class_name": "__keras_tensor__",
            "config": {"shape": list(obj.shape), "dtype": obj.dtype, "keras_history": history},
        }
    if isinstance(obj, torch.dtype):
        from birnn import backend

        return backend.standardize_dtype(obj)
    if isinstance(obj, torch.Tensor):
        array = obj.detach().cpu().numpy()
        return {
            "class_name": "__tensor__",
            "config": {"value": array.tolist(), "dtype": str(array.dtype)},
        }
    if isinstance(obj, np.ndarray) and obj.ndim > 0:
        return {
            "class_name": "__numpy__",
            "config": {"value": obj.tolist(), "dtype": str(obj.dtype)},
        }
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.item()
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)):
        return _function_config(obj)
    if not hasattr(obj, "get_config"):
        raise TypeError(
            f"Cannot serialize {obj!r} of type {type(obj).__name__}: serializable objects "
            "implement get_config()."
        )
    inner = obj.get_config()
    if not isinstance(inner, dict):
        raise TypeError(
            f"get_config() of {type(obj).__name__} must return a dict. Received: {inner!r}"
        )
    identity = _keras_identity(type(obj))
    if identity is None:
        identity = (type(obj).__module__, type(obj).__name__, get_registered_name(type(obj)))
    module, class_name, registered_name = identity
    config = {
        "module": module,
        "class_name": class_name,
        "config": serialize_keras_object(inner),
        "registered_name": registered_name,
    }
    build = build_config_of(obj)
    if build is not None:
        config["build_config"] = serialize_keras_object(build)
    if hasattr(obj, "get_compile_config"):
        compile_config = obj.get_compile_config()
        if compile_config is not None:
            config["compile_config"] = serialize_keras_object(compile_config)
    return config


# ---------------------------------------------------------------------------- deserialize
def _resolve_registered_names(value: Any, custom_objects: dict) -> Any:
    """Replaces `"package>name"` strings (Keras's registered losses and metrics) by objects.

    Keras writes a registered function in a compile config as its key alone; the
    object is looked up under the key, then under the bare name, so that
    `custom_objects={"my_loss": my_loss}` finds `"my_package>my_loss"`.
    """
    if isinstance(value, str) and ">" in value:
        for key in (value, value.split(">", 1)[1]):
            found = get_registered_object(key, custom_objects)
            if found is not None:
                return found
        return value
    if isinstance(value, dict) and value.get("class_name") == "function":
        found = _resolve_registered_names(value.get("config"), custom_objects)
        return found if callable(found) else value
    if isinstance(value, list):
        return [_resolve_registered_names(v, custom_objects) for v in value]
    if isinstance(value, dict) and "class_name" not in value:
        return {k: _resolve_registered_names(v, custom_objects) for k, v in value.items()}
    return value


def compile_from_config(
    model: Any, compile_config: dict, custom_objects: dict[str, Any] | None = None
) -> None:
    """Compiles `model` with a Keras `compile_config` (optimizer, loss, metrics...).

    Raises:
        ConfigError: the config names an optimizer, loss or metric birnn cannot
            make (the message says how to supply it, or to skip compiling).
    """
    config = {
        key: _resolve_registered_names(value, custom_objects or {})
        if key != "optimizer"
        else value
        for key, value in compile_config.items()
    }
    try:
        if hasattr(model, "compile_from_config"):
            model.compile_from_config(config)
            return
        kwargs = {key: deserialize_keras_object(value) for key, value in config.items()}
        params = inspect.signature(model.compile).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            kwargs = {k: v for k, v in kwargs.items() if k in params}
        model.compile(**kwargs)
    except (TypeError, ValueError) as e:
        if isinstance(e, SavingError):
            raise
        raise ConfigError(
            f"Could not compile model '{getattr(model, 'name', '?')}' from its saved compile "
            f"config (optimizer, loss, metrics): {e} Pass custom losses/metrics in "
            "`custom_objects={...}`, or load with `compile=False` and compile it yourself."
        ) from e


def _special(class_name: str, inner: Any, custom_objects: dict) -> Any:
    from birnn.keras_tensor import KerasTensor

    if class_name == "__keras_tensor__":
        return KerasTensor(tuple(inner["shape"]), dtype=inner["dtype"])
    if class_name == "__tensor__":
        return torch.as_tensor(np.asarray(inner["value"], dtype=inner["dtype"]))
    if class_name == "__numpy__":
        return np.asarray(inner["value"], dtype=inner["dtype"])
    if class_name == "__bytes__":
        return inner["value"].encode("utf-8")
    if class_name == "__ellipsis__":
        return Ellipsis
    if class_name == "__slice__":
        return slice(
            *(
                deserialize_keras_object(inner[k], custom_objects)
                for k in ("start", "stop", "step")
            )
        )
    if class_name == "__lambda__":
        return lambdas.deserialize_lambda(inner, custom_objects)
    raise UnknownObjectError(f"Unknown special config class '{class_name}'.")


def _resolve_function(config: dict, custom_objects: dict) -> Callable:
    name = config["config"]
    registered = config.get("registered_name")
    module = config.get("module")
    bare = name.split(">", 1)[1] if isinstance(name, str) and ">" in name else None
    for key in (registered, name, bare):  # Keras writes registered functions as "pkg>name"
        if isinstance(key, str) and key != "function":
            found = get_registered_object(key, custom_objects)
            if found is not None:
                return found
    areas = [a for a in _areas_for_module(module) if a in _REGISTRY_AREAS]
    if module == "builtins":
        areas = sorted(_REGISTRY_AREAS)
    for area in areas:
        found = _public(area, name)
        if callable(found):
            return found
    raise _unknown("function", str(name), module)


def deserialize_keras_object(
    config: Any, custom_objects: dict[str, Any] | None = None, safe_mode: bool | None = None
) -> Any:
    """The object a Keras 3 config describes (the inverse of `serialize_keras_object`).

    Args:
        config: A config dict (or list, or plain value) as Keras or birnn wrote it.
        custom_objects: Mapping of names to user classes/functions the config
            refers to.
        safe_mode: If `True`, a Python lambda in the config (Keras's
            `__lambda__`, e.g. a `Lambda` layer's function) raises instead of
            being loaded: loading it runs code from the config. `None` (default)
            keeps the current mode: safe, unless inside a load with
            `safe_mode=False` or after `enable_unsafe_deserialization()`.

    Returns:
        The birnn object (layers and models are built from their
        `build_config` and compiled from their `compile_config`).

    Raises:
        UnknownObjectError: a class or function no table knows (a `TypeError`
            and `ValueError`).

    Examples:

    >>> layer = deserialize_keras_object(
    ...     {"module": "keras.layers", "class_name": "LSTM",
    ...      "config": {"units": 3, "name": "lstm_b"}, "registered_name": None})
    >>> type(layer).__name__, layer.units
    ('LSTM', 3)
    """
    with lambdas.safe_mode_scope(safe_mode):
        return _deserialize(config, custom_objects, safe_mode)


def _deserialize(
    config: Any, custom_objects: dict[str, Any] | None, safe_mode: bool | None
) -> Any:
    custom_objects = dict(custom_objects or {})
    if config is None or isinstance(config, (bool, int, float)):
        return config
    if isinstance(config, str):
        found = custom_objects.get(config)
        return found if found is not None else config
    if isinstance(config, list):
        return [deserialize_keras_object(x, custom_objects, safe_mode) for x in config]
    if isinstance(config, tuple):
        return tuple(deserialize_keras_object(x, custom_objects, safe_mode) for x in config)
    if not isinstance(config, dict):
        raise TypeError(f"Could not parse config of type {type(config).__name__}: {config!r}")
    if "class_name" not in config or "config" not in config:
        return {
            key: deserialize_keras_object(value, custom_objects, safe_mode)
            for key, value in config.items()
        }
    class_name = config["class_name"]
    inner = config["config"] if config["config"] is not None else {}
    if class_name.startswith("__") and class_name.endswith("__"):
        return _special(class_name, inner, custom_objects)
    if class_name == "function":
        return _resolve_function(config, custom_objects)
    if class_name == "DTypePolicy":
        return inner.get("name", "float32")

    shared = getattr(_scope, "shared", None)
    shared_id = config.get("shared_object_id")
    if shared is not None and shared_id in shared:
        return shared[shared_id]

    module = config.get("module")
    registered = config.get("registered_name")
    cls = None
    for key in (registered, class_name):
        if isinstance(key, str):
            cls = get_registered_object(key, custom_objects)
            if cls is not None:
                break
    area = None
    if cls is None:
        found = _find_public(class_name, module)
        if found is None:
            raise _unknown("class", class_name, module)
        area, cls = found

    with custom_object_scope(custom_objects):
        if area in _REGISTRY_AREAS and hasattr(_area_module(area), "deserialize"):
            instance = _area_module(area).deserialize(config)
        elif not inspect.isclass(cls):
            return cls
        elif hasattr(cls, "from_config"):
            kwargs = {}
            if "custom_objects" in inspect.signature(cls.from_config).parameters:
                kwargs["custom_objects"] = custom_objects
            try:
                instance = cls.from_config(dict(inner), **kwargs)
            except (TypeError, ValueError) as e:
                if isinstance(e, SavingError):
                    raise
                raise ConfigError(
                    f"Could not rebuild {class_name} '{inner.get('name', '?')}' from its saved "
                    f"config: {e}"
                ) from e
        else:
            instance = cls(**inner)
        build_from_config(instance, config.get("build_config"))
        if config.get("compile_config"):
            compile_from_config(instance, config["compile_config"], custom_objects)
    if shared is not None and shared_id is not None:
        shared[shared_id] = instance
    return instance
