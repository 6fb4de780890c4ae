"""Keras's optimizers as `torch.optim` optimizers, with Keras's names and defaults.

`Adam(learning_rate=1e-3)` is created without parameters, like a Keras optimizer;
`model.compile()` (or `optimizer.build(params)`) binds it, after which it *is* a
`torch.optim.Adam` (an instance of it: `torch.optim.lr_scheduler` works on it).
Hyperparameters are Keras's: `epsilon=1e-7`, Keras's argument names and
defaults (AdamW's `weight_decay=0.004`, Adadelta's `learning_rate=0.001`...).
`weight_decay` on other optimizers is Keras's decoupled decay
(`w -= lr * weight_decay * w` before the update), and `clipnorm`, `clipvalue`,
`global_clipnorm` clip gradients as Keras does.

Numerics: SGD, Adagrad, AdamW match Keras exactly; Adam/Adamax/Nadam place
epsilon slightly differently from Keras (a difference only for gradients near
1e-7). Keras's RMSprop puts epsilon *inside* the square root
(`lr * g / sqrt(v + eps)`); `torch.optim.RMSprop` puts it outside, so `RMSprop`
here is its own `torch.optim.Optimizer` with Keras's formula. Lion, Lamb, Ftrl,
Adafactor, Muon and ScheduleFreeAdamW, which `torch.optim` lacks, run update rules from
`birnn.ops.optim_rules` and match Keras to float32 rounding. Muon chooses its
rule per weight from the weight's name, so `build()` also takes
`(name, tensor)` pairs or a whole model (see `Optimizer.build`). (`get("lamb")`
works here; Keras's `optimizers.get` does not know that name, though its files
that use Lamb load in both.)

`MultiOptimizer` updates each weight with the sub-optimizer an `OptimizerMap`
(weight paths or regular expressions to optimizers) or a callable picks for it.

Any `torch.optim.Optimizer` instance may be passed to `compile()` instead.

Examples:

>>> import torch
>>> opt = get("rmsprop")
>>> opt.learning_rate, opt.rho, opt.epsilon
(0.001, 0.9, 1e-07)
>>> w = torch.nn.Parameter(torch.ones(2))
>>> opt.build([w])
>>> isinstance(opt, torch.optim.Optimizer)
True
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

import numpy as np
import torch
from torch.autograd import profiler as torch_profiler
from torch.optim import optimizer as torch_optimizer

from birnn import backend, schedules
from birnn.losses import KerasRegistry
from birnn.ops import optim_rules

_BASE_DEFAULTS = {
    "weight_decay": None,
    "clipnorm": None,
    "global_clipnorm": None,
    "clipvalue": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}


def _named_trainables(owner: str, var_list: Any) -> tuple[list[torch.Tensor], list[str] | None]:
    """The trainable parameters of `var_list` and their names (None when unnamed).

    See `Optimizer.build` for what `var_list` may be.
    """
    items: list[Any]
    if isinstance(var_list, torch.nn.Module):
        layer: Any = var_list
        weight_paths = getattr(layer, "weight_paths", None)
        if callable(weight_paths):  # a birnn layer: its weights' Keras paths
            paths = dict(zip(map(id, layer.weights), weight_paths()))
            items = [(paths[id(w)], w) for w in layer.trainable_weights]
        else:
            items = list(var_list.named_parameters())
    else:
        items = list(var_list)
    named = [isinstance(item, tuple) for item in items]
    if any(named) and not all(named):
        raise TypeError(
            f"Optimizer '{owner}': give either tensors or `(name, tensor)` pairs to "
            "build(), not both."
        )
    for item in items:
        pair_ok = isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
        if not (pair_ok and isinstance(item[1], torch.Tensor)) and not isinstance(
            item, torch.Tensor
        ):
            raise TypeError(
                f"Optimizer '{owner}': build() expects tensors or `(name, tensor)` pairs. "
                f"Received: {item!r}"
            )
    if items and all(named):
        kept = [(name, param) for name, param in items if param.requires_grad]
        return [param for _, param in kept], [name for name, _ in kept]
    return [param for param in items if param.requires_grad], None


class _LearningRate(float):
    """A learning rate read from an optimizer: a float with Keras's variable methods."""

    _optimizer: Optimizer

    def __new__(cls, value: float, optimizer: Optimizer) -> _LearningRate:
        return super().__new__(cls, value)

    def __init__(self, value: float, optimizer: Optimizer) -> None:
        self._optimizer = optimizer

    def assign(self, value: float) -> None:
        """Sets the optimizer's learning rate, as `keras.Variable.assign` does."""
        self._optimizer.learning_rate = float(value)

    def numpy(self) -> np.ndarray:
        return np.asarray(float(self), dtype="float32")


def _without_step_hooks(step: Callable[..., Any]) -> Callable[..., Any]:
    """The function inside torch's step-hook wrapper of an optimizer class's `step`
    (what torch puts on the class when it makes the first instance), else `step`."""
    return step.__wrapped__ if getattr(step, "hooked", False) else step  # type: ignore[attr-defined]


