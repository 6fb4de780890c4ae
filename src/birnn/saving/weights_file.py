"""Keras 3's HDF5 weights layout: `save_weights`/`load_weights` and the `.keras` weights.

Layout (observed on files Keras 3.15.1 writes; `model.weights.h5` inside a
`.keras` zip and a standalone `*.weights.h5` are the same thing):

- Every object in the model tree is a group whose path is the chain of
  *attribute names* leading to it from the model, and which holds a `vars`
  group with an attribute `name` (the object's `.name`) and one dataset per
  own variable, named `"0"`, `"1"`, ... in the object's order: trainable
  variables in creation order, then non-trainable ones (a frozen layer keeps
  that order). The model itself is the root: `/vars` (`name` = model name,
  usually empty).
- Objects are reached by walking attributes in sorted order, private (`_x`)
  ones last. `Sequential` and functional models first yield `layers`: for a
  functional model all its layers *including* `InputLayer`s (empty
  `layers/input_layer/vars`), for a `Sequential` its layers *without* the
  `InputLayer`.
- The items of a list attribute are named by their class in snake case, with a
  counter for repeats: `layers/dense`, `layers/dense_1`, `layers/bidirectional`,
  `layers/bidirectional_1`, ... -- never by the layer's `.name`, so two
  instances of one architecture share paths whatever their names. A functional
  model nested in another is `functional`; a nested list is `container`.
- Each object is written once, under the first path that reaches it (shared
  layers appear once).
- So a `Bidirectional` LSTM is `layers/bidirectional/forward_layer/cell/vars/{0,1,2}`
  (`kernel (in, 4u)`, `recurrent_kernel (u, 4u)`, `bias (4u,)`) and
  `.../backward_layer/cell/vars/...`; the RNN layers themselves have an empty
  `vars` (`name` = `forward_lstm`...). `TimeDistributed` is
  `time_distributed/layer/vars`, `RNN(StackedRNNCells([...]))` is
  `rnn/cell/cells/{simple_rnn_cell,gru_cell,...}/vars`, a nested `Sequential`
  is `sequential/layers/dense/vars`, `Embedding` is `embedding/vars/0`.
- A compiled model adds `optimizer/vars/{0..}` (`iterations` int32,
  `learning_rate` float32, then per-variable slots: Adam `m, v` for each
  trainable weight in model order, interleaved). Keras builds its optimizer on
  the first training step (or when loading a file), so a compiled, never-trained
  Keras model writes `iterations` and `learning_rate` only; birnn's optimizer is
  bound at `compile()` and writes its zero slots too (Keras then loads them
  without its "Skipping variable loading" warning). Stateful RNN states, dropout
  seed generators and metric variables are not saved.
- Datasets are plain arrays of the variable's dtype; bfloat16 ones hold the raw
  16 bits as an opaque 2-byte type (`|V2`) and carry an attribute
  `dtype="bfloat16"`. Groups for layers without variables exist but
  are empty; readers ignore groups the model does not have.

birnn walks its own layer tree the same way: a layer's `torch.nn.Module`
children are its attributes (`forward_layer`, `cell`, `layer`, `cells`...), its
own variables are the weights it made with `add_weight`, in Keras's order.
Loading reads every array into memory and checks counts and shapes against the
model first; only when all fit are any weights assigned, so a failed load leaves
the model as it was.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
import torch
from torch import nn

from birnn import backend
from birnn.saving import atomic
from birnn.saving.errors import FileFormatError, WeightsMismatchError
from birnn.saving.operations import is_operation

WEIGHTS_SUFFIX = ".weights.h5"


@dataclass
class _Entry:
    """One object of the tree that owns a `vars` group."""

    path: str
    obj: Any
    weights: list[tuple[str, nn.Parameter]] = field(default_factory=list)
    named: bool = False  # datasets named by parameter (a torch module), not "0", "1"...


def _name_key(name: str) -> str:
    return f"~{name}" if name.startswith("_") else name


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def _is_layer(obj: Any) -> bool:
    from birnn.layers.layer import Layer

    return isinstance(obj, Layer)


def _model_kind(obj: Any) -> str | None:
    """`"sequential"`, `"functional"` or `None` for the containers Keras walks specially."""
    names = {cls.__name__ for cls in type(obj).__mro__}
    if "Sequential" in names:
        return "sequential"
    if names & {"Model", "Functional"} and getattr(obj, "functional_graph", None) is not None:
        return "functional"
    return None  # layers and subclassed models: attributes only, as Keras walks a Layer


def _class_key(obj: Any) -> str:
    """The name Keras gives a list item: its class in snake case."""
    cls = type(obj)
    if cls.__name__ == "Model" and cls.__module__.startswith("birnn.") and _model_kind(obj):
        return "functional"
    return backend.to_snake_case(cls.__name__)


def _torch_module_entry(module: nn.Module, path: str) -> _Entry:
    """A plain torch module, as Keras writes its `TorchModuleWrapper`: named datasets."""
    return _Entry(path, module, list(module.named_parameters()), named=True)


def _children(obj: Any) -> Iterator[tuple[str, Any]]:
    kind = _model_kind(obj)
    if kind is not None:
        layers = list(obj.layers)  # no operation nodes: they own no group in Keras's files
        if kind == "sequential":
            layers = [layer for layer in layers if type(layer).__name__ != "InputLayer"]
        yield "layers", layers
    yield from sorted(obj.named_children(), key=lambda item: _name_key(item[0]))


def _is_container(obj: Any) -> bool:
    from birnn.layers.layer import is_torch_leaf
    from birnn.layers.tracking import TrackedStructure

    return isinstance(
        obj, (list, tuple, nn.ModuleList, nn.Sequential, nn.ModuleDict, TrackedStructure)
    ) and not (isinstance(obj, nn.Module) and is_torch_leaf(obj))


def _walk(obj: Any, path: str, seen: set[int], out: list[_Entry]) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    out.append(_Entry(path, obj, obj.named_own_weights()))
    kind = _model_kind(obj)
    if kind is not None:
        # Keras writes no group for a Sequential's InputLayer or for a functional
        # model's operation nodes, not even under the private list that holds them
        # (which birnn would otherwise reach as `_layers`).
        for _, child in obj.named_children():
            if _is_container(child):
                items = child.values() if isinstance(child, nn.ModuleDict) else child
                seen.update(
                    id(x)
                    for x in items
                    if is_operation(x)
                    or (kind == "sequential" and type(x).__name__ == "InputLayer")
                )
    for attr, child in _children(obj):
        if _is_layer(child):
            _walk(child, _join(path, attr), seen, out)
        elif _is_container(child):
            _walk_container(child, _join(path, attr), seen, out, set())
        elif isinstance(child, nn.Module) and id(child) not in seen:
            seen.add(id(child))
            out.append(_torch_module_entry(child, _join(path, attr)))


def _walk_container(
    container: Any, path: str, seen: set[int], out: list[_Entry], seen_containers: set[int]
) -> None:
    if id(container) in seen_containers:
        return
    seen_containers.add(id(container))
    if isinstance(container, nn.ModuleDict):
        items = list(container.values())
    elif hasattr(container, "structure"):  # a tracked list/tuple/dict attribute
        items = container.items()
    else:
        items = list(container)
    unique = backend.NameCounter()
    for item in items:
        if _is_layer(item):
            _walk(item, _join(path, unique(_class_key(item))), seen, out)
        elif _is_container(item):
            _walk_container(item, _join(path, unique("container")), seen, out, seen_containers)
        elif isinstance(item, nn.Module) and id(item) not in seen:
            seen.add(id(item))
            out.append(_torch_module_entry(item, _join(path, unique("torch_module_wrapper"))))


def weight_tree(model: Any) -> list[_Entry]:
    """Every layer of `model` with its h5 group path and own weights, in Keras's walk order.

    Args:
        model: A birnn model or layer.

    Returns:
        Entries with `.path` (`""` for the model, `"layers/bidirectional"`...),
        `.obj` and `.weights` (a list of `(keras_name, parameter)`).

    Examples:

    >>> import birnn
    >>> layer = birnn.layers.Bidirectional(birnn.layers.LSTM(2))
    >>> _ = layer(__import__("torch").zeros(1, 3, 4))
    >>> for entry in weight_tree(layer):
    ...     print(repr(entry.path), [name for name, _ in entry.weights])
    ''  []
    'backward_layer' []
    'backward_layer/cell' ['kernel', 'recurrent_kernel', 'bias']
    'forward_layer' []
    'forward_layer/cell' ['kernel', 'recurrent_kernel', 'bias']
    """
    out: list[_Entry] = []
    _walk(model, "", set(), out)
    return out


# ---------------------------------------------------------------------------- writing
def _vars_path(path: str) -> str:
    return _join(path, "vars")


def write_h5(model: Any, target: Any) -> None:
    """Writes `model`'s weights in Keras's layout into `target` (a path or file object)."""
    with h5py.File(target, "w") as f:
        for entry in weight_tree(model):
            group = f.create_group(_vars_path(entry.path))
            name = getattr(entry.obj, "name", None)
            if isinstance(name, str):
                group.attrs["name"] = name
            for index, (param_name, param) in enumerate(entry.weights):
                key = param_name if entry.named else str(index)
                value = param.detach().cpu()
                if value.dtype == torch.bfloat16:
                    # As Keras writes it: the raw 16 bits as an opaque 2-byte type.
                    bits = value.contiguous().view(torch.int16).numpy().view("V2")
                    dataset = group.create_dataset(key, data=bits)
                    dataset.attrs["dtype"] = "bfloat16"
                else:
                    group[key] = value.numpy()
        _write_optimizer(model, f)


def weights_bytes(model: Any) -> bytes:
    """`model`'s weights as the bytes of a Keras `.weights.h5` file."""
    buffer = io.BytesIO()
    write_h5(model, buffer)
    return buffer.getvalue()


