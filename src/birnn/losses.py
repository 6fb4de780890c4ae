"""Keras's losses, on torch tensors: function forms, `Loss` classes, `get`/`serialize`.

Functions (`mean_squared_error(y_true, y_pred)`...) return one value per sample
(the last axis reduced), as in Keras. `Loss` classes reduce those values
(`"sum_over_batch_size"` by default), apply `sample_weight`, and honour the mask
that `y_pred` carries (`y_pred._keras_mask`): masked entries are left out of
the mean, exactly as Keras 3 does. Probabilistic crossentropies clip
probabilities to `[1e-7, 1 - 1e-7]` like Keras.

Examples:

>>> import torch
>>> loss = MeanSquaredError()
>>> float(loss(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]])))
0.5
>>> get("mse") is mean_squared_error
True
"""

from __future__ import annotations

import copy
import inspect
import math
from typing import Any

import torch
import torch.nn.functional as F

from birnn import _registry, backend

EPSILON = 1e-7
_REDUCTIONS = ("sum_over_batch_size", "sum", None, "none", "mean", "mean_with_sample_weight")


class KerasRegistry(_registry.Registry):
    """A `Registry` whose built-in functions serialize the way Keras 3 writes them."""

    def serialize(self, obj: Any) -> Any:
        if obj is None:
            return None
        if inspect.isfunction(obj) and self.is_builtin(obj):
            return {
                "module": "builtins",
                "class_name": "function",
                "config": obj.__name__,
                "registered_name": "function",
            }
        if not self.is_builtin(obj):
            from birnn.saving.serialization import serialize_keras_object

            return serialize_keras_object(obj)
        return super().serialize(obj)


