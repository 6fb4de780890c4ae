"""Mask compaction: valid steps to the front in order, and results read back."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from birnn.ops import masks

ROWS = st.lists(st.lists(st.booleans(), min_size=6, max_size=6), min_size=1, max_size=5)


def _python_compaction(row, reverse):
    times = list(range(len(row)))[::-1] if reverse else list(range(len(row)))
    return [t for t in times if row[t]] + [t for t in times if not row[t]]


@settings(max_examples=40, deadline=None)
@given(ROWS, st.booleans())
def test_compaction_is_a_stable_partition(rows, reverse):
    index, counts, lengths = masks.compaction(torch.tensor(rows), reverse=reverse)
    assert index.tolist() == [_python_compaction(row, reverse) for row in rows]
    assert lengths.tolist() == [sum(row) for row in rows]
    read = [row[::-1] if reverse else row for row in rows]
    assert counts.tolist() == [[sum(r[: p + 1]) for p in range(len(r))] for r in read]


@settings(max_examples=30, deadline=None)
@given(ROWS)
def test_compact_then_take_carries_the_last_valid_step_forward(rows):
    mask = torch.tensor(rows)
    x = torch.randn(*mask.shape, 2)
    index, counts, _ = masks.compaction(mask)
    compacted = masks.gather_time_major(x, index)  # (slots, batch, features)
    assert compacted.shape == (mask.shape[1], mask.shape[0], 2)
    expanded = masks.take_slots(compacted, counts - 1, counts > 0)
    for b, row in enumerate(rows):
        previous = torch.zeros(2)
        for t, keep in enumerate(row):
            if keep:
                previous = x[b, t]
            assert torch.equal(expanded[b, t], previous)


def test_take_slots_reads_one_direction_and_one_slot_per_row():
    outputs = torch.randn(4, 3, 2 * 5)  # slots, batch, two directions of 5 units
    slots = torch.tensor([0, 3, 1])
    got = masks.take_slots(outputs, slots, direction=1, directions=2)
    expected = torch.stack([outputs[s, b, 5:] for b, s in enumerate(slots.tolist())])
    assert torch.equal(got, expected)


def test_take_slots_gradient_reaches_only_read_slots():
    outputs = torch.randn(3, 1, 1, requires_grad=True)
    slots = torch.tensor([[0, 0, 2]])
    masks.take_slots(outputs, slots, torch.tensor([[True, False, True]])).sum().backward()
    assert outputs.grad[:, 0, 0].tolist() == [1.0, 0.0, 1.0]


@settings(max_examples=20, deadline=None)
@given(ROWS, st.randoms(use_true_random=False))
def test_gathering_in_another_row_order_reads_back_the_same(rows, rng):
    """`gather_time_major(..., order)` puts row `order[j]` at position `j`; `take_slots`
    with `rows` (each row's position) reads the same values as without reordering."""
    mask = torch.tensor(rows)
    x = torch.randn(*mask.shape, 3)
    index, counts, _ = masks.compaction(mask)
    order = list(range(mask.shape[0]))
    rng.shuffle(order)
    order = torch.tensor(order)
    positions = torch.empty_like(order)
    positions[order] = torch.arange(order.shape[0])
    plain = masks.gather_time_major(x, index)
    reordered = masks.gather_time_major(x, index, order)
    assert torch.equal(reordered, plain.index_select(1, order))
    slots = counts - 1
    assert torch.equal(
        masks.take_slots(reordered, slots, slots >= 0, rows=positions),
        masks.take_slots(plain, slots, slots >= 0),
    )
