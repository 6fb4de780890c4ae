"""The `get`/`serialize`/`deserialize` machinery shared by the object registries.

`activations`, `initializers`, `regularizers` and `constraints` each build one
`Registry` over their public names. Serialized forms follow Keras 3: an object
becomes `{"module": ..., "class_name": ..., "config": ..., "registered_name": ...}`,
and the dicts Keras writes (including its older `{"class_name", "config"}` form)
read back into birnn objects.
"""

from __future__ import annotations

import inspect
from typing import Any, cast

CUSTOM_OBJECTS: dict[str, Any] = {}
"""Process-wide custom objects (name -> class or function) consulted on deserialization."""


def register_custom_object(name: str, obj: Any) -> Any:
    """Makes `obj` findable by `name` when deserializing any registry's configs."""
    CUSTOM_OBJECTS[name] = obj
    return obj


class Registry:
    """Name lookup and (de)serialization for one family of objects.

    Args:
        kind: What the registry holds, for error messages (`"initializer"`).
        module: The Keras module written into serialized dicts
            (`"keras.initializers"`).
        objects: Public name -> object; the first name of each object is its
            canonical name. Classes are instantiated with default arguments when
            looked up by name.
        instantiate: Whether classes found by name are instantiated.
    """

    def __init__(
        self, kind: str, module: str, objects: dict[str, Any], instantiate: bool = True
    ) -> None:
        self.kind = kind
        self.module = module
        self.objects = dict(objects)
        self.instantiate = instantiate
        self._builtin_ids = {id(obj) for obj in objects.values()}

    def is_builtin(self, obj: Any) -> bool:
        return id(obj) in self._builtin_ids or id(type(obj)) in self._builtin_ids

    def lookup(self, name: str, custom_objects: dict | None = None) -> Any:
        for table in (custom_objects or {}, CUSTOM_OBJECTS, self.objects):
            if name in table:
                return table[name]
        return None

    def error(self, identifier: Any) -> ValueError:
        return ValueError(
            f"Could not interpret {self.kind} identifier: {identifier!r}. "
            f"Expected one of {sorted(n for n in self.objects if not n[0].isupper())}, "
            "a serialized config dict, an instance or a callable."
        )

    def serialize(self, obj: Any) -> Any:
        """The Keras 3 serialized form of `obj` (`None` stays `None`)."""
        if obj is None:
            return None
        if inspect.isfunction(obj) or inspect.isbuiltin(obj):
            name = obj.__name__
            return {
                "module": obj.__module__,
                "class_name": "function",
                "config": name,
                "registered_name": "function",
            }
        if not hasattr(obj, "get_config"):
            raise ValueError(
                f"Cannot serialize {self.kind} {obj!r}: it has no `get_config()` method."
            )
        cls = type(obj)
        builtin = self.is_builtin(obj)
        return {
            "module": self.module if builtin else cls.__module__,
            "class_name": cls.__name__,
            "config": obj.get_config(),
            "registered_name": None if builtin else cls.__name__,
        }

    def deserialize(self, config: Any, custom_objects: dict | None = None) -> Any:
        """The object described by a name or a serialized config dict."""
        if config is None:
            return None
        if isinstance(config, str):
            obj = self.lookup(config, custom_objects)
            if obj is None:
                raise self.error(config)
            return obj() if self.instantiate and inspect.isclass(obj) else obj
        if not isinstance(config, dict) or "class_name" not in config:
            raise self.error(config)
        class_name = config["class_name"]
        inner = config.get("config")
        if class_name == "function":
            names = [config.get("registered_name"), inner]
            for name in names:
                if isinstance(name, str) and name != "function":
                    obj = self.lookup(name, custom_objects)
                    if obj is not None:
                        return obj
            raise self.error(inner)
        cls = None
        for name in (config.get("registered_name"), class_name):
            if isinstance(name, str):
                cls = self.lookup(name, custom_objects)
                if cls is not None:
                    break
        if cls is None:
            raise self.error(class_name)
        if not inspect.isclass(cls):
            return cls
        inner = inner or {}
        if hasattr(cls, "from_config"):
            return cls.from_config(inner)
        return cls(**inner)

    def _from_keras_object(self, obj: Any) -> Any:
        """birnn's equivalent of a Keras built-in object (e.g. `keras.regularizers.L2(0.1)`)."""
        cls = obj if inspect.isclass(obj) else type(obj)
        if not (cls.__module__ or "").startswith("keras."):
            return obj
        ours: Any = self.objects.get(cls.__name__)
        if ours is None or not inspect.isclass(ours):
            return obj
        if inspect.isclass(obj):
            return ours
        return cast(Any, ours).from_config(obj.get_config())

    def get(self, identifier: Any) -> Any:
        """An object from a name, config dict, class, instance or callable."""
        if identifier is None:
            return None
        if isinstance(identifier, (str, dict)):
            obj = self.deserialize(identifier)
        else:
            obj = self._from_keras_object(identifier)
        if inspect.isclass(obj):
            return obj()
        if callable(obj):
            return obj
        raise self.error(identifier)
