"""The runs the distributed tests compare: built the same way in the torchrun workers
and, for the single-process reference, in the test process itself."""

from __future__ import annotations

import numpy as np
import torch

import birnn
from birnn import layers

GLOBAL_BATCH = 8


def make_model(seed: int = 0) -> birnn.Model:
    torch.manual_seed(seed)
    model = birnn.Sequential(
        [
            birnn.Input((5, 3)),
            layers.Bidirectional(layers.LSTM(4, return_sequences=True)),
            layers.Bidirectional(layers.GRU(3)),
            layers.Dense(2),
        ]
    )
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model


def make_two_output_model(seed: int = 0) -> birnn.Model:
    torch.manual_seed(seed)
    inputs = birnn.Input((5, 3))
    features = layers.Bidirectional(layers.GRU(3))(inputs)
    model = birnn.Model(
        inputs, [layers.Dense(2, name="a")(features), layers.Dense(1, name="b")(features)]
    )
    model.compile(optimizer="sgd", loss=["mse", "mae"], loss_weights=[1.0, 0.5])
    return model


def two_output_fit(model: birnn.Model) -> dict:
    x, y, _ = arrays(21, seed=5)
    history = model.fit(
        x, [y, y[:, :1]], batch_size=GLOBAL_BATCH, epochs=2, shuffle=False, verbose=0
    )
    return history.history


def arrays(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs whose first feature of the first step is the sample's index."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5, 3)).astype("float32")
    x[:, 0, 0] = np.arange(n)
    y = rng.normal(size=(n, 2)).astype("float32")
    w = rng.uniform(0.5, 1.5, size=(n,)).astype("float32")
    return x, y, w


def generator(x: np.ndarray, y: np.ndarray, batch_size: int, epochs: int):
    for _ in range(epochs):
        for start in range(0, len(x), batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]


def loader(x: np.ndarray, y: np.ndarray, shuffle: bool) -> torch.utils.data.DataLoader:
    dataset = torch.utils.data.TensorDataset(torch.as_tensor(x), torch.as_tensor(y))
    return torch.utils.data.DataLoader(dataset, batch_size=GLOBAL_BATCH, shuffle=shuffle)


def weights(model: birnn.Model) -> list[np.ndarray]:
    return [np.asarray(w) for w in model.get_weights()]
