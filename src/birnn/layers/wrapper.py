"""`Wrapper`: the base of layers that wrap another layer (`TimeDistributed`)."""

from __future__ import annotations

from typing import Any

from birnn.layers.layer import Layer
from birnn.layers.serialization import deserialize_layer, serialize_layer


class Wrapper(Layer):
    """Abstract base of layers that take another layer and augment it.

    Subclasses implement `call` (and usually `compute_output_shape`); the wrapped
    layer's weights are the wrapper's weights, and its config is saved under
    `"layer"`. As in Keras 3, `TimeDistributed` is a `Wrapper` and `Bidirectional`
    is not.

    Args:
        layer: The `Layer` instance to wrap.
        **kwargs: Base layer arguments.

    Examples:

    >>> import torch
    >>> from birnn.layers import Dense
    >>> class Doubled(Wrapper):
    ...     def call(self, inputs):
    ...         return 2 * self.layer(inputs)
    >>> layer = Doubled(Dense(3))
    >>> layer(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
    >>> type(Doubled.from_config(layer.get_config()).layer).__name__
    'Dense'
    """

    def __init__(self, layer: Layer, **kwargs: Any) -> None:
        if not isinstance(layer, Layer):
            raise ValueError(
                f"{type(self).__name__}: argument `layer` must be a `birnn.layers.Layer` "
                f"instance. Received: layer={layer!r}"
            )
        super().__init__(**kwargs)
        self.layer = layer

    def _build_wrapped(self, input_shape: Any) -> None:
        """Builds the wrapped layer for `input_shape`, on this layer's build device."""
        self.layer.build_on_device(input_shape, self._build_device)

    def build(self, input_shape: Any) -> None:
        self._build_wrapped(input_shape)
        self.built = True

    def get_config(self) -> dict:
        return {**super().get_config(), "layer": serialize_layer(self.layer)}

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> Wrapper:
        config = dict(config)
        layer = deserialize_layer(config.pop("layer"), custom_objects=custom_objects)
        return cls(layer, **config)
