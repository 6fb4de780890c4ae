"""Keras's metrics, stateful and on-device: `update_state`, `result`, `reset_state`.

State lives in torch tensors on the device of the first update, so training can
accumulate metrics without a host sync per batch. A mask carried by `y_pred`
(`y_pred._keras_mask`) weights the values as in Keras 3.

Examples:

>>> import torch
>>> m = BinaryAccuracy()
>>> m.update_state(torch.tensor([[1.0], [0.0]]), torch.tensor([[0.9], [0.8]]))
>>> float(m.result())
0.5
>>> get("mae") is mean_absolute_error
True
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from birnn import backend
from birnn import losses as losses_module
from birnn.losses import (
    KerasRegistry,
    binary_crossentropy,
    categorical_crossentropy,
    categorical_hinge,
    cosine_similarity,
    hinge,
    kl_divergence,
    log_cosh,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
    poisson,
    sparse_categorical_crossentropy,
    squared_hinge,
    squeeze_or_expand_to_same_rank,
)


def _tensor(x: Any, dtype: torch.dtype | None = None, device: Any = None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else backend.convert_to_tensor(x)
    if dtype is not None and t.dtype != dtype:
        t = t.to(dtype)
    if device is not None and t.device != device:
        t = t.to(device)
    return t


# ---------------------------------------------------------------------------- accuracy fns
def accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """1.0 where `y_pred` equals `y_true` exactly, else 0.0."""
    y_pred = _tensor(y_pred)
    y_true = _tensor(y_true, y_pred.dtype, y_pred.device)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return (y_true == y_pred).to(torch.float32)


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> torch.Tensor:
    """1.0 where `y_pred > threshold` agrees with the binary label."""
    y_pred = _tensor(y_pred)
    y_true = _tensor(y_true, None, y_pred.device)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    predicted = (y_pred > threshold).to(y_true.dtype)
    return (y_true == predicted).to(torch.float32)


def categorical_accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """1.0 where the argmax of `y_pred` is the argmax of the one-hot `y_true`."""
    y_pred = _tensor(y_pred)
    y_true = _tensor(y_true, None, y_pred.device)
    return (torch.argmax(y_true, dim=-1) == torch.argmax(y_pred, dim=-1)).to(torch.float32)


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """1.0 where the argmax of `y_pred` equals the integer label."""
    y_pred = _tensor(y_pred)
    y_true = _tensor(y_true, None, y_pred.device)
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    predicted = torch.argmax(y_pred, dim=-1)
    return (predicted == y_true.to(predicted.dtype)).to(torch.float32)


def _in_top_k(targets: torch.Tensor, predictions: torch.Tensor, k: int) -> torch.Tensor:
    k = min(k, predictions.shape[-1])
    kth = torch.topk(predictions, k, dim=-1).values[..., -1]
    target_values = torch.gather(predictions, -1, targets.long().unsqueeze(-1)).squeeze(-1)
    return (target_values >= kth).to(torch.float32)


def top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> torch.Tensor:
    """1.0 where the true class is among the `k` highest predictions (one-hot labels)."""
    y_pred = _tensor(y_pred)
    y_true = _tensor(y_true, None, y_pred.device)
    return _in_top_k(torch.argmax(y_true, dim=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> torch.Tensor:
    """1.0 where the integer label is among the `k` highest predictions."""
    y_pred = _tensor(y_pred)
    y_true = _tensor(y_true, None, y_pred.device)
    if y_true.dim() == y_pred.dim():
        y_true = y_true.squeeze(-1)
    return _in_top_k(y_true, y_pred, k)


# ---------------------------------------------------------------------------- base classes
class Metric:
    """Base class of stateful metrics.

    Subclasses create state with `add_variable`, and implement `update_state`,
    `result` and (optionally) `reset_state`.

    Args:
        name: Name of the metric (its key in training logs).
        dtype: Dtype of the state (default `"float32"`).
    """

    def __init__(self, name: str | None = None, dtype: Any = None) -> None:
        self.name = name or backend.to_snake_case(type(self).__name__)
        self.dtype = backend.standardize_dtype(dtype)
        self._variables: dict[str, torch.Tensor] = {}
        self._initial: dict[str, float] = {}

    def add_variable(self, name: str, shape: tuple = (), initial: float = 0.0) -> torch.Tensor:
        value = torch.full(shape, float(initial), dtype=backend.torch_dtype(self.dtype))
        self._variables[name] = value
        self._initial[name] = float(initial)
        setattr(self, name, value)
        return value

    def to_device(self, device: torch.device) -> None:
        """Moves the state variables to `device` (each update does this for its inputs)."""
        for name, value in self._variables.items():
            if value.device != device:
                moved = value.to(device)
                self._variables[name] = moved
                setattr(self, name, moved)

    @property
    def variables(self) -> list[torch.Tensor]:
        return [getattr(self, n) for n in self._variables]

    def reset_state(self) -> None:
        """Resets every state variable to its initial value."""
        for name in self._variables:
            getattr(self, name).fill_(self._initial[name])

    def update_state(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def result(self) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: dict) -> Metric:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


def _reduce_to_samplewise(
    values: torch.Tensor, sample_weight: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Keras's `reduce_to_samplewise_values` with a mean reduction."""
    if sample_weight is not None:
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        w_ndim, v_ndim = sample_weight.dim(), values.dim()
        if v_ndim > w_ndim:
            values = values.mean(dim=tuple(range(w_ndim, v_ndim)))
        elif w_ndim > v_ndim:
            sample_weight = sample_weight.reshape(*values.shape, -1).mean(-1)
            w_ndim = sample_weight.dim()
        sample_weight = torch.broadcast_to(sample_weight, values.shape)
        values = values * sample_weight
        if w_ndim > 1:
            sample_weight = sample_weight.mean(dim=tuple(range(1, w_ndim)))
    if values.dim() > 1:
        values = values.mean(dim=tuple(range(1, values.dim())))
    return values, sample_weight


