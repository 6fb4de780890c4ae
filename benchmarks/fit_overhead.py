"""Times `Model.fit` per training step on the seed model: birnn vs Keras 3 (torch).

Usage::

    python benchmarks/fit_overhead.py            # full run
    python benchmarks/fit_overhead.py --quick    # fewer batches and repeats

The model is the one from the seed docstring: ``Input((5, 10))`` ->
``Bidirectional(LSTM(10, return_sequences=True))`` -> ``Bidirectional(LSTM(10))``
-> ``Dense(5, activation="softmax")``, compiled with
``categorical_crossentropy`` and ``rmsprop``. Each library's own ``Sequential``
runs whole epochs of ``fit(..., batch_size=32, verbose=0)``, so the time per
step includes everything ``fit`` does around the compute (batching, callbacks,
optimizer bookkeeping). The two libraries are timed in turns (interleaved) in
this one process and each reports the median milliseconds per step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np

import birnn

ROW = "seed model fit, batch 32 (ms/step)"
BATCH = 32


def build(lib):
    """Builds and compiles the seed model with `lib` (`birnn` or `keras`)."""
    model = lib.Sequential(
        [
            lib.Input(shape=(5, 10)),
            lib.layers.Bidirectional(lib.layers.LSTM(10, return_sequences=True)),
            lib.layers.Bidirectional(lib.layers.LSTM(10)),
            lib.layers.Dense(5, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop")
    return model


def run(quick: bool, batches: int | None = None, repeats: int | None = None) -> list[dict]:
    """Times one `fit` epoch per repeat for each library.

    Args:
        quick: use 16 batches per epoch and 3 repeats instead of 64 and 9.
        batches: batches per epoch, overriding `quick`'s choice.
        repeats: timed epochs per library, overriding `quick`'s choice.

    Returns:
        One row dict: ``{"row", "birnn", "keras_torch", "ratio"}`` with the
        median ms per step of each library and ``keras_torch / birnn``.
    """
    default_batches, default_repeats = (16, 3) if quick else (64, 9)
    batches, repeats = batches or default_batches, repeats or default_repeats
    rng = np.random.default_rng(0)
    n = batches * BATCH
    x = rng.random((n, 5, 10), dtype=np.float32)
    y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, n)]
    models = {"birnn": build(birnn), "keras_torch": build(keras)}
    for model in models.values():  # warm-up: first-call costs, optimizer state
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            start = time.perf_counter()
            model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
            times[name].append((time.perf_counter() - start) / batches * 1e3)
    med = {name: statistics.median(values) for name, values in times.items()}
    return [
        {
            "row": ROW,
            "birnn": med["birnn"],
            "keras_torch": med["keras_torch"],
            "ratio": med["keras_torch"] / med["birnn"],
        }
    ]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: prints one line per row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer batches and repeats")
    args = parser.parse_args(argv)
    for row in run(args.quick):
        print(
            f"{row['row']}: birnn {row['birnn']:.2f}, "
            f"keras_torch {row['keras_torch']:.2f}, "
            f"keras_torch/birnn {row['ratio']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
