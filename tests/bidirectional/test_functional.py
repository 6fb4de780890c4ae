"""`Bidirectional` in functional graphs: symbolic shapes, masks and `initial_state` inputs."""

import numpy as np
import pytest
import torch

from birnn import Input, Model
from birnn.layers import LSTM, Bidirectional, Dense, Masking


@pytest.mark.parametrize("merge_mode", ["concat", None])
def test_symbolic_outputs_have_the_computed_shapes(merge_mode):
    layer = Bidirectional(LSTM(3, return_sequences=True, return_state=True), merge_mode=merge_mode)
    outputs = layer(Input(shape=(5, 4)))
    assert isinstance(outputs, (list, tuple))
    expected = layer.compute_output_shape((None, 5, 4))
    assert [tuple(o.shape) for o in outputs] == [tuple(s) for s in expected]


def test_model_with_masking_and_initial_state_inputs_matches_eager():
    x_in = Input(shape=(5, 4))
    states_in = [Input(shape=(3,)) for _ in range(4)]
    layer = Bidirectional(LSTM(3, return_sequences=True), merge_mode="sum")
    y = layer(Masking(0.0)(x_in), initial_state=states_in)
    model = Model([x_in, *states_in], Dense(2)(y))

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 4)).astype("float32")
    x[1, 3:] = 0.0
    states = [rng.standard_normal((3, 3)).astype("float32") for _ in range(4)]
    predicted = model.predict([x, *states], verbose=0)

    mask = torch.from_numpy(np.any(x != 0, axis=-1))
    eager = layer(
        torch.from_numpy(x), mask=mask, initial_state=[torch.from_numpy(s) for s in states]
    )
    dense = model.layers[-1]
    np.testing.assert_allclose(predicted, dense(eager).detach().numpy(), atol=1e-5)
