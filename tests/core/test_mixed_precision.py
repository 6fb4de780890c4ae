"""Mixed precision dtype policies (`mixed_bfloat16`, `mixed_float16`) against Keras 3.15.1.

Tolerances. bfloat16 keeps 8 significant bits: one unit in the last place (ulp)
is 2**-8 of a value in [0.5, 1) (0.0039) and 2**-7 in [1, 2). Where birnn and
Keras run the same ops in the same order (the recurrent loop of GRU, BatchNorm,
a float32 layer inside a mixed one) the results are compared exactly or to
float32 precision. Elsewhere the order of the roundings differs: PyTorch's fused
LSTM/GRU kernels accumulate each step's matrix products in float32 and round once,
where Keras's CPU loop rounds after every op; and LSTM's loop adds its gate terms
in another order. Outputs (bounded by 1 in magnitude for the RNNs, which get a
few ulps of drift over 7 steps) are then compared to 4 ulps at 1.0 (2**-6 =
0.0156), and larger values (other layers) to the same fraction of their
magnitude; gradients, sums over batch and time of such values, to 3% of their
largest element. A computation in float32 instead of bfloat16 would pass those
tolerances, so each case also checks the dtypes, and the loop cases the exact
values. float16 keeps 11 bits: 4 ulps at 1.0 is 2**-9 (0.002) and gradients are
compared to 0.5% of their largest element.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

import birnn
from birnn import dtype_policies, layers, mixed_precision, optimizers
from tests.keras_oracle import copy_weights, keras

TOLERANCE = {
    "mixed_bfloat16": {"out": 2.0**-6, "grad": 3e-2},
    "mixed_float16": {"out": 2.0**-9, "grad": 5e-3},
}
COMPUTE = {"mixed_bfloat16": torch.bfloat16, "mixed_float16": torch.float16}


@pytest.fixture(autouse=True)
def _restore_policies():
    keras.utils.set_random_seed(0)  # Keras's initializers: the same weights whatever the order
    # No policy set (new layers follow `floatx()`) until a test sets one: leave it so.
    before = dtype_policies._global_policy
    yield
    dtype_policies._global_policy = before
    keras.mixed_precision.set_global_policy("float32")


def _np(t) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _flat(out) -> list:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _compare(ours, theirs, x, policy, mask=None, exact=False, **call_kwargs):
    """Same weights and inputs: same output dtypes, outputs, and gradients of the weights
    and inputs (`exact`: to float32 precision). Returns the max output difference."""
    tol = {"out": 1e-6, "grad": 1e-6} if exact else TOLERANCE[policy]
    xk = torch.tensor(x, requires_grad=True)
    xo = torch.tensor(x, requires_grad=True)
    if mask is not None:
        call_kwargs["mask"] = torch.tensor(mask)
    k_out = _flat(theirs(xk, **call_kwargs))
    ours.build(x.shape)
    copy_weights(theirs, ours)
    o_out = _flat(ours(xo, **call_kwargs))
    assert [t.dtype for t in o_out] == [t.dtype for t in k_out]
    # Relative above 1 in magnitude, where the ulp grows with the value.
    diff = max(
        float((np.abs(_np(o) - _np(k)) / np.maximum(1.0, np.abs(_np(k)))).max())
        for o, k in zip(o_out, k_out)
    )
    assert diff <= tol["out"], f"outputs differ by {diff}"
    cotangents = [
        torch.randn(t.shape, generator=torch.Generator().manual_seed(i))
        for i, t in enumerate(k_out)
    ]
    sum((t.float() * c).sum() for t, c in zip(k_out, cotangents)).backward()
    sum((t.float() * c).sum() for t, c in zip(o_out, cotangents)).backward()
    k_grads = [v.value.grad for v in theirs.trainable_weights] + [xk.grad]
    o_grads = [w.grad for w in ours.trainable_weights] + [xo.grad]
    for index, (o, k) in enumerate(zip(o_grads, k_grads)):
        assert o.dtype == torch.float32, "gradients reach the float32 weights"
        scale = max(float(k.abs().max()), 1e-6)
        rel = float((o - k).abs().max()) / scale
        assert rel <= tol["grad"], f"gradient {index} differs by {rel:.3g} of its largest value"
    return diff


# ---------------------------------------------------------------------- the policy API
def test_policy_properties_match_keras():
    for name in ("mixed_float16", "mixed_bfloat16", "float32", "bfloat16", "float64", "int32"):
        ours, theirs = dtype_policies.DTypePolicy(name), keras.dtype_policies.DTypePolicy(name)
        assert (ours.name, ours.compute_dtype, ours.variable_dtype) == (
            theirs.name,
            theirs.compute_dtype,
            theirs.variable_dtype,
        )
        assert repr(ours) == repr(theirs)
        assert dtype_policies.serialize(ours) == keras.dtype_policies.serialize(theirs)
        assert dtype_policies.DTypePolicy.from_config(ours.get_config()) == ours
    assert dtype_policies.DTypePolicy().name == "float32"
    assert dtype_policies.DTypePolicy(torch.bfloat16).name == "bfloat16"


@pytest.mark.parametrize("name", ["mixed_float32", "foo", "mixed_int8"])
def test_unknown_policy_names_raise_keras_error(name):
    with pytest.raises(ValueError, match="Cannot convert .* to a mixed precision DTypePolicy"):
        dtype_policies.DTypePolicy(name)
    with pytest.raises(ValueError, match="Dense: invalid value for argument `dtype`"):
        layers.Dense(2, dtype=name)


def test_bad_policy_arguments_raise():
    with pytest.raises(TypeError, match="must be a string"):
        dtype_policies.DTypePolicy(3)
    with pytest.raises(ValueError, match="Invalid `policy` argument"):
        mixed_precision.set_global_policy(3)
    with pytest.raises(ValueError, match="not quantized"):
        dtype_policies.deserialize({"class_name": "Int8DTypePolicy", "config": {"name": "x"}})


def test_deserialize_accepts_keras_classes():
    for class_name in ("DTypePolicy", "FloatDTypePolicy"):
        config = {"module": "keras", "class_name": class_name, "config": {"name": "mixed_float16"}}
        assert dtype_policies.deserialize(config) == dtype_policies.DTypePolicy("mixed_float16")
        assert layers.Dense(2, dtype=config).dtype_policy.name == "mixed_float16"


@pytest.mark.parametrize(
    "dtype", ["mixed_bfloat16", "mixed_float16", "bfloat16", "float64", torch.float16]
)
def test_layer_dtype_attributes_and_config_match_keras(dtype):
    ours, theirs = layers.LSTM(3, dtype=dtype), keras.layers.LSTM(3, dtype=dtype)
    for attribute in ("dtype", "compute_dtype", "variable_dtype"):
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert ours.dtype_policy.name == theirs.dtype_policy.name
    assert ours.cell.dtype_policy.name == theirs.cell.dtype_policy.name
    assert ours.get_config()["dtype"] == theirs.get_config()["dtype"]
    policy_object = layers.Dense(2, dtype=dtype_policies.DTypePolicy("mixed_bfloat16"))
    assert policy_object.compute_dtype == "bfloat16"


def test_dtype_policy_setter():
    layer = layers.Dense(2)
    layer.dtype_policy = "mixed_bfloat16"
    assert (layer.compute_dtype, layer.dtype) == ("bfloat16", "float32")
    layer(torch.ones(1, 3))
    assert layer.kernel.dtype == torch.float32


def test_global_policy_matches_keras():
    assert mixed_precision.global_policy() == dtype_policies.DTypePolicy("float32")
    for name in ("mixed_bfloat16", "mixed_float16"):
        mixed_precision.set_global_policy(name)
        keras.mixed_precision.set_global_policy(name)
        assert birnn.config.dtype_policy().name == keras.config.dtype_policy().name == name
        ours = layers.Bidirectional(layers.GRU(2))
        theirs = keras.layers.Bidirectional(keras.layers.GRU(2))
        for o, k in ((ours, theirs), (ours.forward_layer, theirs.forward_layer)):
            assert o.dtype_policy.name == k.dtype_policy.name == name
        assert birnn.Input((3, 2)).dtype == keras.Input((3, 2)).dtype == "float32"
    mixed_precision.set_global_policy(dtype_policies.DTypePolicy("float32"))
    assert layers.Dense(2).compute_dtype == "float32"


def test_wrapper_policy_does_not_reach_the_wrapped_layer_as_in_keras():
    ours = layers.Bidirectional(layers.LSTM(3), dtype="mixed_bfloat16")
    theirs = keras.layers.Bidirectional(keras.layers.LSTM(3), dtype="mixed_bfloat16")
    assert ours.forward_layer.dtype_policy.name == theirs.forward_layer.dtype_policy.name
    assert ours.get_config() == {**theirs.get_config(), "name": ours.name} | {
        "layer": ours.get_config()["layer"],
        "backward_layer": ours.get_config()["backward_layer"],
    }
    assert (
        ours.get_config()["layer"]["config"]["dtype"]
        == theirs.get_config()["layer"]["config"]["dtype"]
    )


# ---------------------------------------------------------------------- parity
X = np.random.default_rng(0).normal(size=(4, 7, 5)).astype("float32")
MASK = np.array([[True] * 7, [True] * 4 + [False] * 3, [False] * 2 + [True] * 5, [True] * 7])


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("LSTM", {"return_sequences": True}),
        ("LSTM", {"return_state": True, "use_cudnn": False}),
        ("GRU", {"return_sequences": True, "use_cudnn": False}),
        ("GRU", {"return_state": True, "go_backwards": True}),
        ("SimpleRNN", {"return_sequences": True}),
    ],
)
def test_rnn_parity(policy, name, kwargs):
    ours = getattr(layers, name)(6, dtype=policy, **kwargs)
    keras_kwargs = {k: v for k, v in kwargs.items() if k != "use_cudnn"}
    theirs = getattr(keras.layers, name)(6, dtype=policy, **keras_kwargs)
    fused = ours.fused_kind(False)
    diff = _compare(ours, theirs, X, policy)
    if name == "GRU" and not fused:
        assert diff == 0.0  # the same ops in the same order: the same roundings
    assert ours.cell.kernel.dtype == torch.float32


def test_fused_lstm_runs_in_bfloat16(monkeypatch):
    layer = layers.LSTM(6, dtype="mixed_bfloat16", return_sequences=True)
    layer.build(X.shape)
    calls = []
    original = birnn.ops.fused_rnn.run_direction

    def spy(inputs, direction, *args, **kwargs):
        calls.append((inputs.dtype, direction.kernel.dtype))
        return original(inputs, direction, *args, **kwargs)

    monkeypatch.setattr(birnn.ops.fused_rnn, "run_direction", spy)
    layer(torch.tensor(X))
    assert calls == [(torch.bfloat16, torch.bfloat16)]


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_masked_rnn_with_float32_initial_state(policy):
    states = [np.random.default_rng(1).normal(size=(4, 6)).astype("float32")] * 2
    ours = layers.LSTM(6, dtype=policy, return_sequences=True, return_state=True)
    theirs = keras.layers.LSTM(6, dtype=policy, return_sequences=True, return_state=True)
    _compare(ours, theirs, X, policy, mask=MASK, initial_state=[torch.tensor(s) for s in states])


def _recording_cell(base: type, seen: list) -> type:
    """A user cell (on `base`, Keras's or birnn's `Layer`) that records the dtypes its
    `call` sees: inputs, states, kernel and the policy's compute dtype."""

    class RecordingCell(base):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = self.state_size = units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")

        def call(self, inputs, states):
            kernel = self.kernel
            seen.append(
                tuple(
                    str(t.dtype).replace("torch.", "")
                    for t in (inputs, states[0], getattr(kernel, "value", kernel))
                )
                + (self.compute_dtype,)
            )
            h = torch.tanh(inputs @ getattr(kernel, "value", kernel) + 0.5 * states[0])
            return h, [h]

    return RecordingCell


