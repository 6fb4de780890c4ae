"""The symbolic tensor that `Input()` returns and functional layer calls produce."""

from __future__ import annotations

from typing import Any

import torch

from birnn import backend


class KerasTensor:
    """A placeholder with a shape (`None` for unknown sizes) and a dtype, but no data.

    Calling a layer on `KerasTensor`s records a node of a functional graph instead of
    computing anything. `_keras_history` is `(layer, node_index, tensor_index)`.
    """

    def __init__(
        self,
        shape: tuple,
        dtype: Any = None,
        sparse: bool = False,
        name: str | None = None,
        record_history: tuple | None = None,
    ) -> None:
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = backend.standardize_dtype(dtype)
        self.sparse = sparse
        self.name = name
        self._keras_history = record_history
        self._keras_mask: KerasTensor | None = None
        self.mask_source: KerasTensor | None = None
        """On a mask marker (what a layer's `mask` argument records): the tensor whose
        mask it stands for."""

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


_PLAIN_TYPES = frozenset({torch.Tensor, bool, int, float, type(None)})


def is_symbolic(structure: Any) -> bool:
    """Whether a (nested) structure holds any `KerasTensor`."""
    if isinstance(structure, KerasTensor):
        return True
    if isinstance(structure, dict):
        structure = structure.values()
    elif not isinstance(structure, (list, tuple)):
        return False
    # A loop, not `any()`, and plain leaves skipped without a call: every layer call asks.
    for x in structure:
        if type(x) not in _PLAIN_TYPES and is_symbolic(x):
            return True
    return False
