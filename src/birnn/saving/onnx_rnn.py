"""Recurrent layers as ONNX: the native `LSTM`/`GRU`/`RNN` operators, or a `Scan` loop.

`run_layers(builder, x, mask, layers)` converts one `RNN` layer, or the two
layers of a `Bidirectional`, and returns per layer its outputs in time order,
its last output and its final states, computed as the layer computes them.

Native operators. A built-in `LSTM`, `GRU` or `SimpleRNN` whose activations
onnxruntime's kernels provide (tanh, sigmoid, relu) maps to ONNX's operator of
the same kind. Keras's weights become ONNX's `W`/`R`/`B`: kernels transposed,
LSTM gates reordered from Keras's `i, f, c, o` to ONNX's `i, o, f, c` (GRU's
`z, r, h` is the same in both), and a GRU's `reset_after=True` is ONNX's
`linear_before_reset=1` with the input and recurrent biases as `Wb` and `Rb`
(`reset_after=False` has one bias: `Wb`, with `Rb` zero). A `Bidirectional`
pair of the same kind and size is one operator with `direction="bidirectional"`.

Masks. ONNX's `sequence_lens` only knows right padding, while Keras skips any
masked step (keeping the states). The graph therefore moves each row's valid
steps to its front (a `TopK` over `invalid * time + step`, then a row `Gather`),
runs the operator with `sequence_lens` = the number of valid steps, and reads
the output of original step `t` back from the compacted position that holds
it: for the forward direction the last valid step at or before `t`, for the
reverse direction the first at or after `t` (zeros where there is none). That
is Keras's rule (a masked step repeats the previous output) for any mask, and
`zero_output_for_mask` then zeroes the masked steps.

Loop fallback. Any other configuration of the built-in cells (other
activations, `StackedRNNCells` of built-in cells) runs in a `Scan` whose body
is one cell step, with Keras's masking rule applied per step (`Where`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from birnn.saving.onnx_graph import GraphBuilder, activation_name

# Keyed by `activation_name`, which is None for an activation without a Keras name.
_NATIVE_ACTIVATIONS: dict[str | None, str] = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu"}
_ONNX_KIND = {"lstm": "LSTM", "gru": "GRU", "simple": "RNN"}


class RunResult(NamedTuple):
    """One layer's results: `outputs` `(batch, time, units)` in time order (or `None`
    when the layer returns no sequences), `last` `(batch, units)`, `states`."""

    outputs: str | None
    last: str
    states: list[str]


def _cell_kind(cell: Any) -> str | None:
    from birnn.layers.rnn.gru import GRUCell
    from birnn.layers.rnn.lstm import LSTMCell
    from birnn.layers.rnn.simple_rnn import SimpleRNNCell

    for kind, cls in (("lstm", LSTMCell), ("gru", GRUCell), ("simple", SimpleRNNCell)):
        if isinstance(cell, cls) and type(cell).call is cls.call:
            return kind
    return None


def _cells(layer: Any) -> list[Any]:
    """The built-in cells a layer runs, in order (a `StackedRNNCells` gives several).

    Raises:
        ValueError: for a layer or cell the exporter does not know.
    """
    from birnn.layers.rnn.rnn import RNN
    from birnn.layers.rnn.stacked_rnn_cells import StackedRNNCells

    if not (
        isinstance(layer, RNN)
        and layer.call_is_builtin
        and type(layer).compute_mask is RNN.compute_mask
    ):
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) has no ONNX form in birnn's "
            "exporter: only the built-in RNN, LSTM, GRU and SimpleRNN layers (their `call` "
            "not replaced) over built-in cells (or StackedRNNCells of them) convert. Export "
            "with format='torch' instead."
        )
    if layer.stateful:
        raise ValueError(
            f"Layer '{layer.name}' is stateful; an exported program does not carry states "
            "between calls. Rebuild the model with `stateful=False` to export it."
        )
    stacked = type(layer.cell) is StackedRNNCells
    cells = list(layer.cell.cells) if stacked else [layer.cell]
    for cell in cells:
        if _cell_kind(cell) is None:
            raise ValueError(
                f"Layer '{layer.name}': cell '{getattr(cell, 'name', cell)}' "
                f"({type(cell).__name__}) has no ONNX form in birnn's exporter (built-in "
                "LSTMCell, GRUCell and SimpleRNNCell do). Export with format='torch' instead."
            )
    return cells


def native_kind(layer: Any) -> str | None:
    """`"lstm"`, `"gru"` or `"simple"` if the layer maps to ONNX's own operator, else `None`."""
    cells = _cells(layer)
    if len(cells) != 1:
        return None
    cell = cells[0]
    names = [activation_name(cell.activation)]
    if _cell_kind(cell) != "simple":
        names.append(activation_name(cell.recurrent_activation))
    if any(name not in _NATIVE_ACTIVATIONS for name in names):
        return None
    return _cell_kind(cell)