class Mean(Metric):
    """The (weighted) mean of the values it is given.

    Examples:

    >>> m = Mean()
    >>> m.update_state([1.0, 3.0, 5.0, 7.0], sample_weight=[1, 1, 0, 0])
    >>> float(m.result())
    2.0
    """

    # State variables, created by `add_variable` (which also sets the attribute).
    total: torch.Tensor
    count: torch.Tensor

    def __init__(self, name: str = "mean", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.add_variable("total")
        self.add_variable("count")

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        dtype = backend.torch_dtype(self.dtype)
        values = _tensor(values, dtype)
        self.to_device(values.device)
        if sample_weight is not None:
            sample_weight = _tensor(sample_weight, dtype, values.device)
        values, sample_weight = _reduce_to_samplewise(values, sample_weight)
        self.total.add_(values.sum())
        if sample_weight is not None:
            self.count.add_(sample_weight.sum())
        else:
            self.count.add_(values.shape[0] if values.dim() >= 1 else 1)

    def result(self) -> torch.Tensor:
        return torch.where(self.count != 0, self.total / self.count, 0.0)


class Sum(Metric):
    """The (weighted) sum of the values it is given."""

    total: torch.Tensor

    def __init__(self, name: str = "sum", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.add_variable("total")

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        values = _tensor(values, backend.torch_dtype(self.dtype))
        self.to_device(values.device)
        if sample_weight is not None:
            sample_weight = _tensor(sample_weight, values.dtype, values.device)
        values, _ = _reduce_to_samplewise(values, sample_weight)
        self.total.add_(values.sum())

    def result(self) -> torch.Tensor:
        return self.total.clone()


def _mask_weights(sample_weight: Any, y_pred: Any, dtype: torch.dtype) -> Any:
    mask = getattr(y_pred, "_keras_mask", None)
    if mask is None:
        return sample_weight
    mask = mask.to(dtype)
    if sample_weight is None:
        return mask
    sample_weight = _tensor(sample_weight, dtype, mask.device)
    mask, sample_weight = squeeze_or_expand_to_same_rank(mask, sample_weight)
    return sample_weight * mask


class MeanMetricWrapper(Mean):
    """The mean of `fn(y_true, y_pred, **kwargs)` over all samples seen.

    Args:
        fn: A per-sample function, e.g. `mean_absolute_error`.
        name: Name of the metric.
        dtype: Dtype of the state.
        **kwargs: Passed to `fn`.

    Examples:

    >>> import torch
    >>> m = MeanMetricWrapper(mean_absolute_error, name="mae")
    >>> m.update_state(torch.zeros(2, 1), torch.ones(2, 1))
    >>> float(m.result())
    1.0
    """

    def __init__(self, fn: Any, name: str | None = None, dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(name=name or str(getattr(fn, "__name__", "mean")), dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    # Keras's class tree: a Mean whose update takes (y_true, y_pred) instead of values.
    def update_state(  # type: ignore[override]
        self, y_true: Any, y_pred: Any, sample_weight: Any = None
    ) -> None:
        dtype = backend.torch_dtype(self.dtype)
        sample_weight = _mask_weights(sample_weight, y_pred, dtype)
        values = self._fn(y_true, y_pred, **self._fn_kwargs)
        super().update_state(values, sample_weight=sample_weight)

    def get_config(self) -> dict:
        config = super().get_config()
        if type(self) is MeanMetricWrapper:
            config["fn"] = serialize(self._fn)
        config.update(self._fn_kwargs)
        return config

    @classmethod
    def from_config(cls, config: dict) -> Metric:
        config = dict(config)
        if "fn" in config:
            config["fn"] = get(config["fn"])
        return cls(**config)


def _metric_class(class_name: str, fn, default_name: str, keys: dict | None = None):
    """A `MeanMetricWrapper` subclass for `fn` whose arguments are `keys` (with defaults)."""
    keys = keys or {}

    def __init__(self, *args: Any, name: str = default_name, dtype: Any = None, **kwargs):
        params = dict(zip(keys, args))
        fn_kwargs = {k: kwargs.pop(k, params.get(k, d)) for k, d in keys.items()}
        if kwargs:
            raise ValueError(f"{class_name}: unknown arguments {sorted(kwargs)}.")
        MeanMetricWrapper.__init__(self, fn, name=name, dtype=dtype, **fn_kwargs)

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, **self._fn_kwargs}

    cls = type(class_name, (MeanMetricWrapper,), {"__init__": __init__, "get_config": get_config})
    cls.__doc__ = f"The mean of `{fn.__name__}` over all samples seen."
    cls.__module__ = __name__
    return cls


Accuracy = _metric_class("Accuracy", accuracy, "accuracy")
BinaryAccuracy = _metric_class(
    "BinaryAccuracy", binary_accuracy, "binary_accuracy", {"threshold": 0.5}
)
CategoricalAccuracy = _metric_class(
    "CategoricalAccuracy", categorical_accuracy, "categorical_accuracy"
)
SparseCategoricalAccuracy = _metric_class(
    "SparseCategoricalAccuracy", sparse_categorical_accuracy, "sparse_categorical_accuracy"
)
TopKCategoricalAccuracy = _metric_class(
    "TopKCategoricalAccuracy", top_k_categorical_accuracy, "top_k_categorical_accuracy", {"k": 5}
)
SparseTopKCategoricalAccuracy = _metric_class(
    "SparseTopKCategoricalAccuracy",
    sparse_top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy",
    {"k": 5},
)
MeanAbsoluteError = _metric_class("MeanAbsoluteError", mean_absolute_error, "mean_absolute_error")
MeanSquaredError = _metric_class("MeanSquaredError", mean_squared_error, "mean_squared_error")
MeanAbsolutePercentageError = _metric_class(
    "MeanAbsolutePercentageError",
    mean_absolute_percentage_error,
    "mean_absolute_percentage_error",
)
MeanSquaredLogarithmicError = _metric_class(
    "MeanSquaredLogarithmicError",
    mean_squared_logarithmic_error,
    "mean_squared_logarithmic_error",
)
LogCoshError = _metric_class("LogCoshError", log_cosh, "logcosh")
KLDivergence = _metric_class("KLDivergence", kl_divergence, "kl_divergence")
Poisson = _metric_class("Poisson", poisson, "poisson")
CosineSimilarity = _metric_class(
    "CosineSimilarity",
    lambda y_true, y_pred: -cosine_similarity(y_true, y_pred),
    "cosine_similarity",
)
Hinge = _metric_class("Hinge", hinge, "hinge")
SquaredHinge = _metric_class("SquaredHinge", squared_hinge, "squared_hinge")
CategoricalHinge = _metric_class("CategoricalHinge", categorical_hinge, "categorical_hinge")
BinaryCrossentropy = _metric_class(
    "BinaryCrossentropy",
    binary_crossentropy,
    "binary_crossentropy",
    {"from_logits": False, "label_smoothing": 0},
)
CategoricalCrossentropy = _metric_class(
    "CategoricalCrossentropy",
    categorical_crossentropy,
    "categorical_crossentropy",
    {"from_logits": False, "label_smoothing": 0, "axis": -1},
)
SparseCategoricalCrossentropy = _metric_class(
    "SparseCategoricalCrossentropy",
    sparse_categorical_crossentropy,
    "sparse_categorical_crossentropy",
    {"from_logits": False, "ignore_class": None, "axis": -1},
)


class RootMeanSquaredError(Mean):
    """The square root of the mean squared error over all samples seen."""

    def __init__(self, name: str = "root_mean_squared_error", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)

    # Keras's class tree: a Mean whose update takes (y_true, y_pred) instead of values.
    def update_state(  # type: ignore[override]
        self, y_true: Any, y_pred: Any, sample_weight: Any = None
    ) -> None:
        dtype = backend.torch_dtype(self.dtype)
        y_pred = _tensor(y_pred, dtype)
        y_true = _tensor(y_true, dtype, y_pred.device)
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        sample_weight = _mask_weights(sample_weight, y_pred, dtype)
        super().update_state(torch.square(y_pred - y_true), sample_weight=sample_weight)

    def result(self) -> torch.Tensor:
        return torch.sqrt(super().result())

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}


# ---------------------------------------------------------------------------- confusion
def _default_thresholds(num_thresholds: int) -> list[float]:
    inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    return [0.0 - 1e-7, *inner, 1.0 + 1e-7]


def _divide_no_nan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(b != 0, a / torch.where(b != 0, b, torch.ones_like(b)), torch.zeros_like(a))


class _ConfusionMetric(Metric):
    """Accumulates weighted TP/FP/TN/FN counts at a set of thresholds."""

    true_positives: torch.Tensor
    false_positives: torch.Tensor
    true_negatives: torch.Tensor
    false_negatives: torch.Tensor

    def __init__(
        self,
        thresholds: list[float],
        name: str | None,
        dtype: Any,
        top_k: int | None = None,
        class_id: int | None = None,
        shape_suffix: tuple = (),
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        self._thresholds = [float(t) for t in thresholds]
        self.top_k = top_k
        self.class_id = class_id
        shape = (len(self._thresholds), *shape_suffix)
        for var in ("true_positives", "false_positives", "true_negatives", "false_negatives"):
            self.add_variable(var, shape)
        self._threshold_tensor: torch.Tensor | None = None

    def _update_confusion(
        self,
        y_true: Any,
        y_pred: Any,
        sample_weight: Any = None,
        flatten: bool = True,
    ) -> None:
        dtype = backend.torch_dtype(self.dtype)
        y_pred = _tensor(y_pred, dtype)
        self.to_device(y_pred.device)
        y_true = _tensor(y_true, dtype, y_pred.device)
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        sample_weight = _mask_weights(sample_weight, y_pred, dtype)
        if self.top_k is not None:
            kth = torch.topk(y_pred, min(self.top_k, y_pred.shape[-1]), dim=-1).values[..., -1:]
            y_pred = torch.where(y_pred >= kth, y_pred, torch.full_like(y_pred, -1e9))
        if self.class_id is not None:
            y_true = y_true[..., self.class_id]
            y_pred = y_pred[..., self.class_id]
        weights = torch.ones_like(y_pred)
        if sample_weight is not None:
            sw = _tensor(sample_weight, dtype, y_pred.device)
            while sw.dim() < weights.dim():
                sw = sw.unsqueeze(-1)
            weights = weights * sw
        if flatten:
            y_true, y_pred, weights = y_true.reshape(-1), y_pred.reshape(-1), weights.reshape(-1)
        else:
            last = y_pred.shape[-1]
            y_true = y_true.reshape(-1, last)
            y_pred, weights = y_pred.reshape(-1, last), weights.reshape(-1, last)
        if self._threshold_tensor is None or self._threshold_tensor.device != y_pred.device:
            self._threshold_tensor = torch.tensor(
                self._thresholds, dtype=dtype, device=y_pred.device
            )
        thresholds = self._threshold_tensor.reshape(-1, *([1] * y_pred.dim()))
        above = (y_pred.unsqueeze(0) > thresholds).to(dtype)
        pos = (y_true > 0.5).to(dtype).unsqueeze(0)
        w = weights.unsqueeze(0)
        self.true_positives.add_((above * pos * w).sum(1))
        self.false_positives.add_((above * (1 - pos) * w).sum(1))
        self.true_negatives.add_(((1 - above) * (1 - pos) * w).sum(1))
        self.false_negatives.add_(((1 - above) * pos * w).sum(1))


class _ThresholdMetric(_ConfusionMetric):
    def __init__(
        self,
        thresholds: Any = None,
        top_k: int | None = None,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        self._init_thresholds = thresholds
        self._single = thresholds is None or isinstance(thresholds, (int, float))
        if thresholds is None:
            values = [0.5 if top_k is None else -1e8]
        elif isinstance(thresholds, (int, float)):
            values = [float(thresholds)]
        else:
            values = list(thresholds)
        super().__init__(values, name, dtype, top_k=top_k, class_id=class_id)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        self._update_confusion(y_true, y_pred, sample_weight)

    def _finish(self, value: torch.Tensor) -> torch.Tensor:
        return value[0] if self._single else value

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "thresholds": self._init_thresholds,
            "top_k": self.top_k,
            "class_id": self.class_id,
        }


class Precision(_ThresholdMetric):
    """`TP / (TP + FP)` at a threshold (0.5 by default).

    Args:
        thresholds: A float or list of floats; predictions above count as positive.
        top_k: Only the `top_k` highest predictions per sample count as positive.
        class_id: Only this class (last-axis index) is evaluated.
        name: Name of the metric.
        dtype: Dtype of the state.

    Examples:

    >>> m = Precision()
    >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    >>> round(float(m.result()), 4)
    0.6667
    """

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(thresholds, top_k, class_id, name or "precision", dtype)

    def result(self) -> torch.Tensor:
        tp, fp = self.true_positives, self.false_positives
        return self._finish(_divide_no_nan(tp, tp + fp))


class Recall(_ThresholdMetric):
    """`TP / (TP + FN)` at a threshold (0.5 by default).

    Args:
        thresholds: A float or list of floats; predictions above count as positive.
        top_k: Only the `top_k` highest predictions per sample count as positive.
        class_id: Only this class (last-axis index) is evaluated.
        name: Name of the metric.
        dtype: Dtype of the state.

    Examples:

    >>> m = Recall()
    >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    >>> round(float(m.result()), 4)
    0.6667
    """

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(thresholds, top_k, class_id, name or "recall", dtype)

    def result(self) -> torch.Tensor:
        tp, fn = self.true_positives, self.false_negatives
        return self._finish(_divide_no_nan(tp, tp + fn))


class _CountMetric(_ConfusionMetric):
    _field = "true_positives"

    def __init__(self, thresholds: Any = None, name: str | None = None, dtype: Any = None):
        self._init_thresholds = thresholds
        self._single = thresholds is None or isinstance(thresholds, (int, float))
        values = (
            [0.5]
            if thresholds is None
            else ([float(thresholds)] if self._single else list(thresholds))
        )
        super().__init__(values, name, dtype)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        self._update_confusion(y_true, y_pred, sample_weight)

    def result(self) -> torch.Tensor:
        value = getattr(self, self._field)
        return value[0] if self._single else value.clone()

    def get_config(self) -> dict:
        return {**super().get_config(), "thresholds": self._init_thresholds}


class TruePositives(_CountMetric):
    """Weighted count of true positives at a threshold."""

    _field = "true_positives"


class FalsePositives(_CountMetric):
    """Weighted count of false positives at a threshold."""

    _field = "false_positives"


class TrueNegatives(_CountMetric):
    """Weighted count of true negatives at a threshold."""

    _field = "true_negatives"


class FalseNegatives(_CountMetric):
    """Weighted count of false negatives at a threshold."""

    _field = "false_negatives"


class AUC(_ConfusionMetric):
    """Area under the ROC (default) or precision-recall curve, from thresholded counts.

    Args:
        num_thresholds: Number of thresholds spread evenly over [0, 1].
        curve: `"ROC"` or `"PR"`.
        summation_method: `"interpolation"` (trapezoids; Davis & Goadrich for
            PR), `"minoring"` or `"majoring"`.
        name: Name of the metric.
        dtype: Dtype of the state.
        thresholds: Explicit thresholds (instead of `num_thresholds`).
        multi_label: Whether to compute one AUC per label and average them.
        num_labels: Number of labels (with `multi_label`).
        label_weights: Per-label weights of that average.
        from_logits: Whether predictions are logits (a sigmoid is applied).

    Examples:

    >>> m = AUC(num_thresholds=3)
    >>> m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    >>> float(m.result())
    0.75
    """

    def __init__(
        self,
        num_thresholds: int = 200,
        curve: str = "ROC",
        summation_method: str = "interpolation",
        name: str | None = None,
        dtype: Any = None,
        thresholds: Any = None,
        multi_label: bool = False,
        num_labels: int | None = None,
        label_weights: Any = None,
        from_logits: bool = False,
    ) -> None:
        if str(curve).upper() not in ("ROC", "PR"):
            raise ValueError(f"AUC: invalid `curve` {curve!r}. Expected 'ROC' or 'PR'.")
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError(
                f"AUC: invalid `summation_method` {summation_method!r}. Expected "
                "'interpolation', 'minoring' or 'majoring'."
            )
        if thresholds is not None:
            values = [0.0 - 1e-7, *sorted(thresholds), 1.0 + 1e-7]
            num_thresholds = len(values)
        else:
            if num_thresholds <= 1:
                raise ValueError(f"AUC: `num_thresholds` must be > 1. Received: {num_thresholds}")
            values = _default_thresholds(num_thresholds)
        self.num_thresholds = num_thresholds
        self.curve = str(curve).upper()
        self.summation_method = summation_method
        self.multi_label = bool(multi_label)
        self.num_labels = num_labels
        self.label_weights = label_weights
        self.from_logits = bool(from_logits)
        self._init_thresholds = thresholds
        suffix = (num_labels,) if multi_label and num_labels else ()
        super().__init__(values, name or "auc", dtype, shape_suffix=suffix)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_pred = _tensor(y_pred, backend.torch_dtype(self.dtype))
        if self.from_logits:
            y_pred = torch.sigmoid(y_pred)
        if self.multi_label and self.true_positives.dim() == 1:
            labels = y_pred.shape[-1]
            for var in ("true_positives", "false_positives", "true_negatives", "false_negatives"):
                self.add_variable(var, (self.num_thresholds, labels))
        self._update_confusion(y_true, y_pred, sample_weight, flatten=not self.multi_label)

    def _reduce(self, terms: torch.Tensor) -> torch.Tensor:
        if not self.multi_label:
            return terms.sum()
        by_label = terms.sum(0)
        if self.label_weights is None:
            return by_label.mean()
        weights = _tensor(self.label_weights, by_label.dtype, by_label.device)
        return _divide_no_nan((by_label * weights).sum(), weights.sum())

    def result(self) -> torch.Tensor:
        tp, fp = self.true_positives, self.false_positives
        tn, fn = self.true_negatives, self.false_negatives
        if self.curve == "PR" and self.summation_method == "interpolation":
            dtp = tp[:-1] - tp[1:]
            p = tp + fp
            dp = p[:-1] - p[1:]
            slope = _divide_no_nan(dtp, torch.clamp(dp, min=0))
            intercept = tp[1:] - slope * p[1:]
            both = (p[:-1] > 0) & (p[1:] > 0)
            ratio = torch.where(
                both, _divide_no_nan(p[:-1], torch.clamp(p[1:], min=0)), torch.ones_like(p[1:])
            )
            increment = _divide_no_nan(
                slope * (dtp + intercept * torch.log(ratio)), torch.clamp(tp[1:] + fn[1:], min=0)
            )
            return self._reduce(increment)
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = torch.minimum(y[:-1], y[1:])
        else:
            heights = torch.maximum(y[:-1], y[1:])
        return self._reduce((x[:-1] - x[1:]) * heights)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_thresholds": self.num_thresholds,
            "curve": self.curve,
            "summation_method": self.summation_method,
            "multi_label": self.multi_label,
            "num_labels": self.num_labels,
            "label_weights": self.label_weights,
            "from_logits": self.from_logits,
        }


# ---------------------------------------------------------------------------- F-scores
_AVERAGES = (None, "micro", "macro", "weighted")


class FBetaScore(Metric):
    """F-beta score: `(1 + b2) * precision * recall / (b2 * precision + recall)`, `b2 = beta**2`.

    For multi-class and multi-label classification: `y_true` and `y_pred` are
    `(batch, classes)`. Per class, the weighted true positives, false positives
    and false negatives (and the support, `sum(y_true)`) are accumulated across
    `update_state` calls; `result()` forms the score from the totals.

    Args:
        average: `None` (default: one score per class), `"micro"` (the score of
            the totals over all classes), `"macro"` (the mean of the per-class
            scores) or `"weighted"` (their mean weighted by each class's support).
        beta: Weight of recall against precision (positive; default 1).
        threshold: Predictions above it count as positive; with `None` (default)
            each row's largest prediction is the positive one.
        name: Name of the metric.
        dtype: Dtype of the state and the result.

    Examples:

    >>> import torch
    >>> metric = FBetaScore(beta=2.0, threshold=0.5)
    >>> y_true = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0]])
    >>> y_pred = torch.tensor([[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]])
    >>> metric.update_state(y_true, y_pred)
    >>> metric.result()
    tensor([0.3846, 0.9091, 0.8333])
    """

    true_positives: torch.Tensor
    false_positives: torch.Tensor
    false_negatives: torch.Tensor
    intermediate_weights: torch.Tensor

    def __init__(
        self,
        average: str | None = None,
        beta: float = 1.0,
        threshold: float | None = None,
        name: str = "fbeta_score",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        cls = type(self).__name__
        if average not in _AVERAGES:
            raise ValueError(
                f"{cls}: invalid value for argument `average`. Expected one of "
                f"{_AVERAGES}. Received: average={average!r}"
            )
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta <= 0:
            raise ValueError(
                f"{cls}: argument `beta` must be a positive float. Received: beta={beta!r}"
            )
        if threshold is not None and (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or not 0 < threshold <= 1
        ):
            raise ValueError(
                f"{cls}: argument `threshold` must be a float in (0, 1] or None. "
                f"Received: threshold={threshold!r}"
            )
        self.average = average
        self.beta = float(beta)
        self.threshold = None if threshold is None else float(threshold)
        self._built_for: int | None = None

    def _build(self, classes: int) -> None:
        names = ("true_positives", "false_positives", "false_negatives", "intermediate_weights")
        for var in names:
            self.add_variable(var, (classes,))
        self._built_for = classes

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        dtype = backend.torch_dtype(self.dtype)
        y_pred = _tensor(y_pred, dtype)
        y_true = _tensor(y_true, dtype, y_pred.device)
        if y_pred.dim() != 2 or y_true.shape != y_pred.shape:
            raise ValueError(
                f"{type(self).__name__} expects 2D inputs of equal shape (batch_size, "
                f"output_dim). Received: y_true of shape {tuple(y_true.shape)}, y_pred of "
                f"shape {tuple(y_pred.shape)}"
            )
        classes = y_pred.shape[-1]
        if self._built_for is None:
            self._build(classes)
        elif classes != self._built_for:
            raise ValueError(
                f"{type(self).__name__}: y_pred has {classes} classes, but earlier "
                f"batches had {self._built_for}."
            )
        self.to_device(y_pred.device)
        if self.threshold is None:
            top = y_pred.amax(dim=-1, keepdim=True)
            positive = (y_pred >= top).to(dtype)
        else:
            positive = (y_pred > self.threshold).to(dtype)
        if sample_weight is not None:
            weight = _tensor(sample_weight, dtype, y_pred.device)
            if weight.dim() == 1:
                weight = weight[:, None]
            y_true_w, positive_w = y_true * weight, positive * weight
        else:
            weight = None
            y_true_w, positive_w = y_true, positive
        self.true_positives.add_((positive_w * y_true).sum(0))
        self.false_positives.add_((positive_w * (1 - y_true)).sum(0))
        self.false_negatives.add_(((1 - positive) * y_true_w).sum(0))
        self.intermediate_weights.add_(y_true_w.sum(0))

    def result(self) -> torch.Tensor:
        if self._built_for is None:
            return torch.tensor(0.0, dtype=backend.torch_dtype(self.dtype))
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        if self.average == "micro":
            tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
        precision = _divide_no_nan(tp, tp + fp)
        recall = _divide_no_nan(tp, tp + fn)
        b2 = self.beta**2
        score = (1 + b2) * _divide_no_nan(precision * recall, b2 * precision + recall)
        if self.average == "macro":
            return score.mean()
        if self.average == "weighted":
            support = self.intermediate_weights
            return (score * _divide_no_nan(support, support.sum())).sum()
        return score

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "average": self.average,
            "beta": self.beta,
            "threshold": self.threshold,
        }


class F1Score(FBetaScore):
    """F1 score: the harmonic mean of precision and recall (`FBetaScore` with `beta=1`).

    Args:
        average: `None` (one score per class), `"micro"`, `"macro"` or `"weighted"`.
        threshold: Predictions above it count as positive; with `None` (default)
            each row's largest prediction is the positive one.
        name: Name of the metric.
        dtype: Dtype of the state and the result.

    Examples:

    >>> import torch
    >>> metric = F1Score(average="micro", threshold=0.5)
    >>> metric.update_state(torch.tensor([[1, 0], [0, 1]]), torch.tensor([[0.9, 0.2], [0.6, 0.7]]))
    >>> round(float(metric.result()), 4)
    0.8
    """

    def __init__(
        self,
        average: str | None = None,
        threshold: float | None = None,
        name: str = "f1_score",
        dtype: Any = None,
    ) -> None:
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self) -> dict:
        config = super().get_config()
        del config["beta"]
        return config


# ---------------------------------------------------------------------------- correlation
def _moments(y_true: Any, y_pred: Any, axis: int) -> tuple[torch.Tensor, ...]:
    """Means, variances and covariance of `y_true` and `y_pred` along `axis`."""
    y_pred = _tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.float32)
    y_true = _tensor(y_true, y_pred.dtype, y_pred.device)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    mean_true = y_true.mean(dim=axis, keepdim=True)
    mean_pred = y_pred.mean(dim=axis, keepdim=True)
    a, b = y_true - mean_true, y_pred - mean_pred
    return (
        mean_true.squeeze(axis),
        mean_pred.squeeze(axis),
        torch.mean(a * a, dim=axis),
        torch.mean(b * b, dim=axis),
        torch.mean(a * b, dim=axis),
    )


