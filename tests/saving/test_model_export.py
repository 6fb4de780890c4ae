"""`Model.export`: ONNX (run in onnxruntime) and `torch.export` programs vs `predict`.

Every model is checked at several (batch, time) sizes from one exported file,
with right-padded masked rows (one row of each batch full, one all padding where
the batch allows), so the symbolic batch and time axes and the in-graph masks
are all exercised.
"""

import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import birnn

L = birnn.layers
SIZES = [(1, 7), (5, 7), (3, 12), (2, 30)]
ATOL = 1e-5


def _sequential(*layers, shape=(None, 10), dtype="float32"):
    torch.manual_seed(0)
    return birnn.Sequential([birnn.Input(shape, dtype=dtype), *layers])


def docstring_model():
    return _sequential(
        L.Masking(),
        L.Bidirectional(L.LSTM(10, return_sequences=True)),
        L.Bidirectional(L.LSTM(10)),
        L.Dense(5, activation="softmax"),
    )


def embedding_gru_model():
    return _sequential(
        L.Embedding(20, 6, mask_zero=True),
        L.Bidirectional(L.GRU(7, return_sequences=True)),
        L.Bidirectional(L.GRU(5)),
        L.Dense(3),
        shape=(None,),
        dtype="int32",
    )


def sum_time_distributed_model():
    return _sequential(
        L.Masking(),
        L.Bidirectional(L.LSTM(6, return_sequences=True), merge_mode="sum"),
        L.TimeDistributed(L.Dense(4)),
    )


def custom_backward_model():
    forward = L.LSTM(10, return_sequences=True)
    backward = L.LSTM(10, activation="relu", return_sequences=True, go_backwards=True)
    return _sequential(
        L.Masking(),
        L.Bidirectional(forward, backward_layer=backward),
        L.Dense(5, activation="softmax"),
    )


def simple_rnn_model():
    return _sequential(
        L.Masking(),
        L.Bidirectional(L.SimpleRNN(5, return_sequences=True)),
        L.SimpleRNN(4),
    )


MODELS = {
    "docstring": docstring_model,
    "embedding_gru": embedding_gru_model,
    "sum_time_distributed": sum_time_distributed_model,
    "custom_backward": custom_backward_model,
    "simple_rnn": simple_rnn_model,
}


def _batch(model, batch, steps, seed=0):
    """Inputs with right-padded rows: row 0 full, the others of random lengths (0 allowed)."""
    rng = np.random.default_rng(seed + 100 * batch + steps)
    integer = model.inputs[0].dtype == "int32"
    if integer:
        x = rng.integers(1, 20, (batch, steps)).astype("int32")
    else:
        x = rng.standard_normal((batch, steps, 10)).astype("float32")
    for row in range(1, batch):
        x[row, rng.integers(0, steps) if row > 1 else 0 :] = 0
    return x


def _onnx_session(model, path):
    model.export(path, format="onnx", verbose=False)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _op_types(path):
    return [node.op_type for node in onnx.load(str(path)).graph.node]


@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_matches_predict_at_any_batch_and_length(name, tmp_path):
    model = MODELS[name]()
    session = _onnx_session(model, tmp_path / "model.onnx")
    (graph_input,) = session.get_inputs()
    assert graph_input.shape[:2] == ["batch", "time"]
    for batch, steps in SIZES:
        x = _batch(model, batch, steps)
        expected = model.predict(x, verbose=0)
        (got,) = session.run(None, {graph_input.name: x})
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_padded_rows_equal_unpadded_ones(tmp_path):
    model = docstring_model()
    session = _onnx_session(model, tmp_path / "model.onnx")
    x = _batch(model, 1, 5)
    padded = np.concatenate([x, np.zeros((1, 20, 10), "float32")], axis=1)
    name = session.get_inputs()[0].name
    (short,) = session.run(None, {name: x})
    (long,) = session.run(None, {name: padded})
    np.testing.assert_allclose(long, short, atol=ATOL, rtol=0)


def test_masked_steps_inside_the_sequence(tmp_path):
    """Keras skips any masked step; ONNX's `sequence_lens` only knows right padding."""
    model = _sequential(
        L.Masking(),
        L.Bidirectional(L.GRU(4, return_sequences=True)),
        L.LSTM(3, return_sequences=True),
    )
    session = _onnx_session(model, tmp_path / "model.onnx")
    x = _batch(model, 4, 9)
    x[0, [0, 3, 4]] = 0
    x[2, [1, 6]] = 0
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=ATOL, rtol=0)


def _unmasked_sum_time_distributed():
    """Keras 3.15 exports this with its time axis fixed to 1."""
    return _sequential(
        L.Bidirectional(L.LSTM(6, return_sequences=True), merge_mode="sum"),
        L.TimeDistributed(L.Dense(4)),
    )


