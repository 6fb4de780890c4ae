"""Whether tensors are in plain eager CPU execution, where native code and threads may use them.

Code that leaves PyTorch's dispatcher (a C++ kernel called on the tensors'
memory, or worker threads sharing them) must not run while something else
intercepts operations: TorchDynamo tracing, TorchScript, a torch-function or
dispatch mode (FakeTensor, meta, debugging modes), a functorch transform
(`vmap`, `grad`), or a tensor subclass. PyTorch has no public probe for modes
and transforms, so this module keeps the private ones in one place.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["plain_eager_cpu"]

_PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)


def plain_eager_cpu(tensors: Sequence[torch.Tensor | None]) -> bool:
    """Whether `tensors` (None entries skipped) are plain CPU tensors in plain eager execution.

    Examples:

    >>> import torch
    >>> plain_eager_cpu([torch.ones(2), None])
    True
    >>> plain_eager_cpu([torch.ones(2, device="meta")])
    False
    """
    if torch.compiler.is_compiling() or torch.jit.is_scripting() or torch.jit.is_tracing():
        return False
    if torch._C._is_torch_function_mode_enabled() or torch._C._len_torch_dispatch_stack():
        return False
    if torch._C._functorch.peek_interpreter_stack() is not None:
        return False
    for tensor in tensors:
        if tensor is None:
            continue
        if type(tensor) not in _PLAIN_TYPES or not tensor.is_cpu:
            return False
    return True