def _write_optimizer(model: Any, f: h5py.File) -> None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not hasattr(optimizer, "save_own_variables"):
        return
    store: dict[str, Any] = {}
    optimizer.save_own_variables(store)
    _write_store(f.create_group("optimizer/vars"), optimizer, store)
    inner = getattr(optimizer, "inner_optimizer", None)
    if inner is not None:  # a LossScaleOptimizer: Keras also writes its inner one's alone
        inner_store: dict[str, Any] = {}
        inner.save_own_variables(inner_store)
        _write_store(f.create_group("optimizer/inner_optimizer/vars"), inner, inner_store)
    children = getattr(optimizer, "saved_children", None)
    if callable(children):  # a MultiOptimizer: Keras also writes each sub-optimizer's alone
        for key, child in children().items():
            child_store: dict[str, Any] = {}
            child.save_own_variables(child_store)
            _write_store(f.create_group(f"optimizer/optimizers/{key}/vars"), child, child_store)


def _write_store(group: Any, optimizer: Any, store: dict[str, Any]) -> None:
    name = getattr(optimizer, "name", None)
    if isinstance(name, str):
        group.attrs["name"] = name
    for key, value in store.items():
        group[key] = backend.to_numpy(value)


def save_weights(model: Any, filepath: str | os.PathLike, overwrite: bool = True) -> None:
    """Saves `model`'s weights to a Keras-compatible `.weights.h5` file, atomically.

    Keras 3 (`model.load_weights`) reads the file, and so does `load_weights`.

    Args:
        model: A built birnn model (or layer).
        filepath: Destination; must end in `.weights.h5`.
        overwrite: If `False`, an existing file is an error.

    Raises:
        ValueError: for a name without the `.weights.h5` suffix.
        FileExistsError: when `overwrite=False` and the file exists.

    Examples:

    >>> import os, tempfile, torch, birnn
    >>> model = birnn.Sequential([birnn.Input((3, 2)), birnn.layers.LSTM(4)])
    >>> path = os.path.join(tempfile.mkdtemp(), "m.weights.h5")
    >>> save_weights(model, path)
    >>> model.load_weights(path)
    """
    filepath = os.fspath(filepath)
    if not filepath.endswith(WEIGHTS_SUFFIX):
        raise ValueError(
            f"The filename must end in `{WEIGHTS_SUFFIX}` (Keras's weights format). "
            f"Received: filepath={filepath}"
        )
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False.")
    atomic.write_bytes(filepath, weights_bytes(model))