def pearson_correlation(y_true: Any, y_pred: Any, axis: int = -1) -> torch.Tensor:
    """Pearson's correlation coefficient of `y_true` and `y_pred` along `axis`.

    A constant input has no defined correlation and gives `nan`, as in Keras.

    Examples:

    >>> import torch
    >>> y_true, y_pred = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[2.0, 4.0, 7.0]])
    >>> round(float(pearson_correlation(y_true, y_pred)), 4)
    0.9934
    """
    _, _, var_true, var_pred, cov = _moments(y_true, y_pred, axis)
    return cov / (torch.sqrt(var_true) * torch.sqrt(var_pred))


def concordance_correlation(y_true: Any, y_pred: Any, axis: int = -1) -> torch.Tensor:
    """Lin's concordance correlation coefficient along `axis`.

    `2 * cov / (var_true + var_pred + (mean_true - mean_pred) ** 2)`, and 0
    where that denominator is 0 (as in Keras).

    Examples:

    >>> import torch
    >>> y_true, y_pred = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[2.0, 3.0, 4.0]])
    >>> round(float(concordance_correlation(y_true, y_pred)), 4)
    0.5714
    """
    mean_true, mean_pred, var_true, var_pred, cov = _moments(y_true, y_pred, axis)
    return _divide_no_nan(2.0 * cov, var_true + var_pred + torch.square(mean_true - mean_pred))


