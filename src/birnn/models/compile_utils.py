"""What `compile()` turns `loss`, `loss_weights` and `metrics` into, per model output.

Structures follow Keras: one loss for every output, or a list (in output
order) or dict (by output name); metrics as a list for a single output, or a
list of lists / dict for several. Losses and metrics are resolved lazily, on the
first batch, when the shapes of `y_true`/`y_pred` pick the accuracy or
crossentropy variant (`"accuracy"`, `"crossentropy"`) like Keras.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from birnn import losses as losses_module
from birnn import metrics as metrics_module
from birnn.layers.layer import flatten_structure


def _is_single_loss(loss: Any) -> bool:
    return loss is None or isinstance(loss, str) or callable(loss)


def resolve_loss(identifier: Any, y_true: Any, y_pred: Any) -> losses_module.Loss | None:
    """A `Loss` object for a compile-time identifier (`"crossentropy"` picks the variant)."""
    if identifier is None:
        return None
    if isinstance(identifier, str) and identifier.lower() in ("crossentropy", "ce"):
        if y_pred.shape[-1] == 1:
            fn = losses_module.binary_crossentropy
        elif y_true.dim() < y_pred.dim() or (y_true.shape[-1] == 1 and y_pred.shape[-1] > 1):
            fn = losses_module.sparse_categorical_crossentropy
        else:
            fn = losses_module.categorical_crossentropy
        return losses_module.LossFunctionWrapper(fn, name=identifier)
    loss = losses_module.get(identifier)
    if isinstance(loss, losses_module.Loss):
        return loss
    name = identifier if isinstance(identifier, str) else getattr(loss, "__name__", "loss")
    return losses_module.LossFunctionWrapper(loss, name=name)


def check_identifiers(loss: Any, metrics: Any) -> None:
    """Raises at `compile()` time for loss/metric names no registry knows."""
    for item in flatten_structure(loss) if loss is not None else []:
        if isinstance(item, str) and item.lower() not in ("crossentropy", "ce"):
            try:
                losses_module.get(item)
            except ValueError as e:
                raise ValueError(f"compile(): unknown loss {item!r}. {e}") from None
        elif item is not None and not isinstance(item, str) and not callable(item):
            raise ValueError(
                f"compile(): a loss must be a name, a function or a `Loss`. Received: {item!r}"
            )
    for item in flatten_structure(metrics) if metrics is not None else []:
        if isinstance(item, str) and item.lower() not in ("accuracy", "acc"):
            try:
                metrics_module.get(item)
            except ValueError as e:
                raise ValueError(f"compile(): unknown metric {item!r}. {e}") from None


def _per_output(spec: Any, names: list[str], what: str, broadcast: bool) -> list:
    """Aligns a compile argument with the flat outputs."""
    n = len(names)
    if isinstance(spec, dict):
        unknown = set(spec) - set(names)
        if unknown:
            raise ValueError(
                f"compile(): `{what}` has keys {sorted(unknown)} that name no model output. "
                f"Outputs: {names}"
            )
        return [spec.get(name) for name in names]
    if isinstance(spec, (list, tuple)) and not broadcast:
        if len(spec) != n:
            raise ValueError(
                f"compile(): `{what}` has {len(spec)} entries but the model has {n} "
                f"output(s) {names}."
            )
        return list(spec)
    return [spec] * n


class CompiledLoss:
    """The weighted sum of one loss per output, plus per-output running means."""

    def __init__(self, loss: Any, loss_weights: Any, output_names: list[str]) -> None:
        self.output_names = output_names
        broadcast = _is_single_loss(loss)
        self._identifiers = _per_output(loss, output_names, "loss", broadcast)
        if loss_weights is None or isinstance(loss_weights, (int, float)):
            weights = [1.0 if loss_weights is None else float(loss_weights)] * len(output_names)
        else:
            weights = _per_output(loss_weights, output_names, "loss_weights", False)
            weights = [1.0 if w is None else float(w) for w in weights]
        self.weights = weights
        self.losses: list[losses_module.Loss | None] | None = None
        self.trackers = (
            [metrics_module.Mean(name=f"{name}_loss") for name in output_names]
            if len(output_names) > 1
            else []
        )

    def build(self, y_true: list, y_pred: list) -> None:
        self.losses = [
            resolve_loss(ident, yt, yp) for ident, yt, yp in zip(self._identifiers, y_true, y_pred)
        ]

    def __call__(self, y_true: list, y_pred: list, sample_weight: list) -> torch.Tensor | None:
        if self.losses is None:
            self.build(y_true, y_pred)
        total = None
        for i, loss in enumerate(self.losses):
            if loss is None:
                continue
            if y_true[i] is None:
                raise ValueError(
                    f"The model's output '{self.output_names[i]}' has a loss but no target: "
                    "pass `y` for it."
                )
            value = loss(y_true[i], y_pred[i], sample_weight[i])
            if self.trackers:
                with torch.no_grad():
                    self.trackers[i].update_state(value.detach())
            weighted = value * self.weights[i] if self.weights[i] != 1.0 else value
            total = weighted if total is None else total + weighted
        return total


class CompiledMetrics:
    """The metrics of each output (and the weighted ones), resolved on the first batch."""

    def __init__(self, metrics: Any, weighted_metrics: Any, output_names: list[str]) -> None:
        self.output_names = output_names
        self._specs = [
            self._align(metrics, "metrics"),
            self._align(weighted_metrics, "weighted_metrics"),
        ]
        self.metrics: list[tuple[int, bool, metrics_module.Metric]] | None = None

    def _align(self, spec: Any, what: str) -> list[list]:
        n = len(self.output_names)
        if spec is None:
            return [[] for _ in range(n)]
        if isinstance(spec, dict):
            aligned = _per_output(spec, self.output_names, what, False)
        elif (
            isinstance(spec, (list, tuple))
            and n > 1
            and all(isinstance(s, (list, tuple)) or s is None for s in spec)
        ):
            aligned = _per_output(spec, self.output_names, what, False)
        else:
            aligned = [spec] * n
        return [
            [] if s is None else list(s) if isinstance(s, (list, tuple)) else [s] for s in aligned
        ]

    def build(self, y_true: list, y_pred: list) -> None:
        self.metrics = []
        prefix = len(self.output_names) > 1
        used: set[int] = set()
        for weighted, spec in zip((False, True), self._specs):
            for i, identifiers in enumerate(spec):
                for ident in identifiers:
                    if y_true[i] is None:
                        continue
                    metric = metrics_module.resolve(ident, y_true[i], y_pred[i])
                    if id(metric) in used:  # one Metric object given for several outputs
                        metric = copy.deepcopy(metric)
                    used.add(id(metric))
                    if prefix:
                        metric.name = f"{self.output_names[i]}_{metric.name}"
                    self.metrics.append((i, weighted, metric))

    @torch.no_grad()
    def update(self, y_true: list, y_pred: list, sample_weight: list) -> None:
        if self.metrics is None:
            self.build(y_true, y_pred)
        for i, weighted, metric in self.metrics:
            metric.update_state(y_true[i], y_pred[i], sample_weight[i] if weighted else None)
