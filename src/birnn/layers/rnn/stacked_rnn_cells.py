"""`StackedRNNCells`: several cells behaving as one, each feeding the next."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from birnn import tree
from birnn.dtype_policies import cast_input
from birnn.layers.layer import Layer
from birnn.layers.rnn.sequence_cell import SequenceCell
from birnn.layers.serialization import deserialize_layer, serialize_layer


def check_cell(owner: str, argument: str, cell: Any) -> None:
    """Raises a `ValueError` unless `cell` follows Keras's cell protocol."""
    if isinstance(cell, type):
        raise TypeError(
            f"{owner}: argument `{argument}` must be a cell instance, not a class. "
            f"Received: {cell!r}; did you mean {cell.__name__}(...)?"
        )
    if not hasattr(cell, "call"):
        raise ValueError(
            f"{owner}: argument `{argument}` must have a `call(inputs, states)` method. "
            f"Received: {argument}={cell!r}"
        )
    if "state_size" not in dir(cell):
        raise ValueError(
            f"{owner}: argument `{argument}` must have a `state_size` attribute (an "
            f"integer, or a list of integers, one per state). Received: {argument}={cell!r}"
        )


def cell_output_size(cell: Any) -> Any:
    """A cell's `output_size`, falling back on its first state's size as Keras does."""
    size = getattr(cell, "output_size", None)
    if size is not None:
        return size
    state_size = cell.state_size
    return state_size[0] if isinstance(state_size, (list, tuple)) else state_size


def build_cell(cell: Any, input_shape: tuple, device: torch.device | None) -> None:
    """Builds a cell (or any sublayer) for an input shape, its weights on `device`,
    as `Layer.__call__` would, without a call (a cell that is no `Layer` has no build)."""
    if isinstance(cell, Layer):
        cell.build_on_device(tuple(input_shape), device)


def states_for(cell: Layer, states: Any) -> Any:
    """`states` in `cell`'s compute dtype, as the cell's call receives them.

    Keras casts every floating argument of a layer's call, so a cell whose policy
    differs from its RNN's (a float32 cell in a `mixed_bfloat16` RNN, or the
    reverse) gets its states in its own compute dtype, like its inputs.
    """
    compute = cell.dtype_torch
    if not (cell.autocast and compute.is_floating_point):
        return states
    flat = states if isinstance(states, (list, tuple)) else (states,)
    if all(isinstance(s, torch.Tensor) and s.dtype == compute for s in flat):
        return states  # the usual step: nothing to cast
    return tree.map_structure(
        lambda s: cast_input(cell, s) if isinstance(s, torch.Tensor) else s, states
    )


def call_cell(cell: Any, inputs: torch.Tensor, states: Any, training: bool | None) -> tuple:
    """Calls a cell for one step the way Keras does: `training` only if it takes it."""
    if isinstance(cell, Layer):  # `Layer.__call__` passes `training` on only if `call` takes it
        return cell(inputs, states_for(cell, states), training=training)
    call = cell.call
    if "training" in inspect.signature(call).parameters:
        return call(inputs, states, training=training)
    return call(inputs, states)


