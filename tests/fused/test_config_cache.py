"""The fused path's cached configuration facts follow every change made after a call.

`fused_kind()` and Bidirectional's choice between one fused run and two layer
calls are cached per `config_version()`: each test calls a layer, changes
something, and checks that the next call computes what a fresh layer in the
new configuration computes.
"""

import copy
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch

from birnn import regularizers
from birnn.layers import LSTM, Bidirectional
from birnn.layers.layer import config_version
from birnn.ops import fused_rnn

B, T, F, U = 3, 4, 2, 3


@pytest.fixture
def pairs(monkeypatch):
    """Counts Bidirectional's fused runs (`run_pair` calls)."""
    count = [0]
    run_pair = fused_rnn.run_pair

    def counted(*args, **kwargs):
        count[0] += 1
        return run_pair(*args, **kwargs)

    monkeypatch.setattr(fused_rnn, "run_pair", counted)
    return count


def _bidirectional(**kwargs):
    torch.manual_seed(0)
    layer = Bidirectional(LSTM(U, return_sequences=True, **kwargs))
    x = torch.randn(B, T, F)
    layer(x)
    return layer, x


def _twin(layer, **kwargs):
    """A fresh Bidirectional built with `kwargs` on its LSTM, holding `layer`'s weights."""
    twin = Bidirectional(LSTM(U, return_sequences=True, **kwargs))
    twin.build((B, T, F))
    twin.set_weights(layer.get_weights())
    return twin


def test_setting_any_layer_attribute_changes_the_version():
    layer = LSTM(U)
    before = config_version()
    layer.cell.recurrent_dropout = 0.0
    assert config_version() != before
    before = config_version()
    del layer.cell.recurrent_dropout
    assert config_version() != before


@pytest.mark.parametrize(
    "change",
    [
        lambda lstm: setattr(lstm, "use_cudnn", False),
        lambda lstm: setattr(lstm, "unroll", True),
        lambda lstm: setattr(lstm.cell, "recurrent_dropout", 0.5),
        lambda lstm: setattr(lstm.cell, "activation", torch.relu),
    ],
    ids=["use_cudnn", "unroll", "recurrent_dropout", "activation"],
)
def test_fused_kind_follows_the_configuration(change):
    lstm = LSTM(U)
    lstm(torch.randn(B, T, F), training=True)
    assert lstm.fused_kind(True) == "lstm"
    change(lstm)
    assert lstm.fused_kind(True) is None


def test_use_cudnn_true_still_raises_after_a_cached_answer():
    lstm = LSTM(U, use_cudnn=True)
    lstm(torch.randn(B, T, F))
    assert lstm.fused_kind(False) == "lstm"
    lstm.cell.recurrent_dropout = 0.5
    with pytest.raises(ValueError, match="use_cudnn=True"):
        lstm.fused_kind(False)


def test_a_changed_activation_is_used_by_the_next_call(pairs):
    layer, x = _bidirectional()
    assert pairs[0] == 1
    for direction in (layer.forward_layer, layer.backward_layer):
        direction.cell.activation = torch.relu
    out = layer(x)
    assert pairs[0] == 1  # relu has no fused kernel: the layers were called
    expected = _twin(layer, activation="relu")(x)
    torch.testing.assert_close(out, expected)


def test_an_activity_regularizer_set_after_a_call_applies(pairs):
    layer, x = _bidirectional()
    layer.forward_layer.activity_regularizer = regularizers.L2(0.1)
    out = layer(x)
    assert pairs[0] == 1
    assert len(layer.losses) == 1
    twin = _twin(layer)
    twin.forward_layer.activity_regularizer = regularizers.L2(0.1)
    torch.testing.assert_close(out, twin(x))
    torch.testing.assert_close(layer.losses[0], twin.losses[0])


def test_a_changed_autocast_is_used_by_the_next_call(pairs):
    layer, x = _bidirectional()
    layer.backward_layer.autocast = False  # the two directions now compute differently
    out = layer(x)
    assert pairs[0] == 1  # the layers were called
    twin = _twin(layer)
    twin.backward_layer.autocast = False
    torch.testing.assert_close(out, twin(x))
    layer.backward_layer.autocast = True
    layer(x)
    assert pairs[0] == 2  # alike again: one fused run


def test_a_replaced_weight_is_used_by_the_next_call():
    layer, x = _bidirectional()
    kernel = layer.forward_layer.cell.kernel
    layer.forward_layer.cell.kernel = torch.nn.Parameter(torch.zeros_like(kernel))
    out = layer(x)
    weights = layer.get_weights()
    assert not weights[0].any()
    torch.testing.assert_close(out, _twin(layer)(x))


def test_trainable_set_after_a_call_stops_the_gradients():
    layer, x = _bidirectional()
    layer.trainable = False
    assert not layer(x).requires_grad
    layer.trainable = True
    assert layer(x).requires_grad


def test_a_hook_registered_after_a_call_runs(pairs):
    layer, x = _bidirectional()
    seen = []
    handle = layer.forward_layer.register_forward_hook(lambda *args: seen.append(1))
    layer(x)
    assert seen == [1] and pairs[0] == 1  # the layers were called, not fused
    handle.remove()
    layer(x)
    assert seen == [1] and pairs[0] == 2


def test_copies_start_without_the_cache():
    layer, x = _bidirectional()
    for twin in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert "_config_cache" not in twin.__dict__
        torch.testing.assert_close(twin(x), layer(x))


def test_compiled_calls_do_not_recompile_when_the_version_changes():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    layer, x = _bidirectional()
    compiled = torch.compile(layer, backend="eager")
    expected = layer(x)
    torch.testing.assert_close(compiled(x), expected)
    graphs = counters["stats"]["unique_graphs"]
    layer.forward_layer.some_attribute = 1  # a new version
    torch.testing.assert_close(compiled(x), expected)
    assert counters["stats"]["unique_graphs"] == graphs


def test_eager_calls_do_not_import_dynamo_and_compiling_later_works():
    script = textwrap.dedent(
        """
        import sys
        import torch
        from birnn.layers import LSTM, Bidirectional
        layer = Bidirectional(LSTM(3, return_sequences=True))
        x = torch.randn(2, 4, 5)
        expected = layer(x)
        assert "torch._dynamo" not in sys.modules
        compiled = torch.compile(layer, backend="eager")
        for _ in range(2):
            torch.testing.assert_close(compiled(x), expected)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr


def test_a_training_step_keeps_the_cached_facts():
    import numpy as np

    from birnn import Input, Sequential
    from birnn.layers import Dense

    model = Sequential([Input((T, F)), Bidirectional(LSTM(U)), Dense(2)])
    model.compile(loss="mse", optimizer="rmsprop")
    x, y = np.ones((B, T, F), "float32"), np.ones((B, 2), "float32")
    model.train_on_batch(x, y)
    model.predict_on_batch(x)
    before = config_version()
    model.train_on_batch(x, y)
    model.predict_on_batch(x)
    assert config_version() == before
