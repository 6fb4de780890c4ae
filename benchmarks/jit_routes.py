"""Times `jit_compile=True` with the recurrence as native kernels in the graph or unrolled.

Usage::

    python benchmarks/jit_routes.py --time 5 --units 10            # the seed model's sizes
    python benchmarks/jit_routes.py --time 10 --units 128 --steps 30

One model (`Bidirectional(LSTM(units, return_sequences=True))`,
`Bidirectional(LSTM(units))`, `Dense(5, softmax)`, batch 32, 8 features,
RMSprop) compiled once with each route: dynamo keeps both graphs, guarded on
`birnn.ops.native_rnn.set_enabled`, which the timed turns switch. The size
rule (`birnn.ops.native_graph.wanted`) is bypassed so that inference takes the
native route too. Prints the compile times and the median and minimum CPU ms
per `train_on_batch` / `predict_on_batch`, at one torch thread unless told.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import torch

import birnn
from birnn.ops import native_graph, native_rnn

ROUTES = {"native": True, "unrolled": False}


def _model(time_steps: int, units: int) -> birnn.Sequential:
    layers = birnn.layers
    model = birnn.Sequential(
        [
            birnn.Input(shape=(time_steps, 8)),
            layers.Bidirectional(layers.LSTM(units, return_sequences=True)),
            layers.Bidirectional(layers.LSTM(units)),
            layers.Dense(5, activation="softmax"),
        ]
    )
    model.compile(
        loss="categorical_crossentropy",
        optimizer=birnn.optimizers.RMSprop(learning_rate=1e-3),
        jit_compile=True,
    )
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time", type=int, default=5, help="time steps")
    parser.add_argument("--units", type=int, default=10, help="units per direction")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--turns", type=int, default=7, help="timed turns per route")
    parser.add_argument("--steps", type=int, default=100, help="steps per turn")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not native_rnn.enabled():
        print("birnn's native kernels are not available here: nothing to compare.")
        return 1
    native_graph.wanted = lambda tensors, steps: native_graph.usable(tensors)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, args.time, 8)).astype("float32")
    y = np.eye(5, dtype="float32")[rng.integers(0, 5, 32)]
    model = _model(args.time, args.units)
    for route, enabled in ROUTES.items():
        native_rnn.set_enabled(enabled)
        start = time.perf_counter()
        for _ in range(3):  # the first step after compile() runs eagerly
            model.train_on_batch(x, y)
        model.predict_on_batch(x)
        print(f"{route}: compiled (train + predict) in {time.perf_counter() - start:.1f} s")
    steps = {
        "train": lambda: model.train_on_batch(x, y),
        "predict": lambda: model.predict_on_batch(x),
    }
    times: dict[str, list[float]] = {f"{k} {r}": [] for k in steps for r in ROUTES}
    for _ in range(args.turns):
        for route, enabled in ROUTES.items():
            native_rnn.set_enabled(enabled)
            for kind, step in steps.items():
                start = time.process_time()
                for _ in range(args.steps):
                    step()
                times[f"{kind} {route}"].append((time.process_time() - start) / args.steps * 1e3)
    native_rnn.set_enabled(True)
    print(f"T={args.time}, {args.units} units, {args.threads} thread(s), CPU ms per step:")
    for name, values in times.items():
        print(f"  {name:18s} median {statistics.median(values):.3f}  min {min(values):.3f}")
    for kind in steps:
        native, unrolled = times[f"{kind} native"], times[f"{kind} unrolled"]
        ratio = statistics.median(native) / statistics.median(unrolled)
        print(f"  {kind}: native / unrolled {ratio:.3f} (medians)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
