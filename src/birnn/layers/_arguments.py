"""Checks of the arguments shared by convolution, pooling and reshaping layers."""

from __future__ import annotations

from typing import Any

from birnn.layers.core import _standardize_data_format

__all__ = ["int_tuple", "padding_mode", "standardize_data_format"]

standardize_data_format = _standardize_data_format


def int_tuple(
    layer: str, name: str, value: Any, rank: int, allow_zero: bool = False
) -> tuple[int, ...]:
    """`value` (an integer or `rank` integers) as a tuple of `rank` integers.

    Examples:

    >>> int_tuple("Conv2D", "strides", 2, 2)
    (2, 2)
    """
    items = (value,) * rank if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        items = tuple(items)
    except TypeError:
        items = None
    low = 0 if allow_zero else 1
    if (
        items is None
        or len(items) != rank
        or any(isinstance(v, bool) or not isinstance(v, int) or v < low for v in items)
    ):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(
            f"{layer}: argument `{name}` must be a {kind} integer or a tuple of {rank} "
            f"{kind} integers. Received: {name}={value!r}"
        )
    return items


def padding_mode(layer: str, value: Any, allowed: tuple[str, ...]) -> str:
    """The lower-cased padding mode, checked against `allowed`."""
    mode = value.lower() if isinstance(value, str) else value
    if mode not in allowed:
        raise ValueError(
            f"{layer}: argument `padding` must be one of {list(allowed)}. "
            f"Received: padding={value!r}"
        )
    return mode
