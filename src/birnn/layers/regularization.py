"""Noise layers active in training only: `SpatialDropout1D`, `GaussianNoise`.

(`Dropout` itself lives with the core layers; `SpatialDropout1D` is a `Dropout`
whose mask covers whole channels.) Both pass the input mask on unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

from birnn.layers.core import Dropout
from birnn.layers.input_spec import InputSpec
from birnn.layers.layer import Layer


class SpatialDropout1D(Dropout):
    """Drops whole channels of a `(batch, steps, channels)` input in training.

    Each channel of each sample is either kept at every step (scaled by
    `1 / (1 - rate)`) or set to zero at every step: adjacent steps of a
    convolution's output are strongly correlated, so dropping single entries
    would barely regularize.

    Args:
        rate: Float between 0 and 1, the fraction of channels to drop.
        seed: Optional integer seed, for a reproducible sequence of masks.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: 3-D tensor.
        training: Whether to drop (`True`) or pass the inputs through.

    Examples:

    >>> import torch
    >>> out = SpatialDropout1D(0.5, seed=0)(torch.ones(1, 4, 6), training=True)
    >>> bool((out == out[:, :1]).all())  # the same channels are dropped at every step
    True
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(rate, noise_shape=(None, 1, None), seed=seed, **kwargs)
        self.input_spec = InputSpec(ndim=3)

    def get_config(self) -> dict:
        # Keras's own config for this layer: no `trainable`, the dtype as a name
        # (Keras's constructor takes nothing else).
        return {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": self.dtype}


class GaussianNoise(Layer):
    """Adds zero-centered Gaussian noise of standard deviation `stddev` in training.

    Args:
        stddev: Standard deviation of the noise.
        seed: Optional integer seed, for a reproducible sequence of noise.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: Tensor of any rank.
        training: Whether to add noise (`True`) or pass the inputs through.

    Examples:

    >>> import torch
    >>> layer = GaussianNoise(0.1, seed=0)
    >>> bool((layer(torch.ones(3)) == 1).all())
    True
    >>> round(float(layer(torch.zeros(20000), training=True).std()), 1)
    0.1
    """

    supports_masking = True
    # Dropout's per-device generator; it reads only `seed` and `_generators`, kept here too.
    _generator = Dropout._generator

    def __init__(self, stddev: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float)) or stddev < 0:
            raise ValueError(
                "GaussianNoise: argument `stddev` must be a non-negative number. "
                f"Received: stddev={stddev!r}"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(
                f"GaussianNoise: argument `seed` must be an integer. Received: seed={seed!r}"
            )
        self.stddev = stddev
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}
        self.built = True

    def call(self, inputs: torch.Tensor, training: bool | None = None) -> torch.Tensor:
        if not training or self.stddev == 0:
            return inputs
        noise = torch.randn(
            inputs.shape,
            generator=self._generator(inputs.device),  # type: ignore[misc]  # see _generator
            dtype=inputs.dtype,
            device=inputs.device,
        )
        return inputs + self.stddev * noise

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}
