"""Dropout masks for recurrent cells: sampled once per sequence, fixed over its timesteps."""

from __future__ import annotations

import threading
import weakref
from typing import Any

import torch

from birnn.layers.rnn.stacked_rnn_cells import StackedRNNCells

_GOLDEN = 0x9E3779B97F4A7C15


def validate_rate(owner: str, name: str, value: Any) -> float:
    """`value` as a float clipped to `[0, 1]`, as Keras does; a `TypeError` if not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"{owner}: argument `{name}` must be a float between 0 and 1. Received: {value!r}"
            ) from None
    return min(1.0, max(0.0, float(value)))


def sample_dropout_mask(
    shape: tuple[int, ...],
    rate: float,
    like: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A tensor of `0` and `1 / (1 - rate)` (all zeros when `rate == 1`), like Keras's masks."""
    keep = 1.0 - rate
    if keep <= 0.0:
        return torch.zeros(shape, dtype=like.dtype, device=like.device)
    probs = torch.full(shape, keep, dtype=like.dtype, device=like.device)
    return torch.bernoulli(probs, generator=generator) / keep


class _ThreadMasks(threading.local):
    """Each thread's cached masks: `{cell: [input_mask, recurrent_mask]}`."""

    def __init__(self) -> None:
        self.by_cell: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


_MASKS = _ThreadMasks()


def _cached(cell: Any, index: int) -> torch.Tensor | None:
    entry = _MASKS.by_cell.get(cell)
    return None if entry is None else entry[index]


def _cache(cell: Any, index: int, mask: torch.Tensor | None) -> None:
    entry = _MASKS.by_cell.get(cell)
    if entry is None:
        if mask is None:
            return
        entry = _MASKS.by_cell[cell] = [None, None]
    entry[index] = mask
    if entry[0] is None and entry[1] is None:
        del _MASKS.by_cell[cell]


class DropoutRNNCell:
    """Mixin giving a cell Keras's cached dropout masks.

    The RNN layer asks for the masks before its first step (or the cell does on its
    first step) and resets them after the sequence, so one mask serves every
    timestep of a batch and the next batch draws a new one. The cache is kept
    per thread, so threads calling the same layer at once each get their own
    masks (for their own batch sizes). A cell with
    `dropout_mask_count = n` gets `n` independent masks stacked on a leading axis
    (one per gate, Keras's `implementation=1`); Keras returns a list there.

    With `seed=None` masks come from torch's global generator (so
    `torch.manual_seed` makes them reproducible); with an integer seed each
    sequence gets the next mask of a private, deterministic stream.

    A class using it sets `dropout`, `recurrent_dropout` and `seed`, and may set
    `dropout_mask_count`.
    """

    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    seed: int | None = None
    dropout_mask_count: int | None = None
    _dropout_draws: int = 0

    @property
    def _dropout_mask(self) -> torch.Tensor | None:
        return _cached(self, 0)

    @_dropout_mask.setter
    def _dropout_mask(self, mask: torch.Tensor | None) -> None:
        _cache(self, 0, mask)

    @property
    def _recurrent_dropout_mask(self) -> torch.Tensor | None:
        return _cached(self, 1)

    @_recurrent_dropout_mask.setter
    def _recurrent_dropout_mask(self, mask: torch.Tensor | None) -> None:
        _cache(self, 1, mask)

    def _dropout_applies(self, rate: float) -> bool:
        """Whether a mask of this rate is applied in training (LSTM/GRU skip rate 1)."""
        return 0.0 < rate < 1.0

    def _next_generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        draws = self._dropout_draws
        self._dropout_draws = draws + 1
        generator = torch.Generator(device=device)
        generator.manual_seed((int(self.seed) + _GOLDEN * draws) % (2**63))
        return generator

    def _create_dropout_mask(self, step_input: torch.Tensor, rate: float) -> torch.Tensor:
        shape = tuple(step_input.shape)
        if self.dropout_mask_count:
            shape = (self.dropout_mask_count, *shape)
        return sample_dropout_mask(
            shape, rate, step_input, self._next_generator(step_input.device)
        )

    def get_dropout_mask(self, step_input: torch.Tensor) -> torch.Tensor | None:
        """The cached input mask (`(batch, features)`, or `(count, batch, features)`)."""
        if self._dropout_mask is None and self.dropout > 0:
            self._dropout_mask = self._create_dropout_mask(step_input, self.dropout)
        return self._dropout_mask

    def get_recurrent_dropout_mask(self, step_input: torch.Tensor) -> torch.Tensor | None:
        """The cached recurrent mask (`(batch, units)`, or `(count, batch, units)`)."""
        if self._recurrent_dropout_mask is None and self.recurrent_dropout > 0:
            self._recurrent_dropout_mask = self._create_dropout_mask(
                step_input, self.recurrent_dropout
            )
        return self._recurrent_dropout_mask

    def reset_dropout_mask(self) -> None:
        """Forgets the cached input mask (the RNN layer calls it after each sequence)."""
        self._dropout_mask = None

    def reset_recurrent_dropout_mask(self) -> None:
        """Forgets the cached recurrent mask."""
        self._recurrent_dropout_mask = None

    def _masks_for(
        self, step_input: torch.Tensor, state: torch.Tensor, training: bool | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The input and recurrent masks to apply now (`None` where none applies)."""
        if not training:
            return None, None
        input_mask = recurrent_mask = None
        if self._dropout_applies(self.dropout):
            input_mask = self.get_dropout_mask(step_input)
        if self._dropout_applies(self.recurrent_dropout):
            recurrent_mask = self.get_recurrent_dropout_mask(state)
        return input_mask, recurrent_mask


def reset_dropout_masks(cell: Any) -> None:
    """Resets the cached masks of `cell` and, for stacked cells, of every inner cell.

    Runs after every sequence, so it assigns nothing when no mask is cached
    (unless a subclass overrides the reset): assigning to a `torch.nn.Module`
    and looking up a missing attribute on one both cost microseconds.
    """
    if isinstance(cell, DropoutRNNCell):
        cell_type = type(cell)
        if (
            _cached(cell, 0) is not None
            or cell_type.reset_dropout_mask is not DropoutRNNCell.reset_dropout_mask
        ):
            cell.reset_dropout_mask()
        if (
            _cached(cell, 1) is not None
            or cell_type.reset_recurrent_dropout_mask
            is not DropoutRNNCell.reset_recurrent_dropout_mask
        ):
            cell.reset_recurrent_dropout_mask()
    if isinstance(cell, StackedRNNCells):
        for inner in cell.cells:
            reset_dropout_masks(inner)
