"""The packed (padding-skipping) kernel call equals the padded one wherever it is read."""

import pytest
import torch

import birnn.layers as layers
from birnn.ops import fused_rnn, masks, packed_rnn

# Packing and segmenting are how PyTorch's kernels skip padding; where birnn's native
# kernels run, neither is used (`birnn.ops.native_rnn`), so these tests run without them.
pytestmark = pytest.mark.usefixtures("native_off")

B, T, F, U = 6, 9, 3, 4
GATES = {"lstm": 4, "gru": 3}
# Right-padded lengths; compaction turns any mask into these.
LENGTHS = {
    "random": [9, 4, 7, 1, 6, 3],
    "all_full": [9] * B,
    "all_but_one_empty": [0, 0, 5, 0, 0, 0],
    "zero_rows": [9, 0, 2, 0, 8, 5],
}


def _mask(name):
    if name == "holes":
        g = torch.Generator().manual_seed(3)
        mask = torch.rand(B, T, generator=g) < 0.6
        mask[1] = False
        return mask
    return torch.arange(T) < torch.tensor(LENGTHS[name])[:, None]


MASKS = [*LENGTHS, "holes"]


def _direction(kind, seed, go_backwards, mask, use_bias=True, **options):
    g = torch.Generator().manual_seed(seed)
    gates = GATES[kind]
    kernel = torch.randn(F, gates * U, generator=g) / 2
    recurrent_kernel = torch.randn(U, gates * U, generator=g) / 2
    bias_shape = (gates * U,) if kind == "lstm" else (2, gates * U)
    bias = torch.randn(bias_shape, generator=g) if use_bias else None
    return fused_rnn.Direction(
        kind, kernel, recurrent_kernel, bias, mask=mask, go_backwards=go_backwards, **options
    )


def _pair(kind, x, mask, packed, monkeypatch, **options):
    """`fused_rnn.run_pair` with the packed call forced on or off."""
    calls = []

    def rule(*args):
        calls.append(packed)
        return packed

    monkeypatch.setattr(packed_rnn, "worth_packing", rule)
    forward = _direction(kind, 1, False, mask, **options)
    backward = _direction(kind, 2, True, mask, **options)
    pair = fused_rnn.run_pair(x, forward, backward)
    assert calls == [packed]
    return pair


def _assert_pairs_equal(a, b, return_all_outputs=True):
    torch.testing.assert_close(a.last_outputs, b.last_outputs, rtol=0, atol=1e-6)
    torch.testing.assert_close(a.states, b.states, rtol=0, atol=1e-6)
    if return_all_outputs:
        torch.testing.assert_close(a.sequences, b.sequences, rtol=0, atol=1e-6)
        torch.testing.assert_close(a.outputs, b.outputs, rtol=0, atol=1e-6)
    else:
        assert a.sequences is None and b.sequences is None


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("mask_name", MASKS)
def test_bidirectional_results_match_the_padded_call(kind, mask_name, monkeypatch):
    x = torch.randn(B, T, F, generator=torch.Generator().manual_seed(0))
    mask = _mask(mask_name)
    with torch.no_grad():
        padded = _pair(kind, x, mask, False, monkeypatch)
        packed = _pair(kind, x, mask, True, monkeypatch)
    _assert_pairs_equal(packed, padded)
    empty = ~mask.any(1)
    assert torch.equal(packed.last_outputs[1][empty], torch.zeros(int(empty.sum()), U))
    for state in packed.states[0] + packed.states[1]:
        assert torch.equal(state[empty], torch.zeros(int(empty.sum()), U))


@pytest.mark.parametrize(
    "options",
    [
        {"zero_output_for_mask": True},
        {"return_all_outputs": False},
        {"use_bias": False},
    ],
)
def test_options_match_the_padded_call(options, monkeypatch):
    x = torch.randn(B, T, F, generator=torch.Generator().manual_seed(1))
    mask = _mask("zero_rows")
    with torch.no_grad():
        padded = _pair("gru", x, mask, False, monkeypatch, **options)
        packed = _pair("gru", x, mask, True, monkeypatch, **options)
    _assert_pairs_equal(packed, padded, options.get("return_all_outputs", True))


