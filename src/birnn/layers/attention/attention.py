"""`Attention` (Luong-style dot-product) and the machinery it shares with `AdditiveAttention`.

Both take `[query, value]` or `[query, value, key]` (`key` defaults to `value`),
score every query step against every key step, softmax the scores over the key
steps and return the weighted sum of the values. Masks follow Keras: the value
mask (and `use_causal_mask`) push masked scores down by `1e9` before the softmax,
so a query whose values are all masked attends uniformly; the query mask zeroes
the output at masked query steps and is the output's mask.
"""

from __future__ import annotations

from typing import Any

import torch

from birnn.layers.layer import Layer
from birnn.ops.attention import causal_mask, dropout_with, masked_softmax


def _check_rate(layer: str, rate: Any) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise ValueError(
            f"{layer}: argument `dropout` must be a float between 0 and 1. Received: "
            f"dropout={rate!r}"
        )
    return float(rate)


def _check_seed(layer: str, seed: Any) -> Any:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(
            f"{layer}: argument `seed` must be an integer or None. Received: {seed!r}"
        )
    return seed


def unmask_scores(outputs: Any) -> Any:
    """Clears the query mask the base call put on returned attention scores too."""
    if isinstance(outputs, tuple) and len(outputs) == 2:
        scores = outputs[1]
        if getattr(scores, "_keras_mask", None) is not None:
            scores._keras_mask = None
    return outputs


class SeededDropout:
    """Mixin: dropout on attention weights from a generator seeded by `self.seed`."""

    seed: int | None
    dropout: float

    def _dropout_generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        generators = self.__dict__.setdefault("_generators", {})
        if device not in generators:
            generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return generators[device]

    def _drop(self, weights: torch.Tensor, training: bool | None) -> torch.Tensor:
        if not training or self.dropout == 0:
            return weights
        if self.dropout == 1:
            return torch.zeros_like(weights)
        return dropout_with(weights, self.dropout, self._dropout_generator(weights.device))