class Optimizer(torch.optim.Optimizer):
    """Base of birnn's optimizers: Keras's constructor, deferred `torch.optim` binding.

    Subclasses name the `torch.optim` class they become (`_torch_class`), map
    Keras hyperparameters to torch's (`_torch_kwargs`), and list their
    per-variable slots in Keras's order (`_slots`: Keras slot name, torch state
    key) for `.keras` files.

    Args:
        learning_rate: The learning rate.
        weight_decay: Optional decoupled weight decay (Keras semantics).
        clipnorm: Clip each gradient to this L2 norm.
        clipvalue: Clip each gradient element to `[-clipvalue, clipvalue]`.
        global_clipnorm: Clip all gradients to this global L2 norm.
        name: Name of the optimizer.
    """

    _torch_class: type[torch.optim.Optimizer] = torch.optim.Optimizer
    _slots: tuple[tuple[str, str], ...] = ()
    _interleaved = True
    _keras_decay = True  # apply Keras's decoupled weight decay ourselves

    def __init__(self, learning_rate: float = 0.001, name: str | None = None, **kwargs: Any):
        unknown = set(kwargs) - set(_BASE_DEFAULTS)
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: unknown arguments {sorted(unknown)}. Keras optimizers "
                f"accept learning_rate, name and {sorted(_BASE_DEFAULTS)}."
            )
        options = {**_BASE_DEFAULTS, **kwargs}
        if options["use_ema"] or options["gradient_accumulation_steps"]:
            raise ValueError(
                f"{type(self).__name__}: `use_ema` and `gradient_accumulation_steps` are not "
                "supported by birnn."
            )
        clip = [k for k in ("clipnorm", "clipvalue", "global_clipnorm") if options[k] is not None]
        if len(clip) > 1:
            raise ValueError(
                f"{type(self).__name__}: only one of `clipnorm`, `clipvalue` and "
                f"`global_clipnorm` can be set. Received: {clip}"
            )
        self._schedule = None
        if isinstance(learning_rate, schedules.LearningRateSchedule):
            self._schedule, learning_rate = learning_rate, learning_rate(0)
        if (
            isinstance(learning_rate, bool)
            or not isinstance(learning_rate, (int, float))
            or learning_rate < 0
        ):
            raise ValueError(
                f"{type(self).__name__}: argument `learning_rate` must be a non-negative "
                f"float or a `LearningRateSchedule`. Received: {learning_rate!r}"
            )
        self._options = options
        self._learning_rate = float(learning_rate)
        self.weight_decay = options["weight_decay"]
        self.clipnorm = options["clipnorm"]
        self.clipvalue = options["clipvalue"]
        self.global_clipnorm = options["global_clipnorm"]
        self.name = name or backend.unique_name(backend.to_snake_case(type(self).__name__))
        self.iterations = 0
        self.built = False
        self._pending_state: dict | None = None

    # ------------------------------------------------------------------ binding
    def _torch_kwargs(self) -> dict:
        return {"lr": self._learning_rate}

    def build(self, var_list: Any) -> None:
        """Binds the optimizer to the parameters it updates (once).

        Args:
            var_list: The parameters: tensors, `(name, tensor)` pairs (what
                `module.named_parameters()` yields; the names land in each
                parameter group's `"param_names"`, as in `torch.optim`), or a
                module. A birnn layer or model gives its trainable weights named
                by their Keras paths (`"model/lstm/lstm_cell/kernel"`), which is
                what `compile()` passes; another `torch.nn.Module` its
                `named_parameters()`. Only parameters with `requires_grad` are kept.
        """
        if self.built:
            return
        params, names = _named_trainables(self.name, var_list)
        if not params:
            raise ValueError(
                f"Optimizer '{self.name}' was given no trainable parameters to optimize."
            )
        self._bind(params, names)
        self.built = True
        if self._pending_state is not None:
            state, self._pending_state = self._pending_state, None
            self.load_own_variables(state)

    def _bind(self, params: list[torch.Tensor], names: list[str] | None) -> None:
        """Initialises the `torch.optim` class over `params` (named when `names` is given)."""
        bound: list = params if names is None else list(zip(names, params))
        self._torch_class.__init__(self, bound, **self._torch_kwargs())

    def _param_names(self) -> list[str] | None:
        """The names the parameters were built with (in `_params()` order), or None."""
        if not all("param_names" in group for group in self.param_groups):
            return None
        return [name for group in self.param_groups for name in group["param_names"]]

    def _check_built(self) -> None:
        if not self.built:
            raise RuntimeError(
                f"Optimizer '{self.name}' is not bound to any parameters yet: compile a "
                "model with it, or call `optimizer.build(model.trainable_weights)`."
            )

    @property
    def learning_rate(self) -> float:
        """The current learning rate (writable, also by Keras's `.assign(value)`; updates
        every parameter group). With a schedule, the schedule's rate at this step."""
        if self._schedule is not None:
            value = self._schedule(self.iterations)
        elif self.built:
            value = self.param_groups[0]["lr"]
        else:
            value = self._learning_rate
        return _LearningRate(value, self)

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if self._schedule is not None:
            raise TypeError(
                f"Optimizer '{self.name}' was created with a `LearningRateSchedule` as its "
                "`learning_rate`, hence its learning rate is not settable."
            )
        self._learning_rate = float(value)
        if self.built:
            for group in self.param_groups:
                group["lr"] = float(value)

    @property
    def variables(self) -> list:
        store: dict = {}
        self.save_own_variables(store)
        return list(store.values())

    # ------------------------------------------------------------------ step
    def _params_with_grad(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"] if p.grad is not None]

    def _preprocess(self) -> None:
        params = None
        if self.clipnorm is not None or self.clipvalue is not None or self.global_clipnorm:
            params = self._params_with_grad()
            grads = [p.grad for p in params if p.grad is not None]
            if self.global_clipnorm is not None:
                torch.nn.utils.clip_grad_norm_(params, self.global_clipnorm)
            elif self.clipnorm is not None:
                for g in grads:
                    norm = torch.linalg.vector_norm(g)
                    g.mul_(self.clipnorm / torch.clamp(norm, min=self.clipnorm))
            else:
                for g in grads:
                    g.clamp_(-self.clipvalue, self.clipvalue)
        if self.weight_decay and self._keras_decay:
            params = params if params is not None else self._params_with_grad()
            for group in self.param_groups:
                factor = 1.0 - group["lr"] * self.weight_decay
                for p in group["params"]:
                    if p.grad is not None:
                        p.mul_(factor)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Applies one update from the parameters' `.grad` (Keras's clipping/decay first)."""
        self.prepare_step()
        return self._apply_update(closure)

    def fast_step(self) -> None:
        """`step()` for a training loop's hot path: the same update, without torch's
        per-call wrapper where that wrapper has nothing to do.

        torch wraps every optimizer class's `step` to run the step hooks (this
        optimizer's `register_step_pre_hook` / `register_step_post_hook`, and the
        global `torch.optim.optimizer.register_optimizer_step_*_hook`) and to label the
        step for the profiler. With no hook registered and no profiler running, the
        wrapper costs tens of microseconds per call and does nothing: this then calls
        the wrapped `step` directly, else `step()`. `fit` and `train_on_batch` step
        with it.

        Examples:

        >>> import torch
        >>> w = torch.nn.Parameter(torch.ones(2))
        >>> opt = RMSprop()
        >>> opt.build([w])
        >>> w.grad = torch.ones(2)
        >>> calls = []
        >>> handle = opt.register_step_pre_hook(lambda *args: calls.append("pre"))
        >>> opt.fast_step()  # a hook: through `step()`, which runs it
        >>> calls, opt.iterations
        (['pre'], 1)
        >>> handle.remove()
        >>> opt.fast_step()
        >>> calls, opt.iterations
        (['pre'], 2)
        """
        self._check_built()
        step = type(self).step
        unwrapped = _without_step_hooks(step)
        if (
            unwrapped is step  # not torch's wrapper
            or "step" in self.__dict__  # replaced on this instance
            or self._optimizer_step_pre_hooks
            or self._optimizer_step_post_hooks
            or torch_optimizer._global_optimizer_pre_hooks
            or torch_optimizer._global_optimizer_post_hooks
            or torch_profiler._is_profiler_enabled
        ):
            self.step()
        else:
            unwrapped(self)

    def prepare_step(self) -> None:
        """What `step()` does before the update rule: the schedule's learning rate,
        gradient clipping, weight decay, and the iteration count (advanced)."""
        self._check_built()
        if self._schedule is not None:
            rate = float(self._schedule(self.iterations))
            for group in self.param_groups:
                group["lr"] = rate
        self._preprocess()
        self.iterations += 1

    #: Whether `compile(jit_compile=True)` may run `apply_rule()` through
    #: `torch.compile` with each group's `"lr"` as a 0-dim tensor: the rule reads the
    #: learning rate only in ops that take a tensor, and reads no iteration count, so
    #: one compiled rule serves every learning rate and step.
    rule_takes_tensor_lr = False

    @torch.no_grad()
    def apply_rule(self) -> None:
        """The update rule alone, from the parameters' `.grad` (`step()` is
        `prepare_step()` then this); the slots must exist (after a first `step()`)."""
        self._apply_update(None)

    def _apply_update(self, closure: Any) -> Any:
        # torch wraps a class's `step` with the step hooks the first time an instance of
        # that very class is made (a plain `torch.optim.SGD`, say). This optimizer's own
        # `step` has run its hooks already: the update goes around that wrapper.
        return _without_step_hooks(self._torch_class.step)(self, closure)

    # ------------------------------------------------------------------ config
    # ------------------------------------------------------------------ copies
    def __getstate__(self) -> dict:
        # torch keeps only its own state; `deepcopy`/`pickle`/`torch.save` of a compiled
        # model need the Keras-level attributes (`iterations`, `name`, `built`...) too.
        return dict(self.__dict__)

    def __setstate__(self, state: dict) -> None:
        if state.get("built"):
            super().__setstate__(state)
        else:
            self.__dict__.update(state)

    # ------------------------------------------------------------------ torch state
    # Attributes a resumed run needs besides torch's state.
    _keras_state: tuple[str, ...] = ("iterations",)

    def state_dict(self) -> dict:
        """torch's optimizer state plus Keras-level slots (`iterations`, Nadam's `u_product`).

        So `opt.load_state_dict(saved)` resumes exactly where the run stopped.
        """
        self._check_built()
        state = super().state_dict()
        state["keras"] = {name: getattr(self, name) for name in self._keras_state}
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Loads `state_dict()`'s output (a plain torch optimizer state dict too)."""
        self._check_built()
        state_dict = dict(state_dict)
        keras_state = state_dict.pop("keras", {})
        super().load_state_dict(state_dict)
        for name in self._keras_state:
            if name in keras_state:
                setattr(self, name, keras_state[name])
        self._learning_rate = float(self.param_groups[0]["lr"])

    def _extra_config(self) -> dict:
        return {}

    def get_config(self) -> dict:
        """Keras's config keys for this optimizer."""
        return {
            "name": self.name,
            "learning_rate": (
                float(self.learning_rate)
                if self._schedule is None
                else schedules.serialize(self._schedule)
            ),
            **self._options,
            **self._extra_config(),
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> Optimizer:
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(
                config["learning_rate"], custom_objects
            )
        for key in ("use_ema", "ema_momentum", "ema_overwrite_frequency"):
            config.pop(key, None)
        config.pop("is_legacy_optimizer", None)
        config.pop("decay", None)
        return cls(**config)

    # ------------------------------------------------------------------ Keras state
    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def _slot_names(self) -> list[tuple[str, str]]:
        return list(self._slots)

    def _to_keras_slot(self, key: str, value: torch.Tensor, param: torch.Tensor) -> np.ndarray:
        return value.detach().cpu().numpy()

    def _from_keras_slot(self, key: str, value: np.ndarray, param: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(value, dtype=param.dtype, device=param.device)

    def save_own_variables(self, store: dict) -> None:
        """Writes Keras's optimizer variables: iteration, learning_rate, slots."""
        store["0"] = np.asarray(self.iterations, dtype="int64")
        if self._schedule is None:  # a scheduled rate is no variable in Keras either
            store["1"] = np.asarray(self.learning_rate, dtype="float32")
        if not self.built:
            return
        for index, (_, value) in enumerate(self._keras_slots(), start=self._scalars):
            store[str(index)] = value

    def _keras_slots(self) -> list[tuple[str, np.ndarray]]:
        out = []
        for param, (keras_name, torch_key) in self._slot_order():
            value = self.state.get(param, {}).get(torch_key)
            if value is None:
                array = self._unset_slot(torch_key, param)
            else:
                array = self._to_keras_slot(torch_key, value, param)
            out.append((keras_name, array))
        return out

    def _initial_slot_value(self, torch_key: str) -> float:
        return 0.0

    def _unset_slot(self, torch_key: str, param: torch.Tensor) -> np.ndarray:
        """What Keras holds in a slot before the first step (`_initial_slot_value`s)."""
        array = np.zeros(self._slot_shape(torch_key, param), dtype="float32")
        return array + self._initial_slot_value(torch_key)

    def _slot_shape(self, torch_key: str, param: torch.Tensor) -> tuple[int, ...]:
        """The shape of a slot variable of `param` (its own shape, unless factored)."""
        return tuple(param.shape)

    def _slot_order(self) -> list[tuple[torch.Tensor, tuple[str, str]]]:
        params = self._params()
        slots = self._slot_names()
        if self._interleaved:
            return [(p, s) for p in params for s in slots]
        return [(p, s) for s in slots for p in params]

    def _checked_values(self, store: dict) -> list[np.ndarray]:
        """`store`'s arrays in order, once they are known to fit; `ValueError` otherwise."""
        by_key = {str(k): v for k, v in store.items()}
        wanted = [str(i) for i in range(len(store))]
        if sorted(by_key) != sorted(wanted):
            raise ValueError(
                f"Optimizer '{self.name}': variables must be keyed '0', '1', ... without "
                f"gaps. Received keys {sorted(by_key)}."
            )
        values = [np.asarray(by_key[k]) for k in wanted]
        head = self._scalars
        if len(values) < head or any(v.size != 1 for v in values[:head]):
            names = "`iterations` and `learning_rate`" if head == 2 else "`iterations`"
            raise ValueError(
                f"Optimizer '{self.name}': the first {head} variable(s) must be the scalars "
                f"{names}. Received shapes {[v.shape for v in values[:head]]}."
            )
        if not self.built:
            return values
        order = self._slot_order()
        expected = head + len(order) + self._extra_variables
        if len(values) != expected:
            raise ValueError(
                f"Optimizer '{self.name}' ({type(self).__name__}, {len(self._params())} "
                f"parameters) expects {expected} variables, the file has {len(values)} "
                "(saved with another optimizer or model?)."
            )
        slots = enumerate(zip(order, values[head:]), start=head)
        for index, ((param, (keras_name, torch_key)), value) in slots:
            shape = self._slot_shape(torch_key, param)
            if tuple(value.shape) != shape:
                raise ValueError(
                    f"Optimizer '{self.name}': variable {index} (slot '{keras_name}') has "
                    f"shape {tuple(value.shape)}, but {shape} was expected for its "
                    f"parameter of shape {tuple(param.shape)}."
                )
            if value.dtype.kind not in "biuf":
                raise ValueError(
                    f"Optimizer '{self.name}': variable {index} holds {value.dtype} data, "
                    "not numbers."
                )
        extras = values[head + len(order) :]
        if any(v.size != 1 for v in extras):
            raise ValueError(
                f"Optimizer '{self.name}': its last {len(extras)} variable(s) must be "
                f"scalars. Received shapes {[v.shape for v in extras]}."
            )
        return values

    def check_variables(self, store: dict) -> None:
        """Raises a `ValueError` naming what differs unless `load_own_variables` would
        accept `store`."""
        self._checked_values(store)

    def load_own_variables(self, store: dict) -> None:
        """Reads Keras's optimizer variables (written by Keras or `save_own_variables`).

        Everything is checked (keys, count, shapes) and converted before anything is
        assigned, so a store that does not fit leaves the optimizer as it was. An
        unbuilt optimizer keeps the store and loads it when it is built.

        Raises:
            ValueError: if the store does not fit this optimizer, naming what differs.
        """
        values = self._checked_values(store)
        if not self.built:
            self._pending_state = dict(store)
            return
        order, head = self._slot_order(), self._scalars
        old_learning_rate = self.learning_rate
        if self._schedule is None:
            self.learning_rate = float(values[1].item())  # SGD's slots are scaled by it
        try:
            slots = [
                (param, torch_key, self._from_keras_slot(torch_key, value, param))
                for (param, (_, torch_key)), value in zip(order, values[head:])
            ]
        except Exception:
            if self._schedule is None:
                self.learning_rate = old_learning_rate
            raise
        self.iterations = int(values[0].item())
        for param, torch_key, tensor in slots:
            state = self.state[param]
            state[torch_key] = tensor
            self._init_extra_state(state, param)
        self._load_extra_variables(values[head + len(order) :])

    @property
    def _scalars(self) -> int:
        """How many scalars Keras stores before the slots: iterations (and learning_rate
        unless it comes from a schedule)."""
        return 1 if self._schedule is not None else 2

    _extra_variables = 0  # variables Keras stores after the slots (Nadam: `u_product`)

    def _load_extra_variables(self, values: list[np.ndarray]) -> None:
        pass

    def _init_extra_state(self, state: dict, param: torch.Tensor) -> None:
        state["step"] = torch.tensor(float(self.iterations))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} learning_rate={self.learning_rate}>"


class SGD(Optimizer, torch.optim.SGD):
    """Gradient descent with optional (Nesterov) momentum.

    Args:
        learning_rate: Defaults to 0.01.
        momentum: Momentum factor (0 for plain SGD).
        nesterov: Whether to use Nesterov momentum.
        **kwargs: `name`, `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`.
    """

    _torch_class = torch.optim.SGD

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name=None, **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        if not 0 <= momentum <= 1:
            raise ValueError(f"SGD: `momentum` must be in [0, 1]. Received: {momentum}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _torch_kwargs(self) -> dict:
        return {"lr": self._learning_rate, "momentum": self.momentum, "nesterov": self.nesterov}

    def _slot_names(self):
        return [("momentum", "momentum_buffer")] if self.momentum > 0 else []

    def _to_keras_slot(self, key, value, param):  # Keras stores -lr * torch's buffer
        return (-self.learning_rate * value).detach().cpu().numpy()

    def _from_keras_slot(self, key, value, param):
        lr = self.learning_rate or 1.0
        return torch.as_tensor(-value / lr, dtype=param.dtype, device=param.device)

    def _init_extra_state(self, state, param):
        pass

    def _extra_config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer, torch.optim.Adam):
    """Adam with Keras's defaults (`learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7`).

    Args:
        learning_rate: Step size.
        beta_1: Decay of the first-moment estimate.
        beta_2: Decay of the second-moment estimate.
        epsilon: Numerical stability constant.
        amsgrad: Whether to use the AMSGrad variant.
        **kwargs: `name`, `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`.
    """

    _torch_class: type[torch.optim.Optimizer] = torch.optim.Adam
    _slots = (("momentum", "exp_avg"), ("velocity", "exp_avg_sq"))

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon = float(epsilon)
        self.amsgrad = bool(amsgrad)

    def _torch_kwargs(self):
        return {
            "lr": self._learning_rate,
            "betas": (self.beta_1, self.beta_2),
            "eps": self.epsilon,
            "amsgrad": self.amsgrad,
        }

    def _slot_names(self):
        slots = list(self._slots)
        return [*slots, ("velocity_hat", "max_exp_avg_sq")] if self.amsgrad else slots

    def _apply_update(self, closure: Any) -> Any:
        # Keras's form: w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps);
        # torch's divides epsilon by sqrt(1 - b2^t), which differs for small gradients.
        loss = optim_rules.closure_loss(closure)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if group.get("weight_decay") and not self._keras_decay:
                torch._foreach_mul_(params, 1.0 - group["lr"] * group["weight_decay"])
            beta_1, beta_2 = group["betas"]
            states = [self.state[p] for p in params]
            for p, state in zip(params, states):
                if "exp_avg" not in state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
            t = float(states[0]["step"])
            alpha = group["lr"] * (1 - beta_2**t) ** 0.5 / (1 - beta_1**t)
            grads = [p.grad for p in params if p.grad is not None]
            m = [s["exp_avg"] for s in states]
            v = [s["exp_avg_sq"] for s in states]
            torch._foreach_lerp_(m, grads, 1 - beta_1)
            torch._foreach_mul_(v, beta_2)
            torch._foreach_addcmul_(v, grads, grads, value=1 - beta_2)
            if group["amsgrad"]:
                v_hat = [s["max_exp_avg_sq"] for s in states]
                torch._foreach_maximum_(v_hat, v)
                v = v_hat
            denom = torch._foreach_sqrt(v)
            torch._foreach_add_(denom, group["eps"])
            torch._foreach_addcdiv_(params, m, denom, value=-alpha)
        return loss

    def _extra_config(self):
        return {
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
        }


class AdamW(Adam, torch.optim.AdamW):
    """Adam with decoupled weight decay (Keras default `weight_decay=0.004`)."""

    _torch_class: type[torch.optim.Optimizer] = torch.optim.AdamW
    _keras_decay = False

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay=0.004,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        name=None,
        **kwargs,
    ):
        super().__init__(
            learning_rate,
            beta_1,
            beta_2,
            epsilon,
            amsgrad,
            name,
            weight_decay=weight_decay,
            **kwargs,
        )

    def _torch_kwargs(self):
        return {**super()._torch_kwargs(), "weight_decay": float(self.weight_decay or 0.0)}


