"""Times a birnn `Bidirectional` layer with its directions side by side, one after the
other, and `torch.nn.LSTM/GRU(bidirectional=True)`, all in this one process.

Usage::

    python benchmarks/side_by_side.py                 # (64, 100, 32) inputs, 128 units
    python benchmarks/side_by_side.py --sweep         # where side by side starts to pay
    taskset -c 0,1 python benchmarks/side_by_side.py  # pinned to two cores
    python benchmarks/side_by_side.py --phases --kinds lstm --size 64,500,32,64

`--phases` times the forward and the backward pass of a train step apart, and
adds one direction alone (a plain LSTM/GRU layer) at the thread count each
side-by-side worker gets: two of those at once, perfectly overlapped, are the
best side by side can do, so `side by side / one direction alone` is how much
of the overlap is lost, phase by phase.

A train step is the forward pass, a mean-squared error against a fixed target
and the backward pass (no optimizer: the optimizer step is the same for all);
an infer step is the forward pass under `torch.no_grad()`. The three
implementations are timed in turns of about `--block-seconds` each, and each
reports its median step; ratios are birnn / torch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

from birnn import layers
from birnn.ops import side_by_side

Step = Callable[[], None]


def _steps(kind: str, batch: int, steps: int, features: int, units: int) -> dict[str, Step]:
    torch.manual_seed(0)
    x = torch.randn(batch, steps, features)
    target = torch.randn(batch, 2 * units)
    rnn = {"lstm": layers.LSTM, "gru": layers.GRU}[kind]
    ours = layers.Bidirectional(rnn(units))
    ours(x)
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    theirs = module(features, units, batch_first=True, bidirectional=True)

    def birnn_output() -> torch.Tensor:
        return ours(x)

    def torch_output() -> torch.Tensor:
        _, final = theirs(x)
        h = final[0] if kind == "lstm" else final
        return torch.cat([h[0], h[1]], dim=-1)

    def train(output: Callable[[], torch.Tensor], mode: str) -> Step:
        def step() -> None:
            side_by_side.set_mode(mode)
            (output() - target).square().mean().backward()

        return step

    def infer(output: Callable[[], torch.Tensor], mode: str) -> Step:
        def step() -> None:
            side_by_side.set_mode(mode)
            with torch.no_grad():
                output()

        return step

    return {
        "train birnn side by side": train(birnn_output, "on"),
        "train birnn sequential": train(birnn_output, "off"),
        "train torch": train(torch_output, "off"),
        "infer birnn side by side": infer(birnn_output, "on"),
        "infer birnn sequential": infer(birnn_output, "off"),
        "infer torch": infer(torch_output, "off"),
    }


def _medians(steps: dict[str, Step], rounds: int, block_seconds: float) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():
        step()  # warm up
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            while time.perf_counter() - start < block_seconds:
                began = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - began)
    side_by_side.set_mode("auto")
    return {name: 1e3 * statistics.median(values) for name, values in times.items()}


Timed = Callable[[], tuple[float, float]]


def _phase_steps(kind: str, batch: int, steps: int, features: int, units: int) -> dict[str, Timed]:
    """Train steps that return their forward and backward seconds apart."""
    torch.manual_seed(0)
    x = torch.randn(batch, steps, features)
    rnn = {"lstm": layers.LSTM, "gru": layers.GRU}[kind]
    ours = layers.Bidirectional(rnn(units))
    alone = rnn(units)
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    theirs = module(features, units, batch_first=True, bidirectional=True)
    worker_threads = max(1, torch.get_num_threads() // 2)

    def torch_output() -> torch.Tensor:
        _, final = theirs(x)
        h = final[0] if kind == "lstm" else final
        return torch.cat([h[0], h[1]], dim=-1)

    def timed(output: Callable[[], torch.Tensor], mode: str, threads: int | None) -> Timed:
        def step() -> tuple[float, float]:
            side_by_side.set_mode(mode)
            caller_threads = torch.get_num_threads()
            if threads is not None:
                torch.set_num_threads(threads)
            try:
                began = time.perf_counter()
                loss = output().square().mean()
                middle = time.perf_counter()
                loss.backward()
                return middle - began, time.perf_counter() - middle
            finally:
                torch.set_num_threads(caller_threads)

        return step

    return {
        "birnn side by side": timed(lambda: ours(x), "on", None),
        "birnn sequential": timed(lambda: ours(x), "off", None),
        "torch": timed(torch_output, "off", None),
        f"one direction alone, {worker_threads} thr": timed(
            lambda: alone(x), "off", worker_threads
        ),
    }


def _phase_medians(
    steps: dict[str, Timed], rounds: int, block_seconds: float
) -> dict[str, tuple[float, float]]:
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for step in steps.values():
        step()  # warm up
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            times[name].append(step())  # at least one step a turn
            while time.perf_counter() - start < block_seconds:
                times[name].append(step())
    side_by_side.set_mode("auto")
    return {
        name: (
            1e3 * statistics.median(f for f, _ in values),
            1e3 * statistics.median(b for _, b in values),
        )
        for name, values in times.items()
    }


def _report_phases(title: str, medians: dict[str, tuple[float, float]]) -> None:
    print(title)
    reference = sum(medians["torch"])
    for name, (forward, backward) in medians.items():
        total = forward + backward
        print(
            f"  {name:28s} forward {forward:8.2f}  backward {backward:8.2f}  "
            f"total {total:8.2f} ms   / torch {total / reference:5.2f}"
        )
    (bound_name,) = (name for name in medians if name.startswith("one direction"))
    bound, ours = medians[bound_name], medians["birnn side by side"]
    print(
        f"  side by side / one direction alone: forward {ours[0] / bound[0]:.2f}, "
        f"backward {ours[1] / bound[1]:.2f} (1.00: no overlap lost)"
    )


def _report(title: str, medians: dict[str, float]) -> None:
    print(title)
    for phase in ("train", "infer"):
        reference = medians[f"{phase} torch"]
        for name, value in medians.items():
            if name.startswith(phase):
                print(f"  {name:28s} {value:9.3f} ms   / torch {value / reference:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="lstm,gru")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block-seconds", type=float, default=0.3)
    parser.add_argument("--sweep", action="store_true", help="small to large problems")
    parser.add_argument(
        "--size", default="64,100,32,128", help="batch,time,features,units (default: %(default)s)"
    )
    parser.add_argument(
        "--phases",
        action="store_true",
        help="train step only: forward and backward apart, with one direction alone",
    )
    args = parser.parse_args()
    waiting = {k: os.environ[k] for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ}
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, "
        f"OpenMP waiting: {waiting or 'default'}, load average {os.getloadavg()[0]:.2f}"
    )
    batch, steps, features, units = (int(value) for value in args.size.split(","))
    sizes = [(batch, steps, features, units)]
    if args.phases:
        for kind in args.kinds.split(","):
            medians = _phase_medians(
                _phase_steps(kind, batch, steps, features, units), args.rounds, args.block_seconds
            )
            _report_phases(
                f"{kind} train, batch {batch}, {steps} steps, {features} features, {units} units",
                medians,
            )
        return
    if args.sweep:
        # (batch, time, features, units); the first is the seed model's size.
        sizes = [(32, 5, 8, 10), (32, 20, 16, 16), (32, 50, 16, 32), (64, 50, 32, 64)] + sizes
    for kind in args.kinds.split(","):
        for batch, steps, features, units in sizes:
            work = batch * steps * {"lstm": 4, "gru": 3}[kind] * units * (features + units)
            medians = _medians(
                _steps(kind, batch, steps, features, units), args.rounds, args.block_seconds
            )
            _report(
                f"{kind} batch {batch}, {steps} steps, {features} features, {units} units "
                f"({work:.1e} multiply-adds per direction)",
                medians,
            )


if __name__ == "__main__":
    main()
