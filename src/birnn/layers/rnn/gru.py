"""`GRUCell` and `GRU`: Gated Recurrent Unit (Cho et al. 2014), Keras's weight layout."""

from __future__ import annotations

from typing import Any

import torch

from birnn.layers.rnn.base_cell import BuiltinCell, BuiltinRNN, cell_property, validate_use_cudnn
from birnn.ops import recurrent

_ARGS_DOC = """
        units: Positive integer, dimensionality of the output space.
        activation: Activation function to use. Default: hyperbolic tangent
            (`tanh`). If you pass None, no activation is applied
            (ie. "linear" activation: `a(x) = x`).
        recurrent_activation: Activation function to use for the recurrent step.
            Default: sigmoid (`sigmoid`). If you pass `None`, no activation is
            applied (ie. "linear" activation: `a(x) = x`).
        use_bias: Boolean, (default `True`), whether the layer should use a bias
            vector.
        kernel_initializer: Initializer for the `kernel` weights matrix, used for
            the linear transformation of the inputs. Default: `"glorot_uniform"`.
        recurrent_initializer: Initializer for the `recurrent_kernel` weights
            matrix, used for the linear transformation of the recurrent state.
            Default: `"orthogonal"`.
        bias_initializer: Initializer for the bias vector. Default: `"zeros"`.
        kernel_regularizer: Regularizer function applied to the `kernel` weights
            matrix. Default: `None`.
        recurrent_regularizer: Regularizer function applied to the
            `recurrent_kernel` weights matrix. Default: `None`.
        bias_regularizer: Regularizer function applied to the bias vector.
            Default: `None`.
        kernel_constraint: Constraint function applied to the `kernel` weights
            matrix. Default: `None`.
        recurrent_constraint: Constraint function applied to the
            `recurrent_kernel` weights matrix. Default: `None`.
        bias_constraint: Constraint function applied to the bias vector.
            Default: `None`.
        dropout: Float between 0 and 1. Fraction of the units to drop for the
            linear transformation of the inputs. Default: 0.
        recurrent_dropout: Float between 0 and 1. Fraction of the units to drop
            for the linear transformation of the recurrent state. Default: 0.
        reset_after: GRU convention (whether to apply reset gate after or
            before matrix multiplication). `False` is `"before"`,
            `True` is `"after"` (default and cuDNN compatible).
        seed: Random seed for dropout."""


