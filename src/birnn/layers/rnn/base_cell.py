"""What the built-in cells and their layers share: arguments, weights, config, states.

`BuiltinCell` is the base of `SimpleRNNCell`/`LSTMCell`/`GRUCell`; `BuiltinRNN` the
base of `SimpleRNN`/`LSTM`/`GRU`. Neither is public.
"""

from __future__ import annotations

from typing import Any

import torch

from birnn import activations, constraints, initializers, regularizers
from birnn.layers.input_spec import InputSpec
from birnn.layers.layer import Layer
from birnn.layers.rnn.dropout import DropoutRNNCell, validate_rate
from birnn.layers.rnn.rnn import RNN

_DEFAULT_IMPLEMENTATION = 2


def validate_units(owner: str, units: Any) -> int:
    """`units` if it is a positive integer, else a `ValueError` naming `owner`."""
    if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise ValueError(
            f"{owner}: received an invalid value for argument `units`, expected a positive "
            f"integer, got {units!r}."
        )
    return units


def _store_transposed(weight: torch.Tensor) -> None:
    """Keeps `weight` in Keras's shape `(rows, gates * units)` over PyTorch's memory layout.

    The values stay; only the strides change, to those of a transposed
    contiguous `(gates * units, rows)` matrix: `weight.t()` is then exactly the
    contiguous matrix PyTorch's fused RNN kernels take, and the gradient the
    kernel returns through that transpose already has the weight's layout, so
    autograd accumulates it without a copy. Measured 2026-11-30 on the seed
    model's first layer (batch 32, 5 steps, 10 units, forward + backward):
    1.063x PyTorch's own `nn.LSTM` with Keras's layout, 1.025x with this one.
    Copies into the weight (`set_weights`, `load_state_dict`, constraints) and
    `.to()` keep the layout.
    """
    with torch.no_grad():
        weight.data = weight.data.t().contiguous().t()


