"""Keras's weight initializers, producing torch tensors.

An initializer is called as `init(shape, dtype="float32")` and returns a CPU
`torch.Tensor`. Random initializers take a `seed`: an integer seed gives the same
values on every call; `seed=None` draws from torch's global generator (so
`torch.manual_seed` makes a whole model reproducible). Names, arguments, defaults
and `get_config()` follow Keras 3.

>>> init = get("glorot_uniform")
>>> init((3, 4)).shape
torch.Size([3, 4])
>>> serialize(Zeros())
{'module': 'keras.initializers', 'class_name': 'Zeros', 'config': {}, 'registered_name': None}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from birnn import backend
from birnn._registry import Registry

__all__ = [
    "Constant",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "Identity",
    "Initializer",
    "LecunNormal",
    "LecunUniform",
    "Ones",
    "Orthogonal",
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "VarianceScaling",
    "Zeros",
    "compute_fans",
    "deserialize",
    "get",
    "serialize",
]

# Standard deviation of a unit normal truncated to [-2, 2].
_TRUNCATED_STDDEV = 0.87962566103423978


def _shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if dims is None or any(
        isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0 for d in dims
    ):
        raise ValueError(
            "Initializer: argument `shape` must be a tuple of non-negative integers. "
            f"Received: shape={shape!r}"
        )
    return tuple(int(d) for d in dims)


def _number(owner: str, name: str, value: Any) -> float:
    """`value` as a Python number, or a `TypeError` naming the initializer and argument."""
    if isinstance(value, (np.generic, torch.Tensor)) and np.ndim(value) == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: argument `{name}` must be a number. Received: {name}={value!r}")
    return value


def _float_dtype(dtype: Any) -> torch.dtype:
    """The dtype to sample in: float64 stays, other floats sample in float32."""
    tdtype = backend.torch_dtype(dtype)
    if not tdtype.is_floating_point:
        raise ValueError(f"Random initializers need a floating dtype. Received: dtype={dtype!r}")
    return torch.float64 if tdtype == torch.float64 else torch.float32


def _generator(seed: int | None) -> torch.Generator | None:
    if seed is None:
        return None
    gen = torch.Generator()
    gen.manual_seed(int(seed) % (2**63))
    return gen


def _uniform(shape, minval, maxval, dtype, seed) -> torch.Tensor:
    out = torch.rand(_shape(shape), generator=_generator(seed), dtype=_float_dtype(dtype))
    out = out * (maxval - minval) + minval
    return out.to(backend.torch_dtype(dtype))


def _normal(shape, mean, stddev, dtype, seed) -> torch.Tensor:
    out = torch.randn(_shape(shape), generator=_generator(seed), dtype=_float_dtype(dtype))
    return (out * stddev + mean).to(backend.torch_dtype(dtype))


def _truncated_normal(shape, mean, stddev, dtype, seed) -> torch.Tensor:
    """Normal samples restricted to two standard deviations (inverse-CDF sampling)."""
    low = 0.5 * (1 + math.erf(-2 / math.sqrt(2)))
    u = torch.rand(_shape(shape), generator=_generator(seed), dtype=torch.float64)
    u = low + u * (1 - 2 * low)
    z = math.sqrt(2) * torch.erfinv(2 * u - 1)
    return (z * stddev + mean).to(backend.torch_dtype(dtype))


def compute_fans(
    shape: Sequence[int],
    input_axes: Sequence[int] | None = None,
    output_axes: Sequence[int] | None = None,
) -> tuple[int, int]:
    """`(fan_in, fan_out)` of a weight shape, as Keras computes them.

    For rank > 2 the leading axes are a receptive field:
    `fan_in = shape[-2] * prod(shape[:-2])`, `fan_out = shape[-1] * prod(shape[:-2])`.

    >>> compute_fans((3, 5, 2))
    (15, 6)
    """
    shape = _shape(shape)
    if input_axes is not None and output_axes is not None:
        return (
            int(math.prod(shape[a] for a in input_axes)),
            int(math.prod(shape[a] for a in output_axes)),
        )
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class of initializers: callables `(shape, dtype) -> torch.Tensor`.

    Subclasses implement `__call__(shape, dtype=None)` and, when they take
    arguments, `get_config()`.

    Examples:

    >>> class Twos(Initializer):
    ...     def __call__(self, shape, dtype=None):
    ...         return torch.full(shape, 2.0)
    >>> Twos()((2,))
    tensor([2., 2.])
    """

    def __call__(self, shape: Sequence[int], dtype: Any = None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement `__call__`.")

    def get_config(self) -> dict:
        """The constructor arguments, as a JSON-serializable dict."""
        return {}

    @classmethod
    def from_config(cls, config: dict) -> Initializer:
        """Creates an initializer from `get_config()`'s output."""
        config = dict(config)
        config.pop("dtype", None)
        return cls(**config)

    def clone(self) -> Initializer:
        return type(self).from_config(self.get_config())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    """Initializes tensors with zeros.

    >>> Zeros()((2,))
    tensor([0., 0.])
    """

    def __call__(self, shape, dtype=None):
        return torch.zeros(_shape(shape), dtype=backend.torch_dtype(dtype))


class Ones(Initializer):
    """Initializes tensors with ones.

    >>> Ones()((2,), dtype="int32")
    tensor([1, 1], dtype=torch.int32)
    """

    def __call__(self, shape, dtype=None):
        return torch.ones(_shape(shape), dtype=backend.torch_dtype(dtype))


class Constant(Initializer):
    """Initializes tensors with a constant value.

    Args:
        value: A Python scalar.

    >>> Constant(3.0)((2,))
    tensor([3., 3.])
    """

    def __init__(self, value: float = 0.0) -> None:
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value.item()
        self.value = _number("Constant", "value", value)

    def __call__(self, shape, dtype=None):
        tdtype = backend.torch_dtype(dtype)
        return torch.as_tensor(self.value, dtype=tdtype) * torch.ones(_shape(shape), dtype=tdtype)

    def get_config(self):
        return {"value": self.value}


class Identity(Initializer):
    """Initializes a 2-D tensor with `gain` times the identity matrix.

    Args:
        gain: Multiplicative factor.

    >>> Identity()((2, 2))
    tensor([[1., 0.],
            [0., 1.]])
    """

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = _number("Identity", "gain", gain)

    def __call__(self, shape, dtype=None):
        shape = _shape(shape)
        if len(shape) != 2:
            raise ValueError(
                "Identity initializer can only be used for 2D matrices. "
                f"Received: shape={shape} of rank {len(shape)}."
            )
        return self.gain * torch.eye(*shape, dtype=backend.torch_dtype(dtype))

    def get_config(self):
        # Keras writes an empty config (dropping `gain`); keep it when it matters.
        return {} if self.gain == 1.0 else {"gain": self.gain}


class RandomInitializer(Initializer):
    """Base of the random initializers: holds the `seed`.

    Args:
        seed: `None` (torch's global generator) or an integer: the same integer
            gives the same values on every call.
    """

    def __init__(self, seed: int | None = None) -> None:
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
        ):
            raise ValueError(
                f"{type(self).__name__}: argument `seed` must be an integer or None. "
                f"Received: seed={seed!r}"
            )
        self.seed = None if seed is None else int(seed)

    def get_config(self):
        return {"seed": self.seed}


