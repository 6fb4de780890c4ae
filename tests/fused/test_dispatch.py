"""Layers on the fused path compute what they compute on the generic path (`use_cudnn=False`)."""

import pytest
import torch

from birnn.layers import GRU, LSTM, RNN, Bidirectional, GRUCell, LSTMCell, SimpleRNN
from birnn.ops import fused_rnn, native_keras

B, T, F, U = 4, 6, 3, 5
LAYERS = {"lstm": LSTM, "gru": GRU}
N_STATES = {"lstm": 2, "gru": 1}


def _mask(pattern):
    lengths = torch.tensor([6, 4, 2, 1])[:, None]
    steps = torch.arange(T)
    if pattern == "none":
        return None
    if pattern == "right":
        return steps < lengths
    if pattern == "left":
        return steps >= T - lengths
    if pattern == "holes":
        return torch.tensor(
            [[1, 0, 1, 1, 0, 1], [0, 0, 1, 0, 1, 0], [1, 1, 0, 1, 1, 1], [0, 1, 0, 0, 0, 0]],
            dtype=torch.bool,
        )
    if pattern == "fully_masked_row":
        mask = steps >= T - lengths
        mask[2] = False
        return mask
    raise AssertionError(pattern)


PATTERNS = ["none", "right", "left", "holes", "fully_masked_row"]


@pytest.fixture
def calls(monkeypatch):
    """Counts the fused runs: of one direction by its kernel, and of pairs."""
    counts = {"lstm": 0, "gru": 0, "bidirectional": 0}
    run_direction, run_pair = fused_rnn.run_direction, fused_rnn.run_pair

    def counted_direction(inputs, direction, *args, **kwargs):
        counts[direction.kind] += 1
        return run_direction(inputs, direction, *args, **kwargs)

    def counted_pair(*args, **kwargs):
        counts["bidirectional"] += 1
        return run_pair(*args, **kwargs)

    monkeypatch.setattr(fused_rnn, "run_direction", counted_direction)
    monkeypatch.setattr(fused_rnn, "run_pair", counted_pair)
    return counts


def _twins(make):
    """The same layer twice, the second on the generic path, with equal weights."""
    fused, generic = make("auto"), make(False)
    x = torch.randn(B, T, F)
    fused(x)
    generic(x)
    generic.set_weights(fused.get_weights())
    return fused, generic


def _outputs(result):
    return list(result) if isinstance(result, (list, tuple)) else [result]


def _compare(fused, generic, x, **kwargs):
    x_fused = x.clone().requires_grad_(True)
    x_generic = x.clone().requires_grad_(True)
    got = _outputs(fused(x_fused, **kwargs))
    expected = _outputs(generic(x_generic, **kwargs))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=0)
    weights = [torch.randn(e.shape) for e in expected]
    loss_fused = sum((g * w).sum() for g, w in zip(got, weights))
    loss_generic = sum((e * w).sum() for e, w in zip(expected, weights))
    params_fused = [x_fused, *fused.parameters()]
    params_generic = [x_generic, *generic.parameters()]
    grads_fused = torch.autograd.grad(loss_fused, params_fused, allow_unused=True)
    grads_generic = torch.autograd.grad(loss_generic, params_generic, allow_unused=True)
    for g, e in zip(grads_fused, grads_generic):
        torch.testing.assert_close(g, e, atol=1e-4, rtol=0)


