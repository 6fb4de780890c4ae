"""The `keras.utils` helpers that migrating code calls.

`pad_sequences`, `to_categorical`, `set_random_seed`, `PyDataset`, `plot_model`,
`clear_session` and `register_keras_serializable`, with Keras 3's signatures.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from birnn.backend import clear_session
from birnn.saving.serialization import register_keras_serializable

__all__ = [
    "PyDataset",
    "clear_session",
    "pad_sequences",
    "plot_model",
    "register_keras_serializable",
    "set_random_seed",
    "to_categorical",
]


def pad_sequences(
    sequences: Any,
    maxlen: int | None = None,
    dtype: Any = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: Any = 0.0,
) -> np.ndarray:
    """Pads (or truncates) sequences to one length, as a NumPy array.

    Args:
        sequences: A list of sequences (lists or arrays; their items may be
            vectors, which all need one shape).
        maxlen: The length to pad or truncate to; defaults to the longest sequence.
        dtype: The output's dtype.
        padding: `"pre"` or `"post"`: where to pad.
        truncating: `"pre"` or `"post"`: where to cut sequences longer than `maxlen`.
        value: The padding value.

    Returns:
        An array of shape `(len(sequences), maxlen, *item_shape)`.

    Examples:

    >>> pad_sequences([[1, 2, 3], [4]])
    array([[1, 2, 3],
           [0, 0, 4]], dtype=int32)
    >>> pad_sequences([[1, 2, 3], [4]], maxlen=2, padding="post", truncating="post")
    array([[1, 2],
           [4, 0]], dtype=int32)
    """
    if padding not in ("pre", "post"):
        raise ValueError(f'Padding type "{padding}" not understood')
    if truncating not in ("pre", "post"):
        raise ValueError(f'Truncating type "{truncating}" not understood')
    if not hasattr(sequences, "__len__"):
        raise ValueError("`sequences` must be iterable.")
    arrays = []
    for index, sequence in enumerate(sequences):
        if not hasattr(sequence, "__len__"):
            raise ValueError(
                f"`sequences` must be a list of iterables. Found non-iterable: {sequence!r} "
                f"at position {index}"
            )
        arrays.append(np.asarray(sequence))
    if maxlen is None:
        maxlen = max((len(a) for a in arrays), default=0)
    if maxlen < 0:
        raise ValueError(f"`maxlen` must be a non-negative integer. Received: {maxlen}")
    item_shape = next((a.shape[1:] for a in arrays if len(a)), ())
    is_text = np.issubdtype(np.dtype(dtype), np.str_) or np.issubdtype(np.dtype(dtype), np.object_)
    if isinstance(value, str) and not is_text:
        raise ValueError(
            f"`dtype` {dtype} is not compatible with `value`'s type: {type(value)}\n"
            "You should set `dtype=object` for variable length strings."
        )
    out = np.full((len(arrays), maxlen, *item_shape), value, dtype=dtype)
    for index, array in enumerate(arrays):
        if not len(array) or not maxlen:
            continue
        kept = array[-maxlen:] if truncating == "pre" else array[:maxlen]
        if kept.shape[1:] != item_shape:
            raise ValueError(
                f"Shape of sample {kept.shape[1:]} of sequence at position {index} is "
                f"different from expected shape {item_shape}"
            )
        if padding == "post":
            out[index, : len(kept)] = kept
        else:
            out[index, maxlen - len(kept) :] = kept
    return out


def to_categorical(x: Any, num_classes: int | None = None) -> np.ndarray:
    """One-hot encodes integer class labels (Keras's `to_categorical`).

    A trailing axis of size 1 is replaced by the class axis, as in Keras.

    Args:
        x: Array-like of non-negative integer labels.
        num_classes: The number of classes; defaults to `max(x) + 1`.

    Returns:
        A float array of shape `x.shape + (num_classes,)` (trailing 1 dropped).

    Raises:
        ValueError: for labels that are negative, not whole, or not below
            `num_classes` (Keras raises an `IndexError` for large labels and wraps
            negative ones around silently).

    Examples:

    >>> to_categorical([0, 2, 1])
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]])
    """
    labels = np.asarray(x)
    if labels.size and not np.all(np.equal(np.mod(labels, 1), 0)):
        raise ValueError(f"to_categorical: labels must be whole numbers. Received: {x!r}")
    labels = labels.astype("int64")
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    labels = labels.reshape(-1)
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"to_categorical: labels must lie in [0, num_classes={num_classes}). "
            f"Received labels from {labels.min()} to {labels.max()}."
        )
    out = np.zeros((labels.size, num_classes))
    out[np.arange(labels.size), labels] = 1.0
    return out.reshape(*shape, num_classes)


def set_random_seed(seed: int) -> None:
    """Seeds Python's `random`, NumPy and torch (every device), as Keras does.

    Args:
        seed: A non-negative integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(
            f"Expected `seed` argument to be an integer. Received: seed={seed} (of type "
            f"{type(seed)})"
        )
    random.seed(int(seed))
    np.random.seed(int(seed))
    torch.manual_seed(int(seed))


