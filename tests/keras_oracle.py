"""Helpers for parity tests against Keras 3 (torch backend), the oracle."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
import torch


def to_numpy(x) -> np.ndarray:
    """Any tensor-like (torch, Keras, NumPy) as a NumPy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(keras.ops.convert_to_numpy(x))


def copy_weights(source, target) -> None:
    """Sets `target`'s weights to `source`'s (either side may be Keras or birnn)."""
    target.set_weights([to_numpy(w) for w in source.get_weights()])


def assert_close(actual, expected, atol: float = 1e-5, what: str = "") -> None:
    """Element-wise comparison of (nested lists of) tensors with a readable failure."""
    if isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)), f"{what}: expected a sequence"
        assert len(actual) == len(expected), f"{what}: {len(actual)} != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_close(a, e, atol, f"{what}[{i}]")
        return
    np.testing.assert_allclose(
        to_numpy(actual), to_numpy(expected), atol=atol, rtol=0, err_msg=what
    )