@pytest.mark.parametrize(
    ("cell_dtype", "rnn_dtype"),
    [
        ("float32", "mixed_bfloat16"),
        (None, "mixed_bfloat16"),  # a cell made without `dtype` keeps the global policy
        ("mixed_bfloat16", "float32"),
        ("float64", "float32"),
    ],
)
def test_user_cell_keeps_its_own_policy_in_an_rnn_of_another(cell_dtype, rnn_dtype):
    # Keras: the cell computes under its own policy (its inputs and states are cast to
    # its compute dtype, its weights read in it); the RNN returns its outputs and
    # states in the RNN's compute dtype. As docs/mixed_precision.md says for any layer
    # held by another.
    seen_k: list = []
    seen_o: list = []
    cell_kwargs = {} if cell_dtype is None else {"dtype": cell_dtype}
    theirs = keras.layers.RNN(
        _recording_cell(keras.layers.Layer, seen_k)(3, **cell_kwargs),
        return_sequences=True,
        return_state=True,
        dtype=rnn_dtype,
    )
    ours = layers.RNN(
        _recording_cell(layers.Layer, seen_o)(3, **cell_kwargs),
        return_sequences=True,
        return_state=True,
        dtype=rnn_dtype,
    )
    x = X[:, :3]
    k_out = theirs(torch.tensor(x))
    ours.build(x.shape)
    copy_weights(theirs, ours)
    o_out = ours(torch.tensor(x))
    assert len(set(seen_k)) == 1 and len(seen_o) == 3  # Keras traces the cell once more
    assert set(seen_o) == set(seen_k)
    assert [t.dtype for t in o_out] == [t.dtype for t in k_out]
    assert str(ours.cell.kernel.dtype) == f"torch.{theirs.cell.kernel.dtype}"
    for o, k in zip(o_out, k_out):
        np.testing.assert_allclose(_np(o), _np(k), atol=1e-6, rtol=0)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("where", ["wrapper", "inner", "both"])