class R2Score(Metric):
    """The coefficient of determination, `1 - SS_res / SS_tot`, per output column.

    Inputs are `(batch_size, output_dim)`. Sums are accumulated over every
    batch seen, so the result is that of all samples at once. As in Keras, a
    column whose labels are constant scores 0 (or `nan` if it is also
    predicted exactly).

    Args:
        class_aggregation: How the per-column scores are combined:
            `"uniform_average"` (default), `"variance_weighted_average"`
            (weighted by each column's label variance) or `None` (one score per
            column).
        num_regressors: Number of independent variables of the model; when
            positive, the adjusted R2 is returned (`n` counts every label
            value, as in Keras). Falls back to plain R2 with a warning where
            the adjustment is undefined.
        name: Name of the metric.
        dtype: Dtype of the state.

    Examples:

    >>> m = R2Score()
    >>> m.update_state([[1.0], [2.0], [3.0]], [[1.0], [2.0], [4.0]])
    >>> float(m.result())
    0.5
    """

    num_samples: torch.Tensor
    squared_sum: torch.Tensor
    sum: torch.Tensor
    residual: torch.Tensor
    count: torch.Tensor

    _AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")

    def __init__(
        self,
        class_aggregation: str | None = "uniform_average",
        num_regressors: int = 0,
        name: str = "r2_score",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        if class_aggregation not in self._AGGREGATIONS:
            raise ValueError(
                "R2Score: invalid value for argument `class_aggregation`. Expected one of "
                f"{self._AGGREGATIONS}. Received: class_aggregation={class_aggregation!r}"
            )
        if isinstance(num_regressors, bool) or not isinstance(num_regressors, int):
            raise TypeError(
                "R2Score: argument `num_regressors` must be an int. "
                f"Received: num_regressors={num_regressors!r}"
            )
        if num_regressors < 0:
            raise ValueError(
                "R2Score: invalid value for argument `num_regressors`. Expected a value "
                f">= 0. Received: num_regressors={num_regressors}"
            )
        self.class_aggregation = class_aggregation
        self.num_regressors = num_regressors
        self.add_variable("num_samples")
        self._outputs: int | None = None

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        dtype = backend.torch_dtype(self.dtype)
        y_pred = _tensor(y_pred, dtype)
        y_true = _tensor(y_true, dtype, y_pred.device)
        if y_pred.dim() != 2 or y_true.dim() != 2:
            raise ValueError(
                "R2Score expects 2D inputs with shape (batch_size, output_dim). Received "
                f"input shapes: y_pred.shape={tuple(y_pred.shape)} and "
                f"y_true.shape={tuple(y_true.shape)}."
            )
        outputs = y_true.shape[-1]
        if self._outputs is None:
            for var in ("squared_sum", "sum", "residual", "count"):
                self.add_variable(var, (outputs,))
            self._outputs = outputs
        elif outputs != self._outputs:
            raise ValueError(
                f"R2Score: `y_true` has {outputs} columns, but the metric was first "
                f"updated with {self._outputs}. Received: y_true.shape={tuple(y_true.shape)}"
            )
        self.to_device(y_pred.device)
        sample_weight = _mask_weights(sample_weight, y_pred, dtype)
        if sample_weight is None:
            weights = torch.ones_like(y_true)
        else:
            weights = _tensor(sample_weight, dtype, y_pred.device)
            if weights.dim() == 1:
                weights = weights.unsqueeze(-1)
            weights = torch.broadcast_to(weights, y_true.shape)
        weighted = weights * y_true
        self.sum.add_(weighted.sum(0))
        self.squared_sum.add_((weighted * y_true).sum(0))
        self.residual.add_((weights * torch.square(y_true - y_pred)).sum(0))
        self.count.add_(weights.sum(0))
        self.num_samples.add_(y_true.numel())

    def result(self) -> torch.Tensor:
        if self._outputs is None:
            return torch.tensor(float("nan"), dtype=backend.torch_dtype(self.dtype))
        total = self.squared_sum - self.sum * (self.sum / self.count)
        scores = 1.0 - self.residual / total
        scores = torch.where(torch.isinf(scores), torch.zeros_like(scores), scores)
        if self.class_aggregation == "uniform_average":
            scores = scores.mean()
        elif self.class_aggregation == "variance_weighted_average":
            scores = (scores * total).sum() / total.sum()
        if self.num_regressors:
            n, p = float(self.num_samples), self.num_regressors
            if p > n - 1:
                warnings.warn(
                    "R2Score: more independent predictors than datapoints in the adjusted "
                    "R2 score; returning the standard R2 score.",
                    stacklevel=2,
                )
            elif p == n - 1:
                warnings.warn(
                    "R2Score: division by zero in the adjusted R2 score; returning the "
                    "standard R2 score.",
                    stacklevel=2,
                )
            else:
                scores = 1.0 - (1.0 - scores) * (n - 1.0) / (n - p - 1.0)
        return scores

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "class_aggregation": self.class_aggregation,
            "num_regressors": self.num_regressors,
        }