class RandomNormal(RandomInitializer):
    """Samples from a normal distribution.

    Args:
        mean: Mean of the distribution.
        stddev: Standard deviation of the distribution.
        seed: Integer seed or `None`.

    >>> RandomNormal(seed=1)((2, 2)).shape
    torch.Size([2, 2])
    """

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        self.mean = _number("RandomNormal", "mean", mean)
        self.stddev = _number("RandomNormal", "stddev", stddev)
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        return _normal(shape, self.mean, self.stddev, dtype, self.seed)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomInitializer):
    """Samples from a normal distribution truncated to two standard deviations.

    Args:
        mean: Mean of the distribution before truncation.
        stddev: Standard deviation of the distribution before truncation.
        seed: Integer seed or `None`.

    >>> bool(TruncatedNormal(stddev=1.0, seed=1)((1000,)).abs().max() <= 2.0)
    True
    """

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        self.mean = _number("TruncatedNormal", "mean", mean)
        self.stddev = _number("TruncatedNormal", "stddev", stddev)
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        return _truncated_normal(shape, self.mean, self.stddev, dtype, self.seed)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class RandomUniform(RandomInitializer):
    """Samples from a uniform distribution over `[minval, maxval)`.

    Args:
        minval: Lower bound.
        maxval: Upper bound.
        seed: Integer seed or `None`.

    >>> bool(RandomUniform(-1.0, 1.0, seed=1)((100,)).abs().max() <= 1.0)
    True
    """

    def __init__(
        self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None
    ) -> None:
        self.minval = _number("RandomUniform", "minval", minval)
        self.maxval = _number("RandomUniform", "maxval", maxval)
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        return _uniform(shape, self.minval, self.maxval, dtype, self.seed)

    def get_config(self):
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


