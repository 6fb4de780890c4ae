"""`Bidirectional` around a non-RNN sequence layer (`RunningSum`), and generic behaviour."""

import numpy as np
import pytest
import torch

import birnn
from birnn.layers import LSTM, Bidirectional, InputSpec, SimpleRNN
from birnn.layers.serialization import get_layer_class
from tests.keras_oracle import keras

from ._seq_layers import FrameMap, RunningSum

MERGE_MODES = ["concat", "sum", "mul", "ave", None]
MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 1, 0, 1, 1]], dtype=torch.bool)


def _x(batch=3, steps=5, features=4):
    return torch.randn(batch, steps, features)


def _merge(mode, a, b):
    return {
        "concat": lambda: torch.cat([a, b], -1),
        "sum": lambda: a + b,
        "mul": lambda: a * b,
        "ave": lambda: (a + b) / 2,
        None: lambda: (a, b),
    }[mode]()


def _assert_close(actual, expected, atol=1e-6):
    if isinstance(expected, (list, tuple)):
        assert isinstance(actual, tuple) and len(actual) == len(expected)
        for a, e in zip(actual, expected):
            _assert_close(a, e, atol)
    else:
        np.testing.assert_allclose(actual.detach().numpy(), expected.detach().numpy(), atol=atol)


def test_copies_are_fresh_named_and_registered_submodules():
    original = RunningSum(3, name="summer")
    layer = Bidirectional(original)
    assert type(layer.forward_layer) is RunningSum and type(layer.backward_layer) is RunningSum
    assert layer.forward_layer is not original and layer.backward_layer is not original
    assert (layer.forward_layer.name, layer.backward_layer.name) == (
        "forward_summer",
        "backward_summer",
    )
    assert (layer.forward_layer.go_backwards, layer.backward_layer.go_backwards) == (False, True)
    layer(_x())
    assert not original.built  # weights are never shared with the instance passed in
    names = [name for name, _ in layer.named_parameters()]
    assert names == ["forward_layer.kernel", "backward_layer.kernel"]
    assert [type(m) for m in layer.children()] == [RunningSum, RunningSum]


def test_unregistered_layer_is_copied_through_its_own_class():
    # Keras 3.15 departs from its documentation here: it copies the wrapped layer
    # through its registry, so an unregistered user class raises a TypeError
    # ("Could not locate class"). The documentation promises any Layer meeting the
    # criteria can be wrapped; birnn copies through `type(layer).from_config`.
    assert get_layer_class("RunningSum") is None
    layer = Bidirectional(RunningSum(2, decay=0.25, return_sequences=True))
    assert layer.forward_layer.decay == layer.backward_layer.decay == 0.25
    assert layer(_x()).shape == (3, 5, 4)

    class LastStep(keras.layers.Layer):  # meets the four criteria, registered nowhere
        def __init__(self, go_backwards=False, return_sequences=False, **kwargs):
            super().__init__(**kwargs)
            self.go_backwards = go_backwards
            self.return_sequences = return_sequences
            self.return_state = False

        def call(self, inputs):
            return inputs[:, 0 if self.go_backwards else -1]

        def get_config(self):
            config = super().get_config()
            config.update(go_backwards=self.go_backwards, return_sequences=False)
            return config

    with pytest.raises(TypeError, match="Could not locate class 'LastStep'"):
        keras.layers.Bidirectional(LastStep())


def test_names_are_not_prefixed_twice():
    layer = Bidirectional(RunningSum(2, name="forward_sum"))
    assert layer.forward_layer.name == "forward_sum"
    assert layer.backward_layer.name == "backward_forward_sum"


@pytest.mark.parametrize("go_backwards", [False, True])
def test_backward_copy_flips_go_backwards(go_backwards):
    # Keras 3.15 departs from its documentation: it always sets `go_backwards=True` on
    # the backward copy, so wrapping a layer with `go_backwards=True` raises a
    # ValueError there. The documentation (and tf-keras) flip it.
    layer = Bidirectional(RunningSum(2, go_backwards=go_backwards, return_sequences=True))
    assert layer.forward_layer.go_backwards is go_backwards
    assert layer.backward_layer.go_backwards is (not go_backwards)
    x = _x()
    fw, bw = Bidirectional(RunningSum(2, go_backwards=go_backwards), merge_mode=None)(x)
    assert fw.shape == bw.shape == (3, 2)


