"""`RNN`: runs a cell over the time axis, with Keras's masks, states and outputs.

A call takes one of two paths, chosen in `RNN.call`: `_call_fused` runs the
whole sequence in a fused kernel (`birnn.ops.fused_rnn`) when `fused_kind()`
names one (built-in LSTM and GRU only); `_call_loop` runs the cell's
`call_sequence` if it offers one, else steps its `call` with
`birnn.ops.recurrent.scan`. `fused_direction()` describes the fused run of a
call without running it, for `Bidirectional` to run two layers together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from birnn import backend, tree
from birnn.layers.input_spec import check_input_compatibility
from birnn.layers.layer import Layer
from birnn.layers.rnn.dropout import reset_dropout_masks
from birnn.layers.rnn.packed import call_with_packed, is_packed
from birnn.layers.rnn.stacked_rnn_cells import (
    StackedRNNCells,
    build_cell,
    call_cell,
    cell_output_size,
    check_cell,
)
from birnn.layers.serialization import deserialize_layer, serialize_layer
from birnn.ops import fused_rnn, recurrent
from birnn.ops.masks import zero_masked_steps
from birnn.tree import flatten as flatten_structure

Structure = Any


def _pack_like(template: Structure, flat: Sequence[Any]) -> Structure:
    """Refills the nested lists of `template` with `flat`'s items, in order."""
    items = iter(flat)

    def fill(node: Structure) -> Structure:
        if isinstance(node, (list, tuple)):
            return [fill(child) for child in node]
        return next(items)

    return fill(template)


def _is_scalar(value: Any) -> bool:
    if isinstance(value, torch.Tensor):  # `Layer.__call__` converts each boolean on its own
        return value.dim() <= 1 and value.numel() == 1
    return isinstance(value, (bool, int, np.bool_, np.integer))


def sequence_mask(mask: Any) -> Any:
    """The sequences' mask from a call's `mask` argument.

    `mask` is a tensor or array, a nested list of booleans (one mask, returned
    as a boolean tensor), or a list of masks, one per input (the first is the
    sequences').

    Examples:

    >>> sequence_mask([[True, False], [True, True]]).tolist()
    [[True, False], [True, True]]
    >>> sequence_mask([None, None]) is None
    True
    """
    while isinstance(mask, (list, tuple)):
        if not mask:
            return None
        first = mask[0]
        if isinstance(first, (list, tuple)) and first and _is_scalar(first[0]):
            return torch.tensor([[bool(step) for step in row] for row in mask])
        mask = first
    return mask


def _flat_sizes(state_size: Any) -> list:
    if isinstance(state_size, (list, tuple)):
        return [size for entry in state_size for size in _flat_sizes(entry)]
    return [state_size]


def _valid_state_size(state_size: Any) -> bool:
    if isinstance(state_size, bool):
        return False
    if isinstance(state_size, int):
        return state_size >= 0
    if isinstance(state_size, (list, tuple)):
        return len(state_size) > 0 and all(_valid_state_size(s) for s in state_size)
    return False