PearsonCorrelation = _metric_class(
    "PearsonCorrelation", pearson_correlation, "pearson_correlation", {"axis": -1}
)
ConcordanceCorrelation = _metric_class(
    "ConcordanceCorrelation", concordance_correlation, "concordance_correlation", {"axis": -1}
)
PearsonCorrelation.__doc__ = """The mean over samples of `pearson_correlation` along `axis`.

    Args:
        name: Name of the metric.
        dtype: Dtype of the state.
        axis: The axis each correlation is computed along (`-1`: within each sample).

    Examples:

    >>> m = PearsonCorrelation()
    >>> m.update_state([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    >>> float(m.result())
    0.0
    """
ConcordanceCorrelation.__doc__ = """The mean over samples of `concordance_correlation`.

    Args:
        name: Name of the metric.
        dtype: Dtype of the state.
        axis: The axis each coefficient is computed along (`-1`: within each sample).

    Examples:

    >>> m = ConcordanceCorrelation()
    >>> m.update_state([[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]])
    >>> float(m.result())
    1.0
    """


# ---------------------------------------------------------------------------- IoU
class _IoUBase(Metric):
    """Accumulates a `(num_classes, num_classes)` confusion matrix (rows: labels).

    Entries whose label equals `ignore_class`, or whose label or prediction
    falls outside `[0, num_classes)`, are left out. The state's dtype is
    `"int32"` by default, as in Keras, so fractional sample weights are
    truncated (with a warning); pass `dtype="float32"` to keep them.
    """

    total_confusion_matrix: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        target_class_ids: Any,
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_true: bool = True,
        sparse_y_pred: bool = True,
        axis: int = -1,
    ) -> None:
        super().__init__(name=name, dtype="int32" if dtype is None else dtype)
        kind = type(self).__name__
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f"{kind}: `num_classes` must be a positive int. Received: "
                f"num_classes={num_classes!r}"
            )
        target_class_ids = list(target_class_ids)
        if not target_class_ids:
            raise ValueError(f"{kind}: `target_class_ids` must name at least one class.")
        for class_id in target_class_ids:
            if not 0 <= class_id < num_classes:
                raise ValueError(
                    f"{kind}: target class id {class_id} is out of range, which is "
                    f"[0, {num_classes})."
                )
        self.num_classes = num_classes
        self.target_class_ids = target_class_ids
        self.ignore_class = ignore_class
        self.sparse_y_true = sparse_y_true
        self.sparse_y_pred = sparse_y_pred
        self.axis = axis
        self.add_variable("total_confusion_matrix", (num_classes, num_classes))

    def _labels(self, y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
        y_pred = _tensor(y_pred)
        y_true = _tensor(y_true, None, y_pred.device)
        if not self.sparse_y_true:
            y_true = torch.argmax(y_true, dim=self.axis)
        if not self.sparse_y_pred:
            y_pred = torch.argmax(y_pred, dim=self.axis)
        return y_true, y_pred

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        state = self.total_confusion_matrix
        if sample_weight is not None:
            sample_weight = _tensor(sample_weight)
            if sample_weight.is_floating_point() and not state.is_floating_point():
                warnings.warn(
                    f"{type(self).__name__}: `sample_weight` is a float tensor but the "
                    f"state's dtype is {self.dtype}; weights are truncated to integers. "
                    'Pass integer weights, or dtype="float32" to the metric.',
                    stacklevel=2,
                )
            sample_weight = sample_weight.to(state.dtype)
        sample_weight = _mask_weights(sample_weight, y_pred, state.dtype)
        y_true, y_pred = self._labels(y_true, y_pred)
        self.to_device(y_pred.device)
        y_true, y_pred = y_true.to(torch.int64), y_pred.to(torch.int64)
        if y_true.shape != y_pred.shape:
            y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
            y_true, y_pred = torch.broadcast_tensors(y_true, y_pred)
        if sample_weight is None:
            weights = torch.ones(y_true.shape, dtype=torch.float64, device=y_true.device)
        else:
            weights = _tensor(sample_weight, torch.float64, y_true.device)
            while weights.dim() < y_true.dim():
                weights = weights.unsqueeze(-1)
            weights = torch.broadcast_to(weights, y_true.shape)
        y_true, y_pred, weights = y_true.reshape(-1), y_pred.reshape(-1), weights.reshape(-1)
        n = self.num_classes
        keep = (y_true >= 0) & (y_true < n) & (y_pred >= 0) & (y_pred < n)
        if self.ignore_class is not None:
            keep = keep & (y_true != self.ignore_class)
        index = torch.where(keep, y_true * n + y_pred, torch.zeros_like(y_true))
        counts = torch.bincount(index, weights=weights * keep, minlength=n * n)
        self.total_confusion_matrix.add_(counts.reshape(n, n).to(state.dtype))

    def result(self) -> torch.Tensor:
        matrix = self.total_confusion_matrix.to(torch.float32)
        hits = torch.diagonal(matrix)
        union = matrix.sum(0) + matrix.sum(1) - hits
        ids = torch.tensor(self.target_class_ids, device=matrix.device)
        hits, union = hits[ids], union[ids]
        valid = (union != 0).to(torch.float32).sum()
        return _divide_no_nan(_divide_no_nan(hits, union).sum(), valid)

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "num_classes": self.num_classes,
            "target_class_ids": self.target_class_ids,
            "ignore_class": self.ignore_class,
            "sparse_y_true": self.sparse_y_true,
            "sparse_y_pred": self.sparse_y_pred,
            "axis": self.axis,
        }


