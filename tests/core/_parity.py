"""Parity checks of one birnn layer against the same Keras layer."""

from __future__ import annotations

import numpy as np
import torch

from tests.keras_oracle import assert_close, copy_weights, to_numpy


def _with_mask(x: torch.Tensor, mask):
    """A copy of `x` carrying `mask` as Keras's `_keras_mask` (how masks travel)."""
    if mask is None:
        return x
    y = x * 1 if x.is_floating_point() else x.clone()
    y._keras_mask = torch.as_tensor(mask, dtype=torch.bool)
    return y


def _as_inputs(x, requires_grad):
    def one(a):
        t = torch.tensor(np.asarray(a))
        if requires_grad and t.is_floating_point():
            t.requires_grad_(True)
        return t

    return [one(a) for a in x] if isinstance(x, list) else one(x)


def _attach(inputs, mask):
    if isinstance(inputs, list):
        masks = mask if mask is not None else [None] * len(inputs)
        return [_with_mask(x, m) for x, m in zip(inputs, masks)]
    return _with_mask(inputs, mask)


def _leaves(inputs):
    return inputs if isinstance(inputs, list) else [inputs]


def _strip(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in ("name", "build_config")}


def check_layer_parity(
    ours,
    theirs,
    x,
    mask=None,
    training=None,
    atol: float = 1e-5,
    grad_atol: float = 1e-4,
    check_config: bool = True,
    grads: bool = True,
):
    """Same weights -> same outputs, masks, gradients, output shapes and configs.

    Returns our output for further checks.
    """
    kwargs = {} if training is None else {"training": training}
    k_in = _as_inputs(x, grads)
    o_in = _as_inputs(x, grads)
    k_out = theirs(_attach(k_in, mask), **kwargs)
    ours(_attach(_as_inputs(x, False), mask), **kwargs)  # build
    if theirs.get_weights():
        copy_weights(theirs, ours)
    o_out = ours(_attach(o_in, mask), **kwargs)
    assert isinstance(o_out, torch.Tensor)
    assert_close(o_out, k_out, atol, "outputs")

    k_mask = getattr(k_out, "_keras_mask", None)
    o_mask = getattr(o_out, "_keras_mask", None)
    assert (k_mask is None) == (o_mask is None), f"masks: keras {k_mask}, ours {o_mask}"
    if k_mask is not None:
        np.testing.assert_array_equal(to_numpy(o_mask), to_numpy(k_mask))

    if grads and o_out.requires_grad:
        cotangent = torch.randn(o_out.shape, generator=torch.Generator().manual_seed(1))
        (k_out * cotangent).sum().backward()
        (o_out * cotangent).sum().backward()
        for a, b in zip(_leaves(o_in), _leaves(k_in)):
            if b.grad is not None:
                assert_close(a.grad, b.grad, grad_atol, "input gradient")
        for w_ours, w_theirs in zip(ours.trainable_weights, theirs.trainable_weights):
            assert_close(w_ours.grad, w_theirs.value.grad, grad_atol, "weight gradient")

    shapes = [tuple(a.shape) for a in x] if isinstance(x, list) else tuple(np.shape(x))
    unknown = [(None, *s[1:]) for s in shapes] if isinstance(shapes, list) else (None, *shapes[1:])
    for shape in (shapes, unknown):
        assert tuple(ours.compute_output_shape(shape)) == tuple(theirs.compute_output_shape(shape))
    assert tuple(ours.compute_output_shape(shapes)) == tuple(o_out.shape)

    if check_config:
        assert _strip(ours.get_config()) == _strip(theirs.get_config())
        clone = type(ours).from_config(ours.get_config())
        assert clone.get_config() == ours.get_config()
        # Keras reads our config, and we read Keras's.
        assert _strip(type(theirs).from_config(ours.get_config()).get_config()) == _strip(
            theirs.get_config()
        )
        assert _strip(type(ours).from_config(theirs.get_config()).get_config()) == _strip(
            ours.get_config()
        )
    return o_out
