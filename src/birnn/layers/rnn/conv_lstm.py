"""`ConvLSTMCell` and `ConvLSTM1D`/`ConvLSTM2D`/`ConvLSTM3D`: LSTMs with convolutions.

As in Keras, one cell class (`ConvLSTMCell`, with a `rank`) serves the three
layers, which are `RNN`s over it sharing the base `ConvLSTM`. Weights have
Keras's names, shapes and gate order `i, f, c, o`; they are stored in
PyTorch's convolution layout (`_store_conv_layout`) so the kernels reach
`torch.nn.functional.conv*d` without a copy. The recurrence itself is
`birnn.ops.conv_lstm`.
"""

from __future__ import annotations

from typing import Any

import torch

from birnn import activations, constraints, initializers, regularizers
from birnn.layers.input_spec import InputSpec
from birnn.layers.layer import Layer
from birnn.layers.rnn.base_cell import cell_property
from birnn.layers.rnn.dropout import DropoutRNNCell, validate_rate
from birnn.layers.rnn.lstm import forget_bias_initializer
from birnn.layers.rnn.rnn import RNN
from birnn.layers.rnn.sequence_cell import SequenceCell
from birnn.ops import conv_lstm as conv_lstm_ops
from birnn.ops.conv_padding import conv_output_length

_PADDINGS = ("valid", "same")
_DATA_FORMATS = ("channels_last", "channels_first")


def _int_tuple(owner: str, name: str, value: Any, rank: int) -> tuple:
    """`value` (an integer, or `rank` of them) as a tuple of `rank` positive integers."""
    values = (value,) * rank if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        values = tuple(values)
    except TypeError:
        values = None
    if (
        values is None
        or len(values) != rank
        or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values)
    ):
        raise ValueError(
            f"{owner}: argument `{name}` must be a positive integer or a tuple/list of "
            f"{rank} positive integers. Received: {name}={value!r}"
        )
    return values


def _store_conv_layout(weight: torch.Tensor) -> None:
    """Keeps a Keras kernel's shape `(*kernel_size, in, out)` over PyTorch's memory layout.

    Afterwards `torch_conv_weight(weight)` is contiguous, so no call copies the
    kernel, and the gradient PyTorch returns already has the weight's layout.
    Copies into the weight (`set_weights`, `load_state_dict`) keep the layout.
    """
    rank = weight.dim() - 2
    order = (rank + 1, rank, *range(rank))
    inverse = tuple(order.index(axis) for axis in range(weight.dim()))
    with torch.no_grad():
        weight.data = weight.data.permute(order).contiguous().permute(inverse)


