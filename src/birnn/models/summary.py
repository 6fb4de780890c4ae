"""`Model.summary()`: Keras's table of layers, output shapes and parameter counts."""

from __future__ import annotations

import re
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


def _is_sequential_like(model: Any) -> bool:
    """Whether the table can leave out "Connected to": a single chain of layers."""
    graph = getattr(model, "functional_graph", None)
    if type(model).__name__ == "Sequential" or graph is None:
        return True

    def graph_nodes(layer: Any) -> list:
        return [n for n in layer.inbound_nodes if (n.layer, n.index) in graph.node_keys]

    return (
        all(
            len(graph_nodes(layer)) <= 1
            and len([t for n in graph_nodes(layer) for t in n.dependencies]) <= 1
            for layer in model.layers
        )
        and len(graph.flat_inputs) == 1
        and len(graph.flat_outputs) == 1
    )


def _select_range(model: Any, layer_range: Any) -> list:
    """The top-level layers from the first to the last whose name matches `layer_range`.

    As in Keras, each entry of `layer_range` is a regular expression matched at the
    start of the layer names, and the range spans every layer either one matches.
    A string is refused even when it has two characters (Keras would read "ab" as
    `("a", "b")`, which is more likely a mistake than a range).
    """
    layers = list(model.layers)
    if layer_range is None:
        return layers
    if not isinstance(layer_range, (list, tuple)) or len(layer_range) != 2:
        length = len(layer_range) if hasattr(layer_range, "__len__") else "unknown"
        raise ValueError(
            f"Model.summary() of '{model.name}': `layer_range` must be a list or tuple of "
            f"two layer names (first, last); received {layer_range!r} of length {length}."
        )
    if not all(isinstance(p, str) for p in layer_range):
        raise ValueError(
            f"Model.summary() of '{model.name}': `layer_range` must hold two layer names "
            f"(strings); received {layer_range!r}."
        )
    names = [layer.name for layer in layers]
    matches = [[i for i, name in enumerate(names) if re.match(p, name)] for p in layer_range]
    for pattern, found in zip(layer_range, matches):
        if not found:
            raise ValueError(
                f"Model.summary() of '{model.name}': `layer_range` entry {pattern!r} "
                f"matches none of the model's layer names {names}. "
                f"Received layer_range={tuple(layer_range)!r}."
            )
    indices = matches[0] + matches[1]
    return layers[min(indices) : max(indices) + 1]


def _is_model(layer: Any) -> bool:
    """Whether `layer` is a model: models alone have `summary` (no import of `Model`,
    which imports this module)."""
    return callable(getattr(layer, "summary", None))


def _rows(
    model: Any,
    layers: list,
    depth: int,
    *,
    expand_nested: bool,
    connections: bool,
    show_trainable: bool,
) -> list[list[str]]:
    """One row per layer; with `expand_nested`, a nested model's layers follow it, indented.

    Only models are expanded, as in Keras: wrappers such as `Bidirectional` and
    layers that merely own sublayers show as one row.
    """
    prefix = "   " * depth + "└ " if depth else ""
    rows = []
    for layer in layers:
        params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
        row = [
            f"{prefix}{layer.name} ({type(layer).__name__})",
            _format_shape(_layer_output(model, layer)),
            params,
        ]
        if connections:  # a nested layer's inputs are not tensors of the outer graph
            row.append(_connections(model, layer) if depth == 0 else "-")
        if show_trainable:  # a layer without weights has nothing to train: "-"
            row.append(("Y" if layer.trainable else "N") if layer.weights else "-")
        rows.append(row)
        if expand_nested and _is_model(layer):
            rows += _rows(
                layer,
                list(layer.layers),
                depth + 1,
                expand_nested=True,
                connections=connections,
                show_trainable=show_trainable,
            )
    return rows


# Keras's default column positions (fractions of the line), for a chain of layers
# and for a graph (with "Connected to"); "Trainable" takes a fixed share at the end.
_SEQUENTIAL_POSITIONS = (0.47, 0.81, 1.0)
_GRAPH_POSITIONS = (0.31, 0.57, 0.73, 1.0)
_TRAINABLE_SHARE = 0.09


def _column_widths(
    model: Any, positions: Any, total_width: int, ncols: int, show_trainable: bool
) -> list[int]:
    """Text widths of the columns, filling `total_width` with borders and padding.

    `positions` are the right edges of the columns, as fractions of the line (all
    at most 1) or as character positions; their differences set the widths' ratios.
    """
    ncontent = ncols - (1 if show_trainable else 0)
    if positions is None:
        positions = _SEQUENTIAL_POSITIONS if ncontent == 3 else _GRAPH_POSITIONS
    elif not isinstance(positions, (list, tuple)) or not all(
        isinstance(p, (int, float)) for p in positions
    ):
        raise TypeError(
            f"Model.summary() of '{model.name}': `positions` must be a list of numbers "
            f"(the right edge of each column); received {positions!r}."
        )
    if len(positions) < ncontent:
        raise ValueError(
            f"Model.summary() of '{model.name}': `positions` needs at least {ncontent} "
            f"entries, one per column; received {list(positions)!r}."
        )
    edges = [0.0, *(float(p) for p in positions[:ncontent])]
    shares = [b - a for a, b in zip(edges, edges[1:])]
    if any(s <= 0 for s in shares):
        raise ValueError(
            f"Model.summary() of '{model.name}': `positions` must increase; "
            f"received {list(positions)!r}."
        )
    if show_trainable:
        shares.append(sum(shares) * _TRAINABLE_SHARE / (1 - _TRAINABLE_SHARE))
    room = max(ncols, total_width - (ncols + 1) - 2 * ncols)
    widths = [max(1, int(room * s / sum(shares))) for s in shares]
    widths[0] += max(0, room - sum(widths))
    return widths


def print_summary(
    model: Any,
    line_length: int | None = None,
    positions: Any = None,
    print_fn: Callable[[str], Any] | None = None,
    expand_nested: bool = False,
    show_trainable: bool = False,
    layer_range: Any = None,
) -> None:
    """Prints (or hands to `print_fn`) the summary table of `model`.

    The arguments are `Model.summary`'s; see there.
    """
    if print_fn is None:
        from birnn.distribution.data_parallel import is_primary

        print_fn = print if is_primary() else _print_nothing
    sequential_like = _is_sequential_like(model)
    headers = ["Layer (type)", "Output Shape", "Param #"]
    if not sequential_like:
        headers.append("Connected to")
    if show_trainable:
        headers.append("Trainable")
    rows = _rows(
        model,
        _select_range(model, layer_range),
        0,
        expand_nested=expand_nested,
        connections=not sequential_like,
        show_trainable=show_trainable,
    )
    total_width = line_length
    if total_width is None:  # the default width, narrowed to the terminal's as in Keras
        default = 88 if sequential_like else 108
        total_width = min(default, shutil.get_terminal_size((default, 24)).columns)
    widths = _column_widths(model, positions, total_width, len(headers), show_trainable)
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