def _wrapped_backward_layers():
    """`Bidirectional` around layers that already go backwards: the output is reversed."""
    return _sequential(
        L.Masking(),
        L.Bidirectional(L.LSTM(4, go_backwards=True, return_sequences=True)),
        L.Bidirectional(L.GRU(3, go_backwards=True)),
    )


def _mixed_directions():
    """An LSTM forward and a GRU backward (two operators), `mul` and `ave` merges."""
    return _sequential(
        L.Masking(),
        L.Bidirectional(
            L.LSTM(4, return_sequences=True),
            backward_layer=L.GRU(4, go_backwards=True, return_sequences=True),
            merge_mode="mul",
        ),
        L.Dropout(0.5),
        L.Bidirectional(L.SimpleRNN(3, use_bias=False, return_sequences=True), merge_mode="ave"),
    )


@pytest.mark.parametrize(
    "build", [_unmasked_sum_time_distributed, _wrapped_backward_layers, _mixed_directions]
)
def test_more_configurations(build, tmp_path):
    model = build()
    path = tmp_path / "model.onnx"
    session = _onnx_session(model, path)
    assert "Scan" not in _op_types(path)
    for batch, steps in SIZES:
        x = _batch(model, batch, steps)
        (got,) = session.run(None, {session.get_inputs()[0].name: x})
        expected = model.predict(x, verbose=0)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_opset_version(tmp_path):
    model = docstring_model()
    model.export(tmp_path / "m.onnx", opset_version=18, verbose=False)
    assert onnx.load(str(tmp_path / "m.onnx")).opset_import[0].version == 18
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = _batch(model, 3, 8)
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=ATOL, rtol=0)
    with pytest.raises(TypeError, match="opset_version"):
        model.export(tmp_path / "m.pt2", format="torch", opset_version=18)


def test_native_operators(tmp_path):
    cases = {
        "docstring": ("LSTM", 2, {"direction": b"bidirectional"}),
        "embedding_gru": ("GRU", 2, {"linear_before_reset": 1}),
        "custom_backward": ("LSTM", 1, {}),
        "simple_rnn": ("RNN", 2, {}),
    }
    for name, (op_type, count, attributes) in cases.items():
        path = tmp_path / f"{name}.onnx"
        MODELS[name]().export(path, verbose=False)
        nodes = [n for n in onnx.load(str(path)).graph.node if n.op_type == op_type]
        assert len(nodes) == count, name
        assert "Scan" not in _op_types(path)
        for node in nodes:
            values = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            for key, value in attributes.items():
                assert values[key] == value, (name, key)
    relu = onnx.load(str(tmp_path / "custom_backward.onnx"))
    (lstm,) = [n for n in relu.graph.node if n.op_type == "LSTM"]
    activations = {a.name: a for a in lstm.attribute}["activations"].strings
    assert activations == [b"Sigmoid", b"Tanh", b"Tanh", b"Sigmoid", b"Relu", b"Relu"]


def test_standalone_layers_and_gru_reset_before(tmp_path):
    """`go_backwards` outside `Bidirectional`, `zero_output_for_mask`, `reset_after=False`."""
    model = _sequential(
        L.Masking(),
        L.LSTM(4, return_sequences=True, go_backwards=True),
        L.GRU(3, return_sequences=True, zero_output_for_mask=True),
        L.GRU(3, reset_after=False, go_backwards=True, return_sequences=True),
        L.GRU(2, reset_after=False),
    )
    path = tmp_path / "model.onnx"
    session = _onnx_session(model, path)
    assert _op_types(path).count("GRU") == 3 and "Scan" not in _op_types(path)
    for batch, steps in SIZES:
        x = _batch(model, batch, steps)
        (got,) = session.run(None, {session.get_inputs()[0].name: x})
        np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=ATOL, rtol=0)


def test_loop_fallback(tmp_path):
    """Activations the fused ONNX kernels lack and stacked cells run in a `Scan`."""
    model = _sequential(
        L.Masking(),
        L.Bidirectional(L.LSTM(4, activation="softsign", return_sequences=True)),
        L.GRU(3, recurrent_activation="hard_sigmoid", return_sequences=True),
        L.RNN(L.StackedRNNCells([L.SimpleRNNCell(3, activation="elu"), L.GRUCell(2)])),
    )
    path = tmp_path / "model.onnx"
    session = _onnx_session(model, path)
    assert _op_types(path).count("Scan") == 4
    assert not {"LSTM", "GRU", "RNN"} & set(_op_types(path))
    for batch, steps in SIZES:
        x = _batch(model, batch, steps)
        x[-1, 1] = 0  # a masked step inside a row
        (got,) = session.run(None, {session.get_inputs()[0].name: x})
        np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=ATOL, rtol=0)


