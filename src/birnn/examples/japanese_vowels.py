"""Speaker recognition on JapaneseVowels with a bidirectional LSTM: birnn's demo.

Nine speakers say the Japanese vowels 'a' and 'e'; each utterance is a series of 7 to 29 frames
of 12 LPC cepstrum coefficients, and the task is to name the speaker (270 training and 370 test
utterances, the official UCI/UEA split). The data comes from the `aeon` wheel's data files, read
with birnn's own `.ts` reader; `aeon` itself is never imported.

The model is the one in `Bidirectional`'s docstring, on padded and masked batches:
`Masking` → `Bidirectional(LSTM(units, return_sequences=True))` → `Bidirectional(LSTM(units))`
→ `Dropout` → `Dense(9, softmax)`, with input dropout in each LSTM. It trains with RMSprop on
the categorical crossentropy; the learning rate halves when the validation
loss stalls, and training stops early on the validation loss, keeping the best weights. The
validation split is held out of the training utterances, the same number from each speaker;
the test split is only ever used for the final score. The same pipeline trains a
unidirectional LSTM model with about the same number of parameters, for comparison.

Both models train once per seed (5 seeds by default; the seed drives the validation split, the
initial weights, dropout and shuffling), and the demo prints a table of test accuracies per
seed with the mean ± standard deviation of each model, and says whether the difference between
the models is larger than the spread between seeds.

Run it with `make demo` or `python -m birnn.examples.japanese_vowels [options]`; see `--help`.
It writes `results.json` and, when matplotlib is installed, `learning_curves.png` into the output
folder. Its last line is `JapaneseVowels test accuracy: 0.xxxx`, the bidirectional model's mean
over the seeds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from birnn.examples.ts_format import read_ts

NUM_FEATURES = 12
MODELS = ("bidirectional", "unidirectional")
DEFAULTS = {
    "seeds": 5,
    "seed": 1,
    "epochs": 60,
    "units": 64,
    "dropout": 0.2,
    "head_dropout": 0.3,
    "batch_size": 32,
    "learning_rate": 0.002,
    "lr_factor": 0.5,
    "lr_patience": 4,
    "patience": 10,
    "validation_per_class": 3,
}


def find_data_dir() -> str:
    """The folder holding `JapaneseVowels_{TRAIN,TEST}.ts` in the installed `aeon` wheel.

    `aeon` is located without being imported: only its data files are needed, not its
    dependencies.

    Returns:
        The folder's path.

    Raises:
        FileNotFoundError: if `aeon` is not installed or lacks the files.
    """
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "JapaneseVowels comes from the `aeon` wheel's data files: "
            "`pip install --no-deps aeon` (the Makefile does it)."
        )
    for root in spec.submodule_search_locations:
        folder = os.path.join(root, "datasets", "data", "JapaneseVowels")
        if os.path.isfile(os.path.join(folder, "JapaneseVowels_TRAIN.ts")):
            return folder
    raise FileNotFoundError("the installed `aeon` has no datasets/data/JapaneseVowels files")


def load_japanese_vowels(
    data_dir: str | None = None,
) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray], np.ndarray, tuple[str, ...]]:
    """Loads the official train and test splits.

    Args:
        data_dir: folder with the `.ts` files; defaults to `find_data_dir()`.

    Returns:
        `(x_train, y_train, x_test, y_test, class_labels)`: lists of `(length, 12)` float32
        arrays, integer class indices into `class_labels`.
    """
    data_dir = data_dir or find_data_dir()
    train = read_ts(os.path.join(data_dir, "JapaneseVowels_TRAIN.ts"))
    test = read_ts(os.path.join(data_dir, "JapaneseVowels_TEST.ts"))
    if train.labels is None or test.labels is None:
        raise ValueError(f"the JapaneseVowels files in {data_dir} have no class labels")
    classes = train.class_labels or tuple(sorted(set(train.labels)))
    index = {label: i for i, label in enumerate(classes)}
    y_train = np.array([index[label] for label in train.labels], dtype=np.int64)
    y_test = np.array([index[label] for label in test.labels], dtype=np.int64)
    return train.series, y_train, test.series, y_test, classes


def standardize(
    train: Sequence[np.ndarray], *others: Sequence[np.ndarray]
) -> list[list[np.ndarray]]:
    """Scales every channel to zero mean and unit variance, using training statistics only."""
    frames = np.concatenate(train, axis=0)
    mean, std = frames.mean(axis=0), frames.std(axis=0) + 1e-8
    return [[(s - mean) / std for s in group] for group in (train, *others)]


def pad(series: Sequence[np.ndarray], length: int, value: float) -> np.ndarray:
    """Right-pads `(length_i, features)` arrays with `value` into one `(n, length, features)`.

    Raises:
        ValueError: if a real timestep equals the pad in every feature, since `Masking` would
            then drop it.
    """
    out = np.full((len(series), length, series[0].shape[1]), value, dtype=np.float32)
    for i, s in enumerate(series):
        if np.any(np.all(s == value, axis=1)):
            raise ValueError(f"sequence {i} has a timestep equal to the mask value {value}")
        out[i, : len(s)] = s
    return out


def stratified_split(
    labels: np.ndarray, per_class: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices `(train, validation)`, with `per_class` random validation cases per class."""
    per_label = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    validation = np.concatenate([rng.choice(idx, per_class, replace=False) for idx in per_label])
    train = np.setdiff1d(np.arange(len(labels)), validation)
    return rng.permutation(train), np.sort(validation)


