"""`torch.nn.utils.rnn.PackedSequence` inputs for recurrent layers: padded input plus mask."""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence


def call_with_packed(layer: Any, call: Any, args: tuple, kwargs: dict) -> Any:
    """Calls `call(padded, *rest, mask=mask, **kwargs)` for a `PackedSequence` first argument.

    The packed batch becomes right-padded `(batch, time, ...)` input in the
    original batch order, with the mask of its lengths; outputs are padded.
    """
    packed = args[0]
    if kwargs.get("mask") is not None:
        raise ValueError(
            f"Layer '{layer.name}': a PackedSequence input carries its own mask (its "
            "lengths); do not pass `mask=` with it."
        )
    padded, lengths = pad_packed_sequence(packed, batch_first=True)
    steps = torch.arange(padded.shape[1], device=lengths.device)
    mask = (steps.unsqueeze(0) < lengths.unsqueeze(1)).to(padded.device)
    return call(padded, *args[1:], **{**kwargs, "mask": mask})


def is_packed(args: tuple) -> bool:
    """Whether the first positional argument is a `PackedSequence`."""
    return bool(args) and isinstance(args[0], PackedSequence)
