"""Dtype policies, with `keras.dtype_policies`' names: the dtype a layer's weights are
stored in and the dtype it computes in.

A plain policy (`"float32"`, `"bfloat16"`...) uses one dtype for both. The mixed
policies `"mixed_float16"` and `"mixed_bfloat16"` keep the weights in float32 and
compute in the reduced precision: floating inputs are cast to the compute dtype
when the layer is called, and while the call runs the layer's weights (and those
of the layers it holds) are read as compute-dtype copies that carry gradients back
to the float32 weights. See `docs/mixed_precision.md`.

Examples:

>>> policy = DTypePolicy("mixed_bfloat16")
>>> policy.compute_dtype, policy.variable_dtype
('bfloat16', 'float32')
>>> serialize(policy)["config"]
{'name': 'mixed_bfloat16'}
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from birnn import backend

_MIXED = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}
# Class names a `.keras` file may write for a plain or mixed policy.
_CLASS_NAMES = ("DTypePolicy", "FloatDTypePolicy", "Policy")


class DTypePolicy:
    """The dtypes a layer stores its weights in and computes in.

    Args:
        name: `"mixed_float16"` or `"mixed_bfloat16"` (float32 weights, reduced
            precision computation), or a dtype name such as `"float32"` (one dtype
            for both). `None` means `birnn.config.floatx()`.

    Examples:

    >>> DTypePolicy("mixed_float16")
    <DTypePolicy "mixed_float16">
    >>> DTypePolicy("float64").compute_dtype
    'float64'
    """

    def __init__(self, name: Any = None) -> None:
        if name is None:
            name = backend.floatx()
        if isinstance(name, torch.dtype):
            name = backend.standardize_dtype(name)
        if not isinstance(name, str):
            raise TypeError(
                "DTypePolicy: argument `name` must be a string, such as 'mixed_float16'. "
                f"Received: name={name!r} (of type {type(name)})"
            )
        if name in _MIXED:
            compute, variable = _MIXED[name], "float32"
        else:
            try:
                compute = variable = backend.standardize_dtype(name)
            except (ValueError, TypeError):
                raise ValueError(
                    f"Cannot convert {name!r} to a mixed precision DTypePolicy. Valid "
                    "policies include 'mixed_float16', 'mixed_bfloat16', and the name of "
                    "any float dtype such as 'float32'."
                ) from None
            name = compute
        self._name = name
        self._compute_dtype = compute
        self._variable_dtype = variable

    @property
    def name(self) -> str:
        """The policy's name (`"mixed_bfloat16"`, `"float32"`...)."""
        return self._name

    @property
    def compute_dtype(self) -> str:
        """The dtype layers compute in (and cast floating inputs to)."""
        return self._compute_dtype

    @property
    def variable_dtype(self) -> str:
        """The dtype layers create their weights in."""
        return self._variable_dtype

    @property
    def quantization_mode(self) -> None:
        """Always `None`: birnn has no quantized policies."""
        return None

    @property
    def is_mixed(self) -> bool:
        """Whether compute and variable dtypes differ."""
        return self._compute_dtype != self._variable_dtype

    def get_config(self) -> dict:
        return {"name": self._name}

    @classmethod
    def from_config(cls, config: dict) -> DTypePolicy:
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.name == self.name

    def __hash__(self) -> int:
        return hash((type(self), self._name))

    def __repr__(self) -> str:
        return f'<DTypePolicy "{self._name}">'


FloatDTypePolicy = DTypePolicy  # Keras keeps the older name as an alias

_state = threading.local()
# Scopes open in any thread: while 0, a call needs no look at `_state` (which
# `torch.compile` cannot trace without a graph break).
_open_scopes = 0
_global_policy: DTypePolicy | None = None


def set_dtype_policy(policy: Any) -> None:
    """Sets the policy of layers created from now on without `dtype=` (Keras's
    `keras.config.set_dtype_policy`, also `mixed_precision.set_global_policy`).

    Args:
        policy: A policy name (`"mixed_bfloat16"`, `"float32"`...) or a `DTypePolicy`.

    Raises:
        ValueError: for anything else, or an unknown name.

    Examples:

    >>> from birnn import layers
    >>> set_dtype_policy("mixed_bfloat16")
    >>> layer = layers.Dense(2)
    >>> layer.compute_dtype, layer.variable_dtype
    ('bfloat16', 'float32')
    >>> set_dtype_policy("float32")
    """
    global _global_policy
    if isinstance(policy, str):
        policy = DTypePolicy(policy)
    if not isinstance(policy, DTypePolicy):
        raise ValueError(
            "Invalid `policy` argument. Expected the string name of a policy (such as "
            f"'mixed_float16') or a `DTypePolicy` instance. Received: policy={policy!r} "
            f"(of type {type(policy)})"
        )
    _global_policy = policy


def dtype_policy() -> DTypePolicy:
    """The policy of new layers: the one set by `set_dtype_policy`, else `floatx()`'s."""
    if _global_policy is not None:
        return _global_policy
    return DTypePolicy(backend.floatx())


set_global_policy = set_dtype_policy
global_policy = dtype_policy


def serialize(policy: DTypePolicy) -> dict:
    """Keras 3's serialized form, as a layer config writes it under `"dtype"`."""
    return {
        "module": "keras",
        "class_name": "DTypePolicy",
        "config": policy.get_config(),
        "registered_name": None,
    }


