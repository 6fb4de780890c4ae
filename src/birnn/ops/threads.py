"""One intra-op thread for work too small to share between cores.

PyTorch opens an OpenMP parallel region for some operations however small their
tensors (a matrix product through MKL, a softmax). On a tiny problem the second
thread saves nothing, and libgomp leaves it spinning for a while after each
region: it doubles the CPU time, and when another process holds that core each
region waits for it. Code that knows its work is small runs it under
`OneIntraOpThread`, which gives the calling thread one intra-op thread and then
its own count back.
"""

from __future__ import annotations

from types import TracebackType

import torch

__all__ = ["OneIntraOpThread"]


class OneIntraOpThread:
    """Runs the `with` block on one intra-op thread when `active`; restores the count after.

    The count is `torch.get_num_threads()` of the calling thread (an OpenMP
    setting of that thread). Nothing changes when `active` is false, when the
    count is already 1, or while `torch.compile` traces (a traced function must
    not change global state). Use one instance per `with` block.

    Args:
        active: Whether the block's work is small enough for one thread.

    Examples:

    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with OneIntraOpThread(active=True):
    ...     inside = torch.get_num_threads()
    >>> inside, torch.get_num_threads() == before
    (1, True)
    >>> with OneIntraOpThread(active=False):
    ...     torch.get_num_threads() == before
    True
    """

    __slots__ = ("active", "_restore")

    def __init__(self, active: bool = True) -> None:
        self.active = active
        self._restore = 0

    def __enter__(self) -> OneIntraOpThread:
        if self.active and not torch.compiler.is_compiling():
            threads = torch.get_num_threads()
            if threads > 1:
                torch.set_num_threads(1)
                self._restore = threads
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._restore:
            torch.set_num_threads(self._restore)
            self._restore = 0