def _initial_state(kind, directions=1):
    return [torch.randn(B, U) for _ in range(N_STATES[kind] * directions)]


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("with_initial_state", [False, True])
def test_layer_fused_equals_generic(
    calls, kind, pattern, go_backwards, return_sequences, with_initial_state
):
    def make(use_cudnn):
        return LAYERS[kind](
            U,
            return_sequences=return_sequences,
            return_state=True,
            go_backwards=go_backwards,
            use_cudnn=use_cudnn,
        )

    fused, generic = _twins(make)
    calls[kind] = 0
    kwargs = {"mask": _mask(pattern)}
    if with_initial_state:
        kwargs["initial_state"] = _initial_state(kind)
    _compare(fused, generic, torch.randn(B, T, F), **kwargs)
    assert calls[kind] == 1


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("with_initial_state", [False, True])
def test_bidirectional_fused_equals_generic(
    calls, kind, pattern, return_sequences, return_state, with_initial_state
):
    def make(use_cudnn):
        layer = LAYERS[kind](
            U, return_sequences=return_sequences, return_state=return_state, use_cudnn=use_cudnn
        )
        return Bidirectional(layer)

    fused, generic = _twins(make)
    calls["bidirectional"] = 0
    kwargs = {"mask": _mask(pattern)}
    if with_initial_state:
        kwargs["initial_state"] = _initial_state(kind, directions=2)
    _compare(fused, generic, torch.randn(B, T, F), **kwargs)
    assert calls["bidirectional"] == 1


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("merge_mode", ["sum", None])
def test_bidirectional_wrapping_a_backwards_layer(kind, merge_mode):
    def make(use_cudnn):
        layer = LAYERS[kind](U, return_sequences=True, go_backwards=True, use_cudnn=use_cudnn)
        return Bidirectional(layer, merge_mode=merge_mode)

    fused, generic = _twins(make)
    _compare(fused, generic, torch.randn(B, T, F), mask=_mask("holes"))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_input_dropout_stays_on_the_fused_path(calls, kind, bidirectional):
    def make(use_cudnn):
        layer = LAYERS[kind](U, dropout=0.4, seed=7, return_sequences=True, use_cudnn=use_cudnn)
        return Bidirectional(layer) if bidirectional else layer

    fused, generic = _twins(make)
    _compare(fused, generic, torch.randn(B, T, F), mask=_mask("right"), training=True)
    assert calls[kind] + calls["bidirectional"] > 0


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_stateful_layers_run_fused(calls, kind):
    def make(use_cudnn):
        layer = LAYERS[kind](U, stateful=True, return_sequences=True, use_cudnn=use_cudnn)
        return Bidirectional(layer)

    fused, generic = _twins(make)
    fused.reset_states()
    generic.reset_states()
    for _ in range(2):
        x = torch.randn(B, T, F)
        torch.testing.assert_close(fused(x), generic(x), atol=1e-5, rtol=0)
    assert calls[kind] > 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"activation": "relu"},
        {"recurrent_activation": "hard_sigmoid"},
        {"unroll": True},
        {"recurrent_dropout": 0.3},
        {"use_cudnn": False},
    ],
)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_generic_path_for_other_configurations(calls, kind, kwargs):
    layer = LAYERS[kind](U, **kwargs)
    layer(torch.randn(B, T, F), training=True)
    Bidirectional(LAYERS[kind](U, **kwargs))(torch.randn(B, T, F), training=True)
    assert calls == {"lstm": 0, "gru": 0, "bidirectional": 0}


def test_gru_reset_before_runs_generic(calls):
    GRU(U, reset_after=False)(torch.randn(B, T, F))
    assert calls["gru"] == 0


def test_recurrent_dropout_in_inference_runs_fused(calls):
    LSTM(U, recurrent_dropout=0.3)(torch.randn(B, T, F), training=False)
    assert calls["lstm"] == 1


def test_per_gate_dropout_masks_run_generic_in_training(calls):
    layer = LSTM(U, dropout=0.3, implementation=1)
    layer(torch.randn(B, T, F), training=True)
    assert calls["lstm"] == 0
    layer(torch.randn(B, T, F), training=False)
    assert calls["lstm"] == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"activation": "relu"}, "activation"),
        ({"recurrent_dropout": 0.2}, "recurrent_dropout"),
        ({"unroll": True}, "unroll"),
    ],
)
def test_use_cudnn_true_with_an_ineligible_configuration_raises(kwargs, message):
    layer = LSTM(U, use_cudnn=True, name="strict", **kwargs)
    with pytest.raises(ValueError, match=f"'strict'.*use_cudnn=True.*{message}"):
        layer(torch.randn(B, T, F))
    with pytest.raises(ValueError, match="use_cudnn=True"):
        GRU(U, use_cudnn=True, reset_after=False)(torch.randn(B, T, F))