def test_functional_model_with_states_and_pooling(tmp_path):
    torch.manual_seed(0)
    inputs = birnn.Input((None, 10))
    x = L.Masking()(inputs)
    sequences, h_fw, c_fw, h_bw, c_bw = L.Bidirectional(
        L.LSTM(4, return_sequences=True, return_state=True), merge_mode="ave"
    )(x)
    pooled = L.GlobalAveragePooling1D()(sequences)
    peak = L.GlobalMaxPooling1D()(sequences)
    outputs = [L.Concatenate()([pooled, peak, h_fw, c_bw]), L.Add()([h_bw, c_fw])]
    model = birnn.Model(inputs, outputs)
    session = _onnx_session(model, tmp_path / "model.onnx")
    assert [o.name for o in session.get_outputs()] == model.output_names
    for batch, steps in SIZES:
        x = _batch(model, batch, steps)
        got = session.run(None, {session.get_inputs()[0].name: x})
        for g, e in zip(got, model.predict(x, verbose=0)):
            np.testing.assert_allclose(g, e, atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------- torch
@pytest.mark.parametrize("name", list(MODELS))
def test_torch_program_at_two_lengths(name, tmp_path):
    model = MODELS[name]()
    path = tmp_path / "model.pt2"
    model.export(path, format="torch", verbose=False)
    served = torch.export.load(path).module()
    for batch, steps in [(1, 7), (3, 12)]:
        x = _batch(model, batch, steps)
        with torch.no_grad():
            got = served(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=ATOL, rtol=0)


def test_input_signature(tmp_path):
    model = docstring_model()
    spec = L.InputSpec(shape=(None, None, 10), dtype="float32")
    model.export(tmp_path / "a.onnx", input_signature=[spec], verbose=False)
    session = ort.InferenceSession(str(tmp_path / "a.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", "time", 10]
    model.export(tmp_path / "b.onnx", input_signature=[torch.zeros(2, 8, 10)], verbose=False)
    session = ort.InferenceSession(str(tmp_path / "b.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", 8, 10]


def test_verbose_message(tmp_path, capsys):
    docstring_model().export(tmp_path / "m.onnx")
    assert "m.onnx" in capsys.readouterr().out


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("format", ["tf_saved_model", "litert", "openvino"])
def test_keras_formats_not_supported(format, tmp_path):
    with pytest.raises(ValueError, match="'onnx', 'torch'"):
        docstring_model().export(tmp_path / "m", format=format)


def test_unknown_format_and_keyword(tmp_path):
    model = docstring_model()
    with pytest.raises(ValueError, match="unknown format 'h5'"):
        model.export(tmp_path / "m", format="h5")
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        model.export(tmp_path / "m.onnx", quantize=True)


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    with pytest.raises(ImportError, match=r"pip install birnn\[export\]"):
        docstring_model().export(tmp_path / "m.onnx")


def test_layer_without_onnx_form(tmp_path):
    class Doubler(L.Layer):
        def call(self, x):
            return 2 * x

    model = _sequential(L.Bidirectional(L.LSTM(3)), Doubler(name="doubler"))
    with pytest.raises(ValueError, match="'doubler' \\(Doubler\\).*format='torch'"):
        model.export(tmp_path / "m.onnx")
    model.export(tmp_path / "m.pt2", format="torch", verbose=False)  # the torch route works
    served = torch.export.load(tmp_path / "m.pt2").module()
    x = np.random.default_rng(0).standard_normal((2, 4, 10)).astype("float32")
    with torch.no_grad():
        got = served(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=ATOL, rtol=0)


def test_subclasses_that_replace_call_are_not_converted_as_their_base(tmp_path):
    """A silent wrong result would be worse than the error."""

    class ScaledDense(L.Dense):
        def call(self, x):
            return 3 * super().call(x)

    class NoisyLSTM(L.LSTM):
        def call(self, sequences, **kwargs):
            return super().call(sequences + 1, **kwargs)

    model = _sequential(L.Masking(), ScaledDense(2, name="scaled"))
    with pytest.raises(ValueError, match=r"'scaled' \(ScaledDense\)"):
        model.export(tmp_path / "m.onnx")
    model = _sequential(L.Bidirectional(NoisyLSTM(3, name="noisy")))
    with pytest.raises(ValueError, match=r"'forward_noisy' \(NoisyLSTM\)"):
        model.export(tmp_path / "m.onnx")


def test_subclassed_model_needs_a_signature(tmp_path):
    class Net(birnn.Model):
        def __init__(self):
            super().__init__()
            self.rnn = L.Bidirectional(L.GRU(3))

        def call(self, x):
            return self.rnn(x)

    net = Net()
    with pytest.raises(ValueError, match="input_signature"):
        net.export(tmp_path / "m.pt2", format="torch")
    spec = L.InputSpec(shape=(None, None, 4))
    net.export(tmp_path / "m.pt2", format="torch", input_signature=[spec], verbose=False)
    served = torch.export.load(tmp_path / "m.pt2").module()
    x = torch.rand(1, 6, 4)
    with torch.no_grad():
        torch.testing.assert_close(served(x), net(x), atol=ATOL, rtol=0)
