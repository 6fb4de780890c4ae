"""Normalization layers: `BatchNormalization`, `LayerNormalization`."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from birnn import constraints, initializers, regularizers
from birnn.layers.arguments import get_argument
from birnn.layers.input_spec import InputSpec
from birnn.layers.layer import Layer


def _check_float(layer: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"{layer}: argument `{name}` must be a number. Received: {name}={value!r}"
        )
    return float(value)


def _resolve_axis(layer: Layer, axis: int, ndim: int, input_shape: Sequence) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}): axis {axis} is out of range for "
            f"inputs of rank {ndim}. Received: input_shape={tuple(input_shape)}"
        )
    return axis % ndim


_HALF = (torch.float16, torch.bfloat16)


class BatchNormalization(Layer):
    """Normalizes each feature with the statistics of the batch (training) or moving ones.

    In training (`training=True` and `layer.trainable`), each feature along `axis`
    is normalized with the mean and (biased) variance of the batch, and the moving
    statistics are updated as Keras does:
    `moving = moving * momentum + batch_statistic * (1 - momentum)`.
    In inference, or when the layer is frozen (`trainable=False`, even inside a
    training call), the moving statistics are used and left alone. The output is
    `gamma * (x - mean) / sqrt(var + epsilon) + beta`.

    The weights are, in Keras's order, `gamma` and `beta` (trainable) then
    `moving_mean` and `moving_variance` (non-trainable, saved with the model).

    Args:
        axis: The feature axis (default `-1`; `1` for `channels_first` images).
        momentum: Momentum of the moving statistics.
        epsilon: Small float added to the variance.
        center: Whether to add the offset `beta`.
        scale: Whether to multiply by `gamma`.
        beta_initializer, gamma_initializer: Initializers of the affine weights.
        moving_mean_initializer, moving_variance_initializer: Initializers of the
            moving statistics.
        beta_regularizer, gamma_regularizer: Regularizers of the affine weights.
        beta_constraint, gamma_constraint: Constraints of the affine weights.
        synchronized: Accepted for Keras compatibility (only meaningful with
            TensorFlow's distribution strategies); it changes nothing here.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: Tensor of any rank.
        training: Whether to use (and update) the batch statistics.
        mask: Optional boolean mask over the leading axes (e.g. `(batch, steps)`):
            in training, masked entries are left out of the batch statistics.
            It passes through to the output.

    Examples:

    >>> import torch
    >>> layer = BatchNormalization(momentum=0.5)
    >>> out = layer(torch.tensor([[0.0], [2.0]]), training=True)
    >>> out.detach().flatten().tolist()  # doctest: +ELLIPSIS
    [-0.99..., 0.99...]
    >>> [w.tolist() for w in layer.get_weights()[2:]]  # moving mean, variance
    [[0.5], [1.0]]
    """

    supports_masking = True

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        renorm: bool = False,
        renorm_clipping: Any = None,
        renorm_momentum: float = 0.99,
        synchronized: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        name = "BatchNormalization"
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"{name}: argument `axis` must be an integer. Received: axis={axis!r}")
        if renorm:
            raise NotImplementedError(
                f"{name}: argument `renorm` (batch renormalization) is not supported by birnn. "
                f"Received: renorm={renorm!r}"
            )
        self.axis = axis
        self.momentum = _check_float(name, "momentum", momentum)
        self.epsilon = _check_float(name, "epsilon", epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.renorm = False
        self.renorm_clipping = renorm_clipping
        self.renorm_momentum = renorm_momentum
        self.synchronized = bool(synchronized)
        get = get_argument
        self.beta_initializer = get(name, "beta_initializer", initializers.get, beta_initializer)
        self.gamma_initializer = get(
            name, "gamma_initializer", initializers.get, gamma_initializer
        )
        self.moving_mean_initializer = get(
            name, "moving_mean_initializer", initializers.get, moving_mean_initializer
        )
        self.moving_variance_initializer = get(
            name, "moving_variance_initializer", initializers.get, moving_variance_initializer
        )
        self.beta_regularizer = get(name, "beta_regularizer", regularizers.get, beta_regularizer)
        self.gamma_regularizer = get(
            name, "gamma_regularizer", regularizers.get, gamma_regularizer
        )
        self.beta_constraint = get(name, "beta_constraint", constraints.get, beta_constraint)
        self.gamma_constraint = get(name, "gamma_constraint", constraints.get, gamma_constraint)

    def build(self, input_shape: Sequence[int | None]) -> None:
        ndim = len(input_shape)
        axis = _resolve_axis(self, self.axis, ndim, input_shape)
        size = input_shape[axis]
        if size is None:
            raise ValueError(
                f"Layer '{self.name}' (BatchNormalization): axis {self.axis} of the input must "
                f"have a known size. Received: input_shape={tuple(input_shape)}"
            )
        shape = (size,)
        self.gamma = (
            self.add_weight(
                shape=shape,
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                autocast=False,
                name="gamma",
            )
            if self.scale
            else None
        )
        self.beta = (
            self.add_weight(
                shape=shape,
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                autocast=False,
                name="beta",
            )
            if self.center
            else None
        )
        self.moving_mean = self.add_weight(
            shape=shape, initializer=self.moving_mean_initializer, trainable=False,
            autocast=False, name="moving_mean",
        )  # fmt: skip
        self.moving_variance = self.add_weight(
            shape=shape, initializer=self.moving_variance_initializer, trainable=False,
            autocast=False, name="moving_variance",
        )  # fmt: skip
        self.input_spec = InputSpec(ndim=ndim, axes={axis: size})
        self.built = True

    def _broadcast(self, v: torch.Tensor, ndim: int, axis: int) -> torch.Tensor:
        return v.reshape([-1 if i == axis else 1 for i in range(ndim)])

    def call(
        self, inputs: torch.Tensor, training: bool | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if inputs.dtype in _HALF:  # mixed precision: normalize in float32, as Keras
            return self.call(inputs.float(), training, mask).to(inputs.dtype)
        ndim = inputs.ndim
        axis = self.axis % ndim
        if not (training and self.trainable):
            scale = torch.rsqrt(self.moving_variance + self.epsilon)
            if self.gamma is not None:
                scale = scale * self.gamma
            shift = -self.moving_mean * scale
            if self.beta is not None:
                shift = shift + self.beta
            return inputs * self._broadcast(scale, ndim, axis) + self._broadcast(shift, ndim, axis)
        reduce = [i for i in range(ndim) if i != axis]
        count = inputs.numel() // max(inputs.shape[axis], 1)
        if mask is None and count > 1:
            # One pass of torch's kernel; its running variance is the unbiased one.
            mean = torch.zeros_like(self.moving_mean)
            unbiased = torch.zeros_like(self.moving_variance)
            out = F.batch_norm(
                inputs.movedim(axis, 1),
                mean,
                unbiased,
                self.gamma,
                self.beta,
                training=True,
                momentum=1.0,
                eps=self.epsilon,
            ).movedim(1, axis)
            self._update_moving(mean, unbiased * ((count - 1) / count))
            return out
        if mask is None:
            mean = inputs.mean(dim=reduce, keepdim=True)
            var = (inputs - mean).square().mean(dim=reduce, keepdim=True)
        else:
            weight = mask.to(inputs.dtype)
            weight = weight.reshape(*weight.shape, *([1] * (ndim - weight.ndim)))
            total = (weight * torch.ones_like(inputs)).sum(dim=reduce, keepdim=True)
            mean = (inputs * weight).sum(dim=reduce, keepdim=True) / total
            var = ((inputs - mean).square() * weight).sum(dim=reduce, keepdim=True) / total
        out = (inputs - mean) * torch.rsqrt(var + self.epsilon)
        if self.gamma is not None:
            out = out * self._broadcast(self.gamma, ndim, axis)
        if self.beta is not None:
            out = out + self._broadcast(self.beta, ndim, axis)
        self._update_moving(mean.detach().flatten(), var.detach().flatten())
        return out

    def _update_moving(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        momentum = self.momentum
        with torch.no_grad():
            self.moving_mean.mul_(momentum).add_(
                mean.to(self.moving_mean.dtype), alpha=1 - momentum
            )
            self.moving_variance.mul_(momentum).add_(
                var.to(self.moving_variance.dtype), alpha=1 - momentum
            )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(
                self.moving_variance_initializer
            ),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
            "synchronized": self.synchronized,
            "renorm": self.renorm,
            "renorm_clipping": self.renorm_clipping,
            "renorm_momentum": self.renorm_momentum,
        }


class LayerNormalization(Layer):
    """Normalizes each sample over `axis` (by default its features), then scales and shifts.

    The output is `gamma * (x - mean) / sqrt(var + epsilon) + beta`, the
    statistics taken over the axes in `axis` for every sample independently, so
    training and inference compute the same thing. With `rms_scaling=True`,
    `center` and `scale` are ignored and the output is
    `gamma * x / sqrt(var + epsilon)` (Keras 3.15 divides by the variance of the
    inputs there, not by their mean square; birnn matches it). When the axes are
    the trailing ones this runs `torch.nn.functional.layer_norm`.

    Args:
        axis: Integer or list of integers: the axes to normalize over.
        epsilon: Small float added to the variance.
        center: Whether to add the offset `beta`.
        scale: Whether to multiply by `gamma`.
        rms_scaling: See above; only `gamma` is then created.
        beta_initializer, gamma_initializer: Initializers of the weights.
        beta_regularizer, gamma_regularizer: Regularizers of the weights.
        beta_constraint, gamma_constraint: Constraints of the weights.
        **kwargs: Base layer arguments.

    The input mask, if any, passes through unchanged.

    Examples:

    >>> import torch
    >>> out = LayerNormalization(epsilon=0.0)(torch.tensor([[1.0, 3.0]]))
    >>> out.detach().tolist()
    [[-1.0, 1.0]]
    """

    supports_masking = True

    def __init__(
        self,
        axis: int | Sequence[int] = -1,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        rms_scaling: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        name = "LayerNormalization"
        given: Any = [axis] if isinstance(axis, int) and not isinstance(axis, bool) else axis
        axes: list[int] | None
        try:
            axes = list(given)
        except TypeError:
            axes = None
        if not axes or any(isinstance(a, bool) or not isinstance(a, int) for a in axes):
            raise TypeError(
                f"{name}: argument `axis` must be an integer or a list of integers. "
                f"Received: axis={axis!r}"
            )
        self.axis = axes
        self.epsilon = _check_float(name, "epsilon", epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.rms_scaling = bool(rms_scaling)
        if self.rms_scaling:
            warnings.warn(
                "LayerNormalization: you passed `rms_scaling=True`, which Keras deprecates: it "
                "scales the inputs by their variance, not by their root mean square.",
                stacklevel=2,
            )
        get = get_argument
        self.beta_initializer = get(name, "beta_initializer", initializers.get, beta_initializer)
        self.gamma_initializer = get(
            name, "gamma_initializer", initializers.get, gamma_initializer
        )
        self.beta_regularizer = get(name, "beta_regularizer", regularizers.get, beta_regularizer)
        self.gamma_regularizer = get(
            name, "gamma_regularizer", regularizers.get, gamma_regularizer
        )
        self.beta_constraint = get(name, "beta_constraint", constraints.get, beta_constraint)
        self.gamma_constraint = get(name, "gamma_constraint", constraints.get, gamma_constraint)

    def build(self, input_shape: Sequence[int | None]) -> None:
        ndim = len(input_shape)
        axes = [_resolve_axis(self, a, ndim, input_shape) for a in self.axis]
        sizes = [input_shape[a] for a in axes]
        if any(d is None for d in sizes):
            raise ValueError(
                f"Layer '{self.name}' (LayerNormalization): the normalized axes {self.axis} "
                f"must have known sizes. Received: input_shape={tuple(input_shape)}"
            )
        shape = tuple(d for d in sizes if d is not None)  # all of them
        self.gamma = (
            self.add_weight(
                shape=shape,
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                autocast=False,
                name="gamma",
            )
            if self.scale or self.rms_scaling
            else None
        )
        self.beta = (
            self.add_weight(
                shape=shape,
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                autocast=False,
                name="beta",
            )
            if self.center and not self.rms_scaling
            else None
        )
        self.input_spec = InputSpec(ndim=ndim, axes=dict(zip(axes, shape)))
        self.built = True

    def _param(self, v: torch.Tensor, axes: list[int], ndim: int) -> torch.Tensor:
        """A weight laid out along `axes` of a rank-`ndim` input."""
        order = sorted(range(len(axes)), key=lambda i: axes[i])
        v = v.permute(order) if order != list(range(len(axes))) else v
        shape = [1] * ndim
        for a in axes:
            shape[a] = v.shape[sorted(axes).index(a)]
        return v.reshape(shape)

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dtype in _HALF:  # mixed precision: normalize in float32, as Keras
            return self.call(inputs.float()).to(inputs.dtype)
        ndim = inputs.ndim
        axes = [a % ndim for a in self.axis]
        trailing = sorted(axes) == list(range(ndim - len(axes), ndim))
        if not self.rms_scaling and trailing and axes == sorted(axes):
            return F.layer_norm(
                inputs, inputs.shape[ndim - len(axes) :], self.gamma, self.beta, self.epsilon
            )
        var, mean = torch.var_mean(inputs, dim=axes, correction=0, keepdim=True)
        if self.rms_scaling:
            assert self.gamma is not None  # made by build whenever rms_scaling is set
            return inputs * torch.rsqrt(var + self.epsilon) * self._param(self.gamma, axes, ndim)
        out = (inputs - mean) * torch.rsqrt(var + self.epsilon)
        if self.gamma is not None:
            out = out * self._param(self.gamma, axes, ndim)
        if self.beta is not None:
            out = out + self._param(self.beta, axes, ndim)
        return out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "rms_scaling": self.rms_scaling,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
        }
