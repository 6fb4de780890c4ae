"""RMSprop updates weights of one dtype and device as flat vectors, others tensor by
tensor: either way the numbers are those of the per-tensor update rule, bit for bit."""

import copy

import pytest
import torch

from birnn import optimizers


def _per_tensor_reference(params, grads, slots, lr, rho, eps, momentum, centered):
    """Keras's RMSprop, one tensor at a time (what the optimizer computed before)."""
    for p, g, slot in zip(params, grads, slots):
        slot["velocity"].mul_(rho).addcmul_(g, g, value=1 - rho)
        if centered:
            average = slot["average_gradient"]
            average.mul_(rho).add_(g, alpha=1 - rho)
            denom = (slot["velocity"] - average * average).add_(eps)
        else:
            denom = slot["velocity"] + eps
        increment = (g * lr) / denom.sqrt_()
        if momentum > 0:
            slot["momentum"].mul_(momentum).add_(increment)
            increment = slot["momentum"]
        p.sub_(increment)


def _weights(seed, mixed):
    g = torch.Generator().manual_seed(seed)
    weights = [
        torch.randn(10, 40, generator=g),
        torch.randn(40, 10, generator=g).t(),  # not contiguous
        torch.randn(37, generator=g),  # a vector tail
        torch.randn(2, 3, 4, 5, generator=g).to(memory_format=torch.channels_last),
        torch.randn(0, 3, generator=g),  # empty
    ]
    if mixed:  # a second dtype: the per-tensor update
        weights.append(torch.randn(6, generator=g, dtype=torch.float64))
    return weights


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"momentum": 0.5}, {"centered": True}, {"momentum": 0.3, "centered": True}],
    ids=str,
)
@pytest.mark.parametrize("mixed", [False, True], ids=["one_dtype", "two_dtypes"])
def test_update_equals_the_per_tensor_rule(kwargs, mixed):
    params = [torch.nn.Parameter(w) for w in _weights(0, mixed)]
    reference = [w.clone() for w in _weights(0, mixed)]
    slots = [
        {name: torch.zeros_like(w) for name in ("velocity", "momentum", "average_gradient")}
        for w in reference
    ]
    opt = optimizers.RMSprop(learning_rate=0.01, rho=0.8, epsilon=1e-6, **kwargs)
    opt.build(params)
    for step in range(3):
        grads = [torch.randn_like(w) * (step + 1) for w in _weights(step + 1, mixed)]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        _per_tensor_reference(
            reference,
            grads,
            slots,
            0.01,
            0.8,
            1e-6,
            kwargs.get("momentum", 0.0),
            kwargs.get("centered", False),
        )
        for p, r, slot in zip(params, reference, slots):
            assert torch.equal(p.detach(), r)
            state = opt.state[p]
            for name in state:
                assert torch.equal(state[name], slot[name])


def test_weights_without_gradients_stay():
    kept, moved = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    opt = optimizers.RMSprop(learning_rate=0.1)
    opt.build([kept, moved])
    moved.grad = torch.ones(3)
    opt.step()
    assert torch.equal(kept.detach(), torch.ones(3))
    assert "velocity" not in opt.state[kept]
    assert not torch.equal(moved.detach(), torch.ones(3))


def test_a_replaced_slot_is_used():
    """A slot replaced from outside (a loaded state) is what the next step updates."""
    weights = [torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2, 2))]
    opt = optimizers.RMSprop(learning_rate=0.1)
    opt.build(weights)
    for w in weights:
        w.grad = torch.ones_like(w)
    opt.step()
    opt.state[weights[0]]["velocity"] = torch.full((3,), 4.0)
    opt.step()
    # 0.9 * 4 + 0.1 * 1: the replaced value, not the one before it.
    assert torch.allclose(opt.state[weights[0]]["velocity"], torch.full((3,), 3.7))
    assert torch.allclose(opt.state[weights[1]]["velocity"], torch.full((2, 2), 0.19))
    saved = copy.deepcopy(opt.state_dict())  # torch's loading keeps same-device tensors
    fresh_weights = [torch.nn.Parameter(w.detach().clone()) for w in weights]
    fresh = optimizers.RMSprop(learning_rate=0.1)
    fresh.build(fresh_weights)
    fresh.load_state_dict(saved)
    for w, f in zip(weights, fresh_weights):
        w.grad, f.grad = torch.ones_like(w), torch.ones_like(f)
    opt.step()
    fresh.step()
    for w, f in zip(weights, fresh_weights):
        assert torch.equal(w.detach(), f.detach())
        assert torch.equal(opt.state[w]["velocity"], fresh.state[f]["velocity"])