class PyDataset:
    """Base class for Python datasets of batches (Keras's `PyDataset`).

    Subclasses implement `__getitem__(index)` returning one batch (`x`, `(x, y)` or
    `(x, y, sample_weight)`) and `__len__` (the number of batches); `fit`,
    `evaluate` and `predict` take the batches in order and call `on_epoch_begin`
    and `on_epoch_end` around each epoch. birnn reads the batches in the calling
    thread: `workers`, `use_multiprocessing` and `max_queue_size` are kept for
    Keras compatibility.

    Args:
        workers: Accepted for Keras compatibility.
        use_multiprocessing: Accepted for Keras compatibility.
        max_queue_size: Accepted for Keras compatibility.

    Examples:

    >>> import numpy as np
    >>> class Batches(PyDataset):
    ...     def __len__(self):
    ...         return 3
    ...     def __getitem__(self, index):
    ...         return np.full((2, 1), index, "float32"), np.zeros((2, 1), "float32")
    >>> Batches().num_batches
    3
    """

    def __init__(
        self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10
    ) -> None:
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement `__getitem__`.")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement `__len__`.")

    @property
    def num_batches(self) -> int | None:
        return len(self)

    def on_epoch_begin(self) -> None:
        """Called before each epoch."""

    def on_epoch_end(self) -> None:
        """Called after each epoch."""

    def __iter__(self) -> Any:
        self.on_epoch_begin()
        for index in range(len(self)):
            yield self[index]
        self.on_epoch_end()


def plot_model(model: Any, to_file: str = "model.png", show_shapes: bool = False, **kwargs: Any):
    """Draws a model's layer graph with pydot and Graphviz (Keras's `plot_model`).

    Args:
        model: A functional or Sequential model.
        to_file: The image file to write; its extension picks the format.
        show_shapes: Whether to show each layer's output shape.
        **kwargs: Other Keras arguments (`show_dtype`, `show_layer_names`,
            `rankdir`, `dpi`...): `rankdir` and `dpi` are used, the others accepted.

    Raises:
        ImportError: if pydot (or Graphviz's `dot` program) is missing.
    """
    try:
        import pydot
    except ImportError:
        raise ImportError(
            "You must install pydot (`pip install pydot`) for `plot_model` to work."
        ) from None
    graph = pydot.Dot(rankdir=kwargs.get("rankdir", "TB"), dpi=kwargs.get("dpi", 200))
    for layer in model.layers:
        label = f"{layer.name} ({type(layer).__name__})"
        if show_shapes and "_inbound_nodes" in layer.__dict__:
            label += f"\n{layer.output.shape}"
        graph.add_node(pydot.Node(str(id(layer)), label=label, shape="record"))
    for layer in model.layers:
        for node in layer.__dict__.get("_inbound_nodes", []):
            for tensor in node.input_tensors:
                history = tensor._keras_history
                if history and history[0] in model.layers:
                    graph.add_edge(pydot.Edge(str(id(history[0])), str(id(layer))))
    extension = str(to_file).rsplit(".", 1)[-1] if "." in str(to_file) else "png"
    try:
        graph.write(to_file, format=extension)
    except (OSError, FileNotFoundError) as error:
        raise ImportError(
            "You must install Graphviz's `dot` program (e.g. `apt-get install graphviz`) for "
            f"`plot_model` to work ({error})."
        ) from None