# ---------------------------------------------------------------------------- reading
def _bfloat16_to_float32(value: np.ndarray) -> np.ndarray:
    """A dataset Keras marked `dtype="bfloat16"` as float32 (exactly: bf16 is a prefix)."""
    if value.dtype.kind == "f":
        return value.astype(np.float32)
    if value.dtype.itemsize != 2:
        raise TypeError(f"a bfloat16 dataset must hold 2-byte items, not {value.dtype}")
    bits = np.ascontiguousarray(value).view("<u2").astype(np.uint32) << 16
    return bits.view(np.float32)


def _read_group(group: h5py.Group) -> dict[str, np.ndarray]:
    arrays = {}
    for key, dataset in group.items():
        if not isinstance(dataset, h5py.Dataset):
            continue
        value = np.asarray(dataset[()])
        if dataset.attrs.get("dtype") in ("bfloat16", b"bfloat16"):
            value = _bfloat16_to_float32(value)
        arrays[key] = value
    return arrays


def _describe(entry: _Entry) -> str:
    name = getattr(entry.obj, "name", type(entry.obj).__name__)
    where = entry.path or "<model root>"
    return f"layer '{name}' ({type(entry.obj).__name__}, at '{where}')"


def as_tensor(array: np.ndarray, param: nn.Parameter) -> torch.Tensor:
    """`array` as a tensor of `param`'s dtype (on the CPU), or `TypeError`/`ValueError`."""
    if array.dtype.kind not in "biuf":
        raise TypeError(f"it holds {array.dtype} data, not numbers")
    return torch.from_numpy(np.array(array, copy=True)).to(dtype=param.dtype)