class StackedRNNCells(Layer, SequenceCell):
    """Wrapper allowing a stack of RNN cells to behave as a single cell.

    Each cell's output is the next cell's input; the state of the stack is the
    list of the cells' states. `RNN([cell_a, cell_b])` builds one for you. When
    every cell is a built-in one (`SimpleRNNCell`, `LSTMCell`, `GRUCell`), `RNN`
    runs the stack cell by cell over the whole sequence, with the same result as
    stepping all cells together.

    Args:
        cells: List of RNN cell instances.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Examples:

    >>> import torch
    >>> from birnn.layers import LSTMCell, GRUCell, RNN
    >>> cells = StackedRNNCells([LSTMCell(8), GRUCell(4)])
    >>> cells.state_size, cells.output_size
    ([[8, 8], 4], 4)
    >>> RNN(cells)(torch.zeros(2, 5, 3)).shape
    torch.Size([2, 4])
    """

    def __init__(self, cells: Sequence[Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(cells, (list, tuple)) or not cells:
            raise ValueError(
                f"StackedRNNCells: argument `cells` must be a non-empty list of cells. "
                f"Received: cells={cells!r}"
            )
        for index, cell in enumerate(cells):
            check_cell("StackedRNNCells", f"cells[{index}]", cell)
        self.cells: Any  # a `ModuleList`, or a list holding a cell that is no module
        if all(isinstance(cell, nn.Module) for cell in cells):
            self.cells = nn.ModuleList(cells)
        else:
            self.cells = list(cells)
            self._cell_modules = nn.ModuleList([c for c in cells if isinstance(c, nn.Module)])

    @property
    def state_size(self) -> list:
        return [cell.state_size for cell in self.cells]

    @property
    def output_size(self) -> Any:
        return cell_output_size(self.cells[-1])

    def get_initial_state(self, batch_size: int | None = None) -> list:
        """Each cell's initial state (zeros where a cell defines none)."""
        states = []
        for cell in self.cells:
            make = getattr(cell, "get_initial_state", None)
            if make is not None:
                states.append(make(batch_size=batch_size))
            elif isinstance(cell.state_size, (list, tuple)):
                states.append([self._zeros(batch_size, size) for size in cell.state_size])
            else:
                states.append(self._zeros(batch_size, int(cell.state_size)))
        return states

    def _zeros(self, batch_size: int | None, size: int) -> torch.Tensor:
        return torch.zeros((batch_size or 0, size), dtype=self.dtype_torch)

    def build(self, input_shape: Any = None) -> None:
        device = self._build_device
        shape = tuple(input_shape)
        for cell in self.cells:
            build_cell(cell, shape, device)
            output_size = cell_output_size(cell)
            shape = (shape[0], output_size)
        self._build_input_shape = tuple(input_shape)
        self.built = True

    def call(self, inputs: torch.Tensor, states: Sequence[Any], training: bool = False) -> tuple:
        new_states = []
        for cell, cell_states in zip(self.cells, states):
            is_list = isinstance(cell_states, (list, tuple))
            cell_states = list(cell_states) if is_list else [cell_states]
            inputs, cell_new = call_cell(cell, inputs, cell_states, training)
            if not isinstance(cell_new, (list, tuple)):
                cell_new = [cell_new]
            new_states.append(list(cell_new) if is_list else cell_new[0])
        return inputs, new_states

    @property
    def call_sequence(self) -> Callable | None:
        """Runs the stack over a whole sequence, cell by cell, if every cell can."""
        found = [getattr(cell, "call_sequence", None) for cell in self.cells]
        runners = [run for run in found if run is not None]
        if len(runners) != len(found):
            return None

        def run(inputs, states, mask, go_backwards, return_all_outputs, training):
            # A masked step keeps every cell's state and repeats the top output, so
            # what a lower cell feeds upward at masked steps never matters: running
            # the cells one after the other equals stepping them together.
            if go_backwards:
                inputs = inputs.flip(1)
                mask = mask.flip(1) if mask is not None else None
            new_states = []
            last = None
            for index, (runner, cell_states) in enumerate(zip(runners, states)):
                is_list = isinstance(cell_states, (list, tuple))
                top = index == len(runners) - 1
                last, inputs, cell_new = runner(
                    inputs,
                    list(cell_states) if is_list else [cell_states],
                    mask,
                    False,
                    return_all_outputs or not top,
                    training,
                )
                new_states.append(list(cell_new) if is_list else cell_new[0])
            return last, inputs, new_states

        return run

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "cells": [serialize_layer(cell) for cell in self.cells],
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> StackedRNNCells:
        config = dict(config)
        cells = [deserialize_layer(c, custom_objects) for c in config.pop("cells")]
        return cls(cells, **config)
