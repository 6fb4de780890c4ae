"""The fused kernels equal the generic scan of `birnn.ops.recurrent` on every mask pattern."""

import dataclasses
from dataclasses import replace

import pytest
import torch

from birnn.ops import fused_rnn, recurrent

B, T, F, U = 5, 7, 3, 4
GATES = {"lstm": 4, "gru": 3}


def _lengths_mask(lengths, left=False):
    lengths = torch.tensor(lengths)[:, None]
    steps = torch.arange(T)
    return steps >= T - lengths if left else steps < lengths


def _mask(pattern):
    if pattern == "none":
        return None
    if pattern == "all_valid":
        return torch.ones(B, T, dtype=torch.bool)
    if pattern == "right":
        return _lengths_mask([7, 5, 3, 1, 6])
    if pattern == "left":
        return _lengths_mask([7, 5, 3, 1, 6], left=True)
    if pattern == "holes":
        return torch.tensor(
            [
                [1, 0, 1, 1, 0, 0, 1],
                [0, 0, 1, 0, 1, 1, 0],
                [1, 1, 1, 1, 1, 1, 0],
                [0, 1, 0, 1, 0, 1, 0],
                [1, 0, 0, 0, 0, 0, 0],
            ],
            dtype=torch.bool,
        )
    if pattern == "fully_masked_rows":
        mask = _lengths_mask([7, 0, 3, 0, 2], left=True)
        mask[2, 5] = False
        return mask
    raise AssertionError(pattern)


MASKS = ["none", "all_valid", "right", "left", "holes", "fully_masked_rows"]


