"""Times birnn against hand-written PyTorch and Keras 3 (torch backend) on the rows below.

Usage::

    python benchmarks/run.py            # full run, writes benchmarks/RESULTS.md
    python benchmarks/run.py --quick    # tiny sizes, a smoke test of every path
    python benchmarks/run.py --device cuda --rows ...   # birnn / torch / Keras on a GPU

The rows marked `peer` also make the peers table: birnn's `Model` against hand
torch, Keras on torch, and Keras 3 on TensorFlow and on JAX. Those two run
`peers.py` in their own virtual environments (`.bench/keras-tf`,
`.bench/keras-jax`, created by `make bench-peers`), one process per backend and row,
each started right after the row's own process, on the same inputs (handed over as `.npz`
files) with the same timing loop (`timing.py`); a missing environment is reported and the
rest still runs.

Every row is a `Bidirectional` layer (or the seed model) doing the same work in
each implementation, with the same sizes and inputs:

- birnn / Keras layer: the library's `Bidirectional(LSTM/GRU(units))` layer
  called eagerly, its parameters stepped by a torch optimizer;
- birnn / Keras Model: the library's `Sequential` model and its own
  `train_on_batch` / `predict_on_batch` (Keras's own RMSprop), the usual use;
- torch: `torch.nn.LSTM/GRU(bidirectional=True)` (packed sequences for the
  masked row, PyTorch's way of masking), the final states concatenated; for
  the ConvLSTM row a hand-written PyTorch ConvLSTM in PyTorch's layout
  (`(batch, time, channels, rows, cols)`), one input convolution over all
  steps and one recurrent convolution per step and direction.

The CRNN row (`benchmarks/crnn.py`) times a whole OCR-style model instead:
Conv2D/MaxPooling2D/BatchNormalization, Reshape, Dense, two Bidirectional
LSTMs and a per-step softmax, against the same model written with `torch.nn`.

The attention row is `Bidirectional(LSTM(units, return_sequences=True))`, then
`MultiHeadAttention(4 heads, key_dim=units // 2)` over the sequence (self-attention)
and the mean over time; its torch version is `nn.LSTM(bidirectional=True)`,
`nn.MultiheadAttention(batch_first=True)` (`need_weights=False`) and the mean.

A layer-level training step is forward, mean-squared error against a fixed
target, backward and an `RMSprop(lr=1e-3, alpha=0.9, eps=1e-7)` step; an
inference step is the forward pass under `torch.no_grad()`.

Each row runs in a fresh Python process of its own (this script again, with
the hidden `--row-child`; the `Model.fit` and serving rows with
`--part-child`), which hands its medians back as JSON, so no row inherits
what the rows before it left behind: the heap, thread pools, caches, compiled
graphs (in one process the seed rows ran about 1.6x slower after the long
rows than alone, for every implementation). Within that process the
implementations of the row are timed in turns (interleaved), and each
reports its median step. A turn runs one implementation's steps back to back
for about `--block-seconds` (0.2 s), as a training loop does: alternating
single steps of five libraries measures cold caches instead, which penalises
whichever step runs more Python (measured 2026-11-30 on the seed row: birnn /
torch 1.30x alternating single steps of all five, 1.14x of birnn and torch
alone). `--in-process` times every row in this process instead (for a
profiler or a debugger; rows then share their state). The masked row also
times the birnn layer on its data without the mask, in the same turns, for
the masked / unmasked ratio. The memory row runs the LSTM training row in a
fresh process per layer-level implementation (`--memory-child`) and reports
its peak resident set size.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from timing import median_ms  # noqa: E402

UNMASKED = "birnn-unmasked"
JIT = "birnn-model-jit"
# Where every implementation's tensors and modules live (`--device`); Keras on torch
# picks CUDA by itself when there is one.
DEVICE = torch.device("cpu")


@dataclass(frozen=True)
class Row:
    """One benchmark workload."""

    name: str
    kind: str = "lstm"  # lstm, gru, seed (the seed model), crnn (crnn.py), mha, convlstm2d
    batch: int = 64
    time: int = 100
    features: int = 32
    units: int = 128
    masked: bool = False
    train: bool = True
    size: int = 0  # rows = cols of each frame (ConvLSTM rows)
    peer: bool = False  # also in the peers table (Keras on TensorFlow, JAX and torch)


SEED = {"kind": "seed", "batch": 32, "time": 5, "features": 10, "units": 10}
ROWS = [
    Row("LSTM train", peer=True),
    Row("LSTM train, masked", masked=True, peer=True),
    Row("LSTM infer", train=False, peer=True),
    Row("LSTM infer, masked", masked=True, train=False, peer=True),
    Row("GRU train", kind="gru", peer=True),
    Row("GRU infer", kind="gru", train=False, peer=True),
    Row("GRU infer, masked", kind="gru", masked=True, train=False, peer=True),
    Row("LSTM T=500, 64 units, train", time=500, units=64, peer=True),
    Row("LSTM T=500, 64 units, infer", time=500, units=64, train=False, peer=True),
    Row("seed model (T=5, 10 units) train step", peer=True, **SEED),
    Row("seed model (T=5, 10 units) infer step", train=False, peer=True, **SEED),
    Row(
        "CRNN (batch 32, 128x32 images, 64 units) train",
        kind="crnn",
        batch=32,
        time=128,
        features=32,
        units=64,
    ),
    Row("BiLSTM (64 units) + MultiHeadAttention train", kind="mha", units=64),
    Row(
        "ConvLSTM2D (16 filters, 3x3, same, seqs), 10 frames 32x32x4, batch 8, train",
        kind="convlstm2d",
        batch=8,
        time=10,
        features=4,
        units=16,
        size=32,
    ),
]

HEADS = 4


def _quick(row: Row) -> Row:
    if row.kind == "crnn":  # two 2x2 poolings need room
        return replace(row, batch=4, time=8, features=4, units=4)
    return replace(
        row, batch=4, time=min(row.time, 6), features=3, units=HEADS, size=min(row.size, 5)
    )


def _crnn():
    """The CRNN row's module (`benchmarks/crnn.py`)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import crnn

    return crnn


