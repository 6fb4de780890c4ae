"""When `LSTM`, `GRU` and `Bidirectional` run in the fused kernels, and how they call them.

A layer picks its path once per call. The fused kernels (`birnn.ops.fused_rnn`)
compute exactly what the generic loop computes for the built-in cells with
`tanh` and `sigmoid`, a GRU with `reset_after=True`, and no recurrent dropout
in training; any mask and input dropout stay on the fused path. `use_cudnn`
chooses: `"auto"` takes the fused path when it applies, `False` never does,
`True` insists and raises a `ValueError` for a configuration it cannot run.
"""

from __future__ import annotations

from typing import Any

import torch

from birnn import activations
from birnn.layers.rnn.dropout import reset_dropout_masks
from birnn.ops import fused_rnn
from birnn.tree import flatten as flatten_structure

_TANH = (activations.tanh, torch.tanh)
_SIGMOID = (activations.sigmoid, torch.sigmoid)


_BUILTIN_LAYERS: list[tuple[str, type, type]] = []


def register_builtin(kind: str, layer_class: type, cell_class: type) -> None:
    """Declares `layer_class` (with `cell_class`) as running in the `kind` fused kernel.

    `LSTM` and `GRU` call it where they are defined (they import this module).
    """
    _BUILTIN_LAYERS.append((kind, layer_class, cell_class))


def _builtin_classes(layer: Any) -> tuple[str, type, type] | None:
    """`(kind, layer_class, cell_class)` for a built-in LSTM / GRU layer, else `None`."""
    for entry in _BUILTIN_LAYERS:
        if isinstance(layer, entry[1]):
            return entry
    return None


def _problem(
    layer: Any, cell: Any, kind: str, cell_class: type, training: bool, strict: bool
) -> str | None:
    """Why `layer` (with its `cell`) cannot run fused now (`None` if it can).

    `strict` judges the configuration as `use_cudnn=True` does (as Keras does):
    any recurrent dropout is a problem, even where inference would ignore it.
    """
    cell_type = type(cell)
    if not (
        isinstance(cell, cell_class)
        and cell_type.call is cell_class.call
        and cell_type._run_sequence is cell_class._run_sequence
    ):
        return "the cell is not the built-in cell (its `call()` is replaced)"
    if cell.activation not in _TANH:
        return "`activation` must be 'tanh'"
    if cell.recurrent_activation not in _SIGMOID:
        return "`recurrent_activation` must be 'sigmoid'"
    if kind == "gru" and not cell.reset_after:
        return "`reset_after` must be True"
    if layer.unroll:
        return "`unroll` must be False"
    recurrent_dropout = cell.recurrent_dropout
    if recurrent_dropout and (strict or (training and cell._dropout_applies(recurrent_dropout))):
        return "`recurrent_dropout` must be 0"
    if training and cell.dropout_mask_count and cell._dropout_applies(cell.dropout):
        return "`dropout` with `implementation=1` (one mask per gate) is not supported"
    return None


def fused_kind(layer: Any, training: bool) -> str | None:
    """`"lstm"` or `"gru"` if this call of `layer` runs in the fused kernel, else `None`.

    Raises:
        ValueError: if `layer.use_cudnn is True` but its configuration cannot
            run in the fused kernel.
    """
    builtin = _fusable(layer, layer.cell, training)
    return None if builtin is None else builtin[0]


def _fusable(layer: Any, cell: Any, training: bool) -> tuple[str, type, type] | None:
    """`fused_kind`'s answer as `(kind, layer_class, cell_class)`, or `None`."""
    if torch.compiler.is_exporting():
        # `torch.export` decomposes the kernel into one step per timestep, fixing the
        # program's sequence length; the generic path exports a length-generic loop.
        return None
    use_cudnn = getattr(layer, "use_cudnn", "auto")
    builtin = None if use_cudnn is False else _builtin_classes(layer)
    if builtin is None:
        return None
    problem = _problem(layer, cell, builtin[0], builtin[2], training, strict=use_cudnn is True)
    if problem is None:
        return builtin
    if use_cudnn is True:
        raise ValueError(
            f"Layer '{layer.name}': use_cudnn=True was specified, but the fused (cuDNN-style) "
            f"kernel does not support this layer configuration: {problem}. Pass "
            "use_cudnn='auto' to fall back to the generic implementation."
        )
    return None