class IoU(_IoUBase):
    """Intersection-over-union, `TP / (TP + FP + FN)`, averaged over chosen classes.

    Classes that never occur (in labels or predictions) are left out of the
    average.

    Args:
        num_classes: Number of classes (labels are `0 .. num_classes - 1`).
        target_class_ids: The classes whose IoU is averaged.
        name: Name of the metric.
        dtype: Dtype of the confusion matrix (`"int32"` by default).
        ignore_class: A label value whose entries are left out.
        sparse_y_true: Whether labels are class indices (else one-hot along `axis`).
        sparse_y_pred: Whether predictions are class indices (else scores along `axis`).
        axis: The class axis of non-sparse inputs.

    Examples:

    >>> m = IoU(num_classes=2, target_class_ids=[0])
    >>> m.update_state([0, 0, 1, 1], [0, 1, 0, 1])
    >>> round(float(m.result()), 4)
    0.3333
    """


class MeanIoU(_IoUBase):
    """Intersection-over-union averaged over all `num_classes` classes.

    Args:
        num_classes: Number of classes.
        name: Name of the metric.
        dtype: Dtype of the confusion matrix (`"int32"` by default).
        ignore_class: A label value whose entries are left out.
        sparse_y_true: Whether labels are class indices (else one-hot along `axis`).
        sparse_y_pred: Whether predictions are class indices (else scores along `axis`).
        axis: The class axis of non-sparse inputs.

    Examples:

    >>> m = MeanIoU(num_classes=2)
    >>> m.update_state([0, 0, 1, 1], [0, 1, 0, 1])
    >>> round(float(m.result()), 4)
    0.3333
    """

    def __init__(
        self,
        num_classes: int,
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_true: bool = True,
        sparse_y_pred: bool = True,
        axis: int = -1,
    ) -> None:
        super().__init__(
            num_classes,
            list(range(num_classes)) if isinstance(num_classes, int) else [],
            name=name,
            dtype=dtype,
            ignore_class=ignore_class,
            sparse_y_true=sparse_y_true,
            sparse_y_pred=sparse_y_pred,
            axis=axis,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        del config["target_class_ids"]
        return config


class BinaryIoU(_IoUBase):
    """IoU of binary labels, with predictions `>= threshold` counted as class 1.

    Args:
        target_class_ids: Classes averaged: `[0]`, `[1]` or `[0, 1]` (default).
        threshold: Predictions at or above it are class 1.
        name: Name of the metric.
        dtype: Dtype of the confusion matrix (`"int32"` by default).

    Examples:

    >>> m = BinaryIoU(target_class_ids=[1])
    >>> m.update_state([0, 1, 1, 0], [0.2, 0.5, 0.9, 0.7])
    >>> round(float(m.result()), 4)
    0.6667
    """

    def __init__(
        self,
        target_class_ids: Any = (0, 1),
        threshold: float = 0.5,
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(2, target_class_ids, name=name, dtype=dtype)
        self.threshold = threshold

    def _labels(self, y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
        y_pred = _tensor(y_pred)
        y_true = _tensor(y_true, None, y_pred.device)
        return y_true, (y_pred >= self.threshold).to(torch.int64)

    def get_config(self) -> dict:
        return {
            "target_class_ids": self.target_class_ids,
            "threshold": self.threshold,
            "name": self.name,
            "dtype": self.dtype,
        }


class OneHotIoU(_IoUBase):
    """`IoU` for one-hot labels (and, by default, per-class scores as predictions).

    Args:
        num_classes: Number of classes.
        target_class_ids: The classes whose IoU is averaged.
        name: Name of the metric.
        dtype: Dtype of the confusion matrix (`"int32"` by default).
        ignore_class: A class index whose entries are left out.
        sparse_y_pred: Whether predictions are class indices (else scores along `axis`).
        axis: The class axis.

    Examples:

    >>> m = OneHotIoU(num_classes=2, target_class_ids=[1])
    >>> m.update_state([[1, 0], [0, 1], [0, 1]], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    >>> round(float(m.result()), 4)
    0.5
    """

    def __init__(
        self,
        num_classes: int,
        target_class_ids: Any,
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_pred: bool = False,
        axis: int = -1,
    ) -> None:
        super().__init__(
            num_classes,
            target_class_ids,
            name=name,
            dtype=dtype,
            ignore_class=ignore_class,
            sparse_y_true=False,
            sparse_y_pred=sparse_y_pred,
            axis=axis,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        del config["sparse_y_true"]
        return config


class OneHotMeanIoU(_IoUBase):
    """`MeanIoU` for one-hot labels (and, by default, per-class scores as predictions).

    Args:
        num_classes: Number of classes.
        name: Name of the metric.
        dtype: Dtype of the confusion matrix (`"int32"` by default).
        ignore_class: A class index whose entries are left out.
        sparse_y_pred: Whether predictions are class indices (else scores along `axis`).
        axis: The class axis.

    Examples:

    >>> m = OneHotMeanIoU(num_classes=2)
    >>> m.update_state([[1, 0], [0, 1], [0, 1]], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    >>> round(float(m.result()), 4)
    0.5
    """

    def __init__(
        self,
        num_classes: int,
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_pred: bool = False,
        axis: int = -1,
    ) -> None:
        super().__init__(
            num_classes,
            list(range(num_classes)) if isinstance(num_classes, int) else [],
            name=name,
            dtype=dtype,
            ignore_class=ignore_class,
            sparse_y_true=False,
            sparse_y_pred=sparse_y_pred,
            axis=axis,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        del config["target_class_ids"], config["sparse_y_true"]
        return config


# ---------------------------------------------------------------------------- X at Y
class _AtConstraint(_ConfusionMetric):
    """The best value of one rate among the thresholds where another reaches a target.

    Subclasses name the target argument (`_target`) and map the four counts to
    `(constrained, reported)` rates in `_rates`.
    """

    _target = ""

    def __init__(
        self,
        value: float,
        num_thresholds: int = 200,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        kind = type(self).__name__
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(
                f"{kind}: argument `{self._target}` must be in the range [0, 1]. "
                f"Received: {self._target}={value!r}"
            )
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int):
            raise TypeError(
                f"{kind}: argument `num_thresholds` must be an int. "
                f"Received: num_thresholds={num_thresholds!r}"
            )
        if num_thresholds <= 0:
            raise ValueError(
                f"{kind}: argument `num_thresholds` must be an integer > 0. "
                f"Received: num_thresholds={num_thresholds}"
            )
        thresholds = [0.5] if num_thresholds == 1 else _default_thresholds(num_thresholds)
        super().__init__(thresholds, name or backend.to_snake_case(kind), dtype, class_id=class_id)
        self.value = value
        self.num_thresholds = num_thresholds

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        self._update_confusion(y_true, y_pred, sample_weight)

    def _rates(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def result(self) -> torch.Tensor:
        constrained, reported = self._rates()
        feasible = constrained >= self.value
        return torch.amax(torch.where(feasible, reported, torch.zeros_like(reported)))

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "class_id": self.class_id,
            "num_thresholds": self.num_thresholds,
            self._target: self.value,
        }


def _recall(m: _ConfusionMetric) -> torch.Tensor:
    return _divide_no_nan(m.true_positives, m.true_positives + m.false_negatives)


def _precision(m: _ConfusionMetric) -> torch.Tensor:
    return _divide_no_nan(m.true_positives, m.true_positives + m.false_positives)


def _specificity(m: _ConfusionMetric) -> torch.Tensor:
    return _divide_no_nan(m.true_negatives, m.true_negatives + m.false_positives)


class SensitivityAtSpecificity(_AtConstraint):
    """The best sensitivity (recall) among thresholds whose specificity is `>= specificity`.

    Args:
        specificity: The target specificity, in [0, 1].
        num_thresholds: Number of thresholds spread evenly over [0, 1]
            (1 means the single threshold 0.5).
        class_id: Only this class (last-axis index) is evaluated.
        name: Name of the metric.
        dtype: Dtype of the state.

    Examples:

    >>> m = SensitivityAtSpecificity(0.5)
    >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
    >>> float(m.result())
    0.5
    """

    _target = "specificity"

    def __init__(self, specificity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(specificity, num_thresholds, class_id, name, dtype)

    def _rates(self) -> tuple[torch.Tensor, torch.Tensor]:
        return _specificity(self), _recall(self)


class SpecificityAtSensitivity(_AtConstraint):
    """The best specificity among thresholds whose sensitivity is `>= sensitivity`.

    Args:
        sensitivity: The target sensitivity (recall), in [0, 1].
        num_thresholds: Number of thresholds spread evenly over [0, 1]
            (1 means the single threshold 0.5).
        class_id: Only this class (last-axis index) is evaluated.
        name: Name of the metric.
        dtype: Dtype of the state.

    Examples:

    >>> m = SpecificityAtSensitivity(0.5)
    >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
    >>> round(float(m.result()), 4)
    0.6667
    """

    _target = "sensitivity"

    def __init__(self, sensitivity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)

    def _rates(self) -> tuple[torch.Tensor, torch.Tensor]:
        return _recall(self), _specificity(self)


class PrecisionAtRecall(_AtConstraint):
    """The best precision among thresholds whose recall is `>= recall`.

    Args:
        recall: The target recall, in [0, 1].
        num_thresholds: Number of thresholds spread evenly over [0, 1]
            (1 means the single threshold 0.5).
        class_id: Only this class (last-axis index) is evaluated.
        name: Name of the metric.
        dtype: Dtype of the state.

    Examples:

    >>> m = PrecisionAtRecall(0.5)
    >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
    >>> float(m.result())
    0.5
    """

    _target = "recall"

    def __init__(self, recall, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(recall, num_thresholds, class_id, name, dtype)

    def _rates(self) -> tuple[torch.Tensor, torch.Tensor]:
        return _recall(self), _precision(self)


class RecallAtPrecision(_AtConstraint):
    """The best recall among thresholds whose precision is `>= precision`.

    Args:
        precision: The target precision, in [0, 1].
        num_thresholds: Number of thresholds spread evenly over [0, 1]
            (1 means the single threshold 0.5).
        class_id: Only this class (last-axis index) is evaluated.
        name: Name of the metric.
        dtype: Dtype of the state.

    Examples:

    >>> m = RecallAtPrecision(0.8)
    >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.9])
    >>> float(m.result())
    0.5
    """

    _target = "precision"

    def __init__(self, precision, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(precision, num_thresholds, class_id, name, dtype)

    def _rates(self) -> tuple[torch.Tensor, torch.Tensor]:
        return _precision(self), _recall(self)


# ---------------------------------------------------------------------------- registry
_FUNCTIONS = (
    accuracy,
    binary_accuracy,
    categorical_accuracy,
    sparse_categorical_accuracy,
    top_k_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    mean_squared_error,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_logarithmic_error,
    binary_crossentropy,
    categorical_crossentropy,
    sparse_categorical_crossentropy,
    kl_divergence,
    poisson,
    hinge,
    squared_hinge,
    categorical_hinge,
    log_cosh,
    pearson_correlation,
    concordance_correlation,
)
_CLASSES = (
    Metric,
    Mean,
    Sum,
    MeanMetricWrapper,
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    TopKCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    MeanAbsoluteError,
    MeanSquaredError,
    RootMeanSquaredError,
    MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError,
    LogCoshError,
    KLDivergence,
    Poisson,
    CosineSimilarity,
    Hinge,
    SquaredHinge,
    CategoricalHinge,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    SparseCategoricalCrossentropy,
    AUC,
    Precision,
    Recall,
    TruePositives,
    FalsePositives,
    TrueNegatives,
    FalseNegatives,
    FBetaScore,
    F1Score,
    R2Score,
    PearsonCorrelation,
    ConcordanceCorrelation,
    IoU,
    MeanIoU,
    BinaryIoU,
    OneHotIoU,
    OneHotMeanIoU,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
    PrecisionAtRecall,
    RecallAtPrecision,
)
_ALIASES = {
    "bce": binary_crossentropy,
    "BCE": binary_crossentropy,
    "mse": mean_squared_error,
    "MSE": mean_squared_error,
    "mae": mean_absolute_error,
    "MAE": mean_absolute_error,
    "mape": mean_absolute_percentage_error,
    "MAPE": mean_absolute_percentage_error,
    "msle": mean_squared_logarithmic_error,
    "MSLE": mean_squared_logarithmic_error,
    "kld": kl_divergence,
    "KLD": kl_divergence,
    "logcosh": log_cosh,
}
# Keras also resolves a class's snake_case name (`"auc"`, `"precision"`), where no
# function of that name exists.
_SNAKE_NAMES = {
    backend.to_snake_case(cls.__name__): cls
    for cls in _CLASSES
    if cls not in (Metric, MeanMetricWrapper)
}
_REGISTRY = KerasRegistry(
    "metric",
    "keras.metrics",
    {
        **_SNAKE_NAMES,
        **{fn.__name__: fn for fn in _FUNCTIONS},
        **{cls.__name__: cls for cls in _CLASSES},
        **_ALIASES,
    },
)


def get(identifier: Any) -> Any:
    """A metric function or instance from a name, config, class or callable."""
    return _REGISTRY.get(identifier)


def serialize(metric: Any) -> Any:
    """The Keras 3 serialized form of a metric (a name string stays a string)."""
    if isinstance(metric, str):
        return metric
    return _REGISTRY.serialize(metric)


def deserialize(config: Any, custom_objects: dict | None = None) -> Any:
    """The metric a serialized form (or name) describes."""
    return _REGISTRY.deserialize(config, custom_objects)


def resolve(identifier: Any, y_true: Any, y_pred: Any) -> Metric:
    """A `Metric` for a compile-time identifier; `"accuracy"`/`"acc"` pick the variant.

    Like Keras: a one-unit output gives `BinaryAccuracy`, integer labels (lower
    rank, or a last axis of 1 against several classes) `SparseCategoricalAccuracy`,
    else `CategoricalAccuracy`. Functions are wrapped in `MeanMetricWrapper`
    named after the identifier.
    """
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        t_rank, p_rank = len(y_true.shape), len(y_pred.shape)
        t_last = y_true.shape[-1] if t_rank else None
        p_last = y_pred.shape[-1] if p_rank else None
        if p_last == 1:
            return BinaryAccuracy(name=identifier)
        if t_rank < p_rank or (t_last == 1 and (p_last or 0) > 1):
            return SparseCategoricalAccuracy(name=identifier)
        return CategoricalAccuracy(name=identifier)
    obj = get(identifier)
    if isinstance(obj, Metric):
        metric = obj
    elif isinstance(obj, losses_module.Loss):
        metric = MeanMetricWrapper(obj.call, name=obj.name)
    else:
        metric = MeanMetricWrapper(obj, name=getattr(obj, "__name__", "metric"))
    if isinstance(identifier, str):
        metric.name = identifier
    return metric