def _compacted(kind, mask_name, requires_grad):
    """What `_masked_pair` hands the kernel: compacted inputs, zero states, both weights."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(B, T, F, generator=g, requires_grad=requires_grad)
    mask = _mask(mask_name)
    index, _, lengths = masks.compaction(mask)
    padded_x = fused_rnn._with_padding_feature(masks.zero_masked_steps(x, mask), mask)
    xc = masks.gather_time_major(padded_x, index)
    weights = []
    for seed, backwards in ((1, False), (2, True)):
        d = _direction(kind, seed, backwards, mask)
        params = [t.requires_grad_(requires_grad) for t in (d.kernel, d.recurrent_kernel, d.bias)]
        weights += fused_rnn.torch_weights(kind, *params, padding_feature=True)
    zeros = torch.zeros(2, B, U)
    return x, xc, [zeros] * (2 if kind == "lstm" else 1), weights, lengths


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("mask_name", ["random", "zero_rows", "all_but_one_empty"])
def test_gradients_match_the_padded_call(kind, mask_name):
    """The rule keeps training on the padded call; the packed one would train alike."""
    results = []
    for packed in (False, True):
        x, xc, hx, weights, lengths = _compacted(kind, mask_name, True)
        if packed:
            outputs, final = packed_rnn.bidirectional_kernel(kind, xc, hx, weights, True, lengths)
        else:
            outputs, final = fused_rnn._kernel(kind, xc, hx, weights, True, True, False)
        valid = (torch.arange(T)[:, None] < lengths)[: outputs.shape[0], :, None]
        loss = torch.where(valid, outputs[: valid.shape[0]], 0.0).square().sum()
        # What callers read: the last state (LSTM carry, GRU state) and the reverse `h`; an
        # LSTM's in-time final `h` is taken from `outputs` (the padded call moves it on).
        loss = loss + final[-1].sum() + final[0][1].sum()
        grads = torch.autograd.grad(loss, [x] + [w for w in weights if w.requires_grad])
        results.append((loss.detach(), grads))
    (loss_a, grads_a), (loss_b, grads_b) = results
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-6, atol=1e-5)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def _rule_inputs(units=128, batch=64, steps=100, lengths=60, grad=False):
    x = torch.zeros(steps, batch, 33, requires_grad=grad)
    weights = [torch.zeros(3 * units, 33), torch.zeros(3 * units, units)]
    return x, weights, torch.full((batch,), lengths)


def test_size_rule():
    with torch.no_grad():
        assert packed_rnn.worth_packing("gru", *_rule_inputs())
        assert not packed_rnn.worth_packing("lstm", *_rule_inputs())  # oneDNN's padded wins
        assert not packed_rnn.worth_packing("gru", *_rule_inputs(units=32))
        assert not packed_rnn.worth_packing("gru", *_rule_inputs(lengths=95))  # little padding
        assert packed_rnn.worth_packing("gru", *_rule_inputs(lengths=90))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not packed_rnn.worth_packing("gru", *_rule_inputs())
    assert packed_rnn.worth_packing("gru", *_rule_inputs())  # nothing needs a gradient
    assert not packed_rnn.worth_packing("gru", *_rule_inputs(grad=True))
    x, weights, lengths = _rule_inputs()
    weights[1].requires_grad_(True)
    assert not packed_rnn.worth_packing("gru", x, weights, lengths)
    with torch.no_grad():
        assert packed_rnn.worth_packing("gru", x, weights, lengths)


def test_size_rule_is_off_while_tracing_or_compiling(monkeypatch):
    with torch.no_grad():
        monkeypatch.setattr(torch.jit, "is_tracing", lambda: True)
        assert not packed_rnn.worth_packing("gru", *_rule_inputs())
        monkeypatch.setattr(torch.jit, "is_tracing", lambda: False)
        monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
        assert not packed_rnn.worth_packing("gru", *_rule_inputs())


def test_layer_inference_takes_the_packed_call_and_matches(monkeypatch):
    """`Bidirectional(GRU(64))` on a padded batch, in inference: packed, same results."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(8, 20, 5, generator=g)
    mask = torch.arange(20) < torch.tensor([20, 3, 12, 0, 7, 20, 15, 9])[:, None]
    layer = layers.Bidirectional(layers.GRU(64, return_sequences=True))
    layer(x, mask=mask)  # builds
    taken = []
    rule = packed_rnn.worth_packing

    def spy(*args):
        taken.append(rule(*args))
        return taken[-1]

    monkeypatch.setattr(packed_rnn, "worth_packing", spy)
    with torch.no_grad():
        packed = layer(x, mask=mask)
        monkeypatch.setattr(packed_rnn, "worth_packing", lambda *args: False)
        padded = layer(x, mask=mask)
    assert taken == [True]
    torch.testing.assert_close(packed, padded, rtol=0, atol=1e-6)
    training = layer(x, mask=mask)  # needs gradients: padded call
    assert taken == [True]
    torch.testing.assert_close(training.detach(), padded, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- one direction in segments
SEGMENT_LENGTHS = {
    **LENGTHS,
    "length_one": [1, 9, 1, 1, 4, 1],
    "all_empty": [0] * B,
}


def _padded_direction_inputs(kind, lengths, seed):
    """A compacted, time-major batch with the padding feature, random initial states."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    valid = (torch.arange(T)[:, None] < lengths).unsqueeze(-1)
    x = torch.where(valid, torch.randn(T, B, F, generator=g), 0.0)
    x = torch.cat([x, (~valid).to(x.dtype)], dim=-1)
    d = _direction(kind, seed, False, None)
    weights = fused_rnn.torch_weights(
        kind, d.kernel, d.recurrent_kernel, d.bias, padding_feature=True
    )
    states = [torch.randn(1, B, U, generator=g) for _ in range(2 if kind == "lstm" else 1)]
    return x, states, weights, lengths


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("lengths_name", list(SEGMENT_LENGTHS))
@pytest.mark.parametrize("segments", [1, 3, 8])
def test_segmented_kernel_matches_the_padded_call(kind, lengths_name, segments, monkeypatch):
    monkeypatch.setattr(packed_rnn, "SEGMENTS", segments)
    x, states, weights, lengths = _padded_direction_inputs(kind, SEGMENT_LENGTHS[lengths_name], 7)
    order, rows, sorted_lengths = packed_rnn.by_length(lengths)
    assert sorted_lengths == sorted(lengths.tolist(), reverse=True)
    with torch.no_grad():
        hx = (states[0], states[1]) if kind == "lstm" else states[0]
        padded, *padded_final = getattr(torch._VF, kind)(
            x, hx, weights, True, 1, 0.0, False, False, False
        )
        outputs, final = packed_rnn.segmented_kernel(
            kind,
            x.index_select(1, order),
            [s.index_select(1, order) for s in states],
            weights,
            True,
            sorted_lengths,
        )
    outputs = outputs.index_select(1, rows)
    final = [s.index_select(1, rows) for s in final]
    valid = (torch.arange(T)[:, None] < lengths).unsqueeze(-1)
    torch.testing.assert_close(
        torch.where(valid, outputs, 0.0), torch.where(valid, padded, 0.0), rtol=0, atol=1e-6
    )
    # The states the padding feature freezes: an LSTM's carry, a GRU's state.
    torch.testing.assert_close(final[-1], padded_final[-1], rtol=0, atol=1e-6)
    empty = lengths == 0
    for state, initial in zip(final, states):
        assert torch.equal(state[:, empty], initial[:, empty])
    assert not outputs[:, empty].any()


def _direction_run(kind, x, mask, segmented, monkeypatch, **options):
    calls = []

    def rule(*args):
        calls.append(segmented)
        return segmented

    monkeypatch.setattr(packed_rnn, "worth_segmenting", rule)
    direction = _direction(kind, 3, options.pop("go_backwards", False), mask, **options)
    with torch.no_grad():
        result = fused_rnn.run_direction(x, direction, time_order=True)
    assert calls == [segmented]
    return result


DIRECTION_OPTIONS = [
    {},
    {"go_backwards": True},
    {"zero_output_for_mask": True},
    {"go_backwards": True, "zero_output_for_mask": True, "return_all_outputs": False},
    {"return_all_outputs": False},
    {"use_bias": False},
    {"initial_states": "random"},
]


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("mask_name", [*MASKS, "length_one", "all_empty"])
@pytest.mark.parametrize("options", DIRECTION_OPTIONS, ids=str)
def test_direction_in_segments_matches_one_padded_call(kind, mask_name, options, monkeypatch):
    """Any mask (left padding and holes compact to right padding) and every option."""
    g = torch.Generator().manual_seed(8)
    x = torch.randn(B, T, F, generator=g)
    if mask_name in LENGTHS or mask_name == "holes":
        mask = _mask(mask_name)
    else:
        mask = torch.arange(T) < torch.tensor(SEGMENT_LENGTHS[mask_name])[:, None]
    options = dict(options)
    if options.get("initial_states") == "random":
        count = 2 if kind == "lstm" else 1
        options["initial_states"] = [torch.randn(B, U, generator=g) for _ in range(count)]
    padded = _direction_run(kind, x, mask, False, monkeypatch, **options)
    segmented = _direction_run(kind, x, mask, True, monkeypatch, **options)
    torch.testing.assert_close(segmented, padded, rtol=0, atol=1e-6)


def test_segment_size_rule():
    with torch.no_grad():
        assert packed_rnn.worth_segmenting("gru", *_rule_inputs())
        assert not packed_rnn.worth_segmenting("lstm", *_rule_inputs())  # measured: no gain
        assert not packed_rnn.worth_segmenting("gru", *_rule_inputs(units=32))
        assert not packed_rnn.worth_segmenting("gru", *_rule_inputs(lengths=95))
    assert not packed_rnn.worth_segmenting("gru", *_rule_inputs(grad=True))


@pytest.mark.parametrize("return_sequences", [True, False])
def test_side_by_side_layer_inference_runs_segments_and_matches(return_sequences, monkeypatch):
    """`Bidirectional(GRU(64))` with its directions side by side: each direction in
    segments in inference, the same results as padded; training stays padded."""
    from birnn.ops import side_by_side

    g = torch.Generator().manual_seed(9)
    x = torch.randn(8, 20, 5, generator=g)
    mask = torch.arange(20) < torch.tensor([20, 3, 12, 0, 7, 20, 1, 9])[:, None]
    mask[2, :4] = False  # left padding
    layer = layers.Bidirectional(
        layers.GRU(64, return_sequences=return_sequences, return_state=True)
    )
    layer(x, mask=mask)  # builds
    taken = []
    rule = packed_rnn.worth_segmenting

    def spy(*args):
        taken.append(rule(*args))
        return taken[-1]

    mode = side_by_side.get_mode()
    side_by_side.set_mode("on")
    try:
        monkeypatch.setattr(packed_rnn, "worth_segmenting", spy)
        with torch.no_grad():
            segmented = layer(x, mask=mask)
        assert taken == [True, True]
        monkeypatch.setattr(packed_rnn, "worth_segmenting", lambda *args: False)
        with torch.no_grad():
            padded = layer(x, mask=mask)
        training = layer(x, mask=mask)
    finally:
        side_by_side.set_mode(mode)
    assert taken == [True, True]
    torch.testing.assert_close(segmented, padded, rtol=0, atol=1e-6)
    torch.testing.assert_close([t.detach() for t in training], padded, rtol=0, atol=1e-6)
