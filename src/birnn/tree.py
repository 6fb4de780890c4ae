"""Nested structures: flatten, map and repack lists, tuples and dicts of leaves.

One order everywhere, Keras's (`keras.tree`): lists and tuples by position,
dicts by sorted key. Keys that cannot be compared with each other (a mix of
`str` and `int`) keep their insertion order, where Keras would raise. `None`
is a leaf, as in `keras.tree.flatten`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = [
    "flatten",
    "flatten_with_path",
    "is_nested",
    "map_shape_structure",
    "map_structure",
    "pack_sequence_as",
]


def is_nested(structure: Any) -> bool:
    """Whether `structure` is a list, tuple or dict (not a leaf)."""
    return isinstance(structure, (list, tuple, dict))


def _sorted_keys(d: dict) -> list:
    try:
        return sorted(d)
    except TypeError:  # keys that do not compare: keep their order
        return list(d)


def flatten(structure: Any, is_leaf: Callable[[Any], bool] | None = None) -> list:
    """The leaves of a nested structure, dict values in sorted-key order.

    `is_leaf`, if given, marks containers to keep whole (for example a
    serialized object's config dict).

    >>> flatten({"b": 1, "a": [2, (3, None)]})
    [2, 3, None, 1]
    >>> flatten(5)
    [5]
    """
    if is_leaf is not None and is_leaf(structure):
        return [structure]
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item, is_leaf)]
    if isinstance(structure, dict):
        return [leaf for k in _sorted_keys(structure) for leaf in flatten(structure[k], is_leaf)]
    return [structure]


def flatten_with_path(structure: Any, prefix: tuple = ()) -> list[tuple[tuple, Any]]:
    """`(path, leaf)` pairs in `flatten` order; a path holds the keys and indices.

    >>> flatten_with_path({"b": 1, "a": [2, 3]})
    [(('a', 0), 2), (('a', 1), 3), (('b',), 1)]
    """
    if isinstance(structure, (list, tuple)):
        return [
            p for i, item in enumerate(structure) for p in flatten_with_path(item, (*prefix, i))
        ]
    if isinstance(structure, dict):
        return [
            p
            for k in _sorted_keys(structure)
            for p in flatten_with_path(structure[k], (*prefix, k))
        ]
    return [(prefix, structure)]


def map_structure(fn: Callable[[Any], Any], structure: Any) -> Any:
    """`structure` with `fn` applied to every leaf (containers keep their types and key order).

    >>> map_structure(lambda x: x * 10, {"b": 1, "a": (2, 3)})
    {'b': 10, 'a': (20, 30)}
    """
    if isinstance(structure, (list, tuple)):
        return type(structure)(map_structure(fn, x) for x in structure)
    if isinstance(structure, dict):
        return {k: map_structure(fn, v) for k, v in structure.items()}
    return fn(structure)


def pack_sequence_as(structure: Any, flat: Sequence[Any]) -> Any:
    """The inverse of `flatten`: `structure`'s shape filled with `flat`'s items.

    >>> pack_sequence_as({"b": 0, "a": [0, 0]}, [1, 2, 3])
    {'a': [1, 2], 'b': 3}
    """
    items = iter(flat)
    packed = _pack(structure, items)
    if next(items, _END) is not _END:
        raise ValueError(f"pack_sequence_as: more items than leaves in {structure!r}.")
    return packed


_END = object()


def _pack(node: Any, items: Iterator[Any]) -> Any:
    if isinstance(node, (list, tuple)):
        return type(node)(_pack(child, items) for child in node)
    if isinstance(node, dict):
        return {k: _pack(node[k], items) for k in _sorted_keys(node)}
    item = next(items, _END)
    if item is _END:
        raise ValueError("pack_sequence_as: fewer items than leaves in the structure.")
    return item


def _is_shape(value: Any) -> bool:
    return isinstance(value, tuple) and all(d is None or isinstance(d, int) for d in value)


def map_shape_structure(fn: Callable[[tuple], Any], structure: Any) -> Any:
    """Maps `fn` over the shape tuples of a nested structure of shapes (`None` stays).

    >>> map_shape_structure(lambda s: s[1:], [(None, 3), {"a": (2, 4)}])
    [(3,), {'a': (4,)}]
    """
    if structure is None:
        return None
    if _is_shape(structure):
        return fn(structure)
    if isinstance(structure, dict):
        return {k: map_shape_structure(fn, v) for k, v in structure.items()}
    return type(structure)(map_shape_structure(fn, s) for s in structure)
