"""Turns what `fit`/`evaluate`/`predict` accept into batches of torch tensors.

Accepted: NumPy arrays, torch tensors, (nested) lists/tuples/dicts of those (for
several or named inputs/outputs), `torch.utils.data.Dataset`s, and any iterable
of batches (`torch.utils.data.DataLoader`, generators, lists of `(x, y)` pairs
wrapped in `iter(...)`) yielding `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`.
Arrays are converted to tensors once; batches are views or gathers of them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from birnn import backend, tree


def _is_array(x: Any) -> bool:
    return isinstance(x, (np.ndarray, torch.Tensor)) or (
        hasattr(x, "__array__") and not isinstance(x, (list, tuple, dict, str))
    )


def is_array_structure(x: Any) -> bool:
    """Whether `x` is an array or a (nested) list/tuple/dict of arrays."""
    if x is None:
        return True
    if isinstance(x, dict):
        return all(is_array_structure(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return all(is_array_structure(v) or isinstance(v, (int, float)) for v in x)
    return _is_array(x)


def _to_tensor(x: Any) -> Any:
    if x is None or isinstance(x, torch.Tensor):
        return x
    array = np.asarray(x)
    if array.dtype == object:
        raise TypeError(
            f"Cannot convert data of dtype object (shape {array.shape}) to a tensor; pass "
            "numeric arrays (pad ragged sequences first)."
        )
    return backend.convert_to_tensor(array)


def to_tensors(structure: Any) -> Any:
    """NumPy leaves of a structure as torch tensors (float64 becomes float32)."""
    if isinstance(structure, (np.ndarray, torch.Tensor)):
        return _to_tensor(structure)  # the usual batch: one array
    if (
        isinstance(structure, (list, tuple))
        and structure
        and all(isinstance(v, (int, float, bool)) for v in structure)
    ):
        return _to_tensor(structure)
    return tree.map_structure(_to_tensor, structure)


def to_device(structure: Any, device: torch.device | None) -> Any:
    """Moves every tensor of a structure to `device` (no-op when already there)."""
    if device is None:
        return structure

    def move(x: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.device != device:
            return x.to(device, non_blocking=True)
        return x

    if isinstance(structure, torch.Tensor):  # the usual batch: one tensor
        return move(structure)
    return tree.map_structure(move, structure)


def _lengths(structure: Any) -> list[int]:
    return [int(t.shape[0]) for t in tree.flatten(structure) if isinstance(t, torch.Tensor)]


def check_cardinality(x: Any, y: Any, sample_weight: Any) -> int:
    """The number of samples, after checking that x, y and sample_weight agree on it.

    Raises:
        ValueError: naming each argument's sizes when they differ.
    """
    if (
        isinstance(x, torch.Tensor)
        and x.dim() > 0
        and (y is None or (isinstance(y, torch.Tensor) and y.dim() > 0))
        and sample_weight is None
        and (y is None or x.shape[0] == y.shape[0])
    ):
        return int(x.shape[0])  # the usual batch: one array each, agreeing
    sizes = {"x": _lengths(x), "y": _lengths(y), "sample_weight": _lengths(sample_weight)}
    everything = {n for v in sizes.values() for n in v}
    if not everything:
        raise ValueError("No data: `x` holds no arrays.")
    if len(everything) > 1:
        parts = [f"{k} sizes: {', '.join(map(str, v))}" for k, v in sizes.items() if v]
        raise ValueError(
            "Data cardinality is ambiguous. Make sure all arrays contain the same number of "
            "samples. " + "; ".join(parts)
        )
    return everything.pop()


def class_weight_to_sample_weight(y: Any, class_weight: dict) -> torch.Tensor:
    """Per-sample weights from a `{class: weight}` dict and the labels `y`."""
    if isinstance(y, (list, tuple, dict)):
        raise ValueError("`class_weight` is only supported for models with a single output.")
    y = _to_tensor(y)
    if y.dim() > 1 and y.shape[-1] > 1:
        classes = torch.argmax(y, dim=-1)
    else:
        classes = torch.round(y.reshape(y.shape[0], -1)[:, 0].float()).long()
    if classes.dim() > 1:
        raise ValueError("`class_weight` is not supported for 3+ dimensional targets.")
    table = torch.ones(
        int(max(max(class_weight) + 1, int(classes.max()) + 1)), dtype=torch.float32
    )
    for cls, weight in class_weight.items():
        table[int(cls)] = float(weight)
    return table.to(classes.device)[classes]


def unpack(batch: Any) -> tuple[Any, Any, Any]:
    """`(x, y, sample_weight)` from a batch as a data pipeline yields it."""
    if isinstance(batch, (list, tuple)):
        if len(batch) == 1:
            return batch[0], None, None
        if len(batch) == 2:
            return batch[0], batch[1], None
        if len(batch) == 3:
            return batch[0], batch[1], batch[2]
        raise ValueError(
            "A data batch must be `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`. "
            f"Received a sequence of {len(batch)} elements."
        )
    return batch, None, None


def split_validation(x: Any, y: Any, sample_weight: Any, validation_split: float):
    """The last `validation_split` of the samples, before any shuffling (as Keras)."""
    if not 0 < validation_split < 1:
        raise ValueError(f"`validation_split` must be in (0, 1). Received: {validation_split}")
    n = check_cardinality(x, y, sample_weight)
    split_at = int(math.floor(n * (1.0 - validation_split)))
    if split_at == 0 or split_at == n:
        raise ValueError(
            f"Training data contains {n} samples, which is not sufficient to split it into a "
            f"validation and training set as specified by `validation_split={validation_split}`."
        )

    def part(structure: Any, sl: slice) -> Any:
        return tree.map_structure(lambda t: t[sl] if isinstance(t, torch.Tensor) else t, structure)

    train = tuple(part(s, slice(0, split_at)) for s in (x, y, sample_weight))
    val = tuple(part(s, slice(split_at, None)) for s in (x, y, sample_weight))
    return train, val


class ArrayData:
    """Batches of in-memory arrays, optionally shuffled each pass.

    With `steps` and `resume=True` (training with `steps_per_epoch`), an epoch
    takes the next `steps` batches of the current pass over the data, ending early
    when the pass does; the next epoch starts a new (reshuffled) pass. This is what
    Keras 3 does with arrays.
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        sample_weight: Any = None,
        batch_size: int | None = None,
        shuffle: bool | str = False,
        steps: int | None = None,
        resume: bool = False,
    ) -> None:
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.num_samples = check_cardinality(x, y, sample_weight)
        if self.num_samples == 0:
            raise ValueError(
                "The data has 0 samples: `x` (and `y`) must hold at least one sample."
            )
        self.batch_size = 32 if batch_size is None else int(batch_size)
        self.shuffle = shuffle
        self.batches_per_pass = math.ceil(self.num_samples / self.batch_size)
        self.steps = min(steps, self.batches_per_pass) if steps else self.batches_per_pass
        self._limit = steps if steps else None
        self._resume = resume and steps is not None
        self._pass: Iterator | None = None
        self._cursor = 0
        self.generator: torch.Generator | None = None  # for shuffling (None: the global one)

    def _new_pass(self) -> Iterator[tuple[Any, Any, Any]]:
        n, bs = self.num_samples, self.batch_size
        order = None
        if self.shuffle == "batch":
            starts = torch.randperm(self.batches_per_pass, generator=self.generator) * bs
        else:
            starts = torch.arange(0, n, bs)
            if self.shuffle:
                order = torch.randperm(n, generator=self.generator)
        for start in starts.tolist():
            if order is None:
                sl = slice(start, min(start + bs, n))
                take = lambda t, sl=sl: t[sl] if isinstance(t, torch.Tensor) else t  # noqa: E731
            else:
                idx = order[start : start + bs]
                take = lambda t, idx=idx: (  # noqa: E731
                    t.index_select(0, idx.to(t.device)) if isinstance(t, torch.Tensor) else t
                )
            yield (
                tree.map_structure(take, self.x),
                tree.map_structure(take, self.y),
                tree.map_structure(take, self.sample_weight),
            )

    @property
    def num_steps(self) -> int:
        """Batches per epoch (as for `IterableData`, whose count may be unknown)."""
        return self.steps

    def __iter__(self) -> Iterator[tuple[Any, Any, Any]]:
        if not self._resume:
            for step, batch in enumerate(self._new_pass()):
                if step >= self.steps:
                    return
                yield batch
            return
        for _ in range(self._limit or self.steps):
            if self._pass is None:
                self._pass, self._cursor = self._new_pass(), 0
            yield next(self._pass)
            self._cursor += 1
            if self._cursor == self.batches_per_pass:
                self._pass = None
                return


