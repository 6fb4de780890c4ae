"""Keras's core layers: `Dense`, `Activation`, `Dropout`, `Embedding`, `Masking`, `Flatten`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from birnn import activations, constraints, initializers, regularizers
from birnn.layers.arguments import get_argument
from birnn.layers.input_spec import InputSpec
from birnn.layers.layer import Layer
from birnn.ops import threads


def _check_positive_int(layer: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"{layer}: received an invalid value for argument `{name}`, expected a "
            f"positive integer. Received: {name}={value!r}"
        )
    return value


def _unsupported(layer: str, **kwargs: Any) -> None:
    for name, value in kwargs.items():
        if value is not None:
            raise NotImplementedError(
                f"{layer}: argument `{name}` (Keras quantization/LoRA) is not supported by "
                f"birnn. Received: {name}={value!r}"
            )


class Dense(Layer):
    """Densely connected layer: `output = activation(inputs @ kernel + bias)`.

    Acts on the last axis of inputs of any rank >= 2; the other axes are kept.
    The kernel has shape `(input_dim, units)`, as in Keras.

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Activation function (name or callable); `None` means linear.
        use_bias: Whether the layer uses a bias vector.
        kernel_initializer: Initializer for the kernel.
        bias_initializer: Initializer for the bias.
        kernel_regularizer: Regularizer for the kernel.
        bias_regularizer: Regularizer for the bias.
        activity_regularizer: Regularizer for the output.
        kernel_constraint: Constraint for the kernel.
        bias_constraint: Constraint for the bias.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`...).

    Call arguments:
        inputs: Tensor of shape `(..., input_dim)`.

    The input mask, if any, passes through unchanged.

    Examples:

    >>> import torch
    >>> layer = Dense(4, activation="relu")
    >>> layer(torch.ones(2, 3, 5)).shape
    torch.Size([2, 3, 4])
    >>> [w.shape for w in layer.get_weights()]
    [(5, 4), (4,)]
    """

    _lazy_build_probe = (None, 1)  # weights exist (lazily) before the first call

    supports_masking = True

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        lora_rank: int | None = None,
        lora_alpha: float | None = None,
        quantization_config: Any = None,
        **kwargs: Any,
    ) -> None:
        _check_positive_int("Dense", "units", units)
        _unsupported("Dense", lora_rank=lora_rank, quantization_config=quantization_config)
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units = units
        self.activation = get_argument("Dense", "activation", activations.get, activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = get_argument(
            "Dense", "kernel_initializer", initializers.get, kernel_initializer
        )
        self.bias_initializer = get_argument(
            "Dense", "bias_initializer", initializers.get, bias_initializer
        )
        self.kernel_regularizer = get_argument(
            "Dense", "kernel_regularizer", regularizers.get, kernel_regularizer
        )
        self.bias_regularizer = get_argument(
            "Dense", "bias_regularizer", regularizers.get, bias_regularizer
        )
        self.kernel_constraint = get_argument(
            "Dense", "kernel_constraint", constraints.get, kernel_constraint
        )
        self.bias_constraint = get_argument(
            "Dense", "bias_constraint", constraints.get, bias_constraint
        )
        self.input_spec = InputSpec(min_ndim=2)

    def build(self, input_shape: Sequence[int | None]) -> None:
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"Layer '{self.name}' (Dense): the last axis of the input must be known. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.kernel = self.add_weight(
            shape=(input_dim, self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
            name="kernel",
        )
        self.bias: torch.nn.Parameter | None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.units,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
                name="bias",
            )
        else:
            self.bias = None
        self.input_spec = InputSpec(min_ndim=2, axes={-1: input_dim})
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        # From the parameter table: each `self.kernel` is a Python-level
        # `nn.Module.__getattr__` call. The attributes answer for weights kept
        # elsewhere (a bias of `None`, a weight replaced by a plain tensor).
        weights = self._parameters
        kernel, bias = weights.get("kernel"), weights.get("bias")
        if kernel is None:
            kernel = self.kernel
        if bias is None:
            bias = self.bias
        if not inputs.is_floating_point():
            inputs = inputs.to(kernel.dtype)
        if inputs.dim() == 2 and bias is not None:
            # What `F.linear` computes for 2-D inputs, minus the autograd node of `kernel.T`.
            return self.activation(torch.addmm(bias, inputs, kernel))
        return self.activation(F.linear(inputs, kernel.T, bias))

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.units)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "quantization_config": None,
        }


class Activation(Layer):
    """Applies an activation function to its input.

    Args:
        activation: Activation function name (`"relu"`) or callable.
        **kwargs: Base layer arguments.

    The input mask, if any, passes through unchanged.

    Examples:

    >>> import torch
    >>> Activation("relu")(torch.tensor([[-1.0, 2.0]]))
    tensor([[0., 2.]])
    """

    supports_masking = True

    def __init__(self, activation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = get_argument("Activation", "activation", activations.get, activation)
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.activation(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


def _validate_noise_shape(noise_shape: Any) -> tuple | None:
    if noise_shape is None:
        return None
    if isinstance(noise_shape, str):
        raise ValueError(
            "Dropout: invalid value for argument `noise_shape`. Expected a tuple of "
            f"integers. Received: noise_shape={noise_shape!r}"
        )
    try:
        noise_shape = tuple(noise_shape)
    except TypeError:
        raise ValueError(
            "Dropout: invalid value for argument `noise_shape`. Expected a tuple of "
            f"integers. Received: noise_shape={noise_shape!r}"
        ) from None
    for i, dim in enumerate(noise_shape):
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0):
            raise ValueError(
                "Dropout: invalid value for argument `noise_shape`. Expected positive "
                f"integers or None. Received {dim!r} at index {i}."
            )
    return noise_shape


class Dropout(Layer):
    """Sets a fraction `rate` of inputs to 0 in training, scaling the rest by `1 / (1 - rate)`.

    Does nothing unless called with `training=True` (or inside a training call).

    Args:
        rate: Float between 0 and 1, the fraction of the inputs to drop.
        noise_shape: Optional shape of the binary dropout mask, broadcast over
            the inputs; `None` entries take the input's size (e.g. `(batch, 1,
            features)` drops the same features at every timestep).
        seed: Optional integer seed: the sequence of masks is then reproducible.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: Input tensor of any rank.
        training: Whether to drop (`True`) or pass the inputs through.

    The input mask, if any, passes through unchanged.

    Examples:

    >>> import torch
    >>> layer = Dropout(0.5, seed=0)
    >>> bool((layer(torch.ones(2, 3)) == 1).all())
    True
    >>> sorted(set(layer(torch.ones(100), training=True).tolist()))
    [0.0, 2.0]
    """

    supports_masking = True

    def __init__(
        self, rate: float, noise_shape: Sequence[int | None] | None = None, seed=None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ValueError(
                "Dropout: invalid value received for argument `rate`. Expected a float "
                f"value between 0 and 1. Received: rate={rate!r}"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"Dropout: argument `seed` must be an integer. Received: {seed!r}")
        self.rate = rate
        self.seed = seed
        self.noise_shape = _validate_noise_shape(noise_shape)
        self._generators: dict[torch.device, torch.Generator] = {}
        self.built = True

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if device not in self._generators:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed)
            self._generators[device] = gen
        return self._generators[device]

    def call(self, inputs: torch.Tensor, training: bool | None = None) -> torch.Tensor:
        if not training or self.rate == 0:
            return inputs
        if self.rate == 1:
            return torch.zeros_like(inputs)
        if self.seed is None and self.noise_shape is None:
            return F.dropout(inputs, p=float(self.rate), training=True)
        keep = 1.0 - self.rate
        shape = tuple(inputs.shape)
        if self.noise_shape is not None:
            self._check_noise_shape(shape)
            shape = tuple(d if n is None else n for d, n in zip(shape, self.noise_shape))
        probs = torch.full(shape, keep, device=inputs.device, dtype=torch.float32)
        keep_mask = torch.bernoulli(probs, generator=self._generator(inputs.device)).bool()
        zero = torch.zeros((), dtype=inputs.dtype, device=inputs.device)
        return torch.where(keep_mask, inputs / keep, zero)

    def _check_noise_shape(self, input_shape: tuple) -> None:
        """`noise_shape` must have the input's rank and broadcast against it."""
        if self.noise_shape is None:
            return
        fits = len(self.noise_shape) == len(input_shape) and all(
            n is None or n in (1, d) for n, d in zip(self.noise_shape, input_shape)
        )
        if not fits:
            raise ValueError(
                f"Layer '{self.name}' (Dropout): argument `noise_shape` {self.noise_shape} "
                f"does not broadcast against the input of shape {input_shape}: it needs the "
                "same rank, with each entry None, 1 or the input's size."
            )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "rate": self.rate,
            "seed": self.seed,
            "noise_shape": self.noise_shape,
        }


class Embedding(Layer):
    """Turns non-negative integer indices into dense vectors of size `output_dim`.

    Args:
        input_dim: Size of the vocabulary (largest index + 1).
        output_dim: Dimension of the embedding vectors.
        embeddings_initializer: Initializer for the `embeddings` matrix
            (default `"uniform"`: `RandomUniform(-0.05, 0.05)`).
        embeddings_regularizer: Regularizer for the `embeddings` matrix.
        embeddings_constraint: Constraint for the `embeddings` matrix.
        mask_zero: Whether index 0 is padding: the output then carries the mask
            `inputs != 0`, and index 0 cannot be used in the vocabulary.
        weights: Optional initial `embeddings` array of shape `(input_dim, output_dim)`.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: Integer tensor of any shape `(...)`; the output is `(..., output_dim)`.
            Indices outside `[0, input_dim)` raise a `ValueError` naming the layer
            (Keras on torch raises an `IndexError`, or wraps negative indices).

    Examples:

    >>> import torch
    >>> layer = Embedding(10, 3, mask_zero=True)
    >>> out = layer(torch.tensor([[1, 2, 0]]))
    >>> out.shape, out._keras_mask
    (torch.Size([1, 3, 3]), tensor([[ True,  True, False]]))
    """

    _lazy_build_probe = (None, 1)  # weights exist (lazily) before the first call

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        embeddings_constraint: Any = None,
        mask_zero: bool = False,
        weights: Any = None,
        lora_rank: int | None = None,
        lora_alpha: float | None = None,
        quantization_config: Any = None,
        **kwargs: Any,
    ) -> None:
        _check_positive_int("Embedding", "input_dim", input_dim)
        _check_positive_int("Embedding", "output_dim", output_dim)
        _unsupported("Embedding", lora_rank=lora_rank, quantization_config=quantization_config)
        if kwargs.pop("input_length", None) is not None:
            warnings.warn("Embedding: argument `input_length` is deprecated. Just remove it.")
        super().__init__(**kwargs)
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.embeddings_initializer = get_argument(
            "Embedding", "embeddings_initializer", initializers.get, embeddings_initializer
        )
        self.embeddings_regularizer = get_argument(
            "Embedding", "embeddings_regularizer", regularizers.get, embeddings_regularizer
        )
        self.embeddings_constraint = get_argument(
            "Embedding", "embeddings_constraint", constraints.get, embeddings_constraint
        )
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self.autocast = False
        if weights is not None:
            self.build()
            if not (isinstance(weights, (list, tuple)) and len(weights) == 1):
                weights = [weights]
            self.set_weights(weights)

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        self.embeddings = self.add_weight(
            shape=(self.input_dim, self.output_dim),
            initializer=self.embeddings_initializer,
            regularizer=self.embeddings_regularizer,
            constraint=self.embeddings_constraint,
            name="embeddings",
        )
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dtype not in (torch.int32, torch.int64):
            inputs = inputs.to(torch.int64)
        if inputs.numel() and not torch.compiler.is_compiling():
            # An index out of range is an IndexError on CPU and a device-side assert
            # (a dead CUDA context) on GPU; name the layer and the argument instead.
            low, high = torch.aminmax(inputs)
            if low < 0 or high >= self.input_dim:
                raise ValueError(
                    f"Layer '{self.name}' (Embedding): input indices must lie in "
                    f"[0, input_dim={self.input_dim}). Received indices from {int(low)} "
                    f"to {int(high)}."
                )
        outputs = F.embedding(inputs, self.embeddings)
        compute = self.dtype_torch  # looked up as stored, returned in the compute dtype
        return outputs if outputs.dtype == compute else outputs.to(compute)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if not self.mask_zero:
            return None
        return inputs != 0

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape), self.output_dim)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "embeddings_constraint": constraints.serialize(self.embeddings_constraint),
            "mask_zero": self.mask_zero,
            "quantization_config": None,
        }


# Inputs of at most this many values are masked on one intra-op thread (`_on_one_thread`).
_ONE_THREAD_MAX = 1 << 22


def _on_one_thread(function: Any, inputs: torch.Tensor, **kwargs: Any) -> Any:
    """`function(inputs, **kwargs)` with one intra-op thread when `inputs` is a small CPU tensor.

    Masking is one memory-bound pass over its input, small next to the work of the
    recurrent layer it feeds, and one thread does it nearly as fast as two. Run on
    two, it leaves the caller's OpenMP helper thread spinning for milliseconds
    afterwards (libgomp's default wait policy) on a core that a `Bidirectional`
    layer right after needs for its two directions side by side: measured, a
    `Masking` + `Bidirectional(LSTM(128))` model ran 2.4x slower than the same
    layer given the mask directly, 1.0x with `OMP_WAIT_POLICY=PASSIVE`.
    """
    small = inputs.device.type == "cpu" and inputs.numel() <= _ONE_THREAD_MAX
    with threads.OneIntraOpThread(active=small):
        return function(inputs, **kwargs)


class Masking(Layer):
    """Masks timesteps whose features all equal `mask_value`.

    For inputs `(batch, timesteps, features)`, a timestep is masked when every
    feature equals `mask_value`; masked timesteps are output as zeros and the
    output carries the mask `(batch, timesteps)` for downstream layers (RNNs skip
    masked steps).

    Args:
        mask_value: The padding value.
        **kwargs: Base layer arguments.

    Examples:

    >>> import torch
    >>> x = torch.tensor([[[1.0, 2.0], [0.0, 0.0], [3.0, 0.0]]])
    >>> Masking()(x)._keras_mask
    tensor([[ True, False,  True]])
    """

    supports_masking = True

    def __init__(self, mask_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(mask_value, dict) and "config" in mask_value:
            mask_value = mask_value["config"].get("value", mask_value["config"])
        if isinstance(mask_value, (np.generic, torch.Tensor)) and np.ndim(mask_value) == 0:
            mask_value = mask_value.item()
        if not isinstance(mask_value, (int, float)):
            raise TypeError(
                "Masking: argument `mask_value` must be a number. "
                f"Received: mask_value={mask_value!r}"
            )
        self.mask_value = mask_value
        self.built = True

    def _step_mask(self, inputs: torch.Tensor, keepdim: bool) -> torch.Tensor:
        if self.mask_value == 0 and inputs.is_floating_point() and inputs.shape[-1:] != (0,):
            # The same test in one reduction over floats, several times faster than a boolean
            # `any` (a NaN propagates through `amax` and counts as a kept step, as `!=` says).
            return inputs.abs().amax(dim=-1, keepdim=keepdim) != 0
        return torch.any(inputs != self.mask_value, dim=-1, keepdim=keepdim)

    def _masked(self, inputs: torch.Tensor) -> torch.Tensor:
        keep = self._step_mask(inputs, keepdim=True)
        return torch.where(keep, inputs, torch.zeros((), dtype=inputs.dtype, device=inputs.device))

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return _on_one_thread(self._masked, inputs)

    def compute_mask(self, inputs: Any, mask: Any = None) -> torch.Tensor:
        return _on_one_thread(self._step_mask, inputs, keepdim=False)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "mask_value": self.mask_value}


def _standardize_data_format(layer: str, data_format: str | None) -> str:
    if data_format is None:
        return "channels_last"
    value = str(data_format).lower()
    if value not in ("channels_first", "channels_last"):
        raise ValueError(
            f"{layer}: argument `data_format` must be 'channels_first' or 'channels_last'. "
            f"Received: data_format={data_format!r}"
        )
    return value


class Flatten(Layer):
    """Flattens every axis but the batch axis: `(batch, ...)` -> `(batch, prod(...))`.

    Args:
        data_format: `"channels_last"` (default) or `"channels_first"`; with
            `"channels_first"` the channel axis is moved last before flattening,
            so the order matches a channels-last model.
        **kwargs: Base layer arguments.

    Examples:

    >>> import torch
    >>> Flatten()(torch.zeros(2, 3, 4)).shape
    torch.Size([2, 12])
    """

    def __init__(self, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = _standardize_data_format("Flatten", data_format)
        self.input_spec = InputSpec(min_ndim=1)
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.data_format == "channels_first" and inputs.ndim > 2:
            inputs = inputs.permute(0, *range(2, inputs.ndim), 1)
        return inputs.reshape(inputs.shape[0], -1) if inputs.ndim > 1 else inputs[:, None]

    def compute_output_shape(self, input_shape):
        rest = tuple(input_shape)[1:]
        if any(d is None for d in rest):
            return (input_shape[0], None)
        return (input_shape[0], math.prod(rest))

    def get_config(self) -> dict:
        return {**super().get_config(), "data_format": self.data_format}
