"""Training callbacks with Keras's names, arguments and hook methods.

A callback's hooks (`on_epoch_end(epoch, logs)`, `on_train_batch_end(batch,
logs)`...) receive `logs` mappings of metric names to floats. Batch-level logs
are computed only when read, so callbacks that ignore them cost nothing.

Examples:

>>> history = History()
>>> history.on_train_begin()
>>> history.on_epoch_end(0, {"loss": 0.5})
>>> history.history
{'loss': [0.5]}
"""

from __future__ import annotations

import copy
import csv
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

import numpy as np

from birnn.distribution.data_parallel import is_primary
from birnn.models.progbar import Progbar


def _print(*args: Any, **kwargs: Any) -> None:
    """`print` on the primary process only (every process when not distributed)."""
    if is_primary():
        print(*args, **kwargs)


class Callback:
    """Base class of callbacks: every hook is a no-op; `self.model` is the model trained.

    Attributes:
        model: The model, set by `set_model`.
        params: `{"verbose", "epochs", "steps"}` of the current `fit`.
    """

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...

    def on_train_batch_begin(self, batch, logs=None):
        """Called before each training batch (by default, calls `on_batch_begin`)."""
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        """Called after each training batch (by default, calls `on_batch_end`)."""
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...


class LazyLogs(Mapping):
    """A read-only mapping computed on first access (batch logs cost a device sync)."""

    def __init__(self, compute: Callable[[], dict]) -> None:
        self._compute = compute
        self._values: dict | None = None

    def _get(self) -> dict:
        if self._values is None:
            self._values = self._compute()
        return self._values

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def copy(self) -> dict:
        return dict(self._get())

    def __repr__(self) -> str:
        return repr(self._get())


_ALIASES = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}


def _overrides(cb: Callback, hook: str) -> bool:
    """Whether `cb` implements `hook` (in its class, or on the instance like LambdaCallback);
    `on_batch_begin`/`on_batch_end` count for the training batch hooks they stand for."""
    hooks = [hook, _ALIASES[hook]] if hook in _ALIASES else [hook]
    return any(h in cb.__dict__ or getattr(type(cb), h) is not getattr(Callback, h) for h in hooks)


