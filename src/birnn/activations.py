"""Keras's activation functions, on torch tensors.

Every function takes a tensor and returns a tensor of the same shape (except
`glu`, which halves `axis`). `get()` accepts Keras's names (`"relu"`, `"swish"`),
serialized configs, Keras's own activation functions and any callable.

>>> import torch
>>> get("relu")(torch.tensor([-1.0, 2.0]))
tensor([0., 2.])
>>> serialize(get("swish"))
'silu'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from birnn._registry import Registry

__all__ = [
    "celu",
    "deserialize",
    "elu",
    "exponential",
    "gelu",
    "get",
    "glu",
    "hard_shrink",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "leaky_relu",
    "linear",
    "log_sigmoid",
    "log_softmax",
    "mish",
    "relu",
    "relu6",
    "selu",
    "serialize",
    "sigmoid",
    "silu",
    "soft_shrink",
    "softmax",
    "softplus",
    "softsign",
    "sparse_plus",
    "sparse_sigmoid",
    "sparsemax",
    "squareplus",
    "swish",
    "tanh",
    "tanh_shrink",
    "threshold",
]


def relu(
    x: torch.Tensor,
    negative_slope: float = 0.0,
    max_value: float | None = None,
    threshold: float = 0.0,
) -> torch.Tensor:
    """Rectified linear unit, with Keras's optional slope, ceiling and threshold.

    Returns `x` for `threshold < x < max_value`, `max_value` above it and
    `negative_slope * (x - threshold)` below `threshold`.

    Args:
        x: Input tensor.
        negative_slope: Slope below the threshold.
        max_value: Optional ceiling of the output.
        threshold: Values below it are damped (or zeroed).

    Examples:

    >>> relu(torch.tensor([-10.0, -5.0, 0.0, 5.0, 10.0]), negative_slope=0.5, max_value=6.0)
    tensor([-5.0000, -2.5000,  0.0000,  5.0000,  6.0000])
    """
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return torch.relu(x)
    if threshold != 0.0:
        positive = torch.where(x > threshold, x, torch.zeros_like(x))
    else:
        positive = torch.relu(x)
    if max_value is not None:
        positive = positive.clamp(max=max_value)
    if negative_slope != 0.0:
        positive = positive - negative_slope * torch.relu(threshold - x)
    return positive


def leaky_relu(x: torch.Tensor, negative_slope: float = 0.2) -> torch.Tensor:
    """`x` for `x >= 0`, `negative_slope * x` otherwise.

    >>> leaky_relu(torch.tensor([-1.0, 1.0]))
    tensor([-0.2000,  1.0000])
    """
    return F.leaky_relu(x, negative_slope=negative_slope)


def relu6(x: torch.Tensor) -> torch.Tensor:
    """`min(max(x, 0), 6)`.

    >>> relu6(torch.tensor([-1.0, 7.0]))
    tensor([0., 6.])
    """
    return F.relu6(x)


def softmax(x: torch.Tensor, axis: int | tuple[int, ...] = -1) -> torch.Tensor:
    """Normalized exponentials along `axis` (an integer or a tuple of axes).

    >>> softmax(torch.zeros(1, 4))
    tensor([[0.2500, 0.2500, 0.2500, 0.2500]])
    """
    if isinstance(axis, int):
        return torch.softmax(x, dim=axis)
    return torch.exp(x - torch.logsumexp(x, dim=axis, keepdim=True))


def log_softmax(x: torch.Tensor, axis: int | tuple[int, ...] = -1) -> torch.Tensor:
    """Logarithm of `softmax` along `axis`.

    >>> log_softmax(torch.zeros(1, 2))
    tensor([[-0.6931, -0.6931]])
    """
    if isinstance(axis, int):
        return torch.log_softmax(x, dim=axis)
    return x - torch.logsumexp(x, dim=axis, keepdim=True)


def elu(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Exponential linear unit: `x` if `x > 0`, `alpha * (exp(x) - 1)` otherwise.

    >>> elu(torch.tensor([0.0, 1.0]))
    tensor([0., 1.])
    """
    return F.elu(x, alpha=alpha)


def selu(x: torch.Tensor) -> torch.Tensor:
    """Scaled exponential linear unit (Klambauer et al., 2017).

    >>> selu(torch.tensor([0.0]))
    tensor([0.])
    """
    return F.selu(x)


