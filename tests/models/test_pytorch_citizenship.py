"""birnn layers used with PyTorch idioms only: what a `torch.nn.Module` user expects."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import birnn
from birnn import layers


class TorchHolder(layers.Layer):
    """A custom layer holding a torch module, a parameter and sublayers in containers."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.lin = nn.Linear(3, 4)
        self.gain = nn.Parameter(torch.full((4,), 2.0))
        self.blocks = [layers.Dense(2), layers.Dense(5)]
        self.heads = {"b": layers.Dense(1), "a": layers.Dense(1)}

    def build(self, input_shape):
        self.w = self.add_weight(shape=(4,), initializer="ones", name="w")

    def call(self, x):
        h = self.lin(x) * self.w * self.gain
        out = self.blocks[1](self.blocks[0](h))
        return out + self.heads["a"](h) + self.heads["b"](h)


def _expected_weight_shapes():
    # own weights (tracking order), then the torch module's parameters, then the
    # sublayers in the order their containers were assigned.
    return [(4,), (4,), (4, 3), (4,), (4, 2), (2,), (2, 5), (5,), (4, 1), (1,), (4, 1), (1,)]


# ---------------------------------------------------------------- tracking
def test_torch_modules_parameters_and_containers_are_weights():
    layer = TorchHolder()
    layer(torch.ones(2, 3))
    assert [tuple(w.shape) for w in layer.weights] == _expected_weight_shapes()
    assert layer.count_params() == 4 + 4 + 16 + 10 + 15 + 5 + 5
    assert {id(p) for p in layer.parameters()} == {id(w) for w in layer.weights}
    keys = set(layer.state_dict())
    assert {"lin.weight", "gain", "blocks.0.kernel", "blocks.1.bias", "heads.a.kernel"} <= keys
    assert len(layer.trainable_weights) == 12
    assert len(layer.layers) == 4


def test_container_mutation_is_tracked():
    layer = TorchHolder()
    layer.blocks.append(layers.Dense(3))
    layer.heads["c"] = layers.Dense(1)
    assert len(layer.layers) == 6
    assert "blocks.2" in dict(layer.named_modules(prefix="")).keys() or any(
        n == "blocks.2" for n, _ in layer.named_modules()
    )
    del layer.heads["c"]
    assert len(layer.layers) == 5


def test_copies_keep_container_tracking():
    import copy
    import pickle

    layer = TorchHolder()
    layer(torch.ones(2, 3))
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert clone.blocks[0] is clone.layers[0] and clone.blocks[0] is not layer.blocks[0]
        clone.blocks.append(layers.Dense(3))
        assert len(clone.layers) == 5 and len(layer.layers) == 4
        torch.testing.assert_close(clone(torch.ones(2, 3)), layer(torch.ones(2, 3)))


def test_fit_trains_torch_modules_and_container_layers():
    torch.manual_seed(0)
    inputs = birnn.Input((3,))
    outputs = TorchHolder()(inputs)
    model = birnn.Model(inputs, outputs)
    before = [w.detach().clone() for w in model.weights]
    assert len(before) == 12
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((8, 3), "float32"), np.zeros((8, 5), "float32"), epochs=1, verbose=0)
    changed = [not torch.equal(b, w) for b, w in zip(before, model.weights)]
    assert all(changed), changed


def test_torch_module_weights_save_and_load(tmp_path):
    torch.manual_seed(0)
    model = birnn.Sequential([birnn.Input((3,)), TorchHolder()])
    x = torch.randn(4, 3)
    expected = model(x)
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    import h5py

    with h5py.File(path) as f:
        names = []
        f.visit(names.append)
    # Keras's layout for a torch module (TorchModuleWrapper): named datasets.
    assert "layers/torch_holder/lin/vars/weight" in names
    assert "layers/torch_holder/blocks/dense_1/vars/0" in names
    assert "layers/torch_holder/heads/dense/vars/0" in names
    torch.manual_seed(1)
    other = birnn.Sequential([birnn.Input((3,)), TorchHolder()])
    assert not torch.allclose(other(x), expected)
    other.load_weights(path)
    torch.testing.assert_close(other(x), expected)