def build_model(
    units: int,
    bidirectional: bool,
    timesteps: int,
    num_classes: int,
    dropout: float = 0.0,
    head_dropout: float = 0.0,
    mask_value: float = 0.0,
):
    """The docstring's model (or its unidirectional twin), built but not compiled.

    Args:
        units: units of each LSTM (per direction).
        bidirectional: wrap each LSTM in `Bidirectional` when True.
        timesteps: padded sequence length.
        num_classes: size of the softmax output.
        dropout: input dropout of each LSTM (one mask per sequence, on the fused path).
        head_dropout: dropout between the last LSTM and the classifier.
        mask_value: the pad value that `Masking` skips.
    """
    import birnn
    from birnn import layers

    def recurrent(return_sequences: bool):
        lstm = layers.LSTM(units, return_sequences=return_sequences, dropout=dropout)
        return layers.Bidirectional(lstm) if bidirectional else lstm

    return birnn.Sequential(
        [
            layers.Input(shape=(timesteps, NUM_FEATURES)),
            layers.Masking(mask_value=mask_value),
            recurrent(return_sequences=True),
            recurrent(return_sequences=False),
            layers.Dropout(head_dropout),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="bidirectional_lstm" if bidirectional else "lstm",
    )


def matching_units(target_params: int, timesteps: int, num_classes: int) -> int:
    """Units of the unidirectional model whose parameter count is closest to `target_params`.

    Two stacked LSTMs and the classifier hold `12u² + (4·features + 8 + classes)·u + classes`
    parameters; the root of that quadratic gives the candidate, and `count_params` of the
    built neighbours picks the closest.
    """
    a, b, c = 12, 4 * NUM_FEATURES + 8 + num_classes, num_classes - target_params
    guess = max(1, round((-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)))
    candidates = range(max(1, guess - 1), guess + 2)
    counts = {u: build_model(u, False, timesteps, num_classes).count_params() for u in candidates}
    return min(counts, key=lambda u: abs(counts[u] - target_params))


def seed_everything(seed: int) -> None:
    """Seeds Python's, NumPy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_data(data_dir: str | None = None) -> dict:
    """Loads, standardizes (with training statistics) and pads both official splits.

    Returns:
        A dict with the padded `x_train`/`x_test` arrays, the integer `labels_train`/
        `labels_test`, `timesteps` and `num_classes`.
    """
    x_train, y_train, x_test, y_test, classes = load_japanese_vowels(data_dir)
    x_train, x_test = standardize(x_train, x_test)
    timesteps = max(len(s) for s in (*x_train, *x_test))
    return {
        "x_train": pad(x_train, timesteps, 0.0),
        "labels_train": y_train,
        "x_test": pad(x_test, timesteps, 0.0),
        "labels_test": y_test,
        "timesteps": timesteps,
        "num_classes": len(classes),
    }


def split_for_seed(data: dict, seed: int, validation_per_class: int) -> dict:
    """The fit / validation / test arrays of one seed, labels one-hot encoded.

    The validation utterances (`validation_per_class` of each speaker, drawn with `seed`) come
    out of the official training split; the test split is untouched.
    """
    labels = data["labels_train"]
    fit_idx, val_idx = stratified_split(labels, validation_per_class, np.random.default_rng(seed))
    eye = np.eye(data["num_classes"], dtype=np.float32)
    return {
        "x_train": data["x_train"][fit_idx],
        "y_train": eye[labels[fit_idx]],
        "x_val": data["x_train"][val_idx],
        "y_val": eye[labels[val_idx]],
        "x_test": data["x_test"],
        "y_test": eye[data["labels_test"]],
    }


def train_and_evaluate(model, split: dict, args: argparse.Namespace, seed: int) -> dict:
    """Compiles, fits with the learning-rate schedule and early stopping, scores on test.

    Returns:
        The run's details: `seed`, `test_accuracy`, `test_loss` (categorical crossentropy),
        `best_epoch` (1-based, the epoch whose weights were kept), `best_val_loss`,
        `epochs_run`, `train_seconds` and the per-epoch `history`.
    """
    import birnn

    seed_everything(seed)
    model.compile(
        loss="categorical_crossentropy",
        optimizer=birnn.optimizers.RMSprop(learning_rate=args.learning_rate),
        metrics=["accuracy"],
    )
    callbacks = [
        birnn.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=args.lr_factor, patience=args.lr_patience, min_lr=1e-5
        ),
        birnn.callbacks.EarlyStopping(
            monitor="val_loss", patience=args.patience, restore_best_weights=True
        ),
    ]
    start = time.perf_counter()
    history = model.fit(
        split["x_train"],
        split["y_train"],
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_data=(split["x_val"], split["y_val"]),
        callbacks=callbacks,
        shuffle=True,
        verbose=args.verbose,
    )
    train_seconds = time.perf_counter() - start
    probabilities = model.predict(split["x_test"], batch_size=256, verbose=0)
    labels = np.argmax(split["y_test"], axis=1)
    correct = np.argmax(probabilities, axis=1) == labels
    chosen = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    val_loss = history.history["val_loss"]
    best = int(np.argmin(val_loss))
    return {
        "seed": seed,
        "test_accuracy": float(np.mean(correct)),
        "test_loss": float(-np.mean(np.log(chosen))),
        "best_epoch": best + 1,
        "best_val_loss": float(val_loss[best]),
        "epochs_run": len(val_loss),
        "train_seconds": train_seconds,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
    }


def summarize(values: Sequence[float]) -> dict:
    """`{"mean", "std", "per_seed"}` of per-seed values; `std` has `ddof=1` (0 for one)."""
    values = [float(v) for v in values]
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": std, "per_seed": values}


def compare(summary: dict) -> dict:
    """The bidirectional − unidirectional difference, set against the spread between seeds.

    The difference counts as larger than the seed spread when the gap between the two means
    exceeds the larger of the two models' standard deviations over seeds.

    >>> out = compare({
    ...     "bidirectional": summarize([0.98, 0.97, 0.99]),
    ...     "unidirectional": summarize([0.96, 0.95, 0.97]),
    ... })
    >>> out["exceeds_seed_spread"], out["bidirectional_wins"]
    (True, 3)
    >>> out["verdict"]
    'bidirectional − unidirectional = +0.0200 (ahead on 3 of 3 seeds), larger than the seed spread (std 0.0100 / 0.0100)'
    """  # noqa: E501
    bi, uni = summary["bidirectional"], summary["unidirectional"]
    diffs = np.subtract(bi["per_seed"], uni["per_seed"])
    difference = float(bi["mean"] - uni["mean"])
    spread = max(bi["std"], uni["std"])
    wins = int(np.sum(diffs > 0))
    seeds = len(diffs)
    head = (
        f"bidirectional − unidirectional = {difference:+.4f} "
        f"(ahead on {wins} of {seeds} seed{'s' if seeds > 1 else ''})"
    )
    if seeds < 2:
        exceeds = None
        verdict = f"{head}; one seed has no spread to compare with (use --seeds 5)"
    else:
        exceeds = abs(difference) > spread
        verdict = (
            f"{head}, {'larger' if exceeds else 'not larger'} than the seed spread "
            f"(std {bi['std']:.4f} / {uni['std']:.4f})"
        )
    return {
        "difference": difference,
        "bidirectional_wins": wins,
        "exceeds_seed_spread": exceeds,
        "verdict": verdict,
    }


def versions() -> dict:
    """The versions that produced a result."""
    import birnn

    return {
        "birnn": birnn.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def _mean_and_range(curves: Sequence[Sequence[float]]):
    """Per-epoch mean, minimum and maximum over the runs still training at that epoch."""
    length = max(len(c) for c in curves)
    table = np.full((len(curves), length), np.nan)
    for i, c in enumerate(curves):
        table[i, : len(c)] = c
    return np.nanmean(table, 0), np.nanmin(table, 0), np.nanmax(table, 0)


def plot_curves(results: dict, path: str) -> bool:
    """Writes the training and validation loss of each model, over seeds, into one PNG.

    Each panel has a log-scale loss axis; a model's line is its mean over the seeds (at each
    epoch, over the runs that had not stopped early) and its band the range over the seeds.

    Returns:
        False, having written nothing, when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return False

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    colors = dict(zip(MODELS, ("tab:blue", "tab:orange")))
    for name, result in results["models"].items():
        runs = result["runs"]
        label = f"{name} ({result['params']:,} parameters)"
        for ax, key in zip(axes, ("loss", "val_loss")):
            mean, low, high = _mean_and_range([r["history"][key] for r in runs])
            epochs = np.arange(1, len(mean) + 1)
            ax.fill_between(epochs, low, high, color=colors.get(name), alpha=0.2, linewidth=0)
            ax.plot(epochs, mean, color=colors.get(name), label=label)
    for ax, title in zip(axes, ("training loss", "validation loss")):
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("categorical crossentropy (log scale)")
    axes[0].legend()
    seeds = len(results["seeds"])
    fig.suptitle(
        f"JapaneseVowels: mean over {seeds} seed{'s' if seeds > 1 else ''} (line) and range "
        "(band)\nof the runs still training: each run ends where early stopping stops it"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; `--help` lists every option."""
    parser = argparse.ArgumentParser(
        prog="python -m birnn.examples.japanese_vowels",
        description=(
            "Train the Bidirectional(LSTM) docstring model on JapaneseVowels (speaker "
            "recognition) over several seeds, compare it with a unidirectional LSTM of the "
            "same parameter budget, and write results and learning curves to the output folder."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--seeds", type=int, default=DEFAULTS["seeds"], help="number of seeds to train each model"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULTS["seed"],
        help="first seed (the runs use --seed, --seed + 1, ...)",
    )
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"], help="maximum epochs")
    parser.add_argument(
        "--units",
        type=int,
        default=DEFAULTS["units"],
        help="units per direction of each bidirectional LSTM (the unidirectional model gets "
        "as many as matches its parameter count)",
    )
    parser.add_argument(
        "--dropout", type=float, default=DEFAULTS["dropout"], help="input dropout of each LSTM"
    )
    parser.add_argument(
        "--head-dropout",
        type=float,
        default=DEFAULTS["head_dropout"],
        help="dropout before the classifier",
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=DEFAULTS["learning_rate"],
        help="initial RMSprop learning rate",
    )
    parser.add_argument(
        "--lr-factor",
        type=float,
        default=DEFAULTS["lr_factor"],
        help="learning-rate multiplier when the validation loss stalls",
    )
    parser.add_argument(
        "--lr-patience",
        type=int,
        default=DEFAULTS["lr_patience"],
        help="epochs without val_loss improvement before the learning rate drops",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=DEFAULTS["patience"],
        help="early stopping: epochs without val_loss improvement before stopping",
    )
    parser.add_argument(
        "--validation-per-class",
        type=int,
        default=DEFAULTS["validation_per_class"],
        help="training utterances per speaker held out for validation",
    )
    parser.add_argument(
        "--output", default="demo_output", help="folder for results.json and learning_curves.png"
    )
    parser.add_argument(
        "--verbose",
        type=int,
        default=0,
        choices=(0, 1, 2),
        help="Keras-style fit verbosity (0: one line per run)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads while the demo runs (0: torch's default); the model is small, "
        "and one thread is as fast and immune to oversubscription on a busy machine",
    )
    parser.add_argument(
        "--no-compare", action="store_true", help="skip the unidirectional comparison model"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 2 seeds of 2 epochs, 8 units, no progress bar (used by the tests)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.units, args.verbose = 2, 2, 8, 0
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    """Runs the demo; returns the results written to `results.json`."""
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _build_models(args: argparse.Namespace, data: dict, seed: int) -> dict:
    shape = (data["timesteps"], data["num_classes"])
    regularization = {"dropout": args.dropout, "head_dropout": args.head_dropout}
    seed_everything(seed)
    models = {"bidirectional": build_model(args.units, True, *shape, **regularization)}
    if not args.no_compare:
        units = matching_units(models["bidirectional"].count_params(), *shape)
        seed_everything(seed)
        models["unidirectional"] = build_model(units, False, *shape, **regularization)
    return models


def _print_table(results: dict) -> None:
    names = list(results["models"])
    width = max(18, *(len(n) + 2 for n in names))
    print(f"\ntest accuracy{'':<3}" + "".join(f"{n:>{width}}" for n in names))
    for i, seed in enumerate(results["seeds"]):
        row = "".join(f"{results['summary'][n]['per_seed'][i]:>{width}.4f}" for n in names)
        print(f"seed {seed:<11}{row}")
    row = "".join(
        f"{results['summary'][n]['mean']:.4f} ± {results['summary'][n]['std']:.4f}".rjust(width)
        for n in names
    )
    print(f"{'mean ± std':<16}{row}")
    row = "".join(f"{results['models'][n]['params']:>{width},}" for n in names)
    print(f"{'parameters':<16}{row}")


def _run(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    data = prepare_data()
    seeds = list(range(args.seed, args.seed + args.seeds))
    split = split_for_seed(data, seeds[0], args.validation_per_class)
    print(
        f"JapaneseVowels: {len(split['x_train'])} train / {len(split['x_val'])} validation / "
        f"{len(split['x_test'])} test utterances, padded to {data['timesteps']} steps of "
        f"{NUM_FEATURES} features, {data['num_classes']} speakers; seeds {seeds}"
    )

    models: dict = {}
    for seed in seeds:
        split = split_for_seed(data, seed, args.validation_per_class)
        for name, model in _build_models(args, data, seed).items():
            entry = models.setdefault(name, {"params": int(model.count_params()), "runs": []})
            run = train_and_evaluate(model, split, args, seed)
            entry["runs"].append(run)
            print(
                f"{name:<15} seed {seed}: best epoch {run['best_epoch']:>2}/"
                f"{run['epochs_run']:<2} val loss {run['best_val_loss']:.4f}  "
                f"test loss {run['test_loss']:.4f}  test accuracy {run['test_accuracy']:.4f}"
                f"  ({run['train_seconds']:.1f} s)",
                flush=True,
            )

    summary = {n: summarize([r["test_accuracy"] for r in m["runs"]]) for n, m in models.items()}
    results: dict[str, Any] = {
        "dataset": "JapaneseVowels",
        "versions": versions(),
        "options": vars(args),
        "seeds": seeds,
        "summary": summary,
        "models": models,
    }
    if "unidirectional" in summary:
        results["comparison"] = compare(summary)
    results["wall_seconds"] = time.perf_counter() - started

    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    plot_path = os.path.join(args.output, "learning_curves.png")
    plotted = plot_curves(results, plot_path)

    _print_table(results)
    if "comparison" in results:
        print(results["comparison"]["verdict"])
    print(f"results: {os.path.join(args.output, 'results.json')}")
    if plotted:
        print(f"learning curves: {plot_path}")
    else:
        print(
            "learning curves: skipped, matplotlib is not installed "
            "(pip install 'birnn[demo]' to draw them)"
        )
    print(f"JapaneseVowels test accuracy: {summary['bidirectional']['mean']:.4f}")
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