@pytest.mark.parametrize("merge_mode", MERGE_MODES)
def test_backward_output_is_flipped_back_into_time_order(merge_mode):
    # With decay 0 and an identity kernel each direction outputs tanh(x_t) at step t,
    # so the merge only lines up if the backward output was flipped back.
    layer = Bidirectional(RunningSum(4, decay=0.0, return_sequences=True), merge_mode=merge_mode)
    x = _x()
    layer.build(tuple(x.shape))
    layer.set_weights([np.eye(4, dtype="float32")] * 2)
    expected = _merge(merge_mode, torch.tanh(x), torch.tanh(x))
    _assert_close(layer(x), expected)


@pytest.mark.parametrize("merge_mode", MERGE_MODES)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "wrapped_backwards"])
def test_matches_forward_and_backward_layers_run_by_hand(
    merge_mode, return_sequences, return_state, go_backwards
):
    # With `go_backwards=True` on the wrapped layer its copy outputs sequences in reversed
    # time and the (flipped) backward copy's output is flipped to line up with it, as in
    # Keras; masked steps are zeroed at their positions in that reversed order.
    flags = dict(return_sequences=return_sequences, return_state=return_state)
    layer = Bidirectional(RunningSum(3, go_backwards=go_backwards, **flags), merge_mode=merge_mode)
    x = _x()
    h0 = [torch.randn(3, 3), torch.randn(3, 3)]
    out = layer(x, mask=MASK, initial_state=h0)

    fw = RunningSum(3, go_backwards=go_backwards, **flags)
    bw = RunningSum(3, go_backwards=not go_backwards, **flags)
    fw.build(tuple(x.shape))
    bw.build(tuple(x.shape))
    fw.set_weights(layer.forward_layer.get_weights())
    bw.set_weights(layer.backward_layer.get_weights())
    y_fw = fw(x, mask=MASK, initial_state=h0[:1])
    y_bw = bw(x, mask=MASK, initial_state=h0[1:])
    states = ()
    if return_state:
        (y_fw, s_fw), (y_bw, s_bw) = y_fw, y_bw
        states = (s_fw, s_bw)
    if return_sequences:
        y_bw = torch.flip(y_bw, dims=(1,))
        # RunningSum has no `zero_output_for_mask`; Bidirectional zeroes masked steps.
        keep = (torch.flip(MASK, dims=(1,)) if go_backwards else MASK)[..., None]
        y_fw, y_bw = y_fw * keep, y_bw * keep
    merged = _merge(merge_mode, y_fw, y_bw)
    if merge_mode is None:
        expected = (*merged, *states) if return_state else merged
    else:
        expected = (merged, *states) if return_state else merged
    _assert_close(out, expected)
    assert isinstance(out, tuple) == (return_state or merge_mode is None)


def test_masked_steps_are_zero_whatever_zero_output_for_mask():
    x = _x()
    for inner in (
        RunningSum(3, return_sequences=True),
        SimpleRNN(3, return_sequences=True, zero_output_for_mask=False),
    ):
        fw, bw = Bidirectional(inner, merge_mode=None)(x, mask=MASK)
        assert torch.all(fw[~MASK] == 0) and torch.all(bw[~MASK] == 0)
        assert torch.all(fw[MASK] != 0) and torch.all(bw[MASK] != 0)


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_zero_output_for_mask_is_forced_to_return_sequences(
    return_sequences, zero_output_for_mask
):
    # As in Keras: True in sequences (masked steps output zero), False otherwise (so the
    # last output of a right-padded sequence is its last valid output). It shows in the
    # nested configs.
    inner = LSTM(2, return_sequences=return_sequences, zero_output_for_mask=zero_output_for_mask)
    layer = Bidirectional(inner)
    assert layer.forward_layer.zero_output_for_mask is return_sequences
    assert layer.backward_layer.zero_output_for_mask is return_sequences
    config = layer.get_config()
    assert config["layer"]["config"]["zero_output_for_mask"] is return_sequences
    assert config["backward_layer"]["config"]["zero_output_for_mask"] is return_sequences