def _tensor(x: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else backend.convert_to_tensor(x)
    if dtype is not None and t.dtype != dtype:
        t = t.to(dtype)
    return t


def _pair(y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    y_pred = _tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.float32)
    y_true = _tensor(y_true, y_pred.dtype)
    if y_true.device != y_pred.device:
        y_true = y_true.to(y_pred.device)
    return y_true, y_pred


def squeeze_or_expand_to_same_rank(
    x1: torch.Tensor, x2: torch.Tensor, expand_rank_1: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Drops or adds a trailing axis of size 1 so the ranks agree (Keras's rule)."""
    r1, r2 = x1.dim(), x2.dim()
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = x2.unsqueeze(-1)
        else:
            x1 = x1.squeeze(-1)
    elif r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = x1.unsqueeze(-1)
        else:
            x2 = x2.squeeze(-1)
    return x1, x2


def _aligned(name: str, y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """`y_true` and `y_pred` as tensors of the same rank; a `ValueError` naming `name` and
    both shapes unless they broadcast together."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(*_pair(y_true, y_pred))
    if y_true.shape != y_pred.shape:
        try:
            torch.broadcast_shapes(y_true.shape, y_pred.shape)
        except RuntimeError:
            raise ValueError(
                f"{name}: `y_true` and `y_pred` must have the same shape (or shapes that "
                f"broadcast together). Received: y_true.shape={tuple(y_true.shape)}, "
                f"y_pred.shape={tuple(y_pred.shape)}"
            ) from None
    return y_true, y_pred


# ---------------------------------------------------------------------------- functions
def mean_squared_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Mean of `(y_true - y_pred) ** 2` over the last axis."""
    y_true, y_pred = _aligned("mean_squared_error", y_true, y_pred)
    return torch.mean(torch.square(y_pred - y_true), dim=-1)


def mean_absolute_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Mean of `|y_true - y_pred|` over the last axis."""
    y_true, y_pred = _aligned("mean_absolute_error", y_true, y_pred)
    return torch.mean(torch.abs(y_pred - y_true), dim=-1)


def mean_absolute_percentage_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`100 * mean(|(y_true - y_pred) / y_true|)` over the last axis."""
    y_true, y_pred = _aligned("mean_absolute_percentage_error", y_true, y_pred)
    diff = torch.abs((y_true - y_pred) / torch.clamp(torch.abs(y_true), min=EPSILON))
    return 100.0 * torch.mean(diff, dim=-1)


def mean_squared_logarithmic_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Mean of `(log(y_true + 1) - log(y_pred + 1)) ** 2` over the last axis."""
    y_true, y_pred = _aligned("mean_squared_logarithmic_error", y_true, y_pred)
    first = torch.log(torch.clamp(y_pred, min=EPSILON) + 1.0)
    second = torch.log(torch.clamp(y_true, min=EPSILON) + 1.0)
    return torch.mean(torch.square(first - second), dim=-1)


def huber(y_true: Any, y_pred: Any, delta: float = 1.0) -> torch.Tensor:
    """Quadratic for `|error| <= delta`, linear beyond, averaged over the last axis."""
    y_true, y_pred = _aligned("huber", y_true, y_pred)
    error = torch.abs(y_pred - y_true)
    quad = 0.5 * torch.square(error)
    lin = delta * error - 0.5 * delta**2
    return torch.mean(torch.where(error <= delta, quad, lin), dim=-1)


def log_cosh(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Mean of `log(cosh(y_pred - y_true))` over the last axis."""
    y_true, y_pred = _aligned("log_cosh", y_true, y_pred)
    x = y_pred - y_true
    return torch.mean(x + F.softplus(-2.0 * x) - math.log(2.0), dim=-1)


def kl_divergence(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`sum(y_true * log(y_true / y_pred))` over the last axis (both clipped to [eps, 1])."""
    y_true, y_pred = _aligned("kl_divergence", y_true, y_pred)
    y_true = torch.clamp(y_true, EPSILON, 1.0)
    y_pred = torch.clamp(y_pred, EPSILON, 1.0)
    return torch.sum(y_true * torch.log(y_true / y_pred), dim=-1)


def poisson(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Mean of `y_pred - y_true * log(y_pred + eps)` over the last axis."""
    y_true, y_pred = _aligned("poisson", y_true, y_pred)
    return torch.mean(y_pred - y_true * torch.log(y_pred + EPSILON), dim=-1)


def _signed_labels(y_true: torch.Tensor) -> torch.Tensor:
    """Labels in {0, 1} become {-1, 1}; other labels pass through."""
    is_binary = torch.all((y_true == 0) | (y_true == 1))
    return torch.where(is_binary, 2.0 * y_true - 1.0, y_true)


def hinge(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Mean of `max(1 - y_true * y_pred, 0)` over the last axis (labels -1/1 or 0/1)."""
    y_true, y_pred = _aligned("hinge", y_true, y_pred)
    return torch.mean(torch.clamp(1.0 - _signed_labels(y_true) * y_pred, min=0.0), dim=-1)


def squared_hinge(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Mean of `max(1 - y_true * y_pred, 0) ** 2` over the last axis."""
    y_true, y_pred = _aligned("squared_hinge", y_true, y_pred)
    margin = torch.clamp(1.0 - _signed_labels(y_true) * y_pred, min=0.0)
    return torch.mean(torch.square(margin), dim=-1)


def categorical_hinge(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)`."""
    y_true, y_pred = _pair(y_true, y_pred)
    pos = torch.sum(y_true * y_pred, dim=-1)
    neg = torch.amax((1.0 - y_true) * y_pred, dim=-1)
    return torch.clamp(neg - pos + 1.0, min=0.0)


def cosine_similarity(y_true: Any, y_pred: Any, axis: int = -1) -> torch.Tensor:
    """Negative cosine similarity along `axis` (-1 is best)."""
    y_true, y_pred = _aligned("cosine_similarity", y_true, y_pred)
    y_true = F.normalize(y_true, dim=axis, eps=1e-12)
    y_pred = F.normalize(y_pred, dim=axis, eps=1e-12)
    return -torch.sum(y_true * y_pred, dim=axis)


def categorical_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Crossentropy between one-hot (or soft) labels and predicted distributions.

    Probabilities are renormalised along `axis` and clipped to `[1e-7, 1 - 1e-7]`.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            "categorical_crossentropy: `y_true` and `y_pred` must have the same shape "
            f"(one-hot labels). Received: y_true.shape={tuple(y_true.shape)}, "
            f"y_pred.shape={tuple(y_pred.shape)}. For integer labels use "
            "sparse_categorical_crossentropy."
        )
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[axis]
    if from_logits:
        log_prob = torch.log_softmax(y_pred, dim=axis)
    else:
        y_pred = y_pred / torch.sum(y_pred, dim=axis, keepdim=True)
        log_prob = torch.log(torch.clamp(y_pred, EPSILON, 1.0 - EPSILON))
    return -torch.sum(y_true * log_prob, dim=axis)


def sparse_categorical_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    ignore_class: int | None = None,
    axis: int = -1,
) -> torch.Tensor:
    """Crossentropy between integer labels and predicted distributions."""
    y_pred = _tensor(y_pred)
    y_true = _tensor(y_true).to(y_pred.device)
    if y_true.dim() == y_pred.dim() and y_true.shape[axis] == 1:
        y_true = y_true.squeeze(axis)
    y_true = y_true.long()
    expected = list(y_pred.shape)
    del expected[axis]
    if list(y_true.shape) != expected:
        raise ValueError(
            "sparse_categorical_crossentropy: `y_true` must have the shape of `y_pred` "
            f"without its class axis. Received: y_true.shape={tuple(y_true.shape)}, "
            f"y_pred.shape={tuple(y_pred.shape)}"
        )
    valid = None
    if ignore_class is not None:
        valid = y_true != ignore_class
        y_true = torch.where(valid, y_true, torch.zeros_like(y_true))
    class_axis = axis % y_pred.dim()
    if from_logits:
        log_prob = torch.log_softmax(y_pred, dim=class_axis)
    else:
        probs = y_pred / torch.sum(y_pred, dim=class_axis, keepdim=True)
        log_prob = torch.log(torch.clamp(probs, EPSILON, 1.0 - EPSILON))
    picked = torch.gather(log_prob, class_axis, y_true.unsqueeze(class_axis)).squeeze(class_axis)
    result = -picked
    if valid is not None:
        result = torch.where(valid, result, torch.zeros_like(result))
    return result


def binary_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Elementwise binary crossentropy, averaged over `axis`."""
    y_true, y_pred = _aligned("binary_crossentropy", y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            "binary_crossentropy: `y_true` and `y_pred` must have the same shape. "
            f"Received: y_true.shape={tuple(y_true.shape)}, y_pred.shape={tuple(y_pred.shape)}"
        )
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        values = F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    else:
        values = F.binary_cross_entropy(
            torch.clamp(y_pred, EPSILON, 1.0 - EPSILON), y_true, reduction="none"
        )
    return torch.mean(values, dim=axis)


def binary_focal_crossentropy(
    y_true: Any,
    y_pred: Any,
    apply_class_balancing: bool = False,
    alpha: float = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Binary crossentropy down-weighting easy examples by `(1 - p_t) ** gamma`."""
    y_true, y_pred = _aligned("binary_focal_crossentropy", y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        bce = F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
        y_pred = torch.sigmoid(y_pred)
    else:
        bce = F.binary_cross_entropy(
            torch.clamp(y_pred, EPSILON, 1.0 - EPSILON), y_true, reduction="none"
        )
    p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
    focal = torch.pow(1.0 - p_t, gamma) * bce
    if apply_class_balancing:
        focal = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * focal
    return torch.mean(focal, dim=axis)


def ctc(y_true: Any, y_pred: Any) -> torch.Tensor:
    """CTC loss per sample, as Keras's `losses.ctc`.

    Args:
        y_true: Integer labels `(batch, max_label_length)`, right-padded with 0:
            class 0 is the blank, and a sample's label length is its number of
            non-zero entries.
        y_pred: Scores `(batch, time, classes)`; they are log-softmaxed (as in
            Keras, also when they are already softmax probabilities), and every
            time step counts.

    Returns:
        `(batch,)` negative log-likelihoods (`inf` where no alignment exists).

    Examples:

    >>> import torch
    >>> loss = ctc(torch.tensor([[1, 0]]), torch.zeros(1, 2, 2))
    >>> round(float(loss[0]), 4)
    0.2877
    """
    from birnn.ops.ctc import ctc_loss

    y_pred = _tensor(y_pred)
    y_true = _tensor(y_true).to(device=y_pred.device, dtype=torch.long)
    batch, steps = y_pred.shape[0], y_pred.shape[1]
    output_length = torch.full((batch,), steps, dtype=torch.long, device=y_pred.device)
    label_length = (y_true != 0).sum(dim=-1)
    return ctc_loss(y_true, y_pred, label_length, output_length, mask_index=0)


def _sum(x: torch.Tensor, axis: Any) -> torch.Tensor:
    if axis is None:
        return torch.sum(x)
    return torch.sum(x, dim=tuple(axis) if isinstance(axis, (list, tuple)) else axis)


def dice(y_true: Any, y_pred: Any, axis: Any = None) -> torch.Tensor:
    """`1 - 2 * sum(y_true * y_pred) / (sum(y_true) + sum(y_pred))` over `axis`.

    `axis=None` reduces every axis (one value for the whole batch); an int or
    tuple reduces those axes only.

    Examples:

    >>> import torch
    >>> round(float(dice(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]))), 4)
    0.0
    """
    y_true, y_pred = _pair(y_true, y_pred)
    overlap = _sum(y_true * y_pred, axis)
    return 1.0 - 2.0 * overlap / (_sum(y_true, axis) + _sum(y_pred, axis) + EPSILON)


def tversky(
    y_true: Any, y_pred: Any, alpha: float = 0.5, beta: float = 0.5, axis: Any = None
) -> torch.Tensor:
    """`1 - TP / (TP + alpha * FN + beta * FP)`, soft counts summed over `axis`.

    As Keras 3 computes it, `alpha` weighs the false negatives (`y_true * (1 -
    y_pred)`) and `beta` the false positives (`(1 - y_true) * y_pred`), though
    Keras's docstring names them the other way round; the numbers are what a
    saved model was trained with, so birnn follows them. `alpha = beta = 0.5`
    is the Dice loss.

    Examples:

    >>> import torch
    >>> y_true, y_pred = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    >>> round(float(tversky(y_true, y_pred, alpha=1.0, beta=0.0)), 4)
    0.0
    >>> round(float(tversky(y_true, y_pred, alpha=0.0, beta=1.0)), 4)
    0.5
    """
    y_true, y_pred = _pair(y_true, y_pred)
    tp = _sum(y_true * y_pred, axis)
    fp = _sum((1.0 - y_true) * y_pred, axis)
    fn = _sum(y_true * (1.0 - y_pred), axis)
    return 1.0 - tp / (tp + alpha * fn + beta * fp + EPSILON)


def categorical_focal_crossentropy(
    y_true: Any,
    y_pred: Any,
    alpha: float = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Categorical crossentropy with each class term weighted by `alpha * (1 - p) ** gamma`."""
    y_true, y_pred = _pair(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            "categorical_focal_crossentropy: `y_true` and `y_pred` must have the same shape "
            f"(one-hot labels). Received: y_true.shape={tuple(y_true.shape)}, "
            f"y_pred.shape={tuple(y_pred.shape)}"
        )
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[axis]
    if from_logits:
        y_pred = torch.softmax(y_pred, dim=axis)
    y_pred = y_pred / torch.sum(y_pred, dim=axis, keepdim=True)
    y_pred = torch.clamp(y_pred, EPSILON, 1.0 - EPSILON)
    weight = alpha * torch.pow(1.0 - y_pred, gamma)
    return torch.sum(-y_true * torch.log(y_pred) * weight, dim=axis)


def categorical_generalized_cross_entropy(y_true: Any, y_pred: Any, q: float) -> torch.Tensor:
    """`(1 - p ** q) / q` where `p` is the probability of the integer label.

    `q` in (0, 1) moves the loss between crossentropy (`q -> 0`) and the mean
    absolute error (`q = 1`), which makes it robust to noisy labels. `y_true`
    holds class indices, shape `(batch,)` or `(batch, 1)`.
    """
    y_pred = _tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.float32)
    y_true = _tensor(y_true).to(y_pred.device)
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1 and y_pred.shape[-1] != 1:
        y_true = y_true.squeeze(-1)
    if tuple(y_true.shape) != tuple(y_pred.shape[:-1]):
        raise ValueError(
            "categorical_generalized_cross_entropy: `y_true` must hold integer class "
            "indices, with the shape of `y_pred` without its last axis. Received: "
            f"y_true.shape={tuple(y_true.shape)}, y_pred.shape={tuple(y_pred.shape)}"
        )
    p = torch.gather(y_pred, -1, y_true.long().unsqueeze(-1)).squeeze(-1)
    return (1.0 - torch.pow(p, q)) / q


def circle(
    y_true: Any,
    y_pred: Any,
    ref_labels: Any = None,
    ref_embeddings: Any = None,
    remove_diagonal: bool = True,
    gamma: float = 80,
    margin: float = 0.4,
) -> torch.Tensor:
    """Circle loss (Sun et al., 2020) of integer labels and L2-normalized embeddings.

    Every embedding `y_pred[i]` is compared (dot product, capped at 1) with the
    reference embeddings (`y_pred` itself by default): pairs of the same label
    are pulled together, pairs of different labels pushed apart, each pair
    weighted by how far it is from its optimum. Returns one value per sample,
    carrying a mask (`_keras_mask`) of the samples that have a positive pair:
    `Loss` reductions leave the others out, as Keras does.

    Args:
        y_true: Integer labels, `(batch,)` or `(batch, 1)`.
        y_pred: Embeddings, `(batch, dim)`, normally unit-norm.
        ref_labels: Labels of the reference embeddings (default `y_true`).
        ref_embeddings: Reference embeddings (default `y_pred`).
        remove_diagonal: Whether pair `(i, i)` is left out of the positives.
        gamma: Scale of the similarities.
        margin: Relaxation margin.

    Examples:

    >>> import torch
    >>> emb = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1], [1.0, 0.0], [0.0, 1.0]]))
    >>> [round(v, 4) for v in circle(torch.tensor([0, 0, 1]), emb).tolist()]
    [0.0, 0.0, 0.0]
    """
    y_pred = _tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.float32)
    labels = _tensor(y_true).to(y_pred.device).reshape(-1)
    if y_pred.dim() != 2 or labels.shape[0] != y_pred.shape[0]:
        raise ValueError(
            "circle: expected `y_pred` of shape (batch, dim) and one integer label per "
            f"row. Received: y_true.shape={tuple(_tensor(y_true).shape)}, "
            f"y_pred.shape={tuple(y_pred.shape)}"
        )
    ref_emb = y_pred if ref_embeddings is None else _tensor(ref_embeddings, y_pred.dtype)
    ref_lab = labels if ref_labels is None else _tensor(ref_labels).to(y_pred.device).reshape(-1)
    ref_emb = ref_emb.to(y_pred.device)
    similarity = torch.clamp(y_pred @ ref_emb.T, max=1.0)
    same = labels[:, None] == ref_lab[None, :]
    positive = same
    if remove_diagonal:
        eye = torch.eye(*same.shape, dtype=torch.bool, device=same.device)
        positive = same & ~eye
    pos_logits = -gamma * F.relu(1.0 + margin - similarity) * (similarity - (1.0 - margin))
    neg_logits = gamma * F.relu(similarity + margin) * (similarity - margin)
    # A finite "minus infinity" keeps the gradient of an all-masked row at zero.
    floor = torch.finfo(similarity.dtype).min / 4
    pos = torch.logsumexp(torch.where(positive, pos_logits, floor), dim=-1)
    neg = torch.logsumexp(torch.where(same, floor, neg_logits), dim=-1)
    values = F.softplus(pos + neg)
    # Rows without a positive pair score 0 and, as in Keras, are left out of the mean.
    values._keras_mask = positive.any(dim=-1)  # type: ignore[attr-defined]  # Keras's mask slot
    return values


# ---------------------------------------------------------------------------- reduction
def _apply_mask(
    sample_weight: torch.Tensor | None, mask: torch.Tensor | None, dtype, reduction: Any
) -> torch.Tensor | None:
    """Folds a boolean mask into the sample weights, as Keras 3 does."""
    if mask is None:
        return sample_weight
    mask = mask.to(dtype)
    if reduction in ("mean", "sum_over_batch_size"):
        total = float(mask.numel())
        valid = mask.sum()
        scale = torch.where(valid > 0, total / valid.clamp(min=1e-12), torch.zeros_like(valid))
        float_mask = mask * scale
    else:
        float_mask = mask
    if sample_weight is None:
        return float_mask
    float_mask, sample_weight = squeeze_or_expand_to_same_rank(float_mask, sample_weight.to(dtype))
    return _expand_like(sample_weight, float_mask) * float_mask


def _expand_like(weights: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-sample weights `(batch,)` broadcast over the trailing axes of `ref`."""
    while weights.dim() < ref.dim():
        weights = weights.unsqueeze(-1)
    return weights


def reduce_weighted_values(
    values: torch.Tensor,
    sample_weight: Any = None,
    mask: torch.Tensor | None = None,
    reduction: str | None = "sum_over_batch_size",
) -> torch.Tensor:
    """Weights per-sample values by `sample_weight` and `mask`, then reduces them."""
    if sample_weight is not None:
        sample_weight = _tensor(sample_weight, values.dtype).to(values.device)
    sample_weight = _apply_mask(sample_weight, mask, values.dtype, reduction)
    if sample_weight is not None:
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        values = values * _expand_like(sample_weight, values)
    if reduction in (None, "none") or values.dim() == 0 or tuple(values.shape) == (0,):
        return values
    loss = values.sum()
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        divisor = sample_weight.sum()
    elif reduction in ("sum_over_batch_size", "mean", "mean_with_sample_weight"):
        divisor = float(values.numel())
    else:
        return loss
    return loss / divisor if isinstance(divisor, float) else torch.nan_to_num(loss / divisor)


# ---------------------------------------------------------------------------- classes
class Loss:
    """Base class of losses: `loss(y_true, y_pred, sample_weight=None)` returns a scalar.

    Subclasses implement `call(y_true, y_pred)` returning per-sample values.

    Args:
        name: Name of the loss (used in logs).
        reduction: `"sum_over_batch_size"` (default), `"sum"`, `"mean"`,
            `"mean_with_sample_weight"` or `"none"`/`None`.
        dtype: Dtype of the computation (default `"float32"`).

    Examples:

    >>> import torch
    >>> class Abs(Loss):
    ...     def call(self, y_true, y_pred):
    ...         return (y_true - y_pred).abs().mean(dim=-1)
    >>> float(Abs()(torch.zeros(2, 1), torch.ones(2, 1)))
    1.0
    """

    def __init__(
        self, name: str | None = None, reduction: str | None = "sum_over_batch_size", dtype=None
    ) -> None:
        if reduction not in _REDUCTIONS:
            raise ValueError(
                f"{type(self).__name__}: invalid value for argument `reduction`. "
                f"Expected one of {_REDUCTIONS}. Received: reduction={reduction!r}"
            )
        self.name = name or backend.to_snake_case(type(self).__name__)
        self.reduction = reduction
        self.dtype = backend.standardize_dtype(dtype)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> torch.Tensor:
        mask = getattr(y_pred, "_keras_mask", None)
        dtype = backend.torch_dtype(self.dtype)
        y_pred_t = _tensor(y_pred, dtype)
        y_true_t = _tensor(y_true)
        if y_true_t.device != y_pred_t.device:
            y_true_t = y_true_t.to(y_pred_t.device)
        if y_true_t.dtype != dtype and (
            y_true_t.is_floating_point() or not self._keeps_int_labels
        ):
            y_true_t = y_true_t.to(dtype)
        values = self.call(y_true_t, y_pred_t)
        out_mask = getattr(values, "_keras_mask", None)
        if out_mask is not None:
            mask = out_mask if mask is None else (mask & out_mask)
        return reduce_weighted_values(values, sample_weight, mask, self.reduction)

    _keeps_int_labels = False

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict) -> Loss:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


def is_torch_loss(obj: Any) -> bool:
    """Whether `obj` is a PyTorch loss: an `nn.Module` loss or a `torch.nn.functional` one."""
    return isinstance(obj, torch.nn.modules.loss._Loss) or (
        callable(obj) and getattr(obj, "__module__", None) == "torch.nn.functional"
    )


class TorchLoss(Loss):
    """A PyTorch loss (`loss(input, target)`) used as a Keras loss (`loss(y_true, y_pred)`).

    `compile(loss=torch.nn.CrossEntropyLoss())` and
    `compile(loss=torch.nn.functional.mse_loss)` wrap the loss in this class,
    which swaps the arguments. Without sample weights or a mask the torch loss
    reduces as it is configured (so `ignore_index`, `reduction="sum"`... keep
    their meaning); with them it runs with `reduction="none"`, values are
    averaged over all but the batch axis, weighted and averaged over the batch
    as Keras does. Integer targets are passed as `int64` (class indices), a
    trailing axis of size 1 removed; floating targets take `y_pred`'s dtype.

    Args:
        fn: The torch loss module or function.
        name: Name in logs (default: the module's class or the function's name).

    Examples:

    >>> import torch
    >>> loss = TorchLoss(torch.nn.CrossEntropyLoss())
    >>> float(loss(torch.tensor([0]), torch.tensor([[0.0, 0.0]])))  # log(2)
    0.6931471824645996
    """

    def __init__(self, fn: Any, name: str | None = None) -> None:
        if name is None:
            name = backend.to_snake_case(
                type(fn).__name__ if isinstance(fn, torch.nn.Module) else fn.__name__
            )
        super().__init__(name=name)
        self.fn = fn

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> torch.Tensor:
        mask = getattr(y_pred, "_keras_mask", None)
        y_pred_t = _tensor(y_pred)
        y_true_t = _tensor(y_true).to(y_pred_t.device)
        if y_true_t.is_floating_point():
            y_true_t = y_true_t.to(y_pred_t.dtype)
        else:
            if (
                y_true_t.dim() == y_pred_t.dim()
                and y_true_t.shape[-1] == 1
                and y_pred_t.shape[-1] != 1
            ):
                y_true_t = y_true_t.squeeze(-1)
            y_true_t = y_true_t.long()
        if sample_weight is None and mask is None:
            return self.fn(y_pred_t, y_true_t)
        if isinstance(self.fn, torch.nn.Module):
            unreduced = copy.copy(self.fn)
            # torch types module attributes as Tensor | Module; a loss's `reduction` is a str.
            unreduced.reduction = "none"  # type: ignore[assignment]
            values = unreduced(y_pred_t, y_true_t)
        else:
            values = self.fn(y_pred_t, y_true_t, reduction="none")
        if values.dim() > 1:
            values = values.reshape(values.shape[0], -1).mean(dim=1)
        return reduce_weighted_values(values, sample_weight, mask, self.reduction)

    def get_config(self) -> dict:
        raise TypeError(
            f"Loss '{self.name}' is a PyTorch loss ({self.fn!r}); it cannot be written to a "
            "Keras config. Save the weights (`save_weights`), or compile with a birnn loss."
        )


class LossFunctionWrapper(Loss):
    """Wraps a per-sample loss function `fn(y_true, y_pred, **kwargs)` into a `Loss`."""

    def __init__(
        self,
        fn: Any,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
        dtype=None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            name=name or getattr(fn, "__name__", None), reduction=reduction, dtype=dtype
        )
        self.fn = fn
        self._fn_kwargs = kwargs
        self._keeps_int_labels = fn is sparse_categorical_crossentropy

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self) -> dict:
        config = super().get_config()
        if type(self) is LossFunctionWrapper:
            config["fn"] = serialize(self.fn)
        config.update(self._fn_kwargs)
        return config

    @classmethod
    def from_config(cls, config: dict) -> Loss:
        config = dict(config)
        if "fn" in config:
            config["fn"] = get(config["fn"])
        return cls(**config)


def _wrapper(fn, default_name: str, keys: tuple = (), keras_config_keys: tuple | None = None):
    """Builds a `LossFunctionWrapper` subclass for `fn` with keyword arguments `keys`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        params = dict(zip(keys, args))
        fn_kwargs = {k: kwargs.pop(k, params.get(k, defaults[k])) for k in keys}
        kwargs.setdefault("name", default_name)
        LossFunctionWrapper.__init__(self, fn, **kwargs, **fn_kwargs)

    sig = inspect.signature(fn).parameters
    defaults = {k: sig[k].default for k in keys}
    config_keys = keys if keras_config_keys is None else keras_config_keys

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "reduction": self.reduction,
            **{k: self._fn_kwargs[k] for k in config_keys},
        }

    return __init__, get_config


def _loss_class(
    class_name: str,
    fn,
    default_name: str,
    keys: tuple = (),
    doc: str = "",
    config_keys: tuple | None = None,
):
    init, get_config = _wrapper(fn, default_name, keys, config_keys)
    cls = type(class_name, (LossFunctionWrapper,), {"__init__": init, "get_config": get_config})
    cls.__doc__ = doc or f"`Loss` class of `{fn.__name__}`."
    cls.__module__ = __name__
    return cls


MeanSquaredError = _loss_class("MeanSquaredError", mean_squared_error, "mean_squared_error")
MeanAbsoluteError = _loss_class("MeanAbsoluteError", mean_absolute_error, "mean_absolute_error")
MeanAbsolutePercentageError = _loss_class(
    "MeanAbsolutePercentageError",
    mean_absolute_percentage_error,
    "mean_absolute_percentage_error",
)
MeanSquaredLogarithmicError = _loss_class(
    "MeanSquaredLogarithmicError",
    mean_squared_logarithmic_error,
    "mean_squared_logarithmic_error",
)
Huber = _loss_class("Huber", huber, "huber_loss", ("delta",))
LogCosh = _loss_class("LogCosh", log_cosh, "log_cosh")
KLDivergence = _loss_class("KLDivergence", kl_divergence, "kl_divergence")
Poisson = _loss_class("Poisson", poisson, "poisson")
Hinge = _loss_class("Hinge", hinge, "hinge")
SquaredHinge = _loss_class("SquaredHinge", squared_hinge, "squared_hinge")
CategoricalHinge = _loss_class("CategoricalHinge", categorical_hinge, "categorical_hinge")
CosineSimilarity = _loss_class(
    "CosineSimilarity", cosine_similarity, "cosine_similarity", ("axis",), config_keys=()
)
BinaryCrossentropy = _loss_class(
    "BinaryCrossentropy",
    binary_crossentropy,
    "binary_crossentropy",
    ("from_logits", "label_smoothing", "axis"),
    doc="""Crossentropy between binary labels and predicted probabilities (or logits).

    Args:
        from_logits: Whether `y_pred` holds logits rather than probabilities.
        label_smoothing: Squeezes labels towards 0.5 by this amount.
        axis: Axis averaged over.
        reduction: Reduction of the per-sample values.
        name: Name of the loss.

    Examples:

    >>> import torch
    >>> round(float(BinaryCrossentropy()(torch.tensor([[1.0]]), torch.tensor([[0.5]]))), 4)
    0.6931
    """,
)
CategoricalCrossentropy = _loss_class(
    "CategoricalCrossentropy",
    categorical_crossentropy,
    "categorical_crossentropy",
    ("from_logits", "label_smoothing", "axis"),
    doc="""Crossentropy between one-hot labels and predicted distributions (or logits).

    Args:
        from_logits: Whether `y_pred` holds logits rather than probabilities.
        label_smoothing: Mixes the labels with the uniform distribution.
        axis: The class axis.
        reduction: Reduction of the per-sample values.
        name: Name of the loss.

    Examples:

    >>> import torch
    >>> loss = CategoricalCrossentropy()
    >>> round(float(loss(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.5]]))), 4)
    0.6931
    """,
)
SparseCategoricalCrossentropy = _loss_class(
    "SparseCategoricalCrossentropy",
    sparse_categorical_crossentropy,
    "sparse_categorical_crossentropy",
    ("from_logits", "ignore_class", "axis"),
    doc="""Crossentropy between integer labels and predicted distributions (or logits).

    Args:
        from_logits: Whether `y_pred` holds logits rather than probabilities.
        ignore_class: A label value whose entries contribute no loss.
        axis: The class axis.
        reduction: Reduction of the per-sample values.
        name: Name of the loss.

    Examples:

    >>> import torch
    >>> loss = SparseCategoricalCrossentropy()
    >>> round(float(loss(torch.tensor([1]), torch.tensor([[0.5, 0.5]]))), 4)
    0.6931
    """,
    config_keys=("from_logits", "ignore_class"),
)
BinaryFocalCrossentropy = _loss_class(
    "BinaryFocalCrossentropy",
    binary_focal_crossentropy,
    "binary_focal_crossentropy",
    ("apply_class_balancing", "alpha", "gamma", "from_logits", "label_smoothing", "axis"),
    config_keys=(
        "from_logits",
        "label_smoothing",
        "axis",
        "apply_class_balancing",
        "alpha",
        "gamma",
    ),
)


class CTC(LossFunctionWrapper):
    """CTC (Connectionist Temporal Classification) loss, for unaligned sequence labels.

    `y_true` holds integer labels `(batch, max_label_length)` right-padded with 0
    (class 0 is the blank, never a label); `y_pred` holds `(batch, time, classes)`
    scores, log-softmaxed here as Keras does. See `ctc`.

    Args:
        reduction: Reduction of the per-sample losses (default
            `"sum_over_batch_size"`).
        name: Name of the loss.
        dtype: Dtype of the computation.

    Examples:

    >>> import torch
    >>> round(float(CTC()(torch.tensor([[1, 0]]), torch.zeros(1, 2, 2))), 4)
    0.2877
    """

    _keeps_int_labels = True

    def __init__(
        self, reduction: str | None = "sum_over_batch_size", name: str = "ctc", dtype=None
    ) -> None:
        super().__init__(ctc, reduction=reduction, name=name, dtype=dtype)
        self._keeps_int_labels = True

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}


class Dice(LossFunctionWrapper):
    """The Dice loss, `1 - 2 * |y_true * y_pred| / (|y_true| + |y_pred|)`.

    Args:
        reduction: Reduction of the per-sample values.
        name: Name of the loss.
        axis: Axes the soft counts are summed over; `None` (default) sums all
            of them, giving one value for the whole batch.
        dtype: Dtype of the computation.

    Examples:

    >>> import torch
    >>> loss = Dice()
    >>> round(float(loss(torch.tensor([[1.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.5, 0.5]]))), 4)
    0.4286
    """

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "dice",
        axis: Any = None,
        dtype=None,
    ) -> None:
        super().__init__(dice, reduction=reduction, name=name, dtype=dtype, axis=axis)

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction, "axis": self._fn_kwargs["axis"]}


Tversky = _loss_class(
    "Tversky",
    tversky,
    "tversky",
    ("alpha", "beta", "axis"),
    doc="""The Tversky loss, `1 - TP / (TP + alpha * FP + beta * FN)` on soft counts.

    Args:
        alpha: Weight of the false positives.
        beta: Weight of the false negatives.
        reduction: Reduction of the per-sample values.
        name: Name of the loss.
        axis: Axes the counts are summed over; `None` (default) sums all of them.

    Examples:

    >>> import torch
    >>> loss = Tversky(alpha=0.0, beta=1.0)
    >>> round(float(loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]]))), 4)
    0.5
    """,
)
CategoricalFocalCrossentropy = _loss_class(
    "CategoricalFocalCrossentropy",
    categorical_focal_crossentropy,
    "categorical_focal_crossentropy",
    ("alpha", "gamma", "from_logits", "label_smoothing", "axis"),
    doc="""Categorical crossentropy that down-weights well-classified examples.

    Each class term is scaled by `alpha * (1 - p) ** gamma`.

    Args:
        alpha: Overall weighting factor.
        gamma: Focusing parameter; `0` gives `alpha` times the crossentropy.
        from_logits: Whether `y_pred` holds logits rather than probabilities.
        label_smoothing: Mixes the labels with the uniform distribution.
        axis: The class axis.
        reduction: Reduction of the per-sample values.
        name: Name of the loss.

    Examples:

    >>> import torch
    >>> loss = CategoricalFocalCrossentropy(gamma=0.0, alpha=1.0)
    >>> round(float(loss(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.5]]))), 4)
    0.6931
    """,
    config_keys=("from_logits", "label_smoothing", "axis", "alpha", "gamma"),
)


class CategoricalGeneralizedCrossEntropy(LossFunctionWrapper):
    """The generalized crossentropy `(1 - p ** q) / q` of integer labels.

    Robust to noisy labels: `q -> 0` approaches crossentropy, `q = 1` the mean
    absolute error.

    Args:
        q: In (0, 1).
        reduction: Reduction of the per-sample values.
        name: Name of the loss.
        dtype: Dtype of the computation.

    Examples:

    >>> import torch
    >>> loss = CategoricalGeneralizedCrossEntropy(q=0.5)
    >>> float(loss(torch.tensor([1]), torch.tensor([[0.75, 0.25]])))
    1.0
    """

    def __init__(
        self,
        q: float = 0.5,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "categorical_generalized_cross_entropy",
        dtype=None,
    ) -> None:
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q < 1:
            raise ValueError(
                "CategoricalGeneralizedCrossEntropy: `q` must be in the interval (0, 1). "
                f"Received: q={q!r}"
            )
        super().__init__(
            categorical_generalized_cross_entropy,
            reduction=reduction,
            name=name,
            dtype=dtype,
            q=float(q),
        )
        self._keeps_int_labels = True

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction, "q": self._fn_kwargs["q"]}


class Circle(LossFunctionWrapper):
    """Circle loss of integer labels and L2-normalized embeddings (see `circle`).

    Put a `UnitNormalization` layer (or normalize otherwise) before it.

    Args:
        gamma: Scale of the similarities.
        margin: Relaxation margin.
        remove_diagonal: Whether each sample's pair with itself is left out.
        reduction: Reduction of the per-sample values.
        name: Name of the loss.
        dtype: Dtype of the computation.

    Examples:

    >>> import torch
    >>> emb = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2], [0.2, 1.0], [1.0, -0.2]]))
    >>> round(float(Circle(gamma=10.0)(torch.tensor([0, 1, 1]), emb)), 4)
    11.8001
    """

    def __init__(
        self,
        gamma: float = 80.0,
        margin: float = 0.4,
        remove_diagonal: bool = True,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "circle",
        dtype=None,
    ) -> None:
        super().__init__(
            circle,
            reduction=reduction,
            name=name,
            dtype=dtype,
            gamma=gamma,
            margin=margin,
            remove_diagonal=remove_diagonal,
        )
        self._keeps_int_labels = True

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction, **self._fn_kwargs}


_FUNCTIONS = (
    mean_squared_error,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_logarithmic_error,
    huber,
    log_cosh,
    kl_divergence,
    poisson,
    hinge,
    squared_hinge,
    categorical_hinge,
    cosine_similarity,
    categorical_crossentropy,
    sparse_categorical_crossentropy,
    binary_crossentropy,
    binary_focal_crossentropy,
    ctc,
    dice,
    tversky,
    categorical_focal_crossentropy,
    categorical_generalized_cross_entropy,
    circle,
)
_CLASSES = (
    Loss,
    LossFunctionWrapper,
    MeanSquaredError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError,
    Huber,
    LogCosh,
    KLDivergence,
    Poisson,
    Hinge,
    SquaredHinge,
    CategoricalHinge,
    CosineSimilarity,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    SparseCategoricalCrossentropy,
    BinaryFocalCrossentropy,
    CTC,
    Dice,
    Tversky,
    CategoricalFocalCrossentropy,
    CategoricalGeneralizedCrossEntropy,
    Circle,
)
_ALIASES = {
    "bce": binary_crossentropy,
    "BCE": binary_crossentropy,
    "kld": kl_divergence,
    "KLD": kl_divergence,
    "mae": mean_absolute_error,
    "MAE": mean_absolute_error,
    "mse": mean_squared_error,
    "MSE": mean_squared_error,
    "mape": mean_absolute_percentage_error,
    "MAPE": mean_absolute_percentage_error,
    "msle": mean_squared_logarithmic_error,
    "MSLE": mean_squared_logarithmic_error,
    "logcosh": log_cosh,
    "huber_loss": huber,
    "kullback_leibler_divergence": kl_divergence,
}
_REGISTRY = KerasRegistry(
    "loss",
    "keras.losses",
    {
        **{fn.__name__: fn for fn in _FUNCTIONS},
        **{cls.__name__: cls for cls in _CLASSES},
        **_ALIASES,
    },
)


def get(identifier: Any) -> Any:
    """A loss from a name (`"mse"`, `"categorical_crossentropy"`), config, class or callable.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    return _REGISTRY.get(identifier)


def serialize(loss: Any) -> Any:
    """The Keras 3 serialized form of a loss function or `Loss` instance."""
    return _REGISTRY.serialize(loss)


def deserialize(config: Any, custom_objects: dict | None = None) -> Any:
    """The loss a serialized form (or name) describes."""
    return _REGISTRY.deserialize(config, custom_objects)
