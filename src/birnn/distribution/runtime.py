"""What `fit`, `evaluate` and `predict` do differently under a `DataParallel` distribution.

The trainer asks a `Runtime` (one per call, `None` without a distribution) for
this process's slice of each batch, to average the gradients, to reduce the
metric states, and to gather predictions; everything else runs as on one process.

Gradients: each process back-propagates the loss of its slice (a mean over its
samples), scales the gradients by its share of the global batch, and the sum
over processes is the gradient of the global batch's mean loss, also when the
last batch splits unevenly or leaves a process with no sample.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist

from birnn import tree
from birnn.distribution import data_parallel, sharding
from birnn.models import data_adapter


class DistributedError(RuntimeError):
    """A collective operation failed or timed out (another process failed or diverged)."""


def _collective(what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except DistributedError:
        raise
    except RuntimeError as e:
        current = data_parallel.distribution()
        timeout = f"{current.timeout:g}s" if current is not None else "the timeout"
        raise DistributedError(
            f"birnn.distribution: process {dist.get_rank()} of {dist.get_world_size()} failed "
            f"while {what}: {e}. Another process has probably failed (see its error above), "
            f"or the processes ran different numbers of steps; collectives wait at most "
            f"{timeout} (DataParallel(timeout=...))."
        ) from e


def any_process(flag: bool, device: torch.device) -> bool:
    """Whether `flag` is true on any process."""
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    _collective("agreeing on a flag", lambda: dist.all_reduce(value, op=dist.ReduceOp.MAX))
    return bool(value.item())


def run_on_primary(what: str, fn: Callable[[], Any]) -> None:
    """Runs `fn` on process 0 only; every process returns once it is done.

    An error on process 0 is raised there and reported on the other processes.
    Without a distribution, just calls `fn`.
    """
    current = data_parallel.active()
    if current is None:
        fn()
        return
    error: BaseException | None = None
    if dist.get_rank() == 0:
        try:
            fn()
        except BaseException as e:
            error = e
    failed = any_process(error is not None, current.device)
    if error is not None:
        raise error
    if failed:
        raise DistributedError(f"birnn.distribution: process 0 failed while {what}.")


class Runtime:
    """The distributed side of one `fit`/`evaluate`/`predict` call on `model`."""

    def __init__(self, model: Any, distribution: data_parallel.DataParallel) -> None:
        self.model = model
        self.device = distribution.device
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.sizes = sharding.StepSizes()
        self.depth = 1
        self._trainable_params: list[torch.Tensor] | None = None
        self._reducing = False
        self._synced = False
        self._move_model()
        seed = torch.randint(0, 2**31 - 1, (1,), dtype=torch.int64).to(self.device)
        _collective("sharing the shuffling seed", lambda: dist.broadcast(seed, src=0))
        self.seed = int(seed.item())

    # ------------------------------------------------------------------ set-up
    def shard(self, data: Any) -> Any:
        """This process's slices of the batches of `data` (`None` stays `None`)."""
        if data is None:
            return None
        return sharding.shard(data, self.rank, self.world_size, self.seed, self.sizes)

    def _move_model(self) -> None:
        """Places the model on this process's device (when it has weights elsewhere)."""
        for p in self.model.parameters():
            if p.device != self.device:
                self.model.to(self.device)
            return

    def _sync_weights(self, x: Any) -> None:
        """Builds the model if needed and copies process 0's weights to every process."""
        self._synced = True
        model = self.model
        if not model.built or not list(model.parameters()):
            if self.sizes.local == 0:
                raise ValueError(
                    f"Model '{model.name}' is not built and this process's slice of the first "
                    f"batch is empty: give the first batch at least {self.world_size} samples "
                    "or build the model before `fit`."
                )
            with torch.no_grad():
                model(x, training=False)
            self._move_model()

        def broadcast() -> None:
            with torch.no_grad():
                for t in [*model.parameters(), *model.buffers()]:
                    dist.broadcast(t.data, src=0)

        _collective("copying the weights of process 0", broadcast)

    # ------------------------------------------------------------------ steps
    def share(self) -> float:
        """This process's share of the current global batch."""
        total = self.sizes.total
        return self.sizes.local / total if total else 0.0

    def _first_step(self, *batch: Any) -> tuple:
        """Syncs the weights; the batch, moved to where the model now is."""
        self._sync_weights(batch[0])
        return tuple(data_adapter.to_device(part, self.device) for part in batch)

    def train_step(self, x: Any, y: Any, sample_weight: Any) -> None:
        model = self.model
        if not self._synced:
            x, y, sample_weight = self._first_step(x, y, sample_weight)
        if self.sizes.local == 0:
            self._empty_train_step()
            return
        model.train_step(x, y, sample_weight)

    def _empty_train_step(self) -> None:
        """A step with no sample here: zero gradients join the average, then the update."""
        from birnn import optimizers

        model = self.model
        opt = model.optimizer
        if isinstance(opt, optimizers.Optimizer) and not opt.built:
            opt.build(model)  # named by Keras paths, as compile() does
        for p in self._params():
            p.grad = None
        self.sync_gradients()
        opt.step()
        model.apply_constraints()  # a no-op for a model without constraints

    def test_step(self, x: Any, y: Any, sample_weight: Any) -> None:
        if not self._synced:
            x, y, sample_weight = self._first_step(x, y, sample_weight)
        if self.sizes.local:
            self.model.test_step(x, y, sample_weight)

    def predict_step(self, x: Any) -> Any:
        if not self._synced:
            (x,) = self._first_step(x)
        return self.model.predict_step(x) if self.sizes.local else None

    def _params(self) -> list[torch.Tensor]:
        """The weights that take gradients (the model is built by the first step)."""
        if self._trainable_params is None:
            self._trainable_params = [p for p in self.model.parameters() if p.requires_grad]
        return self._trainable_params

    def sync_gradients(self) -> None:
        """Replaces each gradient by the global batch's: the share-weighted sum over processes."""
        params = self._params()
        if not params:
            return
        local, total = self.sizes.local, self.sizes.total
        groups: dict[torch.dtype, list[int]] = {}
        for i, p in enumerate(params):
            groups.setdefault(p.dtype, []).append(i)
        header = torch.tensor(
            [local, total, 1.0] + [0.0 if p.grad is None else 1.0 for p in params],
            dtype=torch.float64,
            device=self.device,
        )
        flats = []
        for indices in groups.values():
            flat = torch.cat(
                [
                    (g if (g := params[i].grad) is not None else torch.zeros_like(params[i]))
                    .reshape(-1)
                    .to(self.device)
                    for i in indices
                ]
            )
            flats.append(flat.mul_(local / total if total else 0.0))

        def reduce() -> None:
            dist.all_reduce(header)
            for flat in flats:
                dist.all_reduce(flat)

        _collective("averaging gradients", reduce)
        counts = header.tolist()
        n = self.world_size
        if counts[0] != total or counts[1] != total * n or counts[2] != n:
            raise DistributedError(
                f"birnn.distribution: the processes disagree about the batch (process "
                f"{self.rank} has a global batch of {total} samples; the slices add up to "
                f"{counts[0]:g}). Every process must see the same batches: same data, same "
                "batch_size, same number of steps."
            )
        has_grad = counts[3:]
        for indices, flat in zip(groups.values(), flats):
            offset = 0
            for i in indices:
                p = params[i]
                size = p.numel()
                if has_grad[i]:
                    p.grad = flat[offset : offset + size].view_as(p).to(p.device)
                else:
                    p.grad = None
                offset += size

    # ------------------------------------------------------------------ metrics
    @contextlib.contextmanager
    def global_metrics(self, metrics: list) -> Iterator[None]:
        """Inside the block, every metric's state is the sum of all processes' states."""
        variables = [v for m in metrics for v in m.variables]
        if not variables:
            yield
            return
        originals = [v.detach().clone() for v in variables]
        flat = torch.cat([v.reshape(-1).to(self.device, torch.float64) for v in originals])
        _collective("reducing metrics", lambda: dist.all_reduce(flat))
        offset = 0
        with torch.no_grad():
            for variable in variables:
                size = variable.numel()
                variable.copy_(flat[offset : offset + size].view(variable.shape))
                offset += size
        try:
            yield
        finally:
            with torch.no_grad():
                for variable, value in zip(variables, originals):
                    variable.copy_(value)

    def logs(self, compute: Callable[[], dict]) -> dict:
        """`compute()` (the model's logs) over the metrics of every process."""
        if self._reducing:
            return compute()
        self._reducing = True
        try:
            with self.global_metrics(self.model.metrics):
                return compute()
        finally:
            self._reducing = False

    def wants_batch_logs(self, wanted: bool) -> bool:
        """Batch logs are computed on every process when any process's callbacks read them
        (computing them is a collective)."""
        return any_process(wanted, self.device)

    # ------------------------------------------------------------------ predict
    def gather(self, outputs: list) -> list:
        """Every process's per-batch outputs, as one list in the input's order."""
        mine = [
            None
            if out is None
            else tree.map_structure(
                lambda t: t.detach().cpu() if isinstance(t, torch.Tensor) else t, out
            )
            for out in outputs
        ]
        everyone: list = [None] * self.world_size
        _collective("gathering predictions", lambda: dist.all_gather_object(everyone, mine))
        if len({len(o) for o in everyone}) != 1:
            raise DistributedError(
                "birnn.distribution: the processes predicted different numbers of batches "
                f"({[len(o) for o in everyone]}); every process must see the same batches."
            )
        return [piece for batch in zip(*everyone) for piece in batch if piece is not None]


def begin(model: Any, running: Runtime | None) -> Runtime | None:
    """The runtime for a `fit`/`evaluate`/`predict` call of `model` (`None` without a
    distribution): `running`, the model's own, in a nested call, else a new one."""
    current = data_parallel.active()
    if current is None:
        return None
    if running is not None:
        running.depth += 1
        return running
    return Runtime(model, current)


def end(runtime: Runtime | None) -> bool:
    """Ends what `begin` started: whether that was the outermost call (the model then
    drops its runtime)."""
    if runtime is None:
        return False
    runtime.depth -= 1
    return runtime.depth == 0
