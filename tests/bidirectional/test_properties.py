"""Properties of `Bidirectional` over random masks and a user-written cell."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from birnn.layers import GRU, LSTM, RNN, Bidirectional

from ._seq_layers import DecayCell

STEPS = 6
LAYERS = {
    "lstm": Bidirectional(LSTM(3, return_sequences=True, return_state=True)),
    "gru": Bidirectional(GRU(3, return_sequences=True, return_state=True), merge_mode="mul"),
}


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(sorted(LAYERS)),
    mask=st.lists(st.lists(st.booleans(), min_size=STEPS, max_size=STEPS), min_size=1, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_masked_sequence_equals_its_compacted_steps(kind, mask, seed):
    # A masked step is skipped: each row computes what its unmasked steps alone give,
    # scattered back to their positions, with zeros at the masked ones.
    layer = LAYERS[kind]
    mask = torch.tensor(mask)
    x = torch.randn(len(mask), STEPS, 4, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out, *states = layer(x, mask=mask)
        for row in range(len(mask)):
            keep = mask[row]
            assert torch.all(out[row, ~keep] == 0)
            if not keep.any():
                assert all(torch.all(s[row] == 0) for s in states)
                continue
            compact, *compact_states = layer(x[row : row + 1, keep])
            torch.testing.assert_close(out[row, keep], compact[0], atol=1e-6, rtol=0)
            for s, c in zip(states, compact_states):
                torch.testing.assert_close(s[row], c[0], atol=1e-6, rtol=0)


def test_rnn_with_unregistered_user_cell():
    # Keras 3.15 would need the cell registered to copy the layer; birnn copies the RNN
    # through its own class, with the classes of the live layer's cells known. Its config
    # alone needs the class passed (or registered), as in Keras.
    layer = Bidirectional(RNN(DecayCell(3), return_sequences=True))
    x = torch.randn(2, 5, 4)
    out = layer(x)
    assert out.shape == (2, 5, 6)
    assert type(layer.forward_layer.cell) is DecayCell
    assert layer.forward_layer.cell is not layer.backward_layer.cell
    fw_kernel, bw_kernel = layer.get_weights()
    expected_fw = []
    h = torch.zeros(2, 3)
    for t in range(5):
        h = torch.tanh(x[:, t] @ torch.from_numpy(fw_kernel) + 0.5 * h)
        expected_fw.append(h)
    expected_bw = []
    h = torch.zeros(2, 3)
    for t in reversed(range(5)):
        h = torch.tanh(x[:, t] @ torch.from_numpy(bw_kernel) + 0.5 * h)
        expected_bw.insert(0, h)
    expected = torch.cat([torch.stack(expected_fw, 1), torch.stack(expected_bw, 1)], -1)
    np.testing.assert_allclose(out.detach().numpy(), expected.numpy(), atol=1e-6)
    clone = Bidirectional.from_config(layer.get_config(), custom_objects={"DecayCell": DecayCell})
    assert type(clone.backward_layer.cell) is DecayCell