class GRUCell(BuiltinCell):
    """Cell class for the GRU layer.

    This class processes one step within the whole time sequence input, whereas
    `GRU` processes the whole sequence. Weights: `kernel (features, 3 * units)`,
    `recurrent_kernel (units, 3 * units)` with gates in the order update, reset,
    candidate, and `bias` `(2, 3 * units)` (input and recurrent biases) with
    `reset_after=True`, else `(3 * units,)`.

    Args:{args}

    Call arguments:
        inputs: A 2D tensor, with shape `(batch, features)`.
        states: A 2D tensor with shape `(batch, units)`, which is the state
            from the previous time step (or a list holding it).
        training: Python boolean indicating whether the layer should behave in
            training mode or in inference mode. Only relevant when `dropout` or
            `recurrent_dropout` is used.

    Examples:

    >>> import torch
    >>> from birnn.layers import RNN
    >>> rnn = RNN(GRUCell(4), return_sequences=True, return_state=True)
    >>> whole_sequence_output, final_state = rnn(torch.rand(32, 10, 8))
    >>> whole_sequence_output.shape, final_state.shape
    (torch.Size([32, 10, 4]), torch.Size([32, 4]))
    """

    gates = 3
    fused_kernel = "gru"

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
        reset_after: bool = True,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            **kwargs,
        )
        self.reset_after = bool(reset_after)
        self.state_size = self.units

    def _bias_shape(self) -> tuple:
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _split_bias(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if self.bias is None:
            return None, None
        if self.reset_after:
            return self.bias[0], self.bias[1]
        return self.bias, None

    def call(self, inputs: torch.Tensor, states: Any, training: bool = False) -> tuple:
        is_list = isinstance(states, (list, tuple))
        h = states[0] if is_list else states
        input_mask, recurrent_mask = self._masks_for(inputs, h, training)
        input_bias, recurrent_bias = self._split_bias()
        projected = recurrent.input_projection(inputs, self.kernel, input_bias, input_mask)
        h = recurrent.gru_step(
            projected,
            h,
            self.recurrent_kernel,
            recurrent_bias,
            self.activation,
            self.recurrent_activation,
            self.reset_after,
            recurrent_mask,
        )
        return h, ([h] if is_list else h)

    def call_sequence(
        self,
        inputs: torch.Tensor,
        states: list,
        mask: torch.Tensor | None,
        go_backwards: bool,
        return_all_outputs: bool,
        training: bool | None,
    ) -> tuple[torch.Tensor, torch.Tensor, list]:
        """The whole sequence at once (see `SequenceCell`): `(last_output, outputs, [h])`."""
        self._check_features(inputs)
        input_mask, recurrent_mask = self._masks_for(inputs[:, 0], states[0], training)
        return recurrent.gru(
            inputs,
            states[0],
            self.kernel,
            self.recurrent_kernel,
            self.bias,
            self.activation,
            self.recurrent_activation,
            reset_after=self.reset_after,
            mask=mask,
            go_backwards=go_backwards,
            return_all_outputs=return_all_outputs,
            dropout_mask=input_mask,
            recurrent_dropout_mask=recurrent_mask,
        )

    def fused_problem(self, training: bool, strict: bool) -> str | None:
        if self.fused_kernel is not None and not self.reset_after:
            return "`reset_after` must be True"
        return super().fused_problem(training, strict)

    def argument_config(self) -> dict:
        return {**super().argument_config(), "reset_after": self.reset_after}


class GRU(BuiltinRNN):
    """Gated Recurrent Unit - Cho et al. 2014.

    There are two variants. The default, `reset_after=True`, applies the reset
    gate after the recurrent matrix product and has separate input and
    recurrent biases (cuDNN's formulation, bias shape `(2, 3 * units)`); with
    `reset_after=False` the reset gate scales the previous state before the
    product (bias shape `(3 * units,)`). Weights live in the `cell` (a
    `GRUCell` named `gru_cell`) with Keras's shapes and gate order. With
    `reset_after=True` and the default activations the recurrence runs in
    PyTorch's fused GRU kernel (`birnn.ops.fused_rnn`, any mask included).

    Args:{args}
        activity_regularizer: Regularizer function applied to the output of the
            layer (its "activation"). Default: `None`.
        return_sequences: Boolean. Whether to return the last output in the
            output sequence, or the full sequence. Default: `False`.
        return_state: Boolean. Whether to return the last state in addition to
            the output. Default: `False`.
        go_backwards: Boolean (default `False`). If `True`, process the input
            sequence backwards and return the reversed sequence.
        stateful: Boolean (default: `False`). If `True`, the last state for each
            sample at index i in a batch will be used as initial state for the
            sample of index i in the following batch.
        unroll: Boolean (default: `False`). Accepted for Keras compatibility.
        use_cudnn: Whether to use a fused implementation. `"auto"` uses one when
            feasible and falls back to the generic loop otherwise.

    Call arguments:
        inputs: A 3D tensor, with shape `(batch, timesteps, feature)`.
        mask: Binary tensor of shape `(samples, timesteps)` indicating whether a
            given timestep should be masked (optional). An individual `True`
            entry indicates that the corresponding timestep should be utilized,
            while a `False` entry indicates that the corresponding timestep
            should be ignored. Defaults to `None`.
        training: Python boolean indicating whether the layer should behave in
            training mode or in inference mode. This argument is passed to the
            cell when calling it. This is only relevant if `dropout` or
            `recurrent_dropout` is used (optional). Defaults to `None`.
        initial_state: List of initial state tensors to be passed to the first
            call of the cell (optional, `None` causes creation of zero-filled
            initial state tensors). Defaults to `None`.

    Examples:

    >>> import torch
    >>> inputs = torch.rand(32, 10, 8)
    >>> GRU(4)(inputs).shape
    torch.Size([32, 4])
    >>> gru = GRU(4, return_sequences=True, return_state=True)
    >>> whole_sequence_output, final_state = gru(inputs)
    >>> whole_sequence_output.shape, final_state.shape
    (torch.Size([32, 10, 4]), torch.Size([32, 4]))
    """

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
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        reset_after: bool = True,
        use_cudnn: Any = "auto",
        **kwargs: Any,
    ) -> None:
        cell = GRUCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            reset_after=reset_after,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="gru_cell",
            seed=seed,
            implementation=kwargs.pop("implementation", 2),
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.use_cudnn = validate_use_cudnn(type(self).__name__, use_cudnn)

    recurrent_activation = cell_property("recurrent_activation")
    reset_after = cell_property("reset_after")


GRUCell.__doc__ = (GRUCell.__doc__ or "").replace("{args}", _ARGS_DOC)
GRU.__doc__ = (GRU.__doc__ or "").replace("{args}", _ARGS_DOC)