def test_last_output_of_padded_sequence_is_last_valid_output():
    x = _x()
    right = torch.tensor([[1, 1, 1, 0, 0]] * 3, dtype=torch.bool)
    layer = Bidirectional(LSTM(2, zero_output_for_mask=True), merge_mode=None)
    fw, bw = layer(x, mask=right)
    fw_short, bw_short = layer(x[:, :3])
    _assert_close((fw, bw), (fw_short, bw_short), atol=1e-6)


@pytest.mark.parametrize("merge_mode", MERGE_MODES)
@pytest.mark.parametrize("return_state", [False, True])
def test_wraps_a_layer_over_4d_sequences(merge_mode, return_state):
    # Criterion 1 of the documentation: "a sequence-processing layer (accepts 3D+ inputs)".
    # Each direction outputs tanh(x_t @ kernel) at step t; masked steps become zero.
    layer = Bidirectional(
        FrameMap(3, return_sequences=True, return_state=return_state), merge_mode=merge_mode
    )
    x = torch.randn(3, 5, 2, 4)
    out = layer(x, mask=MASK)
    kernel_fw, kernel_bw = (torch.from_numpy(w) for w in layer.get_weights())
    keep = MASK[:, :, None, None]
    y_fw = torch.tanh(x @ kernel_fw) * keep
    y_bw = torch.tanh(x @ kernel_bw) * keep
    merged = _merge(merge_mode, y_fw, y_bw)
    if return_state:
        # The last output of each direction: forward's last unmasked step, backward's first.
        last = torch.tensor([4, 2, 4])
        first = torch.tensor([0, 0, 1])
        rows = torch.arange(3)
        states = (torch.tanh(x @ kernel_fw)[rows, last], torch.tanh(x @ kernel_bw)[rows, first])
        merged = (*merged, *states) if merge_mode is None else (merged, *states)
    _assert_close(out, merged)
    shapes = layer.compute_output_shape((3, 5, 2, 4))
    if isinstance(out, tuple):
        assert shapes == tuple(tuple(o.shape) for o in out)
    else:
        assert shapes == tuple(out.shape) == (3, 5, 2, 6 if merge_mode == "concat" else 3)


