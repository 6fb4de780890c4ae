"""Muon against Keras 3.15.1: which weights follow Muon or AdamW, updates, configs, files."""

import copy
import warnings

import numpy as np
import pytest
import torch

import birnn
from birnn import optimizers
from tests.keras_oracle import assert_close, copy_weights, keras, to_numpy
from tests.models._optimizer_files import assert_file_round_trip

VOCAB, STEPS = 12, 4


def _model(lib, dtype="float32"):
    """Embedding -> Bidirectional(LSTM) -> Dense ("out"), built, as Keras paths name them."""
    return lib.Sequential(
        [
            lib.Input((5,), dtype="int32"),
            lib.layers.Embedding(VOCAB, 4, name="emb", dtype=dtype),
            lib.layers.Bidirectional(
                lib.layers.LSTM(3, name="lstm", dtype=dtype), name="bi", dtype=dtype
            ),
            lib.layers.Dense(2, name="out", dtype=dtype),
        ],
        name="net",
    )


def _pair(kwargs, dtype="float32", learning_rate=0.05):
    """Keras's and birnn's model with the same weights, each with its Muon built on them."""
    keras_model = _model(keras, dtype)
    ours = _model(birnn, dtype)
    copy_weights(keras_model, ours)
    theirs_opt = keras.optimizers.Muon(learning_rate=learning_rate, **kwargs)
    theirs_opt.build(keras_model.trainable_variables)
    ours_opt = optimizers.Muon(learning_rate=learning_rate, **kwargs)
    ours_opt.build(ours)
    return ours, ours_opt, keras_model, theirs_opt


def _grads(model, step, dtype):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(tuple(w.shape)).astype(dtype) for w in model.trainable_weights]


def _step_both(ours, ours_opt, keras_model, theirs_opt, step, dtype="float32"):
    grads = _grads(ours, step, dtype)
    for param, grad in zip(ours.trainable_weights, grads):
        param.grad = torch.tensor(grad)
    ours_opt.step()
    theirs_opt.apply(
        [keras.ops.convert_to_tensor(g) for g in grads], keras_model.trainable_variables
    )


def _adamw_paths(opt, model):
    """The Keras paths of the weights `opt` updates with AdamW (the ones with a velocity)."""
    paths = dict(zip(map(id, model.weights), model.weight_paths()))
    flags = [f for group in opt.param_groups for f in group["use_adamw"]]
    return [paths[id(p)] for p, adamw in zip(opt._params(), flags) if adamw]


def _keras_adamw_paths(opt, model):
    return [v.path for v in model.trainable_variables if opt._should_use_adamw(v)]


CASES = [
    {},
    {"exclude_layers": ["out"]},
    {"exclude_layers": ["forw.rd_lstm/lstm_cell/kernel"], "exclude_embeddings": False},
    {"nesterov": False, "momentum": 0.8},
    {"ns_steps": 2, "muon_a": 2.0, "muon_b": -1.5, "muon_c": 0.5},
    {"ns_steps": 0, "rms_rate": None},
    {"rms_rate": 0.5, "weight_decay": 0.1, "adam_weight_decay": 0.3, "adam_lr_ratio": 0.5},
    {"weight_decay": None, "adam_weight_decay": None, "adam_beta_1": 0.5},
    {"adam_beta_2": 0.8, "epsilon": 1e-2, "clipnorm": 0.5},
    {"global_clipnorm": 1.0, "exclude_layers": ["^net/out/", "emb"]},
]


@pytest.mark.parametrize("kwargs", CASES, ids=[str(i) for i in range(len(CASES))])
def test_each_step_matches_keras(kwargs):
    ours, ours_opt, keras_model, theirs_opt = _pair(kwargs)
    assert _adamw_paths(ours_opt, ours) == _keras_adamw_paths(theirs_opt, keras_model)
    for step in range(STEPS):
        _step_both(ours, ours_opt, keras_model, theirs_opt, step)
        assert_close(ours.get_weights(), keras_model.get_weights(), atol=2e-6, what=f"step {step}")
    store = {}
    ours_opt.save_own_variables(store)
    expected = [to_numpy(v) for v in theirs_opt.variables]
    assert [np.shape(v) for v in store.values()] == [np.shape(v) for v in expected]
    assert int(store["0"]) == STEPS
    assert_close(list(store.values())[2:], expected[2:], atol=2e-6, what="slots")


def test_default_exclusions_are_keras_s():
    ours, ours_opt, keras_model, theirs_opt = _pair({"exclude_layers": ["out"]})
    assert _adamw_paths(ours_opt, ours) == [
        "net/emb/embeddings",
        "net/bi/forward_lstm/lstm_cell/bias",
        "net/bi/backward_lstm/lstm_cell/bias",
        "net/out/kernel",
        "net/out/bias",
    ]