class RNN(Layer):
    """Base class for recurrent layers.

    Runs a cell over the time axis of its input. A cell is any object with a
    `call(inputs, states[, training])` method returning `(output, new_states)`, a
    `state_size` attribute (an integer, or a list with one entry per state) and
    optionally `output_size` and `get_initial_state(batch_size)`. A list of cells
    is stacked with `StackedRNNCells`.

    Masked timesteps (mask `False`) keep the states and repeat the previous
    output (zeros before the first unmasked step), or output zeros with
    `zero_output_for_mask=True`; so a masked sequence gives the result of its
    unmasked steps alone, and a fully masked row keeps its initial state.

    Args:
        cell: A RNN cell instance or a list of RNN cell instances.
        return_sequences: Boolean (default `False`). Whether to return the last
            output in the output sequence, or the full sequence.
        return_state: Boolean (default `False`). Whether to return the last
            states in addition to the output.
        go_backwards: Boolean (default `False`). If `True`, process the input
            sequence backwards and return the reversed sequence.
        stateful: Boolean (default `False`). If `True`, the last state for each
            sample at index `i` in a batch is the initial state for the sample
            of index `i` in the following batch. The batch size is then fixed by
            the first call.
        unroll: Boolean (default `False`). Accepted for Keras compatibility; the
            loop is the same either way.
        zero_output_for_mask: Boolean (default `False`). Whether masked
            timesteps output zeros instead of the previous output.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`, ...).

    Call arguments:
        sequences: A tensor of shape `(batch_size, timesteps, features...)`, or
            a `torch.nn.utils.rnn.PackedSequence`: it is treated as right-padded
            input (batch in its original order) with the mask of its lengths,
            and the output is padded, not packed.
        initial_state: Optional list of initial state tensors, one per state
            (nested per cell for stacked cells). Defaults to zeros, or to the
            stored states of a stateful layer.
        mask: Optional boolean tensor of shape `(batch_size, timesteps)`; `True`
            marks the timesteps to process.
        training: Python boolean; passed to the cell (dropout).

    Returns:
        The output, `(batch, units)` or with `return_sequences`
        `(batch, timesteps, units)`; with `return_state`, a tuple
        `(output, *states)`.

    Examples:

    >>> import torch
    >>> from birnn.layers import Layer, LSTMCell
    >>> layer = RNN(LSTMCell(4), return_sequences=True, return_state=True)
    >>> outputs, h, c = layer(torch.ones(2, 5, 3))
    >>> outputs.shape, h.shape
    (torch.Size([2, 5, 4]), torch.Size([2, 4]))

    A cell of your own:

    >>> class MinimalRNNCell(Layer):
    ...     def __init__(self, units, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.units = units
    ...         self.state_size = units
    ...     def build(self, input_shape):
    ...         self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
    ...                                       name="kernel")
    ...     def call(self, inputs, states):
    ...         output = inputs @ self.kernel + states[0]
    ...         return output, [output]
    >>> RNN(MinimalRNNCell(6))(torch.ones(2, 5, 3)).shape
    torch.Size([2, 6])
    """

    #: Whether this class computes its calls with `RNN`'s own `call`, `_call_loop`
    #: and `_call_fused`, so that running its `fused_direction()` gives what a call
    #: gives. A subclass overriding one of them is `False` (see `__init_subclass__`).
    call_is_builtin: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if "call_is_builtin" not in own and any(
            name in own for name in ("call", "_call_loop", "_call_fused")
        ):
            cls.call_is_builtin = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if is_packed(args):
            return call_with_packed(self, super().__call__, args, kwargs)
        return super().__call__(*args, **kwargs)

    def __init__(
        self,
        cell: Any,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs: Any,
    ) -> None:
        owner = type(self).__name__
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)
        check_cell(owner, "cell", cell)
        state_size = getattr(cell, "state_size", None)
        if not _valid_state_size(state_size):
            raise ValueError(
                f"{owner}: the `state_size` of argument `cell` must be an integer, or a list "
                f"of integers (one per state). Received: state_size={state_size!r}"
            )
        super().__init__(**kwargs)
        self.cell = cell
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.supports_masking = True
        self.input_spec = None
        self.single_state = isinstance(state_size, int)
        self.state_size: list = [state_size] if self.single_state else list(state_size or ())
        self._expected_batch_size: int | None = None
        self._state_names: list[str] | None = None
        self._state_template: Structure = None

    # ------------------------------------------------------------------ build
    def build(self, sequences_shape: Any = None, initial_state_shape: Any = None) -> None:
        shape = tuple(sequences_shape)
        if len(shape) < 3:
            raise ValueError(
                f"Layer '{self.name}' expects inputs of rank 3 or more (batch, timesteps, "
                f"features), but received input shape {shape}."
            )
        build_cell(self.cell, (shape[0], *shape[2:]), self._build_device)
        if self.stateful:
            if shape[0] is None:
                raise ValueError(
                    f"Layer '{self.name}' is stateful (`stateful=True`), so it needs a fixed "
                    f"batch size, but the input shape is {shape}. Pass `batch_size=...` to "
                    "the `Input` layer."
                )
            if self._state_names is None:
                self._create_states(self.get_initial_state(shape[0]))
        self.built = True

    # ------------------------------------------------------------------ states
    def get_initial_state(self, batch_size: int) -> list:
        """The cell's initial states for `batch_size` samples (zeros by default)."""
        make = getattr(self.cell, "get_initial_state", None)
        if make is None:
            dtype = self.dtype_torch
            return [torch.zeros((batch_size, size), dtype=dtype) for size in self.state_size]
        states = make(batch_size=batch_size)
        return list(states) if isinstance(states, (list, tuple)) else [states]

    @property
    def states(self) -> list | None:
        """The stored states of a stateful layer (`None` until built, or if not stateful)."""
        if self._state_names is None:
            return None
        return _pack_like(self._state_template, [getattr(self, n) for n in self._state_names])

    def _create_states(self, states: Structure) -> None:
        flat = flatten_structure(states)
        self._state_template = _pack_like(states, range(len(flat)))
        self._state_names = [f"_rnn_state_{index}" for index in range(len(flat))]
        for name, value in zip(self._state_names, flat):
            self.register_buffer(name, value.detach().clone(), persistent=False)
        self._expected_batch_size = int(flat[0].shape[0])

    def _assign_states(self, flat: Sequence[torch.Tensor]) -> None:
        # Rebinding (not copying in place) keeps the previous graph's saved tensors valid.
        for name, value in zip(self._state_names or (), flat):
            setattr(self, name, value.detach())

    def reset_states(self, states: Any = None) -> None:
        """Resets a stateful layer's states to zeros, or to `states` if given.

        Args:
            states: Optional NumPy arrays or tensors, one per state, each of shape
                `(batch_size, state_size)`.

        Raises:
            ValueError: if the layer is not stateful but `states` are given, or if
                their number or shapes do not match.
        """
        if not self.stateful:
            if states is None:
                return
            raise ValueError(
                f"Layer '{self.name}' is not stateful: `reset_states(states)` needs a layer "
                "created with `stateful=True`."
            )
        if states is None:
            if self._state_names is not None:
                self._assign_states(
                    [torch.zeros_like(getattr(self, n)) for n in self._state_names]
                )
            return
        if not isinstance(states, (list, tuple)):
            states = [states]
        if self._state_names is None:
            batch = int(backend.convert_to_tensor(flatten_structure(states)[0]).shape[0])
            self._create_states(self.get_initial_state(batch))
        current = [getattr(self, n) for n in self._state_names or ()]
        flat = flatten_structure(list(states))
        if len(flat) != len(current):
            raise ValueError(
                f"Layer '{self.name}' has {len(current)} state(s), but `reset_states` "
                f"received {len(flat)} value(s) in `states`."
            )
        values = []
        for index, (value, old) in enumerate(zip(flat, current)):
            value = backend.convert_to_tensor(value, dtype=old.dtype, device=old.device)
            if tuple(value.shape) != tuple(old.shape):
                raise ValueError(
                    f"Layer '{self.name}': `states[{index}]` passed to `reset_states` must "
                    f"have shape {tuple(old.shape)}, but has shape {tuple(value.shape)}."
                )
            values.append(value)
        self._assign_states(values)

    def reset_state(self, states: Any = None) -> None:
        """Alias of `reset_states`."""
        self.reset_states(states)

    def _initial_state(self, initial_state: Any, sequences: torch.Tensor) -> list:
        """The initial states as a list (nested per cell), validated and converted."""
        batch = sequences.shape[0]
        if initial_state is None:
            if self.stateful:
                if self._state_names is None:
                    self._create_states(self.get_initial_state(batch))
                initial_state = self.states
            else:
                initial_state = self._zero_states(sequences)
        elif not isinstance(initial_state, (list, tuple)):
            initial_state = [initial_state]
        initial_state = list(initial_state)
        sizes = _flat_sizes(self.state_size)
        flat = flatten_structure(initial_state)
        if len(flat) != len(sizes):
            raise ValueError(
                f"Layer '{self.name}' expects {len(sizes)} initial state tensor(s) in "
                f"`initial_state` (state_size={self.state_size}), but received {len(flat)}."
            )
        converted = []
        for index, (state, shape) in enumerate(zip(flat, self._state_shapes(sequences))):
            if state is None:
                raise ValueError(f"Layer '{self.name}': `initial_state[{index}]` is None.")
            state = backend.convert_to_tensor(state, device=sequences.device)
            if state.dtype != sequences.dtype:
                state = state.to(sequences.dtype)
            if tuple(state.shape) != shape:
                raise ValueError(
                    f"Layer '{self.name}': `initial_state[{index}]` must have shape "
                    f"{shape} ({self._state_shape_meaning}), but has shape "
                    f"{tuple(state.shape)}."
                )
            converted.append(state)
        nested = len(initial_state) == len(self.state_size)
        template = initial_state if nested else self.state_size
        return _pack_like(template, converted)

    _state_shape_meaning = "batch_size, state_size"

    def _zero_states(self, sequences: torch.Tensor) -> list:
        """The zero initial states for `sequences` (a layer with shaped states overrides it)."""
        return self.get_initial_state(sequences.shape[0])

    def _state_shapes(self, sequences: torch.Tensor) -> list[tuple]:
        """The shape of each (flattened) state for `sequences`: `(batch, size)` here."""
        batch = sequences.shape[0]
        return [(batch, size) for size in _flat_sizes(self.state_size)]

    # ------------------------------------------------------------------ call
    def call(
        self,
        sequences: torch.Tensor,
        initial_state: Any = None,
        mask: Any = None,
        training: bool | None = None,
    ) -> Any:
        sequences = self._check_sequences(sequences)
        batch = sequences.shape[0]
        if self.stateful and self._expected_batch_size not in (None, batch):
            raise ValueError(
                f"Layer '{self.name}' is stateful with batch size {self._expected_batch_size}, "
                f"but received inputs with batch size {batch}. A stateful RNN needs the same "
                "batch size on every call."
            )
        mask = self._standardize_mask(mask, sequences)
        states = self._initial_state(initial_state, sequences)
        training = bool(training)
        try:
            if self.fused_kind(training) is None:
                last_output, outputs, states = self._call_loop(sequences, states, mask, training)
            else:
                last_output, outputs, states = self._call_fused(sequences, states, mask, training)
        finally:
            reset_dropout_masks(self.cell)
        if self.stateful:
            if self._state_names is None:
                self._create_states(states)
            self._assign_states(flatten_structure(states))
        output = outputs if self.return_sequences else last_output
        if self.return_state:
            return self._in_compute_dtype((output, *states))
        return self._in_compute_dtype(output)

    def _in_compute_dtype(self, result: Any) -> Any:
        """The call's result in the layer's compute dtype, as Keras returns it even when
        the cell has another policy (a float32 cell in a `mixed_bfloat16` RNN)."""
        compute = self.dtype_torch
        flat = result if isinstance(result, tuple) else (result,)
        if not compute.is_floating_point or all(
            isinstance(t, torch.Tensor) and t.dtype == compute for t in flat
        ):
            return result  # the usual call: the cell computed in the layer's dtype

        def cast(t: Any) -> Any:
            if not (isinstance(t, torch.Tensor) and t.is_floating_point()) or t.dtype == compute:
                return t
            return t if torch.is_autocast_enabled(t.device.type) else t.to(compute)

        return tree.map_structure(cast, result)

    def _check_sequences(self, sequences: torch.Tensor) -> torch.Tensor:
        """`sequences` as floats, or a `ValueError` for a rank below 3 or no timesteps."""
        if sequences.dim() < 3:
            raise ValueError(
                f"Layer '{self.name}' expects inputs of rank 3 or more (batch, timesteps, "
                f"features), but received input shape {tuple(sequences.shape)}."
            )
        if not sequences.is_floating_point():  # integer or bool inputs, as Keras casts them
            sequences = sequences.to(self.dtype_torch)
        if sequences.shape[1] == 0:
            raise ValueError(
                f"Layer '{self.name}' received a sequence with no timesteps: input shape "
                f"{tuple(sequences.shape)}."
            )
        return sequences

    def _standardize_mask(self, mask: Any, sequences: torch.Tensor) -> torch.Tensor | None:
        mask = sequence_mask(mask)
        if mask is None:
            return None
        mask = backend.convert_to_tensor(mask, dtype="bool", device=sequences.device)
        expected = tuple(sequences.shape[:2])
        if tuple(mask.shape) != expected:
            raise ValueError(
                f"Layer '{self.name}': `mask` must have shape {expected} (batch_size, "
                f"timesteps), but has shape {tuple(mask.shape)}."
            )
        return mask

    # ------------------------------------------------------------------ fused path
    def fused_kind(self, training: bool) -> str | None:
        """The fused kernel a call in this mode runs in (`"lstm"`, `"gru"`), else `None`.

        `None` here: a generic `RNN` always runs its cell in the loop. The
        built-in `LSTM` and `GRU` answer for their configuration and `use_cudnn`.
        """
        return None

    def fused_direction(
        self,
        sequences: torch.Tensor,
        initial_state: Any = None,
        mask: Any = None,
        training: bool | None = None,
    ) -> fused_rnn.Direction | None:
        """What a call with these arguments runs in the fused kernel, or `None`.

        A `birnn.ops.fused_rnn.Direction`, with the call's standardized mask,
        validated initial states (`None`: zeros; a stateful layer's stored
        states) and the input dropout mask of this sequence, ready for
        `fused_rnn.run_direction` (or, with another layer's, `run_pair`). It
        describes the recurrence only: a stateful layer does not store the final
        states, nor is `activity_regularizer` applied. `None` when the call
        would run in the loop (see `fused_kind`).

        Raises:
            ValueError: for invalid arguments, as a call raises, and for
                `use_cudnn=True` with a configuration the kernel cannot run.

        Examples:

        >>> import torch
        >>> from birnn.layers import GRU, SimpleRNN
        >>> direction = GRU(4).fused_direction(torch.ones(2, 3, 5))
        >>> direction.kind, direction.go_backwards
        ('gru', False)
        >>> SimpleRNN(4).fused_direction(torch.ones(2, 3, 5)) is None
        True
        """
        training = bool(training)
        if self.fused_kind(training) is None:
            return None
        sequences = self._check_sequences(sequences)
        if not self.built:
            self.build_from_inputs(sequences)
        check_input_compatibility(self.name, self.input_spec, sequences)
        if mask is not None:
            mask = self._standardize_mask(mask, sequences)
        states = None
        if initial_state is not None or self.stateful:
            states = self._initial_state(initial_state, sequences)
        return self._fused_direction(sequences, states, mask, training)

    def _fused_direction(
        self,
        sequences: torch.Tensor,
        states: list | None,
        mask: torch.Tensor | None,
        training: bool,
    ) -> fused_rnn.Direction:
        """The cell's direction; `states` of `None` are zeros (which `run_pair` can
        then run with a mask in one kernel call)."""
        return self.cell.fused_direction(
            sequences,
            None if states is None else flatten_structure(states),
            mask,
            self.go_backwards,
            self.zero_output_for_mask,
            self.return_sequences,
            training,
        )

    def _call_fused(
        self, sequences: torch.Tensor, states: list, mask: torch.Tensor | None, training: bool
    ) -> tuple[torch.Tensor, torch.Tensor, list]:
        """`_call_loop`'s result, from the fused kernel `fused_kind()` names."""
        direction = self._fused_direction(sequences, states, mask, training)
        return fused_rnn.run_direction(sequences, direction)

    # ------------------------------------------------------------------ loop path
    def _call_loop(
        self,
        inputs: torch.Tensor,
        initial_state: list,
        mask: torch.Tensor | None,
        training: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, list]:
        """The recurrence in a loop over the cell: `(last_output, outputs, states)`.

        Processes `inputs` in the direction `self.go_backwards` gives and returns
        `outputs` in processing order (reversed time when going backwards) if
        `self.return_sequences` (else at least the last output), masked steps
        repeating the previous output (zeros before the first unmasked step, and
        always zeros with `zero_output_for_mask`); `states` shaped like
        `initial_state`. Runs the cell's `call_sequence` when it has one (see
        `SequenceCell`), else steps its `call`.
        """
        call_sequence = getattr(self.cell, "call_sequence", None)
        if call_sequence is not None:
            last_output, outputs, states = call_sequence(
                inputs, initial_state, mask, self.go_backwards, self.return_sequences, training
            )
        else:
            last_output, outputs, states = self._step_loop(inputs, initial_state, mask, training)
        if self.zero_output_for_mask and mask is not None:
            processed = mask.flip(1) if self.go_backwards else mask
            if self.return_sequences:
                outputs = zero_masked_steps(outputs, processed)
            else:
                last_output = zero_masked_steps(last_output, processed[:, -1])
        return last_output, outputs, states

    def _step_loop(
        self,
        inputs: torch.Tensor,
        initial_state: list,
        mask: torch.Tensor | None,
        training: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, list]:
        """`_call_loop` by stepping the cell's `call` (nested states flattened for the scan)."""
        template = _pack_like(initial_state, range(len(flatten_structure(initial_state))))
        cell = self.cell

        def step(x: torch.Tensor, flat_states: list) -> tuple:
            states = tuple(_pack_like(template, flat_states))
            output, new_states = call_cell(cell, x, states, training)
            if not isinstance(new_states, (list, tuple)):
                new_states = [new_states]
            flat_new = flatten_structure(list(new_states))
            self._check_new_states(flat_new, flat_states)
            return output, flat_new

        last_output, outputs, flat = recurrent.scan(
            step,
            inputs,
            flatten_structure(initial_state),
            mask=mask,
            go_backwards=self.go_backwards,
            return_all_outputs=self.return_sequences,
        )
        return last_output, outputs, _pack_like(template, flat)

    def _check_new_states(self, new: list, old: list) -> None:
        """A `ValueError` unless a cell step returned states like the ones it received."""
        if len(new) != len(old):
            raise ValueError(
                f"Layer '{self.name}': the cell's `call()` must return as many new states as "
                f"it receives ({len(old)}, state_size={self.state_size}), but it returned "
                f"{len(new)}."
            )
        for index, (value, previous) in enumerate(zip(new, old)):
            shape = tuple(getattr(value, "shape", ()))
            if shape != tuple(previous.shape):
                raise ValueError(
                    f"Layer '{self.name}': the cell's `call()` returned new state {index} "
                    f"of shape {shape}, but the state has shape {tuple(previous.shape)} "
                    f"(state_size={self.state_size})."
                )

    # ------------------------------------------------------------------ shapes & masks
    def compute_output_shape(self, sequences_shape: Any, initial_state_shape: Any = None) -> Any:
        batch_size, length = sequences_shape[0], sequences_shape[1]
        states_shape: list[Any] = []
        for size in self.state_size:
            if isinstance(size, (list, tuple)):
                states_shape.append([(batch_size, s) for s in size])
            else:
                states_shape.append((batch_size, size))
        output_size = cell_output_size(self.cell)
        if not isinstance(output_size, int):
            raise ValueError(
                f"Layer '{self.name}': the cell's `output_size` must be an integer. "
                f"Received: {output_size!r}"
            )
        if self.return_sequences:
            output_shape: tuple = (batch_size, length, output_size)
        else:
            output_shape = (batch_size, output_size)
        if self.return_state:
            return (output_shape, *states_shape)
        return output_shape

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        mask = sequence_mask(mask)
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None for _ in self.state_size]
        return output_mask

    # ------------------------------------------------------------------ config
    def _rnn_config(self) -> dict:
        return {
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
        }

    def get_config(self) -> dict:
        return {**super().get_config(), **self._rnn_config(), "cell": serialize_layer(self.cell)}

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> RNN:
        config = dict(config)
        cell = deserialize_layer(config.pop("cell"), custom_objects)
        return cls(cell, **config)
