"""`compile(jit_compile=...)`: what the switch means and the compiled steps.

`jit_compile=True` runs each step through `torch.compile`:

- a training step's forward pass, loss (the compiled losses plus
  `model.losses`) and metric updates are one compiled graph (static shapes:
  one per batch size), from which AOTAutograd derives one
  backward graph that `backward()` runs; the optimizer's update rule is a
  second compiled graph when the optimizer allows it (`rule_takes_tensor_lr`:
  the learning rate enters as a tensor, so schedules and callbacks that change
  it neither recompile nor go stale). Clipping, weight decay, the iteration
  count, loss scaling, constraints and the logs stay eager around them;
- `predict`/`evaluate` steps compile the forward pass.

Inside these graphs the recurrences call birnn's native kernels
(`birnn.ops.native_graph`: the forward kernel in the forward graph, the
backward kernel in the backward graph), or run unrolled
(`birnn.ops.traced_rnn`) in short inference sequences and where the native
kernels cannot run; so a whole step of a recurrent model is one graph. Only
a long sequence that the native kernels cannot take keeps its fused kernel
call outside the graph.

A model's first training step after `compile()` runs eagerly: it builds what
the step creates lazily (weights, loss and metric objects, optimizer slots),
which a traced function should not create. What cannot be compiled runs
eagerly (a distributed step, an optimizer whose rule is not marked, such as a
`LossScaleOptimizer`), never with a different result.

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


def compiled_parts(model: Any) -> set[str]:
    """Which of `model`'s steps have a compiled function so far: `"train"` (forward
    and loss), `"rule"` (the optimizer's update rule), `"forward"` (inference)."""
    keys = _COMPILED.get(model, {})
    return {key if isinstance(key, str) else key[0] for key in keys} & {"train", "rule", "forward"}


def _own_function(function: Callable[..., Any]) -> Callable[..., Any]:
    """A copy of `function` with its own code object: dynamo keeps compiled
    variants per code object, up to a limit, which models sharing one would exhaust."""
    return types.FunctionType(
        function.__code__.replace(),
        function.__globals__,
        function.__name__,
        None,
        function.__closure__,
    )


def _compiled(
    model: Any,
    key: Any,
    make: Callable[[], Callable[..., Any]],
    dynamic: bool | None = None,
    options: dict[str, Any] | None = None,
) -> Callable[..., Any]:
    """`model`'s compiled function under `key`, compiled on first use (`dynamic` and
    `options` as `torch.compile`'s)."""
    per_model = _COMPILED.setdefault(model, {})
    compiled = per_model.get(key)
    if compiled is None:
        function = _own_function(make())
        compiled = per_model[key] = torch.compile(function, dynamic=dynamic, options=options)
        _SOURCES[compiled] = function
    return compiled


# Each compiled function's source: the function whose code dynamo caches entries for.
_SOURCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# The inference graph's inductor options: C++ instead of Python glue between its
# kernels (for the seed model that glue was about a third of the graph's time).
_FORWARD_OPTIONS: dict[str, Any] = {"cpp_wrapper": True}


def forward(model: Any, x: Any, training: bool) -> Any:
    """`model(x, training=training)`, through `torch.compile` when `model.jit_compile`.

    Each model gets its own compiled function per `training` value. The
    functions are held by a weak map, not by the model: a copied or pickled
    model carries none of them. Calls enter dynamo's cache directly
    (`_enter_cached`).
    """
    if not model.jit_compile:
        return model(x, training=training)
    call = _call_training if training else _call_inference
    compiled = _compiled(model, ("forward", training), lambda: call, options=_FORWARD_OPTIONS)
    return _enter_cached(compiled, model, x)


def _call_training(model: Any, x: Any) -> Any:
    return model(x, training=True)


def _call_inference(model: Any, x: Any) -> Any:
    return model(x, training=False)


_cache_entries: Callable[[Any], list[Any]] | None
try:  # dynamo's own view of a code object's cache entries
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list as _cache_entries
except ImportError:  # pragma: no cover - a torch without it: every call goes through dynamo
    _cache_entries = None


def _enter_cached(compiled: Any, model: Any, x: Any) -> Any:
    """`compiled(model, x)`, without dynamo's Python entry wrapper where that is the same.

    Dynamo keeps, per code object, cache entries of guards and transformed code.
    Calling a compiled function runs a Python entry wrapper (for a small model it
    costs about as much as the guards: tens of microseconds), then the code of
    the first entry whose guards pass on the call's arguments. Here the same
    guards are checked on the same arguments and the same code runs. Everything
    else goes through `compiled`: no entry passes (dynamo compiles one), the
    model call breaks the graph (`_runner`), the caller is being compiled, or the
    compiler's stance is not the default one.
    """
    function = _SOURCES.get(compiled)
    if (
        function is None
        or _cache_entries is None
        or torch.compiler.is_compiling()
        or not _default_stance()
    ):
        return compiled(model, x)
    arguments = {"model": model, "x": x}
    for entry in _cache_entries(function):
        if entry.guard_manager.check(arguments):
            runner = _runner(entry.code, function)
            return compiled(model, x) if runner is None else runner(model, x)
    return compiled(model, x)


def _default_stance() -> bool:
    """Whether `torch.compiler.set_stance` is at its default: the other stances change
    what a call runs (eager, another backend, guards skipped)."""
    stance = getattr(torch._dynamo.eval_frame, "_stance", None)
    return (
        getattr(stance, "stance", None) == "default"
        and getattr(stance, "skip_guard_eval_unsafe", None) is False
        and getattr(stance, "backend", False) is None
    )


_RUNNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _runner(code: types.CodeType, function: Any) -> Callable[..., Any] | None:
    """A function running dynamo's transformed `code` for `function`, or None unless
    that code runs compiled graphs and nothing that dynamo would compile on the way.

    Code without a graph calls the original function (a graph break at its first
    call, whose nested frames dynamo compiles); code resuming after a graph break
    calls a `__resume_at` function, compiled by dynamo too. Both go through dynamo.
    The compiled graphs are globals of `function`'s module.
    """
    runners = _RUNNERS.setdefault(function, {})
    if code not in runners:
        names = code.co_names
        whole = (
            code.co_freevars == function.__code__.co_freevars == ()
            and any(name.startswith("__compiled_fn") for name in names)
            and not any(name.startswith("__resume_at") for name in names)
        )
        runners[code] = (
            types.FunctionType(code, function.__globals__, function.__name__) if whole else None
        )
    return runners[code]


def train_forward(
    model: Any, step: Callable[..., tuple[Any, torch.Tensor]], x: Any, y: Any, sample_weight: Any
) -> tuple[Any, torch.Tensor]:
    """`step(x, y, sample_weight)`, a method of `model` running a training step's traced
    part (forward pass, loss, metric updates) and returning `(y_pred, loss)`: one
    compiled graph, which takes the model as an input.

    The first call for a model (after each `compile()`) runs eagerly and builds
    what the step creates lazily.
    """
    per_model = _COMPILED.setdefault(model, {})
    if not per_model.get("warm"):
        per_model["warm"] = True
        return step(x, y, sample_weight)
    # One static graph per batch size: with a symbolic batch size, inductor (torch
    # 2.13) compiles the unrolled recurrence's backward with a stride that still
    # holds the first batch size, and the step fails on the next size.
    unbound = getattr(step, "__func__", step)
    return _compiled(model, "train", lambda: unbound, dynamic=False)(model, x, y, sample_weight)


def _apply_rule(optimizer: Any) -> None:
    optimizer.apply_rule()


class _TensorRates:
    """Puts each parameter group's `"lr"` in a 0-dim tensor, for one compiled step.

    The tensors persist between steps, refilled in place, so the compiled rule sees one
    input of one shape whatever the rate, and reads this step's value.
    """

    def __init__(self) -> None:
        self.holders: list[torch.Tensor] = []

    def swap_in(self, optimizer: Any) -> list[Any]:
        groups = optimizer.param_groups
        if len(self.holders) != len(groups):
            self.holders = [_rate_holder(group["params"][0]) for group in groups]
        rates = []
        for holder, group in zip(self.holders, groups):
            rates.append(group["lr"])
            holder.fill_(float(group["lr"]))
            group["lr"] = holder
        return rates


def _rate_holder(param: torch.Tensor) -> torch.Tensor:
    """A 0-dim rate on `param`'s device: float64 for float64 parameters, else float32
    (a half-precision rate would round it; a 0-dim tensor does not promote the update)."""
    dtype = torch.float64 if param.dtype == torch.float64 else torch.float32
    return torch.zeros((), dtype=dtype, device=param.device)


def optimizer_step(model: Any, optimizer: Any) -> None:
    """`optimizer.step()`, with the update rule compiled when `model.jit_compile` and
    the optimizer allows it (`rule_takes_tensor_lr`) and its slots exist (after its
    first step)."""
    per_model = _COMPILED.get(model)
    if (
        not model.jit_compile
        or per_model is None
        or not getattr(optimizer, "rule_takes_tensor_lr", False)
        or per_model.get("optimizer") not in (None, optimizer)
        or not per_model.get("optimizer_warm")
    ):
        optimizer.step()
        if model.jit_compile and per_model is not None:
            per_model.setdefault("optimizer", optimizer)
            per_model["optimizer_warm"] = per_model["optimizer"] is optimizer
        return
    optimizer.prepare_step()
    rates = per_model.setdefault("rates", _TensorRates())
    previous = rates.swap_in(optimizer)
    try:
        _compiled(model, "rule", lambda: _apply_rule)(optimizer)
    finally:
        for group, rate in zip(optimizer.param_groups, previous):
            group["lr"] = rate
