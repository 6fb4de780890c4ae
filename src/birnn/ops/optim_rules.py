"""Update rules that `torch.optim` lacks, as `torch.optim.Optimizer` classes.

Each class here is a plain torch optimizer: parameter groups carry the
hyperparameters, `self.state[param]` the per-parameter slots (named as the
optimizer's paper names them). The step count `t` (1 for the first update) is
read from `self.iterations`, which the owner advances before calling `step()`;
`birnn.optimizers` builds Keras's optimizers on top of these.
"""

from __future__ import annotations

from typing import Any

import torch


def closure_loss(closure: Any) -> Any:
    """`closure()` with gradients enabled, as a `torch.optim` step calls it; `None`
    without a closure."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class FlatSlots:
    """An element-wise optimizer's per-parameter slots as views of one flat buffer each.

    For many small weights, a step's cost is its number of operations: a
    `torch._foreach_*` update runs a few per weight. On flat buffers the same
    element-wise rule is a few operations in all, and gives the same numbers
    (each element sees the same arithmetic). The slots stay per-parameter
    tensors in the optimizer's state, as views of the buffers; `matches` tells
    whether they still are (a loaded state, or new parameters, replace them).

    Args:
        params: Parameters of one dtype and device.
        states: Their optimizer states (dicts), whose `names` slots become views.
        names: The slots to keep flat.

    Examples:

    >>> import torch
    >>> params = [torch.ones(2, 2), torch.ones(3)]
    >>> states = [{"v": torch.zeros(2, 2)}, {"v": torch.full((3,), 2.0)}]
    >>> flat = FlatSlots(params, states, ["v"])
    >>> flat.buffers["v"]
    tensor([0., 0., 0., 0., 2., 2., 2.])
    >>> flat.buffers["v"].add_(1)[4:]
    tensor([3., 3., 3.])
    >>> states[1]["v"], flat.matches(params, states)
    (tensor([3., 3., 3.]), True)
    """

    def __init__(self, params: list[torch.Tensor], states: list[dict], names: list[str]) -> None:
        self.params = list(params)
        self.names = list(names)
        total = sum(p.numel() for p in params)
        like = params[0]
        self.buffers: dict[str, torch.Tensor] = {}
        self.views: dict[str, list[torch.Tensor]] = {}
        for name in names:
            buffer = torch.cat([s[name].reshape(-1) for s in states])
            self.buffers[name] = buffer
            self.views[name] = self._parts(buffer)
            for state, view in zip(states, self.views[name]):
                state[name] = view
        self.grads = torch.empty(total, dtype=like.dtype, device=like.device)
        self._grad_views = self._parts(self.grads)
        self.increment = torch.empty_like(self.grads)
        self._increment_views = self._parts(self.increment)

    def _parts(self, buffer: torch.Tensor) -> list[torch.Tensor]:
        sizes = [p.numel() for p in self.params]
        return [part.view(p.shape) for part, p in zip(buffer.split(sizes), self.params)]

    def matches(self, params: list[torch.Tensor], states: list[dict]) -> bool:
        """Whether these are the parameters, and their slots still the views, of this one."""
        if len(params) != len(self.params) or any(a is not b for a, b in zip(params, self.params)):
            return False
        return all(
            state.get(name) is view
            for name in self.names
            for state, view in zip(states, self.views[name])
        )

    def gather_grads(self) -> torch.Tensor:
        """The parameters' gradients (each one must have one), copied into the flat `grads`."""
        grads = [p.grad for p in self.params if p.grad is not None]
        torch._foreach_copy_(self._grad_views, grads)
        return self.grads

    def subtract_increment(self) -> None:
        """Subtracts the flat `increment` from the parameters."""
        torch._foreach_sub_(self.params, self._increment_views)


