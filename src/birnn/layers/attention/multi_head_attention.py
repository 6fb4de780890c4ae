"""`MultiHeadAttention`, as in "Attention is all you Need", with Keras's weights and masks.

The projections are sublayers named as in Keras (`query`, `key`, `value`,
`attention_output`, and `gate` with `use_gate`), each with a `kernel` and a
`bias` of Keras's shapes: `(dim, num_heads, key_dim)` and `(num_heads, key_dim)`
for the query and key, `(dim, num_heads, value_dim)` for the value and gate,
`(num_heads, value_dim, *output_shape)` for the output. So `set_weights` takes
Keras's arrays and `.keras` files move both ways.

Masks (observed on Keras 3.15.1): the query, value and key masks carried by the
inputs (e.g. from `Embedding(mask_zero=True)` or `Masking`) are combined with
`attention_mask`, `use_causal_mask` and `sliding_window` into one
`(batch, Tq, Tv)` mask; the output carries the query mask. A query row with no
key left to attend to gets uniform weights when the layer takes the fused path
(no dropout, no scores returned) and all-zero weights otherwise, as in Keras.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from birnn import constraints, initializers, regularizers
from birnn.keras_tensor import KerasTensor
from birnn.layers.arguments import get_argument
from birnn.layers.attention.attention import (
    SeededDropout,
    _check_rate,
    _check_seed,
    unmask_scores,
)
from birnn.layers.core import _check_positive_int
from birnn.layers.layer import Layer
from birnn.ops.attention import causal_mask, multi_head_attention


class _Projection(Layer):
    """`x @ kernel + bias` contracting the last `in_axes` axes of `x` (Keras's EinsumDense)."""

    def __init__(
        self,
        kernel_shape: tuple,
        in_axes: int,
        use_bias: bool,
        kernel_initializer: Any,
        bias_initializer: Any,
        kernel_regularizer: Any,
        bias_regularizer: Any,
        kernel_constraint: Any,
        bias_constraint: Any,
        name: str,
        dtype: Any,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        self.in_axes = in_axes
        self.kernel = self.add_weight(
            shape=kernel_shape,
            initializer=kernel_initializer,
            regularizer=kernel_regularizer,
            constraint=kernel_constraint,
            name="kernel",
        )
        self.bias = None
        if use_bias:
            self.bias = self.add_weight(
                shape=kernel_shape[in_axes:],
                initializer=bias_initializer,
                regularizer=bias_regularizer,
                constraint=bias_constraint,
                name="bias",
            )
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        # One GEMM with the bias fused: the kernel seen as (in, out) matrix, as Dense.
        n = self.in_axes
        in_shape, out_shape = self.kernel.shape[:n], self.kernel.shape[n:]
        flat_in = inputs.reshape(*inputs.shape[: inputs.ndim - n], math.prod(in_shape))
        weight = self.kernel.reshape(math.prod(in_shape), math.prod(out_shape)).T
        bias = None if self.bias is None else self.bias.reshape(-1)
        out = F.linear(flat_in, weight, bias)
        return out.reshape(*out.shape[:-1], *out_shape)


class _Weightless(Layer):
    """Stands where Keras keeps a weightless sublayer (`_softmax`), so files line up."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.built = True


def _shape_of(x: Any) -> tuple | None:
    return None if x is None else tuple(x.shape)


class MultiHeadAttention(SeededDropout, Layer):
    """Multi-head attention: `num_heads` scaled dot-product attentions side by side.

    The query, key and value are projected per head, each query step attends
    over the key steps (softmax of the scaled dot products), the heads' weighted
    values are concatenated and projected back to the query's feature size (or
    `output_shape`).

    Args:
        num_heads: Number of attention heads.
        key_dim: Size of each head for the query and key.
        value_dim: Size of each head for the value (default: `key_dim`).
        dropout: Dropout rate on the attention weights (in training).
        use_bias: Whether the projections have biases.
        output_shape: Size (int or tuple) of the output's feature axes;
            default: the query's last axis.
        attention_axes: Axes attended over (default: all axes but the batch,
            head and feature axes; for `(batch, T, dim)` inputs, `(1,)`).
        sliding_window: Optional positive integer: query step `i` only attends
            to key steps `j` with `|i - j| < sliding_window`.
        flash_attention: Accepted for Keras compatibility (torch picks the
            fused kernel itself).
        kernel_initializer: Initializer of the projection kernels.
        bias_initializer: Initializer of the projection biases.
        kernel_regularizer: Regularizer of the projection kernels.
        bias_regularizer: Regularizer of the projection biases.
        activity_regularizer: Regularizer of the output.
        kernel_constraint: Constraint of the projection kernels.
        bias_constraint: Constraint of the projection biases.
        use_gate: If `True`, the heads' outputs are multiplied by a sigmoid gate
            projected from the query before the output projection.
        seed: Optional integer seed for the dropout.
        **kwargs: Base layer arguments.

    Call arguments:
        query: `(batch, Tq, dim)` (or more axes, see `attention_axes`).
        value: `(batch, Tv, dim)`.
        key: Optional `(batch, Tv, dim)`; default: `value`.
        query_mask, value_mask, key_mask: Optional boolean `(batch, T)` masks;
            default: the masks the tensors carry.
        attention_mask: Optional boolean `(batch, Tq, Tv)`: `True` where a query
            step may attend to a key step.
        return_attention_scores: If `True`, returns `(output, scores)` with the
            scores `(batch, num_heads, Tq, Tv)`.
        training: Whether dropout applies.
        use_causal_mask: If `True`, query step `i` attends to key steps `<= i`.

    Examples:

    >>> import torch
    >>> layer = MultiHeadAttention(num_heads=2, key_dim=3)
    >>> out, scores = layer(torch.ones(4, 5, 8), torch.ones(4, 6, 8), return_attention_scores=True)
    >>> out.shape, scores.shape
    (torch.Size([4, 5, 8]), torch.Size([4, 2, 5, 6]))
    >>> [w.shape for w in layer.get_weights()][:2]
    [(8, 2, 3), (2, 3)]
    """

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        value_dim: int | None = None,
        dropout: float = 0.0,
        use_bias: bool = True,
        output_shape: int | Sequence[int] | None = None,
        attention_axes: int | Sequence[int] | None = None,
        sliding_window: int | None = None,
        flash_attention: bool | None = None,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        use_gate: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        name = "MultiHeadAttention"
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.num_heads = _check_positive_int(name, "num_heads", num_heads)
        self.key_dim = _check_positive_int(name, "key_dim", key_dim)
        if value_dim is not None:
            _check_positive_int(name, "value_dim", value_dim)
        self.value_dim = self.key_dim if value_dim is None else value_dim
        self.dropout = _check_rate(name, dropout)
        self.seed = _check_seed(name, seed)
        self.use_bias = bool(use_bias)
        self.use_gate = bool(use_gate)
        self.flash_attention = flash_attention
        if sliding_window is not None:
            _check_positive_int(name, "sliding_window", sliding_window)
        self.sliding_window = sliding_window
        self._output_shape = self._standardize_output_shape(output_shape)
        self.attention_axes = self._standardize_axes(attention_axes)
        self.kernel_initializer = get_argument(
            name, "kernel_initializer", initializers.get, kernel_initializer
        )
        self.bias_initializer = get_argument(
            name, "bias_initializer", initializers.get, bias_initializer
        )
        self.kernel_regularizer = get_argument(
            name, "kernel_regularizer", regularizers.get, kernel_regularizer
        )
        self.bias_regularizer = get_argument(
            name, "bias_regularizer", regularizers.get, bias_regularizer
        )
        self.kernel_constraint = get_argument(
            name, "kernel_constraint", constraints.get, kernel_constraint
        )
        self.bias_constraint = get_argument(
            name, "bias_constraint", constraints.get, bias_constraint
        )
        self._shapes: dict[str, tuple | None] | None = None

    @staticmethod
    def _standardize_output_shape(output_shape: Any) -> tuple | None:
        if output_shape is None:
            return None
        dims = (output_shape,) if isinstance(output_shape, int) else output_shape
        try:
            dims = tuple(dims)
        except TypeError:
            dims = None
        if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in dims):
            raise ValueError(
                "MultiHeadAttention: argument `output_shape` must be a positive integer or a "
                f"tuple of positive integers. Received: output_shape={output_shape!r}"
            )
        return dims

    @staticmethod
    def _standardize_axes(axes: Any) -> tuple | None:
        if axes is None:
            return None
        dims = (axes,) if isinstance(axes, int) else axes
        try:
            dims = tuple(dims)
        except TypeError:
            dims = None
        if not dims or any(isinstance(d, bool) or not isinstance(d, int) for d in dims):
            raise ValueError(
                "MultiHeadAttention: argument `attention_axes` must be an integer or a tuple "
                f"of integers. Received: attention_axes={axes!r}"
            )
        return dims

    @property
    def output_shape(self) -> tuple | None:
        return self._output_shape

    # ------------------------------------------------------------------ build
    def _projection(self, name: str, kernel_shape: tuple, in_axes: int = 1) -> _Projection:
        return _Projection(
            kernel_shape,
            in_axes,
            self.use_bias,
            self.kernel_initializer,
            self.bias_initializer,
            self.kernel_regularizer,
            self.bias_regularizer,
            self.kernel_constraint,
            self.bias_constraint,
            name=name,
            dtype=self.dtype_policy,
        )

    # Keras's signature: built from the shapes of its inputs, not one input_shape.
    def build(  # type: ignore[override]
        self,
        query_shape: Sequence[int | None],
        value_shape: Sequence[int | None],
        key_shape: Sequence[int | None] | None = None,
    ) -> None:
        query_shape, value_shape = tuple(query_shape), tuple(value_shape)
        key_shape = value_shape if key_shape is None else tuple(key_shape)
        for label, shape in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if len(shape) < 3 or shape[-1] is None:
                raise ValueError(
                    f"Layer '{self.name}' (MultiHeadAttention): `{label}` must have rank >= 3 "
                    f"(batch, steps..., dim) with a known last axis. Received shape {shape}"
                )
        rank = len(query_shape)
        if self.attention_axes is None:
            self.attention_axes = tuple(range(1, rank - 1))
        axes = tuple(a % rank for a in self.attention_axes)
        if any(not 1 <= a <= rank - 2 for a in axes):
            raise ValueError(
                f"Layer '{self.name}' (MultiHeadAttention): `attention_axes` "
                f"{self.attention_axes} must name step axes of the query (between the batch "
                f"and the feature axis; rank {rank})."
            )
        self._axes = tuple(sorted(set(axes)))
        heads = self.num_heads
        self.query_dense = self._projection("query", (query_shape[-1], heads, self.key_dim))
        self.key_dense = self._projection("key", (key_shape[-1], heads, self.key_dim))
        if self.use_gate:  # Keras's file names this one `_gate_dense`, the others without `_`
            self._gate_dense = self._projection("gate", (query_shape[-1], heads, self.value_dim))
        self.value_dense = self._projection("value", (value_shape[-1], heads, self.value_dim))
        out = self._output_shape or (query_shape[-1],)
        self.output_dense = self._projection(
            "attention_output", (heads, self.value_dim, *out), in_axes=2
        )
        self._softmax = _Weightless("softmax")
        self._dropout_layer = _Weightless("dropout")
        self._shapes = {"query_shape": query_shape, "value_shape": value_shape}
        if key_shape is not value_shape:
            self._shapes["key_shape"] = key_shape
        self._build_input_shape = query_shape
        self.built = True

    def get_build_config(self) -> dict | None:
        if self._shapes is None:
            return None
        return {"shapes_dict": dict(self._shapes)}

    def build_from_config(self, config: dict) -> None:
        shapes = config.get("shapes_dict") or {}
        if shapes:
            self.build(**{k: tuple(v) for k, v in shapes.items()})

    # ------------------------------------------------------------------ call
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not args and "query" in kwargs:
            args = (kwargs.pop("query"),)
        if not self.built:
            names = ("query", "value", "key")
            given = dict(zip(names, args))
            given.update({k: kwargs[k] for k in names if k in kwargs})
            query_shape, value_shape = _shape_of(given.get("query")), _shape_of(given.get("value"))
            if query_shape is None or value_shape is None:
                raise ValueError(
                    f"Layer '{self.name}' (MultiHeadAttention) needs `query` and `value`."
                )
            self.build(query_shape, value_shape, _shape_of(given.get("key")))
        return unmask_scores(super().__call__(*args, **kwargs))

    def _flat_layout(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple, tuple]:
        """`(B, *steps, H, d)` -> `(B', H, T, d)` with the attention axes last before `d`.

        Returns the flat tensor, the sizes of the batch-like axes and of the attended axes.
        """
        rank = x.ndim - 1  # the input's rank
        outer = [0] + [a for a in range(1, rank - 1) if a not in self._axes]
        order = [*outer, rank - 1, *self._axes, rank]
        moved = x.permute(order)
        outer_sizes = tuple(moved.shape[: len(outer)])
        attended = tuple(moved.shape[len(outer) + 1 : -1])
        flat = moved.reshape(
            math.prod(outer_sizes), x.shape[rank - 1], math.prod(attended), x.shape[-1]
        )
        return flat, outer_sizes, attended

    def _is_plain(self, query: torch.Tensor) -> bool:
        return query.ndim == 3 and self._axes == (1,)

    def _combined_mask(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        query_mask: Any,
        value_mask: Any,
        key_mask: Any,
        attention_mask: Any,
        use_causal_mask: bool,
    ) -> torch.Tensor | None:
        """The boolean mask over the scores without their head axis, or None."""
        automatic = [m for m in (query_mask, value_mask, key_mask) if m is not None]
        if (automatic or use_causal_mask or self.sliding_window) and not self._is_plain(query):
            raise ValueError(
                f"Layer '{self.name}' (MultiHeadAttention): query/value/key masks, "
                "`use_causal_mask` and `sliding_window` need (batch, steps, dim) inputs "
                f"attended over axis 1. Received query of shape {tuple(query.shape)} and "
                f"attention_axes={self.attention_axes}; pass `attention_mask` instead."
            )
        device = query.device
        mask = None

        def both(a: torch.Tensor | None, b: torch.Tensor) -> torch.Tensor:
            return b if a is None else a & b

        if query_mask is not None:
            mask = _as_bool(query_mask, device)[:, :, None]
        for m in (value_mask, key_mask):
            if m is not None:
                mask = both(mask, _as_bool(m, device)[:, None, :])
        if use_causal_mask or self.sliding_window:
            t, s = query.shape[1], key.shape[1]
            band = causal_mask(t, s, device=device, window=self.sliding_window)
            if not use_causal_mask:  # a symmetric band around the diagonal
                band = band | causal_mask(s, t, device=device, window=self.sliding_window).T
            mask = both(mask, band[None])
        if attention_mask is not None:
            mask = both(mask, _as_bool(attention_mask, device))
        return mask

    def call(
        self,
        query: torch.Tensor,
        value: torch.Tensor,
        key: torch.Tensor | None = None,
        query_mask: Any = None,
        value_mask: Any = None,
        key_mask: Any = None,
        attention_mask: Any = None,
        return_attention_scores: bool = False,
        training: bool | None = None,
        use_causal_mask: bool = False,
    ) -> Any:
        value = self._convert_inputs(value)
        key = value if key is None else self._convert_inputs(key)
        if query_mask is None:
            query_mask = getattr(query, "_keras_mask", None)
        if value_mask is None:
            value_mask = getattr(value, "_keras_mask", None)
        if key_mask is None and key is not value:
            key_mask = getattr(key, "_keras_mask", None)
        mask = self._combined_mask(
            query, key, query_mask, value_mask, key_mask, attention_mask, use_causal_mask
        )

        q, outer, q_steps = self._flat_layout(self.query_dense(query))
        k, _, k_steps = self._flat_layout(self.key_dense(key))
        v, _, _ = self._flat_layout(self.value_dense(value))
        if mask is not None:
            # Keras broadcasts the mask over the head axis, just before the attended axes.
            n = len(self._axes)
            full = (*outer, self.num_heads, *q_steps, *k_steps)
            mask = mask.unsqueeze(-2 * n - 1).expand(full)
            mask = mask.reshape(q.shape[0], self.num_heads, q.shape[2], k.shape[2])
        context, scores = multi_head_attention(
            q,
            k,
            v,
            mask=mask,
            dropout=self.dropout,
            training=bool(training),
            return_weights=return_attention_scores,
            generator=self._dropout_generator(q.device),
        )
        # (B', H, T, e) back to (B, *steps, H, e)
        context = context.reshape(*outer, self.num_heads, *q_steps, self.value_dim)
        context = context.permute(self._restore_order(query.ndim)).contiguous()
        if self.use_gate:
            context = context * torch.sigmoid(self._gate_dense(query))
        output = self.output_dense(context)
        if return_attention_scores:
            assert scores is not None  # asked for with return_weights
            return output, scores.reshape(*outer, self.num_heads, *q_steps, *k_steps)
        return output

    def _restore_order(self, rank: int) -> list[int]:
        """The permutation taking `(outer..., H, attended..., e)` back to `(B, steps..., H, e)`."""
        outer = [0] + [a for a in range(1, rank - 1) if a not in self._axes]
        layout = [*outer, rank - 1, *self._axes, rank]
        return [layout.index(axis) for axis in range(rank + 1)]

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return mask

    def compute_output_shape(
        self,
        query_shape: Sequence[int | None],
        value_shape: Sequence[int | None] | None = None,
        key_shape: Sequence[int | None] | None = None,
    ) -> tuple:
        query_shape = tuple(query_shape)
        return (*query_shape[:-1], *(self._output_shape or (query_shape[-1],)))

    def compute_output_spec(
        self,
        query: Any,
        value: Any,
        key: Any = None,
        return_attention_scores: bool = False,
        **kwargs: Any,
    ) -> Any:
        output = KerasTensor(self.compute_output_shape(query.shape), dtype=self.compute_dtype)
        if not return_attention_scores:
            return output
        rank = len(query.shape)
        axes = self._axes
        key_shape = (key if key is not None else value).shape
        outer = [query.shape[0]] + [query.shape[a] for a in range(1, rank - 1) if a not in axes]
        steps = [query.shape[a] for a in axes] + [key_shape[a] for a in axes]
        return output, KerasTensor((*outer, self.num_heads, *steps), dtype=self.compute_dtype)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "use_gate": self.use_gate,
            "output_shape": self._output_shape,
            "attention_axes": self.attention_axes,
            "sliding_window": self.sliding_window,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "seed": self.seed,
        }


def _as_bool(mask: Any, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(mask, device=device).bool()
