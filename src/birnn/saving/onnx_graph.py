"""A small ONNX graph builder: nodes, constants and unique names, on top of `onnx.helper`.

Nothing here knows about layers: `GraphBuilder` only turns calls such as
`builder.op("MatMul", x, w)` into ONNX nodes with fresh output names, keeps
weights as initializers, and emits Keras's activation functions as ONNX
operators. `onnx` is imported lazily through `require_onnx`, so birnn works
without the optional `birnn[export]` extra until an export is asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np

OPSET = 20
IR_VERSION = 10  # opset 20's; newer `onnx` packages write versions older runtimes refuse
INSTALL_HINT = "pip install birnn[export]"


def require_onnx() -> Any:
    """The `onnx` module, or an `ImportError` naming the extra that installs it."""
    try:
        import onnx
    except ImportError as error:
        raise ImportError(
            "Exporting to ONNX needs the `onnx` package, which is not installed. Install "
            f"birnn's export extra: `{INSTALL_HINT}` (onnx, onnxruntime)."
        ) from error
    return onnx


def activation_name(function: Any) -> str | None:
    """Keras's name for a birnn activation function (`"tanh"`), or `None` if it has none.

    >>> from birnn import activations
    >>> activation_name(activations.get("swish")), activation_name(lambda x: x)
    ('silu', None)
    """
    import torch

    from birnn import activations

    if function is None:
        return "linear"
    torch_functions = {torch.tanh: "tanh", torch.sigmoid: "sigmoid", torch.relu: "relu"}
    if function in torch_functions:
        return torch_functions[function]
    try:
        name = activations.serialize(function)
    except Exception:  # a user callable: no name
        return None
    if not isinstance(name, str) or activations.get(name) is not function:
        return None
    return {"swish": "silu"}.get(name, name)


class GraphBuilder:
    """Collects the nodes, initializers, inputs and outputs of one ONNX graph.

    Args:
        prefix: Prepended to every generated name, which keeps them apart from
            the graph's input and output names (the model's) and a subgraph's
            names apart from its parent's.
    """

    def __init__(self, prefix: str = "birnn/") -> None:
        self.onnx = require_onnx()
        self.helper = self.onnx.helper
        self.prefix = prefix
        self.nodes: list = []
        self.initializers: list = []
        self.inputs: list = []
        self.outputs: list = []
        self._count = 0
        self._constants: dict[tuple, str] = {}

    def name(self, hint: str) -> str:
        """A fresh value name."""
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attributes: Any) -> Any:
        """Adds one node; returns its output name, or a list of `outputs` names."""
        names = [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(
            self.helper.make_node(
                op_type, list(inputs), names, name=self.name(op_type), **attributes
            )
        )
        return names[0] if outputs == 1 else names

    def weight(self, array: Any, hint: str = "w") -> str:
        """An initializer holding `array` (a tensor or NumPy array), as float32 unless integer."""
        if hasattr(array, "detach"):
            array = array.detach().cpu().numpy()
        array = np.asarray(array)
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(array.copy(order="C"), name))
        return name

    def const(self, value: Any, dtype: Any = np.int64) -> str:
        """A small shared constant (shapes, axes, scalars)."""
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            self._constants[key] = self.weight(array, "const")
        return self._constants[key]

    # ------------------------------------------------------------------ helpers
    def float_const(self, value: Any) -> str:
        return self.const(value, np.float32)

    def cast_float(self, x: str) -> str:
        return self.op("Cast", x, to=self.onnx.TensorProto.FLOAT)

    def cast_bool(self, x: str) -> str:
        return self.op("Cast", x, to=self.onnx.TensorProto.BOOL)

    def cast_int64(self, x: str) -> str:
        return self.op("Cast", x, to=self.onnx.TensorProto.INT64)

    def unsqueeze(self, x: str, axis: int) -> str:
        return self.op("Unsqueeze", x, self.const([axis]))

    def squeeze(self, x: str, axis: int) -> str:
        return self.op("Squeeze", x, self.const([axis]))

    def dim(self, x: str, axis: int) -> str:
        """Size of axis `axis` (>= 0) of `x`, as a 1-element int64 tensor."""
        return self.op("Shape", x, start=axis, end=axis + 1)

    def slice(self, x: str, start: int, end: int, axis: int, step: int = 1) -> str:
        return self.op(
            "Slice",
            x,
            self.const([start]),
            self.const([end]),
            self.const([axis]),
            self.const([step]),
        )

    def reverse_time(self, x: str, axis: int = 1) -> str:
        """`x` with axis `axis` reversed."""
        return self.slice(x, -1, -(2**62), axis, -1)

    def split(self, x: str, parts: int, axis: int = -1) -> list[str]:
        return self.op("Split", x, axis=axis, num_outputs=parts, outputs=parts)

    def where(self, condition: str, x: str, y: str) -> str:
        return self.op("Where", condition, x, y)

    def dense(self, x: str, kernel: Any, bias: Any | None) -> str:
        """`x @ kernel + bias` over the last axis."""
        y = self.op("MatMul", x, self.weight(kernel, "kernel"))
        if bias is not None:
            y = self.op("Add", y, self.weight(bias, "bias"))
        return y

    def activation(self, function: Any, x: str, where: str) -> str:
        """Keras's activation `function` applied to `x` as ONNX operators.

        Raises:
            ValueError: naming `where` if the function has no ONNX form here.
        """
        name = activation_name(function)
        simple = {
            "tanh": "Tanh",
            "sigmoid": "Sigmoid",
            "relu": "Relu",
            "elu": "Elu",
            "selu": "Selu",
            "softplus": "Softplus",
            "softsign": "Softsign",
            "exponential": "Exp",
            "gelu": "Gelu",
        }
        if name == "linear":
            return x
        if name in simple:
            return self.op(simple[name], x)
        if name == "softmax":
            return self.op("Softmax", x, axis=-1)
        if name == "log_softmax":
            return self.op("LogSoftmax", x, axis=-1)
        if name == "hard_sigmoid":
            return self.op("HardSigmoid", x, alpha=1.0 / 6.0, beta=0.5)
        if name == "silu":
            return self.op("Mul", x, self.op("Sigmoid", x))
        if name == "leaky_relu":
            return self.op("LeakyRelu", x, alpha=0.2)
        if name == "relu6":
            return self.op("Clip", x, self.float_const(0.0), self.float_const(6.0))
        raise ValueError(
            f"{where}: activation {name or function!r} has no ONNX form in birnn's exporter. "
            "Use one of tanh, sigmoid, relu, linear, elu, selu, softplus, softsign, "
            "exponential, gelu, softmax, log_softmax, hard_sigmoid, silu, leaky_relu, "
            "relu6, or export with format='torch'."
        )

    def graph(self, name: str) -> Any:
        return self.helper.make_graph(
            self.nodes, name, self.inputs, self.outputs, initializer=self.initializers
        )
