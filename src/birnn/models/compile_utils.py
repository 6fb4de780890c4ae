"""What `compile()` turns `loss`, `loss_weights` and `metrics` into, per model output.

Structures follow Keras: one loss for every output, or a list (in output
order) or dict (by output name); metrics as a list for a single output, or a
list of lists / dict for several. Losses and metrics are resolved lazily, on the
first batch, when the shapes of `y_true`/`y_pred` pick the accuracy or
crossentropy variant (`"accuracy"`, `"crossentropy"`) like Keras.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch

from birnn import losses as losses_module
from birnn import metrics as metrics_module
from birnn import tree


def _is_config(value: Any) -> bool:
    return isinstance(value, dict) and "class_name" in value


def _is_single_loss(loss: Any) -> bool:
    return loss is None or isinstance(loss, str) or callable(loss) or _is_config(loss)


def _flat_spec(value: Any) -> list:
    """The leaves of a nested compile argument (a serialized object is one leaf)."""
    return tree.flatten(value, is_leaf=_is_config)


def resolve_loss(identifier: Any, y_true: Any, y_pred: Any) -> losses_module.Loss | None:
    """A `Loss` object for a compile-time identifier (`"crossentropy"` picks the variant)."""
    if identifier is None:
        return None
    if losses_module.is_torch_loss(identifier):
        return losses_module.TorchLoss(identifier)
    if isinstance(identifier, str) and identifier.lower() in ("crossentropy", "ce"):
        fn: Callable[..., torch.Tensor]
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
    for item in _flat_spec(loss) if loss is not None else []:
        if (isinstance(item, str) and item.lower() not in ("crossentropy", "ce")) or _is_config(
            item
        ):
            try:
                losses_module.get(item)
            except ValueError as e:
                raise ValueError(f"compile(): unknown loss {item!r}. {e}") from None
        elif item is not None and not isinstance(item, str) and not callable(item):
            raise ValueError(
                f"compile(): a loss must be a name, a function or a `Loss`. Received: {item!r}"
            )
    for item in _flat_spec(metrics) if metrics is not None else []:
        if isinstance(item, str) and item.lower() not in ("accuracy", "acc"):
            try:
                metrics_module.get(item)
            except ValueError as e:
                raise ValueError(f"compile(): unknown metric {item!r}. {e}") from None


def _per_output(
    spec: Any, names: list[str], what: str, broadcast: bool, groups: dict | None = None
) -> list:
    """Aligns a compile argument with the flat outputs.

    A dict is keyed by output name (or, for a dict of nested outputs, by its top-level
    key: one value for the whole group, or a structure of values); a list has one
    entry per output (nested like the outputs); anything else, with `broadcast`,
    applies to every output.
    """
    n = len(names)
    if isinstance(spec, dict) and not _is_config(spec):
        aligned: dict[str, Any] = {}
        for key, value in spec.items():
            if key in names:
                aligned[key] = value
            elif groups and key in groups:
                members = groups[key]
                nested = isinstance(value, (list, tuple, dict)) and not _is_config(value)
                leaves = _flat_spec(value) if nested else None
                if leaves is not None and len(leaves) != len(members):
                    raise ValueError(
                        f"compile(): `{what}['{key}']` has {len(leaves)} entries but output "
                        f"'{key}' holds {len(members)} tensors {members}."
                    )
                aligned.update(zip(members, leaves or [value] * len(members)))
            else:
                raise ValueError(
                    f"compile(): `{what}` has key {key!r} that names no model output. "
                    f"Outputs: {names}"
                )
        return [aligned.get(name) for name in names]
    if isinstance(spec, (list, tuple)) and not broadcast:
        flat = _flat_spec(spec)
        if len(flat) != n:
            raise ValueError(
                f"compile(): `{what}` has {len(flat)} entries but the model has {n} "
                f"output(s) {names}."
            )
        return flat
    return [spec] * n


class CompiledLoss:
    """The weighted sum of one loss per output, plus per-output running means.

    Like Keras, the per-output means (`<output>_loss`) exist only when two or more
    outputs have a loss.
    """

    def __init__(
        self,
        loss: Any,
        loss_weights: Any,
        output_names: list[str],
        groups: dict | None = None,
    ) -> None:
        self.output_names = output_names
        broadcast = _is_single_loss(loss)
        self._identifiers = _per_output(loss, output_names, "loss", broadcast, groups)
        if loss_weights is None or isinstance(loss_weights, (int, float)):
            weights = [1.0 if loss_weights is None else float(loss_weights)] * len(output_names)
        else:
            weights = _per_output(loss_weights, output_names, "loss_weights", False, groups)
            weights = [1.0 if w is None else float(w) for w in weights]
        self.weights = weights
        self.losses: list[losses_module.Loss | None] | None = None
        with_loss = [i for i, ident in enumerate(self._identifiers) if ident is not None]
        self._trackers: list[metrics_module.Mean | None] = [None] * len(output_names)
        # Under a distribution, the share of the global batch each update stands for.
        self.tracker_weight: float | None = None
        if len(with_loss) > 1:
            for i in with_loss:
                self._trackers[i] = metrics_module.Mean(name=f"{output_names[i]}_loss")

    @property
    def trackers(self) -> list[metrics_module.Mean]:
        """The per-output loss means, in output order."""
        return [t for t in self._trackers if t is not None]

    def build(self, y_true: list, y_pred: list) -> None:
        self.losses = [
            resolve_loss(ident, yt, yp) for ident, yt, yp in zip(self._identifiers, y_true, y_pred)
        ]

    def __call__(self, y_true: list, y_pred: list, sample_weight: list) -> torch.Tensor | None:
        if self.losses is None:
            self.build(y_true, y_pred)
        assert self.losses is not None  # made by build
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
            tracker = self._trackers[i]
            if tracker is not None:
                with torch.no_grad():
                    tracker.update_state(value.detach(), sample_weight=self.tracker_weight)
            weighted = value * self.weights[i] if self.weights[i] != 1.0 else value
            total = weighted if total is None else total + weighted
        return total


class CompiledMetrics:
    """The metrics of each output (and the weighted ones), resolved on the first batch."""

    def __init__(
        self,
        metrics: Any,
        weighted_metrics: Any,
        output_names: list[str],
        groups: dict | None = None,
    ) -> None:
        self.output_names = output_names
        self._groups = groups
        self._specs = [
            self._align(metrics, "metrics"),
            self._align(weighted_metrics, "weighted_metrics"),
        ]
        self.metrics: list[tuple[int, bool, metrics_module.Metric]] | None = None

    def _align(self, spec: Any, what: str) -> list[list]:
        """One list of metric identifiers per output, following Keras 3's rules.

        One output: a metric or a list of metrics. Several: a dict by output name,
        or a list with one entry (a metric or a list of metrics) per output; a
        single metric that is not in a list applies to every output.
        """
        names = self.output_names
        n = len(names)
        if spec is None:
            return [[] for _ in range(n)]
        if isinstance(spec, dict):
            aligned = []
            for key in spec:
                if key not in names and not (self._groups and key in self._groups):
                    raise ValueError(
                        f"compile(): `{what}` has key {key!r} that names no model output. "
                        f"Outputs: {names}"
                    )
            for name in names:
                if name in spec:
                    aligned.append(spec[name])
                else:
                    group = next(
                        (k for k, members in (self._groups or {}).items() if name in members),
                        None,
                    )
                    aligned.append(spec.get(group) if group is not None else None)
        elif not isinstance(spec, (list, tuple)):
            aligned = [spec] * n
        elif n == 1:
            aligned = [spec]
        else:
            if len(spec) != n:
                raise ValueError(
                    f"compile(): for a model with {n} outputs {names}, `{what}` must be a "
                    f"dict keyed by output name or a list with one entry per output (a "
                    f"metric or a list of metrics). Received a list of {len(spec)}: {spec!r}"
                )
            aligned = list(spec)
        return [
            [] if s is None else list(s) if isinstance(s, (list, tuple)) else [s] for s in aligned
        ]

    def build(self, y_true: list, y_pred: list) -> None:
        self.metrics = []
        prefix = len(self.output_names) > 1
        used: set[int] = set()
        plain_names: dict[int, set[str]] = {}
        for weighted, spec in zip((False, True), self._specs):
            for i, identifiers in enumerate(spec):
                for ident in identifiers:
                    if y_true[i] is None:
                        continue
                    metric = metrics_module.resolve(ident, y_true[i], y_pred[i])
                    if id(metric) in used:  # one Metric object given for several outputs
                        metric = copy.deepcopy(metric)
                    used.add(id(metric))
                    if weighted and metric.name in plain_names.get(i, ()):
                        metric.name = f"weighted_{metric.name}"  # Keras's rule on a clash
                    elif not weighted:
                        plain_names.setdefault(i, set()).add(metric.name)
                    if prefix:
                        metric.name = f"{self.output_names[i]}_{metric.name}"
                    self.metrics.append((i, weighted, metric))

    @torch.no_grad()
    def update(self, y_true: list, y_pred: list, sample_weight: list) -> None:
        if self.metrics is None:
            self.build(y_true, y_pred)
        assert self.metrics is not None  # made by build
        for i, weighted, metric in self.metrics:
            metric.update_state(y_true[i], y_pred[i], sample_weight[i] if weighted else None)