class CallbackList:
    """Calls a list of callbacks' hooks in order (adds `History` and the progress bar).

    Args:
        callbacks: User callbacks.
        add_history: Whether to append a `History` (returned by `fit`).
        add_progbar: Whether to append a `ProgbarLogger`.
        model: The model.
        **params: `verbose`, `epochs`, `steps`.
    """

    def __init__(
        self,
        callbacks: list | None = None,
        add_history: bool = False,
        add_progbar: bool = False,
        model: Any = None,
        **params: Any,
    ) -> None:
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"Callbacks must be `Callback` instances. Received: {cb!r}")
        self.history = None
        if add_history:
            self.history = next((c for c in self.callbacks if isinstance(c, History)), None)
            if self.history is None:
                self.history = History()
                self.callbacks.append(self.history)
        if add_progbar and not any(isinstance(c, ProgbarLogger) for c in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(dict(params))
        self._batch_hooks = {
            hook: [cb for cb in self.callbacks if _overrides(cb, hook)]
            for hook in (
                "on_train_batch_begin",
                "on_train_batch_end",
                "on_test_batch_begin",
                "on_test_batch_end",
                "on_predict_batch_begin",
                "on_predict_batch_end",
            )
        }

    def has_batch_hooks(self, hook: str) -> bool:
        return bool(self._batch_hooks[hook])

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def _batch(self, hook: str, batch: int, logs: Any) -> None:
        for cb in self._batch_hooks[hook]:
            getattr(cb, hook)(batch, logs)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._batch("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._batch("on_train_batch_end", batch, logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._batch("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._batch("on_test_batch_end", batch, logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._batch("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._batch("on_predict_batch_end", batch, logs)


class History(Callback):
    """Records the epoch logs of `fit` in `history` (`{"loss": [...], ...}`); `fit` returns it."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        if self.model is not None:
            self.model.history = self


class ProgbarLogger(Callback):
    """Prints progress: `verbose=1` a live bar (one line per epoch off a terminal),
    `verbose=2` one line per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.verbose = 1
        self.epochs = 1
        self.target: int | None = None
        self.progbar: Progbar | None = None
        self._seen = 0
        self._in_fit = False
        self._stream = None

    def set_params(self, params):
        super().set_params(params)
        self.verbose = params.get("verbose", 1)
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def _new_bar(self) -> None:
        self._seen = 0
        self.progbar = Progbar(
            self.target, verbose=self.verbose, stream=self._stream or sys.stdout
        )

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        if self.verbose and self.epochs > 1:
            _print(f"Epoch {epoch + 1}/{self.epochs}", file=self._stream or sys.stdout)
        self._new_bar()

    def on_train_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        if self.progbar is not None and self.progbar.wants_draw():
            self.progbar.update(self._seen, dict(logs or {}))

    def on_epoch_end(self, epoch, logs=None):
        if self.progbar is not None:
            if self.target is None:
                self.target = self.progbar.target = self._seen
            self.progbar.update(self._seen, logs, finalize=True)

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._new_bar()

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit:
            self._seen = batch + 1
            if self.progbar is not None and self.progbar.wants_draw():
                self.progbar.update(self._seen, dict(logs or {}))

    def on_test_end(self, logs=None):
        if not self._in_fit and self.progbar is not None:
            if self.progbar.target is None:
                self.progbar.target = self._seen
            self.progbar.update(self._seen, logs, finalize=True)

    def on_predict_begin(self, logs=None):
        self._new_bar()

    def on_predict_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        if self.progbar is not None and self.progbar.wants_draw():
            self.progbar.update(self._seen)

    def on_predict_end(self, logs=None):
        if self.progbar is not None:
            if self.progbar.target is None:
                self.progbar.target = self._seen
            self.progbar.update(self._seen, finalize=True)


def _monitor_op(monitor: str, mode: str, owner: str) -> Callable[[float, float], bool]:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner}: `mode` must be 'auto', 'min' or 'max'. Received: {mode!r}")
    if mode == "auto":
        name = monitor.removeprefix("val_")
        maximize = name.endswith(("acc", "accuracy", "auc", "precision", "recall")) or (
            name in ("acc", "accuracy", "auc")
        )
        mode = "max" if maximize else "min"
    return np.greater if mode == "max" else np.less


class EarlyStopping(Callback):
    """Stops training when a monitored quantity has stopped improving.

    Args:
        monitor: Quantity to watch (`"val_loss"`).
        min_delta: Minimum change that counts as an improvement.
        patience: Epochs without improvement before stopping.
        verbose: Whether to print when stopping.
        mode: `"min"`, `"max"` or `"auto"` (from the name).
        baseline: Value the monitored quantity must beat.
        restore_best_weights: Whether to restore the weights of the best epoch
            when stopping (or at the end of training).
        start_from_epoch: Epochs to wait before monitoring starts.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__()
        self.monitor = monitor
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.min_delta = abs(min_delta)
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.monitor_op = _monitor_op(monitor, mode, "EarlyStopping")
        if self.monitor_op is np.less:
            self.min_delta *= -1
        self.wait = 0
        self.stopped_epoch = 0
        self.best: float | None = None
        self.best_weights: Any = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def _improved(self, value: float, reference: float | None) -> bool:
        if reference is None:
            return True
        return bool(self.monitor_op(value - self.min_delta, reference))

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(
                f"EarlyStopping: metric '{self.monitor}' is not available. Available metrics "
                f"are: {', '.join(logs or {})}",
                stacklevel=2,
            )
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = copy.deepcopy(self.model.state_dict())
        self.wait += 1
        if self._improved(value, self.best):
            self.best = value
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = copy.deepcopy(self.model.state_dict())
            if self.baseline is None or self._improved(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                epoch = self.best_epoch + 1
                _print(f"Restoring model weights from the end of the best epoch: {epoch}.")
            self.model.load_state_dict(self.best_weights)


class ModelCheckpoint(Callback):
    """Saves the model (or its weights) after epochs, optionally only when it improves.

    Args:
        filepath: Where to save; may hold `{epoch}` and log keys
            (`"ckpt-{epoch:02d}-{val_loss:.2f}.keras"`). Must end in `.keras` (or `.h5`),
            or `.weights.h5` with `save_weights_only=True`.
        monitor: Quantity compared with `save_best_only`.
        verbose: Whether to print when saving.
        save_best_only: Only save when `monitor` improves.
        save_weights_only: Save `model.save_weights` instead of `model.save`.
        mode: `"min"`, `"max"` or `"auto"`.
        save_freq: `"epoch"` or a number of batches.
        initial_value_threshold: Value `monitor` must beat for the first save.
    """

    def __init__(
        self,
        filepath: str,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        save_freq: str | int = "epoch",
        initial_value_threshold: float | None = None,
    ) -> None:
        super().__init__()
        self.filepath = os.fspath(filepath)
        if save_weights_only and not self.filepath.endswith(".weights.h5"):
            raise ValueError(
                "ModelCheckpoint: with save_weights_only=True the filepath must end in "
                f"`.weights.h5`. Received: filepath={self.filepath}"
            )
        if not save_weights_only and not self.filepath.endswith((".keras", ".h5", ".hdf5")):
            raise ValueError(
                "ModelCheckpoint: the filepath must end in `.keras` or a legacy `.h5` (or use "
                f"save_weights_only=True with `.weights.h5`). Received: filepath={self.filepath}"
            )
        if save_freq != "epoch" and not isinstance(save_freq, int):
            raise ValueError(
                f"ModelCheckpoint: `save_freq` must be 'epoch' or an integer. Got {save_freq!r}"
            )
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self.monitor_op = _monitor_op(monitor, mode, "ModelCheckpoint")
        self.best = initial_value_threshold
        self._batches = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if isinstance(self.save_freq, str):  # "epoch", the only string __init__ accepts
            return
        self._batches += 1
        if self._batches % self.save_freq == 0:
            self._save(self._epoch, dict(logs or {}), batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, dict(logs or {}))

    def _path(self, epoch: int, logs: dict, batch: int | None) -> str:
        try:
            if batch is None:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(
                f"ModelCheckpoint: failed to format filepath '{self.filepath}': {e} is not a "
                f"logged value (available: {sorted(logs)})."
            ) from e

    def _save(self, epoch: int, logs: dict, batch: int | None = None) -> None:
        path = self._path(epoch, logs, batch)
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None:
                warnings.warn(
                    f"ModelCheckpoint: can save best model only with '{self.monitor}' "
                    "available, skipping.",
                    stacklevel=2,
                )
                return
            if self.best is not None and not self.monitor_op(value, self.best):
                if self.verbose > 0:
                    _print(
                        f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}"
                    )
                return
            if self.verbose > 0:
                previous = "inf" if self.best is None else f"{self.best:.5f}"
                _print(
                    f"\nEpoch {epoch + 1}: {self.monitor} improved from {previous} to "
                    f"{value:.5f}, saving model to {path}"
                )
            self.best = value
        elif self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: saving model to {path}")
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by `factor` when `monitor` stops improving.

    Args:
        monitor: Quantity to watch.
        factor: Factor the learning rate is multiplied by (< 1).
        patience: Epochs without improvement before reducing.
        verbose: Whether to print when reducing.
        mode: `"min"`, `"max"` or `"auto"`.
        min_delta: Threshold for measuring a new optimum.
        cooldown: Epochs to wait after a reduction before resuming.
        min_lr: Lower bound on the learning rate.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if factor >= 1.0:
            raise ValueError(
                f"ReduceLROnPlateau does not support a factor >= 1.0. Received: factor={factor}"
            )
        self.monitor = monitor
        self.factor = factor
        self.patience = patience
        self.verbose = verbose
        self.min_delta = min_delta
        self.cooldown = cooldown
        self.min_lr = min_lr
        self.mode = mode
        self._op = _monitor_op(monitor, mode, "ReduceLROnPlateau")
        self.wait = 0
        self.cooldown_counter = 0
        self.best = math.inf if self._op is np.less else -math.inf

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.cooldown_counter = 0
        self.best = math.inf if self._op is np.less else -math.inf

    def _better(self, value: float) -> bool:
        if self._op is np.less:
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if isinstance(logs, dict) else dict(logs or {})
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(get_learning_rate(optimizer))
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(
                f"ReduceLROnPlateau: metric '{self.monitor}' is not available. Available "
                f"metrics are: {', '.join(logs)}",
                stacklevel=2,
            )
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._better(value):
            self.best = value
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(get_learning_rate(optimizer))
                if old > self.min_lr:
                    new = max(old * self.factor, self.min_lr)
                    set_learning_rate(optimizer, new)
                    if self.verbose > 0:
                        _print(
                            f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                            f"to {new}."
                        )
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class LearningRateScheduler(Callback):
    """Sets the learning rate at each epoch start to `schedule(epoch, lr)`."""

    def __init__(self, schedule: Callable[[int, float], float], verbose: int = 0) -> None:
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.schedule(epoch, float(get_learning_rate(self.model.optimizer))))
        set_learning_rate(self.model.optimizer, lr)
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if isinstance(logs, dict):
            logs["learning_rate"] = float(get_learning_rate(self.model.optimizer))


class LambdaCallback(Callback):
    """A callback made of plain functions for any of the hooks.

    Examples:

    >>> seen = []
    >>> cb = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    >>> cb.on_epoch_end(3, {})
    >>> seen
    [3]
    """

    def __init__(
        self,
        on_epoch_begin=None,
        on_epoch_end=None,
        on_train_begin=None,
        on_train_end=None,
        on_train_batch_begin=None,
        on_train_batch_end=None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        hooks = {
            "on_epoch_begin": on_epoch_begin,
            "on_epoch_end": on_epoch_end,
            "on_train_begin": on_train_begin,
            "on_train_end": on_train_end,
            "on_train_batch_begin": on_train_batch_begin,
            "on_train_batch_end": on_train_batch_end,
            **kwargs,
        }
        for name, fn in hooks.items():
            if not hasattr(Callback, name):
                raise ValueError(f"LambdaCallback: unknown hook '{name}'.")
            if fn is not None:
                setattr(self, name, fn)


class CSVLogger(Callback):
    """Streams epoch results to a CSV file (one row per epoch, `epoch` first).

    Under a distribution, only the primary process writes the file.

    Args:
        filename: Path of the CSV file.
        separator: Column separator.
        append: Append to an existing file instead of overwriting it.
    """

    def __init__(self, filename: str, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self.keys: list[str] | None = None
        self._file: TextIO | None = None
        self._writer: csv.DictWriter[str] | None = None

    def on_train_begin(self, logs=None):
        if not is_primary():
            return
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename)
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._append_header = not exists
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        if self._file is None:
            return
        logs = dict(logs or {})
        if self.keys is None or self._writer is None:
            self.keys = sorted(logs)
            self._writer = csv.DictWriter(
                self._file, fieldnames=["epoch", *self.keys], delimiter=self.sep
            )
            if self._append_header:
                self._writer.writeheader()
        row = {"epoch": epoch}
        for k in self.keys:
            v = logs.get(k, "NA")
            row[k] = v
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


class TerminateOnNaN(Callback):
    """Stops training as soon as the batch loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            _print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


def get_learning_rate(optimizer: Any) -> float:
    """The learning rate of a birnn or plain `torch.optim` optimizer."""
    if hasattr(optimizer, "learning_rate"):
        return float(optimizer.learning_rate)
    return float(optimizer.param_groups[0]["lr"])


def set_learning_rate(optimizer: Any, value: float) -> None:
    """Sets the learning rate of a birnn or plain `torch.optim` optimizer."""
    if hasattr(type(optimizer), "learning_rate"):
        optimizer.learning_rate = value
    else:
        for group in optimizer.param_groups:
            group["lr"] = value
