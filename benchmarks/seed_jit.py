"""Times the seed row with and without `compile(jit_compile=True)`, against hand torch.

Usage::

    python benchmarks/seed_jit.py               # wall-clock medians, torch's threads
    python benchmarks/seed_jit.py --threads 1 --cpu-time   # on a loaded machine

The seed model of `run.py` (`Bidirectional(LSTM(10, return_sequences=True))`,
`Bidirectional(LSTM(10))`, `Dense(5, softmax)`, batch 32, T=5) with birnn's
`train_on_batch` / `predict_on_batch`, eager (the default) and compiled, and the
same model written with `torch.nn` (`run.py`'s hand-torch row). The compiled
model starts from the eager one's weights; its compilation time is printed
apart. All implementations are timed in turns in this one process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench

ROW = next(row for row in bench.ROWS if row.kind == "seed")


def _model(jit_compile: bool):
    lib = bench._library("birnn")
    model = lib.Sequential([lib.Input(shape=(ROW.time, ROW.features)), *bench._stack(lib, ROW)])
    model.compile(
        loss="categorical_crossentropy",
        optimizer=lib.optimizers.RMSprop(learning_rate=1e-3),
        jit_compile=jit_compile,
    )
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--cpu-time", action="store_true", help="process CPU time, not wall")
    parser.add_argument("--turns", type=int, default=7, help="timed turns per implementation")
    parser.add_argument("--steps", type=int, default=100, help="steps per turn")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.cpu_time else time.perf_counter

    data = bench._data(ROW)
    x, target = data["x"].numpy(), data["target"].numpy()
    eager, compiled = _model(False), _model(True)
    compiled.set_weights(eager.get_weights())
    start = time.perf_counter()
    for _ in range(2):  # the first training step after compile() runs eagerly
        compiled.train_on_batch(x, target)
    compiled.predict_on_batch(x)
    print(f"jit_compile=True: first 2 train + 1 predict steps {time.perf_counter() - start:.1f} s")

    steps = {
        "birnn train_on_batch": lambda: eager.train_on_batch(x, target),
        "birnn jit train_on_batch": lambda: compiled.train_on_batch(x, target),
        "hand torch train": bench.make_torch(ROW),
        "birnn predict_on_batch": lambda: eager.predict_on_batch(x),
        "birnn jit predict_on_batch": lambda: compiled.predict_on_batch(x),
        "hand torch infer": bench.make_torch(replace(ROW, train=False)),
    }
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():
        for _ in range(20):
            step()
    for _ in range(args.turns):
        for name, step in steps.items():
            begin = clock()
            for _ in range(args.steps):
                step()
            samples[name].append((clock() - begin) * 1000 / args.steps)
    kind = "CPU" if args.cpu_time else "wall"
    print(f"seed row, median ms per step ({kind}, {torch.get_num_threads()} torch threads):")
    for name, values in samples.items():
        print(f"  {name:28s} {statistics.median(values):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
