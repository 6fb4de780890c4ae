"""Serving row: the docstring model exported to ONNX and run in onnxruntime vs `predict_on_batch`.

The model is the `Bidirectional` docstring's stacked model with a `Masking` layer on
`Input((None, 10))`: `Bidirectional(LSTM(10, return_sequences=True))`,
`Bidirectional(LSTM(10))`, `Dense(5, softmax)`. Both sides get the same batch
(64 sequences of 100 steps, right-padded to lengths between 50 and 100) and are
timed in turns in one process, each turn running one side's calls back to back
for about `block_seconds`; onnxruntime uses as many intra-op threads as torch.

    python benchmarks/serving.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import torch

BATCH, TIME, FEATURES = 64, 100, 10


def _model():
    import birnn

    layers = birnn.layers
    torch.manual_seed(0)
    return birnn.Sequential(
        [
            birnn.Input((None, FEATURES)),
            layers.Masking(),
            layers.Bidirectional(layers.LSTM(10, return_sequences=True)),
            layers.Bidirectional(layers.LSTM(10)),
            layers.Dense(5, activation="softmax"),
        ]
    )


def _data(batch: int, steps: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, steps, FEATURES)).astype("float32")
    lengths = rng.integers(steps // 2, steps + 1, batch)
    lengths[0] = steps
    x[np.arange(steps)[None, :] >= lengths[:, None]] = 0.0
    return x


def _timed(steps: dict, repeats: int, block_seconds: float) -> dict:
    blocks = {}
    for name, step in steps.items():
        start = time.perf_counter()
        step()
        blocks[name] = max(1, round(block_seconds / (time.perf_counter() - start)))
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            for _ in range(blocks[name]):
                start = time.perf_counter()
                step()
                samples[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def run(quick: bool = False, repeats: int | None = None, block_seconds: float = 0.2) -> dict:
    """Median ms per batch of `"birnn"` and `"onnxruntime"`, their `"max_abs_diff"`, and
    the `"batch"` and `"time"` sizes."""
    import onnxruntime as ort

    batch, steps = (4, 6) if quick else (BATCH, TIME)
    model = _model()
    x = _data(batch, steps)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "docstring.onnx"
        model.export(path, format="onnx", verbose=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    expected = model.predict_on_batch(x)
    (got,) = session.run(None, feed)
    medians = _timed(
        {
            "birnn": lambda: model.predict_on_batch(x),
            "onnxruntime": lambda: session.run(None, feed),
        },
        repeats or (1 if quick else 15),
        0.0 if quick else block_seconds,
    )
    medians["max_abs_diff"] = float(np.abs(got - expected).max())
    return {**medians, "batch": batch, "time": steps}


def render(result: dict) -> str:
    """The serving note for `RESULTS.md`."""
    ratio = result["birnn"] / result["onnxruntime"]
    return (
        "\nServing, the docstring model (`Masking` on `Input((None, 10))`, two "
        f"`Bidirectional(LSTM(10))`, `Dense(5)`) over (batch {result['batch']}, time "
        f"{result['time']}), right-padded (`benchmarks/serving.py`): birnn `predict_on_batch` "
        f"{result['birnn']:.2f} ms, onnxruntime on `model.export(format='onnx')` "
        f"{result['onnxruntime']:.2f} ms per batch; birnn / onnxruntime {ratio:.2f}x "
        f"(largest output difference {result['max_abs_diff']:.1e}).\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one turn")
    args = parser.parse_args(argv)
    print(render(run(args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