def test_bidirectional_parity(policy, where):
    inner_dtype = policy if where in ("inner", "both") else None
    outer_dtype = policy if where in ("wrapper", "both") else None
    kwargs = {"return_sequences": True, "return_state": True}
    ours = layers.Bidirectional(layers.GRU(6, dtype=inner_dtype, **kwargs), dtype=outer_dtype)
    theirs = keras.layers.Bidirectional(
        keras.layers.GRU(6, dtype=inner_dtype, **kwargs), dtype=outer_dtype
    )
    # A float32 GRU inside a mixed wrapper computes in float32, on bfloat16-rounded
    # inputs; only the rounding of the input gradient (one sum per direction in
    # Keras, one for both here) differs.
    _compare(ours, theirs, X, policy, mask=MASK)
    if where == "wrapper":
        out_k = theirs(torch.tensor(X))[0]
        out_o = ours(torch.tensor(X))[0]
        np.testing.assert_allclose(_np(out_o), _np(out_k), atol=1e-6, rtol=0)


def test_bidirectional_merge_modes_and_loop_path():
    for merge_mode in ("sum", "mul", None):
        ours = layers.Bidirectional(
            layers.LSTM(4, return_sequences=True, use_cudnn=False),
            merge_mode=merge_mode,
            dtype="mixed_bfloat16",
        )
        theirs = keras.layers.Bidirectional(
            keras.layers.LSTM(4, return_sequences=True),
            merge_mode=merge_mode,
            dtype="mixed_bfloat16",
        )
        _compare(ours, theirs, X, "mixed_bfloat16")