def test_summary_counts_torch_modules(capsys):
    model = birnn.Sequential([birnn.Input((3,)), TorchHolder()])
    model.summary()
    assert "Total params: 59" in capsys.readouterr().out


# ---------------------------------------------------------------- weights before the first call
def test_optimizer_made_before_first_call_trains_every_weight():
    torch.manual_seed(0)
    net = layers.Bidirectional(layers.LSTM(4))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    n_before = len(list(net.parameters()))
    assert n_before == 6
    x = torch.randn(3, 5, 2)
    out = net(x)
    snapshot = [p.detach().clone() for p in net.parameters()]
    out.square().sum().backward()
    opt.step()
    assert len(list(net.parameters())) == n_before
    assert all(not torch.equal(a, p) for a, p in zip(snapshot, net.parameters()))


def test_load_state_dict_into_fresh_module():
    torch.manual_seed(0)
    source = layers.Bidirectional(layers.GRU(3, return_sequences=True))
    x = torch.randn(2, 4, 5)
    expected = source(x)
    fresh = layers.Bidirectional(layers.GRU(3, return_sequences=True))
    fresh.load_state_dict(source.state_dict())
    torch.testing.assert_close(fresh(x), expected)
    assert [w.shape for w in fresh.get_weights()] == [w.shape for w in source.get_weights()]


def test_input_shape_builds_the_layer():
    layer = layers.Dense(3, input_shape=(4,))
    assert layer.built
    assert tuple(layer.kernel.shape) == (4, 3)
    lstm = layers.LSTM(2, input_shape=(5, 6))
    assert lstm.built and lstm.count_params() == 4 * 2 * (6 + 2 + 1)