def _plan_entry(
    entry: _Entry, f: h5py.File
) -> tuple[list[tuple[nn.Parameter, torch.Tensor]], list[str]]:
    """The `(parameter, tensor)` pairs of one object's weights, or what stops them."""
    vars_path = _vars_path(entry.path)
    group = f.get(vars_path) if entry.path else f.get("vars")
    arrays = _read_group(group) if isinstance(group, h5py.Group) else {}
    if len(arrays) != len(entry.weights):
        expected = [f"{n} {tuple(p.shape)}" for n, p in entry.weights]
        if not entry.weights and not getattr(entry.obj, "built", True):
            return [], [
                f"{_describe(entry)} was never built, but the file has "
                f"{len(arrays)} weights for it."
            ]
        return [], [
            f"{_describe(entry)} expects {len(entry.weights)} weights {expected}, "
            f"but '{vars_path}' in the file holds {len(arrays)}."
        ]
    pairs: list[tuple[nn.Parameter, torch.Tensor]] = []
    problems: list[str] = []
    for index, (name, param) in enumerate(entry.weights):
        key = name if entry.named else str(index)
        array = arrays.get(key)
        if array is None:
            problems.append(f"{_describe(entry)}: weight {index} ('{name}') is missing.")
            continue
        if tuple(array.shape) != tuple(param.shape):
            problems.append(
                f"{_describe(entry)}: weight '{name}' has shape {tuple(param.shape)}, "
                f"but the file's '{vars_path}/{key}' has shape {tuple(array.shape)}."
            )
            continue
        try:
            pairs.append((param, as_tensor(array, param)))
        except (TypeError, ValueError) as e:
            problems.append(
                f"{_describe(entry)}: weight '{name}' cannot be read from the file's "
                f"'{vars_path}/{key}': {e}."
            )
    return pairs, problems


def plan_assignments(
    model: Any, f: h5py.File, skip_mismatch: bool = False
) -> tuple[list[tuple[nn.Parameter, torch.Tensor]], list[str]]:
    """Matches the file's arrays to `model`'s weights without touching the model.

    Every array is converted to its parameter's dtype here, so that assigning
    them afterwards cannot fail halfway.

    Args:
        model: The birnn model (or layer).
        f: The open weights file.
        skip_mismatch: If `True`, an object (a layer, a cell) with any problem
            contributes no pairs at all, and the others still do.

    Returns:
        `(pairs, problems)`: `(parameter, tensor)` for every weight that can be
        loaded, and a description of every missing, extra, misshapen or
        non-numeric one.
    """
    pairs: list[tuple[nn.Parameter, torch.Tensor]] = []
    problems: list[str] = []
    for entry in weight_tree(model):
        entry_pairs, entry_problems = _plan_entry(entry, f)
        problems.extend(entry_problems)
        if not (skip_mismatch and entry_problems):
            pairs.extend(entry_pairs)
    return pairs, problems