@pytest.mark.parametrize(
    ("make", "exact"),
    [
        (lambda m: m.layers.Dense(3, activation="softmax", dtype="mixed_bfloat16"), False),
        (lambda m: m.layers.Conv1D(3, 2, dtype="mixed_bfloat16"), False),
        (lambda m: m.layers.BatchNormalization(dtype="mixed_bfloat16"), True),
        (lambda m: m.layers.TimeDistributed(m.layers.Dense(2), dtype="mixed_bfloat16"), False),
        (lambda m: m.layers.MultiHeadAttention(2, 3, dtype="mixed_bfloat16"), False),
    ],
)
def test_other_layers_compute_like_keras(make, exact):
    ours, theirs = make(birnn), make(keras)
    if isinstance(ours, layers.MultiHeadAttention):
        k_out = theirs(X, X)
        ours(torch.tensor(X), torch.tensor(X))
        copy_weights(theirs, ours)
        o_out = ours(torch.tensor(X), torch.tensor(X))
        assert o_out.dtype == k_out.dtype == torch.bfloat16
        np.testing.assert_allclose(_np(o_out), _np(k_out), atol=TOLERANCE["mixed_bfloat16"]["out"])
        return
    _compare(ours, theirs, X, "mixed_bfloat16", exact=exact, training=True)


