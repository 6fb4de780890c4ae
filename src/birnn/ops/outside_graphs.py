"""`outside_graphs`: a function that compiled graphs call instead of tracing.

`torch.compiler.disable` does that, but its wrapper runs on every call, eager
ones included (it switches TorchDynamo's frame hook off and back on), and
applying it imports `torch._dynamo`, seconds of import time for programs that
never compile. Nothing can be compiling while `torch.compiler.is_compiling()`
is False, so eager calls here go straight to the function, and the
`torch.compiler.disable` wrapper is only made, and used, once TorchDynamo
traces a call.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import torch

__all__ = ["outside_graphs"]

F = TypeVar("F", bound=Callable[..., Any])


def outside_graphs(function: F) -> F:
    """`function`, run eagerly even where `torch.compile` traces its caller.

    Examples:

    >>> import torch
    >>> @outside_graphs
    ... def double(x):
    ...     return x * 2
    >>> double(torch.ones(2))
    tensor([2., 2.])
    """
    # With TorchDynamo already imported, the wrapper is made now rather than inside
    # the first trace (where making it is one more graph break).
    disabled: Callable[..., Any] | None = (
        torch.compiler.disable(function) if "torch._dynamo" in sys.modules else None
    )

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        nonlocal disabled
        if not torch.compiler.is_compiling():
            return function(*args, **kwargs)
        if disabled is None:
            disabled = torch.compiler.disable(function)
        return disabled(*args, **kwargs)

    return call  # type: ignore[return-value]  # same signature as `function`
