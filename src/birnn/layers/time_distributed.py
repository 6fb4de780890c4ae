"""`TimeDistributed`: applies a layer to every temporal slice of its input."""

from __future__ import annotations

from typing import Any

import torch

from birnn import tree
from birnn.layers.wrapper import Wrapper


class TimeDistributed(Wrapper):
    """Applies `layer` independently to every timestep of a `(batch, time, ...)` input.

    The wrapped layer sees inputs of shape `(batch, ...)` and has one set of
    weights shared by all timesteps; its weights are this layer's weights. All
    timesteps are computed in one call of the wrapped layer (batch and time axes
    merged), which gives the same result as Keras's per-step loop, faster.

    Args:
        layer: A `Layer` instance.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: Tensor of shape `(batch, time, ...)`.
        training: Passed on to the wrapped layer.
        mask: Optional boolean tensor `(batch, time, ...)`; its slices are passed
            to the wrapped layer when its `call` takes a mask. The mask of the
            output is the input mask.

    Examples:

    >>> import torch
    >>> from birnn.layers import Dense
    >>> layer = TimeDistributed(Dense(4))
    >>> layer(torch.zeros(2, 10, 3)).shape
    torch.Size([2, 10, 4])
    >>> [w.shape for w in layer.get_weights()]
    [(3, 4), (4,)]
    """

    supports_masking = True

    def _child_input_shape(self, input_shape: Any) -> tuple:
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 3:
            raise ValueError(
                f"Layer '{self.name}' (TimeDistributed) expects inputs with at least 3 "
                f"dimensions (batch, time, ...). Received: input_shape={input_shape}"
            )
        return (input_shape[0], *tuple(input_shape)[2:])

    def build(self, input_shape: Any) -> None:
        self._build_wrapped(self._child_input_shape(input_shape))
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> tuple:
        child_out = self.layer.compute_output_shape(self._child_input_shape(input_shape))
        return (child_out[0], input_shape[1], *tuple(child_out)[1:])

    def _check_mask(self, inputs: torch.Tensor, mask: torch.Tensor) -> None:
        if mask.ndim < 2:
            raise ValueError(
                f"Layer '{self.name}' (TimeDistributed): the mask must be at least 2D "
                f"(batch, time). Received a mask of shape {tuple(mask.shape)}."
            )
        if tuple(mask.shape[:2]) != tuple(inputs.shape[:2]):
            raise ValueError(
                f"Layer '{self.name}' (TimeDistributed): the `mask` has a shape "
                f"{tuple(mask.shape)} that is incompatible with the input shape "
                f"{tuple(inputs.shape)}; the first two dimensions of the mask (batch size "
                "and timesteps) must match the input's first two dimensions."
            )

    def call(
        self, inputs: torch.Tensor, training: bool | None = None, mask: Any = None
    ) -> torch.Tensor:
        self._child_input_shape(tuple(inputs.shape))
        batch, steps = inputs.shape[0], inputs.shape[1]
        kwargs: dict[str, Any] = {"training": training}
        if mask is not None:
            self._check_mask(inputs, mask)
            kwargs["mask"] = mask.reshape(batch * steps, *mask.shape[2:])
        flat = inputs.reshape(batch * steps, *inputs.shape[2:])
        outputs = self.layer(flat, **kwargs)
        compute = self.dtype_torch  # the wrapped layer's own policy may differ, as in Keras

        def unflatten(y: torch.Tensor) -> torch.Tensor:
            y = y.reshape(batch, steps, *y.shape[1:])
            if y.is_floating_point() and compute.is_floating_point and y.dtype != compute:
                y = y.to(compute)
            return y

        return tree.map_structure(unflatten, outputs)
