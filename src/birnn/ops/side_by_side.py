"""Two independent tensor computations at once, each on its own cores, forward and backward.

A bidirectional RNN's two directions share nothing but their inputs, yet
PyTorch's kernels run them one after the other, each time step a small GEMM
that two cores cannot split well. `run` takes two computations (functions of
tensors that return tuples of tensors) and runs them either one after the
other on the calling thread or side by side on two persistent worker
threads, each with half of the caller's intra-op threads. With autograd
recording, the backward pass runs side by side too: each computation is
recorded in its worker on detached copies of its inputs, and the gradients
of the two recorded graphs are taken concurrently, again one per worker
(PyTorch's autograd engine runs a CPU backward on the thread that asks for
it, and its kernels release the GIL). That backward is once differentiable:
differentiating it again (`create_graph=True`, then a second backward) raises
a `RuntimeError`; set the mode to `"off"` for higher-order gradients.

The results are those of the sequential path: the same operations on the
same tensors, only on another thread. The switch (`set_mode`, or the
environment variable `BIRNN_SIDE_BY_SIDE` read at import: `auto`, `on`,
`off`) chooses between a size rule (`auto`, the default), always where
possible (`on`) and never (`off`).

Side by side is only possible in plain eager execution of CPU tensors:
compiled, traced or functorch-transformed code, tensor subclasses, active
dispatch or function modes, saved-tensor hooks (activation checkpointing,
offloading) and CUDA tensors (cuDNN already runs the two directions of one
bidirectional call concurrently) all keep the sequential path, as does a
call made from a worker itself.

On a machine with no more cores than the caller's intra-op threads, the
workers share those cores with the caller's idle OpenMP threads, which by
default (GNU OpenMP) spin-wait for a few milliseconds after each parallel
operation before they sleep; a worker woken during that spin starts late.
`OMP_WAIT_POLICY=PASSIVE` (or a small `GOMP_SPINCOUNT`), set before the
process starts, removes that wait, but slows down kernels that synchronise
their threads often, such as PyTorch's own multi-threaded RNNs.
`benchmarks/side_by_side.py --phases` measures how much overlap is lost.

The fused LSTM / GRU path (`birnn.ops.fused_rnn`) uses these workers only where
the native kernels (`birnn.ops.native_rnn`) cannot run both directions in one
call: those run them at once on the caller's own OpenMP threads, which loses
neither to the GIL nor to the spinning.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch

from birnn.ops import execution

__all__ = ["Computation", "get_mode", "run", "set_mode", "wanted", "wanted_natively"]

Computation = tuple[Callable[..., tuple[torch.Tensor, ...]], Sequence[torch.Tensor | None]]
Results = tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]

_MODES = ("auto", "on", "off")
_ENVIRONMENT = "BIRNN_SIDE_BY_SIDE"

# Smallest work, in multiply-adds per computation (forward pass), that `auto` runs side
# by side. Running the two directions on two workers saves about one direction's step
# but pays a fixed hand-off to the workers and back, larger with a backward pass. The
# saving grows with the work (a training step is about six flops per multiply-add of
# the forward pass) while the hand-off does not: below some 1e7 multiply-adds per
# direction it eats the saving, and the caller runs both directions itself (as for the
# seed model, about 1e5 per direction).
# `benchmarks/side_by_side.py --sweep` measures where the two paths cross on a machine.
_MIN_WORK = 1.0e7

_state = threading.local()
_lock = threading.Lock()
_pool: _Pool | None = None


def _mode_from_environment() -> str:
    value = os.environ.get(_ENVIRONMENT, "auto").strip().lower()
    aliases = {"1": "on", "true": "on", "0": "off", "false": "off", "": "auto"}
    value = aliases.get(value, value)
    if value not in _MODES:
        raise ValueError(
            f"birnn: environment variable `{_ENVIRONMENT}` must be one of "
            f"{', '.join(_MODES)} (or 1 / 0). Received: {value!r}"
        )
    return value


_mode = _mode_from_environment()


def set_mode(mode: str | bool) -> None:
    """Chooses when two independent computations (a bidirectional RNN's directions) run
    side by side.

    Args:
        mode: `"auto"` (default): side by side when each computation is large
            enough to gain from it and the caller has at least 2 intra-op
            threads (`torch.get_num_threads()`); `"on"` or `True`: whenever
            possible, whatever the size and thread count; `"off"` or `False`:
            never. The environment variable `BIRNN_SIDE_BY_SIDE` sets the
            initial mode.

    Examples:

    >>> from birnn.ops import side_by_side
    >>> side_by_side.set_mode("off")
    >>> side_by_side.get_mode()
    'off'
    >>> side_by_side.set_mode("auto")
    """
    global _mode
    if mode is True:
        mode = "on"
    elif mode is False:
        mode = "off"
    if mode not in _MODES:
        raise ValueError(
            f"side_by_side.set_mode: `mode` must be 'auto', 'on', 'off', True or False. "
            f"Received: {mode!r}"
        )
    _mode = mode


def get_mode() -> str:
    """The current mode: `"auto"`, `"on"` or `"off"` (see `set_mode`)."""
    return _mode


def _plain_eager(tensors: Sequence[torch.Tensor | None]) -> bool:
    """Whether these tensors are in plain eager CPU execution, where threads may share them."""
    if getattr(_state, "in_worker", False):
        return False
    if torch._C._autograd._top_saved_tensors_default_hooks(True) is not None:
        return False
    return execution.plain_eager_cpu(tensors)


def wanted(tensors: Sequence[torch.Tensor | None], work: float) -> bool:
    """Whether two computations over `tensors`, each of about `work` multiply-adds,
    should run side by side (see `set_mode`).

    Examples:

    >>> import torch
    >>> from birnn.ops import side_by_side
    >>> side_by_side.wanted([torch.zeros(32, 5, 8)], work=1e5)  # too small to gain
    False
    """
    if _mode == "off":
        return False
    if _mode == "auto" and (work < _MIN_WORK or torch.get_num_threads() < 2):
        return False
    return _plain_eager(tensors)


def wanted_natively() -> bool:
    """Whether a native kernel call should run its two directions at once (see `set_mode`).

    `auto` asks only for two threads, with no size rule: the native kernels
    (`birnn.ops.native_rnn`) hand the directions to the caller's own OpenMP team,
    which measured faster than one direction after the other down to the seed
    model's layers (5 steps, 10 units: 0.7-0.9x, training and inference).

    Examples:

    >>> from birnn.ops import side_by_side
    >>> side_by_side.wanted_natively() == (torch.get_num_threads() >= 2)  # mode "auto"
    True
    """
    return _mode == "on" or (_mode == "auto" and torch.get_num_threads() >= 2)


class _Task:
    """One computation handed to a worker, with the caller's thread-local settings."""

    __slots__ = (
        "function",
        "threads",
        "grad",
        "inference",
        "autocast",
        "done",
        "result",
        "error",
        "changed_threads",
    )

    def __init__(self, function: Callable[[], Any], threads: int, grad: bool) -> None:
        self.function = function
        self.threads = threads
        self.grad = grad
        self.inference = torch.is_inference_mode_enabled()
        self.autocast = (
            (torch.get_autocast_dtype("cpu"), torch.is_autocast_cache_enabled())
            if torch.is_autocast_enabled("cpu")
            else None
        )
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.changed_threads = False

    def __call__(self) -> None:
        """Runs the computation on this (worker) thread with the caller's settings."""
        try:
            if torch.get_num_threads() != self.threads:
                # This also sets the count that threads started later begin with: the
                # caller puts its own count back there (see `_run_tasks`).
                torch.set_num_threads(self.threads)
                self.changed_threads = True
            with torch.inference_mode() if self.inference else _nothing():
                with torch.set_grad_enabled(self.grad):
                    if self.autocast is None:
                        self.result = self.function()
                    else:
                        dtype, cache = self.autocast
                        with torch.autocast("cpu", dtype=dtype, cache_enabled=cache):
                            self.result = self.function()
        except BaseException as error:  # handed to the caller, which raises it
            self.error = error
        finally:
            self.done.set()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class _Pool:
    """Two daemon threads, started once, each running the tasks handed to it in turn."""

    def __init__(self) -> None:
        self.queues: list[queue.SimpleQueue[_Task | None]] = []
        self.threads: list[threading.Thread] = []
        for index in range(2):
            tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
            thread = threading.Thread(
                target=_work, args=(tasks,), name=f"birnn-side-by-side-{index}", daemon=True
            )
            self.queues.append(tasks)
            self.threads.append(thread)
            thread.start()

    def run(self, tasks: Sequence[_Task]) -> list[Any]:
        for tasks_of_worker, task in zip(self.queues, tasks):
            tasks_of_worker.put(task)
        for task in tasks:
            task.done.wait()
        for task in tasks:
            if task.error is not None:
                raise task.error
        return [task.result for task in tasks]

    def stop(self) -> None:
        for tasks_of_worker in self.queues:
            tasks_of_worker.put(None)
        for thread in self.threads:
            thread.join(timeout=1.0)


def _work(tasks: queue.SimpleQueue[_Task | None]) -> None:
    _state.in_worker = True
    while True:
        task = tasks.get()
        if task is None:
            return
        task()


def _get_pool() -> _Pool:
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                _settle_autograd_engine()
                _pool = _Pool()
    return _pool


def _settle_autograd_engine() -> None:
    """Makes PyTorch set up its autograd engine now, on this one thread, before workers start.

    In a forked child, PyTorch rebuilds the engine on the first differentiable op, without a
    lock. The two new workers making their first ops at once crashed the child (SIGSEGV) in
    about one fork in fifteen once the parent had run a backward pass. Elsewhere the engine
    is already there, and this is one tiny op per pool.
    """
    with torch.inference_mode(False), torch.enable_grad():
        torch.ones(1, requires_grad=True).mul(torch.ones(1))  # saves a tensor: uses the engine


def _after_fork_in_child() -> None:
    # The workers do not exist in a forked child; its first side-by-side call starts new ones.
    global _pool, _lock
    _pool = None
    _lock = threading.Lock()


def _at_exit() -> None:
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        pool.stop()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)