def test_a_string_is_one_pattern():
    """Keras iterates a string's letters as patterns; here it is one pattern (deliberate)."""
    ours, ours_opt, *_ = _pair({"exclude_layers": "out"})
    assert ours_opt.exclude_layers == ["out"]
    assert _adamw_paths(ours_opt, ours)[-2:] == ["net/out/kernel", "net/out/bias"]
    assert "net/bi/forward_lstm/lstm_cell/kernel" not in _adamw_paths(ours_opt, ours)


def test_float64_steps_match_keras():
    """In float64 only Keras's float32 norm of the direction differs (~1e-8 relative)."""
    ours, ours_opt, keras_model, theirs_opt = _pair({"exclude_layers": ["out"]}, "float64")
    for step in range(STEPS):
        _step_both(ours, ours_opt, keras_model, theirs_opt, step, "float64")
        for a, b in zip(ours.get_weights(), keras_model.get_weights()):
            assert a.dtype == np.float64
            np.testing.assert_allclose(a, to_numpy(b), rtol=1e-7, atol=1e-8)


def test_newton_schulz_orthogonalizes():
    from birnn.ops.optim_rules import newton_schulz

    x = torch.randn(7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    wide = newton_schulz(x.mT, 5, 3.4445, -4.775, 2.0315)
    tall = newton_schulz(x, 5, 3.4445, -4.775, 2.0315)
    assert torch.allclose(tall, wide.mT)  # tall matrices are iterated in their transpose
    singular = torch.linalg.svdvals(tall)
    assert singular.min() > 0.6 and singular.max() < 1.25  # the quintic's band around 1
    u, _, vt = torch.linalg.svd(x, full_matrices=False)
    assert torch.allclose(newton_schulz(x, 0, 3.4445, -4.775, 2.0315), x / x.norm())
    assert torch.nn.functional.cosine_similarity(tall.flatten(), (u @ vt).flatten(), 0) > 0.97


def test_compiled_training_matches_keras():
    """compile() names the weights by their Keras paths, so `exclude_layers` applies."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, VOCAB, (8, 5)).astype("int32")
    y = rng.standard_normal((8, 2)).astype("float32")
    keras_model, model = _model(keras), _model(birnn)
    copy_weights(keras_model, model)
    kwargs = {"learning_rate": 0.02, "exclude_layers": ["out"], "weight_decay": 0.05}
    keras_model.compile(optimizer=keras.optimizers.Muon(**kwargs), loss="mse")
    model.compile(optimizer=optimizers.Muon(**kwargs), loss="mse")
    for _ in range(3):
        expected = keras_model.train_on_batch(x, y)
        assert model.train_on_batch(x, y) == pytest.approx(expected, abs=1e-5)
    assert_close(model.get_weights(), keras_model.get_weights(), atol=1e-5, what="trained")
    assert "net/out/kernel" in _adamw_paths(model.optimizer, model)


def _assert_same_config(ours, theirs):
    """Equal keys in Keras's order, equal values of the same types (Keras's rate is float32)."""
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        if isinstance(value, list):  # Keras's TrackedList
            assert ours[key] == list(value) and isinstance(ours[key], list), key
        else:
            assert ours[key] == pytest.approx(value), key
            assert type(ours[key]) is type(value), key


def test_config_is_keras_config():
    kwargs = {
        "exclude_layers": ["out", "dense_\\d"],
        "ns_steps": 3,
        "rms_rate": None,
        "adam_lr_ratio": 0.5,
        "name": "opt",
    }
    ours, theirs = optimizers.Muon(0.05, **kwargs), keras.optimizers.Muon(0.05, **kwargs)
    ours_config, theirs_config = ours.get_config(), theirs.get_config()
    assert list(ours_config) == list(theirs_config)
    _assert_same_config(ours_config, theirs_config)
    _assert_same_config(optimizers.Muon().get_config(), keras.optimizers.Muon().get_config())
    back = optimizers.deserialize(keras.optimizers.serialize(theirs))
    assert type(back) is optimizers.Muon
    _assert_same_config(back.get_config(), ours_config)
    assert optimizers.Muon.from_config(ours_config).get_config() == ours_config
    theirs_back = keras.optimizers.deserialize(optimizers.serialize(ours))
    assert type(theirs_back) is type(theirs)
    assert theirs_back.get_config()["exclude_layers"] == ["out", "dense_\\d"]
    assert type(optimizers.get("muon")) is type(optimizers.get("Muon")) is optimizers.Muon


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # Keras's own
def test_keras_file_compiled_with_muon_crosses_both_ways(tmp_path):
    rng = np.random.default_rng(7)
    x = rng.integers(0, VOCAB, (6, 5)).astype("int32")
    y = rng.standard_normal((6, 2)).astype("float32")
    kwargs = {"learning_rate": 0.02, "exclude_layers": ["out"], "ns_steps": 4}
    keras_model = _model(keras)
    keras_model.compile(optimizer=keras.optimizers.Muon(**kwargs), loss="mse")
    for _ in range(2):
        keras_model.train_on_batch(x, y)
    keras_model.save(tmp_path / "k.keras")

    model = birnn.models.load_model(tmp_path / "k.keras")
    assert type(model.optimizer) is optimizers.Muon
    _assert_same_config(model.optimizer.get_config(), keras_model.optimizer.get_config())
    assert model.optimizer.iterations == 2
    back = assert_file_round_trip(model, keras_model, x, y, tmp_path)
    assert type(back.optimizer).__name__ == "Muon"
    assert back.optimizer.get_config()["exclude_layers"] == ["out"]


def test_built_from_named_parameters_finds_embeddings():
    model = _model(birnn)
    opt = optimizers.Muon()
    opt.build(model.named_parameters())
    flags = [f for group in opt.param_groups for f in group["use_adamw"]]
    names = opt._param_names()
    assert names[0] == "_layers.1.embeddings"
    assert [n for n, f in zip(names, flags) if f] == [
        "_layers.1.embeddings",
        "_layers.2.forward_layer.cell.bias",
        "_layers.2.backward_layer.cell.bias",
        "_layers.3.bias",
    ]


def test_built_from_unnamed_tensors_follows_the_shape_rule_only():
    model = _model(birnn)
    with pytest.raises(ValueError, match="`exclude_layers` matches weight names"):
        optimizers.Muon(exclude_layers=["out"]).build(model.parameters())
    with pytest.warns(UserWarning, match="embeddings cannot be told apart"):
        optimizers.Muon().build(model.parameters())
    opt = optimizers.Muon(exclude_embeddings=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.build(model.trainable_weights)
    flags = [f for group in opt.param_groups for f in group["use_adamw"]]
    assert flags == [p.dim() != 2 for p in model.trainable_weights]


def test_build_rejects_mixed_and_malformed_items():
    w = torch.nn.Parameter(torch.ones(2, 2))
    with pytest.raises(TypeError, match="either tensors or `\\(name, tensor\\)` pairs"):
        optimizers.Muon().build([w, ("b", w)])
    with pytest.raises(TypeError, match="expects tensors or `\\(name, tensor\\)` pairs"):
        optimizers.Adam().build([("w", w, 1)])


def test_state_dict_resumes_with_the_same_rules():
    model = _model(birnn)
    opt = optimizers.Muon(exclude_layers=["out"])
    opt.build(model)
    for step in range(2):
        for param, grad in zip(model.trainable_weights, _grads(model, step, "float32")):
            param.grad = torch.tensor(grad)
        opt.step()
    saved = copy.deepcopy(opt.state_dict())  # as torch.save would: no shared slot tensors
    twin = _model(birnn)
    twin.set_weights(model.get_weights())
    resumed = optimizers.Muon(exclude_layers=["out"])
    resumed.build(twin)
    resumed.load_state_dict(saved)
    for m, o in ((model, opt), (twin, resumed)):
        for param, grad in zip(m.trainable_weights, _grads(m, 5, "float32")):
            param.grad = torch.tensor(grad)
        o.step()
    assert_close(twin.get_weights(), model.get_weights(), atol=0, what="resumed")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ns_steps": -1}, "`ns_steps` must be an integer >= 0"),
        ({"ns_steps": 2.5}, "`ns_steps` must be an integer >= 0"),
        ({"rms_rate": -0.1}, "`rms_rate` must be >= 0 or None"),
        ({"momentum": 1.5}, "Muon: argument `momentum` must be in"),
        ({"exclude_layers": ["out("]}, "`exclude_layers` must hold regular expressions"),
        ({"use_ema": True}, "not supported"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        optimizers.Muon(**kwargs)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Keras's legacy-format notice
def test_legacy_h5_file_compiled_with_muon_loads_with_keras_paths(tmp_path):
    keras_model = _model(keras)
    keras_model.compile(optimizer=keras.optimizers.Muon(exclude_layers=["out"]), loss="mse")
    keras_model.save(tmp_path / "k.h5")
    model = birnn.models.load_model(tmp_path / "k.h5")
    assert type(model.optimizer) is optimizers.Muon
    assert model.optimizer.exclude_layers == ["out"]
    x = np.random.default_rng(5).integers(0, VOCAB, (4, 5)).astype("int32")
    model.train_on_batch(x, np.zeros((4, 2), "float32"))
    assert _adamw_paths(model.optimizer, model)[-2:] == ["net/out/kernel", "net/out/bias"]