@pytest.mark.parametrize("make", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("dropout", ["dropout", "recurrent_dropout"])
def test_training_reaches_built_in_layers(make, dropout):
    # `training` must reach the wrapped layers whatever path runs them (the fused LSTM/GRU
    # pair too): dropout applies in training, with a fresh mask per call, and not otherwise.
    layer = Bidirectional(getattr(birnn.layers, make)(3, return_sequences=True, **{dropout: 0.5}))
    twin = Bidirectional(getattr(birnn.layers, make)(3, return_sequences=True))
    x = _x()
    layer.build(tuple(x.shape))
    twin.build(tuple(x.shape))
    twin.set_weights(layer.get_weights())
    expected = twin(x)
    for training in (None, False):
        _assert_close(layer(x, mask=MASK, training=training), twin(x, mask=MASK))
        _assert_close(layer(x, training=training), expected)
    first, second = layer(x, training=True), layer(x, training=True)
    assert not torch.allclose(first, expected)
    assert not torch.allclose(first, second)
    masked = layer(x, mask=MASK, training=True)
    assert torch.all(masked[~MASK] == 0)


def test_initial_state_is_split_in_halves():
    layer = Bidirectional(RunningSum(3, return_state=True), merge_mode=None)
    x = _x()
    a, b = torch.randn(3, 3), torch.randn(3, 3)
    out = layer(x, initial_state=[a, b])
    fw = layer.forward_layer(x, initial_state=[a])
    bw = layer.backward_layer(x, initial_state=[b])
    _assert_close(out, (fw[0], bw[0], fw[1], bw[1]))


def test_training_and_mask_reach_both_layers():
    seen = []

    class Spy(RunningSum):
        def call(self, inputs, initial_state=None, mask=None, training=None):
            seen.append((self.name, training, mask))
            return super().call(inputs, initial_state, mask, training)

    layer = Bidirectional(Spy(2, name="spy"))
    layer(_x(), mask=MASK, training=True)
    assert [(name, training) for name, training, _ in seen] == [
        ("forward_spy", True),
        ("backward_spy", True),
    ]
    assert all(torch.equal(mask, MASK) for _, _, mask in seen)
    seen.clear()
    x = _x()
    x._keras_mask = MASK  # a mask carried by the inputs
    layer(x)
    assert all(torch.equal(mask, MASK) for _, _, mask in seen)


def test_weights_argument_is_applied_once_built():
    # Keras 3.15 departs from its documentation: it stores `weights` as
    # `initial_weights` on each layer and never sets them.
    lstm_weights = [np.random.rand(*s).astype("float32") for s in [(4, 8), (2, 8), (8,)] * 2]
    keras_layer = keras.layers.Bidirectional(keras.layers.LSTM(2), weights=lstm_weights)
    keras_layer.build((None, 5, 4))
    assert not any(np.allclose(a, e) for a, e in zip(keras_layer.get_weights(), lstm_weights))

    fw, bw = np.full((4, 3), 1.0, "float32"), np.full((4, 3), 2.0, "float32")
    layer = Bidirectional(RunningSum(3), weights=[fw, bw])
    layer(_x())
    np.testing.assert_array_equal(layer.forward_layer.get_weights()[0], fw)
    np.testing.assert_array_equal(layer.backward_layer.get_weights()[0], bw)

    layer = Bidirectional(LSTM(2), weights=lstm_weights)
    layer.build((None, 5, 4))
    for actual, expected in zip(layer.get_weights(), lstm_weights):
        np.testing.assert_array_equal(actual, expected)


def test_get_set_weights_order_is_forward_then_backward():
    layer = Bidirectional(LSTM(2))
    layer.build((None, 5, 4))
    assert layer.get_weights()[0].shape == (4, 8)
    forward = layer.forward_layer.get_weights()
    backward = layer.backward_layer.get_weights()
    assert len(layer.get_weights()) == 6
    for actual, expected in zip(layer.get_weights(), forward + backward):
        np.testing.assert_array_equal(actual, expected)
    new = [np.random.rand(*w.shape).astype("float32") for w in layer.get_weights()]
    layer.set_weights(new)
    np.testing.assert_array_equal(layer.backward_layer.get_weights()[0], new[3])
    assert [p.shape for p in layer.trainable_weights] == [w.shape for w in new]


@pytest.mark.parametrize("merge_mode", MERGE_MODES)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("make", [RunningSum, LSTM], ids=["running_sum", "lstm"])
def test_compute_output_shape_matches_call(make, merge_mode, return_sequences, return_state):
    layer = Bidirectional(
        make(3, return_sequences=return_sequences, return_state=return_state),
        merge_mode=merge_mode,
    )
    out = layer(_x())
    shapes = layer.compute_output_shape((3, 5, 4))
    actual = tuple(tuple(o.shape) for o in out) if isinstance(out, tuple) else tuple(out.shape)
    assert shapes == actual
    unknown = layer.compute_output_shape((None, None, 4))
    flat = unknown if isinstance(unknown[0], tuple) else (unknown,)
    assert all(s[0] is None for s in flat)


def test_concat_width_adds_both_directions_for_custom_backward_layer():
    layer = Bidirectional(
        RunningSum(3, return_sequences=True),
        backward_layer=RunningSum(5, go_backwards=True, return_sequences=True),
    )
    assert layer.compute_output_shape((2, 5, 4)) == (2, 5, 8)
    assert layer(_x(2)).shape == (2, 5, 8)


@pytest.mark.parametrize("merge_mode", MERGE_MODES)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_compute_mask(merge_mode, return_sequences):
    layer = Bidirectional(
        LSTM(2, return_sequences=return_sequences, return_state=True), merge_mode=merge_mode
    )
    output_mask = MASK if return_sequences else None
    outputs = (output_mask,) * (2 if merge_mode is None else 1)
    assert layer.compute_mask(None, MASK) == (*outputs, None, None, None, None)
    assert layer.compute_mask(None, [MASK, None]) == (*outputs, None, None, None, None)

    plain = Bidirectional(LSTM(2, return_sequences=return_sequences), merge_mode=merge_mode)
    expected = outputs if merge_mode is None else output_mask
    actual = plain.compute_mask(None, MASK)
    if merge_mode is None:
        assert isinstance(actual, tuple) and all(a is e for a, e in zip(actual, expected))
    else:
        assert actual is expected

    out = layer(_x(), mask=MASK)
    masks = [getattr(o, "_keras_mask", None) for o in out]
    assert [m is not None for m in masks] == [return_sequences] * len(outputs) + [False] * 4


def test_output_mask_of_custom_layer_with_return_state():
    layer = Bidirectional(RunningSum(2, return_sequences=True, return_state=True))
    out, h_fw, h_bw = layer(_x(), mask=MASK)
    assert torch.equal(out._keras_mask, MASK)
    assert getattr(h_fw, "_keras_mask", None) is None
    assert getattr(h_bw, "_keras_mask", None) is None


@pytest.mark.parametrize("make", [RunningSum, FrameMap], ids=["running_sum", "frame_map"])
def test_compute_mask_before_any_call_counts_the_states(make):
    # One mask per output, as after a call: the output, then one state per direction.
    # The state count is known from `compute_output_shape` of each wrapped layer.
    layer = Bidirectional(make(2, return_sequences=True, return_state=True))
    inputs = torch.zeros(3, 5, 4) if make is RunningSum else torch.zeros(3, 5, 2, 4)
    masks = layer.compute_mask(inputs, MASK)
    assert len(masks) == 3
    assert masks[0] is MASK and masks[1:] == (None, None)
    assert len(layer(inputs, mask=MASK)) == len(masks)


def test_input_spec_is_the_wrapped_layers():
    inner = RunningSum(2)
    inner.input_spec = InputSpec(ndim=3, axes={-1: 4})
    layer = Bidirectional(inner)
    assert layer.input_spec is inner.input_spec
    with pytest.raises(ValueError, match="expected axis -1"):
        layer(torch.zeros(2, 5, 3))


def test_config_round_trip_of_unregistered_layer():
    layer = Bidirectional(RunningSum(2, decay=0.3), merge_mode="ave", name="bi_sum")
    config = layer.get_config()
    assert config["merge_mode"] == "ave" and config["name"] == "bi_sum"
    assert config["layer"]["class_name"] == "RunningSum"
    assert config["layer"]["config"]["name"].startswith("forward_running_sum")
    # A config alone names the class: as in Keras, it must be registered or passed in
    # `custom_objects` (copying the live layer needs neither, see above).
    with pytest.raises(ValueError, match="Unknown layer class 'RunningSum'.*custom_objects"):
        Bidirectional.from_config(config)
    clone = Bidirectional.from_config(config, custom_objects={"RunningSum": RunningSum})
    assert clone.get_config() == config
    assert type(clone.forward_layer) is RunningSum


def test_config_round_trip_with_custom_backward_layer():
    layer = Bidirectional(
        LSTM(3, return_sequences=True),
        backward_layer=LSTM(3, activation="relu", return_sequences=True, go_backwards=True),
        merge_mode="sum",
    )
    config = layer.get_config()
    assert config["backward_layer"]["config"]["activation"] == "relu"
    clone = Bidirectional.from_config(config)
    assert clone.get_config() == config
    assert clone.backward_layer.get_config()["activation"] == "relu"
    x = _x()
    layer.build(tuple(x.shape))
    clone.build(tuple(x.shape))
    clone.set_weights(layer.get_weights())
    _assert_close(clone(x), layer(x))


def test_custom_backward_layer_is_used_as_given():
    # As in Keras: the given instance (not a copy) becomes the backward layer.
    backward = RunningSum(3, go_backwards=True, name="mine")
    layer = Bidirectional(RunningSum(3), backward_layer=backward)
    assert layer.backward_layer is backward


def test_trainable_false_reaches_both_layers():
    layer = Bidirectional(LSTM(2), trainable=False)
    layer.build((None, 5, 4))
    assert layer.trainable_weights == []
    assert len(layer.non_trainable_weights) == 6
    assert not any(p.requires_grad for p in layer.parameters())


def test_repr_names_merge_mode():
    assert "merge_mode='mul'" in repr(Bidirectional(RunningSum(2), merge_mode="mul"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_gpu():
    layer = Bidirectional(LSTM(3, return_sequences=True, return_state=True)).cuda()
    x = _x().cuda()
    out = layer(x, mask=MASK.cuda())
    assert all(o.is_cuda for o in out)
    fresh = Bidirectional(LSTM(3, return_sequences=True))
    assert fresh(x).is_cuda  # built lazily on the input's device
