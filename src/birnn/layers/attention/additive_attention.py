"""`AdditiveAttention`: Bahdanau-style attention."""

from __future__ import annotations

from typing import Any

import torch

from birnn.layers.attention.attention import BaseDenseAttention


class AdditiveAttention(BaseDenseAttention):
    """Additive attention layer, a.k.a. Bahdanau-style attention.

    For `query` `(batch, Tq, dim)`, `value` `(batch, Tv, dim)` and `key`
    `(batch, Tv, dim)` (default: `value`), the score of query step `i` and key
    step `j` is `sum(scale * tanh(query_i + key_j))`; the scores are softmaxed
    over the `Tv` steps and the output is the weighted sum of `value`.

    Args:
        use_scale: If `True` (default), creates a `scale` weight of shape `(dim,)`
            (Glorot-uniform initialised); else the tanh terms are summed as is.
        dropout: Fraction of the attention weights to drop in training.
        seed: Optional integer seed for the dropout.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: `[query, value]` or `[query, value, key]`.
        mask: Optional `[query_mask, value_mask]` of shapes `(batch, Tq)` and
            `(batch, Tv)`; taken from the inputs' masks by default.
        training: Whether dropout applies.
        return_attention_scores: If `True`, returns `(output, weights)`.
        use_causal_mask: If `True`, query step `i` attends to value steps `<= i`.

    Output: `(batch, Tq, dim)`, carrying the query mask.

    Examples:

    >>> import torch
    >>> layer = AdditiveAttention()
    >>> layer([torch.ones(2, 3, 4), torch.ones(2, 5, 4)]).shape
    torch.Size([2, 3, 4])
    >>> [w.shape for w in layer.get_weights()]
    [(4,)]
    """

    def __init__(
        self, use_scale: bool = True, dropout: float = 0.0, seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        self.use_scale = bool(use_scale)

    def build(self, input_shape: Any = None) -> None:
        self.scale = None
        if self.use_scale:
            dim = input_shape[1][-1] if input_shape is not None else None
            if dim is None:
                raise ValueError(
                    f"Layer '{self.name}' (AdditiveAttention): the last axis of `value` must "
                    f"be known to create `scale`. Received: input_shape={input_shape}"
                )
            self.scale = self.add_weight(shape=(dim,), initializer="glorot_uniform", name="scale")
        self.built = True

    def _calculate_scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        terms = torch.tanh(query.unsqueeze(-2) + key.unsqueeze(-3))
        if self.scale is not None:
            terms = terms * self.scale
        return terms.sum(dim=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "use_scale": self.use_scale}