class Adamax(Optimizer, torch.optim.Adamax):
    """Adamax (Adam with the infinity norm), Keras defaults (`learning_rate=0.001`)."""

    _torch_class = torch.optim.Adamax
    _slots = (("momentum", "exp_avg"), ("norm", "exp_inf"))

    def __init__(
        self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name=None, **kwargs
    ):
        super().__init__(learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _torch_kwargs(self):
        return {
            "lr": self._learning_rate,
            "betas": (self.beta_1, self.beta_2),
            "eps": self.epsilon,
        }

    def _apply_update(self, closure: Any) -> Any:
        # Keras's form: u = max(b2 * u, |g|); w -= lr * m / ((1 - b1^t) * (u + eps)).
        loss = optim_rules.closure_loss(closure)
        for group in self.param_groups:
            beta_1, beta_2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "exp_avg" not in state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_inf"] = torch.zeros_like(p)
                state["step"] += 1
                t = float(state["step"])
                m, u = state["exp_avg"], state["exp_inf"]
                m.lerp_(p.grad, 1 - beta_1)
                torch.maximum(u.mul_(beta_2), p.grad.abs(), out=u)
                p.addcdiv_(m, u + group["eps"], value=-group["lr"] / (1 - beta_1**t))
        return loss

    def _extra_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class _KerasNadam(torch.optim.Optimizer):
    """Nadam with Keras's momentum schedule `mu_t = beta_1 * (1 - 0.5 * 0.96 ** t)`.

    (`torch.optim.NAdam` uses `0.96 ** (0.004 * t)`.)
    """

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-7):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})
        self.u_product = 1.0

    @torch.no_grad()
    def step(self, closure=None):
        loss = optim_rules.closure_loss(closure)
        step = getattr(self, "iterations", 1)
        for group in self.param_groups:
            beta_1, beta_2 = group["betas"]
            u_t = beta_1 * (1.0 - 0.5 * 0.96**step)
            u_next = beta_1 * (1.0 - 0.5 * 0.96 ** (step + 1))
            u_product = self.u_product * u_t
            u_product_next = u_product * u_next
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if "exp_avg" not in state:
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(g, 1 - beta_1)
                v.mul_(beta_2).addcmul_(g, g, value=1 - beta_2)
                m_hat = m * (u_next / (1 - u_product_next)) + g * ((1 - u_t) / (1 - u_product))
                denom = (v / (1 - beta_2**step)).sqrt_().add_(group["eps"])
                p.addcdiv_(m_hat, denom, value=-group["lr"])
        self.u_product *= beta_1 * (1.0 - 0.5 * 0.96**step) if self.param_groups else 1.0
        return loss


class Nadam(Optimizer, _KerasNadam):
    """Adam with Nesterov momentum, as Keras computes it (`learning_rate=0.001`)."""

    _torch_class = _KerasNadam
    _slots = (("momentum", "exp_avg"), ("velocity", "exp_avg_sq"))

    def __init__(
        self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name=None, **kwargs
    ):
        super().__init__(learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _torch_kwargs(self):
        return {
            "lr": self._learning_rate,
            "betas": (self.beta_1, self.beta_2),
            "eps": self.epsilon,
        }

    def save_own_variables(self, store: dict) -> None:
        super().save_own_variables(store)
        if self.built:
            store[str(len(store))] = np.asarray(self.u_product, dtype="float32")

    _extra_variables = 1
    _keras_state = ("iterations", "u_product")

    def _load_extra_variables(self, values: list[np.ndarray]) -> None:
        self.u_product = float(values[0].item())

    def _init_extra_state(self, state, param):
        pass

    def _extra_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Adagrad(Optimizer, torch.optim.Adagrad):
    """Adagrad, Keras defaults (`learning_rate=0.001, initial_accumulator_value=0.1`)."""

    _torch_class = torch.optim.Adagrad
    _slots = (("accumulator", "sum"),)

    def __init__(
        self,
        learning_rate=0.001,
        initial_accumulator_value=0.1,
        epsilon=1e-7,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate, name=name, **kwargs)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)

    def _torch_kwargs(self):
        return {
            "lr": self._learning_rate,
            "initial_accumulator_value": self.initial_accumulator_value,
            "eps": self.epsilon,
        }

    def _initial_slot_value(self, torch_key):
        return self.initial_accumulator_value

    def _extra_config(self):
        return {
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }


class Adadelta(Optimizer, torch.optim.Adadelta):
    """Adadelta, Keras defaults (`learning_rate=0.001, rho=0.95, epsilon=1e-7`)."""

    _torch_class = torch.optim.Adadelta
    _slots = (("accumulated_grad", "square_avg"), ("accumulated_delta_var", "acc_delta"))

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, name=None, **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.rho, self.epsilon = float(rho), float(epsilon)

    def _torch_kwargs(self):
        return {"lr": self._learning_rate, "rho": self.rho, "eps": self.epsilon}

    def _extra_config(self):
        return {"rho": self.rho, "epsilon": self.epsilon}


