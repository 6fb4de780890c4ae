"""Tensor plumbing shared by every layer: dtypes, conversion, names and the call context.

Nothing in here knows about layers; layers and models import from it.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from typing import Any

import numpy as np
import torch

_FLOATX = "float32"

_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}


def floatx() -> str:
    """The default float type, as a string (`"float32"`)."""
    return _FLOATX


def set_floatx(value: str) -> None:
    """Sets the default float type of new layers and converted arrays (Keras's
    `keras.config.set_floatx`): `"float16"`, `"bfloat16"`, `"float32"` or `"float64"`."""
    global _FLOATX
    accepted = ("float16", "bfloat16", "float32", "float64")
    if value not in accepted:
        raise ValueError(f"Unknown `floatx` value: {value!r}. Expected one of {accepted}")
    _FLOATX = value


def clear_session() -> None:
    """Resets automatic layer naming, as `keras.backend.clear_session()` does."""
    reset_uids()


def standardize_dtype(dtype: Any) -> str:
    """Returns the canonical name (`"float32"`, `"int64"`...) of a dtype-like object.

    Accepts strings, `torch.dtype`, NumPy dtypes and Keras-style serialized
    `DTypePolicy` dicts. `None` means `floatx()`.
    """
    if dtype is None:
        return floatx()
    if isinstance(dtype, dict):  # serialized DTypePolicy
        dtype = dtype.get("config", {}).get("name", floatx())
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPE_NAMES:
            raise ValueError(f"Unsupported dtype: {dtype}")
        return _DTYPE_NAMES[dtype]
    if hasattr(dtype, "name") and not isinstance(dtype, str):  # DTypePolicy-like
        dtype = dtype.name
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name in ("float", "double"):
        name = {"float": "float32", "double": "float64"}[name]
    if name not in _DTYPES:
        raise ValueError(f"Invalid dtype: {dtype!r}. Expected one of {sorted(_DTYPES)}.")
    return name


def torch_dtype(dtype: Any) -> torch.dtype:
    """The `torch.dtype` for a dtype-like object."""
    if isinstance(dtype, str) and dtype in _DTYPES:  # the common case: a canonical name
        return _DTYPES[dtype]
    return _DTYPES[standardize_dtype(dtype)]


def is_float_dtype(dtype: Any) -> bool:
    return torch_dtype(dtype).is_floating_point


def serialize_dtype_policy(dtype: str) -> dict:
    """The `dtype` entry of a layer config, in Keras 3's `DTypePolicy` form."""
    return {
        "module": "keras",
        "class_name": "DTypePolicy",
        "config": {"name": dtype},
        "registered_name": None,
    }


def convert_to_tensor(x: Any, dtype: Any = None, device: Any = None) -> torch.Tensor:
    """Converts NumPy arrays, lists and scalars to a torch tensor.

    NumPy float64 becomes `floatx()` unless `dtype` says otherwise, as in Keras.
    """
    if isinstance(x, torch.Tensor):
        out = x
    else:
        arr = np.asarray(x)
        if arr.dtype == np.float64 and dtype is None:
            arr = arr.astype(floatx())
        if arr.dtype == object:
            raise TypeError(f"Cannot convert {type(x).__name__} to a tensor.")
        # `ascontiguousarray` turns 0-d arrays into 1-d ones; reshape keeps scalars scalar.
        out = torch.from_numpy(np.ascontiguousarray(arr).reshape(arr.shape))
    if dtype is not None:
        out = out.to(torch_dtype(dtype))
    if device is not None:
        out = out.to(device)
    return out


def to_numpy(x: Any) -> Any:
    """Converts a tensor (or nested structure of tensors) to NumPy."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()  # NumPy has no bfloat16
    if isinstance(x, (list, tuple)):
        return type(x)(to_numpy(v) for v in x)
    if isinstance(x, dict):
        return {k: to_numpy(v) for k, v in x.items()}
    return x


def to_snake_case(name: str) -> str:
    """`"GlobalAveragePooling1D"` -> `"global_average_pooling1d"`, as Keras names layers."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub(r"([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


class NameCounter:
    """Gives `base`, then `base_1`, `base_2`... for each later request of the same base.

    >>> unique = NameCounter()
    >>> [unique(n) for n in ["dense", "lstm", "dense", "dense"]]
    ['dense', 'lstm', 'dense_1', 'dense_2']
    """

    def __init__(self) -> None:
        self._counts: defaultdict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def __call__(self, base: str) -> str:
        with self._lock:
            count = self._counts[base]
            self._counts[base] += 1
        return base if count == 0 else f"{base}_{count}"

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


_layer_names = NameCounter()


def unique_name(base: str) -> str:
    """`base`, then `base_1`, `base_2`... for each later request in this process."""
    return _layer_names(base)


def reset_uids() -> None:
    """Restarts automatic layer naming (like `keras.backend.clear_session()`)."""
    _layer_names.reset()


class _CallContext(threading.local):
    def __init__(self) -> None:
        self.training: list[bool | None] = []


_call_context = _CallContext()


def current_training() -> bool | None:
    """The `training` value of the innermost enclosing layer call, if any."""
    stack = _call_context.training
    return stack[-1] if stack else None


class training_scope:
    """Makes `training` the default for nested layer calls (`with training_scope(True):`).

    A class rather than a generator-based context manager: every layer call
    enters one, and this is several times cheaper.
    """

    __slots__ = ("_stack", "_training")

    def __init__(self, training: bool | None) -> None:
        self._training = training

    def __enter__(self) -> None:
        self._stack = _call_context.training
        self._stack.append(self._training)

    def __exit__(self, *exc_info: Any) -> None:
        self._stack.pop()
