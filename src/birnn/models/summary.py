"""`Model.summary()`: Keras's table of layers, output shapes and parameter counts."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from birnn.keras_tensor import KerasTensor


def _format_shape(out: Any) -> str:
    if out is None:
        return "?"
    if isinstance(out, KerasTensor):
        return str(out.shape).replace(",)", ")") if len(out.shape) == 1 else str(out.shape)
    if isinstance(out, (list, tuple)):
        return "[" + ", ".join(_format_shape(o) for o in out) + "]"
    if isinstance(out, dict):
        return "{" + ", ".join(f"{k}: {_format_shape(v)}" for k, v in out.items()) + "}"
    return str(out)


def _format_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} GB"


def _count(weights: list) -> tuple[int, int]:
    seen: set[int] = set()
    count = nbytes = 0
    for w in weights:
        if id(w) in seen:
            continue
        seen.add(id(w))
        count += w.numel()
        nbytes += w.numel() * w.element_size()
    return count, nbytes


def _layer_output(model: Any, layer: Any) -> Any:
    nodes = layer.inbound_nodes
    graph = getattr(model, "functional_graph", None)
    keys = graph.node_keys if graph is not None else None
    outs = [n.outputs for n in nodes if keys is None or (n.layer, n.index) in keys]
    if not outs:
        return None
    return outs[0] if len(outs) == 1 else outs[-1]


def _connections(model: Any, layer: Any) -> str:
    graph = getattr(model, "functional_graph", None)
    if graph is None:
        return ""
    parts = []
    for node in layer.inbound_nodes:
        if (node.layer, node.index) not in graph.node_keys:
            continue
        for t in node.dependencies:
            history = t._keras_history
            if history:
                parts.append(f"{history[0].name}[{history[1]}][{history[2]}]")
    return ", ".join(parts) if parts else "-"


def _wrap(text: str, width: int) -> list[str]:
    """Lines of at most `width` characters, broken at spaces; a word longer than the
    column is cut with an ellipsis, as Keras's table does."""
    lines = textwrap.wrap(text, width, break_long_words=False) or [""]
    return [line if len(line) <= width else line[: width - 1] + "…" for line in lines]


def _table(rows: list[list[str]], headers: list[str], widths: list[int], aligns: str) -> list[str]:
    def border(left: str, mid: str, right: str, fill: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def cells(values: list[str], sep: str = "│") -> list[str]:
        wrapped = [_wrap(v, w) for v, w in zip(values, widths)]
        lines = []
        for i in range(max(len(c) for c in wrapped)):
            parts = []
            for col, w, a in zip(wrapped, widths, aligns):
                text = col[i] if i < len(col) else ""
                parts.append(f" {text:>{w}} " if a == "r" else f" {text:<{w}} ")
            lines.append(sep + sep.join(parts) + sep)
        return lines

    out = [border("┏", "┳", "┓", "━"), *cells(headers, "┃"), border("┡", "╇", "┩", "━")]
    for i, row in enumerate(rows):
        out.extend(cells(row))
        out.append(border("├", "┼", "┤", "─") if i < len(rows) - 1 else border("└", "┴", "┘", "─"))
    if not rows:
        out.append(border("└", "┴", "┘", "─"))
    return out


def _optimizer_size(model: Any) -> tuple[int, int]:
    """Scalars and bytes of the optimizer's state, counted as Keras counts them.

    Keras's total includes the optimizer's variables (its iteration count and
    learning rate, then the per-weight slots) once the optimizer is built.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not getattr(model, "compiled", False):
        return 0, 0
    from birnn.optimizers import Optimizer

    if isinstance(optimizer, Optimizer):
        if not optimizer.built or not optimizer.iterations:
            return 0, 0
        arrays = [np.asarray(v) for v in optimizer.variables]
        # Keras sizes its int64 iteration counter like the float32 variables
        sizes = [a.size * (4 if a.dtype.kind in "iu" else a.itemsize) for a in arrays]
        return sum(a.size for a in arrays), sum(sizes)
    tensors = [
        t
        for slots in getattr(optimizer, "state", {}).values()
        for t in slots.values()
        if isinstance(t, torch.Tensor) and t.dim()
    ]
    return sum(t.numel() for t in tensors), sum(t.numel() * t.element_size() for t in tensors)


def _print_nothing(line: str) -> None:
    """Processes other than the primary one of a distribution print no summary."""


def print_summary(
    model: Any,
    line_length: int | None = None,
    positions: Any = None,
    print_fn: Callable[[str], Any] | None = None,
    show_trainable: bool = False,
) -> None:
    """Prints (or hands to `print_fn`) the summary table of `model`."""
    if print_fn is None:
        from birnn.distribution.data_parallel import is_primary

        print_fn = print if is_primary() else _print_nothing
    graph = getattr(model, "functional_graph", None)
    sequential_like = type(model).__name__ == "Sequential" or graph is None
    if not sequential_like and graph is not None:
        sequential_like = (
            all(
                len([n for n in layer.inbound_nodes if (n.layer, n.index) in graph.node_keys]) <= 1
                and len(
                    [
                        t
                        for n in layer.inbound_nodes
                        if (n.layer, n.index) in graph.node_keys
                        for t in n.dependencies
                    ]
                )
                <= 1
                for layer in model.layers
            )
            and len(graph.flat_inputs) == 1
            and len(graph.flat_outputs) == 1
        )
    layers = model.layers
    headers = ["Layer (type)", "Output Shape", "Param #"]
    if not sequential_like:
        headers.append("Connected to")
    if show_trainable:
        headers.append("Trainable")
    rows = []
    for layer in layers:
        params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
        row = [
            f"{layer.name} ({type(layer).__name__})",
            _format_shape(_layer_output(model, layer)),
            params,
        ]
        if not sequential_like:
            row.append(_connections(model, layer))
        if show_trainable:
            row.append("Y" if layer.trainable else "N")
        rows.append(row)
    total_width = line_length
    if total_width is None:  # the default width, narrowed to the terminal's as in Keras
        default = 98 if sequential_like else 115
        total_width = min(default, shutil.get_terminal_size((default, 24)).columns)
    fractions = [0.33, 0.25, 0.15] if sequential_like else [0.26, 0.2, 0.12, 0.32]
    if show_trainable:
        fractions = [*fractions, 0.08]
    widths = [max(len(headers[i]), int(total_width * f) - 3) for i, f in enumerate(fractions)]
    aligns = "llr" + ("l" if not sequential_like else "") + ("l" if show_trainable else "")
    lines = [f'Model: "{model.name}"', *_table(rows, headers, widths, aligns)]
    if model.built:
        total, total_bytes = _count(model.weights)
        trainable, trainable_bytes = _count(model.trainable_weights)
        non_trainable, nt_bytes = _count(model.non_trainable_weights)
    else:
        total = trainable = non_trainable = total_bytes = trainable_bytes = nt_bytes = 0
    opt_count, opt_bytes = _optimizer_size(model)
    lines += [
        f" Total params: {total + opt_count:,} ({_format_bytes(total_bytes + opt_bytes)})",
        f" Trainable params: {trainable:,} ({_format_bytes(trainable_bytes)})",
        f" Non-trainable params: {non_trainable:,} ({_format_bytes(nt_bytes)})",
    ]
    if opt_count:
        lines.append(f" Optimizer params: {opt_count:,} ({_format_bytes(opt_bytes)})")
    for line in lines:
        print_fn(line)