class IterableData:
    """Batches from a `DataLoader`, generator or any iterable of batches."""

    def __init__(self, source: Iterable, steps: int | None = None) -> None:
        self.source = source
        self.steps = steps
        self._iterator: Iterator | None = None
        self._exhausted = False
        try:
            self._len: int | None = len(source)  # type: ignore[arg-type]  # unsized: below
        except TypeError:
            self._len = None
        self._reiterable = (
            iter(source) is not source
            if self._len is not None
            else (not isinstance(source, Iterator))
        )

    @property
    def num_steps(self) -> int | None:
        """Batches per epoch: `steps` if given, else the source's length (None if unknown)."""
        if self.steps is not None:
            return self.steps
        return self._len

    def __iter__(self) -> Iterator[tuple[Any, Any, Any]]:
        if self.steps is None:
            if self._exhausted and not self._reiterable:
                return
            for batch in self.source:
                yield tuple(to_tensors(part) for part in unpack(batch))
            if not self._reiterable:
                self._exhausted = True
            return
        for _ in range(self.steps):
            if self._iterator is None:
                if self._exhausted and not self._reiterable:
                    return
                self._iterator = iter(self.source)
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator = None
                if not self._reiterable:
                    self._exhausted = True
                    warnings.warn(
                        "Your input ran out of data; interrupting training. Make sure the data "
                        "can generate at least `steps_per_epoch * epochs` batches.",
                        stacklevel=4,
                    )
                return
            yield tuple(to_tensors(part) for part in unpack(batch))


