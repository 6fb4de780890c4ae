"""Argument validation shared by the layers."""

from __future__ import annotations

from typing import Any


def get_argument(layer: str, argument: str, getter: Any, value: Any) -> Any:
    """`getter(value)`, with errors re-raised naming the layer and the argument.

    Layers resolve `activation`, `kernel_initializer`, `*_regularizer`,
    `*_constraint`... through the registries' `get`; an unknown name then reads
    `Dense: invalid value for argument `activation`. Could not interpret ...`.
    """
    try:
        return getter(value)
    except (ValueError, TypeError) as e:
        kind = TypeError if isinstance(e, TypeError) else ValueError
        raise kind(f"{layer}: invalid value for argument `{argument}`. {e}") from None
