"""`SimpleRNNCell` and `SimpleRNN`: a fully-connected RNN whose output is fed back."""

from __future__ import annotations

from typing import Any

import torch

from birnn.layers.input_spec import InputSpec
from birnn.layers.rnn.base_cell import BuiltinCell, BuiltinRNN
from birnn.ops import recurrent


class SimpleRNNCell(BuiltinCell):
    """Cell class for `SimpleRNN`.

    Computes `h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)`.

    This class processes one step within the whole time sequence input, whereas
    `SimpleRNN` processes the whole sequence.

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Activation function to use. Default: hyperbolic tangent
            (`tanh`). If you pass `None`, no activation is applied.
        use_bias: Boolean (default `True`), whether the layer uses a bias vector.
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
        seed: Random seed for dropout.

    Call arguments:
        sequence: A 2D tensor, with shape `(batch, features)`.
        states: A 2D tensor with shape `(batch, units)`, which is the state
            from the previous time step (or a list holding it).
        training: Python boolean indicating whether the layer should behave in
            training mode or in inference mode. Only relevant when `dropout` or
            `recurrent_dropout` is used.

    Examples:

    >>> import torch
    >>> from birnn.layers import RNN
    >>> rnn = RNN(SimpleRNNCell(4), return_sequences=True, return_state=True)
    >>> whole_sequence_output, final_state = rnn(torch.rand(32, 10, 8))
    >>> whole_sequence_output.shape, final_state.shape
    (torch.Size([32, 10, 4]), torch.Size([32, 4]))
    """

    gates = 1
    has_recurrent_activation = False

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
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
        super().__init__(
            units,
            activation=activation,
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
        self.state_size = self.units

    def _dropout_applies(self, rate: float) -> bool:
        return rate > 0.0  # Keras's SimpleRNN also applies a rate of 1 (all zeros)

    def call(self, sequence: torch.Tensor, states: Any, training: bool = False) -> tuple:
        is_list = isinstance(states, (list, tuple))
        previous = states[0] if is_list else states
        input_mask, recurrent_mask = self._masks_for(sequence, previous, training)
        projected = recurrent.input_projection(sequence, self.kernel, self.bias, input_mask)
        output = recurrent.simple_rnn_step(
            projected, previous, self.recurrent_kernel, self.activation, recurrent_mask
        )
        return output, ([output] if is_list else output)

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
        return recurrent.simple_rnn(
            inputs,
            states[0],
            self.kernel,
            self.recurrent_kernel,
            self.bias,
            self.activation,
            mask=mask,
            go_backwards=go_backwards,
            return_all_outputs=return_all_outputs,
            dropout_mask=input_mask,
            recurrent_dropout_mask=recurrent_mask,
        )


class SimpleRNN(BuiltinRNN):
    """Fully-connected RNN where the output is to be fed back as the new input.

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Activation function to use. Default: hyperbolic tangent
            (`tanh`). If you pass None, no activation is applied.
        use_bias: Boolean, (default `True`), whether the layer uses a bias vector.
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
        activity_regularizer: Regularizer function applied to the output of the
            layer (its "activation"). Default: `None`.
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
        return_sequences: Boolean. Whether to return the last output in the
            output sequence, or the full sequence. Default: `False`.
        return_state: Boolean. Whether to return the last state in addition to
            the output. Default: `False`.
        go_backwards: Boolean (default: `False`). If `True`, process the input
            sequence backwards and return the reversed sequence.
        stateful: Boolean (default: `False`). If `True`, the last state for each
            sample at index i in a batch will be used as initial state for the
            sample of index i in the following batch.
        unroll: Boolean (default: `False`). Accepted for Keras compatibility.
        seed: Random seed for dropout.

    Call arguments:
        sequences: A 3D tensor, with shape `[batch, timesteps, feature]`.
        mask: Binary tensor of shape `[batch, timesteps]` indicating whether a
            given timestep should be masked. An individual `True` entry
            indicates that the corresponding timestep should be utilized, while
            a `False` entry indicates that the corresponding timestep should be
            ignored.
        training: Python boolean indicating whether the layer should behave in
            training mode or in inference mode. This argument is passed to the
            cell when calling it. This is only relevant if `dropout` or
            `recurrent_dropout` is used.
        initial_state: List of initial state tensors to be passed to the first
            call of the cell.

    Examples:

    >>> import torch
    >>> inputs = torch.rand(32, 10, 8)
    >>> SimpleRNN(4)(inputs).shape
    torch.Size([32, 4])
    >>> simple_rnn = SimpleRNN(4, return_sequences=True, return_state=True)
    >>> whole_sequence_output, final_state = simple_rnn(inputs)
    >>> whole_sequence_output.shape, final_state.shape
    (torch.Size([32, 10, 4]), torch.Size([32, 4]))
    """

    _keras_drops_seed = True

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
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
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        if "use_cudnn" in kwargs:
            raise ValueError(
                "Unrecognized keyword arguments passed to SimpleRNN: "
                f"{{'use_cudnn': {kwargs['use_cudnn']!r}}}"
            )
        cell = SimpleRNNCell(
            units,
            activation=activation,
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
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="simple_rnn_cell",
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
        self.input_spec = [InputSpec(ndim=3)]