def test_use_cudnn_true_runs_fused(calls):
    Bidirectional(GRU(U, use_cudnn=True))(torch.randn(B, T, F), mask=_mask("holes"))
    assert calls["bidirectional"] == 1


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_bidirectional_with_a_different_backward_layer(kind):
    def make(use_cudnn):
        forward = LAYERS[kind](U, return_sequences=True, return_state=True, use_cudnn=use_cudnn)
        backward = LAYERS[kind](
            3,
            use_bias=False,
            return_sequences=True,
            return_state=True,
            go_backwards=True,
            use_cudnn=use_cudnn,
        )
        return Bidirectional(forward, backward_layer=backward)

    fused, generic = _twins(make)
    _compare(fused, generic, torch.randn(B, T, F), mask=_mask("right"))


def test_bidirectional_calls_a_subclass_that_overrides_call(calls):
    seen = []

    class Traced(LSTM):
        def call(self, sequences, initial_state=None, mask=None, training=None):
            seen.append(self.name)
            return super().call(sequences, initial_state, mask, training)

    Bidirectional(Traced(U))(torch.randn(B, T, F))
    assert len(seen) == 2 and calls["bidirectional"] == 0 and calls["lstm"] == 2


# ---------------------------------------------------------------- the fused-path contract


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: LSTM(U), "lstm"),
        (lambda: GRU(U), "gru"),
        (lambda: GRU(U, reset_after=False), None),
        (lambda: LSTM(U, use_cudnn=False), None),
        (lambda: LSTM(U, activation="relu"), None),
        (lambda: SimpleRNN(U), None),
        (lambda: RNN(LSTMCell(U)), None),
    ],
)
def test_fused_kind_and_direction_answer_for_the_configuration(make, expected):
    layer = make()
    assert layer.fused_kind(False) == expected
    direction = layer.fused_direction(torch.randn(B, T, F))
    assert (direction is None) == (expected is None)
    if direction is not None:
        assert direction.kind == expected
        assert direction.kernel is layer.cell.kernel