def run(
    layer: Any,
    inputs: torch.Tensor,
    initial_state: list,
    mask: torch.Tensor | None,
    training: bool,
) -> tuple | None:
    """`layer._run(...)`'s triple from the fused kernel, or `None` if it does not apply."""
    kind = fused_kind(layer, training)
    if kind is None:
        return None
    cell = layer.cell
    cell._check_features(inputs, layer.name)
    states = flatten_structure(initial_state)
    function = fused_rnn.lstm if kind == "lstm" else fused_rnn.gru
    return function(
        inputs,
        *states,
        cell.kernel,
        cell.recurrent_kernel,
        cell.bias,
        mask=mask,
        go_backwards=layer.go_backwards,
        return_all_outputs=layer.return_sequences,
        dropout_mask=_input_dropout_mask(cell, inputs, training),
    )


def _input_dropout_mask(cell: Any, inputs: torch.Tensor, training: bool) -> torch.Tensor | None:
    """The cell's `(batch, features)` input dropout mask for this sequence, if any applies."""
    if training and cell._dropout_applies(cell.dropout):
        return cell.get_dropout_mask(inputs[:, 0])
    return None


def _pair_weights(
    forward: Any, backward: Any, inputs: torch.Tensor, training: bool
) -> tuple | None:
    """`(kind, cells, weights)` if both layers of a `Bidirectional` run fused now, else `None`.

    `weights` holds each cell's `(kernel, recurrent_kernel, bias)`, each fetched
    once: every call of the layer comes here, and a `torch.nn.Module` attribute
    lookup is slow.
    """
    kind = None
    cells = []
    weights = []
    for layer in (forward, backward):
        cell = getattr(layer, "cell", None)
        builtin = _fusable(layer, cell, training)
        if builtin is None:
            return None
        layer_kind, layer_class, _ = builtin
        layer_type = type(layer)
        if (
            layer_type.call is not layer_class.call  # a subclass adding to `call()` or `_run()`
            or layer_type._run is not layer_class._run
            or layer.stateful
            or layer.activity_regularizer is not None
            or not layer.built
            or (kind is not None and layer_kind != kind)
        ):
            return None
        kernel = cell.kernel
        if kernel.dtype != inputs.dtype:
            return None
        if inputs.shape[-1] != kernel.shape[0]:
            cell._check_features(inputs, layer.name)  # raises
        kind = layer_kind
        cells.append(cell)
        weights.append((kernel, cell.recurrent_kernel, cell.bias))
    return kind, cells, weights


def run_pair(
    forward: Any,
    backward: Any,
    inputs: torch.Tensor,
    mask: Any,
    training: bool,
    forward_state: list | None,
    backward_state: list | None,
) -> fused_rnn.Pair | None:
    """A `Bidirectional`'s two layers in one fused run, or `None` when the pair does not
    run fused (the caller then calls the two layers).

    The result holds both layers' last outputs, output sequences when they
    return them, and final states, the forward layer's first. Sequences are
    lined up in the forward layer's processing order; its `sequences` is then
    the two side by side in one tensor, else `None`. Parts nobody reads are
    never made (see `fused_rnn.Pair`).
    """
    if inputs.dim() != 3 or inputs.shape[1] == 0:
        return None
    fusable = _pair_weights(forward, backward, inputs, training)
    if fusable is None:
        return None
    kind, cells, weights = fusable
    mask = forward._standardize_mask(mask, inputs)
    directions = []
    for layer, cell, (kernel, recurrent_kernel, bias), state in zip(
        (forward, backward), cells, weights, (forward_state, backward_state)
    ):
        if state is not None:
            state = flatten_structure(layer._initial_state(state, inputs))
        directions.append(
            fused_rnn.Direction(
                kernel,
                recurrent_kernel,
                bias,
                state,
                layer.go_backwards,
                layer.zero_output_for_mask and mask is not None,
                layer.return_sequences,
                _input_dropout_mask(cell, inputs, training),
            )
        )
    try:
        pair = fused_rnn.bidirectional(kind, inputs, *directions, mask)
    finally:
        if training:
            for cell in cells:
                reset_dropout_masks(cell)
    if not (forward.return_sequences and forward.go_backwards):
        return pair  # sequences, if any, in time order: the forward layer's
    # Lined up in time order: flip into the forward layer's (reversed) order.
    sequences = pair.sequences.flip(1)
    units_fw = forward.cell.units

    def outputs() -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(sequences.split([units_fw, sequences.shape[-1] - units_fw], dim=-1))

    return fused_rnn.Pair(sequences, lambda: pair.last_outputs, outputs, lambda: pair.states)
