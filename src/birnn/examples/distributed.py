"""Data-parallel training of a Bidirectional LSTM across processes with `torchrun`.

The task is synthetic (nothing to download): each sequence is noise with a short
pulse, and the label says whether the pulse comes in the first or the second half,
which a model reading both directions learns in a few epochs.

One machine, two processes (gloo on CPU, nccl with one GPU per process)::

    torchrun --nproc_per_node=2 -m birnn.examples.distributed --epochs 3

Two machines, two processes each (run on both; `--node_rank` 0 on the first)::

    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=2 \\
        --master_addr=10.0.0.1 --master_port=29500 -m birnn.examples.distributed

Without `torchrun` the same script trains in one process. `batch_size` is the global
batch: each of N processes takes `batch_size / N` samples of it per step.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch

import birnn
from birnn import distribution, layers


def make_data(samples: int, timesteps: int, features: int, seed: int):
    """`(x, y)`: noise with a pulse in feature 0; `y` is 1 when the pulse is in the late half."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.5, size=(samples, timesteps, features)).astype("float32")
    y = rng.integers(0, 2, size=samples)
    half = timesteps // 2
    where = rng.integers(0, half, size=samples) + y * half
    x[np.arange(samples), where, 0] += 3.0
    return x, y.astype("float32")[:, None]


def build_model(timesteps: int, features: int, units: int) -> birnn.Model:
    model = birnn.Sequential(
        [
            birnn.Input((timesteps, features)),
            layers.Bidirectional(layers.LSTM(units, return_sequences=True)),
            layers.Bidirectional(layers.LSTM(units)),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; `--help` lists every option."""
    parser = argparse.ArgumentParser(
        prog="torchrun --nproc_per_node=N -m birnn.examples.distributed",
        description=(
            "Train a Bidirectional LSTM classifier with birnn.distribution.DataParallel: "
            "one process per device, each on its slice of every global batch."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs to train")
    parser.add_argument("--batch-size", type=int, default=128, help="global batch size")
    parser.add_argument("--samples", type=int, default=4096, help="training sequences")
    parser.add_argument("--timesteps", type=int, default=32, help="steps per sequence")
    parser.add_argument("--features", type=int, default=8, help="features per step")
    parser.add_argument("--units", type=int, default=32, help="LSTM units per direction")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and weights")
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds a process waits for the others before the job fails",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads per process (0: torch's default)"
    )
    parser.add_argument(
        "--output",
        default=None,
        help="folder for log.csv, a checkpoint per epoch and model.keras (written by process 0)",
    )
    parser.add_argument(
        "--verbose", type=int, default=2, choices=(0, 1, 2), help="fit verbosity (process 0)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    """Trains and evaluates; returns the history, the validation scores and the fit time."""
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        with distribution.DataParallel(timeout=args.timeout).scope() as current:
            return _run(args, current)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace, current: distribution.DataParallel) -> dict:
    say = print if distribution.is_primary() else (lambda *a, **k: None)
    say(f"{current.num_processes} process(es) on {current.device} ({current.backend})")

    x, y = make_data(args.samples, args.timesteps, args.features, args.seed)
    x_val, y_val = make_data(
        max(args.samples // 4, 1), args.timesteps, args.features, 1 + args.seed
    )
    torch.manual_seed(args.seed)  # process 0's initial weights are copied to the others anyway
    model = build_model(args.timesteps, args.features, args.units)

    callbacks = []
    if args.output:
        os.makedirs(args.output, exist_ok=True)
        callbacks = [
            birnn.callbacks.CSVLogger(os.path.join(args.output, "log.csv")),
            birnn.callbacks.ModelCheckpoint(os.path.join(args.output, "epoch-{epoch}.keras")),
        ]
    start = time.perf_counter()
    history = model.fit(
        x,
        y,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_data=(x_val, y_val),
        callbacks=callbacks,
        verbose=args.verbose,
    )
    seconds = time.perf_counter() - start
    scores = model.evaluate(x_val, y_val, batch_size=args.batch_size, verbose=0, return_dict=True)
    if args.output:
        model.save(os.path.join(args.output, "model.keras"))  # written once, by process 0
    say(
        f"fit: {seconds:.1f}s for {args.epochs} epoch(s), "
        f"{args.samples * args.epochs / seconds:.0f} samples/s; "
        f"validation accuracy {scores['accuracy']:.4f}"
    )
    return {"history": history.history, "scores": scores, "fit_seconds": seconds}


if __name__ == "__main__":
    main()
    sys.exit(0)