def test_batch_normalization_updates_its_float32_statistics():
    ours = layers.BatchNormalization(dtype="mixed_bfloat16")
    theirs = keras.layers.BatchNormalization(dtype="mixed_bfloat16")
    theirs(X, training=True)
    ours(torch.tensor(X), training=True)
    assert ours.moving_mean.dtype == torch.float32
    np.testing.assert_allclose(
        ours.moving_mean.detach().numpy(),
        keras.ops.convert_to_numpy(theirs.moving_mean),
        atol=1e-6,
    )


def test_embedding_returns_the_compute_dtype():
    ours = layers.Embedding(10, 4, dtype="mixed_bfloat16")
    theirs = keras.layers.Embedding(10, 4, dtype="mixed_bfloat16")
    ids = np.array([[1, 2, 9]])
    k_out = theirs(ids)
    ours(torch.tensor(ids))
    copy_weights(theirs, ours)
    o_out = ours(torch.tensor(ids))
    assert o_out.dtype == k_out.dtype == torch.bfloat16
    np.testing.assert_array_equal(_np(o_out), _np(k_out))


def test_weights_stay_float32_and_get_gradients_after_backward():
    layer = layers.LSTM(3, dtype="mixed_bfloat16")
    out = layer(torch.tensor(X))
    assert all(p.dtype == torch.float32 for p in layer.parameters())
    out.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in layer.parameters())
    assert all(isinstance(p, torch.nn.Parameter) for p in layer.parameters())


# ---------------------------------------------------------------------- models and files
def _keras_model():
    inputs = keras.Input((7, 5))
    x = keras.layers.Masking()(inputs)
    x = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True))(x)
    x = keras.layers.GRU(3)(x)
    outputs = keras.layers.Dense(2, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs)


def test_symbolic_outputs_and_predict_dtypes():
    mixed_precision.set_global_policy("mixed_bfloat16")
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    inputs, k_inputs = birnn.Input((7, 5)), keras.Input((7, 5))
    ours, theirs = layers.LSTM(3)(inputs), keras.layers.LSTM(3)(k_inputs)
    assert ours.dtype == theirs.dtype == "bfloat16"
    model = birnn.Model(inputs, ours)
    assert model.dtype_policy.name == "mixed_bfloat16"
    # NumPy has no bfloat16: birnn returns the (exact) float32 values.
    assert model.predict(X, verbose=0).dtype == np.float32


def test_keras_file_written_under_mixed_bfloat16_loads(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    theirs = _keras_model()
    path = tmp_path / "mixed.keras"
    theirs.save(path)
    expected = keras.ops.convert_to_numpy(theirs(X)).astype("float32")
    keras.mixed_precision.set_global_policy("float32")
    ours = birnn.saving.load_model(path)
    for layer in theirs.layers[1:]:
        assert ours.get_layer(layer.name).dtype_policy.name == layer.dtype_policy.name
    bidirectional = ours.get_layer(theirs.layers[2].name)
    assert bidirectional.forward_layer.dtype_policy.name == "mixed_bfloat16"
    assert bidirectional.forward_layer.cell.kernel.dtype == torch.float32
    out = ours(torch.tensor(X))
    assert out.dtype == torch.float32  # the float32 softmax layer, as in Keras
    np.testing.assert_allclose(_np(out), expected, atol=TOLERANCE["mixed_bfloat16"]["out"])


def test_birnn_file_written_under_mixed_bfloat16_loads_in_keras(tmp_path):
    mixed_precision.set_global_policy("mixed_bfloat16")
    inputs = birnn.Input((7, 5))
    x = layers.Bidirectional(layers.GRU(4, return_sequences=True))(inputs)
    x = layers.LSTM(3)(x)
    ours = birnn.Model(inputs, layers.Dense(2, dtype="float32")(x))
    mixed_precision.set_global_policy("float32")
    path = tmp_path / "ours.keras"
    ours.save(path)
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    dense_dtype = config["config"]["layers"][-1]["config"]["dtype"]
    assert dense_dtype["config"]["name"] == "float32"
    assert config["config"]["layers"][1]["config"]["dtype"]["config"]["name"] == "mixed_bfloat16"
    theirs = keras.saving.load_model(path)
    assert [layer.dtype_policy.name for layer in theirs.layers] == [
        layer.dtype_policy.name for layer in ours.layers
    ]
    expected = _np(ours(torch.tensor(X)))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(theirs(X)), expected, atol=TOLERANCE["mixed_bfloat16"]["out"]
    )