class _Rule(torch.optim.Optimizer):
    """Shared step plumbing: the closure, the parameters with gradients, fresh slots."""

    iterations = 0

    def _new_slots(self, group: dict, param: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _update(self, group: dict, param: torch.Tensor, state: dict, t: int) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = closure_loss(closure)
        t = max(int(self.iterations), 1)
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state.update(self._new_slots(group, param))
                self._update(group, param, state, t)
        return loss


class LionRule(_Rule):
    """Lion: `w -= lr * sign(b1 * m + (1 - b1) * g)`, then `m = b2 * m + (1 - b2) * g`."""

    def __init__(self, params, lr=1e-3, beta_1=0.9, beta_2=0.99):
        super().__init__(params, {"lr": lr, "beta_1": beta_1, "beta_2": beta_2})

    def _new_slots(self, group, param):
        return {"momentum": torch.zeros_like(param)}

    def _update(self, group, param, state, t):
        grad, m = param.grad, state["momentum"]
        direction = torch.lerp(m, grad, 1 - group["beta_1"]).sign_()
        param.add_(direction, alpha=-group["lr"])
        m.lerp_(grad, 1 - group["beta_2"])


class LambRule(_Rule):
    """LAMB: Adam's bias-corrected direction, rescaled per tensor by `||w|| / ||direction||`."""

    def __init__(self, params, lr=1e-3, beta_1=0.9, beta_2=0.999, eps=1e-7):
        super().__init__(params, {"lr": lr, "beta_1": beta_1, "beta_2": beta_2, "eps": eps})

    def _new_slots(self, group, param):
        return {"momentum": torch.zeros_like(param), "velocity": torch.zeros_like(param)}

    def _update(self, group, param, state, t):
        grad, beta_1, beta_2 = param.grad, group["beta_1"], group["beta_2"]
        m, v = state["momentum"], state["velocity"]
        m.lerp_(grad, 1 - beta_1)
        v.mul_(beta_2).addcmul_(grad, grad, value=1 - beta_2)
        m_hat = m / (1 - beta_1**t)
        v_hat = v / (1 - beta_2**t)
        direction = m_hat / (v_hat.sqrt() + group["eps"])
        w_norm = torch.linalg.vector_norm(param)
        d_norm = torch.linalg.vector_norm(direction)
        trust = torch.where((w_norm > 0) & (d_norm > 0), w_norm / d_norm, torch.ones_like(w_norm))
        param.sub_(direction * (group["lr"] * trust))


class FtrlRule(_Rule):
    """FTRL-Proximal (McMahan et al., 2013) with L1, L2 and L2-shrinkage regularization.

    Per element, with `n` the accumulated squared gradients, `z` the linear term
    and `p = -lr_power`:
    `n' = n + g^2`, `z += g_s - (n'^p - n^p) / lr * w` (`g_s = g + 2 * l2_shrinkage * w`),
    `w = (sign(z) * l1 - z) / ((beta + n'^p) / lr + 2 * l2)` where `|z| > l1`, else 0.
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        lr_power=-0.5,
        initial_accumulator_value=0.1,
        l1=0.0,
        l2=0.0,
        l2_shrinkage=0.0,
        beta=0.0,
    ):
        defaults = {
            "lr": lr,
            "lr_power": lr_power,
            "initial_accumulator_value": initial_accumulator_value,
            "l1": l1,
            "l2": l2,
            "l2_shrinkage": l2_shrinkage,
            "beta": beta,
        }
        super().__init__(params, defaults)

    def _new_slots(self, group, param):
        return {
            "accumulator": torch.full_like(param, group["initial_accumulator_value"]),
            "linear": torch.zeros_like(param),
        }

    def _update(self, group, param, state, t):
        lr, power = group["lr"], -group["lr_power"]
        grad = param.grad
        shrunk = grad + 2 * group["l2_shrinkage"] * param if group["l2_shrinkage"] else grad
        n, z = state["accumulator"], state["linear"]
        new_n = n + grad * grad
        sigma = (new_n.pow(power) - n.pow(power)) / lr
        z.add_(shrunk - sigma * param)
        quadratic = (group["beta"] + new_n.pow(power)) / lr + 2 * group["l2"]
        l1 = group["l1"]
        value = (torch.sign(z) * l1 - z) / quadratic
        param.copy_(torch.where(z.abs() > l1, value, torch.zeros_like(value)))
        n.copy_(new_n)


class AdafactorRule(_Rule):
    """Adafactor (Shazeer & Stern, 2018): second moments factored into row and column means.

    For tensors of rank >= 2 the squared gradient's running means over the last
    axis (`row`) and the one before it (`column`) stand in for the full second
    moment; `velocity` holds their rank-1 reconstruction. Lower ranks keep a
    full running mean in `velocity`.
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        beta_2_decay=-0.8,
        epsilon_1=1e-30,
        epsilon_2=1e-3,
        clip_threshold=1.0,
        relative_step=True,
    ):
        defaults = {
            "lr": lr,
            "beta_2_decay": beta_2_decay,
            "epsilon_1": epsilon_1,
            "epsilon_2": epsilon_2,
            "clip_threshold": clip_threshold,
            "relative_step": relative_step,
        }
        super().__init__(params, defaults)

    @staticmethod
    def factored_shapes(shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Shapes of the row and column statistics of a tensor (scalars below rank 2)."""
        if len(shape) < 2:
            return (), ()
        return tuple(shape[:-1]), (*shape[:-2], shape[-1])

    def _new_slots(self, group, param):
        row, column = self.factored_shapes(tuple(param.shape))
        return {
            "row": param.new_zeros(row),
            "column": param.new_zeros(column),
            "velocity": torch.zeros_like(param),
        }

    @staticmethod
    def _rms(x: torch.Tensor) -> torch.Tensor:
        return x.square().mean().sqrt()

    def _update(self, group, param, state, t):
        grad = param.grad
        rho = min(group["lr"], 1 / t**0.5) if group["relative_step"] else group["lr"]
        alpha = torch.clamp(self._rms(param), min=group["epsilon_2"]) * rho
        beta_2 = 1 - t ** group["beta_2_decay"]
        squared = grad * grad + group["epsilon_1"]
        v = state["velocity"]
        if param.dim() >= 2:
            r, c = state["row"], state["column"]
            r.lerp_(squared.mean(dim=-1), 1 - beta_2)
            c.lerp_(squared.mean(dim=-2), 1 - beta_2)
            mean_r = r.mean(dim=-1, keepdim=True).unsqueeze(-1)
            v.copy_(r.unsqueeze(-1) * c.unsqueeze(-2) / mean_r)
        else:
            v.lerp_(squared, 1 - beta_2)
        u = grad / v.sqrt()
        u = u / torch.clamp(self._rms(u) / group["clip_threshold"], min=1.0)
        param.sub_(alpha * u)


def newton_schulz(
    x: torch.Tensor, steps: int, a: float, b: float, c: float, eps: float = 1e-7
) -> torch.Tensor:
    """An approximate orthogonalization of the matrix `x` (its `U V^T`, singular values ~1).

    `x` is scaled to a Frobenius norm of at most 1, then `steps` quintic
    iterations `X = a X + (b A + c A^2) X`, `A = X X^T`, push its singular values
    towards 1. A tall matrix is iterated in its transpose, so `A` is the smaller
    Gram matrix.
    """
    x = x / (torch.linalg.matrix_norm(x) + eps)
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = x.mT
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * (gram @ gram)) @ x
    return x.mT if tall else x


class MuonRule(_Rule):
    """Muon (momentum orthogonalized by Newton-Schulz), with AdamW for the other weights.

    Each group's `use_adamw` lists, per parameter, which rule updates it.
    Muon: `m = momentum * m + g`, the direction `g + momentum * m` (Nesterov) or
    `m`, orthogonalized by `newton_schulz`, scaled by `sqrt(max(rows, columns)) *
    rms_rate` (unless `rms_rate` is None), then `w -= lr * direction` after the
    decay `w -= lr * weight_decay * w`. AdamW: the decay `w -= lr *
    adam_weight_decay * w`, then Adam's step at `lr * adam_lr_ratio`.
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        use_adamw=(),
        momentum=0.95,
        nesterov=True,
        ns_steps=5,
        muon_a=3.4445,
        muon_b=-4.775,
        muon_c=2.0315,
        rms_rate=0.2,
        weight_decay=0.0,
        adam_beta_1=0.9,
        adam_beta_2=0.999,
        epsilon=1e-7,
        adam_lr_ratio=1.0,
        adam_weight_decay=0.0,
    ):
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "nesterov": nesterov,
            "ns_steps": ns_steps,
            "muon_a": muon_a,
            "muon_b": muon_b,
            "muon_c": muon_c,
            "rms_rate": rms_rate,
            "weight_decay": weight_decay,
            "adam_beta_1": adam_beta_1,
            "adam_beta_2": adam_beta_2,
            "epsilon": epsilon,
            "adam_lr_ratio": adam_lr_ratio,
            "adam_weight_decay": adam_weight_decay,
        }
        super().__init__(params, defaults)
        flags = list(use_adamw)
        for group in self.param_groups:
            count = len(group["params"])
            group["use_adamw"], flags = flags[:count], flags[count:]
            if len(group["use_adamw"]) != count:
                raise ValueError("MuonRule: `use_adamw` needs one flag per parameter.")

    def _flag(self, group: dict, param: torch.Tensor) -> bool:
        return next(f for p, f in zip(group["params"], group["use_adamw"]) if p is param)

    def _new_slots(self, group, param):
        slots = {"momentum": torch.zeros_like(param)}
        if self._flag(group, param):
            slots["velocity"] = torch.zeros_like(param)
        return slots

    def _update(self, group, param, state, t):
        if "velocity" in state:
            self._adamw(group, param, state, t)
        else:
            self._muon(group, param, state)

    @staticmethod
    def _muon(group: dict, param: torch.Tensor, state: dict) -> None:
        lr, beta = group["lr"], group["momentum"]
        if group["weight_decay"]:
            param.mul_(1 - lr * group["weight_decay"])
        m = state["momentum"]
        m.mul_(beta).add_(param.grad)
        direction = param.grad + beta * m if group["nesterov"] else m
        direction = newton_schulz(
            direction, group["ns_steps"], group["muon_a"], group["muon_b"], group["muon_c"]
        )
        if group["rms_rate"] is not None:
            direction = direction * (max(param.shape[-2:]) ** 0.5 * group["rms_rate"])
        param.sub_(direction, alpha=lr)

    @staticmethod
    def _adamw(group: dict, param: torch.Tensor, state: dict, t: int) -> None:
        lr, beta_1, beta_2 = group["lr"], group["adam_beta_1"], group["adam_beta_2"]
        if group["adam_weight_decay"]:
            param.mul_(1 - lr * group["adam_weight_decay"])
        grad, m, v = param.grad, state["momentum"], state["velocity"]
        m.lerp_(grad, 1 - beta_1)
        v.mul_(beta_2).addcmul_(grad, grad, value=1 - beta_2)
        alpha = lr * group["adam_lr_ratio"] * (1 - beta_2**t) ** 0.5 / (1 - beta_1**t)
        param.addcdiv_(m, v.sqrt().add_(group["epsilon"]), value=-alpha)


