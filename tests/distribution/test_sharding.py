"""How global batches are cut into per-process slices (no process group needed)."""

import pytest
import torch

from birnn.distribution import sharding


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_slices_tile_every_batch_in_order_and_differ_by_at_most_one(world_size):
    for size in range(0, 11):
        bounds = [sharding.shard_bounds(size, r, world_size) for r in range(world_size)]
        assert bounds[0][0] == 0 and bounds[-1][1] == size
        assert all(stop == start for (_, stop), (start, _) in zip(bounds, bounds[1:]))
        lengths = [stop - start for start, stop in bounds]
        assert max(lengths) - min(lengths) <= 1


def test_sharded_batch_sampler_splits_identical_shuffles():
    def batches(rank):
        dataset = list(range(11))
        batch_sampler = torch.utils.data.BatchSampler(
            torch.utils.data.RandomSampler(dataset), batch_size=4, drop_last=False
        )
        sampler = sharding._ShardedBatchSampler(batch_sampler, rank, 2, seed=7)
        return [list(epoch) for epoch in (sampler, sampler)]  # two epochs

    mine, theirs = batches(0), batches(1)
    for epoch in range(2):
        assert len(mine[epoch]) == len(theirs[epoch]) == 3
        whole = []
        for a, b in zip(mine[epoch], theirs[epoch]):
            assert {t for t, _ in a} == {t for t, _ in b}  # both know the global size
            whole += [i for _, i in a] + [i for _, i in b]
        assert sorted(whole) == list(range(11))
    assert mine[0] != mine[1]  # reshuffled each epoch


def test_a_process_with_nothing_in_the_last_batch_gets_an_empty_marker():
    batch_sampler = torch.utils.data.BatchSampler(range(5), batch_size=4, drop_last=False)
    last = list(sharding._ShardedBatchSampler(batch_sampler, 1, 2, seed=0))[-1]
    assert last == [(1, None)]
