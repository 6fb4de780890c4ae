"""Layer configs in Keras 3's serialized form, and back.

`serialize_layer(layer)` gives the dict Keras writes for a layer nested in another
layer's config (a wrapper's `layer`, a model's layers):
`{"module": "keras.layers", "class_name": "Dense", "config": {...}, "registered_name": None}`.
`deserialize_layer(config)` reads such a dict (or Keras 2's `{"class_name", "config"}`)
back into a birnn layer, looking the class up, in order, in `custom_objects`, in the
classes registered with `register_layer_class`, in the process-wide custom objects of
`birnn._registry` (filled by the saving API), in `birnn.layers` and in `birnn.models`.

Examples:

>>> from birnn.layers import Dense
>>> config = serialize_layer(Dense(3, name="out"))
>>> config["class_name"], config["module"], config["config"]["units"]
('Dense', 'keras.layers', 3)
>>> deserialize_layer(config).units
3
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

_LAYER_CLASSES: dict[str, type] = {}
_REGISTERED_NAMES: dict[type, str] = {}  # class -> the name `register_layer_class` gave it
_PUBLIC_MODULES = ("birnn.layers", "birnn.models")
_KERAS_MODULES = {"birnn.layers": "keras.layers", "birnn.models": "keras"}


def register_layer_class(cls: type | None = None, *, name: str | None = None, package: str = ""):
    """Registers a custom layer class so that `deserialize_layer` can find it.

    Usable as `register_layer_class(MyLayer)` or as a decorator, with or without
    arguments. The class is found by its `registered_name` (`"package>Name"`
    when `package` is given, else `name` or the class name) and by its class name.

    Args:
        cls: The class to register.
        name: Name to register it under (default: the class name).
        package: Optional prefix, as Keras's `register_keras_serializable`.

    Returns:
        The class itself (or a decorator that registers and returns it).

    Examples:

    >>> from birnn.layers import Layer
    >>> @register_layer_class(package="demo")
    ... class Twice(Layer):
    ...     def call(self, x):
    ...         return 2 * x
    >>> registered_name(Twice)
    'demo>Twice'
    """

    def register(klass: type) -> type:
        key = name or klass.__name__
        full = f"{package}>{key}" if package else key
        _REGISTERED_NAMES[klass] = full
        _LAYER_CLASSES[full] = klass
        _LAYER_CLASSES.setdefault(klass.__name__, klass)
        return klass

    return register if cls is None else register(cls)


def registered_name(cls: type) -> str:
    """The name a layer class is serialized under (its class name unless registered)."""
    return _REGISTERED_NAMES.get(cls, cls.__name__)


def _public_module(cls: type) -> str | None:
    """The birnn namespace (`birnn.layers`...) that exports `cls` by its name, if any."""
    for module_name in _PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        if cls.__name__ in module.__all__ and getattr(module, cls.__name__) is cls:
            return module_name
    return None


def serialize_layer(layer: Any) -> dict | None:
    """The Keras 3 serialized dict of a layer (`None` stays `None`).

    birnn's own layers are written as Keras's (`module: "keras.layers"`,
    `registered_name: None`) so the config loads in Keras too; other classes keep
    their module and a registered name. A built layer gets Keras's `build_config`
    (from `get_build_config()` if it has one, else `{"input_shape": ...}` of its
    first call).

    Args:
        layer: A birnn (or compatible) layer with `get_config()`.

    Returns:
        A JSON-serializable dict.
    """
    if layer is None:
        return None
    cls = type(layer)
    public = _public_module(cls)
    module = cls.__module__ if cls.__module__ != "__main__" else None
    out = {
        "module": _KERAS_MODULES[public] if public else module,
        "class_name": cls.__name__,
        "config": layer.get_config(),
        "registered_name": None if public else registered_name(cls),
    }
    build_config = build_config_of(layer)
    if build_config is not None:
        out["build_config"] = build_config
    return out


def build_config_of(obj: Any) -> dict | None:
    """`obj.get_build_config()` for objects that have one (layers, models), else None."""
    get_build_config = getattr(obj, "get_build_config", None)
    return get_build_config() if callable(get_build_config) else None


def build_from_config(obj: Any, build_config: dict | None) -> None:
    """Builds a freshly deserialized `obj` from the `build_config` saved beside its config."""
    if not build_config or getattr(obj, "built", True):
        return
    build = getattr(obj, "build_from_config", None)
    if callable(build):
        build(build_config)
        obj.built = True


def get_layer_class(name: str, custom_objects: dict | None = None) -> type | None:
    """The layer class for a serialized `class_name`/`registered_name`, or `None`."""
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    if name in _LAYER_CLASSES:
        return _LAYER_CLASSES[name]
    from birnn import _registry

    if inspect.isclass(_registry.CUSTOM_OBJECTS.get(name)):
        return _registry.CUSTOM_OBJECTS[name]
    for module_name in _PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        if name in module.__all__:
            return getattr(module, name)
    return None


def deserialize_layer(config: Any, custom_objects: dict | None = None) -> Any:
    """Creates a layer from `serialize_layer`'s output (or a Keras-written config).

    Args:
        config: A dict with `class_name` and `config` (and optionally `module`,
            `registered_name`, `build_config`), or a layer instance (returned as is).
        custom_objects: Optional mapping from class (or registered) names to
            classes, for layers birnn does not define.

    Returns:
        A new layer, built when the config carries a `build_config` (through the
        class's `build_from_config()` if it has one, else `build(input_shape)`).

    Raises:
        ValueError: if the config is malformed or names an unknown class.
    """
    if config is None:
        return None
    if not isinstance(config, dict):
        if hasattr(config, "get_config") and hasattr(config, "call"):
            return config
        raise ValueError(
            f"Cannot deserialize a layer from {config!r}: expected a dict with "
            "'class_name' and 'config'."
        )
    if "class_name" not in config:
        raise ValueError(f"A serialized layer needs a 'class_name'. Received: {config!r}")
    cls: Any = None
    for name in (config.get("registered_name"), config["class_name"]):
        if isinstance(name, str):
            cls = get_layer_class(name, custom_objects)
            if cls is not None:
                break
    if cls is None:
        raise ValueError(
            f"Unknown layer class {config['class_name']!r} "
            f"(module {config.get('module')!r}). birnn implements the layers in "
            "`birnn.layers`; pass other classes with `custom_objects={name: cls}` or "
            "register them with `@birnn.saving.register_keras_serializable()`."
        )
    inner = dict(config.get("config") or {})
    from_config = cls.from_config
    if "custom_objects" in inspect.signature(from_config).parameters:
        layer = from_config(inner, custom_objects=custom_objects)
    else:
        layer = from_config(inner)
    build_from_config(layer, config.get("build_config"))
    return layer
