"""A small sequence layer that is not an RNN, for wrapping in `Bidirectional`.

`RunningSum` is deliberately registered nowhere: `Bidirectional` must copy it
through its own class's `from_config` (Keras 3.15 demands registration).
"""

from __future__ import annotations

import torch

from birnn.layers import Layer


class RunningSum(Layer):
    """`h_t = decay * h_{t-1} + x_t @ kernel`, output `tanh(h_t)`.

    Masked steps keep the state and repeat the previous output (zeros before the
    first unmasked step), like an `RNN` with `zero_output_for_mask=False`, but the
    layer has no `zero_output_for_mask` attribute at all.
    """

    def __init__(
        self,
        units,
        decay=0.5,
        go_backwards=False,
        return_sequences=False,
        return_state=False,
        stateful=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = units
        self.decay = decay
        self.go_backwards = go_backwards
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.stateful = stateful
        self.supports_masking = True
        self._states = None

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        if self.stateful:
            self._states = [torch.zeros(input_shape[0], self.units)]
        self.built = True

    @property
    def states(self):
        return self._states

    def reset_states(self, states=None):
        if states is None:
            self._states = [torch.zeros_like(s) for s in self._states]
        else:
            self._states = [torch.as_tensor(s, dtype=torch.float32) for s in states]

    def call(self, inputs, initial_state=None, mask=None, training=None):
        batch, steps = inputs.shape[:2]
        if initial_state is not None:
            (h,) = initial_state
        elif self.stateful:
            (h,) = self._states
        else:
            h = inputs.new_zeros(batch, self.units)
        y = inputs.new_zeros(batch, self.units)
        order = range(steps - 1, -1, -1) if self.go_backwards else range(steps)
        outputs = []
        for t in order:
            new_h = self.decay * h + inputs[:, t] @ self.kernel
            new_y = torch.tanh(new_h)
            if mask is not None:
                keep = mask[:, t : t + 1]
                new_h = torch.where(keep, new_h, h)
                new_y = torch.where(keep, new_y, y)
            h, y = new_h, new_y
            outputs.append(y)
        if self.stateful:
            self._states = [h.detach()]
        out = torch.stack(outputs, dim=1) if self.return_sequences else y
        return (out, h) if self.return_state else out

    def compute_output_shape(self, input_shape):
        batch, steps = input_shape[0], input_shape[1]
        out = (batch, steps, self.units) if self.return_sequences else (batch, self.units)
        return (out, (batch, self.units)) if self.return_state else out

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences else None

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "decay": self.decay,
            "go_backwards": self.go_backwards,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "stateful": self.stateful,
        }


class NoGoBackwards(Layer):
    """A layer missing the attributes `Bidirectional` needs."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.return_sequences = False


class DecayCell(Layer):
    """A user-written RNN cell, registered nowhere: `h_t = tanh(x_t @ kernel + 0.5 h_{t-1})`."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.built = True

    def call(self, inputs, states):
        h = torch.tanh(inputs @ self.kernel + 0.5 * states[0])
        return h, [h]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class FrameMap(Layer):
    """A stateless sequence layer over 4D inputs `(batch, time, rows, features)`.

    Step `t` outputs `tanh(x_t @ kernel)`, shape `(batch, rows, units)`; a masked step
    repeats the previous output (zeros before the first unmasked one). With
    `return_state` the single "state" is the last output. It has no
    `zero_output_for_mask` and no `state_size`.
    """

    def __init__(
        self, units, go_backwards=False, return_sequences=False, return_state=False, **kwargs
    ):
        super().__init__(**kwargs)
        self.units = units
        self.go_backwards = go_backwards
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.supports_masking = True

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.built = True

    def call(self, inputs, initial_state=None, mask=None, training=None):
        batch, steps, rows = inputs.shape[:3]
        y = inputs.new_zeros(batch, rows, self.units)
        order = range(steps - 1, -1, -1) if self.go_backwards else range(steps)
        outputs = []
        for t in order:
            new_y = torch.tanh(inputs[:, t] @ self.kernel)
            y = new_y if mask is None else torch.where(mask[:, t, None, None], new_y, y)
            outputs.append(y)
        out = torch.stack(outputs, dim=1) if self.return_sequences else y
        return (out, y) if self.return_state else out

    def compute_output_shape(self, input_shape):
        batch, steps, rows = input_shape[:3]
        last = (batch, rows, self.units)
        out = (batch, steps, rows, self.units) if self.return_sequences else last
        return (out, last) if self.return_state else out

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "go_backwards": self.go_backwards,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
        }