def celu(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Continuously differentiable ELU: `max(0, x) + min(0, alpha * (exp(x / alpha) - 1))`.

    >>> celu(torch.tensor([1.0]))
    tensor([1.])
    """
    return F.celu(x, alpha=alpha)


def softplus(x: torch.Tensor) -> torch.Tensor:
    """`log(exp(x) + 1)`.

    >>> softplus(torch.tensor([0.0]))
    tensor([0.6931])
    """
    return F.softplus(x)


def softsign(x: torch.Tensor) -> torch.Tensor:
    """`x / (abs(x) + 1)`.

    >>> softsign(torch.tensor([1.0]))
    tensor([0.5000])
    """
    return F.softsign(x)


def squareplus(x: torch.Tensor, b: float = 4) -> torch.Tensor:
    """`(x + sqrt(x**2 + b)) / 2`.

    >>> squareplus(torch.tensor([0.0]))
    tensor([1.])
    """
    return (x + torch.sqrt(x * x + b)) / 2


def sparse_plus(x: torch.Tensor) -> torch.Tensor:
    """`0` for `x <= -1`, `(x + 1)**2 / 4` for `-1 < x < 1`, `x` for `x >= 1`.

    >>> sparse_plus(torch.tensor([-2.0, 0.0, 2.0]))
    tensor([0.0000, 0.2500, 2.0000])
    """
    middle = 0.25 * (x + 1) ** 2
    return torch.where(x <= -1, torch.zeros_like(x), torch.where(x < 1, middle, x))


def silu(x: torch.Tensor) -> torch.Tensor:
    """Sigmoid-weighted linear unit (swish): `x * sigmoid(x)`.

    >>> silu(torch.tensor([0.0]))
    tensor([0.])
    """
    return F.silu(x)


swish = silu


def gelu(x: torch.Tensor, approximate: bool = False) -> torch.Tensor:
    """Gaussian error linear unit; `approximate=True` uses the tanh formula.

    >>> gelu(torch.tensor([0.0]))
    tensor([0.])
    """
    return F.gelu(x, approximate="tanh" if approximate else "none")


def glu(x: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Gated linear unit: splits `axis` in halves `a, b` and returns `a * sigmoid(b)`.

    >>> glu(torch.zeros(1, 4)).shape
    torch.Size([1, 2])
    """
    return F.glu(x, dim=axis)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """Hyperbolic tangent.

    >>> tanh(torch.tensor([0.0]))
    tensor([0.])
    """
    return torch.tanh(x)


def tanh_shrink(x: torch.Tensor) -> torch.Tensor:
    """`x - tanh(x)`.

    >>> tanh_shrink(torch.tensor([0.0]))
    tensor([0.])
    """
    return x - torch.tanh(x)


def hard_tanh(x: torch.Tensor) -> torch.Tensor:
    """`x` clipped to `[-1, 1]`.

    >>> hard_tanh(torch.tensor([-3.0, 0.5, 3.0]))
    tensor([-1.0000,  0.5000,  1.0000])
    """
    return F.hardtanh(x, -1.0, 1.0)


def hard_shrink(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """`x` where `abs(x) > threshold`, else `0`.

    >>> hard_shrink(torch.tensor([0.3, 1.0]))
    tensor([0., 1.])
    """
    return F.hardshrink(x, lambd=threshold)


def soft_shrink(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """`x - threshold` above `threshold`, `x + threshold` below `-threshold`, else `0`.

    >>> soft_shrink(torch.tensor([0.3, 1.0]))
    tensor([0.0000, 0.5000])
    """
    return F.softshrink(x, lambd=threshold)


def threshold(x: torch.Tensor, threshold: float, default_value: float) -> torch.Tensor:
    """`x` where `x > threshold`, else `default_value`.

    >>> threshold(torch.tensor([0.0, 2.0]), 1.0, -1.0)
    tensor([-1.,  2.])
    """
    return F.threshold(x, threshold, default_value)


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """`1 / (1 + exp(-x))`.

    >>> sigmoid(torch.tensor([0.0]))
    tensor([0.5000])
    """
    return torch.sigmoid(x)


def sparse_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """`0` below `-1`, `(x + 1) / 2` in `[-1, 1]`, `1` above.

    >>> sparse_sigmoid(torch.tensor([-2.0, 0.0, 2.0]))
    tensor([0.0000, 0.5000, 1.0000])
    """
    return ((x + 1) * 0.5).clamp(0.0, 1.0)


def exponential(x: torch.Tensor) -> torch.Tensor:
    """`exp(x)`.

    >>> exponential(torch.tensor([0.0]))
    tensor([1.])
    """
    return torch.exp(x)


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear sigmoid of Keras 3: `relu6(x + 3) / 6`.

    >>> hard_sigmoid(torch.tensor([-4.0, 0.0, 4.0]))
    tensor([0.0000, 0.5000, 1.0000])
    """
    return F.hardsigmoid(x)


def hard_silu(x: torch.Tensor) -> torch.Tensor:
    """`x * hard_sigmoid(x)` (hard swish).

    >>> hard_silu(torch.tensor([0.0, 4.0]))
    tensor([0., 4.])
    """
    return F.hardswish(x)


hard_swish = hard_silu


def log_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """`log(sigmoid(x))`, computed stably.

    >>> log_sigmoid(torch.tensor([0.0]))
    tensor([-0.6931])
    """
    return F.logsigmoid(x)


def linear(x: torch.Tensor) -> torch.Tensor:
    """The identity: returns `x` unchanged.

    >>> linear(torch.tensor([3.0]))
    tensor([3.])
    """
    return x


def mish(x: torch.Tensor) -> torch.Tensor:
    """`x * tanh(softplus(x))`.

    >>> mish(torch.tensor([0.0]))
    tensor([0.])
    """
    return x * torch.tanh(F.softplus(x))


def sparsemax(x: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Euclidean projection of `x` onto the probability simplex along `axis`.

    >>> sparsemax(torch.tensor([[1.0, 0.0, -5.0]]))
    tensor([[1., 0., 0.]])
    """
    z_sorted, _ = torch.sort(x, dim=axis, descending=True)
    cumsum = torch.cumsum(z_sorted, dim=axis)
    shape = [1] * x.ndim
    shape[axis] = -1
    k = torch.arange(1, x.shape[axis] + 1, device=x.device, dtype=x.dtype).view(shape)
    support = (1 + k * z_sorted) > cumsum
    k_max = support.sum(dim=axis, keepdim=True)
    tau = (torch.gather(cumsum, axis, k_max - 1) - 1) / k_max.to(x.dtype)
    return torch.clamp(x - tau, min=0.0)


_FUNCTIONS: dict[str, Callable] = {
    fn.__name__: fn
    for fn in (
        relu,
        leaky_relu,
        relu6,
        softmax,
        celu,
        elu,
        selu,
        softplus,
        softsign,
        squareplus,
        soft_shrink,
        sparse_plus,
        silu,
        gelu,
        glu,
        tanh,
        tanh_shrink,
        threshold,
        sigmoid,
        sparse_sigmoid,
        exponential,
        hard_sigmoid,
        hard_silu,
        hard_tanh,
        hard_shrink,
        linear,
        mish,
        log_softmax,
        log_sigmoid,
        sparsemax,
    )
}
_FUNCTIONS["swish"] = silu
_FUNCTIONS["hard_swish"] = hard_silu

_REGISTRY = Registry("activation function", "keras.activations", _FUNCTIONS, instantiate=False)


def serialize(activation: Any) -> Any:
    """The name of a built-in activation, or the serialized form of another one.

    Args:
        activation: An activation function or object with `get_config()`.

    Returns:
        A string for birnn's (and Keras's) own activations, as Keras writes them
        in layer configs; a Keras 3 serialized dict otherwise.

    Examples:

    >>> serialize(relu)
    'relu'
    """
    if activation is None:
        return None
    if _REGISTRY.is_builtin(activation) and callable(activation):
        return activation.__name__
    keras_equivalent = _from_keras_function(activation)
    if keras_equivalent is not None:
        return keras_equivalent.__name__
    return _REGISTRY.serialize(activation)


def deserialize(config: Any, custom_objects: dict | None = None) -> Callable:
    """The activation named by `config` (a name or a serialized dict).

    >>> deserialize("tanh") is tanh
    True
    """
    return _REGISTRY.deserialize(config, custom_objects)


def get(identifier: Any) -> Callable:
    """Retrieves an activation function; `None` gives `linear`, as in Keras.

    Args:
        identifier: A name (`"relu"`), a serialized dict, a Keras activation
            function, or any callable.

    Raises:
        ValueError: if `identifier` names no activation.

    Examples:

    >>> get(None) is linear
    True
    >>> get("gelu") is gelu
    True
    """
    if identifier is None:
        return linear
    keras_equivalent = _from_keras_function(identifier)
    if keras_equivalent is not None:
        return keras_equivalent
    return _REGISTRY.get(identifier)


def _from_keras_function(fn: Any) -> Callable | None:
    """birnn's equivalent of one of Keras's own activation functions, if `fn` is one."""
    module = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__name__", None)
    if module.startswith("keras.") and module.endswith("activations") and name in _FUNCTIONS:
        return _FUNCTIONS[name]
    return None