class BaseDenseAttention(SeededDropout, Layer):
    """Shared call logic of `Attention` and `AdditiveAttention` (subclasses score)."""

    supports_masking = True

    def __init__(self, dropout: float = 0.0, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dropout = _check_rate(type(self).__name__, dropout)
        self.seed = _check_seed(type(self).__name__, seed)

    def _calculate_scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return unmask_scores(super().__call__(*args, **kwargs))

    def _split(self, inputs: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not isinstance(inputs, (list, tuple)) or len(inputs) not in (2, 3):
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}) expects `inputs` to be a list "
                f"[query, value] or [query, value, key]. Received: {_describe(inputs)}"
            )
        tensors = [self._convert_inputs(x) for x in inputs]
        for index, x in enumerate(tensors):
            if not isinstance(x, torch.Tensor) or x.ndim < 2:
                raise ValueError(
                    f"Layer '{self.name}' ({type(self).__name__}): input {index} must be a "
                    f"tensor of rank >= 2 (batch, ..., dim). Received: {_describe(x)}"
                )
        query, value = tensors[0], tensors[1]
        key = tensors[2] if len(tensors) == 3 else value
        return query, value, key

    def _split_mask(self, mask: Any, count: int) -> tuple[Any, Any]:
        if mask is None:
            return None, None
        if not isinstance(mask, (list, tuple)) or len(mask) not in (2, 3, count):
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}): argument `mask` must be a list "
                f"[query_mask, value_mask] (entries may be None). Received: {_describe(mask)}"
            )
        return mask[0], mask[1]

    def call(
        self,
        inputs: Any,
        mask: Any = None,
        training: bool | None = None,
        return_attention_scores: bool = False,
        use_causal_mask: bool = False,
    ) -> Any:
        query, value, key = self._split(inputs)
        q_mask, v_mask = self._split_mask(mask, len(inputs))
        scores = self._calculate_scores(query, key)
        keep = None
        if v_mask is not None:
            keep = v_mask.bool().unsqueeze(-2)
        if use_causal_mask:
            causal = causal_mask(scores.shape[-2], scores.shape[-1], device=scores.device)
            keep = causal if keep is None else keep & causal
        weights = masked_softmax(scores, keep)
        output = torch.matmul(self._drop(weights, training), value)
        if q_mask is not None:
            output = output * q_mask.unsqueeze(-1).to(output.dtype)
        if return_attention_scores:
            return output, weights
        return output

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None or not isinstance(mask, (list, tuple)) or mask[0] is None:
            return None
        return mask[0]

    def compute_output_shape(self, input_shape: Any) -> tuple:
        query_shape, value_shape = tuple(input_shape[0]), tuple(input_shape[1])
        return (*query_shape[:-1], value_shape[-1])

    def compute_output_spec(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        from birnn.keras_tensor import KerasTensor

        query_shape, value_shape = tuple(inputs[0].shape), tuple(inputs[1].shape)
        key_shape = tuple(inputs[2].shape) if len(inputs) == 3 else value_shape
        output = KerasTensor(
            self.compute_output_shape([query_shape, value_shape]), self.compute_dtype
        )
        if kwargs.get("return_attention_scores"):
            scores = KerasTensor((*query_shape[:-1], key_shape[-2]), self.compute_dtype)
            return output, scores
        return output

    def get_config(self) -> dict:
        return {**super().get_config(), "dropout": self.dropout, "seed": self.seed}


def _describe(x: Any) -> str:
    if hasattr(x, "shape"):
        return f"{type(x).__name__} of shape {tuple(x.shape)}"
    if isinstance(x, (list, tuple)):
        return f"a {type(x).__name__} of {len(x)} item(s)"
    return repr(x)


class Attention(BaseDenseAttention):
    """Dot-product attention layer, a.k.a. Luong-style attention.

    For `query` `(batch, Tq, dim)`, `value` `(batch, Tv, dim)` and `key`
    `(batch, Tv, dim)` (default: `value`): scores are `query @ key^T`
    (`score_mode="dot"`) or `sum(tanh(query_i + key_j))` (`"concat"`), softmaxed
    over the `Tv` steps, and the output is the weighted sum of `value`.

    Args:
        use_scale: If `True`, creates a scalar `scale` weight (initialised to 1)
            that multiplies the scores (for `"concat"`, the summed vectors).
        score_mode: `"dot"` or `"concat"` (the latter also creates a scalar
            `concat_score_weight`, initialised to 1).
        dropout: Fraction of the attention weights to drop in training.
        seed: Optional integer seed for the dropout.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: `[query, value]` or `[query, value, key]`.
        mask: Optional `[query_mask, value_mask]` of shapes `(batch, Tq)` and
            `(batch, Tv)`; taken from the inputs' masks by default. Masked value
            steps get no weight; masked query steps output zeros.
        training: Whether dropout applies.
        return_attention_scores: If `True`, returns `(output, weights)` with the
            weights `(batch, Tq, Tv)` (before dropout).
        use_causal_mask: If `True`, query step `i` attends to value steps `<= i`.

    Output: `(batch, Tq, dim)`, carrying the query mask.

    Examples:

    >>> import torch
    >>> query, value = torch.ones(2, 3, 4), torch.ones(2, 5, 4)
    >>> out, weights = Attention()([query, value], return_attention_scores=True)
    >>> out.shape, weights.shape
    (torch.Size([2, 3, 4]), torch.Size([2, 3, 5]))
    """

    def __init__(
        self,
        use_scale: bool = False,
        score_mode: str = "dot",
        dropout: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        if score_mode not in ("dot", "concat"):
            raise ValueError(
                "Attention: argument `score_mode` must be one of {'dot', 'concat'}. "
                f"Received: score_mode={score_mode!r}"
            )
        self.use_scale = bool(use_scale)
        self.score_mode = score_mode

    def build(self, input_shape: Any = None) -> None:
        self.scale = None
        self.concat_score_weight = None
        if self.use_scale:
            self.scale = self.add_weight(shape=(), initializer="ones", name="scale")
        if self.score_mode == "concat":
            self.concat_score_weight = self.add_weight(
                shape=(), initializer="ones", name="concat_score_weight"
            )
        self.built = True

    def _calculate_scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        if self.score_mode == "dot":
            scores = torch.matmul(query, key.transpose(-1, -2))
            return scores * self.scale if self.scale is not None else scores
        summed = query.unsqueeze(-2) + key.unsqueeze(-3)
        if self.scale is not None:
            summed = self.scale * summed
        assert self.concat_score_weight is not None  # built for score_mode="concat"
        return self.concat_score_weight * torch.tanh(summed).sum(dim=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "use_scale": self.use_scale, "score_mode": self.score_mode}