# ---------------------------------------------------------------- train / eval
class _TorchDropout(layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.drop = nn.Dropout(0.5)

    def call(self, x):
        return self.drop(x)


def test_train_eval_rule():
    layer = layers.Dropout(0.5)
    assert not layer.training
    x = torch.ones(1000)
    assert torch.equal(layer(x), x)  # fresh: inference, as Keras
    layer.train()
    assert (layer(x) == 0).any()
    assert torch.equal(layer(x, training=False), x)  # explicit wins
    layer.eval()
    assert torch.equal(layer(x), x)
    assert (layer(x, training=True) == 0).any()


def test_train_mode_reaches_sublayers_through_model_call():
    model = birnn.Sequential([birnn.Input((1000,)), layers.Dropout(0.5)])
    x = torch.ones(2, 1000)
    assert torch.equal(model(x), x)
    model.train()
    assert (model(x) == 0).any()


def test_predict_evaluates_torch_dropout_in_eval_and_restores_mode():
    torch.manual_seed(0)
    model = birnn.Sequential([birnn.Input((1000,)), _TorchDropout(), layers.Dense(1)])
    x = np.ones((2, 1000), "float32")
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()  # a fresh model infers
    model.train()
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5)
    assert model.training and model.layers[0].drop.training
    model.eval()
    model.compile(optimizer="sgd", loss="mse")
    seen = []

    class Probe(birnn.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(model.layers[0].drop.training)

    model.fit(x, np.zeros((2, 1), "float32"), epochs=1, verbose=0, callbacks=[Probe()])
    assert seen == [True]
    assert not model.training and not model.layers[0].drop.training


class _Branches(layers.Layer):
    """A layer whose torch modules sit at several depths, one of them twice."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.shared = nn.Dropout(0.5)
        self.body = nn.Sequential(nn.Linear(4, 4), self.shared)
        self.body.insert(1, nn.Dropout(0.5))  # `insert` writes torch's table directly
        self.spare = None  # a `None` entry in the module table
        self.register_module("spare_module", None)
        self.again = nn.ModuleList([self.shared, nn.Identity()])

    def call(self, x):
        return self.again[1](self.body(x))


@pytest.mark.parametrize("step", ["predict_on_batch", "train_on_batch", "test_on_batch"])
def test_each_step_sets_the_mode_of_every_module_once_and_restores_it(step):
    from birnn.models.trainer import _all_modules

    inner = _Branches()
    model = birnn.Sequential([birnn.Input((4,)), inner, layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    assert _all_modules(model) == list(model.modules())
    wanted = step == "train_on_batch"
    model.train(not wanted)
    seen = []
    for module in model.modules():
        module.register_forward_pre_hook(lambda m, args: seen.append(m.training))
    x, y = np.ones((2, 4), "float32"), np.zeros((2, 1), "float32")
    getattr(model, step)(*((x,) if step == "predict_on_batch" else (x, y)))
    assert seen and all(mode == wanted for mode in seen)
    assert all(module.training == (not wanted) for module in model.modules())


# ---------------------------------------------------------------- dtypes
@pytest.mark.parametrize("convert", ["double", "to", "half_then_double"])
def test_double_computes_in_float64(convert):
    torch.manual_seed(0)
    net = layers.Bidirectional(layers.LSTM(3))
    if convert == "double":
        net.double()
    elif convert == "to":
        net.to(torch.float64)
    else:
        net.half().double()
    assert net.dtype == "float64" and net.compute_dtype == "float64"
    x = torch.randn(2, 4, 2, dtype=torch.float64)
    out = net(x)
    assert out.dtype == torch.float64
    assert all(p.dtype == torch.float64 for p in net.parameters())


def test_gradcheck_float64_lstm_and_gru():
    torch.manual_seed(0)
    for rnn in (layers.LSTM(2, return_sequences=True), layers.GRU(2)):
        net = layers.Bidirectional(rnn).double()
        x = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(net, (x,))


def test_built_layer_float64_matches_float32_values():
    torch.manual_seed(0)
    net = layers.GRU(3)
    x = torch.randn(2, 4, 2)
    expected = net(x)
    net.double()
    assert net.dtype == "float64"
    got = net(x.double())
    assert got.dtype == torch.float64
    torch.testing.assert_close(got.float(), expected, atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------- trainable <-> requires_grad
def test_requires_grad_and_trainable_agree():
    net = layers.Dense(3)
    net.build((None, 2))
    net.kernel.requires_grad_(False)
    assert [tuple(w.shape) for w in net.trainable_weights] == [(3,)]
    assert [tuple(w.shape) for w in net.non_trainable_weights] == [(2, 3)]
    net.requires_grad_(False)
    assert not net.trainable and net.trainable_weights == []
    net.requires_grad_(True)
    assert net.trainable and len(net.trainable_weights) == 2
    net.trainable = False
    assert not any(p.requires_grad for p in net.parameters())


# ---------------------------------------------------------------- torch losses in compile
def _classifier(seed=0):
    torch.manual_seed(seed)
    return birnn.Sequential(
        [birnn.Input((4, 3)), layers.Bidirectional(layers.GRU(3)), layers.Dense(5)]
    )


def test_torch_loss_module_and_functional_in_compile():
    x = np.random.default_rng(0).normal(size=(6, 4, 3)).astype("float32")
    labels = np.array([0, 1, 2, 3, 4, 0])
    model = _classifier()
    model.compile(optimizer="sgd", loss=nn.CrossEntropyLoss())
    logits = model(torch.from_numpy(x))
    expected = nn.functional.cross_entropy(logits, torch.from_numpy(labels))
    got = model.evaluate(x, labels, verbose=0)
    np.testing.assert_allclose(got, float(expected), rtol=1e-5)
    # a function from torch.nn.functional, and sample weights
    model.compile(optimizer="sgd", loss=nn.functional.cross_entropy)
    weights = np.array([1.0, 0.0, 2.0, 1.0, 0.0, 1.0], "float32")
    per_sample = nn.functional.cross_entropy(logits, torch.from_numpy(labels), reduction="none")
    expected = (per_sample * torch.from_numpy(weights)).sum() / 6
    got = model.evaluate(x, labels, sample_weight=weights, verbose=0)
    np.testing.assert_allclose(got, float(expected), rtol=1e-5)
    model.compile(optimizer="sgd", loss=nn.MSELoss())
    target = np.zeros((6, 5), "float32")
    np.testing.assert_allclose(
        model.evaluate(x, target, verbose=0), float(logits.square().mean()), rtol=1e-5
    )
    history = model.fit(x, target, epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]


def test_model_compiled_with_torch_loss_saves_without_compile_config(tmp_path):
    model = _classifier()
    model.compile(optimizer="sgd", loss=nn.MSELoss())
    with pytest.warns(UserWarning, match="PyTorch loss"):
        model.save(tmp_path / "m.keras")
    loaded = birnn.models.load_model(tmp_path / "m.keras")
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(loaded(x), model(x))


# ---------------------------------------------------------------- optimizer state_dict resume
@pytest.mark.parametrize("optimizer", ["adam", "nadam"])
def test_optimizer_state_dict_resume_equals_uninterrupted(optimizer):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4, 3)).astype("float32")
    y = rng.normal(size=(8, 5)).astype("float32")
    straight = _classifier()
    straight.compile(optimizer=optimizer, loss="mse")
    for _ in range(4):
        straight.train_on_batch(x, y)
    first = _classifier()
    first.compile(optimizer=optimizer, loss="mse")
    for _ in range(2):
        first.train_on_batch(x, y)
    model_state, opt_state = first.state_dict(), first.optimizer.state_dict()
    resumed = _classifier(seed=1)
    resumed.compile(optimizer=optimizer, loss="mse")
    resumed.load_state_dict(model_state)
    resumed.optimizer.load_state_dict(opt_state)
    assert resumed.optimizer.iterations == 2
    for _ in range(2):
        resumed.train_on_batch(x, y)
    for got, expected in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- copies of compiled models
@pytest.mark.parametrize("how", ["deepcopy", "pickle", "torch.save"])
def test_copies_of_a_compiled_model_fit_evaluate_and_save(how, tmp_path):
    import copy
    import io
    import pickle

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4, 3)).astype("float32")
    y = rng.normal(size=(8, 5)).astype("float32")
    model = _classifier()
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.fit(x, y, epochs=1, verbose=0)
    if how == "deepcopy":
        clone = copy.deepcopy(model)
    elif how == "pickle":
        clone = pickle.loads(pickle.dumps(model))
    else:
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        clone = torch.load(buffer, weights_only=False)
    np.testing.assert_allclose(clone.predict(x, verbose=0), model.predict(x, verbose=0))
    assert clone.optimizer.iterations == model.optimizer.iterations
    model.fit(x, y, epochs=1, verbose=0)
    clone.fit(x, y, epochs=1, verbose=0)
    for got, expected in zip(clone.get_weights(), model.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(clone.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0))
    clone.save(tmp_path / "clone.keras")
    loaded = birnn.models.load_model(tmp_path / "clone.keras")
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5
    )


# ---------------------------------------------------------------- autocast
@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.LSTM(4, return_sequences=True),
        lambda: layers.GRU(4),
        lambda: layers.SimpleRNN(4),
        lambda: layers.Bidirectional(layers.LSTM(4)),
        lambda: layers.Bidirectional(layers.GRU(4, return_sequences=True), merge_mode="sum"),
    ],
)
@pytest.mark.parametrize("masked", [False, True])
def test_autocast_returns_the_autocast_dtype(make, masked):
    torch.manual_seed(0)
    layer = make()
    x = torch.randn(3, 5, 2)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 3:] = False
    kwargs = {"mask": mask} if masked else {}
    expected = layer(x, **kwargs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = layer(x, **kwargs)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected, atol=0.05, rtol=0.05)


# ---------------------------------------------------------------- hooks
@pytest.mark.parametrize("rnn", [layers.LSTM, layers.GRU])
def test_hooks_on_inner_layers_fire(rnn):
    torch.manual_seed(0)
    net = layers.Bidirectional(rnn(3, return_sequences=True))
    x = torch.randn(2, 4, 2, requires_grad=True)
    expected = net(x)
    seen, grads = {}, []
    net.forward_layer.register_forward_hook(lambda m, a, out: seen.setdefault("fw", out))
    net.backward_layer.register_forward_pre_hook(lambda m, a: seen.setdefault("bw_in", a[0]))
    net.backward_layer.register_full_backward_hook(lambda m, gi, go: grads.append(go[0]))
    got = net(x)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(seen["fw"], expected[..., :3])
    assert seen["bw_in"] is x
    got.sum().backward()
    assert len(grads) == 1 and torch.equal(grads[0], torch.ones(2, 4, 3))
    # a hook that replaces the output changes the wrapper's output
    net.forward_layer.register_forward_hook(lambda m, a, out: out * 0)
    assert torch.equal(net(x)[..., :3], torch.zeros(2, 4, 3))


# ---------------------------------------------------------------- PackedSequence
@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.LSTM(3),
        lambda: layers.GRU(3, return_sequences=True),
        lambda: layers.SimpleRNN(3, return_sequences=True),
        lambda: layers.Bidirectional(layers.LSTM(3, return_sequences=True)),
        lambda: layers.Bidirectional(layers.GRU(3)),
    ],
)
def test_packed_sequence_equals_padded_with_mask(make):
    from torch.nn.utils.rnn import pack_padded_sequence

    torch.manual_seed(0)
    layer = make()
    lengths = torch.tensor([2, 5, 3])
    x = torch.randn(3, 5, 2)
    mask = torch.arange(5)[None, :] < lengths[:, None]
    x = x * mask[..., None]
    expected = layer(x, mask=mask)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    torch.testing.assert_close(layer(packed), expected)
    with pytest.raises(ValueError, match="PackedSequence"):
        layer(packed, mask=mask)


# ---------------------------------------------------------------- torch.compile
def test_torch_compile_across_lengths_and_modes_without_recompile_limit():
    import torch._dynamo

    # Dynamo's cache is per code object and process-wide: graphs compiled by earlier tests
    # in this worker (for other models) would count against this model's recompile limit.
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = birnn.Sequential(
        [
            birnn.Input((None, 3)),
            layers.Masking(0.0),
            layers.Bidirectional(layers.LSTM(4, return_sequences=True)),
            layers.Bidirectional(layers.GRU(4, return_sequences=True)),
            layers.LSTM(4),
            layers.Dense(2),
        ]
    )
    compiled = torch.compile(model, backend="eager")
    with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
        for mode, length in [("eval", 5), ("eval", 9), ("train", 13), ("eval", 13), ("eval", 5)]:
            getattr(model, mode)()
            x = torch.randn(4, length, 3)
            x[1, length - 2 :] = 0.0
            out = compiled(x)
            if mode == "eval":
                torch.testing.assert_close(out, model(x), atol=1e-5, rtol=1e-5)
            else:
                out.square().sum().backward()
                assert all(p.grad is not None for p in model.parameters())


def test_weights_file_matches_keras_for_torch_modules_and_containers(tmp_path):
    import h5py

    from tests.keras_oracle import keras

    def holder(base, dense):
        class TorchHolder(base):  # the same structure in both libraries
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.lin = nn.Linear(3, 4)
                self.blocks = [dense(2), dense(5)]
                self.heads = {"b": dense(1), "a": dense(1)}

            def build(self, input_shape):
                self.w = self.add_weight(shape=(4,), initializer="ones", name="w")

            def call(self, x):
                h = self.lin(x) * self.w
                return self.blocks[1](self.blocks[0](h)) + self.heads["a"](h) + self.heads["b"](h)

        return TorchHolder

    ours = birnn.Sequential([birnn.Input((3,)), holder(layers.Layer, layers.Dense)()])
    theirs = keras.Sequential(
        [keras.Input((3,)), holder(keras.layers.Layer, keras.layers.Dense)()]
    )
    ours.save_weights(tmp_path / "ours.weights.h5")
    theirs.save_weights(tmp_path / "theirs.weights.h5")

    def layout(path):
        found = {}
        with h5py.File(path) as f:
            f.visititems(
                lambda n, o: found.__setitem__(n, o.shape) if isinstance(o, h5py.Dataset) else None
            )
        return found

    assert layout(tmp_path / "ours.weights.h5") == layout(tmp_path / "theirs.weights.h5")
    x = np.random.default_rng(0).normal(size=(2, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(theirs(x))
    ours.load_weights(tmp_path / "theirs.weights.h5")
    np.testing.assert_allclose(ours(torch.from_numpy(x)).detach().numpy(), expected, atol=1e-6)
