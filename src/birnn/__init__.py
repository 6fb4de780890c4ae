"""birnn: Keras's Bidirectional wrapper and recurrent layers, native to PyTorch.

>>> import torch, birnn
>>> layer = birnn.layers.Bidirectional(birnn.layers.LSTM(4))
>>> layer(torch.zeros(2, 5, 3)).shape
torch.Size([2, 8])
"""

import importlib

from birnn._lazy import lazy_getattr

__version__ = "0.1.0"

_SUBMODULES = (
    "activations",
    "backend",
    "callbacks",
    "config",
    "constraints",
    "distribution",
    "dtype_policies",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "mixed_precision",
    "models",
    "ops",
    "optimizers",
    "regularizers",
    "saving",
    "tree",
    "utils",
)
_NAMES = {
    "Input": "birnn.layers.input_layer",
    "Model": "birnn.models.model",
    "Sequential": "birnn.models.sequential",
}
_lazy_names = lazy_getattr(__name__, _NAMES)


def __getattr__(attr: str):
    if attr in _SUBMODULES:
        return importlib.import_module(f"birnn.{attr}")
    return _lazy_names(attr)


__all__ = ["Input", "Model", "Sequential", *_SUBMODULES]