def _run_tasks(functions: Sequence[Callable[[], Any]], grad: bool) -> list[Any]:
    threads = torch.get_num_threads()
    per_task = max(1, threads // 2)
    tasks = [_Task(function, per_task, grad) for function in functions]
    results = _get_pool().run(tasks)
    if any(task.changed_threads for task in tasks):
        torch.set_num_threads(threads)  # the caller's own count, also the default again
    return results


def _leaf(tensor: torch.Tensor | None) -> torch.Tensor | None:
    if tensor is None:
        return None
    return tensor.detach().requires_grad_(tensor.requires_grad)


def _recorded(function: Callable[..., tuple[torch.Tensor, ...]], args: Sequence[Any]) -> Any:
    """`function` on detached leaves of `args`, recorded by autograd: `(leaves, outputs)`."""

    def record() -> tuple[list[torch.Tensor | None], tuple[torch.Tensor, ...]]:
        leaves = [_leaf(arg) for arg in args]
        return leaves, tuple(function(*leaves))

    return record


def _gradients(
    outputs: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor | None],
    leaves: Sequence[torch.Tensor | None],
    keep_graph: bool,
) -> Callable[[], list[torch.Tensor | None]]:
    """Gradients of the recorded `outputs` (given `grads`) for the leaves that need them."""

    def gradients() -> list[torch.Tensor | None]:
        pairs = [
            (output, grad)
            for output, grad in zip(outputs, grads)
            if grad is not None and output.requires_grad
        ]
        wanted_leaves = [leaf for leaf in leaves if leaf is not None and leaf.requires_grad]
        result: list[torch.Tensor | None] = [None] * len(leaves)
        if not pairs or not wanted_leaves:
            return result
        found = iter(
            torch.autograd.grad(
                [output for output, _ in pairs],
                wanted_leaves,
                [grad for _, grad in pairs],
                retain_graph=keep_graph,
                allow_unused=True,
            )
        )
        for index, leaf in enumerate(leaves):
            if leaf is not None and leaf.requires_grad:
                result[index] = next(found)
        return result

    return gradients