def test_fused_direction_standardizes_its_arguments():
    layer = LSTM(U, go_backwards=True, return_sequences=True, name="enc")
    mask = [[True] * T, [True] * (T - 1) + [False]] * (B // 2)
    states = [torch.randn(B, U).double(), torch.randn(B, U).double()]
    direction = layer.fused_direction(torch.randn(B, T, F), states, mask)
    assert direction.mask.dtype == torch.bool and direction.mask.shape == (B, T)
    assert [s.dtype for s in direction.initial_states] == [torch.float32] * 2
    assert direction.go_backwards and direction.return_all_outputs
    assert direction.dropout_mask is None
    with pytest.raises(ValueError, match="'enc'.*initial_state"):
        layer.fused_direction(torch.randn(B, T, F), [torch.randn(B, U)])
    with pytest.raises(ValueError, match="'enc'.*mask"):
        layer.fused_direction(torch.randn(B, T, F), mask=torch.ones(B, T + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="'enc'"):
        layer.fused_direction(torch.randn(B, T, F + 1))


def test_fused_direction_holds_the_sequence_dropout_mask():
    layer = GRU(U, dropout=0.5, seed=3)
    x = torch.randn(B, T, F)
    first = layer.fused_direction(x, training=True)
    second = layer.fused_direction(x, training=True)
    assert first.dropout_mask.shape == (B, F)
    assert not torch.equal(first.dropout_mask, second.dropout_mask)  # not left cached
    assert layer.fused_direction(x, training=False).dropout_mask is None


def test_running_the_direction_gives_the_layer_output():
    layer = LSTM(U, return_sequences=True, return_state=True, zero_output_for_mask=True)
    x, mask = torch.randn(B, T, F), _mask("holes")
    last, outputs, states = fused_rnn.run_direction(x, layer.fused_direction(x, mask=mask))
    expected = layer(x, mask=mask)
    for got, want in zip([outputs, *states], expected):
        torch.testing.assert_close(got, want, atol=0, rtol=0)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_cell_subclass_overriding_call_is_not_fused(calls, kind):
    base = {"lstm": LSTMCell, "gru": GRUCell}[kind]
    seen = []

    class Traced(base):
        def call(self, inputs, states, training=False):
            seen.append(1)
            return super().call(inputs, states, training)

    class Same(base):  # changes nothing about the step: keeps both forms
        pass

    assert Traced.fused_kernel is None and Traced.call_sequence is None
    assert Same.fused_kernel == kind and Same.call_sequence is base.call_sequence
    layer = LAYERS[kind](U, return_sequences=True)
    layer.cell = Traced(U)
    assert layer.fused_kind(False) is None and layer.fused_direction(torch.randn(B, T, F)) is None
    layer(torch.randn(B, T, F))
    assert len(seen) == T and calls[kind] == 0
    strict = LAYERS[kind](U, use_cudnn=True)
    strict.cell = Traced(U)
    with pytest.raises(ValueError, match="use_cudnn=True.*built-in cell"):
        strict(torch.randn(B, T, F))


def test_use_cudnn_true_raises_from_fused_direction_too():
    layer = GRU(U, use_cudnn=True, reset_after=False, name="strict")
    with pytest.raises(ValueError, match="'strict'.*use_cudnn=True.*reset_after"):
        layer.fused_direction(torch.randn(B, T, F))


def test_bidirectional_of_two_kernels_is_one_pair_call(calls):
    def make(use_cudnn):
        forward = LSTM(U, return_sequences=True, return_state=True, use_cudnn=use_cudnn)
        backward = GRU(
            3, return_sequences=True, return_state=True, go_backwards=True, use_cudnn=use_cudnn
        )
        return Bidirectional(forward, backward_layer=backward)

    fused, generic = _twins(make)
    calls["bidirectional"] = 0
    _compare(fused, generic, torch.randn(B, T, F), mask=_mask("holes"))
    assert calls["bidirectional"] == 1


def test_bidirectional_calls_the_layers_when_one_does_not_answer(calls):
    forward = LSTM(U, return_sequences=True)
    backward = LSTM(U, return_sequences=True, go_backwards=True, activation="relu")
    Bidirectional(forward, backward_layer=backward)(torch.randn(B, T, F))
    assert calls["bidirectional"] == 0 and calls["lstm"] == 1  # the forward layer, alone


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_zero_output_for_mask_fused_equals_generic(calls, kind, go_backwards, return_sequences):
    def make(use_cudnn):
        return LAYERS[kind](
            U,
            return_sequences=return_sequences,
            return_state=True,
            go_backwards=go_backwards,
            zero_output_for_mask=True,
            use_cudnn=use_cudnn,
        )

    fused, generic = _twins(make)
    calls[kind] = 0
    _compare(fused, generic, torch.randn(B, T, F), mask=_mask("fully_masked_row"))
    assert calls[kind] == 1


@pytest.mark.parametrize("pattern", ["none", "holes"])
def test_bidirectional_from_zero_states_is_one_kernel_call(monkeypatch, pattern):
    """Zero initial states are left implicit, so a masked pair still shares one call."""
    kernel_calls = []

    def counting(function):
        def counted(*args, **kwargs):
            kernel_calls.append(1)
            return function(*args, **kwargs)

        return counted

    monkeypatch.setattr(fused_rnn, "_kernel", counting(fused_rnn._kernel))
    monkeypatch.setattr(native_keras, "kernel", counting(native_keras.kernel))
    Bidirectional(LSTM(U, return_sequences=True))(torch.randn(B, T, F), mask=_mask(pattern))
    assert len(kernel_calls) == 1