def _float16_model(module):
    inputs = module.Input((7, 5))
    x = module.layers.LSTM(4)(inputs)
    return module.Model(inputs, module.layers.Dense(1, dtype="float32")(x))


def test_compile_wraps_the_optimizer_for_mixed_float16_as_keras():
    mixed_precision.set_global_policy("mixed_float16")
    keras.mixed_precision.set_global_policy("mixed_float16")
    ours, theirs = _float16_model(birnn), _float16_model(keras)
    ours.compile("adam", "mse")
    theirs.compile("adam", "mse")
    assert type(ours.optimizer).__name__ == type(theirs.optimizer).__name__ == "LossScaleOptimizer"
    assert ours.optimizer.dynamic_scale == 2.0**15
    k_config = theirs.get_compile_config()["optimizer"]
    assert ours.get_compile_config()["optimizer"]["class_name"] == k_config["class_name"] == "Adam"
    ours.compile("adam", "mse", auto_scale_loss=False)
    assert isinstance(ours.optimizer, optimizers.Adam)
    wrapped = optimizers.LossScaleOptimizer(optimizers.SGD())
    ours.compile(wrapped, "mse")
    assert ours.optimizer is wrapped
    mixed_precision.set_global_policy("float32")
    plain = _float16_model(birnn)  # a float32 model: no loss scaling, as in Keras
    plain.compile("adam", "mse")
    assert isinstance(plain.optimizer, optimizers.Adam)


def test_fit_with_mixed_float16_scales_the_loss(tmp_path):
    mixed_precision.set_global_policy("mixed_float16")
    model = _float16_model(birnn)
    model.compile(optimizers.SGD(0.1), "mse")
    optimizer = model.optimizer
    scaled = []
    original = optimizer.scale_loss
    optimizer.scale_loss = lambda loss: scaled.append(float(loss.detach())) or original(loss)
    y = np.random.default_rng(2).normal(size=(8, 1)).astype("float32")
    before = [w.detach().clone() for w in model.trainable_weights]
    history = model.fit(X.repeat(2, axis=0), y, batch_size=4, epochs=2, verbose=0)
    assert len(scaled) == 4 and all(np.isfinite(scaled))
    assert np.isfinite(history.history["loss"]).all()
    assert all(w.dtype == torch.float32 for w in model.trainable_weights)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.trainable_weights))
    assert optimizer.iterations == 4 and optimizer.dynamic_scale == 2.0**15
    # The file records the inner optimizer and the loss-scale variables; Keras loads it.
    path = tmp_path / "f16.keras"
    model.save(path)
    keras.mixed_precision.set_global_policy("mixed_float16")
    theirs = keras.saving.load_model(path)
    assert type(theirs.optimizer).__name__ == "LossScaleOptimizer"
    assert int(theirs.optimizer.iterations.numpy()) == 4
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(theirs(X)), _np(model(torch.tensor(X))), atol=2.0**-9
    )


def test_fit_with_float16_overflow_halves_the_scale():
    mixed_precision.set_global_policy("mixed_float16")
    model = _float16_model(birnn)
    model.compile(optimizers.SGD(0.01), "mse")
    y = np.full((4, 1), 1e3, dtype="float32")  # a loss of ~1e6, times 2**15: inf in float16
    model.fit(X, y, batch_size=4, epochs=1, verbose=0)
    assert model.optimizer.dynamic_scale < 2.0**15


def test_lazily_built_model_under_the_global_policy_trains():
    mixed_precision.set_global_policy("mixed_bfloat16")
    model = birnn.Sequential([layers.Bidirectional(layers.LSTM(3)), layers.Dense(2)])
    model.compile("adam", "mse")
    model.fit(X, np.zeros((4, 2), "float32"), verbose=0)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model(torch.tensor(X)).dtype == torch.bfloat16
