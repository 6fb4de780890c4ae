"""One Keras backend's side of `make bench`'s peers table, in its own process.

`run.py` starts this script with the Python of a peer's virtual environment
(`.bench/keras-tf`, `.bench/keras-jax`; `make bench-peers` creates them) and
`KERAS_BACKEND` set, and hands it a JSON spec: the rows (sizes, masked or not,
train or infer) and, for each, a `.npz` file with the exact inputs and targets
that birnn and hand torch get. For each row it builds the Keras-level
workload, `Sequential([Input, (Masking(0.0)), Bidirectional(LSTM/GRU(units))])`
(the seed model: two `Bidirectional` layers and `Dense(5, softmax)`), compiles
it with `RMSprop(1e-3)` and MSE (the seed model: categorical crossentropy) and
Keras's defaults otherwise, and times `train_on_batch` or `predict_on_batch`
with the loop of `timing.py`. It writes the medians (ms) and the versions it
ran to the JSON file named by `--output`.

It imports only NumPy and Keras (and whatever backend Keras loads), never
torch or birnn, so a peer's environment needs nothing of the project.

    KERAS_BACKEND=jax .bench/keras-jax/bin/python benchmarks/peers.py SPEC.json --output OUT.json
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import median_ms


def build(keras, row: dict):
    """The row's compiled Keras model."""
    layers = keras.layers
    rnn = layers.GRU if row["kind"] == "gru" else layers.LSTM
    stack = [keras.Input(shape=(row["time"], row["features"]))]
    if row["masked"]:  # padded steps are all-zero; `Masking` turns them into the mask
        stack.append(layers.Masking(0.0))
    if row["kind"] == "seed":
        stack += [
            layers.Bidirectional(rnn(row["units"], return_sequences=True)),
            layers.Bidirectional(rnn(row["units"])),
            layers.Dense(5, activation="softmax"),
        ]
    else:
        stack.append(layers.Bidirectional(rnn(row["units"])))
    model = keras.Sequential(stack)
    loss = "categorical_crossentropy" if row["kind"] == "seed" else "mse"
    model.compile(loss=loss, optimizer=keras.optimizers.RMSprop(learning_rate=1e-3))
    return model


def _step(model, train: bool, x, target):
    if train:
        return lambda: model.train_on_batch(x, target)
    return lambda: model.predict_on_batch(x)


def versions(backend: str) -> dict[str, str]:
    names = {"tensorflow": ["tensorflow-cpu", "tensorflow"], "jax": ["jax", "jaxlib"]}
    names = names.get(backend, [backend])
    found = {"keras": importlib.metadata.version("keras")}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", help="JSON spec written by run.py")
    parser.add_argument("--output", required=True, help="JSON file for the medians")
    args = parser.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())

    import keras
    import numpy as np

    backend = keras.backend.backend()
    threads = spec.get("threads")
    if threads and backend == "tensorflow":  # JAX's come from XLA_FLAGS, set by run.py
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    medians, jit = {}, {}
    for row in spec["rows"]:
        data = np.load(row["data"])
        x, target = data["x"], data["target"]
        keras.utils.set_random_seed(0)
        model = build(keras, row)
        timed = median_ms(
            {row["name"]: _step(model, row["train"], x, target)},
            spec["repeats"],
            spec["warmup"],
            spec["min_seconds"],
            spec["block_seconds"],
        )
        medians.update(timed)
        jit[row["name"]] = str(getattr(model, "jit_compile", "n/a"))
        print(f"  {backend}: {row['name']}: {timed[row['name']]:.2f} ms", flush=True)
    result = {
        "backend": backend,
        "versions": versions(backend),
        "medians": medians,
        "jit_compile": jit,
        "cpus": os.cpu_count(),
        "threads": threads or "default",
    }
    Path(args.output).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
