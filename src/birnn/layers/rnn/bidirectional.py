"""`Bidirectional`: one sequence layer run over the inputs in both directions.

A call takes one of two paths: `_call_fused` runs both layers in one
`birnn.ops.fused_rnn.run_pair` when each answers `fused_direction()` (built-in
LSTM and GRU) and running that is all a call of it would do; `_call_loop`
calls the two layers one after the other.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from birnn import backend
from birnn.dtype_policies import call_scope, cast_input, same_policy
from birnn.layers.layer import Layer
from birnn.layers.rnn.packed import call_with_packed, is_packed
from birnn.layers.rnn.rnn import sequence_mask
from birnn.layers.serialization import deserialize_layer, serialize_layer
from birnn.ops import fused_rnn
from birnn.ops.masks import zero_masked_steps
from birnn.tree import flatten as flatten_structure

_MERGE_MODES = ("concat", "sum", "mul", "ave", None)
_REQUIRED_ATTRIBUTES = ("go_backwards", "return_sequences", "return_state")
_COMMON_ATTRIBUTES = ("stateful", "return_sequences", "return_state")


class Bidirectional(Layer):
    """Bidirectional wrapper for RNNs.

    The wrapped layer is copied twice through its own class's `from_config()`:
    a forward copy named `forward_<name>` and a backward copy named
    `backward_<name>` whose `go_backwards` is flipped. Both read the same input;
    their outputs are merged according to `merge_mode`. With
    `return_sequences=True` the backward output is flipped back so that it lines
    up step by step with the forward output.

    Args:
        layer: `birnn.layers.RNN` instance, such as `birnn.layers.LSTM` or
            `birnn.layers.GRU`. It could also be a `birnn.layers.Layer` instance
            that meets the following criteria:
            1. Be a sequence-processing layer (accepts 3D+ inputs).
            2. Have a `go_backwards`, `return_sequences` and `return_state`
            attribute (with the same semantics as for the `RNN` class).
            3. Have an `input_spec` attribute.
            4. Implement serialization via `get_config()` and `from_config()`.
            Note that the recommended way to create new RNN layers is to write a
            custom RNN cell and use it with `birnn.layers.RNN`, instead of
            subclassing `birnn.layers.Layer` directly.
            When `return_sequences` is `True`, the output of the masked timestep
            will be zero regardless of the layer's original
            `zero_output_for_mask` value.
        merge_mode: Mode by which outputs of the forward and backward RNNs will
            be combined. One of `{"sum", "mul", "concat", "ave", None}`. If
            `None`, the outputs will not be combined, they will be returned as a
            tuple. Defaults to `"concat"`.
        weights: Optional list of NumPy arrays: the forward layer's weights
            followed by the backward layer's weights (first half forward, second
            half backward). They are set once the layer is built.
        backward_layer: Optional `birnn.layers.RNN`, or `birnn.layers.Layer`
            instance to be used to handle backwards input processing. If
            `backward_layer` is not provided, the layer instance passed as the
            `layer` argument will be used to generate the backward layer
            automatically. Note that the provided `backward_layer` layer should
            have properties matching those of the `layer` argument, in particular
            it should have the same values for `stateful`, `return_state`,
            `return_sequences`, etc. In addition, `backward_layer` and `layer`
            should have different `go_backwards` argument values. A `ValueError`
            will be raised if these requirements are not met. The instance itself
            is used (not a copy), as in Keras.
        **kwargs: Base layer arguments (`name`, `trainable`, `dtype`, ...).

    Call arguments:
        The call arguments for this layer are the same as those of the wrapped
        RNN layer (`mask`, `training`, `initial_state`). Beware that when passing
        the `initial_state` argument during the call of this layer, the first
        half in the list of elements in the `initial_state` list will be passed
        to the forward RNN call and the last half in the list of elements will be
        passed to the backward RNN call. A `torch.nn.utils.rnn.PackedSequence`
        input is treated as right-padded input with the mask of its lengths;
        the output is padded. Torch hooks registered on `forward_layer` or
        `backward_layer` fire: the two layers are then called one by one
        instead of in one fused kernel call.

    Returns:
        The merged output (a tensor), or the tuple `(forward, backward)` when
        `merge_mode=None`. With `return_state=True`, a tuple: the output(s), then
        the forward layer's final states, then the backward layer's.

    Note: instantiating a `Bidirectional` layer from an existing RNN layer
    instance will not reuse the weights state of the RNN layer instance -- the
    `Bidirectional` layer will have freshly initialized weights.

    Examples:

    >>> import torch
    >>> from birnn.layers import LSTM, Bidirectional
    >>> x = torch.rand(2, 5, 4)
    >>> layer = Bidirectional(LSTM(3, return_sequences=True, name="encoder"))
    >>> layer(x).shape
    torch.Size([2, 5, 6])
    >>> layer.forward_layer.name, layer.backward_layer.name
    ('forward_encoder', 'backward_encoder')
    >>> output, h_fw, c_fw, h_bw, c_bw = Bidirectional(
    ...     LSTM(3, return_state=True), merge_mode="sum")(x)
    >>> output.shape, h_bw.shape
    (torch.Size([2, 3]), torch.Size([2, 3]))

    With a custom backward layer, in a model:

    ```python
    forward_layer = LSTM(10, return_sequences=True)
    backward_layer = LSTM(10, activation="relu", return_sequences=True,
                          go_backwards=True)
    model = Sequential([
        Input(shape=(5, 10)),
        Bidirectional(forward_layer, backward_layer=backward_layer),
        Dense(5, activation="softmax"),
    ])
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop")
    ```
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if is_packed(args):
            return call_with_packed(self, super().__call__, args, kwargs)
        return super().__call__(*args, **kwargs)

    def __init__(
        self,
        layer: Layer,
        merge_mode: str | None = "concat",
        weights: Sequence[Any] | None = None,
        backward_layer: Layer | None = None,
        **kwargs: Any,
    ) -> None:
        _check_wrappable(layer, "layer")
        if backward_layer is not None:
            _check_wrappable(backward_layer, "backward_layer")
        if not any(merge_mode is mode or merge_mode == mode for mode in _MERGE_MODES):
            raise ValueError(
                f"Bidirectional: invalid `merge_mode` {merge_mode!r}. Expected one of "
                '{"concat", "sum", "mul", "ave", None}.'
            )
        if weights is not None and not isinstance(weights, (list, tuple)):
            raise ValueError(
                "Bidirectional: argument `weights` must be a list of arrays (the forward "
                f"layer's weights, then the backward layer's). Received: {type(weights)}"
            )
        super().__init__(**kwargs)

        self.forward_layer: Any = _copy_layer(layer, "forward_", bool(layer.go_backwards))
        if backward_layer is None:
            # Keras 3.15 sets `go_backwards=True` here, so wrapping a layer that already
            # goes backwards fails there; the documentation (and tf-keras) flip it.
            backward_layer = _copy_layer(layer, "backward_", not layer.go_backwards)
        self.backward_layer: Any = backward_layer
        if hasattr(layer, "use_cudnn"):  # not part of every layer's config
            self.forward_layer.use_cudnn = layer.use_cudnn
            self.backward_layer.use_cudnn = layer.use_cudnn
        self._check_directions()
        for sublayer in (self.forward_layer, self.backward_layer):
            # A masked step must output zero in sequences; the last output of a
            # right-padded sequence must stay the last valid one.
            if getattr(sublayer, "zero_output_for_mask", None) is not None:
                sublayer.zero_output_for_mask = sublayer.return_sequences

        self.merge_mode = merge_mode
        self._pending_weights = list(weights) if weights else None
        self.stateful = bool(getattr(layer, "stateful", False))
        self.return_sequences = bool(layer.return_sequences)
        self.return_state = bool(layer.return_state)
        self.supports_masking = True
        self.input_spec = layer.input_spec
        self._num_states_seen: int | None = None
        self._wrapped_name = layer.name
        self._expected_features: int | None = None
        if not self.trainable:
            self.trainable = False  # reach the sublayers' parameters too

    def _check_directions(self) -> None:
        forward, backward = self.forward_layer, self.backward_layer
        if bool(forward.go_backwards) == bool(backward.go_backwards):
            raise ValueError(
                f"Bidirectional '{self.name}': the forward and backward layers must have "
                "different `go_backwards` values. Received: forward_layer.go_backwards="
                f"{forward.go_backwards}, backward_layer.go_backwards={backward.go_backwards}"
            )
        for attr in _COMMON_ATTRIBUTES:
            forward_value = getattr(forward, attr, False)
            backward_value = getattr(backward, attr, False)
            if forward_value != backward_value:
                raise ValueError(
                    f"Bidirectional '{self.name}': the forward and backward layers must have "
                    f"the same value for attribute `{attr}`. Received: {attr}={forward_value} "
                    f"for the forward layer and {attr}={backward_value} for `backward_layer`."
                )

    # ------------------------------------------------------------------ build
    def build(self, sequences_shape: Any = None, initial_state_shape: Any = None) -> None:
        for sublayer in (self.forward_layer, self.backward_layer):
            sublayer.build_on_device(tuple(sequences_shape), self._build_device)
        if self._pending_weights is not None:
            weights, self._pending_weights = self._pending_weights, None
            self._set_initial_weights(weights)
        spec = self.forward_layer.input_spec
        spec = spec[0] if isinstance(spec, list) and spec else spec
        self._expected_features = (getattr(spec, "axes", None) or {}).get(-1)
        self.built = True

    def _set_initial_weights(self, weights: list) -> None:
        num_forward = len(self.forward_layer.weights)
        num_backward = len(self.backward_layer.weights)
        if len(weights) != num_forward + num_backward:
            raise ValueError(
                f"Bidirectional '{self.name}': argument `weights` holds {len(weights)} "
                f"arrays, but the forward and backward layers have {num_forward} + "
                f"{num_backward} weights."
            )
        # Keras 3.15 stores these as `initial_weights` and never uses them. `weights` is
        # the forward layer's then the backward layer's: all are checked before any is set.
        self.set_weights(weights)

    # ------------------------------------------------------------------ call
    def call(
        self,
        sequences: torch.Tensor,
        initial_state: Sequence[Any] | None = None,
        mask: torch.Tensor | None = None,
        training: bool | None = None,
    ) -> Any:
        if mask is not None:
            mask = sequence_mask(mask)
        features = self._expected_features
        if features is not None and sequences.shape[-1] != features:
            raise ValueError(
                f"Bidirectional '{self.name}' (wrapping layer '{self._wrapped_name}') was "
                f"built for inputs with {features} features (last axis), but received "
                f"inputs of shape {tuple(sequences.shape)}."
            )
        if not sequences.is_floating_point():  # integer or bool inputs, as Keras casts them
            sequences = sequences.to(self.dtype_torch)
        forward_state, backward_state = self._split_states(initial_state, "initial_state")
        pair = self._call_fused(sequences, mask, bool(training), forward_state, backward_state)
        if pair is None:
            (y_fw, y_bw), (states_fw, states_bw) = self._call_loop(
                sequences, mask, training, forward_state, backward_state
            )
            output = None
        else:
            states_fw, states_bw = pair.states
            output = None
            if not self.return_sequences:
                y_fw, y_bw = pair.last_outputs
            else:
                if self.forward_layer.go_backwards:
                    # In time order: flip into the forward layer's (reversed) order.
                    pair = dataclasses.replace(pair, sequences=pair.outputs_side_by_side.flip(1))
                if self.merge_mode == "concat":
                    # Already `torch.cat([y_fw, y_bw], -1)`, masked steps zeroed by the kernel.
                    output = self._cast(pair.outputs_side_by_side)
                else:
                    y_fw, y_bw = pair.outputs
        num_states = len(states_fw) + len(states_bw) if self.return_state else 0
        # A record of calls, not configuration: into `__dict__`, without a new config
        # version; compiled code writes it unread (a read value would be guarded on,
        # and the next call recompile).
        if torch.compiler.is_compiling() or num_states != self._num_states_seen:
            self.__dict__["_num_states_seen"] = num_states
        if output is None:
            if self.return_sequences and mask is not None:
                # Both are in the forward layer's order, reversed time if it goes backwards.
                steps = torch.flip(mask, dims=(1,)) if self.forward_layer.go_backwards else mask
                y_fw = _zero_masked_steps(self.forward_layer, y_fw, steps)
                y_bw = _zero_masked_steps(self.backward_layer, y_bw, steps)
            output = self._merge(y_fw, y_bw)
        if not self.return_state:
            return output
        states = (*states_fw, *states_bw)
        return (*output, *states) if self.merge_mode is None else (output, *states)

    def _call_fused(
        self,
        inputs: torch.Tensor,
        mask: torch.Tensor | None,
        training: bool,
        forward_state: list | None,
        backward_state: list | None,
    ) -> fused_rnn.Pair | None:
        """Both layers in one fused run, or `None` when they must be called.

        Sequences in the result are in time order.
        """
        forward, backward = self.forward_layer, self.backward_layer
        fusable = self._config_cached(
            ("fusable", training), lambda: _pair_is_fusable(forward, backward, training)
        )
        if not fusable or forward.has_call_hooks() or backward.has_call_hooks():
            return None
        # The fused run skips the layers' calls: apply their dtype policy here.
        inputs = cast_input(forward, inputs)
        dtype_scope = call_scope(forward, backward)
        layers = (forward, backward)
        if dtype_scope is None:
            return _fused_pair(layers, inputs, mask, training, forward_state, backward_state)
        with dtype_scope:
            return _fused_pair(layers, inputs, mask, training, forward_state, backward_state)

    def _call_loop(
        self,
        inputs: torch.Tensor,
        mask: torch.Tensor | None,
        training: bool | None,
        forward_state: list | None,
        backward_state: list | None,
    ) -> tuple[tuple[Any, Any], tuple[list, list]]:
        """Calls both layers: `((y_fw, y_bw), (states_fw, states_bw))`.

        Each `y` is what the layer returns, its sequences or its last output;
        the backward layer's sequences are flipped into the forward layer's order.
        """
        results = []
        for sublayer, state in (
            (self.forward_layer, forward_state),
            (self.backward_layer, backward_state),
        ):
            kwargs: dict[str, Any] = {"mask": mask, "training": training}
            if state is not None:
                kwargs["initial_state"] = state
            out = sublayer(inputs, **kwargs)
            if self.return_state:
                out = list(out)
                results.append((out[0], out[1:]))
            else:
                results.append((out, []))
        (y_fw, states_fw), (y_bw, states_bw) = results
        if self.return_sequences:
            y_bw = torch.flip(y_bw, dims=(1,))
        return (y_fw, y_bw), (states_fw, states_bw)

    def _cast(self, y: torch.Tensor) -> torch.Tensor:
        dtype = self.dtype_torch
        if not dtype.is_floating_point or y.dtype == dtype:
            return y
        return y if torch.is_autocast_enabled(y.device.type) else y.to(dtype)

    def _merge(self, y_fw: torch.Tensor, y_bw: torch.Tensor) -> Any:
        y_fw, y_bw = self._cast(y_fw), self._cast(y_bw)
        if self.merge_mode == "concat":
            return torch.cat([y_fw, y_bw], dim=-1)
        if self.merge_mode == "sum":
            return y_fw + y_bw
        if self.merge_mode == "ave":
            return (y_fw + y_bw) / 2
        if self.merge_mode == "mul":
            return y_fw * y_bw
        return (y_fw, y_bw)

    def _split_states(self, states: Any, argument: str) -> tuple[Any, Any]:
        """Splits `states` into the forward layer's and the backward layer's."""
        if states is None:
            return None, None
        if not isinstance(states, (list, tuple)):
            raise ValueError(
                f"Bidirectional '{self.name}': `{argument}` must be a list of tensors, the "
                "forward layer's states followed by the backward layer's. Received a "
                f"{type(states).__name__}."
            )
        states = list(states)
        counts = (_state_size_count(self.forward_layer), _state_size_count(self.backward_layer))
        same_kind = None in counts or counts[0] == counts[1]
        if same_kind and states and len(states) % 2 == 0:
            split = len(states) // 2
        elif not same_kind and len(states) == sum(c or 0 for c in counts):
            split = counts[0] or 0
        else:
            expected = (
                "an even number of tensors: the first half for the forward layer, the "
                "second half for the backward layer"
                if same_kind
                else f"{counts[0]} tensors for the forward layer followed by {counts[1]} "
                "for the backward layer"
            )
            raise ValueError(
                f"Bidirectional '{self.name}': `{argument}` must hold {expected}. "
                f"Received {len(states)} tensor(s)."
            )
        return states[:split], states[split:]

    # ------------------------------------------------------------------ states
    @property
    def states(self) -> tuple | None:
        """The forward layer's states then the backward layer's (stateful layers only)."""
        forward = getattr(self.forward_layer, "states", None)
        backward = getattr(self.backward_layer, "states", None)
        if forward is None or backward is None:
            return None
        forward, backward = flatten_structure(forward), flatten_structure(backward)
        if not forward or not backward:
            return None
        return (*forward, *backward)

    def reset_states(self, states: Sequence[Any] | None = None) -> None:
        """Resets the states of a stateful layer to zeros, or to `states`.

        Args:
            states: Optional list of arrays or tensors: the forward layer's states
                followed by the backward layer's (first half forward, second half
                backward).

        Raises:
            AttributeError: if the layer is not stateful (as in Keras).
            ValueError: if `states` cannot be split between the two layers.
        """
        if not self.stateful:
            raise AttributeError(
                f"Bidirectional '{self.name}': reset_states() needs a stateful layer; "
                "wrap a layer created with `stateful=True`."
            )
        forward_states, backward_states = self._split_states(states, "states")
        for sublayer, sub_states in (
            (self.forward_layer, forward_states),
            (self.backward_layer, backward_states),
        ):
            if sub_states is None:
                sublayer.reset_states()
            else:
                sublayer.reset_states(sub_states)

    def reset_state(self, states: Sequence[Any] | None = None) -> None:
        """Alias of `reset_states`."""
        self.reset_states(states)

    # ------------------------------------------------------------------ shapes & masks
    def compute_output_shape(self, sequences_shape: Any, initial_state_shape: Any = None) -> Any:
        sequences_shape = tuple(sequences_shape)
        forward = self.forward_layer.compute_output_shape(sequences_shape)
        backward = self.backward_layer.compute_output_shape(sequences_shape)
        states_fw: tuple = ()
        states_bw: tuple = ()
        if self.return_state:
            forward, states_fw = forward[0], tuple(forward[1:])
            backward, states_bw = backward[0], tuple(backward[1:])
        forward, backward = tuple(forward), tuple(backward)
        if self.merge_mode == "concat":
            last = None if None in (forward[-1], backward[-1]) else forward[-1] + backward[-1]
            outputs: tuple = ((*forward[:-1], last),)
        elif self.merge_mode is None:
            outputs = (forward, backward)
        else:
            outputs = (forward,)
        if self.return_state:
            return (*outputs, *states_fw, *states_bw)
        return outputs[0] if self.merge_mode is not None else outputs

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        # Keras 3.15 raises a TypeError here for a stateful layer with
        # `return_state=True` (it multiplies a generator).
        mask = sequence_mask(mask)
        output_mask = mask if self.return_sequences else None
        output_masks = (output_mask,) if self.merge_mode is not None else (output_mask,) * 2
        if self.return_state:
            return (*output_masks, *(None,) * self._num_states(inputs))
        return output_mask if self.merge_mode is not None else output_masks

    def _num_states(self, inputs: Any) -> int:
        """How many state tensors a call on `inputs` returns (both directions together)."""
        layers = (self.forward_layer, self.backward_layer)
        counts = [_state_size_count(layer) for layer in layers]
        if None not in counts:
            return sum(c or 0 for c in counts)
        if self._num_states_seen is not None:
            return self._num_states_seen
        # Neither a `state_size` nor a call yet: the wrapped layers' output shapes say it.
        shape = tuple(inputs.shape)
        return sum(len(layer.compute_output_shape(shape)) - 1 for layer in layers)

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "merge_mode": self.merge_mode,
            "layer": serialize_layer(self.forward_layer),
            "backward_layer": serialize_layer(self.backward_layer),
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> Bidirectional:
        config = dict(config)
        if "layer" not in config:
            raise ValueError(
                f"Bidirectional.from_config: the config needs a 'layer' entry. Received keys: "
                f"{sorted(config)}"
            )
        config["layer"] = deserialize_layer(config["layer"], custom_objects)
        backward = config.pop("backward_layer", None)
        if backward is not None:
            config["backward_layer"] = deserialize_layer(backward, custom_objects)
        return cls(**config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, merge_mode={self.merge_mode!r}"


def _check_wrappable(layer: Any, argument: str) -> None:
    if not isinstance(layer, Layer):
        hint = ""
        if type(layer).__module__.startswith("keras"):
            hint = " (a Keras layer: use the birnn layer of the same name)"
        raise ValueError(
            f"Bidirectional: argument `{argument}` must be a `birnn.layers.Layer` instance "
            f"such as `birnn.layers.LSTM(...)`{hint}. Received: {layer!r}"
        )
    missing = [attr for attr in _REQUIRED_ATTRIBUTES if not hasattr(layer, attr)]
    if missing:
        names = ", ".join(f"`{attr}`" for attr in missing)
        raise ValueError(
            f"Bidirectional: argument `{argument}` ({type(layer).__name__} "
            f"'{layer.name}') must have {names} attribute(s) with the same meaning as in "
            "`birnn.layers.RNN` to be wrapped."
        )


def _copy_layer(layer: Layer, prefix: str, go_backwards: bool) -> Layer:
    """A fresh layer of `layer`'s class and config, renamed `<prefix><name>`."""
    config = copy.deepcopy(layer.get_config())
    name = layer.name[len(prefix) :] if layer.name.startswith(prefix) else layer.name
    config["name"] = prefix + name
    if bool(go_backwards) != bool(layer.go_backwards):
        config["go_backwards"] = go_backwards
    # Through the layer's own class, with the classes of its sublayers known: Keras 3.15
    # looks the classes up in its registry and so rejects a user's layer that was never
    # registered, where its documentation promises that any such layer can be wrapped.
    from birnn.saving.serialization import recreate_layer

    copied = recreate_layer(layer, config)
    if bool(copied.go_backwards) != bool(go_backwards):
        raise ValueError(
            f"Bidirectional: could not create the {prefix.rstrip('_')} copy of "
            f"{type(layer).__name__} '{layer.name}' with go_backwards={go_backwards}: its "
            "`get_config()` must include `go_backwards`."
        )
    return copied


def _state_size_count(layer: Layer) -> int | None:
    """How many state tensors `layer` returns with `return_state=True`, if known."""
    size = getattr(layer, "state_size", None)
    if size is None:
        size = getattr(getattr(layer, "cell", None), "state_size", None)
    if size is None:
        return None
    return len(flatten_structure(list(size))) if isinstance(size, (list, tuple)) else 1


def _zero_masked_steps(layer: Layer, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`y` with masked steps zeroed, for layers that have no `zero_output_for_mask`.

    `mask` is in the order of `y`'s steps.
    """
    if getattr(layer, "zero_output_for_mask", None) is not None:
        return y  # forced to True above: the layer zeroed them itself
    if y.dim() < 2 or tuple(y.shape[:2]) != tuple(mask.shape[:2]):
        return y
    return zero_masked_steps(y, mask.to(y.device))


def _fused_pair(
    layers: tuple[Any, Any],
    inputs: torch.Tensor,
    mask: torch.Tensor | None,
    training: bool,
    forward_state: list | None,
    backward_state: list | None,
) -> fused_rnn.Pair | None:
    """`Bidirectional._call_fused` once the layers' weights are exposed in their compute
    dtype."""
    forward_layer, backward_layer = layers
    if (
        forward_layer.cell.kernel.dtype != inputs.dtype
        or backward_layer.cell.kernel.dtype != inputs.dtype
    ):
        return None  # a call would cast the inputs
    if mask is not None:  # one tensor for both: the kernel then reads it once
        mask = backend.convert_to_tensor(mask, dtype="bool", device=inputs.device)
    forward = forward_layer.fused_direction(inputs, forward_state, mask, training)
    backward = backward_layer.fused_direction(inputs, backward_state, mask, training)
    if forward is None or backward is None:
        return None
    return fused_rnn.run_pair(inputs, forward, backward)


def _pair_is_fusable(forward: Any, backward: Any, training: bool) -> bool:
    """Whether, by their configuration, one fused run of both layers computes all their
    calls do (torch hooks and the weights' dtype are checked per call).

    Not when the layers compute in different dtype policies, when a layer
    stores states (`stateful`), adds an activity loss, or overrides its call;
    and only when the fused kernel applies.
    """
    return same_policy(forward, backward) and all(
        getattr(layer, "call_is_builtin", False)
        and layer.built
        and not layer.stateful
        and layer.activity_regularizer is None
        and layer.fused_kind(training) is not None
        for layer in (forward, backward)
    )