def deserialize(config: dict, custom_objects: dict | None = None) -> DTypePolicy:
    """The policy a serialized form describes (`DTypePolicy`/`FloatDTypePolicy`).

    Raises:
        ValueError: for quantized or other policy classes birnn does not have.
    """
    class_name = config.get("class_name")
    if class_name not in _CLASS_NAMES:
        raise ValueError(
            f"Unsupported dtype policy class {class_name!r}: birnn has "
            f"{list(_CLASS_NAMES)} (plain and mixed precision policies), not quantized ones."
        )
    inner = config.get("config") or {}
    return DTypePolicy(inner.get("name"))


def get(identifier: Any) -> DTypePolicy:
    """A policy from a name, a serialized dict, a `torch.dtype`, a policy, or `None`
    (the global policy).

    Raises:
        ValueError: for an unknown name or class; TypeError for other objects.
    """
    if identifier is None:
        return dtype_policy()
    if isinstance(identifier, DTypePolicy):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, (str, torch.dtype)):
        return DTypePolicy(identifier)
    name = getattr(identifier, "name", None)  # a Keras policy or a NumPy dtype
    if isinstance(name, str):
        return DTypePolicy(name)
    raise TypeError(
        "Could not interpret dtype policy identifier: expected a policy name such as "
        f"'mixed_bfloat16', a dtype name or a DTypePolicy. Received: {identifier!r}"
    )


# ---------------------------------------------------------------------- autocast
def _autocast_weights(module: nn.Module) -> Iterator[tuple[nn.Module, str]]:
    """`(owner, attribute)` of every floating weight read in the compute dtype:
    all of `module`'s tree but those made with `add_weight(autocast=False)`."""
    for owner in module.modules():
        own_specs = getattr(owner, "own_weight_specs", None)  # a birnn `Layer`'s
        specs = own_specs() if own_specs is not None else None
        for name, param in owner.named_parameters(recurse=False, remove_duplicate=False):
            if is_lazy(param) or not param.is_floating_point():
                continue  # lazy: materialized by its layer's build, read by its own call
            spec = specs.get(name) if specs is not None else None
            if spec is not None and not getattr(spec, "autocast", True):
                continue
            yield owner, name


def _scope_dtype() -> torch.dtype | None:
    return getattr(_state, "dtype", None)


@contextlib.contextmanager
def _autocast(modules: tuple[nn.Module, ...], dtype: torch.dtype | None) -> Iterator[None]:
    """Exposes the weights of `modules` in `dtype` while the block runs (`None`: as
    stored).

    The copies are made from the stored weights (also when an enclosing scope has
    already exposed other copies), so gradients reach the stored weights. Nested
    scopes restore what the enclosing one exposed.
    """
    global _open_scopes
    originals: dict[tuple[int, str], torch.Tensor] = getattr(_state, "originals", None) or {}
    _state.originals = originals
    previous_dtype = _scope_dtype()
    swapped: list[tuple[nn.Module, str, torch.Tensor, bool]] = []
    entered = False
    try:
        for module in modules:
            for owner, name in _autocast_weights(module):
                current: torch.Tensor = getattr(owner, name)
                key = (id(owner), name)
                stored = originals.get(key, current)
                exposed = stored if dtype is None or stored.dtype == dtype else stored.to(dtype)
                if exposed is current:
                    continue
                first = key not in originals
                if first:
                    originals[key] = current
                owner._parameters[name] = exposed  # type: ignore[assignment]
                swapped.append((owner, name, current, first))
        _state.dtype = dtype
        _open_scopes += 1
        entered = True
        yield
    finally:
        if entered:
            _open_scopes -= 1
        _state.dtype = previous_dtype
        for owner, name, before, first in reversed(swapped):
            owner._parameters[name] = before  # type: ignore[assignment]
            if first:
                del originals[(id(owner), name)]


def call_scope(layer: Any, *others: Any) -> contextlib.AbstractContextManager | None:
    """The weight-dtype scope for one call of `layer`, following Keras's rules:

    - outside any scope, a mixed layer reads its weights in its compute dtype;
    - inside one, a layer with another floating compute dtype reads them in its own,
      and a layer with `autocast=False` (or a non-float compute dtype) as stored.

    `others` (layers with the same policy, run together with `layer` without
    their own calls) get the same scope. `None` when the call changes nothing (the
    float32 case: no context manager for `torch.compile` to trace).
    """
    policy = layer.dtype_policy
    if not _open_scopes and not (layer.autocast and policy.is_mixed):
        return None  # the float32 case
    current = _scope_dtype()
    modules = (layer, *others)
    if current is None:
        if not (layer.autocast and policy.is_mixed):
            return None
        return _autocast(modules, backend.torch_dtype(policy.compute_dtype))
    compute = backend.torch_dtype(policy.compute_dtype)
    if not layer.autocast or not compute.is_floating_point:
        return _autocast(modules, None)
    if compute != current:
        return _autocast(modules, compute)
    return None


def same_policy(first: Any, second: Any) -> bool:
    """Whether two layers compute alike (policy and `autocast`)."""
    return first.dtype_policy == second.dtype_policy and first.autocast == second.autocast


def cast_input(layer: Any, x: torch.Tensor) -> torch.Tensor:
    """`x` as `layer.__call__` would pass it to `call()`: floats in the compute dtype."""
    if not (layer.autocast and x.is_floating_point()):
        return x
    dtype = backend.torch_dtype(layer.dtype_policy.compute_dtype)
    return x if x.dtype == dtype or not dtype.is_floating_point else x.to(dtype)


__all__ = [
    "DTypePolicy",
    "FloatDTypePolicy",
    "deserialize",
    "dtype_policy",
    "get",
    "global_policy",
    "serialize",
    "set_dtype_policy",
    "set_global_policy",
]