class VarianceScaling(RandomInitializer):
    """Samples with a variance scaled to the weight's fans.

    With `n` the fan selected by `mode`, `"truncated_normal"` samples have
    standard deviation `sqrt(scale / n)` after truncation, `"untruncated_normal"`
    the same without truncation, and `"uniform"` samples lie in
    `[-sqrt(3 * scale / n), sqrt(3 * scale / n)]`.

    Args:
        scale: Positive scaling factor.
        mode: `"fan_in"`, `"fan_out"` or `"fan_avg"`.
        distribution: `"truncated_normal"` (alias `"normal"`),
            `"untruncated_normal"` or `"uniform"`.
        seed: Integer seed or `None`.
        input_axes: Optional axes counted in the fan-in.
        output_axes: Optional axes counted in the fan-out.

    >>> VarianceScaling(scale=0.1, mode="fan_in", distribution="uniform")((4, 3)).shape
    torch.Size([4, 3])
    """

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: int | None = None,
        input_axes: Sequence[int] | None = None,
        output_axes: Sequence[int] | None = None,
    ) -> None:
        name = type(self).__name__
        scale = _number(name, "scale", scale)
        if not scale > 0.0:
            raise ValueError(
                f"{name}: argument `scale` must be a positive float. Received: {scale}"
            )
        modes = ("fan_in", "fan_out", "fan_avg")
        if mode not in modes:
            raise ValueError(f"{name}: invalid `mode` {mode!r}. Expected one of {modes}.")
        distribution = str(distribution).lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        distributions = ("truncated_normal", "untruncated_normal", "uniform")
        if distribution not in distributions:
            raise ValueError(
                f"{name}: invalid `distribution` {distribution!r}. "
                f"Expected one of {distributions}."
            )
        self.scale = scale
        self.mode = mode
        self.distribution = distribution
        self.input_axes = input_axes
        self.output_axes = output_axes
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}
        scale = self.scale / max(1.0, fan[self.mode])
        if self.distribution == "truncated_normal":
            return _truncated_normal(
                shape, 0.0, math.sqrt(scale) / _TRUNCATED_STDDEV, dtype, self.seed
            )
        if self.distribution == "untruncated_normal":
            return _normal(shape, 0.0, math.sqrt(scale), dtype, self.seed)
        limit = math.sqrt(3.0 * scale)
        return _uniform(shape, -limit, limit, dtype, self.seed)

    def get_config(self):
        return {
            **super().get_config(),
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "input_axes": self.input_axes,
            "output_axes": self.output_axes,
        }


class _FixedVarianceScaling(VarianceScaling):
    """A `VarianceScaling` preset whose config holds only the seed and axes."""

    _preset: tuple[float, str, str] = (1.0, "fan_in", "truncated_normal")

    def __init__(
        self,
        seed: int | None = None,
        input_axes: Sequence[int] | None = None,
        output_axes: Sequence[int] | None = None,
    ) -> None:
        scale, mode, distribution = self._preset
        super().__init__(scale, mode, distribution, seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}


class GlorotUniform(_FixedVarianceScaling):
    """Glorot (Xavier) uniform: `U(-limit, limit)`, `limit = sqrt(6 / (fan_in + fan_out))`.

    Args:
        seed: Integer seed or `None`.
        input_axes: Optional axes counted in the fan-in.
        output_axes: Optional axes counted in the fan-out.

    >>> GlorotUniform(seed=0)((2, 3)).shape
    torch.Size([2, 3])
    """

    _preset = (1.0, "fan_avg", "uniform")


class GlorotNormal(_FixedVarianceScaling):
    """Glorot (Xavier) normal: truncated normal with `stddev = sqrt(2 / (fan_in + fan_out))`.

    Args:
        seed: Integer seed or `None`.
        input_axes: Optional axes counted in the fan-in.
        output_axes: Optional axes counted in the fan-out.

    >>> GlorotNormal(seed=0)((2, 3)).shape
    torch.Size([2, 3])
    """

    _preset = (1.0, "fan_avg", "truncated_normal")


class LecunNormal(_FixedVarianceScaling):
    """LeCun normal: truncated normal with `stddev = sqrt(1 / fan_in)`.

    Args:
        seed: Integer seed or `None`.
        input_axes: Optional axes counted in the fan-in.
        output_axes: Optional axes counted in the fan-out.

    >>> LecunNormal(seed=0)((2, 3)).shape
    torch.Size([2, 3])
    """

    _preset = (1.0, "fan_in", "truncated_normal")


class LecunUniform(_FixedVarianceScaling):
    """LeCun uniform: `U(-limit, limit)`, `limit = sqrt(3 / fan_in)`.

    Args:
        seed: Integer seed or `None`.
        input_axes: Optional axes counted in the fan-in.
        output_axes: Optional axes counted in the fan-out.

    >>> LecunUniform(seed=0)((2, 3)).shape
    torch.Size([2, 3])
    """

    _preset = (1.0, "fan_in", "uniform")


class HeNormal(_FixedVarianceScaling):
    """He normal: truncated normal with `stddev = sqrt(2 / fan_in)`.

    Args:
        seed: Integer seed or `None`.
        input_axes: Optional axes counted in the fan-in.
        output_axes: Optional axes counted in the fan-out.

    >>> HeNormal(seed=0)((2, 3)).shape
    torch.Size([2, 3])
    """

    _preset = (2.0, "fan_in", "truncated_normal")