class ConvLSTMCell(Layer, DropoutRNNCell, SequenceCell):
    """Cell class for the ConvLSTM layers (`ConvLSTM1D`, `ConvLSTM2D`, `ConvLSTM3D`).

    Processes one step: `inputs` is one frame `(batch, *spatial, channels)`
    (`(batch, channels, *spatial)` with `channels_first`), the states `h` and
    `c` are feature maps `(batch, *out_spatial, filters)`. The input
    convolution has the cell's `strides`, `padding` and `dilation_rate`; the
    recurrent convolution always has stride 1, no dilation and `"same"`
    padding. Weights: `kernel (*kernel_size, channels, 4 * filters)`,
    `recurrent_kernel (*kernel_size, filters, 4 * filters)`, `bias
    (4 * filters,)`, gates in the order input, forget, cell, output.

    `state_size` is `[filters, filters]`, the channels of `h` and `c` (Keras
    sets a placeholder `-1`); the spatial shape of the states follows from the
    input's. Like Keras, this class is not exported by `birnn.layers`: use it
    through the ConvLSTM layers.

    Args:
        rank: Integer, rank of the convolution, e.g. `2` for 2D convolutions.
        filters: Integer, the dimensionality of the output space (i.e. the
            number of output filters in the convolution).
        kernel_size: An integer or tuple/list of `rank` integers, specifying
            the dimensions of the convolution window.
        strides: An integer or tuple/list of `rank` integers, specifying the
            strides of the convolution. Specifying any stride value != 1 is
            incompatible with specifying any `dilation_rate` value != 1.
        padding: One of `"valid"` or `"same"` (case-insensitive). `"valid"`
            means no padding. `"same"` pads evenly (an odd extra zero after) so
            that with stride 1 the output has the input's spatial shape.
        data_format: A string, one of `"channels_last"` (default) or
            `"channels_first"`.
        dilation_rate: An integer or tuple/list of `rank` integers, specifying
            the dilation rate to use for dilated convolution.
        activation: Activation function. Default: `"tanh"`.
        recurrent_activation: Activation function to use for the recurrent
            step. Default: `"sigmoid"`.
        use_bias: Boolean, (default `True`), whether the layer should use a
            bias vector.
        kernel_initializer: Initializer for the `kernel` weights. Default:
            `"glorot_uniform"`.
        recurrent_initializer: Initializer for the `recurrent_kernel` weights.
            Default: `"orthogonal"`.
        bias_initializer: Initializer for the bias vector. Default: `"zeros"`.
        unit_forget_bias: Boolean (default `True`). If `True`, add 1 to the
            bias of the forget gate at initialization.
        kernel_regularizer: Regularizer function applied to the `kernel`.
        recurrent_regularizer: Regularizer function applied to the
            `recurrent_kernel`.
        bias_regularizer: Regularizer function applied to the bias vector.
        kernel_constraint: Constraint function applied to the `kernel`.
        recurrent_constraint: Constraint function applied to the
            `recurrent_kernel`.
        bias_constraint: Constraint function applied to the bias vector.
        dropout: Float between 0 and 1. Fraction of the input entries to drop
            (as in Keras, four masks per sequence, one per gate, each reused at
            every step). Default: 0.
        recurrent_dropout: Float between 0 and 1. Fraction of the entries of
            `h` to drop for the recurrent convolution (four masks likewise).
            Default: 0.
        seed: Random seed for dropout.

    Call arguments:
        inputs: One step, a `(rank + 2)`-D tensor.
        states: List of the two state tensors `[h, c]` of the previous step.
        training: Python boolean indicating whether the layer should behave in
            training mode or in inference mode. Only relevant when `dropout`
            or `recurrent_dropout` is used.

    Examples:

    >>> import torch
    >>> cell = ConvLSTMCell(2, filters=4, kernel_size=3, padding="same")
    >>> h = c = torch.zeros(2, 8, 8, 4)
    >>> output, (h, c) = cell(torch.rand(2, 8, 8, 3), [h, c])
    >>> output.shape, cell.kernel.shape
    (torch.Size([2, 8, 8, 4]), torch.Size([3, 3, 3, 16]))
    """

    def __init__(
        self,
        rank: int,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = 1,
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
        owner = type(self).__name__
        if rank not in (1, 2, 3) or isinstance(rank, bool):
            raise ValueError(f"{owner}: argument `rank` must be 1, 2 or 3. Received: {rank!r}")
        if isinstance(filters, bool) or not isinstance(filters, int) or filters <= 0:
            raise ValueError(
                f"{owner}: argument `filters` must be a positive integer. Received: {filters!r}"
            )
        super().__init__(**kwargs)
        self.rank = rank
        self.filters = filters
        self.kernel_size = _int_tuple(owner, "kernel_size", kernel_size, rank)
        self.strides = _int_tuple(owner, "strides", strides, rank)
        self.dilation_rate = _int_tuple(owner, "dilation_rate", dilation_rate, rank)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"{owner}: specifying `strides > 1` is not compatible with `dilation_rate > "
                f"1`. Received: strides={self.strides} and dilation_rate={self.dilation_rate}"
            )
        padding_name = padding.lower() if isinstance(padding, str) else padding
        if padding_name not in _PADDINGS:
            raise ValueError(
                f"{owner}: argument `padding` must be one of {{'valid', 'same'}}. "
                f"Received: padding={padding!r}"
            )
        self.padding = padding_name
        data_format = "channels_last" if data_format is None else data_format
        format_name = data_format.lower() if isinstance(data_format, str) else data_format
        if format_name not in _DATA_FORMATS:
            raise ValueError(
                f"{owner}: argument `data_format` must be 'channels_last' or "
                f"'channels_first'. Received: data_format={data_format!r}"
            )
        self.data_format = format_name
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = validate_rate(owner, "dropout", dropout)
        self.recurrent_dropout = validate_rate(owner, "recurrent_dropout", recurrent_dropout)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(
                f"{owner}: argument `seed` must be an integer or None. Received: {seed!r}"
            )
        self.seed = seed
        self.dropout_mask_count = 4  # Keras draws one mask per gate
        self.state_size = [filters, filters]
        self.output_size = filters
        self.input_spec = InputSpec(ndim=rank + 2)
        self._step_shape: tuple | None = None

    @property
    def channels_last(self) -> bool:
        return self.data_format == "channels_last"

    # ------------------------------------------------------------------ shapes
    def _split(self, step_shape: tuple) -> tuple[Any, tuple]:
        """`(channels, spatial)` of a step shape `(batch, ...)`."""
        if self.channels_last:
            return step_shape[-1], tuple(step_shape[1:-1])
        return step_shape[1], tuple(step_shape[2:])

    def state_shape(self, step_shape: tuple) -> tuple:
        """The shape of `h` (and `c`) for input steps of shape `step_shape`."""
        _, spatial = self._split(tuple(step_shape))
        out = tuple(
            conv_output_length(n, k, s, self.padding, d)
            for n, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate)
        )
        if self.channels_last:
            return (step_shape[0], *out, self.filters)
        return (step_shape[0], self.filters, *out)

    # ------------------------------------------------------------------ weights
    def build(self, input_shape: Any = None) -> None:
        shape = tuple(input_shape)
        if len(shape) != self.rank + 2:
            raise ValueError(
                f"Layer '{self.name}' expects one step of rank {self.rank + 2} (batch, "
                f"{self.rank} spatial axes, channels), but received input shape {shape}."
            )
        channels, _ = self._split(shape)
        if channels is None:
            raise ValueError(
                f"Layer '{self.name}' needs a known channel dimension to build; received "
                f"input shape {shape} with data_format='{self.data_format}'."
            )
        width = 4 * self.filters
        self.kernel = self.add_weight(
            shape=(*self.kernel_size, channels, width),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(*self.kernel_size, self.filters, width),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        _store_conv_layout(self.kernel)
        _store_conv_layout(self.recurrent_kernel)
        self.bias: torch.Tensor | None
        if self.use_bias:
            initializer = self.bias_initializer
            if self.unit_forget_bias:
                initializer = forget_bias_initializer(self.bias_initializer, self.filters)
            self.bias = self.add_weight(
                shape=(width,),
                name="bias",
                initializer=initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self._step_shape = shape
        self.built = True

    def _check_step(self, step_shape: tuple) -> None:
        channels, spatial = self._split(tuple(step_shape))
        expected = self.kernel.shape[-2]
        if len(step_shape) != self.rank + 2 or channels != expected:
            raise ValueError(
                f"Layer '{self.name}' was built for steps of rank {self.rank + 2} with "
                f"{expected} channels (data_format='{self.data_format}'), but received a step "
                f"of shape {tuple(step_shape)}."
            )
        out = self.state_shape(tuple(step_shape))
        if 0 in out:
            raise ValueError(
                f"Layer '{self.name}': a step of shape {tuple(step_shape)} is too small for "
                f"kernel_size={self.kernel_size}, dilation_rate={self.dilation_rate} with "
                f"padding='{self.padding}' (the convolution output would be empty)."
            )

    # ------------------------------------------------------------------ states
    def get_initial_state(self, batch_size: int | None = None) -> list[torch.Tensor]:
        """Zero states `[h, c]` for `batch_size` steps of the shape the cell was built for."""
        if self._step_shape is None or None in self._step_shape[1:]:
            raise ValueError(
                f"Layer '{self.name}' needs the full shape of its input steps to make initial "
                f"states; it was built for {self._step_shape}."
            )
        shape = self.state_shape((batch_size, *self._step_shape[1:]))
        device = self.kernel.device
        return [torch.zeros(shape, dtype=self.dtype_torch, device=device) for _ in range(2)]

    # ------------------------------------------------------------------ call
    def _conv_lstm(
        self,
        inputs: torch.Tensor,
        states: Any,
        mask: torch.Tensor | None,
        go_backwards: bool,
        return_all_outputs: bool,
        training: bool | None,
    ) -> tuple:
        self._check_step((inputs.shape[0], *inputs.shape[2:]))
        input_mask, recurrent_mask = self._masks_for(inputs[:, 0], states[0], training)
        return conv_lstm_ops.conv_lstm(
            inputs,
            states[0],
            states[1],
            self.kernel,
            self.recurrent_kernel,
            self.bias,
            self.activation,
            self.recurrent_activation,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            channels_last=self.channels_last,
            mask=mask,
            go_backwards=go_backwards,
            return_all_outputs=return_all_outputs,
            dropout_mask=input_mask,
            recurrent_dropout_mask=recurrent_mask,
        )

    def call(self, inputs: torch.Tensor, states: Any, training: bool = False) -> tuple:
        _, _, (h, c) = self._conv_lstm(
            inputs.unsqueeze(1), states, None, False, False, training=training
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
    ) -> tuple:
        """The whole sequence at once (see `SequenceCell`): `(last_output, outputs, [h, c])`."""
        return self._conv_lstm(inputs, states, mask, go_backwards, return_all_outputs, training)

    # ------------------------------------------------------------------ config
    def argument_config(self) -> dict:
        return {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "unit_forget_bias": self.unit_forget_bias,
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

    def get_config(self) -> dict:
        return {**super().get_config(), **self.argument_config()}

    @classmethod
    def from_config(cls, config: dict) -> ConvLSTMCell:
        """A cell from `get_config()`; the rank (not in Keras's config) is `len(kernel_size)`."""
        config = dict(config)
        if "rank" not in config:
            kernel_size = config.get("kernel_size")
            if not isinstance(kernel_size, (list, tuple)):
                raise ValueError(
                    "ConvLSTMCell.from_config: the config needs `rank` or a tuple "
                    f"`kernel_size`. Received: kernel_size={kernel_size!r}"
                )
            config["rank"] = len(kernel_size)
        return cls(**config)


class ConvLSTM(RNN):
    """Base of `ConvLSTM1D`, `ConvLSTM2D` and `ConvLSTM3D`: an `RNN` over a `ConvLSTMCell`.

    Inputs are `(batch, time, *spatial, channels)` (`channels_last`) or
    `(batch, time, channels, *spatial)` (`channels_first`); outputs and states
    are the cell's feature maps. The arguments are those of `ConvLSTMCell`
    and of `RNN` (see `ConvLSTM2D`).
    """

    def __init__(
        self,
        rank: int,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = 1,
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
        **kwargs: Any,
    ) -> None:
        cell = ConvLSTMCell(
            rank=rank,
            filters=filters,
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            name="conv_lstm_cell",
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.input_spec = InputSpec(ndim=rank + 3)

    rank = cell_property("rank")
    filters = cell_property("filters")
    kernel_size = cell_property("kernel_size")
    strides = cell_property("strides")
    padding = cell_property("padding")
    data_format = cell_property("data_format")
    dilation_rate = cell_property("dilation_rate")
    activation = cell_property("activation")
    recurrent_activation = cell_property("recurrent_activation")
    use_bias = cell_property("use_bias")
    kernel_initializer = cell_property("kernel_initializer")
    recurrent_initializer = cell_property("recurrent_initializer")
    bias_initializer = cell_property("bias_initializer")
    unit_forget_bias = cell_property("unit_forget_bias")
    kernel_regularizer = cell_property("kernel_regularizer")
    recurrent_regularizer = cell_property("recurrent_regularizer")
    bias_regularizer = cell_property("bias_regularizer")
    kernel_constraint = cell_property("kernel_constraint")
    recurrent_constraint = cell_property("recurrent_constraint")
    bias_constraint = cell_property("bias_constraint")
    dropout = cell_property("dropout")
    recurrent_dropout = cell_property("recurrent_dropout")
    seed = cell_property("seed")

    # ------------------------------------------------------------------ build
    def build(self, sequences_shape: Any = None, initial_state_shape: Any = None) -> None:
        shape = tuple(sequences_shape)
        rank = self.cell.rank
        if len(shape) != rank + 3:
            raise ValueError(
                f"Layer '{self.name}' expects inputs of rank {rank + 3} (batch, time, "
                f"{rank} spatial axes and channels), but received input shape {shape}."
            )
        super().build(shape, initial_state_shape)

    # ------------------------------------------------------------------ states
    _state_shape_meaning = "the shape of the cell's output feature map"

    def _state_shapes(self, sequences: torch.Tensor) -> list[tuple]:
        shape = self.cell.state_shape((sequences.shape[0], *sequences.shape[2:]))
        return [shape, shape]

    def _zero_states(self, sequences: torch.Tensor) -> list:
        shape = self._state_shapes(sequences)[0]
        zeros = torch.zeros(shape, dtype=sequences.dtype, device=sequences.device)
        return [zeros, zeros]

    # ------------------------------------------------------------------ shapes
    def compute_output_shape(self, sequences_shape: Any, initial_state_shape: Any = None) -> Any:
        shape = tuple(sequences_shape)
        state = self.cell.state_shape((shape[0], *shape[2:]))
        output = (state[0], shape[1], *state[1:]) if self.return_sequences else state
        if self.return_state:
            return (output, state, state)
        return output

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        return {
            **Layer.get_config(self),
            **self._rnn_config(),
            **self.cell.argument_config(),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> ConvLSTM:
        return cls(**config)


_LAYER_DOC = """{rank}D Convolutional LSTM.

    Similar to an LSTM layer, but the input transformations and recurrent
    transformations are both convolutional. The input convolution of all
    timesteps runs as one batched convolution; only the recurrent convolution
    runs per step (see `birnn.ops.conv_lstm`). `Bidirectional` wraps it like
    any `RNN` (its `"concat"` merge, as Keras's, joins the last axis).

    Args:
        filters: int, the dimension of the output space (the number of filters
            in the convolution).
        kernel_size: int or tuple/list of {rank} integers, specifying the size
            of the convolution window.
        strides: int or tuple/list of {rank} integers, specifying the stride
            length of the convolution. `strides > 1` is incompatible with
            `dilation_rate > 1`.
        padding: string, `"valid"` or `"same"` (case-insensitive). `"valid"`
            means no padding. `"same"` results in padding evenly to the
            left/right or up/down of the input such that output has the same
            spatial shape as the input (with stride 1).
        data_format: string, either `"channels_last"` (default) or
            `"channels_first"`. The ordering of the dimensions in the inputs:
            `"channels_last"` corresponds to inputs with shape
            `{last_shape}` while `"channels_first"` corresponds to inputs with
            shape `{first_shape}`.
        dilation_rate: int or tuple/list of {rank} integers, specifying the
            dilation rate to use for dilated convolution.
        activation: Activation function to use. By default hyperbolic tangent
            activation function is applied (`tanh(x)`).
        recurrent_activation: Activation function to use for the recurrent
            step.
        use_bias: Boolean, whether the layer uses a bias vector.
        kernel_initializer: Initializer for the `kernel` weights matrix, used
            for the linear transformation of the inputs.
        recurrent_initializer: Initializer for the `recurrent_kernel` weights
            matrix, used for the linear transformation of the recurrent state.
        bias_initializer: Initializer for the bias vector.
        unit_forget_bias: Boolean. If `True`, add 1 to the bias of the forget
            gate at initialization. Use in combination with
            `bias_initializer="zeros"`.
        kernel_regularizer: Regularizer function applied to the `kernel`
            weights matrix.
        recurrent_regularizer: Regularizer function applied to the
            `recurrent_kernel` weights matrix.
        bias_regularizer: Regularizer function applied to the bias vector.
        activity_regularizer: Regularizer function applied to the output of
            the layer.
        kernel_constraint: Constraint function applied to the `kernel` weights
            matrix.
        recurrent_constraint: Constraint function applied to the
            `recurrent_kernel` weights matrix.
        bias_constraint: Constraint function applied to the bias vector.
        dropout: Float between 0 and 1. Fraction of the units to drop for the
            linear transformation of the inputs.
        recurrent_dropout: Float between 0 and 1. Fraction of the units to
            drop for the linear transformation of the recurrent state.
        seed: Random seed for dropout.
        return_sequences: Boolean. Whether to return the last output in the
            output sequence, or the full sequence. Default: `False`.
        return_state: Boolean. Whether to return the last state in addition
            to the output. Default: `False`.
        go_backwards: Boolean (default: `False`). If `True`, process the input
            sequence backwards and return the reversed sequence.
        stateful: Boolean (default `False`). If `True`, the last state for each
            sample at index i in a batch will be used as initial state for the
            sample of index i in the following batch.

    Call arguments:
        inputs: A {ndim}D tensor.
        initial_state: List of initial state tensors `[h, c]`, each shaped
            like the cell's output feature map (optional; zeros by default).
        mask: Binary tensor of shape `(samples, timesteps)` indicating whether
            a given timestep should be masked.
        training: Python boolean indicating whether the layer should behave in
            training mode or in inference mode. This is only relevant if
            `dropout` or `recurrent_dropout` are set.

    Input shape:
        - If `data_format='channels_first'`: {ndim}D tensor with shape
          `{first_shape}`
        - If `data_format='channels_last'`: {ndim}D tensor with shape
          `{last_shape}`

    Output shape:
        - If `return_state`: a tuple of tensors; the first tensor is the
          output, the remaining tensors are the last states, each shaped like
          one output feature map.
        - If `return_sequences`: the output is `(samples, timesteps,
          *new_spatial, filters)` (`channels_last`) or `(samples, timesteps,
          filters, *new_spatial)` (`channels_first`).
        - Else, `(samples, *new_spatial, filters)` or `(samples, filters,
          *new_spatial)`.

    References:

    - [Shi et al., 2015](http://arxiv.org/abs/1506.04214v1)
      (the current implementation does not include the feedback loop on the
      cells output).

    Examples:

    >>> import torch
    >>> layer = {name}(4, 3, padding="same", return_sequences=True)
    >>> layer(torch.rand(2, 5, {example})).shape
    torch.Size([2, 5, {example_out}])
    """


def _layer_init(rank: int):
    def __init__(
        self: ConvLSTM,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = 1,
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
        **kwargs: Any,
    ) -> None:
        ConvLSTM.__init__(
            self,
            rank,
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            **kwargs,
        )

    return __init__


class ConvLSTM1D(ConvLSTM):
    __init__ = _layer_init(1)


class ConvLSTM2D(ConvLSTM):
    __init__ = _layer_init(2)


class ConvLSTM3D(ConvLSTM):
    __init__ = _layer_init(3)


_SPATIAL = {1: ("steps",), 2: ("rows", "cols"), 3: ("conv_dim1", "conv_dim2", "conv_dim3")}
_EXAMPLES = {1: ("8, 3", "8, 4"), 2: ("8, 8, 3", "8, 8, 4"), 3: ("4, 4, 4, 3", "4, 4, 4, 4")}
for _rank, _class in ((1, ConvLSTM1D), (2, ConvLSTM2D), (3, ConvLSTM3D)):
    _axes = ", ".join(_SPATIAL[_rank])
    _class.__doc__ = _LAYER_DOC.format(
        rank=_rank,
        ndim=_rank + 3,
        name=_class.__name__,
        first_shape=f"(samples, time, channels, {_axes})",
        last_shape=f"(samples, time, {_axes}, channels)",
        example=_EXAMPLES[_rank][0],
        example_out=_EXAMPLES[_rank][1],
    )
