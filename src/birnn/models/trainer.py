"""`compile`, `fit`, `evaluate`, `predict` and the `*_on_batch` methods of `Model`.

The loop is plain PyTorch: forward with `training=True`, loss (compiled losses
plus `model.losses`), `backward`, `optimizer.step()`, weight constraints.
Metrics accumulate on the model's device; values reach the host only when the
progress bar draws or an epoch ends.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from birnn import backend, tree
from birnn import callbacks as callbacks_module
from birnn import metrics as metrics_module
from birnn import optimizers as optimizers_module
from birnn.distribution import data_parallel as distribution_lib
from birnn.distribution import runtime as distributed
from birnn.layers.layer import Layer, config_version
from birnn.models import data_adapter, jit
from birnn.models.compile_utils import CompiledLoss, CompiledMetrics, check_identifiers
from birnn.ops import threads

# A step whose work, in the model's parameters times the rows of its inputs (about the
# multiply-adds of a forward pass), is below this runs on one intra-op thread
# (`birnn.ops.threads`). At such sizes a second thread saves nothing, while the
# OpenMP regions that torch opens even for tiny matrix products and softmaxes wait
# for it and leave it spinning: on the seed model (about 7e5) the train step at one
# thread took 0.90-0.97x the wall time of two and half the CPU time on a lightly
# loaded machine, 0.83x the wall time with other processes running; at 1.4e6
# to 3.4e6 two threads were level or up to 13% faster, the native kernels running
# both directions at once (`benchmarks/step_threads.py`).
_ONE_THREAD_STEP_WORK = 1.0e6


def _cpu_rows(inputs: torch.Tensor | list) -> int | None:
    """The rows (values over the last axis) of a batch's input tensors; `None` when one
    is not a CPU tensor."""
    rows = 0
    for tensor in [inputs] if isinstance(inputs, torch.Tensor) else inputs:
        if not isinstance(tensor, torch.Tensor) or tensor.device.type != "cpu":
            return None
        rows += (
            tensor.numel() // tensor.shape[-1]
            if tensor.ndim > 1 and tensor.shape[-1]
            else tensor.numel()
        )
    return rows


def _all_modules(root: torch.nn.Module) -> list[torch.nn.Module]:
    """`list(root.modules())`: the same modules, in the same order (depth first, each
    once), read from torch's module tables without `named_modules`'s nested generators
    (every step walks the tree; the generators cost more than twice as much)."""
    found: list[torch.nn.Module] = []
    seen: set[torch.nn.Module] = set()

    def visit(module: torch.nn.Module) -> None:
        seen.add(module)
        found.append(module)
        for child in module._modules.values():
            if child is not None and child not in seen:
                visit(child)

    visit(root)
    return found


def _in_mode(training: bool):
    """Runs a method with every module in train (or eval) mode, then restores each mode.

    `fit` trains, `evaluate`/`predict` infer, for torch modules inside the model
    (`nn.Dropout`, `nn.BatchNorm1d`) as for birnn layers; each module gets back
    the mode it had.
    """

    def decorate(method):
        @functools.wraps(method)
        def run(self, *args, **kwargs):
            modules = _all_modules(self)
            switched = [m for m in modules if m.training != training]
            for module in switched:
                object.__setattr__(module, "training", training)
            # The walk also serves the step's fit-state cache (`_cache_fit_state`).
            outer = self.__dict__.get("_walked_modules")
            self.__dict__["_walked_modules"] = modules
            try:
                return method(self, *args, **kwargs)
            finally:
                self.__dict__["_walked_modules"] = outer
                for module in switched:
                    object.__setattr__(module, "training", not training)

        return run

    return decorate


def _resolve_verbose(verbose: Any) -> int:
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2, True, False):
        raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2. Received: {verbose!r}")
    return int(verbose) if distribution_lib.is_primary() else 0


# Marks a cached fit state as its model's own: a copy of a model (`deepcopy`, pickle) holds
# a copy of this object, and so never takes its original's cached state for its own.
_ORIGINAL = object()


class Trainer:
    """Mixin with Keras's training API; `Model` inherits it."""

    compiled = False
    jit_compile: bool = False  # Keras's attribute: whether the steps run through torch.compile
    run_eagerly: bool = False
    optimizer: Any = None
    stop_training = False
    history: Any = None
    _distributed: distributed.Runtime | None = None  # set during a distributed call

    if TYPE_CHECKING:
        # What the loop uses of the class that mixes it in: `Model`, a `Layer` (an nn.Module).
        name: str
        built: bool
        __call__: Callable[..., Any]

        @property
        def trainable_weights(self) -> list[torch.nn.Parameter]: ...
        @property
        def losses(self) -> list[torch.Tensor]: ...
        def apply_constraints(self) -> None: ...
        def _device(self) -> torch.device | None: ...
        def modules(self, remove_duplicate: bool = True) -> Iterator[torch.nn.Module]: ...
        def buffers(self, recurse: bool = True) -> Iterator[torch.Tensor]: ...
        def zero_grad(self, set_to_none: bool = True) -> None: ...
        def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...
        def _config_cached(self, key: Any, compute: Callable[[], Any]) -> Any: ...

    # ------------------------------------------------------------------ compile
    def compile(
        self,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        loss_weights: Any = None,
        metrics: Any = None,
        weighted_metrics: Any = None,
        run_eagerly: bool = False,
        steps_per_execution: int = 1,
        jit_compile: Any = "auto",
        auto_scale_loss: bool = True,
    ) -> None:
        """Configures the model for training.

        Args:
            optimizer: A Keras optimizer name (`"rmsprop"`, `"adam"`...), a birnn
                optimizer, or any `torch.optim.Optimizer` over this model's parameters.
            loss: A loss name, function or `Loss`; or a list/dict of those, one per
                output (a single loss applies to every output).
            loss_weights: Scalars weighting each output's loss (list or dict).
            metrics: Metric names/functions/objects: a list for one output; for
                several, a dict by output name or a list with one entry (a metric or
                a list of metrics) per output, as in Keras 3. `"accuracy"` picks the
                binary, categorical or sparse variant from the shapes, like Keras.
            weighted_metrics: Metrics that use `sample_weight`/`class_weight` (named
                `weighted_<name>` when a plain metric has the same name).
            run_eagerly: Keras's switch to debug eagerly; birnn is eager unless
                `jit_compile` is on, and `run_eagerly=True` turns that off.
            steps_per_execution: Accepted for Keras compatibility (must be 1).
            jit_compile: `True` runs each training step's forward pass and loss
                as one `torch.compile`d graph (`backward()` runs the backward
                graph derived from it), the optimizer's update rule as another
                (birnn's `RMSprop`; other optimizers update eagerly), and the
                forward pass of `predict`/`evaluate` steps; metrics, constraints
                and callbacks stay eager. The first training step runs eagerly
                and the next ones pay for the compilation. `"auto"` (default) and
                `False` run eagerly, as Keras on the torch backend does for
                `"auto"`. Where `torch.compile` cannot run (no C++ compiler, say),
                a warning says so and the model runs eagerly.
            auto_scale_loss: Under the `mixed_float16` policy (the model's), wrap a
                birnn optimizer in a `LossScaleOptimizer`, as Keras does.

        Raises:
            ValueError: an unknown optimizer, loss or metric name, or a
                `jit_compile` other than True, False or "auto".
        """
        optimizer_object = optimizers_module.get(optimizer)
        self._compile_optimizer = optimizer_object  # what the compile config records
        if (
            auto_scale_loss
            and getattr(getattr(self, "dtype_policy", None), "name", None) == "mixed_float16"
            and isinstance(optimizer_object, optimizers_module.Optimizer)
            and not isinstance(optimizer_object, optimizers_module.LossScaleOptimizer)
        ):
            optimizer_object = optimizers_module.LossScaleOptimizer(optimizer_object)
        self.optimizer = optimizer_object
        check_identifiers(loss, metrics)
        check_identifiers(None, weighted_metrics)
        if steps_per_execution not in (1, None):
            warnings.warn("birnn ignores `steps_per_execution`; it runs one step at a time.")
        self.run_eagerly = bool(run_eagerly)
        self.jit_compile = jit.resolve(jit_compile, self.run_eagerly)
        jit.forget(self)
        self._compile_config = {
            "optimizer": optimizer if isinstance(optimizer, str) else None,
            "loss": loss,
            "loss_weights": loss_weights,
            "metrics": metrics,
            "weighted_metrics": weighted_metrics,
        }
        self.__dict__["_loss_spec"] = loss  # a torch loss module is not a submodule
        self._reset_compiled_state()
        self._layout_cache: tuple[list[str], dict | None] | None = None
        if getattr(self, "_graph", None) is not None:
            self._ensure_compiled_objects()  # structure errors surface in compile()
        self.compiled = True
        self.stop_training = False
        self._maybe_build_optimizer()

    def _reset_compiled_state(self) -> None:
        self._compiled_loss: CompiledLoss | None = None
        self._compiled_metrics: CompiledMetrics | None = None
        self._loss_tracker = metrics_module.Mean(name="loss")
        self._fit_state: dict | None = None

    def _maybe_build_optimizer(self) -> None:
        opt = self.optimizer
        if isinstance(opt, optimizers_module.Optimizer) and not opt.built and self.built:
            if any(p.requires_grad for p in self.trainable_weights):
                opt.build(self)  # the weights named by their Keras paths (Muon needs them)

    def _assert_compiled(self, method: str) -> None:
        if not self.compiled:
            raise RuntimeError(
                f"You must call `compile()` before using the model. Model '{self.name}' was "
                f"not compiled before calling `{method}()`."
            )

    @property
    def metrics(self) -> list:
        """The loss tracker and the compiled metrics (those built so far)."""
        if not self.compiled:
            return []
        out: list = [self._loss_tracker]
        if self._compiled_loss is not None:
            out.extend(self._compiled_loss.trackers)
        if self._compiled_metrics is not None and self._compiled_metrics.metrics:
            out.extend(m for _, _, m in self._compiled_metrics.metrics)
        return out

    @property
    def metrics_names(self) -> list[str]:
        """Keras 3's names: `"loss"`, then `"compile_metrics"` standing for every metric
        given to `compile`, then the per-output loss trackers."""
        if not self.compiled:
            return []
        names = ["loss"]
        cfg = self._compile_config
        if cfg["metrics"] is not None or cfg["weighted_metrics"] is not None:
            names.append("compile_metrics")
        built = self._compiled_metrics is not None and self._compiled_metrics.metrics is not None
        if built and self._compiled_loss is not None:  # Keras lists them once a batch ran
            names.extend(t.name for t in self._compiled_loss.trackers)
        return names

    def reset_metrics(self) -> None:
        """Resets the state of every metric (called at the start of each epoch)."""
        for m in self.metrics:
            m.reset_state()

    # ------------------------------------------------------------------ structures
    def _output_layout(self, y_pred: Any = None) -> tuple[list[str], dict | None]:
        """Flat output names and, for dict outputs, each top-level key's names.

        A functional model knows them from its graph; a subclassed one learns them
        from its first outputs (dict keys, else `output_1`, `output_2`...).
        """
        layout = getattr(self, "_layout_cache", None)
        if layout is not None:
            return layout
        graph = getattr(self, "_graph", None)
        names = getattr(self, "output_names", None)
        struct = graph.outputs if graph is not None else y_pred
        if struct is None:
            return (list(names) if names else ["output"]), None
        paths = [path for path, _ in tree.flatten_with_path(struct)]
        if graph is None or not names:
            if len(paths) == 1:
                names = ["output"]
            elif isinstance(struct, dict):
                names = ["/".join(str(p) for p in path) for path in paths]
            else:
                names = [f"output_{i + 1}" for i in range(len(paths))]
        groups: dict[Any, list[str]] | None = None
        if isinstance(struct, dict):
            groups = {}
            for path, name in zip(paths, names):
                groups.setdefault(path[0], []).append(name)
        layout = (list(names), groups)
        self._layout_cache = layout
        return layout

    def _output_names(self) -> list[str]:
        return self._output_layout()[0]

    def _flat_targets(self, y: Any, y_pred: Any) -> tuple[list, list]:
        """`y_true` and `y_pred` as aligned flat lists, one entry per output.

        `y` may mirror the outputs' structure (lists, dicts with the same keys), be a
        dict keyed by output name, or be a single array for a single output.
        """
        if isinstance(y_pred, torch.Tensor) and (y is None or isinstance(y, torch.Tensor)):
            return [y], [y_pred]  # the usual batch of a one-output model
        names, groups = self._output_layout(y_pred)
        flat_pred = tree.flatten(y_pred)
        n = len(flat_pred)
        if y is None:
            flat_true = [None] * n
        elif isinstance(y, dict):
            if all(k in names for k in y):
                flat_true = [y.get(name) for name in names]
            elif groups is not None and all(k in groups for k in y):
                flat_true = []
                for key in groups:
                    value = y.get(key)
                    leaves = tree.flatten(value) if value is not None else []
                    flat_true.extend(leaves or [None] * len(groups[key]))
            elif n == 1 and len(y) == 1:
                flat_true = list(y.values())
            else:
                unknown = [k for k in y if k not in names and k not in (groups or {})]
                raise ValueError(
                    f"Targets given for unknown outputs {unknown}; the model's outputs are "
                    f"{names}."
                )
        elif isinstance(y, (list, tuple)):
            flat_true = tree.flatten(y) if n > 1 else list(y)
        else:
            flat_true = [y]
        if len(flat_true) != n:
            raise ValueError(
                f"The model has {n} output(s) {names}, but {len(flat_true)} target "
                "array(s) were given."
            )
        return flat_true, flat_pred

    def _ensure_compiled_objects(self, y_pred: Any = None) -> None:
        if self._compiled_loss is None:
            names, groups = self._output_layout(y_pred)
            cfg = self._compile_config
            self._compiled_loss = CompiledLoss(cfg["loss"], cfg["loss_weights"], names, groups)
            self._compiled_metrics = CompiledMetrics(
                cfg["metrics"], cfg["weighted_metrics"], names, groups
            )

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> torch.Tensor:
        """The compiled loss of a batch plus the model's regularization losses."""
        self._ensure_compiled_objects(y_pred)
        flat_true, flat_pred = self._flat_targets(y, y_pred)
        flat_sw = self._flat_sample_weights(sample_weight, len(flat_pred))
        assert self._compiled_loss is not None  # made by _ensure_compiled_objects
        runtime = self._distributed
        # Distributed, each process's loss trackers count its slice's share of the batch.
        self._compiled_loss.tracker_weight = None if runtime is None else runtime.share()
        total = self._compiled_loss(flat_true, flat_pred, flat_sw)
        extra = self._extra_losses()
        if extra:
            reg = torch.stack(
                [torch.as_tensor(v, dtype=torch.float32).reshape(()) for v in extra]
            ).sum()
            total = reg if total is None else total + reg.to(total.device)
        if total is None:
            raise ValueError(
                f"Model '{self.name}' has no loss to minimize: compile it with `loss=...` "
                "(or add losses with `add_loss`)."
            )
        return total

    def _flat_sample_weights(self, sample_weight: Any, n: int) -> list:
        if sample_weight is None:
            return [None] * n
        if isinstance(sample_weight, dict):
            names, groups = self._output_layout()
            if groups is not None and not all(k in names for k in sample_weight):
                by_name: dict[str, Any] = {}
                for key, members in groups.items():
                    value = sample_weight.get(key)
                    leaves = tree.flatten(value) if isinstance(value, (list, tuple)) else None
                    by_name.update(zip(members, leaves or [value] * len(members)))
                return [by_name.get(name) for name in names]
            return [sample_weight.get(name) for name in names]
        if isinstance(sample_weight, (list, tuple)) and n > 1:
            return tree.flatten(sample_weight)
        return [sample_weight] * n

    def _update_metrics(
        self, y: Any, y_pred: Any, sample_weight: Any, loss: torch.Tensor, batch_size: int
    ) -> None:
        with torch.no_grad():
            tracker = self._loss_tracker
            tracker.to_device(loss.device)
            tracker.total.add_(loss.detach() * batch_size)
            tracker.count.add_(batch_size)
            compiled = self._compiled_metrics
            if compiled is not None and compiled.metrics != []:  # none, once built: skip
                flat_true, flat_pred = self._flat_targets(y, y_pred)
                flat_sw = self._flat_sample_weights(sample_weight, len(flat_pred))
                compiled.update(flat_true, flat_pred, flat_sw)

    def _logs(self) -> dict[str, Any]:
        """Current metric values, keys sorted like Keras's logs (across processes when
        a distribution is set).

        Scalar results are floats; a metric with several values (`F1Score` with
        `average=None` scores each class) gives a NumPy array, as in Keras.
        """
        if self._distributed is not None:
            return self._distributed.logs(self._local_logs)
        return self._local_logs()

    def _local_logs(self) -> dict[str, Any]:
        values = {"loss": self._loss_tracker.result()}
        if self._compiled_loss is not None:
            for tracker in self._compiled_loss.trackers:
                values[tracker.name] = tracker.result()
        if self._compiled_metrics is not None:
            for _, _, m in self._compiled_metrics.metrics or []:
                values[m.name] = m.result()
        keys = sorted(values)
        scalar = [k for k in keys if values[k].numel() == 1]
        floats: list[Any]
        if len(scalar) == 1:  # the loss alone, usually: one value to read, no stack to build
            floats = [values[scalar[0]].float().item()]
        else:
            floats = torch.stack([values[k].float().reshape(()) for k in scalar]).cpu().tolist()
        logs = dict(zip(scalar, floats))
        for k in keys:
            if k not in logs:
                logs[k] = values[k].detach().float().cpu().numpy()
        return {k: logs[k] for k in keys}

    # ------------------------------------------------------------------ steps
    def _model_device(self) -> torch.device | None:
        device = self._device()  # cached by the model until it moves
        if device is not None:
            return device
        for b in self.buffers():
            return b.device
        return None

    def _begin_distributed(self) -> distributed.Runtime | None:
        """The runtime of a `fit`/`evaluate`/`predict` call (`None` without a distribution)."""
        runtime = distributed.begin(self, self._distributed)
        if runtime is not None:
            self._distributed = runtime
        return runtime

    def _end_distributed(self, runtime: distributed.Runtime | None) -> None:
        """Ends what `_begin_distributed` started."""
        if distributed.end(runtime):
            self._distributed = None
            if self._compiled_loss is not None:
                self._compiled_loss.tracker_weight = None

    def _prepare_fit_state(self, modules: list | None = None) -> dict:
        """Caches what each step needs from the layer tree (walking it costs per batch).

        `modules`: `self.modules()` already walked at the start of this call, if any.
        """
        layers, params, seen = [], [], set()
        regularizers, has_constraints = [], False
        for module in self.modules() if modules is None else modules:  # depth first, once
            if isinstance(module, Layer):
                layers.append(module)
                own = module.direct_parameters()
                for name, spec in module.own_weight_specs().items():
                    has_constraints = has_constraints or spec.constraint is not None
                    if spec.regularizer is not None and spec.trainable and module.trainable:
                        regularizers.append((getattr(module, name), spec.regularizer))
            else:
                own = list(module.parameters(recurse=False))
            for p in own:
                if id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        state = {
            "layers": layers,
            "regularizers": regularizers,
            "has_constraints": has_constraints,
            # Every parameter, in the order of `self.parameters()`: the step clears each
            # one's gradient, a frozen one's too (else the optimizer would apply its last).
            "params": params,
        }
        self._set_fit_state(state)
        return state

    def _set_fit_state(self, state: dict | None) -> None:
        # Into `__dict__`, not through `setattr`: a per-step cache, not configuration
        # (setting a layer attribute drops the layers' cached facts, `config_version`).
        self.__dict__["_fit_state"] = state

    def _cache_fit_state(self) -> None:
        """Caches the fit state when every layer has its weights (else the first step does).

        The state of the last call serves again while the layer tree is the same: the
        same modules, no attribute of any layer set since (`config_version()`: adding
        weights, building, `trainable`, replacing a weight), and the same parameters on
        the torch modules in the tree (they are no birnn layers: setting theirs bumps no
        version).
        """
        modules = self.__dict__.get("_walked_modules")
        if modules is None:
            modules = list(self.modules())
        version = config_version()
        torch_params = [
            p for m in modules if not isinstance(m, Layer) for p in m.parameters(recurse=False)
        ]
        memo = self.__dict__.get("_fit_state_memo")
        if (
            memo is not None
            and memo[0] is _ORIGINAL
            and memo[1] == version
            and memo[2] == modules
            and len(memo[3]) == len(torch_params)
            and all(a is b for a, b in zip(memo[3], torch_params))
        ):
            self._set_fit_state(memo[4])
            return
        state = self._prepare_fit_state(modules)
        memo = (_ORIGINAL, version, list(modules), torch_params, state)
        if not all(layer.built for layer in state["layers"]):
            self._set_fit_state(None)
            memo = None
        # Into `__dict__`: a cache, not configuration (a `setattr` would bump the version).
        self.__dict__["_fit_state_memo"] = memo

    def _extra_losses(self) -> list:
        """`self.losses` (add_loss and regularizers), from the cached tree during `fit`."""
        state = self._fit_state
        if state is None:
            return self.losses
        out = [loss for layer in state["layers"] for loss in layer._call_losses]
        out.extend(reg(param) for param, reg in state["regularizers"])
        return out

    def _batch_logs(self) -> Any:
        """Logs for batch-level hooks: computed when read, or at once when distributed
        (computing them is then a collective that every process must join)."""
        if self._distributed is not None:
            return self._logs()
        return callbacks_module.LazyLogs(self._logs)

    def _batch_size_of(self, x: Any) -> int:
        for t in tree.flatten(x):
            if isinstance(t, torch.Tensor) and t.dim() > 0:
                return int(t.shape[0])
        return 1

    def _step_threads(self, x: Any) -> threads.OneIntraOpThread:
        """One intra-op thread for a step on `x` whose work is below `_ONE_THREAD_STEP_WORK`."""
        inputs = x if isinstance(x, torch.Tensor) else tree.flatten(x)
        rows = _cpu_rows(inputs)
        if rows is None:
            return threads.OneIntraOpThread(active=False)
        parameters = self._config_cached("parameter_count", self._built_parameter_count)
        return threads.OneIntraOpThread(active=rows * parameters < _ONE_THREAD_STEP_WORK)

    def _built_parameter_count(self) -> int:
        """The scalars in the weights built so far (a layer not yet built has none)."""
        return sum(
            p.numel()
            for p in self.parameters()
            if not isinstance(p, torch.nn.parameter.UninitializedParameter)
        )

    def _traced_train_part(self, x: Any, y: Any, sample_weight: Any) -> tuple[Any, Any]:
        """The part of a compiled training step that runs in one graph: forward pass,
        loss and the metrics' updates (the graph updates their state in place)."""
        y_pred = self(x, training=True)
        loss = self.compute_loss(x, y, y_pred, sample_weight, training=True)
        self._update_metrics(y, y_pred, sample_weight, loss, self._batch_size_of(x))
        return y_pred, loss

    def train_step(self, x: Any, y: Any, sample_weight: Any = None) -> torch.Tensor:
        """One optimization step on a batch; returns the (detached) total loss."""
        with self._step_threads(x):
            return self._train_step(x, y, sample_weight)

    def _train_step(self, x: Any, y: Any, sample_weight: Any) -> torch.Tensor:
        compiled = self.jit_compile and self._distributed is None
        if compiled:
            y_pred, loss = jit.train_forward(self, self._traced_train_part, x, y, sample_weight)
        else:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight, training=True)
        opt = self.optimizer
        if isinstance(opt, optimizers_module.Optimizer) and not opt.built:
            opt.build(self)
        if self._fit_state is not None:
            for p in self._fit_state["params"]:
                p.grad = None
        else:
            self.zero_grad(set_to_none=True)
        if loss.requires_grad:
            scale_loss = getattr(opt, "scale_loss", None)  # LossScaleOptimizer's (float16)
            (loss if scale_loss is None else scale_loss(loss)).backward()
            if self._distributed is not None:
                self._distributed.sync_gradients()
            if compiled:
                jit.optimizer_step(self, opt)
            elif isinstance(opt, optimizers_module.Optimizer):
                opt.fast_step()
            else:
                opt.step()
            state = self._fit_state or self._prepare_fit_state()
            if state["has_constraints"]:
                self.apply_constraints()
        else:
            warnings.warn("The model does not have any trainable weights.", stacklevel=2)
        if not compiled:
            self._update_metrics(y, y_pred, sample_weight, loss, self._batch_size_of(x))
        return loss.detach()

    # `with torch.no_grad()` rather than its decorator, which builds a second
    # context manager per call.
    def test_step(self, x: Any, y: Any, sample_weight: Any = None) -> torch.Tensor:
        """Loss and metrics of one batch, without training."""
        with self._step_threads(x), torch.no_grad():
            y_pred = jit.forward(self, x, training=False)
            loss = self.compute_loss(x, y, y_pred, sample_weight, training=False)
            self._update_metrics(y, y_pred, sample_weight, loss, self._batch_size_of(x))
        return loss

    def predict_step(self, x: Any) -> Any:
        """The model's outputs for one batch (inference mode)."""
        with self._step_threads(x), torch.no_grad():
            return jit.forward(self, x, training=False)

    # ------------------------------------------------------------------ fit
    @_in_mode(True)
    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: Any = "auto",
        callbacks: list | None = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool | str = True,
        class_weight: dict | None = None,
        sample_weight: Any = None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        validation_batch_size: int | None = None,
        validation_freq: int = 1,
    ) -> callbacks_module.History:
        """Trains the model for a number of epochs.

        Args:
            x: Inputs: NumPy arrays or torch tensors (a list/dict of them for several
                inputs; dict keys are input names), a `torch.utils.data.Dataset`, or
                an iterable of `(x, y[, sample_weight])` batches (e.g. a `DataLoader`).
            y: Targets, like `x` (None when `x` yields batches).
            batch_size: Samples per step (default 32) for array inputs.
            epochs: Index of the last epoch to train.
            verbose: `"auto"`/1 progress bar, 2 one line per epoch, 0 silent.
            callbacks: List of `birnn.callbacks.Callback`s.
            validation_split: Fraction of the (array) data held out, from the end.
            validation_data: `(x_val, y_val[, sample_weight_val])` or an iterable.
            shuffle: Shuffle the samples each epoch (`"batch"`: the batch order).
            class_weight: `{class_index: weight}` scaling each sample's loss.
            sample_weight: Per-sample (or per-timestep) loss weights.
            initial_epoch: Epoch to start from (to resume training).
            steps_per_epoch: Batches per epoch (default: the whole data).
            validation_steps: Batches per validation (default: all).
            validation_batch_size: Batch size for validation arrays.
            validation_freq: Validate every this many epochs.

        Returns:
            A `History` whose `history` maps each metric to its per-epoch values.

        Raises:
            RuntimeError: if the model was not compiled.
            ValueError: inconsistent data (sizes, shapes, structures).
        """
        self._assert_compiled("fit")
        verbose = _resolve_verbose(verbose)
        if class_weight is not None and sample_weight is not None:
            raise ValueError(
                "Arguments `sample_weight` and `class_weight` cannot be specified at the same "
                "time: fold the class weights into `sample_weight`."
            )
        if validation_split and validation_data is None:
            if not data_adapter.is_array_structure(x):
                raise ValueError(
                    "`validation_split` is only supported for NumPy arrays and torch tensors; "
                    "pass `validation_data` with an iterable."
                )
            (x, y, sample_weight), validation_data = data_adapter.split_validation(
                data_adapter.to_tensors(x),
                data_adapter.to_tensors(y),
                data_adapter.to_tensors(sample_weight),
                validation_split,
            )
        data = data_adapter.make_data(
            x, y, sample_weight, batch_size, shuffle, steps_per_epoch, class_weight, resume=True
        )
        val_data = None
        if validation_data is not None:
            if (
                isinstance(validation_data, (tuple, list))
                and len(validation_data) in (2, 3)
                and data_adapter.is_array_structure(list(validation_data))
            ):
                vx, vy, vsw = data_adapter.unpack(validation_data)
                val_data = data_adapter.make_data(
                    vx, vy, vsw, validation_batch_size or batch_size, False, validation_steps
                )
            else:
                val_data = data_adapter.make_data(
                    validation_data,
                    None,
                    None,
                    validation_batch_size or batch_size,
                    False,
                    validation_steps,
                )
        steps = data.num_steps
        runtime = self._begin_distributed()
        train_step: Callable[[Any, Any, Any], Any] = self.train_step
        if runtime is not None:
            data, val_data = runtime.shard(data), runtime.shard(val_data)
            train_step = runtime.train_step
        cbs = callbacks_module.CallbackList(
            callbacks,
            add_history=True,
            add_progbar=verbose != 0,
            model=self,
            verbose=verbose,
            epochs=epochs,
            steps=steps,
        )
        self.stop_training = False
        self._cache_fit_state()
        device = self._model_device()
        want_batch_logs = cbs.has_batch_hooks("on_train_batch_end")
        if runtime is not None:
            want_batch_logs = runtime.wants_batch_logs(want_batch_logs)
        logs: dict = {}
        cbs.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            cbs.on_epoch_begin(epoch)
            for step, (bx, by, bsw) in enumerate(data):
                cbs.on_train_batch_begin(step)
                if device is None:
                    device = self._model_device()
                bx = data_adapter.to_device(bx, device)
                by = data_adapter.to_device(by, device)
                bsw = data_adapter.to_device(bsw, device)
                train_step(bx, by, bsw)
                if device is None:
                    device = self._model_device()
                if want_batch_logs:
                    cbs.on_train_batch_end(step, self._batch_logs())
                if self.stop_training:
                    break
            logs = self._logs()
            if val_data is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._run_evaluation(val_data, cbs, device, in_fit=True)
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
                logs = dict(sorted(logs.items()))
            cbs.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        self._set_fit_state(None)
        cbs.on_train_end(logs)
        self._end_distributed(runtime)
        assert cbs.history is not None  # add_history=True
        return cbs.history

    # ------------------------------------------------------------------ evaluate
    @_in_mode(False)
    def _run_evaluation(self, data: Any, cbs: Any, device: Any, in_fit: bool = False) -> dict:
        self.reset_metrics()
        cbs.on_test_begin()
        want = cbs.has_batch_hooks("on_test_batch_end")
        runtime = self._distributed
        test_step: Callable[[Any, Any, Any], Any] = self.test_step
        if runtime is not None:
            want = runtime.wants_batch_logs(want)
            test_step = runtime.test_step
        for step, (bx, by, bsw) in enumerate(data):
            cbs.on_test_batch_begin(step)
            test_step(
                data_adapter.to_device(bx, device),
                data_adapter.to_device(by, device),
                data_adapter.to_device(bsw, device),
            )
            if want:
                cbs.on_test_batch_end(step, self._batch_logs())
        logs = self._logs()
        cbs.on_test_end(logs)
        return logs

    @_in_mode(False)
    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        verbose: Any = "auto",
        sample_weight: Any = None,
        steps: int | None = None,
        callbacks: list | None = None,
        return_dict: bool = False,
    ) -> Any:
        """Returns the loss (and metrics) of the model on data, batch by batch.

        Args:
            x, y, sample_weight: As for `fit`.
            batch_size: Samples per batch (default 32).
            verbose: 0 silent, 1/"auto" progress bar, 2 one line.
            steps: Number of batches to evaluate (default: all).
            callbacks: Callbacks whose `on_test_*` hooks are called.
            return_dict: Return `{name: value}` instead of a list.

        Returns:
            The loss (a float) when there are no metrics; else a list
            `[loss, *output_losses, *metrics]`, or a dict with `return_dict=True`.
        """
        self._assert_compiled("evaluate")
        verbose = _resolve_verbose(verbose)
        data = data_adapter.make_data(x, y, sample_weight, batch_size, False, steps)
        num = data.num_steps
        cbs = callbacks_module.CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1, steps=num
        )
        runtime = self._begin_distributed()
        if runtime is not None:
            data = runtime.shard(data)
        logs = self._run_evaluation(data, cbs, self._model_device())
        self._end_distributed(runtime)
        if return_dict:
            return logs
        return self._flatten_logs(logs)

    def _flatten_logs(self, logs: dict) -> Any:
        """Keras's list order: loss, per-output losses, then the metrics (in compile
        order for one output, by name for several)."""
        if len(logs) == 1:
            return logs["loss"]
        trackers = [t.name for t in (self._compiled_loss.trackers if self._compiled_loss else [])]
        ordered = ["loss", *trackers]
        metrics = self._compiled_metrics.metrics if self._compiled_metrics else None
        if metrics and len(self._output_names()) == 1:
            ordered += [m.name for _, _, m in metrics]
        ordered += sorted(k for k in logs if k not in ordered)
        return [logs[k] for k in ordered if k in logs]

    # ------------------------------------------------------------------ predict
    @_in_mode(False)
    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        verbose: Any = "auto",
        steps: int | None = None,
        callbacks: list | None = None,
    ) -> Any:
        """The model's outputs as NumPy arrays, computed batch by batch (inference mode).

        Args:
            x: Inputs, as for `fit` (an iterable may yield `x` or `(x, y)` batches).
            batch_size: Samples per batch (default 32).
            verbose: 0 silent, 1/"auto" progress bar, 2 one line.
            steps: Number of batches (default: all).
            callbacks: Callbacks whose `on_predict_*` hooks are called.

        Returns:
            A NumPy array, or a list/dict of them for several outputs.
        """
        verbose = _resolve_verbose(verbose)
        data = data_adapter.make_data(x, None, None, batch_size, False, steps)
        num = data.num_steps
        cbs = callbacks_module.CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1, steps=num
        )
        runtime = self._begin_distributed()
        predict_step = self.predict_step
        if runtime is not None:
            data, predict_step = runtime.shard(data), runtime.predict_step
        device = self._model_device()
        outputs: list = []
        cbs.on_predict_begin()
        for step, (bx, _, _) in enumerate(data):
            cbs.on_predict_batch_begin(step)
            out = predict_step(data_adapter.to_device(bx, device))
            outputs.append(
                tree.map_structure(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, out)
            )
            cbs.on_predict_batch_end(step, {"outputs": out})
        cbs.on_predict_end()
        if runtime is not None:
            outputs = runtime.gather(outputs)
            self._end_distributed(runtime)
        if not outputs:
            raise ValueError("predict(): the input yielded no batches.")
        return _concat(outputs)

    # ------------------------------------------------------------------ on batch
    @_in_mode(True)
    def train_on_batch(
        self,
        x: Any,
        y: Any = None,
        sample_weight: Any = None,
        class_weight: dict | None = None,
        return_dict: bool = False,
    ) -> Any:
        """Runs one optimization step on one batch; returns its loss (and metrics)."""
        self._assert_compiled("train_on_batch")
        if class_weight is not None:
            if sample_weight is not None:
                raise ValueError(
                    "Arguments `sample_weight` and `class_weight` cannot be specified at the "
                    "same time."
                )
            sample_weight = data_adapter.class_weight_to_sample_weight(y, class_weight)
        device = self._model_device()
        x = data_adapter.to_device(data_adapter.to_tensors(x), device)
        y = data_adapter.to_device(data_adapter.to_tensors(y), device)
        if sample_weight is not None:
            sample_weight = data_adapter.to_device(data_adapter.to_tensors(sample_weight), device)
        data_adapter.check_cardinality(x, y, sample_weight)
        self.reset_metrics()
        # One walk of the layer tree serves the whole step (zeroing the gradients,
        # the losses of `add_loss` and regularizers, the constraints); the next call
        # walks it again, as the model may have changed in between.
        self._cache_fit_state()
        try:
            self.train_step(x, y, sample_weight)
        finally:
            self._set_fit_state(None)
        logs = self._logs()
        return logs if return_dict else self._flatten_logs(logs)

    @_in_mode(False)
    def test_on_batch(
        self, x: Any, y: Any = None, sample_weight: Any = None, return_dict: bool = False
    ) -> Any:
        """Loss (and metrics) of the model on one batch."""
        self._assert_compiled("test_on_batch")
        device = self._model_device()
        x, y, sample_weight = (
            data_adapter.to_device(data_adapter.to_tensors(v), device)
            for v in (x, y, sample_weight)
        )
        data_adapter.check_cardinality(x, y, sample_weight)
        self.reset_metrics()
        self.test_step(x, y, sample_weight)
        logs = self._logs()
        return logs if return_dict else self._flatten_logs(logs)

    @_in_mode(False)
    def predict_on_batch(self, x: Any) -> Any:
        """The model's outputs (NumPy) for one batch."""
        x = data_adapter.to_device(data_adapter.to_tensors(x), self._model_device())
        return backend.to_numpy(self.predict_step(x))


def _concat(batches: list) -> Any:
    first = batches[0]
    if isinstance(first, torch.Tensor):
        return backend.to_numpy(torch.cat([b for b in batches], dim=0))
    if isinstance(first, dict):
        return {k: _concat([b[k] for b in batches]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(_concat([b[i] for b in batches]) for i in range(len(first)))
    if first is None:
        return None
    return np.concatenate([np.asarray(b) for b in batches], axis=0)
