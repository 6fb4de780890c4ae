"""A birnn model as an ONNX model, converted layer by layer from its functional graph.

`model_to_onnx(model, input_signature)` walks the nodes of a functional or
`Sequential` model in execution order and emits each layer's computation
(inference mode: dropout is the identity) with ONNX operators. Masks travel
beside the values exactly as at run time: `Masking` and
`Embedding(mask_zero=True)` compute them inside the graph, layers that support
masking pass them on, recurrent layers consume them (see `onnx_rnn`). Batch
and time axes are symbolic (`batch`, `time`), so one file serves any batch
size and sequence length.

A layer the converter does not know is a `ValueError` naming it; such models
still export with `format="torch"`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from birnn.keras_tensor import KerasTensor
from birnn.saving import onnx_rnn
from birnn.saving.onnx_graph import IR_VERSION, OPSET, GraphBuilder

_ONNX_DTYPES = {
    "float32": "FLOAT",
    "int32": "INT32",
    "int64": "INT64",
    "bool": "BOOL",
}

Value = tuple[str, "str | None"]  # (value name, mask name or None)


def _unsupported(layer: Any, detail: str = "") -> ValueError:
    return ValueError(
        f"Layer '{layer.name}' ({type(layer).__name__}) has no ONNX form in birnn's "
        f"exporter{detail}. Supported: InputLayer, Masking, Embedding, Dense, Activation, "
        "Dropout, Flatten, TimeDistributed (of those), LSTM, GRU, SimpleRNN, RNN (over "
        "their cells), Bidirectional, Concatenate (last axis), Add, Average, "
        "GlobalAveragePooling1D, GlobalMaxPooling1D and nested models of them. Export with "
        "format='torch' instead."
    )


def _plain(layer: Any, *classes: type[Any]) -> bool:
    """Whether `layer` is one of `classes` computing what that class computes: a subclass
    that replaces `call` or `compute_mask` is not converted as its base."""
    for cls in classes:
        if isinstance(layer, cls):
            kind: type[Any] = type(layer)
            return kind.call is cls.call and kind.compute_mask is cls.compute_mask
    return False


def _pass_mask(layer: Any, mask: str | None) -> str | None:
    return mask if layer.supports_masking else None


def _pointwise(b: GraphBuilder, layer: Any, x: str) -> str | None:
    """Layers that act on the last axis alone (so also inside `TimeDistributed`)."""
    from birnn.layers.core import Activation, Dense, Dropout

    if _plain(layer, Dense):
        y = b.dense(x, layer.kernel, layer.bias)
        return b.activation(layer.activation, y, f"Layer '{layer.name}'")
    if _plain(layer, Activation):
        return b.activation(layer.activation, x, f"Layer '{layer.name}'")
    if _plain(layer, Dropout):
        return x
    return None


def _recurrent(b: GraphBuilder, layer: Any, x: str, mask: str | None) -> list[Value]:
    from birnn.layers.rnn.bidirectional import Bidirectional

    if isinstance(layer, Bidirectional):
        forward, backward = layer.forward_layer, layer.backward_layer
        results = onnx_rnn.run_layers(b, x, mask, [forward, backward])
        if layer.return_sequences:
            y_fw, y_bw = results[0].outputs, results[1].outputs
            assert y_fw is not None and y_bw is not None  # asked for with return_sequences
            if forward.go_backwards:  # lined up in the forward layer's (reversed) order
                y_fw, y_bw = b.reverse_time(y_fw), b.reverse_time(y_bw)
        else:
            y_fw, y_bw = results[0].last, results[1].last
        merge = layer.merge_mode
        if merge == "concat":
            merged = [b.op("Concat", y_fw, y_bw, axis=-1)]
        elif merge == "sum":
            merged = [b.op("Add", y_fw, y_bw)]
        elif merge == "ave":
            merged = [b.op("Mul", b.op("Add", y_fw, y_bw), b.float_const(0.5))]
        elif merge == "mul":
            merged = [b.op("Mul", y_fw, y_bw)]
        else:
            merged = [y_fw, y_bw]
        out_mask = mask if layer.return_sequences else None
        values: list[Value] = [(y, out_mask) for y in merged]
        if layer.return_state:
            values += [(s, None) for r in results for s in r.states]
        return values
    (result,) = onnx_rnn.run_layers(b, x, mask, [layer])
    if layer.return_sequences:
        output = result.outputs
        assert output is not None  # asked for with return_sequences
        if layer.go_backwards:  # Keras returns the processing order
            output = b.reverse_time(output)
        values = [(output, mask)]
    else:
        values = [(result.last, None)]
    if layer.return_state:
        values += [(s, None) for s in result.states]
    return values


def _convert(b: GraphBuilder, layer: Any, inputs: list[Value]) -> list[Value]:
    """One layer call: its output values (with masks) from its input values."""
    from birnn.layers import core, merging, pooling
    from birnn.layers.rnn.bidirectional import Bidirectional
    from birnn.layers.rnn.rnn import RNN
    from birnn.layers.time_distributed import TimeDistributed
    from birnn.models.model import Model
    from birnn.models.sequential import Sequential

    x, mask = inputs[0]
    pointwise = _pointwise(b, layer, x)
    if pointwise is not None:
        return [(pointwise, _pass_mask(layer, mask))]
    if _plain(layer, Bidirectional) or isinstance(layer, RNN):  # RNNs: see onnx_rnn._cells
        return _recurrent(b, layer, x, mask)
    if _plain(layer, core.Masking):
        differs = b.op("Not", b.op("Equal", x, b.float_const(layer.mask_value)))
        keep = b.cast_bool(b.op("ReduceMax", b.cast_float(differs), b.const([-1]), keepdims=0))
        return [(b.where(b.unsqueeze(keep, -1), x, b.float_const(0.0)), keep)]
    if _plain(layer, core.Embedding):
        ids = b.cast_int64(x)
        y = b.op("Gather", b.weight(layer.embeddings, "embeddings"), ids, axis=0)
        out_mask = b.op("Not", b.op("Equal", ids, b.const(0))) if layer.mask_zero else None
        return [(y, out_mask)]
    if _plain(layer, core.Flatten):
        return [(b.op("Flatten", x, axis=1), None)]
    if _plain(layer, TimeDistributed):
        inner = _pointwise(b, layer.layer, x)
        if inner is None:
            raise _unsupported(layer, f" around layer '{layer.layer.name}'")
        return [(inner, mask)]
    if _plain(layer, merging.Concatenate):
        if layer.axis != -1:
            raise _unsupported(layer, f" with axis={layer.axis} (only the last axis)")
        values = [v for v, _ in inputs]
        masks = [m for _, m in inputs if m is not None]
        out_mask = None
        if masks and len(masks) == len(inputs):
            out_mask = masks[0]
            for m in masks[1:]:
                out_mask = b.op("Or", out_mask, m)
        return [(b.op("Concat", *values, axis=-1), out_mask)]
    if _plain(layer, merging.Add, merging.Average):
        out = inputs[0][0]
        for value, _ in inputs[1:]:
            out = b.op("Add", out, value)
        if isinstance(layer, merging.Average):
            out = b.op("Mul", out, b.float_const(1.0 / len(inputs)))
        masks = [m for _, m in inputs if m is not None]
        out_mask = None
        if len(masks) == len(inputs):
            out_mask = masks[0]
            for m in masks[1:]:
                out_mask = b.op("Or", out_mask, m)
        return [(out, out_mask)]
    if _plain(layer, pooling.GlobalAveragePooling1D, pooling.GlobalMaxPooling1D):
        return [(_global_pooling(b, layer, x, mask), None)]
    if _plain(layer, Sequential, Model) and layer.functional_graph is not None:
        return _run_graph(b, layer.functional_graph, inputs)
    raise _unsupported(layer)


def _global_pooling(b: GraphBuilder, layer: Any, x: str, mask: str | None) -> str:
    from birnn.layers import pooling

    if layer.data_format != "channels_last" or layer.keepdims:
        raise _unsupported(layer, " with data_format='channels_first' or keepdims=True")
    axes = b.const([1])
    average = isinstance(layer, pooling.GlobalAveragePooling1D)
    if mask is None:
        return b.op("ReduceMean" if average else "ReduceMax", x, axes, keepdims=0)
    keep = b.unsqueeze(mask, -1)
    if average:
        total = b.op("ReduceSum", b.where(keep, x, b.float_const(0.0)), axes, keepdims=0)
        count = b.op("ReduceSum", b.cast_float(keep), axes, keepdims=0)
        return b.op("Div", total, b.op("Max", count, b.float_const(1.0)))
    lowest = b.float_const(np.finfo(np.float32).min)
    out = b.op("ReduceMax", b.where(keep, x, lowest), axes, keepdims=0)
    any_valid = b.cast_bool(b.op("ReduceMax", b.cast_float(keep), axes, keepdims=0))
    return b.where(any_valid, out, b.float_const(0.0))


def _run_graph(b: GraphBuilder, graph: Any, inputs: list[Value]) -> list[Value]:
    """Converts the nodes of a model's `Graph`; returns its flat outputs."""
    env: dict[int, Value] = {id(t): v for t, v in zip(graph.flat_inputs, inputs)}

    def resolve(item: Any) -> Any:
        if not isinstance(item, KerasTensor):
            return item
        if id(item) in env:
            return env[id(item)]
        source = item.mask_source
        if source is not None and id(source) in env:
            return ("mask", env[id(source)][1])
        raise ValueError(f"ONNX export: no value for tensor {item!r}.")

    for node in graph.run_nodes:
        layer = node.layer
        extra = set(node.call_kwargs) - {"training", "mask"}
        if extra or len(node.call_args) != 1:
            raise _unsupported(layer, f" called with extra arguments {sorted(extra)}")
        args = node.call_args[0]
        flat_args = args if isinstance(args, (list, tuple)) else [args]
        values = [resolve(a) for a in flat_args]
        explicit = node.call_kwargs.get("mask")
        if explicit is not None:
            explicit = explicit if isinstance(explicit, (list, tuple)) else [explicit]
            values = [
                (v[0], None if m is None else resolve(m)[1]) for v, m in zip(values, explicit)
            ]
        outputs = _convert(b, layer, values)
        if len(outputs) != len(node.flat_outputs):
            raise ValueError(
                f"ONNX export: layer '{layer.name}' gave {len(outputs)} outputs, its call in "
                f"the model gave {len(node.flat_outputs)}."
            )
        for t, v in zip(node.flat_outputs, outputs):
            env[id(t)] = v
    return [env[id(t)] for t in graph.flat_outputs]