# ---------------------------------------------------------------------------- masks
class _Compaction(NamedTuple):
    mask: str  # (batch, time) bool
    cumsum: str  # (batch, time) int64: valid steps up to and including t
    lengths: str  # (batch,) int64
    rows: str  # (time, batch) int64: row of the (batch * time, features) inputs to read
    batch: str  # (1,) int64
    row_ids: str  # (batch, 1) int64: 0, 1, ..., batch - 1


def _compaction(b: GraphBuilder, mask: str) -> _Compaction:
    as_int = b.cast_int64(mask)
    batch, time = b.dim(mask, 0), b.dim(mask, 1)
    steps = b.op("Range", b.const(0), b.squeeze(time, 0), b.const(1))
    key = b.op("Add", b.op("Mul", b.cast_int64(b.op("Not", mask)), time), steps)
    _, perm = b.op("TopK", key, time, axis=1, largest=0, sorted=1, outputs=2)
    row_ids = b.unsqueeze(b.op("Range", b.const(0), b.squeeze(batch, 0), b.const(1)), 1)
    rows = b.op("Transpose", b.op("Add", perm, b.op("Mul", row_ids, time)), perm=[1, 0])
    cumsum = b.op("CumSum", as_int, b.const(1))
    lengths = b.op("ReduceSum", as_int, b.const([1]), keepdims=0)
    return _Compaction(mask, cumsum, lengths, rows, batch, row_ids)


def _compacted_inputs(b: GraphBuilder, x: str, compaction: _Compaction) -> str:
    """`(time, batch, features)` inputs with each row's valid steps first."""
    return b.op("Gather", b.op("Flatten", x, axis=2), compaction.rows, axis=0)


def _zero_where_not(b: GraphBuilder, keep: str, values: str) -> str:
    """`values` with rows/steps where `keep` (one axis fewer) is false set to zero."""
    return b.where(b.unsqueeze(keep, -1), values, b.float_const(0.0))


