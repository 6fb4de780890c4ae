"""Tracking of modules and parameters that a layer holds in lists, tuples and dicts.

Keras tracks the layers and variables a layer keeps in Python containers
(`self.blocks = [Dense(4), Dense(2)]`); PyTorch only sees modules assigned
directly or held by `nn.ModuleList`/`nn.ModuleDict`. A birnn layer does both:
the attribute keeps the user's container (a `list` or `dict` that records later
changes, a `tuple` as given), and a `TrackedStructure` module registered under
the same name exposes its contents to torch, so `parameters()`, `state_dict()`
(`blocks.0.kernel`), `.to()` and hooks see them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import nn


def holds_trackable(value: Any) -> bool:
    """Whether `value` is, or (nested in lists/tuples/dicts) holds, a module or parameter."""
    if isinstance(value, (nn.Module, nn.Parameter)):
        return True
    if isinstance(value, (list, tuple)):
        return any(holds_trackable(v) for v in value)
    if isinstance(value, dict):
        return any(holds_trackable(v) for v in value.values())
    return False


def _items(structure: Any) -> list[tuple[str, Any]]:
    if isinstance(structure, dict):
        return [(str(k), v) for k, v in structure.items()]
    return [(str(i), v) for i, v in enumerate(structure)]


class TrackedStructure(nn.Module):
    """The torch view of a list/tuple/dict attribute: its modules and parameters.

    Items are registered under their index or key (`"0"`, `"1"`, `"a"`); nested
    containers become nested `TrackedStructure`s. `sync()` re-reads the
    structure after it changes.
    """

    def __init__(self, structure: Any) -> None:
        super().__init__()
        self.__dict__["structure"] = structure
        self.sync()

    def sync(self) -> None:
        self._modules.clear()
        self._parameters.clear()
        for key, item in _items(self.structure):
            if isinstance(item, nn.Parameter):
                self._parameters[key] = item
            elif isinstance(item, nn.Module):
                self._modules[key] = item
            elif isinstance(item, (list, tuple, dict)) and holds_trackable(item):
                self._modules[key] = TrackedStructure(item)

    def items(self) -> list[Any]:
        """The container's items in order (dict values for a dict)."""
        return [item for _, item in _items(self.structure)]

    def own_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters held in the structure (nested containers included), in order."""
        for key, item in _items(self.structure):
            if isinstance(item, nn.Parameter):
                yield item
            elif isinstance(child := self._modules.get(key), TrackedStructure):
                yield from child.own_parameters()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("A tracked list/tuple/dict attribute is not callable.")

    def extra_repr(self) -> str:
        return type(self.structure).__name__


def _changes(method_name: str):
    def method(self, *args, **kwargs):
        result = getattr(super(type(self), self), method_name)(*args, **kwargs)
        tracker = self.__dict__.get("_tracker")
        if tracker is not None and "_modules" in tracker.__dict__:  # not while unpickling
            tracker.sync()
        return result

    method.__name__ = method_name
    return method


class TrackedList(list):
    """A `list` attribute of a layer that keeps its torch registration in step."""

    for _name in (
        "append",
        "extend",
        "insert",
        "pop",
        "remove",
        "clear",
        "sort",
        "reverse",
        "__setitem__",
        "__delitem__",
        "__iadd__",
        "__imul__",
    ):
        locals()[_name] = _changes(_name)
    del _name


class TrackedDict(dict):
    """A `dict` attribute of a layer that keeps its torch registration in step."""

    for _name in ("pop", "popitem", "clear", "update", "setdefault", "__setitem__", "__delitem__"):
        locals()[_name] = _changes(_name)
    del _name


def track(value: Any) -> tuple[Any, TrackedStructure]:
    """`(attribute value, tracker)` for a container that holds modules or parameters."""
    if type(value) is list:
        value = TrackedList(value)
    elif type(value) is dict:
        value = TrackedDict(value)
    tracker = TrackedStructure(value)
    if isinstance(value, (TrackedList, TrackedDict)):
        value.__dict__["_tracker"] = tracker
    return value, tracker
