"""What a cell may offer besides its one-step `call`: a whole-sequence form, a fused kernel.

`RNN` steps a cell's `call` over the time axis unless the cell offers
`call_sequence`, which computes the same thing over the whole sequence at once
(one input projection, then a tight loop). The built-in LSTM and GRU cells also
name, in `fused_kernel`, the `birnn.ops.fused_rnn` kernel that computes their
`call` for the standard activations. Both hold only while `call` is the
library's own: `SequenceCell` drops them, in one place, from any subclass that
overrides `call` (or `call_sequence`), so a user's cell always runs its own step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

Triple = tuple[torch.Tensor, torch.Tensor, list]
SequenceFn = Callable[[torch.Tensor, list, "torch.Tensor | None", bool, bool, Any], Triple]


class SequenceCell:
    """Mixin of the cells that can run a whole sequence (not public).

    A class using it defines `call_sequence(inputs, states, mask,
    go_backwards, return_all_outputs, training) -> (last_output, outputs,
    states)` with `birnn.ops.recurrent`'s conventions, and may set
    `fused_kernel` (`"lstm"` or `"gru"`).

    A subclass that overrides `call` gets `call_sequence = None` unless it
    defines `call_sequence` too; one that overrides `call` or `call_sequence`
    gets `fused_kernel = None` unless it sets `fused_kernel` itself.
    """

    fused_kernel: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if "call" in own and "call_sequence" not in own:
            # The inherited sequence form computes the parent's step, not this one.
            cls.call_sequence = None  # type: ignore[attr-defined]
        if ("call" in own or "call_sequence" in own) and "fused_kernel" not in own:
            cls.fused_kernel = None