# ---------------------------------------------------------------------------- native
def _onnx_weights(kind: str, cell: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keras's kernels and bias as one direction's ONNX `W`, `R`, `B`."""
    units = cell.units
    kernel = cell.kernel.detach().cpu().numpy()
    recurrent = cell.recurrent_kernel.detach().cpu().numpy()
    bias = None if cell.bias is None else cell.bias.detach().cpu().numpy()
    gates = {"lstm": 4, "gru": 3, "simple": 1}[kind]
    if kind == "lstm":  # Keras i, f, c, o -> ONNX i, o, f, c
        order = [0, 3, 1, 2]

        def reorder(a: np.ndarray) -> np.ndarray:
            blocks = np.split(a, 4, axis=-1)
            return np.concatenate([blocks[i] for i in order], axis=-1)

        kernel, recurrent = reorder(kernel), reorder(recurrent)
        bias = None if bias is None else reorder(bias)
    zeros = np.zeros(gates * units, np.float32)
    if bias is None:
        input_bias, recurrent_bias = zeros, zeros
    elif bias.ndim == 2:  # GRU reset_after: (input, recurrent) biases
        input_bias, recurrent_bias = bias[0], bias[1]
    else:
        input_bias, recurrent_bias = bias, zeros
    return kernel.T, recurrent.T, np.concatenate([input_bias, recurrent_bias])


def _activations(kind: str, cell: Any) -> list[str]:
    act = _NATIVE_ACTIVATIONS[activation_name(cell.activation)]
    if kind == "simple":
        return [act]
    recurrent = _NATIVE_ACTIVATIONS[activation_name(cell.recurrent_activation)]
    return [recurrent, act, act] if kind == "lstm" else [recurrent, act]


def _native(
    b: GraphBuilder,
    x: str,
    compaction: _Compaction | None,
    layers: list[Any],
    kind: str,
) -> list[RunResult]:
    """One ONNX operator over `layers` (one, or a forward and a reverse one)."""
    if len(layers) == 2 and layers[0].go_backwards:
        return _native(b, x, compaction, layers[::-1], kind)[::-1]
    cells = [layer.cell for layer in layers]
    weights = [_onnx_weights(kind, cell) for cell in cells]
    if len(layers) == 2:
        direction = "bidirectional"
    else:
        direction = "reverse" if layers[0].go_backwards else "forward"
    attributes: dict[str, Any] = {
        "hidden_size": cells[0].units,
        "direction": direction,
        "activations": [a for cell in cells for a in _activations(kind, cell)],
    }
    if kind == "gru":
        attributes["linear_before_reset"] = int(bool(cells[0].reset_after))
    if compaction is not None:
        x_tbf = _compacted_inputs(b, x, compaction)
    else:
        x_tbf = b.op("Transpose", x, perm=[1, 0, 2])
    w, r, bias = (b.weight(np.stack([wt[i] for wt in weights]), "rnn") for i in range(3))
    operands = [x_tbf, w, r, bias]
    if compaction is not None:
        operands.append(b.op("Cast", compaction.lengths, to=b.onnx.TensorProto.INT32))
    num_outputs = 3 if kind == "lstm" else 2
    results = b.op(_ONNX_KIND[kind], *operands, outputs=num_outputs, **attributes)
    y, y_h = results[0], results[1]
    directions = len(layers)
    out = []
    for d, layer in enumerate(layers):
        states = [b.op("Gather", y_h, b.const(d), axis=0)]
        if kind == "lstm":
            states.append(b.op("Gather", results[2], b.const(d), axis=0))
        sequences = None
        if layer.return_sequences:
            if compaction is None:
                sequences = b.op(
                    "Transpose", b.op("Gather", y, b.const(d), axis=1), perm=[1, 0, 2]
                )
            else:
                sequences = _uncompacted_outputs(b, layer, compaction, y, d, directions)
        out.append(_masked_result(b, layer, compaction, sequences, states))
    return out


def _uncompacted_outputs(
    b: GraphBuilder, layer: Any, compaction: _Compaction, y: str, d: int, directions: int
) -> str:
    """Direction `d`'s `(batch, time, units)` outputs at the original steps, Keras's way.

    `y` is the operator's `(time, directions, batch, units)` output over the
    compacted steps; step `t` reads the compacted position holding the last
    valid step at or before `t` (forward) or the first at or after it
    (backward), and is zero where there is none (or where it is masked, with
    `zero_output_for_mask`).
    """
    mask, cumsum, lengths = compaction.mask, compaction.cumsum, compaction.lengths
    if layer.go_backwards:
        index = b.op("Sub", cumsum, b.cast_int64(mask))
        exists = b.op("Less", index, b.unsqueeze(lengths, 1))
        index = b.op("Min", index, b.op("Sub", b.unsqueeze(lengths, 1), b.const(1)))
        index = b.op("Max", index, b.const(0))
    else:
        index = b.op("Sub", cumsum, b.const(1))
        exists = b.op("GreaterOrEqual", index, b.const(0))
        index = b.op("Max", index, b.const(0))
    # Row of the flattened (time * directions * batch, units) output.
    stride = b.op("Mul", compaction.batch, b.const([directions]))
    rows = b.op(
        "Add",
        b.op("Mul", index, stride),
        b.op("Add", compaction.row_ids, b.op("Mul", compaction.batch, b.const([d]))),
    )
    gathered = b.op("Gather", b.op("Flatten", y, axis=3), rows, axis=0)
    # A masked step is zero with `zero_output_for_mask`; a valid step always has a position.
    keep = mask if layer.zero_output_for_mask else exists
    return _zero_where_not(b, keep, gathered)


def _masked_result(
    b: GraphBuilder,
    layer: Any,
    compaction: _Compaction | None,
    sequences: str | None,
    states: list[str],
) -> RunResult:
    """The last output and states of a run over compacted steps: zero for rows with no
    valid step, and the last output zero where `zero_output_for_mask` masks it."""
    last = states[0]
    if compaction is None:
        return RunResult(sequences, last, states)
    mask = compaction.mask
    any_valid = b.op("Greater", compaction.lengths, b.const(0))
    states = [_zero_where_not(b, any_valid, s) for s in states]
    last = states[0]
    if layer.zero_output_for_mask:
        # The last processed step: the first one when going backwards.
        last_step = b.const(0 if layer.go_backwards else -1)
        keep = b.op("Gather", mask, last_step, axis=1)
        last = _zero_where_not(b, keep, last)
    return RunResult(sequences, last, states)


# ---------------------------------------------------------------------------- Scan loop
def _step(b: GraphBuilder, outer: GraphBuilder, kind: str, cell: Any, x: str, states: list):
    """One cell step in a `Scan` body: `(output, new_states)`; weights live in `outer`."""
    units = cell.units
    where = f"Layer cell '{cell.name}'"
    kernel = outer.weight(cell.kernel, "kernel")
    bias = cell.bias
    act = cell.activation

    def rec_act(v: str) -> str:
        return b.activation(cell.recurrent_activation, v, where)

    h = states[0]
    if kind != "gru" or cell.reset_after:
        recurrent = outer.weight(cell.recurrent_kernel, "recurrent_kernel")
    if kind == "simple":
        z = b.op("Add", b.op("MatMul", x, kernel), b.op("MatMul", h, recurrent))
        if bias is not None:
            z = b.op("Add", z, outer.weight(bias, "bias"))
        out = b.activation(act, z, where)
        return out, [out]
    if kind == "lstm":
        z = b.op("Add", b.op("MatMul", x, kernel), b.op("MatMul", h, recurrent))
        if bias is not None:
            z = b.op("Add", z, outer.weight(bias, "bias"))
        i, f, c_in, o = b.split(z, 4)
        c = b.op(
            "Add",
            b.op("Mul", rec_act(f), states[1]),
            b.op("Mul", rec_act(i), b.activation(act, c_in, where)),
        )
        out = b.op("Mul", rec_act(o), b.activation(act, c, where))
        return out, [out, c]
    x_proj = b.op("MatMul", x, kernel)
    reset_after = bool(cell.reset_after)
    if bias is not None:
        x_bias = bias[0] if reset_after else bias
        x_proj = b.op("Add", x_proj, outer.weight(x_bias, "bias"))
    x_z, x_r, x_h = b.split(x_proj, 3)
    if reset_after:
        h_proj = b.op("MatMul", h, recurrent)
        if bias is not None:
            h_proj = b.op("Add", h_proj, outer.weight(bias[1], "bias"))
        h_z, h_r, h_h = b.split(h_proj, 3)
        z = rec_act(b.op("Add", x_z, h_z))
        r = rec_act(b.op("Add", x_r, h_r))
        candidate = b.activation(act, b.op("Add", x_h, b.op("Mul", r, h_h)), where)
    else:
        recurrent_zr = outer.weight(cell.recurrent_kernel[:, : 2 * units], "recurrent_kernel")
        recurrent_h = outer.weight(cell.recurrent_kernel[:, 2 * units :], "recurrent_kernel")
        h_z, h_r = b.split(b.op("MatMul", h, recurrent_zr), 2)
        z = rec_act(b.op("Add", x_z, h_z))
        r = rec_act(b.op("Add", x_r, h_r))
        candidate = b.activation(
            act, b.op("Add", x_h, b.op("MatMul", b.op("Mul", r, h), recurrent_h)), where
        )
    one_minus_z = b.op("Sub", b.float_const(1.0), z)
    out = b.op("Add", b.op("Mul", z, h), b.op("Mul", one_minus_z, candidate))
    return out, [out]


def _loop(b: GraphBuilder, x: str, mask: str | None, layer: Any) -> RunResult:
    """The layer's recurrence as a `Scan` over time, one cell step per iteration."""
    onnx = b.onnx
    cells = _cells(layer)
    body = GraphBuilder(prefix=f"{b.name('scan')}/")  # e.g. "birnn/scan_7/"
    float_type = onnx.TensorProto.FLOAT
    state_sizes = [
        size
        for cell in cells
        for size in ([cell.units] * (2 if _cell_kind(cell) == "lstm" else 1))
    ]
    state_in = [body.name("state") for _ in state_sizes]
    previous = body.name("previous_output")
    x_t = body.name("x_t")
    matrix = [None, None]  # (batch, size)
    body.inputs = [
        onnx.helper.make_tensor_value_info(n, float_type, matrix)
        for n in [*state_in, previous, x_t]
    ]
    keep = None
    if mask is not None:
        keep = body.name("keep_t")
        body.inputs.append(onnx.helper.make_tensor_value_info(keep, onnx.TensorProto.BOOL, [None]))

    value, new_states, position = x_t, [], 0
    for cell in cells:
        kind = _cell_kind(cell)
        assert kind is not None  # the layer was accepted for export: its cells have a kind
        count = 2 if kind == "lstm" else 1
        value, cell_states = _step(
            body, b, kind, cell, value, state_in[position : position + count]
        )
        new_states.extend(cell_states)
        position += count
    output = value
    if keep is not None:
        keep_column = body.unsqueeze(keep, 1)
        fallback = body.float_const(0.0) if layer.zero_output_for_mask else previous
        output = body.where(keep_column, output, fallback)
        new_states = [body.where(keep_column, new, old) for new, old in zip(new_states, state_in)]
    else:
        # Scan's outputs must be distinct values from its inputs.
        output = body.op("Identity", output)
    final = [body.op("Identity", s) for s in new_states]
    carried_output = body.op("Identity", output)
    scanned_output = body.op("Identity", output)
    body.outputs = [
        onnx.helper.make_tensor_value_info(n, float_type, matrix)
        for n in [*final, carried_output, scanned_output]
    ]

    batch = b.dim(x, 0)
    initial = [
        b.op("ConstantOfShape", b.op("Concat", batch, b.const([size]), axis=0))
        for size in [*state_sizes, cells[-1].units]
    ]
    scan_inputs = [x] if mask is None else [x, mask]
    direction = int(bool(layer.go_backwards))
    results = b.op(
        "Scan",
        *initial,
        *scan_inputs,
        outputs=len(initial) + 1,
        body=body.graph(f"{layer.name}_step"),
        num_scan_inputs=len(scan_inputs),
        scan_input_axes=[1] * len(scan_inputs),
        scan_input_directions=[direction] * len(scan_inputs),
        scan_output_axes=[1],
        scan_output_directions=[direction],
    )
    states, last, sequences = results[: len(state_sizes)], results[-2], results[-1]
    return RunResult(sequences if layer.return_sequences else None, last, list(states))


# ---------------------------------------------------------------------------- entry point
def run_layers(b: GraphBuilder, x: str, mask: str | None, layers: list[Any]) -> list[RunResult]:
    """Each of `layers` run over `x` (a `(batch, time, features)` float value).

    Two layers (a `Bidirectional`'s) of the same native kind and size share one
    bidirectional operator. Outputs come in time order whatever `go_backwards`.
    """
    kinds = [native_kind(layer) for layer in layers]
    compaction = None
    if mask is not None and any(kind is not None for kind in kinds):
        compaction = _compaction(b, mask)
    if (
        len(layers) == 2
        and kinds[0] is not None
        and kinds[0] == kinds[1]
        and layers[0].go_backwards != layers[1].go_backwards
        and layers[0].cell.units == layers[1].cell.units
        and (kinds[0] != "gru" or layers[0].cell.reset_after == layers[1].cell.reset_after)
    ):
        return _native(b, x, compaction, layers, kinds[0])
    results = []
    for layer, kind in zip(layers, kinds):
        if kind is not None:
            results.extend(_native(b, x, compaction, [layer], kind))
        else:
            results.append(_loop(b, x, mask, layer))
    return results