def _frame(row: Row) -> tuple:
    """One step's shape (Keras's channels-last layout)."""
    if row.kind == "convlstm2d":
        return (row.size, row.size, row.features)
    return (row.features,)


# ---------------------------------------------------------------- shared inputs


def _data(row: Row) -> dict:
    return {name: value.to(DEVICE) for name, value in _cpu_data(row).items()}


def _cpu_data(row: Row) -> dict:
    if row.kind == "crnn":
        return _crnn().data(row)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(row.batch, row.time, *_frame(row), generator=g)
    lengths = torch.randint(row.time // 2, row.time + 1, (row.batch,), generator=g)
    lengths[0] = row.time
    mask = torch.arange(row.time) < lengths[:, None]
    if row.kind == "seed":
        labels = torch.randint(0, 5, (row.batch,), generator=g)
        target = torch.nn.functional.one_hot(labels, 5).float()
    elif row.kind == "convlstm2d":  # the merged sequences
        target = torch.randn(row.batch, row.time, row.size, row.size, 2 * row.units, generator=g)
    else:
        target = torch.randn(row.batch, 2 * row.units, generator=g)
    return {"x": x, "mask": mask, "lengths": lengths, "target": target}


def _loss(row: Row, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if row.kind == "seed":  # categorical crossentropy on softmax probabilities, as Keras
        probs = output.clamp(1e-7, 1 - 1e-7)
        return -(target * probs.log()).sum(-1).mean()
    return ((output - target) ** 2).mean()


def _optimizer(params: list) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=1e-3, alpha=0.9, eps=1e-7)


def _stepper(row: Row, model: Callable, params: list, data: dict) -> Callable[[], None]:
    """One training or inference step of `model(data) -> output`."""
    if not row.train:

        def infer() -> None:
            with torch.no_grad():
                model(data)

        return infer
    optimizer = _optimizer(params)

    def train() -> None:
        optimizer.zero_grad(set_to_none=True)
        _loss(row, model(data), data["target"]).backward()
        optimizer.step()

    return train


# ---------------------------------------------------------------- implementations


def _library(name: str):
    """`birnn` or `keras`: both spell the layers, `Input`, `Sequential` and optimizers alike."""
    if name == "keras":
        import keras

        return keras
    import birnn
    import birnn.layers

    return birnn


def _stack(lib, row: Row) -> list:
    """The row's layers, built from `lib` (`birnn` or `keras`)."""
    if row.kind == "crnn":
        return _crnn().stack(lib, row)
    layers = lib.layers
    if row.kind == "convlstm2d":
        conv_lstm = layers.ConvLSTM2D(row.units, 3, padding="same", return_sequences=True)
        return [layers.Bidirectional(conv_lstm)]
    rnn = layers.GRU if row.kind == "gru" else layers.LSTM
    if row.kind == "seed":  # the model of the seed document
        return [
            layers.Bidirectional(rnn(row.units, return_sequences=True)),
            layers.Bidirectional(rnn(row.units)),
            layers.Dense(5, activation="softmax"),
        ]
    if row.kind == "mha":
        return [
            layers.Bidirectional(rnn(row.units, return_sequences=True)),
            layers.MultiHeadAttention(num_heads=HEADS, key_dim=2 * row.units // HEADS),
            layers.GlobalAveragePooling1D(),
        ]
    return [layers.Bidirectional(rnn(row.units))]


def _make_layers(name: str, row: Row) -> Callable[[], None]:
    """The library's layers called eagerly, stepped by a torch optimizer."""
    lib = _library(name)
    data = _data(row)
    stack = _stack(lib, row)
    mask = data["mask"] if row.masked else None

    def forward(data: dict) -> torch.Tensor:
        y = data["x"]
        for layer in stack:
            kwargs = {"training": row.train}
            if mask is not None:
                kwargs["mask"] = mask
            if type(layer).__name__ == "MultiHeadAttention":  # self-attention
                y = layer(y, y, training=row.train)
            else:
                y = layer(y, **kwargs)
        return y

    forward(data)  # builds the weights
    if name == "keras":
        params = [v.value for layer in stack for v in layer.trainable_weights]
    else:
        params = [p for layer in stack for p in layer.parameters()]
    return _stepper(row, forward, params, data)


def _make_model(name: str, row: Row, jit_compile: bool = False) -> Callable[[], None]:
    """The library's `Sequential` model: `train_on_batch` / `predict_on_batch` on NumPy data.

    With `jit_compile`, the model is compiled with `jit_compile=True` and its
    compilation (a first eager training step, then the compiled one) runs here,
    untimed; its duration is printed.
    """
    lib = _library(name)
    data = _data(row)
    x = data["x"]
    shape = _crnn().input_shape(row) if row.kind == "crnn" else (row.time, *_frame(row))
    head = [lib.Input(shape=shape)]
    if row.masked:  # padded steps are all-zero; `Masking` turns them into the mask
        x = x * data["mask"].unsqueeze(-1)
        head.append(lib.layers.Masking(0.0))
    if row.kind == "mha":  # attention takes two inputs: a functional model
        inputs = head[0]
        sequence, attention, pooling = _stack(lib, row)
        y = sequence(inputs)
        model = lib.Model(inputs, pooling(attention(y, y)))
    else:
        model = lib.Sequential(head + _stack(lib, row))
    loss = "categorical_crossentropy" if row.kind == "seed" else "mse"
    if name == "birnn":
        model.to(DEVICE)
    optimizer = lib.optimizers.RMSprop(learning_rate=1e-3)
    model.compile(loss=loss, optimizer=optimizer, jit_compile=jit_compile)
    x, target = x.cpu().numpy(), data["target"].cpu().numpy()
    step = (
        (lambda: model.predict_on_batch(x))
        if not row.train
        else (lambda: model.train_on_batch(x, target))
    )
    if jit_compile:
        start = time.perf_counter()
        for _ in range(2):  # a compiled model's first training step runs eagerly
            step()
        print(
            f"{row.name}: birnn jit_compile=True compiled in {time.perf_counter() - start:.1f} s"
        )
    return step


class TorchConvLSTM(torch.nn.Module):
    """A hand-written ConvLSTM (`"same"` padding) in PyTorch's layout, one direction.

    The input convolution runs once over all frames (time folded into the
    batch), the recurrent one once per step; gates `i, f, c, o`.
    """

    def __init__(self, channels: int, filters: int, kernel_size: int, reverse: bool) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.filters, self.reverse = filters, reverse
        self.input_conv = torch.nn.Conv2d(channels, 4 * filters, kernel_size, padding=pad)
        self.recurrent_conv = torch.nn.Conv2d(
            filters, 4 * filters, kernel_size, padding=pad, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, time, channels, rows, cols)
        batch, steps = x.shape[:2]
        z = self.input_conv(x.flatten(0, 1)).unflatten(0, (batch, steps))
        h = c = x.new_zeros(batch, self.filters, *z.shape[3:])
        outputs = []
        order = range(steps - 1, -1, -1) if self.reverse else range(steps)
        for t in order:
            i, f, g, o = (z[:, t] + self.recurrent_conv(h)).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        if self.reverse:
            outputs.reverse()
        return torch.stack(outputs, 1)


def _make_torch_conv_lstm(row: Row) -> Callable[[], None]:
    data = _data(row)
    # PyTorch's layout: channels before the spatial axes, for inputs and targets alike.
    data = {**data, "x": data["x"].permute(0, 1, 4, 2, 3).contiguous()}
    data["target"] = data["target"].permute(0, 1, 4, 2, 3).contiguous()
    directions = [
        TorchConvLSTM(row.features, row.units, 3, reverse).to(DEVICE) for reverse in (False, True)
    ]

    def forward(data: dict) -> torch.Tensor:
        return torch.cat([direction(data["x"]) for direction in directions], dim=2)

    params = [p for m in directions for p in m.parameters()]
    return _stepper(row, forward, params, data)


def make_torch(row: Row) -> Callable[[], None]:
    """Hand-written `torch.nn.LSTM/GRU(bidirectional=True)`; packed sequences when masked."""
    if row.kind == "convlstm2d":
        return _make_torch_conv_lstm(row)
    data = _data(row)
    if row.kind == "crnn":
        model = _crnn().TorchCRNN(row).to(DEVICE)
        return _stepper(row, lambda data: model(data["x_nchw"]), list(model.parameters()), data)
    nn = torch.nn
    cls = nn.GRU if row.kind == "gru" else nn.LSTM
    rnn = cls(row.features, row.units, batch_first=True, bidirectional=True)
    modules = [rnn]
    if row.kind == "seed":
        second = nn.LSTM(2 * row.units, row.units, batch_first=True, bidirectional=True)
        dense = nn.Linear(2 * row.units, 5)
        modules += [second, dense]
    if row.kind == "mha":
        attention = nn.MultiheadAttention(2 * row.units, HEADS, batch_first=True)
        modules.append(attention)

    def final_states(module: nn.Module, x: object) -> torch.Tensor:
        _, state = module(x)
        h = state[0] if isinstance(state, tuple) else state
        return torch.cat([h[0], h[1]], dim=-1)

    def forward(data: dict) -> torch.Tensor:
        x = data["x"]
        if row.kind == "seed":
            sequences, _ = rnn(x)
            return torch.softmax(dense(final_states(second, sequences)), dim=-1)
        if row.kind == "mha":
            sequences, _ = rnn(x)
            attended, _ = attention(sequences, sequences, sequences, need_weights=False)
            return attended.mean(dim=1)
        if row.masked:
            x = nn.utils.rnn.pack_padded_sequence(
                x, data["lengths"], batch_first=True, enforce_sorted=False
            )
        return final_states(rnn, x)

    for module in modules:
        module.to(DEVICE)
    params = [p for m in modules for p in m.parameters()]
    return _stepper(row, forward, params, data)


MAKERS = {
    "birnn": lambda row: _make_layers("birnn", row),
    "birnn-model": lambda row: _make_model("birnn", row),
    # `compile(jit_compile=True)`, timed on the seed rows only (compiling the long rows
    # would take minutes and keep their fused kernels outside the graph).
    JIT: lambda row: _make_model("birnn", row, jit_compile=True),
    "torch": make_torch,
    "keras": lambda row: _make_layers("keras", row),
    "keras-model": lambda row: _make_model("keras", row),
    # A masked row's own reference: the same birnn layer and data without the mask, timed
    # in the same turns, so the masked / unmasked ratio sees no drift between rows.
    UNMASKED: lambda row: _make_layers("birnn", replace(row, masked=False)),
}
IMPLEMENTATIONS = tuple(name for name in MAKERS if name != UNMASKED)


def row_implementations(row: Row, implementations: list[str]) -> list[str]:
    """The implementations timed on `row`: the compiled model only on the seed rows, and
    the masked rows' unmasked reference."""
    names = [name for name in implementations if name != JIT or row.kind == "seed"]
    return names + ([UNMASKED] if row.masked and "birnn" in implementations else [])


# ---------------------------------------------------------------- timing


def time_row(
    row: Row,
    implementations: list[str],
    repeats: int,
    warmup: int,
    min_seconds: float = 0.0,
    block_seconds: float = 0.0,
) -> dict:
    """Median milliseconds per step of each implementation, timed in turns.

    Each turn runs every implementation for one block of consecutive steps:
    as many as take about `block_seconds` (at least one), as a training loop
    runs them, back to back with warm caches. Turns go on for at least
    `repeats` blocks each and until `min_seconds` have passed, so a slow drift
    of the machine's speed reaches all implementations alike.
    """
    steps = {name: _synchronized(MAKERS[name](row)) for name in implementations}
    return median_ms(steps, repeats, warmup, min_seconds, block_seconds)


def _synchronized(step: Callable[[], None]) -> Callable[[], None]:
    """`step`, waiting for the GPU to finish it when the benchmark runs on CUDA."""
    if DEVICE.type != "cuda":
        return step

    def synchronized() -> None:
        step()
        torch.cuda.synchronize(DEVICE)

    return synchronized


def in_child(arguments: list[str], quick: bool) -> dict:
    """Runs this script with `arguments` in a fresh Python process; returns the JSON it answers.

    The child gets this process's torch thread count, device and `--quick`,
    and writes its answer to a temporary file (`--child-output`); what it
    prints passes through.
    """
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "answer.json"
        command = [sys.executable, __file__, *arguments, "--child-output", str(output)]
        command += ["--threads", str(torch.get_num_threads()), "--device", str(DEVICE)]
        if quick:
            command.append("--quick")
        subprocess.run(command, check=True)
        return json.loads(output.read_text())


def _answer(path: str | None, answer: dict) -> None:
    """A child's answer to `in_child`: JSON in `path` (printed when there is none)."""
    text = json.dumps(answer)
    if path is None:
        print(text)
    else:
        Path(path).write_text(text)


def time_row_alone(
    row: Row,
    implementations: list[str],
    repeats: int,
    warmup: int,
    min_seconds: float,
    block_seconds: float,
    quick: bool,
) -> tuple[dict, int]:
    """`time_row` on `row` in a fresh process of its own: `(medians, that process's id)`.

    `implementations` as given to `--only` (the child adds the row's own, as
    `row_implementations` does).
    """
    arguments = ["--row-child", row.name, "--only", ",".join(implementations)]
    arguments += ["--repeats", str(repeats), "--warmup", str(warmup)]
    arguments += ["--min-seconds", repr(min_seconds), "--block-seconds", repr(block_seconds)]
    answer = in_child(arguments, quick)
    return answer["medians"], answer["pid"]


def _fit_part(quick: bool) -> dict:
    import fit_overhead

    return {"rows": fit_overhead.run(quick)}


def _serving_part(quick: bool) -> dict:
    import serving

    return serving.run(quick)


# The timed parts besides the rows: `Model.fit` (`fit_overhead.py`) and serving
# (`serving.py`).
PARTS = {"fit": _fit_part, "serving": _serving_part}


def part(name: str, quick: bool, in_process: bool = False) -> dict:
    """The result of `PARTS[name]`, timed in a fresh process of its own unless `in_process`."""
    if in_process:
        return PARTS[name](quick)
    return in_child(["--part-child", name], quick)


def peak_rss_mb(implementation: str, quick: bool, steps: int) -> tuple[float, float]:
    """`(peak, peak - before)` RSS in MiB of a fresh process running the LSTM training row."""
    answer = in_child(["--memory-child", implementation, "--steps", str(steps)], quick)
    return answer["peak"], answer["peak"] - answer["before"]


def _peak_rss_mb() -> float:
    """This process's peak RSS. `VmHWM` where there is one: `ru_maxrss` also counts the
    parent's memory at `fork()` time."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _memory_child(implementation: str, quick: bool, steps: int) -> dict[str, float]:
    """Peak RSS (MiB) once the LSTM training row is set up, and after `steps` steps."""
    row = _quick(ROWS[0]) if quick else ROWS[0]
    step = MAKERS[implementation](row)
    before = _peak_rss_mb()
    for _ in range(steps):
        step()
    return {"before": before, "peak": _peak_rss_mb()}


# ---------------------------------------------------------------- peers

# The Keras peers that run in their own virtual environments: column -> (folder under
# `.bench`, KERAS_BACKEND). `make bench-peers` creates the environments.
PEERS = {"keras-tf": ("keras-tf", "tensorflow"), "keras-jax": ("keras-jax", "jax")}
BENCH_VENVS = HERE.parent / ".bench"


def peer_pythons() -> dict[str, tuple[Path, str]]:
    """Each peer's Python (which may not exist) and Keras backend."""
    return {
        name: (BENCH_VENVS / folder / "bin" / "python", backend)
        for name, (folder, backend) in PEERS.items()
    }


def run_peers(
    rows: list[Row],
    peers: dict[str, tuple[Path, str]],
    timing: dict,
) -> tuple[dict[str, dict], list[str]]:
    """Times `rows` (Keras-level) under each peer's Python, one process per peer and row.

    As birnn's rows, each row runs in a fresh process, so no row inherits what
    the rows before it left behind. Returns `({peer: its peers.py results,
    merged over the rows}, notes)`; a peer whose Python is missing, or whose
    run fails, is left out with a note saying why.
    """
    results, notes = {}, []
    with tempfile.TemporaryDirectory() as folder:
        specs = []
        for number, row in enumerate(rows):
            data = _cpu_data(row)
            x = data["x"] * data["mask"].unsqueeze(-1) if row.masked else data["x"]
            path = Path(folder) / f"row{number}.npz"
            np.savez(path, x=x.numpy(), target=data["target"].numpy())
            fields = ("name", "kind", "batch", "time", "features", "units", "masked", "train")
            row_spec = {**{f: getattr(row, f) for f in fields}, "data": str(path)}
            spec = Path(folder) / f"spec{number}.json"
            spec.write_text(json.dumps({"rows": [row_spec], **timing}))
            specs.append(spec)
        for name, (python, backend) in peers.items():
            if not Path(python).exists():
                notes.append(
                    f"{COLUMNS[name] if name in COLUMNS else name} not run: no {python} "
                    "(create the peers' environments with `make bench-peers`)."
                )
                print(notes[-1], flush=True)
                continue
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            env.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", JAX_PLATFORMS="cpu")
            env["CUDA_VISIBLE_DEVICES"] = ""
            if timing.get("threads") == 1:  # as `--threads 1` gives torch: one thread each
                env["OMP_NUM_THREADS"] = "1"
                env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false"
            print(f"{name} ({backend}), a process of its own per row:", flush=True)
            merged: dict | None = None
            for number, spec in enumerate(specs):
                output = Path(folder) / f"{name}{number}.json"
                command = [str(python), str(HERE / "peers.py"), str(spec), "--output", str(output)]
                done = subprocess.run(command, env=env, stderr=subprocess.PIPE, text=True)
                if done.returncode != 0 or not output.exists():
                    tail = " ".join(done.stderr.strip().splitlines()[-3:])
                    notes.append(f"{name} failed (exit {done.returncode}): {tail}")
                    print(notes[-1], flush=True)
                    merged = None
                    break
                result = json.loads(output.read_text())
                if merged is None:
                    merged = result
                else:
                    _add_rows(merged, result)
            if merged is not None:
                results[name] = merged
    return results, notes


def merge_peers(merged: dict[str, dict], found: dict[str, dict]) -> None:
    """Adds one `run_peers` call's results (`found`) to `merged`, peer by peer."""
    for name, result in found.items():
        if name not in merged:
            merged[name] = result
        else:
            _add_rows(merged[name], result)


def _add_rows(into: dict, result: dict) -> None:
    """Adds the rows of one `peers.py` result to another of the same peer."""
    into["medians"].update(result["medians"])
    into["jit_compile"].update(result["jit_compile"])


# ---------------------------------------------------------------- report


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def command_line() -> str:
    """How this run was started (`make bench` runs `python benchmarks/run.py`)."""
    arguments = " ".join(shlex.quote(a) for a in sys.argv[1:])
    return f"python benchmarks/run.py {arguments}".strip()


def _device_name() -> str:
    if DEVICE.type != "cuda":
        return ""
    return f" ({torch.cuda.get_device_name(DEVICE)}, CUDA {torch.version.cuda})"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        keras_version = importlib.metadata.version("keras")
    except importlib.metadata.PackageNotFoundError:
        keras_version = "not installed"
    return (
        f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), keras {keras_version} (torch backend), "
        f"Python {platform.python_version()}, {platform.system()}"
    )


COLUMNS = {
    "birnn": "birnn layer",
    "birnn-model": "birnn Model",
    JIT: "birnn Model jit_compile=True",
    "torch": "torch",
    "keras": "Keras layer",
    "keras-model": "Keras Model",
    "keras-tf": "Keras-TF",
    "keras-jax": "Keras-JAX",
}
# The peers table: birnn's Model against every other way to run the same workload.
PEER_COLUMNS = {
    "birnn-model": "birnn",
    JIT: "birnn jit_compile=True",
    "torch": "hand torch",
    "keras-tf": "Keras-TF",
    "keras-jax": "Keras-JAX",
    "keras-model": "Keras-torch",
}
RATIOS = [
    ("birnn / torch", "birnn", "torch"),
    ("birnn Model / torch", "birnn-model", "torch"),
    ("birnn jit / torch", JIT, "torch"),
    ("Keras / birnn, layer", "keras", "birnn"),
    ("Keras / birnn, Model", "keras-model", "birnn-model"),
]
MEMORY_IMPLEMENTATIONS = ("birnn", "torch", "keras")


def render(results: list[tuple[Row, dict]], memory: dict | None, header: str) -> str:
    """The Markdown report: a table of medians (ms) and ratios, then notes."""
    names = [name for name in IMPLEMENTATIONS if any(name in m for _, m in results)]
    ratios = [r for r in RATIOS if r[1] in names and r[2] in names]
    titles = [COLUMNS[name] + " (ms)" for name in names] + [r[0] for r in ratios]
    lines = [header, "", "| workload | " + " | ".join(titles) + " |"]
    lines.append("|---" * (len(titles) + 1) + "|")
    by_name = {}
    for row, medians in results:
        cells = [_ms(medians.get(name)) for name in names]
        if row.masked and "torch" in names:
            cells[names.index("torch")] += " (packed)"
        cells += [_ratio(medians.get(a), medians.get(b)) for _, a, b in ratios]
        lines.append(f"| {row.name} | " + " | ".join(cells) + " |")
        by_name[row.name] = medians
    unmasked, masked = by_name.get("LSTM train"), by_name.get("LSTM train, masked")
    notes = []
    if masked and UNMASKED in masked:
        notes.append(
            "Masked / unmasked LSTM train, birnn layer, both timed in the masked row's turns "
            f"(same data, mask dropped): {_ratio(masked.get('birnn'), masked[UNMASKED])}."
        )
    if unmasked and masked:
        parts = [
            f"{COLUMNS[name]} {_ratio(masked.get(name), unmasked.get(name))}" for name in names
        ]
        notes.append(
            "Masked / unmasked LSTM train, across the two rows: " + ", ".join(parts) + "."
        )
    if memory:
        cells = [
            f"{COLUMNS[name]} {peak:.0f} MiB (+{growth:.0f} MiB over its set-up)"
            for name, (peak, growth) in memory.items()
        ]
        notes.append("Peak RSS, LSTM train row, one process each: " + ", ".join(cells) + ".")
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def render_peers(
    results: list[tuple[Row, dict]],
    peers: dict[str, dict],
    notes: list[str],
    in_process: bool = False,
) -> str:
    """The peers table: ms per Keras-level step of birnn and each peer, birnn / fastest peer.

    `results` are the main run's rows (birnn Model, hand torch and Keras-torch
    come from there; `in_process`: all timed in one process), `peers` the
    results of `run_peers`.
    """
    rows = [(row, medians) for row, medians in results if row.peer]
    if not rows:
        return ""
    where = "all rows in one process" if in_process else "each row in a fresh process"
    lines = [
        "",
        "## Peers",
        "",
        "Keras-level workloads: a `Bidirectional` model's `train_on_batch` / "
        "`predict_on_batch` (birnn and Keras: `Sequential`, `RMSprop(1e-3)`, Keras's "
        "defaults otherwise; masked rows: `Masking(0.0)` on zero-padded inputs), against "
        "hand-written torch (`nn.LSTM/GRU(bidirectional=True)`, packed sequences when "
        f"masked). birnn, hand torch and Keras-torch run {where}, timed in turns; "
        "Keras-TF and Keras-JAX in a fresh process of their own per row, right after the "
        "row's own process (`benchmarks/peers.py`), with the "
        "same inputs and the same timing rule. Median ms per step; the fastest in bold. "
        "birnn runs eagerly by default; *birnn jit_compile=True* is the same model compiled "
        "with `compile(jit_compile=True)` (seed rows only; its compilation is not timed), "
        "while Keras-JAX compiles its steps by default and Keras-TF runs them as graphs "
        "(their `model.jit_compile` is listed below).",
        "",
    ]
    for name, result in peers.items():
        versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
        jit = sorted(set(result["jit_compile"].values()))
        threads = result.get("threads", "default")
        lines.append(
            f"- {COLUMNS[name]}: {versions}; `model.jit_compile` {', '.join(jit)}; "
            f"threads: {threads}."
        )
    lines += [f"- {note}" for note in notes]
    titles = [f"{title} (ms)" for title in PEER_COLUMNS.values()]
    titles += ["birnn / fastest peer", "birnn jit_compile=True / fastest peer"]
    lines += ["", "| workload | " + " | ".join(titles) + " |"]
    lines.append("|---" * (len(titles) + 1) + "|")
    for row, medians in rows:
        values = {name: medians.get(name) for name in PEER_COLUMNS}
        for name, result in peers.items():
            values[name] = result["medians"].get(row.name)
        known = [v for v in values.values() if v]
        cells = []
        for name, value in values.items():
            cell = _ms(value)
            if value and value == min(known):
                cell = f"**{cell}**"
            if name == "torch" and row.masked and value:
                cell += " (packed)"
            cells.append(cell)
        peer_values = [v for name, v in values.items() if name not in ("birnn-model", JIT) and v]
        best = min(peer_values) if peer_values else None
        cells += [_ratio(values["birnn-model"], best), _ratio(values[JIT], best)]
        lines.append(f"| {row.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_fit(rows: list[dict]) -> str:
    """The `Model.fit` overhead table (from `fit_overhead.py`), or nothing."""
    if not rows:
        return ""
    lines = [
        "",
        "`Model.fit(x, y, batch_size=32, verbose=0)` on the seed model, whole epochs, median ms "
        "per step (`benchmarks/fit_overhead.py`):",
        "",
        "| workload | birnn (ms) | Keras (ms) | Keras / birnn |",
        "|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['row']} | {_ms(row['birnn'])} | {_ms(row['keras_torch'])} | "
            f"{row['ratio']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per row")
    parser.add_argument(
        "--block-seconds",
        type=float,
        default=0.2,
        help="each turn runs an implementation's steps back to back for about this long "
        "(0: one step per turn)",
    )
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=None,
        help="keep timing a row until this long has passed (default: 10, 0 with --quick)",
    )
    parser.add_argument("--rows", default=None, help="comma-separated substrings of row names")
    parser.add_argument(
        "--peer-rows", action="store_true", help="only the rows of the peers table"
    )
    parser.add_argument(
        "--only",
        default=None,
        help="implementations to run (default: all; with --quick, all but "
        f"{JIT}, whose compilation alone takes tens of seconds)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory row")
    parser.add_argument(
        "--no-peers",
        action="store_true",
        help="skip Keras on TensorFlow and JAX (their environments: `make bench-peers`)",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="torch device of birnn and hand torch (Keras on torch picks CUDA itself); "
        "the peers, memory, fit and serving rows run on CPU only",
    )
    parser.add_argument("--no-fit", action="store_true", help="skip the seed model `fit` row")
    parser.add_argument(
        "--no-serving", action="store_true", help="skip the onnxruntime serving row"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's, 1 with --quick); with 1, the TensorFlow "
        "and JAX peers get one thread too",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="Markdown file to write (default: benchmarks/RESULTS.md, none with --quick)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="time every row in this process, not each in a fresh one (for a profiler or "
        "a debugger; rows then inherit each other's state)",
    )
    # What `in_child` runs: one row, one part, or the memory row of one implementation.
    parser.add_argument("--row-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--part-child", choices=sorted(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-output", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this torch ({torch.__version__}) sees no CUDA")
    default_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads or (1 if args.quick else default_threads))
    try:
        if args.memory_child:
            _answer(args.child_output, _memory_child(args.memory_child, args.quick, args.steps))
        elif args.part_child:
            _answer(args.child_output, PARTS[args.part_child](args.quick))
        else:
            _run(args, parser)
    finally:
        torch.set_num_threads(default_threads)
    return 0


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:

    only = args.only
    if only is None:
        only = ",".join(name for name in IMPLEMENTATIONS if not (args.quick and name == JIT))
    implementations = [name.strip() for name in only.split(",") if name.strip()]
    unknown = set(implementations) - set(IMPLEMENTATIONS)
    if unknown:
        parser.error(f"unknown implementations {sorted(unknown)}; choose from {IMPLEMENTATIONS}")
    repeats = args.repeats or (2 if args.quick else 15)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    min_seconds = args.min_seconds if args.min_seconds is not None else (0 if args.quick else 10)
    block_seconds = 0 if args.quick else args.block_seconds
    rows = [_quick(row) for row in ROWS] if args.quick else ROWS
    if args.row_child is not None:
        row = next(row for row in rows if row.name == args.row_child)
        names = row_implementations(row, implementations)
        medians = time_row(row, names, repeats, warmup, min_seconds, block_seconds)
        _answer(args.child_output, {"medians": medians, "pid": os.getpid()})
        return
    if args.rows:
        wanted = [w.strip().lower() for w in args.rows.split(",")]
        rows = [row for row in rows if any(w in row.name.lower() for w in wanted)]
    if args.peer_rows:
        rows = [row for row in rows if row.peer]

    want_peers = not args.no_peers and DEVICE.type == "cpu" and any(row.peer for row in rows)
    pythons = peer_pythons() if want_peers else {}
    timing = {
        "repeats": repeats,
        "warmup": warmup,
        "min_seconds": min_seconds,
        "block_seconds": block_seconds,
        "threads": args.threads,
    }
    peers: dict[str, dict] = {}
    peer_notes: list[str] = []
    results = []
    for row in rows:
        if args.in_process:
            names = row_implementations(row, implementations)
            medians = time_row(row, names, repeats, warmup, min_seconds, block_seconds)
        else:
            medians, _ = time_row_alone(
                row, implementations, repeats, warmup, min_seconds, block_seconds, args.quick
            )
        results.append((row, medians))
        print(
            f"{row.name}: " + ", ".join(f"{k} {_ms(v)} ms" for k, v in medians.items()), flush=True
        )
        if row.peer and pythons:
            # Right after the row's own process, so that a slow or fast spell of a shared
            # machine (minutes long) falls on one row's implementations alike.
            found, notes = run_peers([row], pythons, timing)
            merge_peers(peers, found)
            peer_notes += notes
            pythons = {name: python for name, python in pythons.items() if name in found}
    memory = None
    if not args.no_memory and DEVICE.type == "cpu":
        steps = 2 if args.quick else 5
        memory = {
            name: peak_rss_mb(name, args.quick, steps)
            for name in implementations
            if name in MEMORY_IMPLEMENTATIONS
        }

    fit_rows = []
    if not args.no_fit and {"birnn", "keras"} <= set(implementations) and DEVICE.type == "cpu":
        fit_rows = part("fit", args.quick, args.in_process)["rows"]
        for row in fit_rows:
            print(f"{row['row']}: birnn {row['birnn']:.2f} ms, keras {row['keras_torch']:.2f} ms")

    serving_note = ""
    serving_wanted = "birnn-model" in implementations and DEVICE.type == "cpu"
    if not args.no_serving and serving_wanted:
        import serving

        served = part("serving", args.quick, args.in_process)
        serving_note = serving.render(served)
        print(
            f"serving: birnn predict_on_batch {served['birnn']:.2f} ms, "
            f"onnxruntime {served['onnxruntime']:.2f} ms"
        )

    sizes = (
        "tiny sizes (--quick)"
        if args.quick
        else ("Bidirectional over (batch 64, time 100, features 32), 128 units unless stated")
    )
    where = (
        "All rows ran in this one process (`--in-process`): each inherits the state the "
        "rows before it left."
        if args.in_process
        else "Each row runs in a fresh process of its own, so none inherits the state "
        "(heap, thread pools, caches, compiled graphs) of the rows before it."
    )
    header = (
        f"# birnn benchmarks\n\n"
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}; {machine()}; device {DEVICE}"
        f"{_device_name()}.\n\nCommand: `{command_line()}`.\n\n"
        f"{sizes}. Median ms per step after {warmup} warm-up steps. {where} The "
        "implementations of a row are timed in turns, each turn running an implementation's "
        f"steps back to back for about {block_seconds:g} s (at least one step), for at least "
        f"{repeats} turns and {min_seconds:g} s. *Layer*: the library's "
        "`Bidirectional` layer called eagerly, forward + MSE + backward + a torch RMSprop "
        "step (infer: forward under `no_grad`). *Model*: `Sequential(...).train_on_batch` / "
        "`predict_on_batch` on NumPy data with the library's own RMSprop (masked rows: a "
        "`Masking` layer). *torch*: hand-written `torch.nn.LSTM/GRU(bidirectional=True)`, "
        "packed sequences for the masked row. The CRNN row runs the whole model of "
        "`benchmarks/crnn.py` in each implementation (torch: the same model in `torch.nn`, "
        "on NCHW images); the ConvLSTM row's torch is a hand-written PyTorch ConvLSTM pair "
        "(one batched input convolution, one recurrent convolution per step and direction) "
        "in PyTorch's channels-first layout."
    )
    table = render(results, memory, header) + render_peers(
        results, peers, peer_notes, args.in_process
    )
    table += render_fit(fit_rows) + serving_note
    print()
    print(table)
    output = args.output or (None if args.quick else str(HERE / "RESULTS.md"))
    if output:
        Path(output).write_text(table)


if __name__ == "__main__":
    sys.exit(main())