def _symbolic_dims(name: str, shape: Any) -> list:
    """`None` axes as named symbolic dims: `batch`, `time`, then `<name>_dim<i>`."""
    symbolic = {0: "batch", 1: "time"}
    return [
        symbolic.get(i, f"{name}_dim{i}") if d is None else int(d) for i, d in enumerate(shape)
    ]


def _input_info(b: GraphBuilder, name: str, spec: Any) -> Any:
    dtype = str(spec.dtype)
    if dtype not in _ONNX_DTYPES:
        raise ValueError(
            f"ONNX export: input '{name}' has dtype {dtype}; expected one of "
            f"{sorted(_ONNX_DTYPES)}."
        )
    return b.helper.make_tensor_value_info(
        name, getattr(b.onnx.TensorProto, _ONNX_DTYPES[dtype]), _symbolic_dims(name, spec.shape)
    )


def model_to_onnx(model: Any, input_specs: list[Any], output_names: list[str]) -> Any:
    """The ONNX `ModelProto` of a functional or `Sequential` birnn model.

    Args:
        model: A built model with a functional graph.
        input_specs: One `KerasTensor`-like object (`shape`, `dtype`) per flat
            model input; `None` axes become symbolic (`batch`, `time`).
        output_names: A name per flat output.

    Raises:
        ValueError: for a model without a graph or a layer with no ONNX form.
    """
    graph = getattr(model, "functional_graph", None)
    if graph is None:
        raise ValueError(
            f"Model '{model.name}' has no functional graph (a subclassed model, or a "
            "Sequential model without an `Input`): the ONNX exporter converts functional "
            "and Sequential models. Export with format='torch' instead."
        )
    if len(input_specs) != len(graph.flat_inputs):
        raise ValueError(
            f"Model '{model.name}' has {len(graph.flat_inputs)} inputs, but "
            f"`input_signature` describes {len(input_specs)}."
        )
    b = GraphBuilder()
    names = list(model.input_names)
    b.inputs = [_input_info(b, n, s) for n, s in zip(names, input_specs)]
    inputs: list[Value] = [(n, None) for n in names]
    outputs = _run_graph(b, graph, inputs)
    for (value, _), name, tensor in zip(outputs, output_names, graph.flat_outputs):
        b.op("Identity", value)
        b.nodes[-1].output[0] = name
        dims = _symbolic_dims(name, tensor.shape)
        b.outputs.append(b.helper.make_tensor_value_info(name, b.onnx.TensorProto.FLOAT, dims))
    proto = b.helper.make_model(
        b.graph(model.name),
        opset_imports=[b.helper.make_opsetid("", OPSET)],
        producer_name="birnn",
        ir_version=IR_VERSION,
    )
    b.onnx.checker.check_model(proto)
    return proto