def _weights(kind, dtype, use_bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    gates = GATES[kind]
    kernel = torch.randn(F, gates * U, generator=g, dtype=dtype) / 2
    recurrent_kernel = torch.randn(U, gates * U, generator=g, dtype=dtype) / 2
    bias_shape = (gates * U,) if kind == "lstm" else (2, gates * U)
    bias = torch.randn(bias_shape, generator=g, dtype=dtype) if use_bias else None
    return [kernel, recurrent_kernel, bias]


def _states(kind, dtype, random):
    count = 2 if kind == "lstm" else 1
    make = torch.randn if random else torch.zeros
    return [make(B, U, dtype=dtype) for _ in range(count)]


def _reference(kind, x, states, weights, **kwargs):
    extra = {"reset_after": True} if kind == "gru" else {}
    fn = getattr(recurrent, kind)
    return fn(x, *states, *weights, torch.tanh, torch.sigmoid, **extra, **kwargs)


def _fused(kind, x, states, weights, **kwargs):
    return getattr(fused_rnn, kind)(x, *states, *weights, **kwargs)


def _assert_triples_close(got, expected, atol):
    torch.testing.assert_close(got[0], expected[0], atol=atol, rtol=0)
    torch.testing.assert_close(got[1], expected[1], atol=atol, rtol=0)
    assert len(got[2]) == len(expected[2])
    for g, e in zip(got[2], expected[2]):
        torch.testing.assert_close(g, e, atol=atol, rtol=0)


def _scalar(triple, seed=1):
    """A loss reading every result with random weights (so every gradient path is used)."""
    g = torch.Generator().manual_seed(seed)
    tensors = [triple[0], triple[1], *triple[2]]
    return sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for t in tensors)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("pattern", MASKS)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("random_state", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_forward_float32_matches_generic(
    kind, pattern, go_backwards, random_state, zero_output_for_mask
):
    x = torch.randn(B, T, F)
    weights = _weights(kind, torch.float32)
    states = _states(kind, torch.float32, random_state)
    kwargs = dict(
        mask=_mask(pattern), go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask
    )
    expected = _reference(kind, x, states, weights, **kwargs)
    got = _fused(kind, x, states, weights, **kwargs)
    _assert_triples_close(got, expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("pattern", MASKS)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("random_state", [False, True])
def test_gradients_match_generic(kind, pattern, go_backwards, random_state):
    x = torch.randn(B, T, F, dtype=torch.float64)
    weights = _weights(kind, torch.float64)
    states = _states(kind, torch.float64, random_state)
    leaves = [x, *weights, *states]
    for leaf in leaves:
        leaf.requires_grad_(True)
    kwargs = dict(mask=_mask(pattern), go_backwards=go_backwards)
    expected = torch.autograd.grad(_scalar(_reference(kind, x, states, weights, **kwargs)), leaves)
    got = torch.autograd.grad(_scalar(_fused(kind, x, states, weights, **kwargs)), leaves)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("pattern", ["none", "right", "holes", "fully_masked_rows"])
def test_float32_gradients_match_generic(kind, pattern):
    """The float32 LSTM runs in oneDNN on CPU: its padding trick holds there too."""
    x = torch.randn(B, T, F, requires_grad=True)
    weights = [w.requires_grad_(True) for w in _weights(kind, torch.float32)]
    kwargs = dict(mask=_mask(pattern))
    states = _states(kind, torch.float32, True)
    expected = torch.autograd.grad(
        _scalar(_reference(kind, x, states, weights, **kwargs)), [x, *weights]
    )
    got = torch.autograd.grad(_scalar(_fused(kind, x, states, weights, **kwargs)), [x, *weights])
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, atol=1e-4, rtol=0)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("pattern", ["none", "holes"])
def test_gradcheck(kind, pattern):
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    g = torch.Generator().manual_seed(3)
    gates, units = GATES[kind], 3
    kernel = torch.randn(2, gates * units, generator=g, dtype=torch.float64)
    recurrent_kernel = torch.randn(units, gates * units, generator=g, dtype=torch.float64)
    bias_shape = gates * units if kind == "lstm" else (2, gates * units)
    bias = torch.randn(bias_shape, dtype=torch.float64)
    n_states = 2 if kind == "lstm" else 1
    states = [torch.randn(2, units, dtype=torch.float64) for _ in range(n_states)]
    leaves = [x, kernel, recurrent_kernel, bias, *states]
    for leaf in leaves:
        leaf.requires_grad_(True)
    mask = None if pattern == "none" else torch.tensor([[1, 0, 1, 1], [0, 1, 0, 0]], dtype=bool)

    def fn(x, kernel, recurrent_kernel, bias, *states):
        last, outputs, final = getattr(fused_rnn, kind)(
            x, *states[:n_states], kernel, recurrent_kernel, bias, mask=mask, go_backwards=True
        )
        return (last, outputs, *final)

    assert torch.autograd.gradcheck(fn, leaves)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("pattern", ["none", "right", "holes"])
def test_no_bias_dropout_mask_and_last_output_only(kind, pattern):
    x = torch.randn(B, T, F, dtype=torch.float64)
    weights = _weights(kind, torch.float64, use_bias=False)
    states = _states(kind, torch.float64, True)
    dropout_mask = (torch.rand(B, F) > 0.5).double() * 2
    kwargs = dict(mask=_mask(pattern), return_all_outputs=False, dropout_mask=dropout_mask)
    expected = _reference(kind, x, states, weights, **kwargs)
    got = _fused(kind, x, states, weights, **kwargs)
    assert got[1].shape == (B, 1, U)
    _assert_triples_close(got, expected, atol=1e-10)


def test_per_gate_dropout_mask_is_rejected():
    x = torch.randn(B, T, F)
    weights = _weights("lstm", torch.float32)
    with pytest.raises(ValueError, match="dropout_mask"):
        fused_rnn.lstm(
            x, *_states("lstm", torch.float32, False), *weights, dropout_mask=torch.ones(4, B, F)
        )


def test_torch_weights_follow_pytorch_gate_order():
    """A Keras GRU's weights in `torch.nn.GRU` compute the same as the generic GRU."""
    kernel, recurrent_kernel, bias = _weights("gru", torch.float64)
    gru = torch.nn.GRU(F, U, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for param, value in zip(
            gru.parameters(), fused_rnn.torch_weights("gru", kernel, recurrent_kernel, bias)
        ):
            param.copy_(value)
    x = torch.randn(B, T, F, dtype=torch.float64)
    h0 = torch.zeros(B, U, dtype=torch.float64)
    expected = _reference("gru", x, [h0], [kernel, recurrent_kernel, bias])[1]
    torch.testing.assert_close(gru(x)[0], expected, atol=1e-12, rtol=0)


# ---------------------------------------------------------------- bidirectional


def _direction_pair(kind, dtype, random_state, zero_output_for_mask, dropout):
    forward = _weights(kind, dtype, seed=1)
    backward = _weights(kind, dtype, seed=2)
    states_f = _states(kind, dtype, True) if random_state else None
    states_b = _states(kind, dtype, True) if random_state else None
    options = {"zero_output_for_mask": zero_output_for_mask, "dropout_mask": dropout}
    return (
        fused_rnn.Direction(kind, *forward, states_f, **options),
        fused_rnn.Direction(kind, *backward, states_b, go_backwards=True, **options),
    )


def _reference_direction(kind, x, direction, mask):
    """The generic run of one direction, its outputs in time order (as `run_pair`'s)."""
    states = direction.initial_states
    if states is None:
        units = direction.recurrent_kernel.shape[0]
        states = [torch.zeros(B, units, dtype=x.dtype) for _ in range(2 if kind == "lstm" else 1)]
    last, outputs, final = _reference(
        kind,
        x,
        states,
        [direction.kernel, direction.recurrent_kernel, direction.bias],
        mask=mask,
        go_backwards=direction.go_backwards,
        zero_output_for_mask=direction.zero_output_for_mask,
        return_all_outputs=direction.return_all_outputs,
        dropout_mask=direction.dropout_mask,
    )
    if direction.go_backwards and direction.return_all_outputs:
        outputs = outputs.flip(1)
    return last, outputs, final


def _triples(pair):
    """`pair`'s two directions as `(last_output, outputs, states)` triples."""
    if pair.sequences is None:
        outputs = tuple(last.unsqueeze(1) for last in pair.last_outputs)
    else:
        outputs = pair.outputs
    return list(zip(pair.last_outputs, outputs, pair.states))


def _assert_pair_close(kind, pair, x, directions, mask, atol):
    """`pair` equals the generic runs of `directions`; `sequences` holds both outputs."""
    assert isinstance(pair, fused_rnn.Pair)
    for got, direction in zip(_triples(pair), directions):
        _assert_triples_close(got, _reference_direction(kind, x, direction, mask), atol)
    if all(d.return_all_outputs for d in directions):
        assert pair.outputs[0].shape[-1] == directions[0].recurrent_kernel.shape[0]
        joined = torch.cat(pair.outputs, dim=-1)
        torch.testing.assert_close(pair.sequences, joined, atol=0, rtol=0)
    else:
        assert pair.sequences is None
        with pytest.raises(ValueError, match="no sequences"):
            pair.outputs  # noqa: B018


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("pattern", MASKS)
@pytest.mark.parametrize("random_state", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("swap", [False, True])
def test_bidirectional_matches_two_generic_runs(
    kind, pattern, random_state, zero_output_for_mask, swap
):
    x = torch.randn(B, T, F, dtype=torch.float64)
    mask = _mask(pattern)
    forward, backward = _direction_pair(
        kind, torch.float64, random_state, zero_output_for_mask, None
    )
    if swap:  # the "forward" layer going backwards, as Bidirectional(go_backwards=True) does
        forward = replace(forward, go_backwards=True)
        backward = replace(backward, go_backwards=False)
    forward, backward = replace(forward, mask=mask), replace(backward, mask=mask)
    leaves = [x, forward.kernel, backward.recurrent_kernel, backward.bias]
    for leaf in leaves:
        leaf.requires_grad_(True)
    got = fused_rnn.run_pair(x, forward, backward)
    _assert_pair_close(kind, got, x, (forward, backward), mask, atol=1e-10)
    expected = [_reference_direction(kind, x, d, mask) for d in (forward, backward)]
    got_fw, got_bw = _triples(got)
    got_grads = torch.autograd.grad(_scalar(got_fw) + _scalar(got_bw, 2), leaves)
    expected_grads = torch.autograd.grad(_scalar(expected[0]) + _scalar(expected[1], 2), leaves)
    for g, e in zip(got_grads, expected_grads):
        torch.testing.assert_close(g, e, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("pattern", ["none", "right", "holes", "fully_masked_rows"])
def test_bidirectional_float32(kind, pattern):
    x = torch.randn(B, T, F)
    mask = _mask(pattern)
    forward, backward = _direction_pair(kind, torch.float32, False, False, None)
    forward, backward = replace(forward, mask=mask), replace(backward, mask=mask)
    got = fused_rnn.run_pair(x, forward, backward)
    _assert_pair_close(kind, got, x, (forward, backward), mask, atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("pattern", ["none", "holes"])
def test_bidirectional_dropout_and_last_outputs(kind, pattern):
    x = torch.randn(B, T, F, dtype=torch.float64)
    mask = _mask(pattern)
    shared = (torch.rand(B, F) > 0.3).double() / 0.7
    own = (torch.rand(B, F) > 0.3).double() / 0.7
    for masks in [(shared, shared), (shared, own), (None, own)]:
        forward, backward = _direction_pair(kind, torch.float64, False, False, None)
        options = {"mask": mask, "return_all_outputs": False}
        forward = replace(forward, dropout_mask=masks[0], **options)
        backward = replace(backward, dropout_mask=masks[1], **options)
        got = fused_rnn.run_pair(x, forward, backward)
        assert got.sequences is None
        assert got.last_outputs[0].shape == got.last_outputs[1].shape == (B, U)
        _assert_pair_close(kind, got, x, (forward, backward), mask, atol=1e-10)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_bidirectional_with_different_sizes_or_biases(kind):
    x = torch.randn(B, T, F, dtype=torch.float64)
    gates = GATES[kind]
    for mask in (None, _mask("holes")):
        forward = fused_rnn.Direction(kind, *_weights(kind, torch.float64), mask=mask)
        backward = fused_rnn.Direction(
            kind,
            torch.randn(F, gates * 2, dtype=torch.float64),
            torch.randn(2, gates * 2, dtype=torch.float64),
            None,
            mask=mask,
            go_backwards=True,
        )
        got = fused_rnn.run_pair(x, forward, backward)
        _assert_pair_close(kind, got, x, (forward, backward), mask, atol=1e-10)


def test_direction_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        fused_rnn.Direction("rnn", *_weights("gru", torch.float32))


def test_pair_and_direction_are_frozen_dataclasses():
    forward, backward = _direction_pair("lstm", torch.float32, False, False, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        forward.kind = "gru"
    pair = fused_rnn.run_pair(torch.randn(B, T, F), forward, backward)
    assert [f.name for f in dataclasses.fields(pair)] == ["last_outputs", "states", "sequences"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        pair.sequences = None
    with pytest.raises(TypeError):  # a plain record: it does not unpack
        _, _, _ = pair
    assert len(pair.states[0]) == 2 and pair.states[0][0] is not pair.states[1][0]


@pytest.mark.parametrize("pattern", ["none", "holes"])
def test_pair_of_different_kernels_runs_each_on_its_own(pattern):
    """An LSTM forward and a GRU backward: one call each, results as alone."""
    x = torch.randn(B, T, F, dtype=torch.float64)
    mask = _mask(pattern)
    forward = fused_rnn.Direction("lstm", *_weights("lstm", torch.float64), mask=mask)
    backward = fused_rnn.Direction(
        "gru", *_weights("gru", torch.float64), mask=mask, go_backwards=True
    )
    got_fw, got_bw = _triples(fused_rnn.run_pair(x, forward, backward))
    _assert_triples_close(got_fw, _reference_direction("lstm", x, forward, mask), 1e-10)
    _assert_triples_close(got_bw, _reference_direction("gru", x, backward, mask), 1e-10)


def test_a_concatenating_bidirectional_returns_the_kernel_output(monkeypatch):
    """The kernel's side-by-side output is the layer's: it is not split and concatenated."""
    from birnn.layers import LSTM, Bidirectional

    layer = Bidirectional(LSTM(U, return_sequences=True))
    x = torch.randn(B, T, F)
    expected = layer(x)

    def unread(*args, **kwargs):
        raise AssertionError("the two directions were split or concatenated")

    monkeypatch.setattr(fused_rnn, "_halves", unread)
    monkeypatch.setattr(torch, "cat", unread)
    torch.testing.assert_close(layer(x), expected, atol=0, rtol=0)