class HeUniform(_FixedVarianceScaling):
    """He uniform: `U(-limit, limit)`, `limit = sqrt(6 / fan_in)`.

    Args:
        seed: Integer seed or `None`.
        input_axes: Optional axes counted in the fan-in.
        output_axes: Optional axes counted in the fan-out.

    >>> HeUniform(seed=0)((2, 3)).shape
    torch.Size([2, 3])
    """

    _preset = (2.0, "fan_in", "uniform")


class Orthogonal(RandomInitializer):
    """An orthogonal matrix (QR of a Gaussian matrix, signs fixed), times `gain`.

    Shapes of rank > 2 are treated as a `(prod(shape[:-1]), shape[-1])` matrix. With
    fewer rows than columns the rows are orthonormal, otherwise the columns are.

    Args:
        gain: Multiplicative factor.
        seed: Integer seed or `None`.

    >>> w = Orthogonal(seed=0)((4, 4))
    >>> torch.allclose(w @ w.T, torch.eye(4), atol=1e-5)
    True
    """

    def __init__(self, gain: float = 1.0, seed: int | None = None) -> None:
        self.gain = _number("Orthogonal", "gain", gain)
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        shape = _shape(shape)
        if len(shape) < 2:
            raise ValueError(
                "Orthogonal initializer needs a tensor of rank >= 2. "
                f"Received: shape={shape} of rank {len(shape)}."
            )
        rows = math.prod(shape[:-1])
        cols = shape[-1]
        flat = (max(rows, cols), min(rows, cols))
        a = torch.randn(flat, generator=_generator(self.seed), dtype=_float_dtype(dtype))
        q, r = torch.linalg.qr(a)
        d = torch.diagonal(r)
        q = q * torch.where(d < 0, -1.0, 1.0).to(q.dtype)
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).to(backend.torch_dtype(dtype))

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}


_CLASSES = (
    Constant,
    Identity,
    Ones,
    Zeros,
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    LecunNormal,
    LecunUniform,
    Orthogonal,
    RandomNormal,
    RandomUniform,
    TruncatedNormal,
    VarianceScaling,
)
_OBJECTS: dict[str, Any] = {cls.__name__: cls for cls in _CLASSES}
_OBJECTS.update({backend.to_snake_case(cls.__name__): cls for cls in _CLASSES})
_OBJECTS.update(
    {
        "Initializer": Initializer,
        "IdentityInitializer": Identity,
        "OrthogonalInitializer": Orthogonal,
        "normal": RandomNormal,
        "uniform": RandomUniform,
        "one": Ones,
        "zero": Zeros,
    }
)
_REGISTRY = Registry("initializer", "keras.initializers", _OBJECTS)

# Keras's lower-case aliases of the classes.
constant = Constant
identity = Identity
ones = Ones
zeros = Zeros
glorot_normal = GlorotNormal
glorot_uniform = GlorotUniform
he_normal = HeNormal
he_uniform = HeUniform
lecun_normal = LecunNormal
lecun_uniform = LecunUniform
orthogonal = Orthogonal
random_normal = RandomNormal
random_uniform = RandomUniform
truncated_normal = TruncatedNormal
variance_scaling = VarianceScaling


def serialize(initializer: Any) -> Any:
    """The Keras 3 serialized dict of an initializer.

    >>> serialize(Constant(2.0))["config"]
    {'value': 2.0}
    """
    return _REGISTRY.serialize(initializer)


def deserialize(config: Any, custom_objects: dict | None = None) -> Any:
    """The initializer described by a name or a serialized dict.

    >>> deserialize({"class_name": "Orthogonal", "config": {"gain": 2.0}}).gain
    2.0
    """
    return _REGISTRY.deserialize(config, custom_objects)


def get(identifier: Any) -> Any:
    """Retrieves an initializer from a name, config dict, class, instance or callable.

    A NumPy array or tensor gives an initializer that returns (a copy of) it,
    for the matching shape only. `None` gives `None`.

    Raises:
        ValueError: if `identifier` names no initializer.

    Examples:

    >>> get("he_normal")
    HeNormal(seed=None, input_axes=None, output_axes=None)
    """
    if isinstance(identifier, (np.ndarray, np.generic, torch.Tensor)):
        return _tensor_initializer(identifier)
    return _REGISTRY.get(identifier)


def _tensor_initializer(value: Any):
    value = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)

    def initialize(shape, dtype=None):
        if _shape(shape) != tuple(value.shape):
            raise ValueError(
                f"Expected `shape` to be {tuple(value.shape)} for a tensor used as "
                f"initializer. Received: shape={tuple(shape)}"
            )
        return value.detach().clone().to(backend.torch_dtype(dtype))

    return initialize