class BuiltinCell(Layer, DropoutRNNCell):
    """Base of `SimpleRNNCell`, `LSTMCell` and `GRUCell` (not public).

    Holds the arguments every built-in cell takes, creates `kernel`,
    `recurrent_kernel` and `bias` with Keras's names, and serializes them as
    Keras does. Subclasses set `gates`, implement `call()` (one step) and
    `_run_sequence()` (a whole sequence through `birnn.ops.recurrent`).
    """

    _lazy_build_probe = (None, 1)  # weights exist (lazily) before the first call

    gates = 1
    has_recurrent_activation = True

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        owner = type(self).__name__
        units = validate_units(owner, units)
        implementation = kwargs.pop("implementation", _DEFAULT_IMPLEMENTATION)
        super().__init__(**kwargs)
        if isinstance(implementation, bool) or implementation not in (0, 1, 2):
            raise ValueError(
                f"{owner}: argument `implementation` must be 0, 1 or 2 (0, Keras's legacy "
                f"value, computes as 2). Received: {implementation!r}"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(
                f"{owner}: argument `seed` must be an integer or None. Received: {seed!r}"
            )
        self.units = units
        self.activation = activations.get(activation)
        if self.has_recurrent_activation:
            self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = validate_rate(owner, "dropout", dropout)
        self.recurrent_dropout = validate_rate(owner, "recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self._implementation_arg = implementation
        self.implementation = implementation
        if self.gates > 1:
            if self.recurrent_dropout != 0.0:
                self.implementation = 1
            if self.implementation == 1:
                self.dropout_mask_count = self.gates
        self.output_size = units

    # ------------------------------------------------------------------ weights
    def build(self, input_shape: Any) -> None:
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"Layer '{self.name}' needs a known feature dimension to build; received "
                f"input shape {tuple(input_shape)}."
            )
        width = self.gates * self.units
        self.kernel = self.add_weight(
            shape=(input_dim, width),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, width),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        _store_transposed(self.kernel)
        _store_transposed(self.recurrent_kernel)
        if self.use_bias:
            self.bias = self.add_weight(
                shape=self._bias_shape(),
                name="bias",
                initializer=self._bias_initializer(),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self.built = True

    def _bias_shape(self) -> tuple:
        return (self.gates * self.units,)

    def _bias_initializer(self) -> Any:
        return self.bias_initializer

    def _check_features(self, inputs: torch.Tensor, layer_name: str | None = None) -> None:
        """A `ValueError` naming `layer_name` (else this cell) on a wrong feature size."""
        expected = self.kernel.shape[0]
        if inputs.shape[-1] != expected:
            raise ValueError(
                f"Layer '{layer_name or self.name}' was built for inputs with {expected} "
                f"features (last axis), but received inputs of shape {tuple(inputs.shape)}."
            )

    # ------------------------------------------------------------------ states
    def get_initial_state(self, batch_size: int | None = None) -> list[torch.Tensor]:
        """Zero states, one `(batch_size, size)` tensor per entry of `state_size`."""
        sizes = self.state_size if isinstance(self.state_size, list) else [self.state_size]
        device = self.kernel.device if self.built else None
        return [
            torch.zeros((batch_size, size), dtype=self.dtype_torch, device=device)
            for size in sizes
        ]

    def _sequence_fn(self) -> Any:
        """The whole-sequence runner, unless a subclass replaced `call()`."""
        own_call = type(self).call is self._builtin_class().call
        return self._run_sequence if own_call else None

    @classmethod
    def _builtin_class(cls) -> type:
        for klass in cls.__mro__:
            if klass.__module__.startswith("birnn.layers.rnn.") and klass is not BuiltinCell:
                if "call" in klass.__dict__:
                    return klass
        return cls

    # ------------------------------------------------------------------ config
    def _argument_config(self) -> dict:
        """The cell arguments of the config, in Keras's names and serialized forms."""
        config = {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        if self.has_recurrent_activation:
            config["recurrent_activation"] = activations.serialize(self.recurrent_activation)
        if self._implementation_arg != _DEFAULT_IMPLEMENTATION:
            # Keras drops it from configs; kept (only when set) so configs round-trip.
            config["implementation"] = self._implementation_arg
        return config

    def get_config(self) -> dict:
        return {**super().get_config(), **self._argument_config()}


def cell_property(name: str) -> property:
    """A read-only layer property forwarding to `self.cell.<name>`, as Keras's layers have."""
    return property(lambda self: getattr(self.cell, name), doc=f"The cell's `{name}`.")


def validate_use_cudnn(owner: str, use_cudnn: Any) -> Any:
    """`use_cudnn` if it is `"auto"`, `True` or `False`, else a `ValueError`."""
    if not isinstance(use_cudnn, bool) and use_cudnn != "auto":
        raise ValueError(
            f"{owner}: invalid value for argument `use_cudnn`. Expected one of "
            f"{{'auto', True, False}}. Received: use_cudnn={use_cudnn!r}"
        )
    return use_cudnn


class BuiltinRNN(RNN):
    """Base of `SimpleRNN`, `LSTM` and `GRU` (not public): an `RNN` over a built-in cell.

    Its config lists the cell's arguments flat, as Keras's layers do, and
    `from_config` is the constructor.
    """

    _keras_drops_seed = False

    def __init__(self, cell: BuiltinCell, **kwargs: Any) -> None:
        super().__init__(cell, **kwargs)
        self.input_spec = InputSpec(ndim=3)

    units = cell_property("units")
    activation = cell_property("activation")
    use_bias = cell_property("use_bias")
    kernel_initializer = cell_property("kernel_initializer")
    recurrent_initializer = cell_property("recurrent_initializer")
    bias_initializer = cell_property("bias_initializer")
    kernel_regularizer = cell_property("kernel_regularizer")
    recurrent_regularizer = cell_property("recurrent_regularizer")
    bias_regularizer = cell_property("bias_regularizer")
    kernel_constraint = cell_property("kernel_constraint")
    recurrent_constraint = cell_property("recurrent_constraint")
    bias_constraint = cell_property("bias_constraint")
    dropout = cell_property("dropout")
    recurrent_dropout = cell_property("recurrent_dropout")
    seed = cell_property("seed")
    implementation = cell_property("implementation")

    def build(self, sequences_shape: Any, initial_state_shape: Any = None) -> None:
        super().build(sequences_shape, initial_state_shape)
        spec = InputSpec(ndim=3, axes={-1: self.cell.kernel.shape[0]})
        self.input_spec = [spec] if isinstance(self.input_spec, list) else spec

    def get_config(self) -> dict:
        config = {
            **Layer.get_config(self),
            **self._rnn_config(),
            **self.cell._argument_config(),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
        }
        if self._keras_drops_seed and config["seed"] is None:
            del config["seed"]  # Keras's SimpleRNN config has no seed; kept only when set
        if getattr(self, "use_cudnn", "auto") != "auto":
            config["use_cudnn"] = self.use_cudnn  # likewise dropped by Keras unless set
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> BuiltinRNN:
        return cls(**config)
