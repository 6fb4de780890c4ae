"""`LSTMCell` and `LSTM`: Long Short-Term Memory (Hochreiter 1997), Keras's weight layout."""

from __future__ import annotations

from typing import Any

import torch

from birnn import initializers
from birnn.layers.rnn.base_cell import BuiltinCell, BuiltinRNN, cell_property, validate_use_cudnn
from birnn.ops import recurrent

_ARGS_DOC = """
        units: Positive integer, dimensionality of the output space.
        activation: Activation function to use. Default: hyperbolic tangent
            (`tanh`). If you pass `None`, no activation is applied
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
        unit_forget_bias: Boolean (default `True`). If `True`, add 1 to the bias
            of the forget gate at initialization.
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
        seed: Random seed for dropout."""


def forget_bias_initializer(base: Any, units: int) -> Any:
    """An initializer of a `(4 * units,)` LSTM bias: `base`, but ones for the forget gate."""
    ones = initializers.get("ones")

    def forget_bias_one(shape: Any, dtype: Any = None) -> torch.Tensor:
        parts = [base((units,), dtype=dtype), ones((units,), dtype=dtype)]
        parts.append(base((2 * units,), dtype=dtype))
        return torch.cat([torch.as_tensor(p) for p in parts])

    return forget_bias_one


class LSTMCell(BuiltinCell):
    """Cell class for the LSTM layer.

    This class processes one step within the whole time sequence input, whereas
    `LSTM` processes the whole sequence. Weights: `kernel (features, 4 * units)`,
    `recurrent_kernel (units, 4 * units)`, `bias (4 * units,)`, gates in the
    order input, forget, cell, output.

    Args:{args}

    Call arguments:
        inputs: A 2D tensor, with shape `(batch, features)`.
        states: A list of two 2D tensors with shape `(batch, units)`: the
            memory state `h` and the carry state `c` of the previous step.
        training: Python boolean indicating whether the layer should behave in
            training mode or in inference mode. Only relevant when `dropout` or
            `recurrent_dropout` is used.

    Examples:

    >>> import torch
    >>> from birnn.layers import RNN
    >>> rnn = RNN(LSTMCell(4), return_sequences=True, return_state=True)
    >>> whole_sequence_output, h, c = rnn(torch.rand(32, 10, 8))
    >>> whole_sequence_output.shape, c.shape
    (torch.Size([32, 10, 4]), torch.Size([32, 4]))
    """

    gates = 4
    fused_kernel = "lstm"

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        unit_forget_bias: bool = True,
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
        self.unit_forget_bias = bool(unit_forget_bias)
        self.state_size = [self.units, self.units]

    def _bias_initializer(self) -> Any:
        if not self.unit_forget_bias:
            return self.bias_initializer
        return forget_bias_initializer(self.bias_initializer, self.units)

    def call(self, inputs: torch.Tensor, states: Any, training: bool = False) -> tuple:
        h, c = states[0], states[1]
        input_mask, recurrent_mask = self._masks_for(inputs, h, training)
        projected = recurrent.input_projection(inputs, self.kernel, self.bias, input_mask)
        h, c = recurrent.lstm_step(
            projected,
            h,
            c,
            self.recurrent_kernel,
            self.activation,
            self.recurrent_activation,
            recurrent_mask,
        )
        return h, [h, c]

    def call_sequence(
        self,
        inputs: torch.Tensor,
        states: list,
        mask: torch.Tensor | None,
        go_backwards: bool,
        return_all_outputs: bool,
        training: bool | None,
    ) -> tuple[torch.Tensor, torch.Tensor, list]:
        """The whole sequence at once (see `SequenceCell`): `(last_output, outputs, [h, c])`."""
        self._check_features(inputs)
        input_mask, recurrent_mask = self._masks_for(inputs[:, 0], states[0], training)
        return recurrent.lstm(
            inputs,
            states[0],
            states[1],
            self.kernel,
            self.recurrent_kernel,
            self.bias,
            self.activation,
            self.recurrent_activation,
            mask=mask,
            go_backwards=go_backwards,
            return_all_outputs=return_all_outputs,
            dropout_mask=input_mask,
            recurrent_dropout_mask=recurrent_mask,
        )

    def argument_config(self) -> dict:
        return {**super().argument_config(), "unit_forget_bias": self.unit_forget_bias}


class LSTM(BuiltinRNN):
    """Long Short-Term Memory layer - Hochreiter 1997.

    Weights live in the `cell` (an `LSTMCell` named `lstm_cell`) with Keras's
    shapes and gate order, so `set_weights(keras_lstm.get_weights())` gives
    Keras's results. With the default activations the recurrence runs in
    PyTorch's fused LSTM kernel (`birnn.ops.fused_rnn`, any mask included);
    otherwise the input projection of all timesteps is one matrix product and
    the recurrence a loop (`birnn.ops.recurrent`).

    Args:{args}
        activity_regularizer: Regularizer function applied to the output of the
            layer (its "activation"). Default: `None`.
        return_sequences: Boolean. Whether to return the last output in the
            output sequence, or the full sequence. Default: `False`.
        return_state: Boolean. Whether to return the last state in addition to
            the output. Default: `False`.
        go_backwards: Boolean (default: `False`). If `True`, process the input
            sequence backwards and return the reversed sequence.
        stateful: Boolean (default: `False`). If `True`, the last state for each
            sample at index i in a batch will be used as initial state for the
            sample of index i in the following batch.
        unroll: Boolean (default False). Accepted for Keras compatibility.
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
        initial_state: List of initial state tensors `[h, c]` to be passed to
            the first call of the cell (optional, `None` causes creation of
            zero-filled initial state tensors). Defaults to `None`.

    Examples:

    >>> import torch
    >>> inputs = torch.rand(32, 10, 8)
    >>> LSTM(4)(inputs).shape
    torch.Size([32, 4])
    >>> lstm = LSTM(4, return_sequences=True, return_state=True)
    >>> whole_seq_output, final_memory_state, final_carry_state = lstm(inputs)
    >>> whole_seq_output.shape, final_carry_state.shape
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
        unit_forget_bias: bool = True,
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
        use_cudnn: Any = "auto",
        **kwargs: Any,
    ) -> None:
        cell = LSTMCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            unit_forget_bias=unit_forget_bias,
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
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="lstm_cell",
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
    unit_forget_bias = cell_property("unit_forget_bias")


LSTMCell.__doc__ = (LSTMCell.__doc__ or "").replace("{args}", _ARGS_DOC)
LSTM.__doc__ = (LSTM.__doc__ or "").replace("{args}", _ARGS_DOC)
