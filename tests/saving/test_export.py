"""The plain PyTorch routes: `state_dict()`, `torch.export` and `torch.jit.trace`."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import birnn
from birnn.saving.export import export_for_serving


def _trained_model():
    model = birnn.Sequential(
        [
            birnn.Input((None, 3)),
            birnn.layers.Masking(0.0),
            birnn.layers.Bidirectional(birnn.layers.LSTM(5, return_sequences=True)),
            birnn.layers.Bidirectional(birnn.layers.GRU(4)),
            birnn.layers.Dense(2),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    model.fit(
        rng.random((8, 6, 3), dtype=np.float32),
        rng.random((8, 2), dtype=np.float32),
        epochs=1,
        verbose=0,
    )
    return model


@pytest.fixture(scope="module")
def trained():
    return _trained_model()


def _reference(model, x):
    with torch.no_grad():
        return model(x, training=False)


def test_state_dict_round_trip(trained):
    state = trained.state_dict()
    assert any(key.endswith("forward_layer.cell.kernel") for key in state)
    fresh = birnn.models.Sequential.from_config(trained.get_config())
    fresh.load_state_dict(state)
    x = torch.rand(3, 6, 3)
    torch.testing.assert_close(_reference(fresh, x), _reference(trained, x))


def test_torch_export_with_dynamic_batch(trained, tmp_path):
    program = export_for_serving(trained, torch.rand(2, 6, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's warning on non-contiguous weights
        torch.export.save(program, tmp_path / "model.pt2")
    served = torch.export.load(tmp_path / "model.pt2").module()
    for batch in (1, 5):
        x = torch.rand(batch, 6, 3)
        torch.testing.assert_close(served(x), _reference(trained, x), atol=1e-5, rtol=0)


def test_torch_jit_trace(trained, tmp_path):
    traced = export_for_serving(trained, np.random.rand(2, 6, 3), method="trace")
    torch.jit.save(traced, tmp_path / "model.pt")
    served = torch.jit.load(tmp_path / "model.pt")
    x = torch.rand(4, 6, 3)
    torch.testing.assert_close(served(x), _reference(trained, x), atol=1e-5, rtol=0)


def test_padding_to_the_exported_length_is_masked(trained):
    traced = export_for_serving(trained, torch.rand(2, 6, 3), method="trace")
    short = torch.rand(2, 4, 3) + 0.1
    padded = torch.cat([short, torch.zeros(2, 2, 3)], dim=1)
    torch.testing.assert_close(traced(padded), _reference(trained, short), atol=1e-5, rtol=0)


def test_unknown_method(trained):
    with pytest.raises(ValueError, match="method"):
        export_for_serving(trained, torch.rand(2, 6, 3), method="script")


# ------------------------------------------------------------------------ documented limits
def _bidirectional(layer):
    return birnn.Sequential(
        [
            birnn.Input((None, 2)),
            birnn.layers.Masking(),
            birnn.layers.Bidirectional(layer),
            birnn.layers.Dense(1),
        ]
    )


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_trace_of_fused_layers_accepts_other_lengths(kind):
    layer = birnn.layers.LSTM(3) if kind == "lstm" else birnn.layers.GRU(3)
    model = _bidirectional(layer)
    traced = export_for_serving(model, torch.rand(2, 6, 2), method="trace")
    for steps in (3, 9):
        x = torch.rand(3, steps, 2)
        torch.testing.assert_close(traced(x), _reference(model, x), atol=1e-5, rtol=0)


def test_trace_of_the_generic_loop_is_fixed_to_the_example_length():
    model = _bidirectional(birnn.layers.SimpleRNN(3))
    traced = export_for_serving(model, torch.rand(2, 6, 2), method="trace")
    x = torch.rand(3, 6, 2)
    torch.testing.assert_close(traced(x), _reference(model, x), atol=1e-5, rtol=0)
    with pytest.raises(RuntimeError):
        traced(torch.rand(3, 9, 2))


def test_export_accepts_other_lengths_and_batch_one(trained):
    program = export_for_serving(trained, torch.rand(1, 6, 3))  # widened for tracing
    served = program.module()
    for batch, steps in ((1, 9), (3, 2)):
        x = torch.rand(batch, steps, 3)
        torch.testing.assert_close(served(x), _reference(trained, x), atol=1e-5, rtol=0)


def test_torch_jit_script_is_not_supported(trained):
    """The module docstring says so; if this starts to pass, update it."""
    with pytest.raises(Exception):  # noqa: B017  (TorchScript's errors vary)
        torch.jit.script(trained)


def test_readme_serving_example_runs(tmp_path, monkeypatch):
    """The README's serving code block runs as written, and both artifacts match predict."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Serving: `Model.export`", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    L = birnn.layers
    model = birnn.Sequential(
        [
            birnn.Input((None, 10)),
            L.Masking(),
            L.Bidirectional(L.LSTM(3)),
            L.Dense(2, activation="softmax"),
        ]
    )
    monkeypatch.chdir(tmp_path)
    namespace = {"model": model}
    exec(compile(code, "README.md", "exec"), namespace)
    x = namespace["x"]
    expected = model.predict(x, verbose=0)
    session = namespace["session"]
    (onnx_probs,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(onnx_probs, expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(namespace["probs"].detach().numpy(), expected, atol=1e-6, rtol=0)
