"""Layers on the fused path compute what they compute on the generic path (`use_cudnn=False`)."""

import pytest
import torch

from birnn.layers import GRU, LSTM, Bidirectional
from birnn.ops import fused_rnn

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
    """Counts the calls of the fused kernels."""
    counts = {"lstm": 0, "gru": 0, "bidirectional": 0}
    for name in counts:
        original = getattr(fused_rnn, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(fused_rnn, name, counted)
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