def check_batch_size(batch_size: Any) -> None:
    """`None` or a positive whole number (a NumPy integer too), else a `ValueError`."""
    if batch_size is None:
        return
    whole = isinstance(batch_size, (int, np.integer)) and not isinstance(batch_size, bool)
    if not whole or batch_size <= 0:
        raise ValueError(
            f"`batch_size` must be a positive integer or None. Received: batch_size={batch_size!r}"
        )


def make_data(
    x: Any,
    y: Any = None,
    sample_weight: Any = None,
    batch_size: int | None = None,
    shuffle: bool | str = False,
    steps: int | None = None,
    class_weight: dict | None = None,
    resume: bool = False,
) -> ArrayData | IterableData:
    """The batch source for `x` (arrays, a `Dataset`, or an iterable of batches)."""
    check_batch_size(batch_size)
    if isinstance(x, torch.utils.data.Dataset) and not isinstance(x, torch.Tensor):
        if y is not None:
            raise ValueError("When `x` is a Dataset, `y` must be None (the Dataset yields it).")
        loader = torch.utils.data.DataLoader(x, batch_size=batch_size or 32, shuffle=bool(shuffle))
        return IterableData(loader, steps)
    if x is not None and not is_array_structure(x):
        if not isinstance(x, Iterable):
            raise TypeError(
                f"Unrecognized data type: x={x!r} (of type {type(x).__name__}). Expected NumPy "
                "arrays, torch tensors, lists/dicts of those, or an iterable of batches."
            )
        if y is not None:
            raise ValueError(
                "When `x` is an iterable of batches (a DataLoader or generator), `y` must be "
                "None: the iterable yields `(x, y)` pairs."
            )
        if sample_weight is not None or class_weight is not None:
            raise ValueError(
                "`sample_weight`/`class_weight` cannot be combined with an iterable `x`; yield "
                "`(x, y, sample_weight)` batches instead."
            )
        return IterableData(x, steps)
    if x is None:
        raise ValueError("No data: `x` is None.")
    x, y, sample_weight = to_tensors(x), to_tensors(y), to_tensors(sample_weight)
    if class_weight is not None:
        if y is None:
            raise ValueError("`class_weight` needs targets `y`.")
        cw = class_weight_to_sample_weight(y, class_weight)
        sample_weight = cw if sample_weight is None else sample_weight * cw
    return ArrayData(x, y, sample_weight, batch_size, shuffle, steps, resume)
