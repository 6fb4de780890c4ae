"""`compile(jit_compile=...)`: what the switch means and the compiled forward passes.

`jit_compile=True` runs the model's forward pass of each step (`fit`,
`evaluate`, `predict` and the `*_on_batch` methods) through `torch.compile`.
The loss, metrics, `backward()` and the optimizer step stay eager, so callbacks
that change the learning rate, loss scaling, constraints and `stop_training`
behave exactly as without it; autograd runs the compiled backward graph that
`torch.compile` makes with the forward one.

`"auto"` (the default) means eager, as in Keras 3 on the torch backend, where
`model.jit_compile` reads `False` after `compile()`: compilation takes seconds
to minutes, which only pays on long runs.
"""

from __future__ import annotations

import functools
import types
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import torch

_RUN_EAGERLY_CONFLICT = (
    "If `run_eagerly` is True, then `jit_compile` cannot also be True. Disabling `jit_compile`."
)


def resolve(jit_compile: Any, run_eagerly: bool) -> bool:
    """The `jit_compile` a model gets from `compile()`'s argument (Keras's rules).

    `"auto"` and `False` are eager; `True` compiles, unless `run_eagerly` is set
    (a warning, as in Keras) or `torch.compile` cannot run here (a warning naming
    the reason).

    Raises:
        ValueError: a value other than `True`, `False` or `"auto"`.
    """
    if not (isinstance(jit_compile, bool) or jit_compile == "auto"):
        raise ValueError(
            f"compile(): argument `jit_compile` must be True, False or 'auto'. "
            f"Received: {jit_compile!r}"
        )
    if jit_compile is not True:
        return False
    if run_eagerly:
        warnings.warn(_RUN_EAGERLY_CONFLICT, stacklevel=3)
        return False
    problem = unavailable_reason()
    if problem is not None:
        warnings.warn(
            f"compile(jit_compile=True): torch.compile cannot run here ({problem}); the "
            "model runs its steps eagerly and `jit_compile` is False.",
            stacklevel=3,
        )
        return False
    return True


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """Why `torch.compile` cannot compile on this machine (no C++ compiler, an
    unsupported Python...), or None when it can. Probed once per process."""
    try:
        probe = torch.compile(lambda x: x * 2.0 + 1.0, fullgraph=True)
        if not torch.equal(probe(torch.ones(3)), torch.full((3,), 3.0)):
            return "a probe computed a wrong result"
    except Exception as e:  # any failure means: do not compile
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    return None


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def forget(model: Any) -> None:
    """Drops `model`'s compiled forward passes (`compile()` starts afresh)."""
    _COMPILED.pop(model, None)


def forward(model: Any, x: Any, training: bool) -> Any:
    """`model(x, training=training)`, through `torch.compile` when `model.jit_compile`.

    Each model gets its own compiled function per `training` value, with its
    own code object: dynamo keeps compiled variants per code object, up to a
    limit, which models sharing one would exhaust. `torch.compile`'s default
    dynamic-shape rule recompiles once for a second batch size (the last,
    smaller batch of an epoch), then treats the batch size as dynamic. The
    functions are held by a weak map, not by the model: a copied or pickled
    model carries none of them.
    """
    if not model.jit_compile:
        return model(x, training=training)
    per_model = _COMPILED.setdefault(model, {})
    compiled = per_model.get(training)
    if compiled is None:
        compiled = per_model[training] = _compiled_call(training)
    return compiled(model, x)


def _compiled_call(training: bool) -> Callable[[Any, Any], Any]:
    def call(model: Any, x: Any) -> Any:
        return model(x, training=training)

    own = types.FunctionType(
        call.__code__.replace(), call.__globals__, call.__name__, None, call.__closure__
    )
    return torch.compile(own)
