"""Speaker recognition on JapaneseVowels with a bidirectional LSTM: birnn's demo.

Nine speakers say the Japanese vowels 'a' and 'e'; each utterance is a series of 7 to 29 frames
of 12 LPC cepstrum coefficients, and the task is to name the speaker (270 training and 370 test
utterances, the official UCI/UEA split). The data comes from the `aeon` wheel's data files, read
with birnn's own `.ts` reader; `aeon` itself is never imported.

The model is the one in `Bidirectional`'s docstring, on padded and masked batches:
`Masking` → `Bidirectional(LSTM(units, return_sequences=True))` → `Bidirectional(LSTM(units))`
→ `Dense(9, softmax)`, compiled with `categorical_crossentropy` and `rmsprop`, trained with early
stopping on a stratified validation split. The same pipeline then trains a unidirectional LSTM
model with about the same number of parameters, for comparison.

Run it with `make demo` or `python -m birnn.examples.japanese_vowels [options]`; see `--help`.
It writes `learning_curves.png` and `results.json` into the output folder, and its last line is
`JapaneseVowels test accuracy: 0.xxxx` (the bidirectional model).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch

from birnn.examples.ts_format import read_ts

NUM_FEATURES = 12
DEFAULTS = {
    "epochs": 30,
    "seed": 1,
    "units": 64,
    "batch_size": 32,
    "patience": 8,
    "learning_rate": 0.002,
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


def build_model(units: int, bidirectional: bool, timesteps: int, num_classes: int, mask_value=0.0):
    """The docstring's model (or its unidirectional twin), built and compiled.

    Args:
        units: units of each LSTM (per direction).
        bidirectional: wrap each LSTM in `Bidirectional` when True.
        timesteps: padded sequence length.
        num_classes: size of the softmax output.
        mask_value: the pad value that `Masking` skips.
    """
    import birnn
    from birnn import layers

    def recurrent(return_sequences: bool):
        lstm = layers.LSTM(units, return_sequences=return_sequences)
        return layers.Bidirectional(lstm) if bidirectional else lstm

    return birnn.Sequential(
        [
            layers.Input(shape=(timesteps, NUM_FEATURES)),
            layers.Masking(mask_value=mask_value),
            recurrent(return_sequences=True),
            recurrent(return_sequences=False),
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


def train_and_evaluate(model, data: dict, args: argparse.Namespace, seed: int) -> dict:
    """Compiles, fits with early stopping and scores `model` on the test split."""
    import birnn

    seed_everything(seed)
    model.compile(
        loss="categorical_crossentropy",
        optimizer=birnn.optimizers.RMSprop(learning_rate=args.learning_rate),
        metrics=["accuracy"],
    )
    stop = birnn.callbacks.EarlyStopping(
        monitor="val_loss", patience=args.patience, restore_best_weights=True
    )
    start = time.perf_counter()
    history = model.fit(
        data["x_train"],
        data["y_train"],
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_data=(data["x_val"], data["y_val"]),
        callbacks=[stop],
        shuffle=True,
        verbose=args.verbose,
    )
    train_seconds = time.perf_counter() - start
    probabilities = model.predict(data["x_test"], batch_size=256, verbose=0)
    accuracy = float(np.mean(np.argmax(probabilities, axis=1) == data["labels_test"]))
    return {
        "test_accuracy": accuracy,
        "params": int(model.count_params()),
        "train_seconds": train_seconds,
        "epochs_run": len(history.history["loss"]),
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
    }


def plot_curves(results: dict, path: str) -> None:
    """Writes the loss and accuracy curves of every model into one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for (name, result), color in zip(results.items(), ("tab:blue", "tab:orange")):
        history = result["history"]
        name = f"{name} (test {result['test_accuracy']:.3f})"
        for ax, metric in zip(axes, ("loss", "accuracy")):
            epochs = range(1, len(history.get(metric, [])) + 1)
            if metric in history:
                ax.plot(epochs, history[metric], color=color, label=f"{name} train")
            if f"val_{metric}" in history:
                ax.plot(epochs, history[f"val_{metric}"], "--", color=color, label=f"{name} val")
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("JapaneseVowels: bidirectional vs unidirectional LSTM")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def prepare_data(seed: int, validation_per_class: int, data_dir: str | None = None) -> dict:
    """Loads, standardizes, splits, pads and one-hot encodes the data."""
    x_train, y_train, x_test, y_test, classes = load_japanese_vowels(data_dir)
    x_train, x_test = standardize(x_train, x_test)
    timesteps = max(len(s) for s in (*x_train, *x_test))
    fit_idx, val_idx = stratified_split(y_train, validation_per_class, np.random.default_rng(seed))
    eye = np.eye(len(classes), dtype=np.float32)
    x_train, x_test = pad(x_train, timesteps, 0.0), pad(x_test, timesteps, 0.0)
    return {
        "x_train": x_train[fit_idx],
        "y_train": eye[y_train[fit_idx]],
        "x_val": x_train[val_idx],
        "y_val": eye[y_train[val_idx]],
        "x_test": x_test,
        "labels_test": y_test,
        "timesteps": timesteps,
        "num_classes": len(classes),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; `--help` lists every option."""
    parser = argparse.ArgumentParser(
        prog="python -m birnn.examples.japanese_vowels",
        description=(
            "Train the Bidirectional(LSTM) docstring model on JapaneseVowels (speaker "
            "recognition), compare it with a unidirectional LSTM of the same parameter "
            "budget, and write learning curves and results to the output folder."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"], help="maximum epochs")
    parser.add_argument(
        "--seed", type=int, default=DEFAULTS["seed"], help="seed of every random generator"
    )
    parser.add_argument(
        "--units",
        type=int,
        default=DEFAULTS["units"],
        help="units per direction of each bidirectional LSTM (the unidirectional model gets "
        "as many as matches its parameter count)",
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    parser.add_argument(
        "--patience",
        type=int,
        default=DEFAULTS["patience"],
        help="early stopping: epochs without val_loss improvement before stopping",
    )
    parser.add_argument(
        "--learning-rate", type=float, default=DEFAULTS["learning_rate"], help="RMSprop rate"
    )
    parser.add_argument(
        "--validation-per-class",
        type=int,
        default=DEFAULTS["validation_per_class"],
        help="training cases per speaker held out for early stopping",
    )
    parser.add_argument(
        "--output", default="demo_output", help="folder for learning_curves.png and results.json"
    )
    parser.add_argument(
        "--verbose", type=int, default=1, choices=(0, 1, 2), help="Keras-style fit verbosity"
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
        help="smoke test: 2 epochs, 8 units, no progress bar (used by the test suite)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.units, args.verbose = 2, 8, 0
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


def _run(args: argparse.Namespace) -> dict:
    seed_everything(args.seed)
    data = prepare_data(args.seed, args.validation_per_class)
    print(
        f"JapaneseVowels: {len(data['x_train'])} train / {len(data['x_val'])} validation / "
        f"{len(data['x_test'])} test utterances, padded to {data['timesteps']} steps of "
        f"{NUM_FEATURES} features, {data['num_classes']} speakers"
    )

    seed_everything(args.seed)
    bidirectional = build_model(args.units, True, data["timesteps"], data["num_classes"])
    models = {"bidirectional": bidirectional}
    if not args.no_compare:
        target = bidirectional.count_params()
        units = matching_units(target, data["timesteps"], data["num_classes"])
        seed_everything(args.seed)
        models["unidirectional"] = build_model(
            units, False, data["timesteps"], data["num_classes"]
        )

    results = {}
    for name, model in models.items():
        print(f"\n== {name} LSTM model: {model.count_params()} parameters ==")
        results[name] = train_and_evaluate(model, data, args, args.seed)

    os.makedirs(args.output, exist_ok=True)
    plot_path = os.path.join(args.output, "learning_curves.png")
    plot_curves(results, plot_path)
    summary = {
        "dataset": "JapaneseVowels",
        "options": vars(args),
        "models": results,
    }
    with open(os.path.join(args.output, "results.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)

    print(f"\n{'model':<16}{'params':>8}{'epochs':>8}{'train s':>9}{'test acc':>10}")
    for name, r in results.items():
        print(
            f"{name:<16}{r['params']:>8}{r['epochs_run']:>8}"
            f"{r['train_seconds']:>9.1f}{r['test_accuracy']:>10.4f}"
        )
    print(f"learning curves: {plot_path}")
    print(f"JapaneseVowels test accuracy: {results['bidirectional']['test_accuracy']:.4f}")
    return summary


if __name__ == "__main__":
    main()
    sys.exit(0)