class _SideBySide(torch.autograd.Function):
    """Two recorded computations as one autograd node whose backward runs them side by side.

    `forward(ctx, plan, *tensors)`: `plan` holds the two functions and how many of
    `tensors` each takes; it returns the first computation's outputs, then the
    second's (an output the computation returns twice comes back once, see `plan`).
    """

    @staticmethod
    def forward(ctx: Any, plan: _Plan, *tensors: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        ctx.set_materialize_grads(False)
        split = plan.split
        recorded = _run_tasks(
            [
                _recorded(plan.functions[0], tensors[:split]),
                _recorded(plan.functions[1], tensors[split:]),
            ],
            grad=True,
        )
        outputs: list[torch.Tensor] = []
        leaves: list[torch.Tensor | None] = []
        for side, (side_leaves, side_outputs) in enumerate(recorded):
            plan.unique[side] = _unique(side_outputs)
            outputs += [side_outputs[i] for i in plan.unique[side][0]]
            leaves += side_leaves
        ctx.plan = plan
        ctx.count = len(outputs)
        # Saved, not held: released with the node's other buffers after a backward pass
        # that does not retain the graph.
        ctx.save_for_backward(*outputs, *leaves)
        results = tuple(output.detach() for output in outputs)
        constant = [r for r, o in zip(results, outputs) if not o.requires_grad]
        if constant:
            ctx.mark_non_differentiable(*constant)
        return results

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        saved = ctx.saved_tensors
        outputs, leaves = saved[: ctx.count], saved[ctx.count :]
        plan = ctx.plan
        first = len(plan.unique[0][0])
        split = plan.split
        keep_graph = torch._C._autograd._get_current_graph_task_keep_graph()
        functions = [
            _gradients(outputs[:first], grads[:first], leaves[:split], keep_graph),
            _gradients(outputs[first:], grads[first:], leaves[split:], keep_graph),
        ]
        if any(g is not None for g in grads[:first]) and any(g is not None for g in grads[first:]):
            gradients = _run_tasks(functions, grad=False)
        else:  # only one side has anything to do: no need for a second thread
            gradients = [function() for function in functions]
        return (None, *gradients[0], *gradients[1])


def _unique(outputs: Sequence[torch.Tensor]) -> tuple[list[int], list[int]]:
    """Positions of the distinct tensors among `outputs`, and each output's place among them."""
    kept: list[int] = []
    places: list[int] = []
    for index, output in enumerate(outputs):
        for place, seen in enumerate(kept):
            if outputs[seen] is output:
                places.append(place)
                break
        else:
            places.append(len(kept))
            kept.append(index)
    return kept, places


class _Plan:
    __slots__ = ("functions", "split", "unique")

    def __init__(self, functions: Sequence[Callable[..., Any]], split: int) -> None:
        self.functions = tuple(functions)
        self.split = split
        self.unique: list[Any] = [None, None]


def _requires_grad(tensors: Sequence[torch.Tensor | None]) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def run(first: Computation, second: Computation, side_by_side: bool) -> Results:
    """Both computations' outputs: one after the other on this thread, or side by side.

    Each computation is `(function, args)`: `function(*args)` returns a tuple of
    tensors; `args` are tensors or `None`. Side by side, each runs on its own
    worker thread with half of this thread's intra-op threads (at least one),
    under this thread's grad mode, inference mode and CPU autocast settings;
    when autograd records, the backward pass runs the two side by side as
    well. Call `wanted` first: side by side is only for plain eager CPU work.

    Examples:

    >>> import torch
    >>> from birnn.ops import side_by_side
    >>> x = torch.arange(3.0, requires_grad=True)
    >>> (a,), (b,) = side_by_side.run(
    ...     (lambda t: (t * 2,), [x]), (lambda t: (t.exp(),), [x]), side_by_side=True)
    >>> (a.sum() + b.sum()).backward()
    >>> torch.allclose(x.grad, 2 + x.exp())
    True
    """
    (first_function, first_args), (second_function, second_args) = first, second
    if not side_by_side:
        return tuple(first_function(*first_args)), tuple(second_function(*second_args))
    tensors = [*first_args, *second_args]
    if not _requires_grad(tensors):
        a, b = _run_tasks(
            [lambda: tuple(first_function(*first_args)), lambda: second_function(*second_args)],
            grad=torch.is_grad_enabled(),
        )
        return a, tuple(b)
    plan = _Plan((first_function, second_function), len(first_args))
    flat = _SideBySide.apply(plan, *tensors)
    kept_first, places_first = plan.unique[0]
    head, tail = flat[: len(kept_first)], flat[len(kept_first) :]
    return (
        tuple(head[place] for place in places_first),
        tuple(tail[place] for place in plan.unique[1][1]),
    )