def assign(pairs: list[tuple[nn.Parameter, torch.Tensor]]) -> None:
    """Copies validated tensors (already of each parameter's dtype) into their parameters."""
    with torch.no_grad():
        for param, value in pairs:
            param.copy_(value.to(device=param.device))


def open_h5(source: Any, name: str) -> h5py.File:
    """`source` opened for reading; what is not HDF5 raises `FileFormatError` naming `name`."""
    try:
        return h5py.File(source, "r")
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        raise FileFormatError(
            f"{name} is not a readable HDF5 weights file (truncated, corrupt, or another "
            f"format): {e}"
        ) from e


def _problem_list(problems: list[str]) -> str:
    shown = "\n  ".join(problems[:10])
    more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
    return f"\n  {shown}{more}"


def load_h5(model: Any, source: Any, name: str, skip_mismatch: bool = False) -> None:
    """Loads weights from an open-able HDF5 `source` into `model`, all or nothing.

    Args:
        model: The birnn model.
        source: A path or binary file object holding a Keras weights file.
        name: How to name the file in error messages.
        skip_mismatch: If `True`, the layers (or cells) whose weights do not fit
            (another count or shape, missing from the file) keep their values and a
            warning lists them; the others are loaded.

    Raises:
        FileFormatError: the bytes are not a readable HDF5 file.
        WeightsMismatchError: the file's weights do not fit the model (and
            `skip_mismatch` is `False`).
    """
    with open_h5(source, name) as f:
        try:
            if "vars" not in f and "layers" not in f:
                raise FileFormatError(
                    f"{name} holds no Keras 3 weights (no 'vars' or 'layers' group)."
                )
            pairs, problems = plan_assignments(model, f, skip_mismatch)
            optimizer_arrays = _read_group(f["optimizer/vars"]) if "optimizer/vars" in f else None
        except (OSError, KeyError, RuntimeError) as e:
            if isinstance(e, FileFormatError):
                raise
            raise FileFormatError(f"{name} could not be read (truncated or corrupt): {e}") from e
    model_name = getattr(model, "name", "?")
    if problems and not skip_mismatch:
        raise WeightsMismatchError(
            f"The weights in {name} do not fit model '{model_name}'; nothing was loaded:"
            f"{_problem_list(problems)}"
        )
    if problems:
        warnings.warn(
            f"skip_mismatch=True: some weights in {name} do not fit model '{model_name}'; "
            f"those layers keep their values, the others were loaded:{_problem_list(problems)}",
            stacklevel=3,
        )
    assign(pairs)
    _load_optimizer(model, optimizer_arrays)


def _load_optimizer(model: Any, arrays: dict[str, np.ndarray] | None) -> None:
    optimizer = getattr(model, "optimizer", None)
    if not arrays or optimizer is None or not hasattr(optimizer, "load_own_variables"):
        return
    expected = getattr(optimizer, "variables", None)
    fresh = "0" in arrays and np.ndim(arrays["0"]) == 0 and int(arrays["0"]) == 0
    if fresh and expected is not None and len(expected) != len(arrays):
        return  # an optimizer that never stepped: nothing to restore
    if getattr(optimizer, "built", False) and expected is not None:
        # Check everything first (as the model's weights are), so that a file written
        # with another optimizer leaves this one as it was instead of half-loaded.
        saved = [arrays.get(str(i)) for i in range(len(arrays))]
        if len(saved) != len(expected) or any(
            a is None or np.shape(a) != np.shape(e) for a, e in zip(saved, expected)
        ):
            warnings.warn(
                f"Optimizer state was not restored: optimizer '{optimizer.name}' has "
                f"{len(expected)} variables, the file's optimizer {len(arrays)} of other "
                "shapes (saved with another optimizer?). The model's weights were loaded.",
                stacklevel=3,
            )
            return
    try:
        optimizer.load_own_variables(arrays)
    except (ValueError, RuntimeError) as e:
        warnings.warn(f"Optimizer state was not restored: {e}", stacklevel=3)
