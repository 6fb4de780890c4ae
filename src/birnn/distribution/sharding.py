"""Each process's slice of every global batch.

A global batch of `B` samples is cut into contiguous slices, one per process,
whose sizes differ by at most one (`B // N` or `B // N + 1`), so that the
processes' outputs concatenated in rank order are the batch's outputs in order.
Arrays, generators and other iterables are sliced batch by batch; a
`DataLoader` over a map-style dataset is rebuilt around a batch sampler that
hands each process only its own indices (so each process loads only its
samples), with a shuffling generator seeded alike on every process.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeGuard

import torch
from torch.utils.data import DataLoader, RandomSampler, Sampler

from birnn import tree
from birnn.models import data_adapter


def shard_bounds(size: int, rank: int, world_size: int) -> tuple[int, int]:
    """`(start, stop)` of process `rank`'s slice of a batch of `size` samples.

    Examples:

    >>> [shard_bounds(5, r, 2) for r in range(2)]
    [(0, 3), (3, 5)]
    >>> [shard_bounds(1, r, 2) for r in range(2)]
    [(0, 1), (1, 1)]
    """
    base, extra = divmod(size, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def batch_size_of(structure: Any) -> int:
    """The leading size of the first tensor of a batch (0 when there is none)."""
    for t in tree.flatten(structure):
        if isinstance(t, torch.Tensor) and t.dim() > 0:
            return int(t.shape[0])
    return 0


class StepSizes:
    """The local and global sample counts of the batch a sharded source yielded last."""

    local = 0
    total = 0


class _SlicedBatches:
    """Yields this process's slice of each `(x, y, sample_weight)` batch of `data`."""

    def __init__(self, data: Any, rank: int, world_size: int, sizes: StepSizes) -> None:
        self.data, self.rank, self.world_size, self.sizes = data, rank, world_size, sizes

    def __iter__(self) -> Iterator[tuple[Any, Any, Any]]:
        for batch in self.data:
            total = batch_size_of(batch[0])
            start, stop = shard_bounds(total, self.rank, self.world_size)

            def take(t: Any, start: int = start, stop: int = stop) -> Any:
                return t[start:stop] if isinstance(t, torch.Tensor) and t.dim() > 0 else t

            self.sizes.local, self.sizes.total = stop - start, total
            yield tuple(tree.map_structure(take, part) for part in batch)


_NOTHING = object()


class _IndexedDataset(torch.utils.data.Dataset):
    """`dataset[(total, i)]` is `(total, dataset[i])`; `i = None` marks an empty slice."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __getitem__(self, key: tuple[int, int | None]) -> tuple[int, Any]:
        total, index = key
        return total, (_NOTHING if index is None else self.dataset[index])

    def __len__(self) -> int:
        return len(self.dataset)


class _ShardedBatchSampler(Sampler):
    """This process's part of each index batch of `batch_sampler`, tagged with its size.

    A `RandomSampler` underneath is given a generator seeded with `seed + epoch`,
    so every process draws the same permutation in each epoch.
    """

    def __init__(self, batch_sampler: Any, rank: int, world_size: int, seed: int) -> None:
        self.batch_sampler = batch_sampler
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[list]:
        sampler = getattr(self.batch_sampler, "sampler", None)
        if isinstance(sampler, RandomSampler):
            sampler.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        for indices in self.batch_sampler:
            indices = list(indices)
            start, stop = shard_bounds(len(indices), self.rank, self.world_size)
            mine = indices[start:stop]
            yield [(len(indices), i) for i in mine] or [(len(indices), None)]


class _TaggedCollate:
    def __init__(self, collate_fn: Any) -> None:
        self.collate_fn = collate_fn

    def __call__(self, items: list) -> tuple[int, int, Any]:
        total = items[0][0]
        if items[0][1] is _NOTHING:
            return total, 0, None
        return total, len(items), self.collate_fn([item for _, item in items])


class _ShardedLoader:
    """Iterates a rebuilt `DataLoader`, recording each batch's sizes."""

    def __init__(self, loader: DataLoader, sizes: StepSizes) -> None:
        self.loader, self.sizes = loader, sizes

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        for total, local, batch in self.loader:
            self.sizes.total, self.sizes.local = total, local
            yield (None, None, None) if batch is None else batch


def _shardable_loader(source: Any) -> TypeGuard[DataLoader]:
    return (
        isinstance(source, DataLoader)
        and source.batch_sampler is not None
        and not isinstance(source.dataset, torch.utils.data.IterableDataset)
    )


def _rebuild_loader(loader: DataLoader, sampler: Sampler) -> DataLoader:
    workers = loader.num_workers
    return DataLoader(
        _IndexedDataset(loader.dataset),
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=_TaggedCollate(loader.collate_fn),
        pin_memory=loader.pin_memory,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context if workers else None,
        prefetch_factor=loader.prefetch_factor if workers else None,
        persistent_workers=loader.persistent_workers if workers else False,
    )


def shard(
    data: Any, rank: int, world_size: int, seed: int, sizes: StepSizes
) -> Iterable[tuple[Any, Any, Any]]:
    """The batch source `data` (from `data_adapter.make_data`) cut for process `rank`.

    Array shuffling uses a generator seeded with `seed` (the same on every process).
    """
    if isinstance(data, data_adapter.ArrayData):
        if data.shuffle:
            data.generator = torch.Generator().manual_seed(seed)
        return _SlicedBatches(data, rank, world_size, sizes)
    if isinstance(data, data_adapter.IterableData) and _shardable_loader(data.source):
        loader = data.source
        sampler = _ShardedBatchSampler(loader.batch_sampler, rank, world_size, seed)
        rebuilt = _ShardedLoader(_rebuild_loader(loader, sampler), sizes)
        return data_adapter.IterableData(rebuilt, data.steps)
    return _SlicedBatches(data, rank, world_size, sizes)
