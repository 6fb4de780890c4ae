"""Attention kernels: masked softmax weights and (multi-head) scaled dot-product attention.

Masks are boolean, `True` where a query may attend to a key, and broadcast against
the scores. Masked scores get a large negative number added (`-1e9`, or `-65504`
in float16) before the softmax, as Keras does, so that a row whose keys are all
masked gets uniform weights rather than NaN; `zero_masked` then sets the weights
of masked positions to exactly 0 (such a row becomes all zeros).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["large_negative", "masked_softmax", "multi_head_attention", "causal_mask"]


def large_negative(dtype: torch.dtype) -> float:
    """The number added to masked scores: `-65504` in float16, else `-1e9`."""
    return -65504.0 if dtype == torch.float16 else -1.0e9


def causal_mask(
    query_len: int, key_len: int, device: torch.device | None = None, window: int | None = None
) -> torch.Tensor:
    """Boolean `(query_len, key_len)`: query `i` sees keys `j <= i` (and `i - j < window`)."""
    rows = torch.arange(query_len, device=device)[:, None]
    cols = torch.arange(key_len, device=device)[None, :]
    mask = cols <= rows
    if window is not None:
        mask = mask & (rows - cols < window)
    return mask


def masked_softmax(
    scores: torch.Tensor, mask: torch.Tensor | None, zero_masked: bool = False
) -> torch.Tensor:
    """Softmax over the last axis with masked scores pushed down by a large negative number.

    Args:
        scores: Float tensor `(..., keys)`.
        mask: Optional boolean tensor broadcastable to `scores`.
        zero_masked: Whether masked weights are then set to exactly 0.

    Examples:

    >>> import torch
    >>> masked_softmax(torch.zeros(1, 3), torch.tensor([[True, True, False]]))
    tensor([[0.5000, 0.5000, 0.0000]])
    >>> masked_softmax(torch.zeros(1, 2), torch.tensor([[False, False]]))
    tensor([[0.5000, 0.5000]])
    >>> masked_softmax(torch.zeros(1, 2), torch.tensor([[False, False]]), zero_masked=True)
    tensor([[0., 0.]])
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)
    pushed = scores + (~mask).to(scores.dtype) * large_negative(scores.dtype)
    weights = torch.softmax(pushed, dim=-1)
    if zero_masked:
        weights = weights * mask.to(weights.dtype)
    return weights


def multi_head_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout: float = 0.0,
    training: bool = False,
    return_weights: bool = False,
    zero_masked: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scaled dot-product attention over `(batch, heads, steps, depth)` tensors.

    Without dropout or weights to return, this is one call of
    `torch.nn.functional.scaled_dot_product_attention` with an additive mask (a
    fully masked row then attends uniformly); otherwise the weights are formed
    explicitly with `masked_softmax` (`zero_masked` sets masked weights to 0).

    Args:
        query: `(B, H, T, d)`; it is scaled by `1 / sqrt(d)`.
        key: `(B, H, S, d)`.
        value: `(B, H, S, e)`.
        mask: Optional boolean tensor broadcastable to `(B, H, T, S)`.
        dropout: Dropout rate on the attention weights (applied in training).
        training: Whether dropout applies.
        return_weights: Whether to return the weights (before dropout).
        zero_masked: See `masked_softmax` (explicit path only).
        generator: Optional generator for the dropout mask.

    Returns:
        `(output (B, H, T, e), weights (B, H, T, S) or None)`.

    Examples:

    >>> import torch
    >>> q, k = torch.ones(1, 1, 2, 4), torch.ones(1, 1, 3, 4)
    >>> v = torch.arange(3.0).view(1, 1, 3, 1)
    >>> out, _ = multi_head_attention(q, k, v, mask=torch.tensor([[True, True, False]]))
    >>> out.flatten()
    tensor([0.5000, 0.5000])
    """
    use_dropout = training and dropout > 0
    if not return_weights and dropout == 0:
        bias = None
        if mask is not None:
            zeros = torch.zeros((), dtype=query.dtype, device=query.device)
            bias = torch.where(mask, zeros, large_negative(query.dtype))
        return F.scaled_dot_product_attention(query, key, value, attn_mask=bias), None
    scores = torch.matmul(query * (1.0 / math.sqrt(query.shape[-1])), key.transpose(-1, -2))
    weights = masked_softmax(scores, mask, zero_masked=zero_masked)
    dropped = weights
    if use_dropout:
        dropped = dropout_with(weights, dropout, generator)
    return torch.matmul(dropped, value), (weights if return_weights else None)


def dropout_with(x: torch.Tensor, rate: float, generator: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout of `x` at `rate`, from `generator` when given."""
    if generator is None:
        return F.dropout(x, p=rate, training=True)
    keep = torch.bernoulli(
        torch.full(x.shape, 1.0 - rate, device=x.device, dtype=torch.float32), generator=generator
    ).to(x.dtype)
    return x * keep / (1.0 - rate)
