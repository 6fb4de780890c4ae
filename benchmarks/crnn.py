"""The CRNN benchmark row: a convolutional front end feeding two Bidirectional LSTMs.

The model is the OCR model of Keras's examples, scaled down: images
`(batch, width, height, 1)` with the width read as time, two
`Conv2D(3x3, same, relu)` + `MaxPooling2D(2)` blocks (the second conv followed
by `BatchNormalization`), a `Reshape` to `(width / 4, height / 4 * 16)`, a
`Dense`, two `Bidirectional(LSTM(units, return_sequences=True))` and a per-step
softmax. The hand-written torch model does the same work in torch's own layout
(NCHW images, prepared once outside the timed step): `nn.Conv2d`,
`nn.MaxPool2d`, `nn.BatchNorm2d` (Keras's epsilon and momentum), `nn.Linear`,
`nn.LSTM(bidirectional=True)`.
"""

from __future__ import annotations

import torch
from torch import nn

FILTERS = (8, 16)
CLASSES = 20


def data(row) -> dict:
    """Images `(batch, width, height, 1)` and a per-step target `(batch, width / 4, classes)`."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(row.batch, row.time, row.features, 1, generator=g)
    target = torch.rand(row.batch, row.time // 4, CLASSES, generator=g)
    return {"x": x, "x_nchw": x.permute(0, 3, 1, 2).contiguous(), "target": target}


def input_shape(row) -> tuple:
    return (row.time, row.features, 1)


def stack(lib, row) -> list:
    """The CRNN's layers, built from `lib` (`birnn` or `keras`)."""
    L = lib.layers
    return [
        L.Conv2D(FILTERS[0], 3, padding="same", activation="relu"),
        L.MaxPooling2D(2),
        L.Conv2D(FILTERS[1], 3, padding="same", activation="relu"),
        L.BatchNormalization(),
        L.MaxPooling2D(2),
        L.Reshape((row.time // 4, (row.features // 4) * FILTERS[1])),
        L.Dense(row.units, activation="relu"),
        L.Bidirectional(L.LSTM(row.units, return_sequences=True)),
        L.Bidirectional(L.LSTM(row.units, return_sequences=True)),
        L.Dense(CLASSES, activation="softmax"),
    ]


class TorchCRNN(nn.Module):
    """The same model, hand-written in torch, on NCHW images."""

    def __init__(self, row) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, FILTERS[0], 3, padding=1)
        self.conv2 = nn.Conv2d(FILTERS[0], FILTERS[1], 3, padding=1)
        self.norm = nn.BatchNorm2d(FILTERS[1], eps=1e-3, momentum=0.01)
        self.dense = nn.Linear((row.features // 4) * FILTERS[1], row.units)
        self.rnn1 = nn.LSTM(row.units, row.units, batch_first=True, bidirectional=True)
        self.rnn2 = nn.LSTM(2 * row.units, row.units, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * row.units, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(self.norm(torch.relu(self.conv2(x))), 2)
        batch, channels, width, height = x.shape
        x = x.permute(0, 2, 3, 1).reshape(batch, width, height * channels)
        x = torch.relu(self.dense(x))
        x, _ = self.rnn1(x)
        x, _ = self.rnn2(x)
        return torch.softmax(self.head(x), dim=-1)
