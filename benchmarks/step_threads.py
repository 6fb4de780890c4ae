"""Where one intra-op thread beats the caller's threads for a whole training step.

Usage::

    python benchmarks/step_threads.py            # torch's threads against one

For a ladder of model sizes (`Bidirectional(LSTM)` twice, `Dense(5, softmax)`,
RMSprop, categorical crossentropy), times `train_on_batch` and
`predict_on_batch` with the size rule of `birnn.models.trainer` switched off,
once at torch's threads and once at one thread, in turns in this one process,
and prints each size's work (parameters times input rows, the rule's measure)
with the ratio one thread / torch's threads (below 1: one thread is faster).
`_ONE_THREAD_STEP_WORK` sits where the ratio crosses 1.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import torch

import birnn
from birnn.models import trainer

# (batch, time steps, features, units); the first is the seed model's size.
SIZES = [
    (32, 5, 10, 10),
    (64, 5, 10, 10),
    (32, 10, 10, 10),
    (16, 10, 16, 16),
    (32, 5, 10, 20),
    (32, 10, 16, 16),
    (32, 20, 16, 32),
    (64, 50, 32, 64),
]


def _model(batch: int, time_steps: int, features: int, units: int):
    layers = birnn.layers
    model = birnn.Sequential(
        [
            birnn.Input((time_steps, features)),
            layers.Bidirectional(layers.LSTM(units, return_sequences=True)),
            layers.Bidirectional(layers.LSTM(units)),
            layers.Dense(5, activation="softmax"),
        ]
    )
    model.compile(
        loss="categorical_crossentropy", optimizer=birnn.optimizers.RMSprop(learning_rate=1e-3)
    )
    rng = np.random.default_rng(0)
    x = rng.random((batch, time_steps, features), dtype=np.float32)
    y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, batch)]
    return model, x, y


def _on_threads(count: int, step):
    def run():
        before = torch.get_num_threads()
        torch.set_num_threads(count)
        try:
            step()
        finally:
            torch.set_num_threads(before)

    return run


def _ladder(args: argparse.Namespace) -> None:
    threads = torch.get_num_threads()
    print(f"one thread / {threads} threads, median of {args.turns} turns; ms at {threads}:")
    for size in SIZES:
        model, x, y = _model(*size)
        model.train_on_batch(x, y)
        parameters = sum(p.numel() for p in model.parameters())
        variants = {
            (kind, count): _on_threads(count, step)
            for kind, step in (
                ("train", functools.partial(model.train_on_batch, x, y)),
                ("predict", functools.partial(model.predict_on_batch, x)),
            )
            for count in (threads, 1)
        }
        start = time.perf_counter()
        for run in variants.values():
            run()
        calls = max(1, int(args.seconds / ((time.perf_counter() - start) / len(variants))))
        samples: dict = {key: [] for key in variants}
        for _ in range(args.turns):
            for key, run in variants.items():
                start = time.perf_counter()
                for _ in range(calls):
                    run()
                samples[key].append((time.perf_counter() - start) / calls * 1e3)
        median = {key: statistics.median(values) for key, values in samples.items()}
        cells = [
            f"{kind} {median[kind, 1] / median[kind, threads]:.2f} "
            f"({median[kind, threads]:.3f} ms)"
            for kind in ("train", "predict")
        ]
        work = parameters * size[0] * size[1]
        print(f"{size} work {work:.1e}: " + "  ".join(cells), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=7, help="timed turns per variant")
    parser.add_argument("--seconds", type=float, default=0.1, help="about this long per turn")
    args = parser.parse_args(argv)
    rule = trainer._ONE_THREAD_STEP_WORK
    trainer._ONE_THREAD_STEP_WORK = 0.0  # the rule off: each variant sets its own threads
    try:
        _ladder(args)
    finally:
        trainer._ONE_THREAD_STEP_WORK = rule
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
