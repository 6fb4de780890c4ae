"""`Input` and `InputLayer`: the entry points of a functional graph."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from birnn import backend
from birnn.keras_tensor import KerasTensor
from birnn.layers.arguments import get_argument
from birnn.layers.layer import Layer
from birnn.layers.node import Node


def _standardize_shape(shape: Any, what: str) -> tuple:
    if isinstance(shape, int):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError as e:
        raise TypeError(
            f"InputLayer: argument `{what}` must be a tuple of integers or None. "
            f"Received: {what}={shape!r}"
        ) from e
    for d in dims:
        if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 0):
            raise ValueError(
                f"InputLayer: argument `{what}` must contain non-negative integers or None. "
                f"Received: {what}={shape!r}"
            )
    return dims


class InputLayer(Layer):
    """The layer behind `Input()`: holds the input's shape and dtype, computes nothing.

    Args:
        shape: Shape of one sample (without the batch axis).
        batch_size: Optional fixed batch size.
        dtype: Dtype of the input (default `"float32"`).
        sparse: Accepted for Keras compatibility; must be falsy.
        ragged: Accepted for Keras compatibility; must be falsy.
        batch_shape: Full shape including the batch axis (instead of `shape`).
        input_tensor: Optional existing `KerasTensor` to wrap.
        optional: Whether the model may be called with `None` for this input.
        name: Name of the layer (and of its tensor).

    Examples:

    >>> layer = InputLayer(shape=(5, 3), name="seq")
    >>> layer.batch_shape, layer.output.shape
    ((None, 5, 3), (None, 5, 3))
    """

    def __init__(
        self,
        shape: Sequence[int | None] | None = None,
        batch_size: int | None = None,
        dtype: Any = None,
        sparse: bool | None = None,
        ragged: bool | None = None,
        batch_shape: Sequence[int | None] | None = None,
        input_tensor: KerasTensor | None = None,
        optional: bool = False,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if "input_shape" in kwargs:
            shape = kwargs.pop("input_shape")
        if "batch_input_shape" in kwargs:
            batch_shape = kwargs.pop("batch_input_shape")
        kwargs.pop("trainable", None)
        if name is None:
            name = backend.unique_name("input_layer")
        super().__init__(name=name, **kwargs)
        if sparse or ragged:
            raise ValueError(
                f"InputLayer '{self.name}': sparse and ragged inputs are not supported. "
                f"Received: sparse={sparse}, ragged={ragged}"
            )
        if input_tensor is not None:
            if not isinstance(input_tensor, KerasTensor):
                raise ValueError(
                    f"InputLayer '{self.name}': argument `input_tensor` must be a KerasTensor. "
                    f"Received: {input_tensor!r}"
                )
            batch_shape = input_tensor.shape
            dtype = input_tensor.dtype if dtype is None else dtype
        else:
            if shape is not None and batch_shape is not None:
                raise ValueError(
                    f"InputLayer '{self.name}': pass either `shape` or `batch_shape`, not both."
                )
            if batch_size is not None and batch_shape is not None:
                raise ValueError(
                    f"InputLayer '{self.name}': pass either `batch_size` or `batch_shape`, "
                    "not both."
                )
            if shape is None and batch_shape is None:
                raise ValueError(f"InputLayer '{self.name}': you must pass a `shape` argument.")
            if batch_size is not None and (
                isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0
            ):
                raise ValueError(
                    f"InputLayer '{self.name}': argument `batch_size` must be a positive "
                    f"integer or None. Received: batch_size={batch_size!r}"
                )
            if shape is not None:
                batch_shape = (batch_size, *_standardize_shape(shape, "shape"))
        self._batch_shape = _standardize_shape(batch_shape, "batch_shape")
        self.dtype = get_argument(
            f"InputLayer '{self.name}'", "dtype", backend.standardize_dtype, dtype
        )
        self.sparse = False
        self.ragged = False
        self.optional = bool(optional)

        tensor = input_tensor or KerasTensor(self._batch_shape, dtype=self.dtype, name=self.name)
        self._inbound_nodes: list[Node] = []
        Node(self, (), {}, tensor)
        self.built = True

    @property
    def batch_shape(self) -> tuple:
        """The input's shape, batch axis included."""
        return self._batch_shape

    @property
    def output(self) -> KerasTensor:
        """The `KerasTensor` this layer feeds into the graph."""
        return self._inbound_nodes[0].outputs

    def call(self, inputs: Any = None) -> Any:
        return inputs

    def compute_output_shape(self, input_shape: Any = None) -> tuple:
        return self._batch_shape

    def get_config(self) -> dict:
        return {
            "batch_shape": list(self._batch_shape),
            "dtype": self.dtype,
            "sparse": False,
            "ragged": False,
            "name": self.name,
            "optional": self.optional,
        }

    @classmethod
    def from_config(cls, config: dict) -> InputLayer:
        config = dict(config)
        if config.get("batch_shape") is not None:
            config["batch_shape"] = tuple(config["batch_shape"])
        return cls(**config)


def Input(
    shape: Sequence[int | None] | None = None,
    batch_size: int | None = None,
    dtype: Any = None,
    sparse: bool | None = None,
    batch_shape: Sequence[int | None] | None = None,
    name: str | None = None,
    tensor: KerasTensor | None = None,
    optional: bool = False,
) -> KerasTensor:
    """Creates a symbolic input: the start of a functional model.

    Calling layers on the returned `KerasTensor` records a graph (shapes are
    inferred, nothing runs); `Model(inputs, outputs)` turns it into a model.

    Args:
        shape: Shape of one sample, without the batch axis; `None` entries are
            unknown sizes (e.g. variable sequence length).
        batch_size: Optional fixed batch size.
        dtype: Dtype the model casts this input to (default `"float32"`).
        sparse: Accepted for Keras compatibility; must be falsy.
        batch_shape: Full shape including the batch axis (instead of `shape`).
        name: Name of the input; dict inputs to the model are matched by it.
        tensor: Optional existing `KerasTensor` to wrap.
        optional: Whether the model may be called with `None` for this input.

    Returns:
        A `KerasTensor`.

    Examples:

    >>> x = Input(shape=(5, 10))
    >>> x.shape, x.dtype
    ((None, 5, 10), 'float32')
    """
    layer = InputLayer(
        shape=shape,
        batch_size=batch_size,
        dtype=dtype,
        sparse=sparse,
        batch_shape=batch_shape,
        input_tensor=tensor,
        optional=optional,
        name=name,
    )
    return layer.output