class ScheduleFreeAdamWRule(_Rule):
    """Schedule-free AdamW (Defazio et al., 2024) in the form Keras 3.15 computes.

    Adam's normalized step `g / (sqrt(v / (1 - beta_2^t)) + eps)` moves the
    `momentum` sequence `z` (which starts at the weight's value), at a learning
    rate warmed up linearly over `warmup_steps`; the weight itself is the
    running average of `z`: `w = w + (z - w) / t`.
    """

    def __init__(self, params, lr=0.0025, beta_2=0.999, eps=1e-8, warmup_steps=0):
        defaults = {"lr": lr, "beta_2": beta_2, "eps": eps, "warmup_steps": warmup_steps}
        super().__init__(params, defaults)

    def _new_slots(self, group, param):
        return {"momentum": param.detach().clone(), "velocity": torch.zeros_like(param)}

    def _update(self, group, param, state, t):
        beta_2, warmup = group["beta_2"], group["warmup_steps"]
        lr = group["lr"] * (min(1.0, t / warmup) if warmup > 0 else 1.0)
        grad, z, v = param.grad, state["momentum"], state["velocity"]
        v.mul_(beta_2).addcmul_(grad, grad, value=1 - beta_2)
        denom = (v / (1 - beta_2**t)).sqrt_().add_(group["eps"])
        z.addcdiv_(grad, denom, value=-lr)
        param.lerp_(z, 1.0 / t)
