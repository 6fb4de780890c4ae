"""`Layer.has_call_hooks` sees every torch hook that a call would run, added after a
first call too (Bidirectional runs its layers fused only when they have none)."""

from __future__ import annotations

import torch
import torch.nn.modules.module as torch_module

from birnn import layers


def _dense() -> tuple[layers.Dense, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    dense = layers.Dense(3)
    x = torch.randn(2, 4)
    return dense, x, dense(x)


def test_no_hooks_is_plain() -> None:
    dense, x, y = _dense()
    assert not dense.has_call_hooks()
    torch.testing.assert_close(dense(x), y)


def test_forward_hooks_added_after_a_call_run() -> None:
    dense, x, y = _dense()
    pre = dense.register_forward_pre_hook(lambda module, args: (args[0] * 2,))
    post = dense.register_forward_hook(lambda module, args, out: out + 1)
    assert dense.has_call_hooks()
    torch.testing.assert_close(dense(x), dense.call(x * 2) + 1)
    pre.remove()
    post.remove()
    assert not dense.has_call_hooks()
    torch.testing.assert_close(dense(x), y)


def test_forward_hook_with_kwargs_and_always_call_run() -> None:
    dense, x, _ = _dense()
    seen = []
    handle = dense.register_forward_hook(
        lambda module, args, kwargs, out: seen.append(tuple(out.shape)),
        with_kwargs=True,
        always_call=True,
    )
    dense(x, training=True)
    handle.remove()
    assert seen == [(2, 3)]


def test_backward_hooks_added_after_a_call_run() -> None:
    dense, x, _ = _dense()
    grads = []
    handle = dense.register_full_backward_hook(lambda module, g_in, g_out: grads.append(g_out))
    dense(x.requires_grad_()).sum().backward()
    handle.remove()
    assert len(grads) == 1
    torch.testing.assert_close(grads[0][0], torch.ones(2, 3))


def test_global_hooks_added_after_a_call_run() -> None:
    dense, x, y = _dense()
    seen = []
    handle = torch_module.register_module_forward_hook(
        lambda module, args, out: seen.append(type(module).__name__)
    )
    try:
        assert dense.has_call_hooks()
        dense(x)
    finally:
        handle.remove()
    assert seen == ["Dense"]
    assert not dense.has_call_hooks()


def test_global_hook_sees_the_layers_a_bidirectional_wraps() -> None:
    """A global hook makes `Bidirectional` call its layers (no fused run), so it sees them."""
    bidirectional = layers.Bidirectional(layers.LSTM(3))
    x = torch.randn(2, 4, 5)
    y = bidirectional(x)
    seen = []
    handle = torch_module.register_module_forward_pre_hook(
        lambda module, args: seen.append(module)
    )
    try:
        out = bidirectional(x)
    finally:
        handle.remove()
    assert bidirectional.forward_layer in seen and bidirectional.backward_layer in seen
    torch.testing.assert_close(out, y)