class _KerasRMSprop(torch.optim.Optimizer):
    """RMSprop with Keras's update: `lr * g / sqrt(v + eps)` (epsilon inside the root)."""

    def __init__(self, params, lr=0.001, rho=0.9, momentum=0.0, eps=1e-7, centered=False):
        super().__init__(
            params, {"lr": lr, "rho": rho, "momentum": momentum, "eps": eps, "centered": centered}
        )

    @torch.no_grad()
    def step(self, closure=None):
        loss = optim_rules.closure_loss(closure)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params if p.grad is not None]
            rho, eps, lr = group["rho"], group["eps"], group["lr"]
            states = [self.state[p] for p in params]
            for p, state in zip(params, states):
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p)
                    if group["momentum"] > 0:
                        state["momentum"] = torch.zeros_like(p)
                    if group["centered"]:
                        state["average_gradient"] = torch.zeros_like(p)
            if (
                not torch.compiler.is_compiling()
                and len({(p.dtype, p.device) for p in params}) == 1
            ):
                self._flat_update(group, params, states)
                continue
            velocities = [s["velocity"] for s in states]
            torch._foreach_mul_(velocities, rho)
            torch._foreach_addcmul_(velocities, grads, grads, value=1 - rho)
            if group["centered"]:
                averages = [s["average_gradient"] for s in states]
                torch._foreach_mul_(averages, rho)
                torch._foreach_add_(averages, grads, alpha=1 - rho)
                denom = torch._foreach_sub(velocities, torch._foreach_mul(averages, averages))
                torch._foreach_add_(denom, eps)
            else:
                denom = torch._foreach_add(velocities, eps)
            torch._foreach_sqrt_(denom)
            increments = torch._foreach_div(torch._foreach_mul(grads, lr), denom)
            if group["momentum"] > 0:
                momenta = [s["momentum"] for s in states]
                torch._foreach_mul_(momenta, group["momentum"])
                torch._foreach_add_(momenta, increments)
                torch._foreach_sub_(params, momenta)
            else:
                torch._foreach_sub_(params, increments)
        return loss

    def _flat_update(self, group: dict, params: list, states: list[dict]) -> None:
        """The update on flat buffers (`optim_rules.FlatSlots`): the same numbers as
        the per-tensor rule, in a few operations for all the weights."""
        rho, eps, lr = group["rho"], group["eps"], group["lr"]
        cache = self.__dict__.setdefault("_flat_slots", {})
        flat = cache.get(id(group))
        if flat is None or not flat.matches(params, states):
            names = ["velocity"]
            names += ["momentum"] if group["momentum"] > 0 else []
            names += ["average_gradient"] if group["centered"] else []
            flat = cache[id(group)] = optim_rules.FlatSlots(params, states, names)
        grads = flat.gather_grads()
        velocity = flat.buffers["velocity"]
        velocity.mul_(rho)
        velocity.addcmul_(grads, grads, value=1 - rho)
        if group["centered"]:
            average = flat.buffers["average_gradient"]
            average.mul_(rho)
            average.add_(grads, alpha=1 - rho)
            denom = velocity - average * average
            denom.add_(eps)
        else:
            denom = velocity + eps
        denom.sqrt_()
        increment = torch.div(grads * lr, denom, out=flat.increment)
        if group["momentum"] > 0:
            momentum = flat.buffers["momentum"]
            momentum.mul_(group["momentum"])
            momentum.add_(increment)
            increment.copy_(momentum)
        flat.subtract_increment()


class RMSprop(Optimizer, _KerasRMSprop):
    """RMSprop exactly as Keras computes it (`learning_rate=0.001, rho=0.9, epsilon=1e-7`).

    `torch.optim.RMSprop` adds epsilon outside the square root; this one, like
    Keras, inside: `w -= lr * g / sqrt(v + epsilon)`.

    Args:
        learning_rate: Step size.
        rho: Decay of the moving average of squared gradients.
        momentum: Momentum factor.
        epsilon: Added to the average inside the square root.
        centered: Whether to normalise by the gradient's estimated variance.
        **kwargs: `name`, `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`.

    Examples:

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = RMSprop(learning_rate=0.1)
    >>> opt.build([w])
    >>> w.grad = torch.tensor([2.0])
    >>> _ = opt.step()
    >>> round(w.item(), 5)  # 1 - 0.1 * 2 / sqrt(0.1 * 4 + 1e-7)
    0.68377
    """

    _torch_class = _KerasRMSprop
    _interleaved = False
    rule_takes_tensor_lr = True

    def __init__(
        self,
        learning_rate=0.001,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-7,
        centered=False,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate, name=name, **kwargs)
        self.rho, self.momentum = float(rho), float(momentum)
        self.epsilon, self.centered = float(epsilon), bool(centered)

    def _torch_kwargs(self):
        return {
            "lr": self._learning_rate,
            "rho": self.rho,
            "momentum": self.momentum,
            "eps": self.epsilon,
            "centered": self.centered,
        }

    def _slot_names(self):
        slots = [("velocity", "velocity")]
        if self.momentum > 0:
            slots.append(("momentum", "momentum"))
        if self.centered:
            slots.append(("average_gradient", "average_gradient"))
        return slots

    def _init_extra_state(self, state, param):
        pass

    def _extra_config(self):
        return {
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }


class _RuleOptimizer(Optimizer):
    """A Keras optimizer over one of `birnn.ops.optim_rules`' update rules.

    The rule's slots carry Keras's slot names; subclasses list their
    hyperparameters in Keras's config order (`_hyper`) and, where Keras's
    argument names differ from the rule's, map them (`_rule_names`).
    """

    _hyper: tuple[str, ...] = ()
    _rule_names: dict[str, str] = {}

    def _torch_kwargs(self) -> dict:
        hyper = {self._rule_names.get(k, k): getattr(self, k) for k in self._hyper}
        return {"lr": self._learning_rate, **hyper}

    def _init_extra_state(self, state, param):
        pass

    def _extra_config(self) -> dict:
        return {k: getattr(self, k) for k in self._hyper}


def _check_range(owner: str, name: str, value: float, low: float, high: float) -> float:
    if not low <= value <= high:
        raise ValueError(
            f"{owner}: argument `{name}` must be in [{low}, {high}]. Received: {name}={value}"
        )
    return float(value)


class Lion(_RuleOptimizer, optim_rules.LionRule):
    """Lion (EvoLved Sign Momentum), Keras defaults (`learning_rate=0.001`).

    Each step moves every weight by exactly `learning_rate` in the direction of
    `sign(beta_1 * m + (1 - beta_1) * g)`; the momentum `m` then decays with
    `beta_2`. Lion's steps are larger than Adam's: its authors suggest a
    learning rate 3-10 times smaller.

    Args:
        learning_rate: Step size (a float or a `LearningRateSchedule`).
        beta_1: Weight of the momentum in the update direction, in (0, 1].
        beta_2: Decay of the momentum, in [0, 1].
        **kwargs: `name`, `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`.

    Examples:

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    >>> opt = Lion(learning_rate=0.1)
    >>> opt.build([w])
    >>> w.grad = torch.tensor([3.0, -0.5])
    >>> _ = opt.step()
    >>> w.detach().tolist()
    [0.8999999761581421, 1.100000023841858]
    """

    _torch_class = optim_rules.LionRule
    _slots = (("momentum", "momentum"),)
    _hyper = ("beta_1", "beta_2")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, name=None, **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        if beta_1 <= 0 or beta_1 > 1:
            raise ValueError(
                "Lion: argument `beta_1` must be in (0, 1]; at 0 Lion degenerates to "
                f"SignSGD. Received: beta_1={beta_1}"
            )
        self.beta_1 = float(beta_1)
        self.beta_2 = _check_range("Lion", "beta_2", beta_2, 0.0, 1.0)


