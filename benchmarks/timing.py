"""The timing loop every benchmark process shares; it imports neither torch nor Keras.

`run.py` (birnn, hand torch, Keras on torch) and `peers.py` (Keras on TensorFlow
or JAX, in their own virtual environments) time their steps with the same rule,
so their medians compare.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(
    steps: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int,
    min_seconds: float = 0.0,
    block_seconds: float = 0.0,
) -> dict[str, float]:
    """Median milliseconds per step of each of `steps`, timed in turns.

    Each turn runs every step function for one block of consecutive steps:
    as many as take about `block_seconds` (at least one), as a training loop
    runs them, back to back with warm caches. Turns go on for at least
    `repeats` blocks each and until `min_seconds` have passed, so a slow drift
    of the machine's speed reaches all of them alike.
    """
    block = {}
    for name, step in steps.items():
        start = time.perf_counter()
        for _ in range(max(warmup, 1)):  # at least one step, to size the block
            step()
        per_step = (time.perf_counter() - start) / max(warmup, 1)
        block[name] = max(1, round(block_seconds / per_step))
    samples: dict[str, list[float]] = {name: [] for name in steps}
    started = time.perf_counter()
    turns = 0
    while turns < repeats or time.perf_counter() - started < min_seconds:
        for name, step in steps.items():
            for _ in range(block[name]):
                start = time.perf_counter()
                step()
                samples[name].append((time.perf_counter() - start) * 1000)
        turns += 1
    return {name: statistics.median(values) for name, values in samples.items()}
