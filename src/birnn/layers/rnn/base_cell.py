"""What the built-in cells and their layers share: arguments, weights, config, states.

`BuiltinCell` is the base of `SimpleRNNCell`/`LSTMCell`/`GRUCell`; `BuiltinRNN` the
base of `SimpleRNN`/`LSTM`/`GRU`. Neither is public. They also decide when a
call runs in the fused kernel (`BuiltinRNN.fused_kind`) and describe that run
(`BuiltinCell.fused_direction`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from birnn import activations, constraints, initializers, regularizers
from birnn.layers.input_spec import InputSpec
from birnn.layers.layer import Layer
from birnn.layers.rnn.dropout import DropoutRNNCell, reset_dropout_masks, validate_rate
from birnn.layers.rnn.rnn import RNN
from birnn.layers.rnn.sequence_cell import SequenceCell
from birnn.ops import fused_rnn

_DEFAULT_IMPLEMENTATION = 2
# The fused kernels hard-wire these activations (`activations.get` returns the first).
_TANH = (activations.tanh, torch.tanh)
_SIGMOID = (activations.sigmoid, torch.sigmoid)


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
    autograd accumulates it without a copy (Keras's layout would cost a
    transposing copy of each weight and of its gradient on every call).
    Copies into the weight (`set_weights`, `load_state_dict`, constraints) and
    `.to()` keep the layout.
    """
    with torch.no_grad():
        weight.data = weight.data.t().contiguous().t()


class BuiltinCell(Layer, DropoutRNNCell, SequenceCell):
    """Base of `SimpleRNNCell`, `LSTMCell` and `GRUCell` (not public).

    Holds the arguments every built-in cell takes, creates `kernel`,
    `recurrent_kernel` and `bias` with Keras's names, and serializes them as
    Keras does. Subclasses set `gates` (and `fused_kernel` where one exists),
    implement `call()` (one step) and `call_sequence()` (a whole sequence
    through `birnn.ops.recurrent`); see `SequenceCell`.
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
    def build(self, input_shape: Any = None) -> None:
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
        self.bias: torch.Tensor | None
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
        shapes: list[tuple[Any, ...]] = [(batch_size, size) for size in sizes]
        return [torch.zeros(shape, dtype=self.dtype_torch, device=device) for shape in shapes]

    # ------------------------------------------------------------------ fused kernel
    def fused_problem(self, training: bool, strict: bool) -> str | None:
        """Why this cell cannot run in its fused kernel now (`None` if it can).

        `strict` judges the configuration as `use_cudnn=True` does (as Keras
        does): any recurrent dropout is a problem, even where inference would
        ignore it.
        """
        if self.fused_kernel is None:
            return "the cell is not the built-in cell (its `call()` is replaced)"
        if self.activation not in _TANH:
            return "`activation` must be 'tanh'"
        if self.recurrent_activation not in _SIGMOID:
            return "`recurrent_activation` must be 'sigmoid'"
        rate = self.recurrent_dropout
        if rate and (strict or (training and self._dropout_applies(rate))):
            return "`recurrent_dropout` must be 0"
        if training and self.dropout_mask_count and self._dropout_applies(self.dropout):
            return "`dropout` with `implementation=1` (one mask per gate) is not supported"
        return None

    def fused_direction(
        self,
        inputs: torch.Tensor,
        states: Sequence[torch.Tensor] | None,
        mask: torch.Tensor | None,
        go_backwards: bool,
        zero_output_for_mask: bool,
        return_all_outputs: bool,
        training: bool,
    ) -> fused_rnn.Direction:
        """This cell's run over `inputs` in its fused kernel (`fused_problem()` is `None`).

        The direction holds the input dropout mask of this sequence, if one
        applies; the cell's cached masks are reset, so every call draws anew.
        """
        dropout_mask = None
        if training and self._dropout_applies(self.dropout):
            dropout_mask = self.get_dropout_mask(inputs[:, 0])
            reset_dropout_masks(self)
        assert self.fused_kernel is not None  # callers check `fused_problem()` first
        return fused_rnn.Direction(
            self.fused_kernel,
            self.kernel,
            self.recurrent_kernel,
            self.bias,
            states,
            mask,
            go_backwards,
            zero_output_for_mask,
            return_all_outputs,
            dropout_mask,
        )

    # ------------------------------------------------------------------ config
    def argument_config(self) -> dict:
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
        return {**super().get_config(), **self.argument_config()}


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

    def build(self, sequences_shape: Any = None, initial_state_shape: Any = None) -> None:
        super().build(sequences_shape, initial_state_shape)
        spec = InputSpec(ndim=3, axes={-1: self.cell.kernel.shape[0]})
        self.input_spec = [spec] if isinstance(self.input_spec, list) else spec

    def fused_kind(self, training: bool) -> str | None:
        """`"lstm"` or `"gru"` when a call in this mode runs in the fused kernel, else `None`.

        `use_cudnn` chooses: `"auto"` takes the fused kernel when the
        configuration allows it, `False` never does, `True` insists.

        Raises:
            ValueError: if `use_cudnn=True` but the configuration cannot run in
                the fused kernel; the message says why.
        """
        if torch.compiler.is_exporting():
            # `torch.export` decomposes the kernel into one step per timestep, fixing the
            # program's sequence length; the loop exports a length-generic program.
            return None
        training = bool(training)
        return self._config_cached(("fused_kind", training), lambda: self._fused_kind(training))

    def _fused_kind(self, training: bool) -> str | None:
        use_cudnn = getattr(self, "use_cudnn", False)  # SimpleRNN has no fused kernel
        if use_cudnn is False:
            return None
        cell = self.cell
        problem = (
            "`unroll` must be False"
            if self.unroll
            else cell.fused_problem(training, strict=use_cudnn is True)
        )
        if problem is None:
            return cell.fused_kernel
        if use_cudnn is True:
            raise ValueError(
                f"Layer '{self.name}': use_cudnn=True was specified, but the fused (cuDNN-style) "
                f"kernel does not support this layer configuration: {problem}. Pass "
                "use_cudnn='auto' to fall back to the generic implementation."
            )
        return None

    def get_config(self) -> dict:
        config = {
            **Layer.get_config(self),
            **self._rnn_config(),
            **self.cell.argument_config(),
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