class Lamb(_RuleOptimizer, optim_rules.LambRule):
    """LAMB (layer-wise adaptive moments), Keras defaults (`learning_rate=0.001`).

    Adam's bias-corrected direction `m_hat / (sqrt(v_hat) + epsilon)`, scaled for
    each weight tensor by the trust ratio `||w|| / ||direction||` (1 where either
    norm is 0), so each tensor moves by `learning_rate` relative to its size.

    Args:
        learning_rate: Step size (a float or a `LearningRateSchedule`).
        beta_1: Decay of the first-moment estimate.
        beta_2: Decay of the second-moment estimate.
        epsilon: Numerical stability constant.
        **kwargs: `name`, `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`.

    Examples:

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    >>> opt = Lamb(learning_rate=0.1)
    >>> opt.build([w])
    >>> w.grad = torch.tensor([1.0, 1.0])
    >>> _ = opt.step()
    >>> [round(x, 4) for x in w.detach().tolist()]  # trust ratio 5 / sqrt(2)
    [2.6464, 3.6464]
    """

    _torch_class = optim_rules.LambRule
    _slots = (("momentum", "momentum"), ("velocity", "velocity"))
    _hyper = ("beta_1", "beta_2", "epsilon")
    _rule_names = {"epsilon": "eps"}

    def __init__(
        self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name=None, **kwargs
    ):
        super().__init__(learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon = float(epsilon)


class Ftrl(_RuleOptimizer, optim_rules.FtrlRule):
    """FTRL-Proximal, Keras defaults (`learning_rate=0.001, initial_accumulator_value=0.1`).

    Follow The Regularized Leader keeps, per weight, the sum of squared
    gradients (`accumulator`) and a linear term (`linear`), and sets each weight
    in closed form from them; L1 regularization drives weights to exactly 0.
    With `n` the accumulator, `z` the linear term and `p = -learning_rate_power`:
    `z += g_s - ((n + g^2)^p - n^p) / lr * w`, `n += g^2`, and
    `w = (sign(z) * l1 - z) / ((beta + n^p) / lr + 2 * l2)` where `|z| > l1`,
    else 0 (`g_s = g + 2 * l2_shrinkage * w`).

    Args:
        learning_rate: Step size (a float or a `LearningRateSchedule`).
        learning_rate_power: The power `-p` above, `<= 0` (-0.5 by default).
        initial_accumulator_value: Starting value of the accumulator, `>= 0`.
        l1_regularization_strength: The L1 strength `l1`, `>= 0`.
        l2_regularization_strength: The L2 strength `l2`, `>= 0`.
        l2_shrinkage_regularization_strength: The magnitude penalty `l2_shrinkage`
            added to the gradient of the linear term only, `>= 0`.
        beta: Added to the accumulator's power in the denominator, `>= 0`.
        **kwargs: `name`, `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`.

    Examples:

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([0.5, -0.5]))
    >>> opt = Ftrl(learning_rate=0.1, l1_regularization_strength=1.0)
    >>> opt.build([w])
    >>> w.grad = torch.tensor([0.2, -0.2])
    >>> _ = opt.step()
    >>> w.detach().tolist()  # |z| <= l1: both weights are set to 0
    [0.0, 0.0]
    """

    _torch_class = optim_rules.FtrlRule
    initial_accumulator_value: float  # set with the other hyperparameters in __init__
    _slots = (("accumulator", "accumulator"), ("linear", "linear"))
    _hyper = (
        "learning_rate_power",
        "initial_accumulator_value",
        "l1_regularization_strength",
        "l2_regularization_strength",
        "l2_shrinkage_regularization_strength",
        "beta",
    )
    _rule_names = {
        "learning_rate_power": "lr_power",
        "l1_regularization_strength": "l1",
        "l2_regularization_strength": "l2",
        "l2_shrinkage_regularization_strength": "l2_shrinkage",
    }

    def __init__(
        self,
        learning_rate=0.001,
        learning_rate_power=-0.5,
        initial_accumulator_value=0.1,
        l1_regularization_strength=0.0,
        l2_regularization_strength=0.0,
        l2_shrinkage_regularization_strength=0.0,
        beta=0.0,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate, name=name, **kwargs)
        if learning_rate_power > 0:
            raise ValueError(
                "Ftrl: argument `learning_rate_power` must be negative or zero. "
                f"Received: learning_rate_power={learning_rate_power}"
            )
        self.learning_rate_power = float(learning_rate_power)
        for key, value in (
            ("initial_accumulator_value", initial_accumulator_value),
            ("l1_regularization_strength", l1_regularization_strength),
            ("l2_regularization_strength", l2_regularization_strength),
            ("l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength),
            ("beta", beta),
        ):
            if value < 0:
                raise ValueError(
                    f"Ftrl: argument `{key}` must be positive or zero. Received: {key}={value}"
                )
            setattr(self, key, float(value))

    def _initial_slot_value(self, torch_key):
        return self.initial_accumulator_value if torch_key == "accumulator" else 0.0


class Adafactor(_RuleOptimizer, optim_rules.AdafactorRule):
    """Adafactor, Keras defaults (`learning_rate=0.001, relative_step=True`).

    Adam-like steps whose second-moment estimate is *factored*: for a weight of
    rank >= 2 only the running means of the squared gradient over its last axis
    and over the axis before it are kept (`O(rows + columns)` memory instead of
    `O(rows * columns)`). The step is scaled by the weight's RMS (at least
    `epsilon_2`) and the update clipped to an RMS of `clip_threshold`.

    Args:
        learning_rate: Step size (a float or a `LearningRateSchedule`); with
            `relative_step=True` the rate at step `t` is `min(learning_rate, 1/sqrt(t))`.
        beta_2_decay: The second-moment decay is `1 - t ** beta_2_decay`.
        epsilon_1: Added to the squared gradient.
        epsilon_2: Lower bound of the weight RMS that scales each step.
        clip_threshold: Updates are scaled down to at most this RMS.
        relative_step: Whether to cap the learning rate by `1/sqrt(t)`.
        **kwargs: `name`, `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`.

    Examples:

    >>> import torch
    >>> w = torch.nn.Parameter(torch.ones(2, 3))
    >>> opt = Adafactor(learning_rate=0.1)
    >>> opt.build([w])
    >>> w.grad = torch.full((2, 3), 0.5)
    >>> _ = opt.step()
    >>> [round(x, 4) for x in w[0].tolist()]
    [0.9, 0.9, 0.9]
    >>> [tuple(v.shape) for v in opt.variables[2:]]  # row, column, velocity
    [(2,), (3,), (2, 3)]
    """

    _torch_class = optim_rules.AdafactorRule
    _slots = (("row", "row"), ("column", "column"), ("velocity", "velocity"))
    _hyper = ("beta_2_decay", "epsilon_1", "epsilon_2", "clip_threshold", "relative_step")

    def __init__(
        self,
        learning_rate=0.001,
        beta_2_decay=-0.8,
        epsilon_1=1e-30,
        epsilon_2=1e-3,
        clip_threshold=1.0,
        relative_step=True,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate, name=name, **kwargs)
        self.beta_2_decay = float(beta_2_decay)
        self.epsilon_1, self.epsilon_2 = float(epsilon_1), float(epsilon_2)
        self.clip_threshold = float(clip_threshold)
        self.relative_step = bool(relative_step)

    def _slot_shape(self, torch_key, param):
        row, column = optim_rules.AdafactorRule.factored_shapes(tuple(param.shape))
        return {"row": row, "column": column}.get(torch_key, tuple(param.shape))


class Muon(_RuleOptimizer, optim_rules.MuonRule):
    """Muon (MomentUm Orthogonalized by Newton-Schulz), with AdamW for the other weights.

    Each 2-D weight (a kernel) follows Muon: SGD momentum whose update direction
    is orthogonalized by `ns_steps` Newton-Schulz iterations (its singular values
    pushed towards 1), scaled by `sqrt(max(rows, columns)) * rms_rate`. The other
    weights follow AdamW (at `learning_rate * adam_lr_ratio`, with
    `adam_weight_decay`):

    - every weight that is not 2-D (biases, scalars, convolution kernels);
    - with `exclude_embeddings=True`, every weight whose name contains
      "embedding" (any case), such as `Embedding`'s `embeddings`;
    - every weight whose name matches (`re.search`) a pattern of `exclude_layers`.
      Typically the output layer: `exclude_layers=["output_dense"]`.

    Names are the weights' Keras paths (`"model/output_dense/kernel"`) when the
    optimizer is built by `compile()` or from a birnn layer or model
    (`opt.build(model)`). Built from `model.named_parameters()`, it matches
    torch's names instead (`"_layers.3.kernel"`: the embeddings are still found,
    layer names are not in them). Built from bare tensors, only the 2-D rule
    applies: `exclude_layers` then raises a `ValueError` and
    `exclude_embeddings=True` warns, since neither can be honoured.
    Which rule a weight follows is fixed when the optimizer is built.

    Args:
        learning_rate: Step size (a float or a `LearningRateSchedule`).
        adam_beta_1: AdamW's decay of the first-moment estimate.
        adam_beta_2: AdamW's decay of the second-moment estimate.
        adam_weight_decay: Decoupled weight decay of the AdamW weights
            (`w -= learning_rate * adam_weight_decay * w`).
        epsilon: AdamW's numerical stability constant.
        weight_decay: Decoupled weight decay of the Muon weights.
        exclude_layers: Regular expressions; weights whose name matches one
            follow AdamW.
        exclude_embeddings: Whether embedding weights follow AdamW.
        muon_a: Coefficient `a` of the Newton-Schulz iteration
            `X = a X + (b A + c A^2) X` with `A = X X^T`.
        muon_b: Coefficient `b` of that iteration.
        muon_c: Coefficient `c` of that iteration.
        adam_lr_ratio: Ratio of AdamW's learning rate to `learning_rate`.
        momentum: Momentum of Muon's SGD (`m = momentum * m + g`).
        ns_steps: Number of Newton-Schulz iterations.
        nesterov: Whether Muon's direction is `g + momentum * m` (Nesterov) or `m`.
        rms_rate: Scale of Muon's update, as in Moonlight (arXiv:2502.16982), so
            that Muon can share AdamW's learning rate and weight decay; None to
            use the orthogonalized direction as it is.
        **kwargs: `name`, `clipnorm`, `clipvalue`, `global_clipnorm`.

    Examples:

    >>> import torch
    >>> kernel = torch.nn.Parameter(torch.zeros(2, 2))
    >>> bias = torch.nn.Parameter(torch.zeros(2))
    >>> opt = Muon(learning_rate=0.1, rms_rate=None, exclude_embeddings=False)
    >>> opt.build([kernel, bias])
    >>> kernel.grad = torch.tensor([[3.0, 0.0], [0.0, 1.0]])  # singular values 3 and 1
    >>> bias.grad = torch.tensor([0.5, -0.5])
    >>> _ = opt.step()
    >>> [round(x, 3) for x in bias.tolist()]  # AdamW: each moves by the learning rate
    [-0.1, 0.1]
    >>> [round(x, 3) for x in torch.linalg.svdvals(kernel / -0.1).tolist()]  # both near 1
    [1.134, 0.753]
    >>> [tuple(v.shape) for v in opt.variables[2:]]  # momentum; bias: momentum, velocity
    [(2, 2), (2,), (2,)]
    """

    _torch_class = optim_rules.MuonRule
    _keras_decay = False  # the rule decays Muon's and AdamW's weights differently
    _hyper = (
        "adam_beta_1",
        "adam_beta_2",
        "epsilon",
        "exclude_layers",
        "muon_a",
        "muon_b",
        "muon_c",
        "adam_lr_ratio",
        "momentum",
        "ns_steps",
        "nesterov",
        "exclude_embeddings",
        "adam_weight_decay",
        "rms_rate",
    )
    _rule_hyper = (
        "momentum",
        "nesterov",
        "ns_steps",
        "muon_a",
        "muon_b",
        "muon_c",
        "rms_rate",
        "adam_beta_1",
        "adam_beta_2",
        "epsilon",
        "adam_lr_ratio",
    )

    def __init__(
        self,
        learning_rate=0.001,
        adam_beta_1=0.9,
        adam_beta_2=0.999,
        adam_weight_decay=0.004,
        epsilon=1e-7,
        weight_decay=0.004,
        exclude_layers=None,
        exclude_embeddings=True,
        muon_a=3.4445,
        muon_b=-4.775,
        muon_c=2.0315,
        adam_lr_ratio=1,
        momentum=0.95,
        ns_steps=5,
        nesterov=True,
        rms_rate=0.2,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate, name=name, weight_decay=weight_decay, **kwargs)
        if isinstance(exclude_layers, str):
            exclude_layers = [exclude_layers]
        self.exclude_layers = list(exclude_layers or [])
        self._patterns = []
        for pattern in self.exclude_layers:
            try:
                self._patterns.append(re.compile(pattern))
            except (re.error, TypeError) as error:
                raise ValueError(
                    "Muon: argument `exclude_layers` must hold regular expressions. "
                    f"Received {pattern!r}: {error}"
                ) from None
        if isinstance(ns_steps, bool) or not isinstance(ns_steps, int) or ns_steps < 0:
            raise ValueError(
                f"Muon: argument `ns_steps` must be an integer >= 0. Received: ns_steps={ns_steps}"
            )
        if rms_rate is not None and rms_rate < 0:
            raise ValueError(
                f"Muon: argument `rms_rate` must be >= 0 or None. Received: rms_rate={rms_rate}"
            )
        self.exclude_embeddings = bool(exclude_embeddings)
        self.adam_beta_1, self.adam_beta_2 = float(adam_beta_1), float(adam_beta_2)
        self.adam_weight_decay = adam_weight_decay
        self.epsilon = float(epsilon)
        self.muon_a, self.muon_b, self.muon_c = float(muon_a), float(muon_b), float(muon_c)
        self.adam_lr_ratio = adam_lr_ratio
        self.momentum = _check_range("Muon", "momentum", momentum, 0.0, 1.0)
        self.ns_steps = ns_steps
        self.nesterov = bool(nesterov)
        self.rms_rate = rms_rate

    def uses_adamw(self, name: str | None, param: torch.Tensor) -> bool:
        """Whether the weight `param` named `name` (None: unnamed) follows AdamW."""
        if param.dim() != 2:
            return True
        if name is None:
            return False
        if self.exclude_embeddings and "embedding" in name.lower():
            return True
        return any(pattern.search(name) for pattern in self._patterns)

    def _bind(self, params: list[torch.Tensor], names: list[str] | None) -> None:
        if names is None:
            if self._patterns:
                raise ValueError(
                    f"Optimizer '{self.name}': `exclude_layers` matches weight names, but "
                    "it was built from unnamed tensors. Build it from a birnn model "
                    "(`opt.build(model)`, as compile() does) or from `(name, tensor)` "
                    "pairs such as `model.named_parameters()`."
                )
            if self.exclude_embeddings and any(p.dim() == 2 for p in params):
                warnings.warn(
                    f"Optimizer '{self.name}' was built from unnamed tensors, so embeddings "
                    "cannot be told apart from other 2-D weights and all of them follow "
                    "Muon. Build it from a birnn model (`opt.build(model)`) or from "
                    "`model.named_parameters()`, or pass `exclude_embeddings=False`.",
                    stacklevel=3,
                )
        given: list[str | None] = list(names) if names is not None else [None] * len(params)
        self._use_adamw = [self.uses_adamw(name, param) for name, param in zip(given, params)]
        super()._bind(params, names)

    def _torch_kwargs(self) -> dict:
        return {
            "lr": self._learning_rate,
            "use_adamw": self._use_adamw,
            **{key: getattr(self, key) for key in self._rule_hyper},
            "weight_decay": float(self.weight_decay or 0.0),
            "adam_weight_decay": float(self.adam_weight_decay or 0.0),
        }

    def _slot_order(self) -> list[tuple[torch.Tensor, tuple[str, str]]]:
        order = []
        for group in self.param_groups:
            for param, adamw in zip(group["params"], group["use_adamw"]):
                order.append((param, ("momentum", "momentum")))
                if adamw:
                    order.append((param, ("velocity", "velocity")))
        return order


class ScheduleFreeAdamW(_RuleOptimizer, optim_rules.ScheduleFreeAdamWRule):
    """Schedule-free AdamW, as Keras 3.15 computes it (`learning_rate=0.0025`).

    No learning-rate schedule is needed: Adam's normalized step moves a
    `momentum` sequence `z` (starting at the weight's value), and the weight is
    the running average of `z` over all steps (`w = w + (z - w) / t`). The
    learning rate may be warmed up linearly over `warmup_steps`.

    As in Keras 3.15, `beta_1` is accepted and saved in the config, but no
    update uses it.

    Args:
        learning_rate: Step size (a float or a `LearningRateSchedule`).
        beta_1: Kept for Keras's config (unused by Keras's update).
        beta_2: Decay of the second-moment estimate.
        epsilon: Numerical stability constant.
        warmup_steps: Steps over which the rate grows linearly to `learning_rate`.
        **kwargs: `name`, `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`.

    Examples:

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = ScheduleFreeAdamW(learning_rate=0.1)
    >>> opt.build([w])
    >>> for _ in range(2):
    ...     w.grad = torch.tensor([2.0])
    ...     _ = opt.step()
    >>> round(w.item(), 4)  # z went 1 -> 0.9 -> 0.8; w is their mean
    0.85
    """

    _torch_class = optim_rules.ScheduleFreeAdamWRule
    _slots = (("momentum", "momentum"), ("velocity", "velocity"))
    _hyper = ("beta_1", "beta_2", "epsilon", "warmup_steps")
    _rule_names = {"epsilon": "eps"}

    def __init__(
        self,
        learning_rate=0.0025,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        warmup_steps=0,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate, name=name, **kwargs)
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(
                "ScheduleFreeAdamW: argument `warmup_steps` must be an integer >= 0. "
                f"Received: warmup_steps={warmup_steps}"
            )
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon = float(epsilon)
        self.warmup_steps = warmup_steps

    def _torch_kwargs(self) -> dict:
        kwargs = super()._torch_kwargs()
        del kwargs["beta_1"]
        return kwargs

    def _preprocess(self) -> None:
        # z starts at the weight's value before this step's weight decay, as in Keras
        # (whose slots are made when it is built, before the first step).
        for param in self._params_with_grad():
            if not self.state[param]:
                self.state[param].update(self._new_slots({}, param))
        super()._preprocess()

    def _unset_slot(self, torch_key, param):
        if torch_key == "momentum":  # Keras starts z at the weight's value
            return param.detach().cpu().numpy().copy()
        return super()._unset_slot(torch_key, param)


class LossScaleOptimizer(Optimizer):
    """Dynamic loss scaling around another optimizer, as Keras's `LossScaleOptimizer`.

    Loss scaling keeps small float16 gradients from underflowing: the loss is
    multiplied by a scale (`scale_loss`) before `backward()`, and the gradients
    are divided by it before the inner optimizer's step. The scale adapts:

    - a step whose gradients hold `inf` or `nan` is skipped (the weights and the
      inner optimizer's state stay as they were) and the scale is halved;
    - after `dynamic_growth_steps` finite steps in a row the scale is doubled.

    Gradients are divided by the scale only after `scale_loss` was called for
    them; gradients of an unscaled loss are stepped as they are (in float32 the
    power-of-two scaling changes no value), with the same skip-and-halve rule.
    `iterations` and `learning_rate` are the inner optimizer's.

    Args:
        inner_optimizer: The birnn optimizer to wrap.
        initial_scale: The starting loss scale (`2**15`).
        dynamic_growth_steps: Finite steps after which the scale doubles (2000).
        name: Name of the optimizer.

    Examples:

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = LossScaleOptimizer(SGD(0.1), initial_scale=8.0, dynamic_growth_steps=2)
    >>> opt.build([w])
    >>> loss = opt.scale_loss((2 * w).sum())
    >>> loss.backward()
    >>> _ = opt.step()  # the gradient 16 is unscaled to 2 first
    >>> round(w.item(), 4), opt.dynamic_scale
    (0.8, 8.0)
    >>> w.grad = torch.tensor([float("inf")])
    >>> _ = opt.step()  # skipped, scale halved
    >>> round(w.item(), 4), opt.dynamic_scale, opt.iterations
    (0.8, 4.0, 1)
    """

    def __init__(
        self,
        inner_optimizer: Optimizer,
        initial_scale: float = 2.0**15,
        dynamic_growth_steps: int = 2000,
        name: str | None = None,
        **kwargs: Any,
    ):
        if not isinstance(inner_optimizer, Optimizer) or isinstance(
            inner_optimizer, LossScaleOptimizer
        ):
            raise TypeError(
                "LossScaleOptimizer: argument `inner_optimizer` must be a birnn optimizer "
                f"(not itself a LossScaleOptimizer). Received: {inner_optimizer!r}"
            )
        if not initial_scale > 0:
            raise ValueError(
                "LossScaleOptimizer: argument `initial_scale` must be positive. "
                f"Received: initial_scale={initial_scale}"
            )
        if isinstance(dynamic_growth_steps, bool) or int(dynamic_growth_steps) < 1:
            raise ValueError(
                "LossScaleOptimizer: argument `dynamic_growth_steps` must be a positive "
                f"integer. Received: dynamic_growth_steps={dynamic_growth_steps}"
            )
        unknown = set(kwargs) - set(_BASE_DEFAULTS)
        if unknown:
            raise ValueError(f"LossScaleOptimizer: unknown arguments {sorted(unknown)}.")
        if any(kwargs.get(k, v) != v for k, v in _BASE_DEFAULTS.items()):
            raise ValueError(
                "LossScaleOptimizer: set clipping, weight decay and the like on the "
                f"inner optimizer. Received: {sorted(kwargs)}"
            )
        self.inner_optimizer = inner_optimizer
        self.initial_scale = float(initial_scale)
        self.dynamic_growth_steps = int(dynamic_growth_steps)
        self.dynamic_scale = self.initial_scale
        self.step_counter = 0
        self.name = name or backend.unique_name("loss_scale_optimizer")
        self.built = False
        self._loss_scaled = False
        self._pending_state: dict | None = None

    def build(self, var_list: Any) -> None:
        """Binds the inner optimizer (and this wrapper, which shares its groups and state)."""
        if self.built:
            return
        self.inner_optimizer.build(var_list)
        torch.optim.Optimizer.__init__(
            self, [p for g in self.inner_optimizer.param_groups for p in g["params"]], {}
        )
        self.param_groups = self.inner_optimizer.param_groups
        self.state = self.inner_optimizer.state
        self.built = True
        if self._pending_state is not None:
            state, self._pending_state = self._pending_state, None
            self.load_own_variables(state)

    # Read-only, as in Keras: the step count is the inner optimizer's.
    @property
    def iterations(self) -> int:  # type: ignore[override]
        return self.inner_optimizer.iterations

    @property
    def learning_rate(self) -> float:
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.inner_optimizer.learning_rate = value

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """`loss` times the current scale; the next `step()` divides the gradients by it."""
        self._loss_scaled = True
        return loss * self.dynamic_scale

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Unscales the gradients and steps the inner optimizer, or skips a non-finite step."""
        self._check_built()
        loss = optim_rules.closure_loss(closure)
        scaled, self._loss_scaled = self._loss_scaled, False
        grads = [p.grad for p in self._params_with_grad() if p.grad is not None]
        if not all(bool(torch.isfinite(g).all()) for g in grads):
            self.dynamic_scale /= 2
            self.step_counter = 0
            return loss
        if scaled:
            torch._foreach_div_(grads, self.dynamic_scale)
        self.inner_optimizer.fast_step()
        self.step_counter += 1
        if self.step_counter >= self.dynamic_growth_steps:
            self.dynamic_scale *= 2
            self.step_counter = 0
        return loss

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "inner_optimizer": serialize(self.inner_optimizer),
            "initial_scale": self.initial_scale,
            "dynamic_growth_steps": self.dynamic_growth_steps,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> LossScaleOptimizer:
        config = dict(config)
        inner = config.pop("inner_optimizer")
        if isinstance(inner, (dict, str)):
            inner = deserialize(inner, custom_objects)
        return cls(inner, **config)

    def save_own_variables(self, store: dict) -> None:
        """Keras's variables: its own iteration and learning rate (unused, 0), the step
        counter and the scale, then the inner optimizer's."""
        store["0"] = np.asarray(0, dtype="int64")
        store["1"] = np.asarray(0.0, dtype="float32")
        store["2"] = np.asarray(self.step_counter, dtype="int64")
        store["3"] = np.asarray(self.dynamic_scale, dtype="float32")
        inner: dict = {}
        self.inner_optimizer.save_own_variables(inner)
        for key, value in inner.items():
            store[str(int(key) + 4)] = value

    def load_own_variables(self, store: dict) -> None:
        """Reads Keras's variables; the inner optimizer checks its part before anything is set.

        Raises:
            ValueError: if the store does not fit, naming what differs.
        """
        by_key = {str(k): np.asarray(v) for k, v in store.items()}
        head = [by_key.get(str(i)) for i in range(4)]
        if any(v is None or v.size != 1 for v in head):
            raise ValueError(
                f"Optimizer '{self.name}': a LossScaleOptimizer's first 4 variables must be "
                "the scalars iteration, learning_rate, step_counter and dynamic_scale. "
                f"Received keys {sorted(by_key, key=lambda k: (len(k), k))}."
            )
        inner = {str(int(k) - 4): v for k, v in by_key.items() if k.isdigit() and int(k) >= 4}
        if len(inner) + 4 != len(by_key):
            raise ValueError(
                f"Optimizer '{self.name}': variables must be keyed '0', '1', ... without "
                f"gaps. Received keys {sorted(by_key)}."
            )
        self.inner_optimizer.load_own_variables(inner)
        self.step_counter = int(by_key["2"].item())
        self.dynamic_scale = float(by_key["3"].item())

    @property
    def _scalars(self) -> int:
        return 4

    def __repr__(self) -> str:
        return f"<LossScaleOptimizer name={self.name!r} inner={self.inner_optimizer!r}>"


class WeightRef:
    """What a `MultiOptimizer`'s selector receives for each weight.

    Attributes:
        path: The weight's Keras path (`"model/bi/forward_lstm/lstm_cell/kernel"`)
            when the optimizer is built by `compile()` or from a birnn model,
            torch's name from `named_parameters()` pairs, None for a bare tensor.
        name: The last part of `path` (`"kernel"`), or None.
        value: The weight itself (a `torch.Tensor`).
        shape: The weight's shape.
        dtype: The weight's dtype.
    """

    def __init__(self, path: str | None, value: torch.Tensor):
        self.path = path
        self.name = path.rsplit("/", 1)[-1] if path is not None else None
        self.value = value
        self.shape = tuple(value.shape)
        self.dtype = value.dtype

    def __repr__(self) -> str:
        return f"<WeightRef path={self.path!r} shape={self.shape}>"


def _check_sub_optimizer(owner: str, argument: str, optimizer: Any, error: type) -> None:
    if not isinstance(optimizer, Optimizer) or isinstance(
        optimizer, (LossScaleOptimizer, MultiOptimizer)
    ):
        raise error(
            f"{owner}: {argument} must be a birnn optimizer instance (not a "
            f"LossScaleOptimizer or MultiOptimizer). Received: {optimizer!r}"
        )


class OptimizerMap(MutableMapping):
    """Maps weight paths to optimizers, for `MultiOptimizer`.

    Keys are weight paths or regular expressions over them. A weight's
    optimizer is the one stored under its exact path; failing that, the one
    whose key matches the *whole* path (`re.fullmatch`): `"encoder/.*"` selects
    every weight of the layer `encoder`, `"encoder"` only a weight with that
    exact path. When several keys match, looking the path up raises a
    `ValueError`; when none does, the result is `default_optimizer`.

    Args:
        default_optimizer: The optimizer of the weights no key selects.
        optimizer_map: Optional dict `{path or regular expression: optimizer}`.

    Examples:

    >>> table = OptimizerMap(RMSprop(name="rms"), {"encoder/.*": SGD(name="sgd")})
    >>> table["decoder"] = Adam(name="adam")
    >>> table["encoder/dense/kernel"].name
    'sgd'
    >>> table["decoder"].name, table["decoder/dense/kernel"].name
    ('adam', 'rms')
    """

    def __init__(self, default_optimizer: Optimizer, optimizer_map: dict | None = None):
        _check_sub_optimizer(
            "OptimizerMap", "argument `default_optimizer`", default_optimizer, TypeError
        )
        if optimizer_map is not None and not isinstance(optimizer_map, Mapping):
            raise TypeError(
                "OptimizerMap: argument `optimizer_map` must be a dict of "
                f"{{path or regular expression: optimizer}}. Received: {optimizer_map!r}"
            )
        self._default = default_optimizer
        self._map: dict[str, Optimizer] = {}
        self._patterns: dict[str, re.Pattern] = {}
        for key, optimizer in (optimizer_map or {}).items():
            self[key] = optimizer

    @property
    def default_optimizer(self) -> Optimizer:
        """The optimizer of the weights no key selects."""
        return self._default

    def __setitem__(self, key: str, optimizer: Optimizer) -> None:
        if not isinstance(key, str):
            raise TypeError(
                f"OptimizerMap: keys must be weight paths or regular expressions (str). "
                f"Received: {key!r}"
            )
        try:
            pattern = re.compile(key)
        except re.error as error:
            raise ValueError(
                f"OptimizerMap: key {key!r} is not a valid regular expression: {error}"
            ) from None
        _check_sub_optimizer(
            "OptimizerMap", f"the optimizer for key {key!r}", optimizer, ValueError
        )
        self._map[key] = optimizer
        self._patterns[key] = pattern

    def __getitem__(self, key: str) -> Optimizer:
        """The optimizer of the weight path `key` (see the class docstring).

        Raises:
            ValueError: if several keys match `key` as regular expressions.
        """
        if key in self._map:
            return self._map[key]
        matches = [k for k, pattern in self._patterns.items() if pattern.fullmatch(key)]
        if len(matches) > 1:
            raise ValueError(
                f"OptimizerMap: Multiple optimizers assigned to variable {key}: the keys "
                f"{matches} all match it. Make the patterns exclusive."
            )
        return self._map[matches[0]] if matches else self._default

    def __delitem__(self, key: str) -> None:
        del self._map[key]
        del self._patterns[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def __call__(self, variable: Any) -> Optimizer:
        """The optimizer of `variable` (anything with a `.path`, such as a `WeightRef`)."""
        path = variable.path
        if path is None:
            if self._map:
                raise ValueError(
                    "OptimizerMap: this weight has no path to match the keys "
                    f"{list(self._map)} against (built from bare tensors). Build the "
                    "optimizer from a birnn model (`opt.build(model)`, as compile() does) "
                    "or from `(name, tensor)` pairs."
                )
            return self._default
        return self[path]

    def optimizers(self) -> list[Optimizer]:
        """Each distinct optimizer once: the mapped ones in key order, then the default."""
        out: list[Optimizer] = []
        for optimizer in [*self._map.values(), self._default]:
            if not any(optimizer is seen for seen in out):
                out.append(optimizer)
        return out

    def get_config(self) -> dict:
        return {
            "default_optimizer": serialize(self._default),
            "optimizer_map": {key: serialize(opt) for key, opt in self._map.items()},
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> OptimizerMap:
        default = deserialize(config["default_optimizer"], custom_objects)
        table = {
            key: deserialize(value, custom_objects)
            for key, value in (config.get("optimizer_map") or {}).items()
        }
        return cls(default, table)

    def __repr__(self) -> str:
        return f"<OptimizerMap default={self._default!r} keys={list(self._map)}>"


class MultiOptimizer(Optimizer):
    """Updates each weight with the optimizer that a selector picks for it.

    The selector is an `OptimizerMap` (weight paths or regular expressions to
    optimizers, with a default) or a callable that takes a `WeightRef` (with the
    weight's Keras `path`, its `name` and the tensor as `value`) and returns a
    birnn optimizer; every weight is assigned once, when the optimizer is built.
    Each sub-optimizer then runs its own update (its own learning rate,
    schedule, clipping and `iterations`) on its weights; `step()` steps them all.

    There is no single learning rate: reading or setting `learning_rate` raises
    an `AttributeError`; use the sub-optimizers (`.optimizers`). Weight paths are
    Keras's when the optimizer is built by `compile()` or from a birnn model
    (`opt.build(model)`), torch's names when built from `named_parameters()`
    pairs; a bare tensor has none (path None).

    A callable selector is saved by reference (a registered or importable
    function) as Keras does; a lambda needs `safe_mode=False` to load.

    Args:
        optimizer_map: An `OptimizerMap` or a callable `WeightRef -> optimizer`.
        loss_scale_factor: Must be None (as birnn's other optimizers).
        name: Name of the optimizer.

    Examples:

    >>> import torch
    >>> kernel = torch.nn.Parameter(torch.ones(2))
    >>> bias = torch.nn.Parameter(torch.ones(2))
    >>> opt = MultiOptimizer(OptimizerMap(SGD(0.1), {".*bias": SGD(1.0)}))
    >>> opt.build([("dense/kernel", kernel), ("dense/bias", bias)])
    >>> kernel.grad, bias.grad = torch.ones(2), torch.ones(2)
    >>> _ = opt.step()
    >>> kernel.tolist(), bias.tolist()
    ([0.8999999761581421, 0.8999999761581421], [0.0, 0.0])
    >>> [o.learning_rate for o in opt.optimizers], opt.iterations
    ([1.0, 0.1], 1)
    """

    def __init__(
        self,
        optimizer_map: OptimizerMap | Callable[[WeightRef], Optimizer],
        loss_scale_factor: float | None = None,
        name: str | None = None,
    ):
        if not isinstance(optimizer_map, OptimizerMap) and not callable(optimizer_map):
            raise TypeError(
                "MultiOptimizer: argument `optimizer_map` must be an OptimizerMap or a "
                f"callable that returns an optimizer for a weight. Received: {optimizer_map!r}"
            )
        if loss_scale_factor is not None:
            raise ValueError(
                "MultiOptimizer: argument `loss_scale_factor` is not supported by birnn "
                f"(use a LossScaleOptimizer). Received: loss_scale_factor={loss_scale_factor}"
            )
        self.optimizer_map = optimizer_map
        self.loss_scale_factor = loss_scale_factor
        self.name = name or backend.unique_name("multi_optimizer")
        self.iterations = 0
        self.built = False
        self._schedule = None
        self._options = dict(_BASE_DEFAULTS)
        self._pending_state: dict | None = None
        self._chosen: list[Optimizer] = []

    @property
    def optimizers(self) -> list[Optimizer]:
        """The sub-optimizers. With a callable selector: those it returned (once built)."""
        if isinstance(self.optimizer_map, OptimizerMap):
            return self.optimizer_map.optimizers()
        return list(self._chosen)

    @property
    def learning_rate(self) -> float:
        raise AttributeError(
            f"MultiOptimizer '{self.name}': the learning rate cannot be accessed on a "
            "MultiOptimizer. Access it on the individual sub-optimizers "
            "(`.optimizers`) instead."
        )

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        raise AttributeError(
            f"MultiOptimizer '{self.name}': the learning rate cannot be set on a "
            "MultiOptimizer. Set it on the individual sub-optimizers (`.optimizers`) instead."
        )

    def build(self, var_list: Any) -> None:
        """Assigns every weight its sub-optimizer and builds each of them (once).

        Args:
            var_list: As `Optimizer.build`: a birnn model (its weights' Keras paths
                are matched), `(name, tensor)` pairs, or bare tensors.

        Raises:
            ValueError: if the selector returns no optimizer, several patterns match
                one weight, or a sub-optimizer is already built.
        """
        if self.built:
            return
        params, names = _named_trainables(self.name, var_list)
        if not params:
            raise ValueError(
                f"Optimizer '{self.name}' was given no trainable parameters to optimize."
            )
        given: list[str | None] = list(names) if names is not None else [None] * len(params)
        chosen: list[Optimizer] = []
        assigned: dict[int, list] = {}
        for name, param in zip(given, params):
            optimizer = self.optimizer_map(WeightRef(name, param))
            _check_sub_optimizer(
                f"MultiOptimizer '{self.name}'",
                f"what the selector returned for the weight {name!r}",
                optimizer,
                ValueError,
            )
            if not any(optimizer is seen for seen in chosen):
                chosen.append(optimizer)
            assigned.setdefault(id(optimizer), []).append(param if name is None else (name, param))
        subs = (
            self.optimizer_map.optimizers()
            if isinstance(self.optimizer_map, OptimizerMap)
            else chosen
        )
        for optimizer in subs:
            if optimizer.built:
                raise ValueError(
                    f"MultiOptimizer '{self.name}': its sub-optimizer '{optimizer.name}' is "
                    "already built; give each MultiOptimizer fresh optimizers."
                )
        self._chosen = chosen
        for optimizer in subs:
            if id(optimizer) in assigned:
                optimizer.build(assigned[id(optimizer)])
        torch.optim.Optimizer.__init__(self, params, {})
        self.param_groups = [group for o in subs if o.built for group in o.param_groups]
        self.built = True
        if self._pending_state is not None:
            state, self._pending_state = self._pending_state, None
            self.load_own_variables(state)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Steps every sub-optimizer that holds weights."""
        self._check_built()
        loss = optim_rules.closure_loss(closure)
        self.iterations += 1
        for optimizer in self.optimizers:
            if optimizer.built:
                optimizer.fast_step()
        return loss

    def state_dict(self) -> dict:
        """Each sub-optimizer's `state_dict()` (None for one without weights), and
        `iterations`."""
        self._check_built()
        return {
            "optimizers": [o.state_dict() if o.built else None for o in self.optimizers],
            "keras": {"iterations": self.iterations},
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Loads `state_dict()`'s output."""
        self._check_built()
        states = state_dict.get("optimizers")
        subs = self.optimizers
        if not isinstance(states, list) or len(states) != len(subs):
            raise ValueError(
                f"MultiOptimizer '{self.name}': expected a state dict with one entry per "
                f"sub-optimizer ({len(subs)}), as `state_dict()` writes."
            )
        for optimizer, state in zip(subs, states):
            if optimizer.built and state is not None:
                optimizer.load_state_dict(state)
        self.iterations = int(state_dict.get("keras", {}).get("iterations", self.iterations))

    def get_config(self) -> dict:
        from birnn.saving import lambdas
        from birnn.saving.serialization import serialize_keras_object

        if isinstance(self.optimizer_map, OptimizerMap):
            selector = {
                "module": "keras.optimizers",
                "class_name": "OptimizerMap",
                "config": self.optimizer_map.get_config(),
                "registered_name": None,
            }
        elif lambdas.is_lambda(self.optimizer_map):  # Keras's form outside a layer
            inner = lambdas.serialize_lambda(self.optimizer_map)["config"]
            value = [inner["code"], inner["defaults"], inner["closure"]]
            selector = {"class_name": "__lambda__", "config": {"value": value}}
        else:
            selector = serialize_keras_object(self.optimizer_map)
        return {
            "optimizer_map": selector,
            "loss_scale_factor": self.loss_scale_factor,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> MultiOptimizer:
        from birnn.saving.serialization import _scoped_objects, deserialize_keras_object

        # A lambda selector's globals are the custom objects, also those of load_model's scope.
        custom_objects = {**_scoped_objects(), **(custom_objects or {})}
        config = dict(config)
        selector = config.pop("optimizer_map")
        if isinstance(selector, dict) and selector.get("class_name") == "OptimizerMap":
            selector = OptimizerMap.from_config(selector["config"], custom_objects)
        elif isinstance(selector, (dict, str)):
            selector = deserialize_keras_object(selector, custom_objects)
        return cls(selector, **config)

    # ------------------------------------------------------------------ Keras state
    def saved_children(self) -> dict[str, Optimizer]:
        """The sub-optimizers under the names Keras gives their `.keras` groups."""
        out: dict[str, Optimizer] = {}
        for optimizer in self.optimizers:
            base = backend.to_snake_case(type(optimizer).__name__)
            key, count = base, 0
            while key in out:
                count += 1
                key = f"{base}_{count}"
            out[key] = optimizer
        return out

    def save_own_variables(self, store: dict) -> None:
        """Keras's variables: its own iteration and learning rate (unused, 0), then
        each sub-optimizer's, in `.optimizers` order."""
        store["0"] = np.asarray(self.iterations, dtype="int64")
        store["1"] = np.asarray(0.0, dtype="float32")
        for optimizer in self.optimizers:
            inner: dict = {}
            optimizer.save_own_variables(inner)
            for index in range(len(inner)):
                store[str(len(store))] = inner[str(index)]

    def load_own_variables(self, store: dict) -> None:
        """Reads Keras's variables; every part is checked before anything is set.

        Raises:
            ValueError: if the store does not fit, naming what differs.
        """
        by_key = {str(k): np.asarray(v) for k, v in store.items()}
        if sorted(by_key) != sorted(str(i) for i in range(len(by_key))):
            raise ValueError(
                f"Optimizer '{self.name}': variables must be keyed '0', '1', ... without "
                f"gaps. Received keys {sorted(by_key)}."
            )
        values = [by_key[str(i)] for i in range(len(by_key))]
        if len(values) < 2 or any(v.size != 1 for v in values[:2]):
            raise ValueError(
                f"Optimizer '{self.name}': a MultiOptimizer's first 2 variables must be the "
                f"scalars iteration and learning_rate. Received shapes "
                f"{[v.shape for v in values[:2]]}."
            )
        if not self.built:
            self._pending_state = dict(store)
            return
        parts, start = [], 2
        for optimizer in self.optimizers:
            count = len(optimizer.variables)
            parts.append(
                (optimizer, {str(i): v for i, v in enumerate(values[start : start + count])})
            )
            start += count
        if start != len(values):
            raise ValueError(
                f"Optimizer '{self.name}' (MultiOptimizer over {len(parts)} optimizers) "
                f"expects {start} variables, the file has {len(values)} (saved with another "
                "optimizer or model?)."
            )
        for optimizer, part in parts:
            optimizer.check_variables(part)
        for optimizer, part in parts:
            optimizer.load_own_variables(part)
        self.iterations = int(values[0].item())

    def __repr__(self) -> str:
        return f"<MultiOptimizer name={self.name!r} optimizers={self.optimizers!r}>"


_CLASSES = (
    SGD,
    Adam,
    AdamW,
    Adamax,
    Nadam,
    Adagrad,
    Adadelta,
    RMSprop,
    Lion,
    Lamb,
    Ftrl,
    Adafactor,
    Muon,
    ScheduleFreeAdamW,
)
_REGISTRY = KerasRegistry(
    "optimizer",
    "keras.optimizers",
    {
        **{cls.__name__.lower(): cls for cls in _CLASSES},
        **{cls.__name__: cls for cls in _CLASSES},
        "Optimizer": Optimizer,
        "LossScaleOptimizer": LossScaleOptimizer,
        "MultiOptimizer": MultiOptimizer,
        "OptimizerMap": OptimizerMap,
    },
)


def get(identifier: Any) -> torch.optim.Optimizer:
    """An optimizer from a Keras name (`"rmsprop"`, `"adam"`...), a config, or an instance.

    `torch.optim.Optimizer` instances (including birnn's) are returned as they are.

    Raises:
        ValueError: for an unknown name or an object that is no optimizer.
    """
    if isinstance(identifier, torch.optim.Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, (str, dict)):
        obj = _REGISTRY.deserialize(identifier)
        if isinstance(obj, torch.optim.Optimizer):
            return obj
    raise ValueError(
        f"Could not interpret optimizer identifier: {identifier!r}. Expected one of "
        f"{sorted(cls.__name__.lower() for cls in _CLASSES)}, a serialized optimizer, or "
        "a torch.optim.Optimizer instance."
    )


def _from_torch(opt: torch.optim.Optimizer) -> Optimizer | None:
    """The Keras-equivalent birnn optimizer of a plain `torch.optim` one (for configs)."""
    group = opt.defaults
    lr = float(opt.param_groups[0]["lr"]) if opt.param_groups else float(group.get("lr", 1e-3))
    if type(opt) is torch.optim.AdamW:
        b1, b2 = group["betas"]
        return AdamW(lr, group["weight_decay"], b1, b2, group["eps"], group["amsgrad"])
    if type(opt) is torch.optim.Adam:
        b1, b2 = group["betas"]
        return Adam(lr, b1, b2, group["eps"], group["amsgrad"])
    if type(opt) is torch.optim.SGD:
        return SGD(lr, group["momentum"], group["nesterov"])
    if type(opt) is torch.optim.Adagrad:
        return Adagrad(lr, group["initial_accumulator_value"], group["eps"])
    return None


def serialize(optimizer: Any) -> dict | None:
    """Keras 3's serialized form of an optimizer.

    A plain `torch.optim` Adam/AdamW/SGD/Adagrad is written as the Keras optimizer
    with the same hyperparameters; other foreign optimizers give `None`.
    """
    if optimizer is None:
        return None
    if not isinstance(optimizer, Optimizer) and isinstance(optimizer, torch.optim.Optimizer):
        optimizer = _from_torch(optimizer)
        if optimizer is None:
            return None
    return _REGISTRY.serialize(optimizer)


def deserialize(config: Any, custom_objects: dict | None = None) -> Any:
    """The optimizer a serialized form describes (Keras's module paths are accepted)."""
    return _REGISTRY.deserialize(config, custom_objects)


# `keras.optimizers.schedules` is a submodule; `birnn.optimizers` is one module, so its
# `schedules` (birnn.schedules) is registered under that name for `from ... import`.
sys.modules[f"{__name__}.schedules"] = schedules
