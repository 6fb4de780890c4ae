"""`compile(jit_compile=...)`: Keras's attribute and config; compiled steps that match eager."""

import json
import warnings
import zipfile

import numpy as np
import pytest
import torch
import torch._dynamo.utils

import birnn
from birnn import callbacks
from birnn.models import jit
from birnn.ops import fused_rnn, native_rnn, traced_rnn
from tests.keras_oracle import copy_weights, keras


def _model(lib, steps=3, **lstm_kwargs):
    return lib.Sequential(
        [
            lib.Input(shape=(steps, 3)),
            lib.layers.Bidirectional(lib.layers.LSTM(3, return_sequences=True, **lstm_kwargs)),
            lib.layers.Bidirectional(lib.layers.GRU(2)),
            lib.layers.Dense(2),
        ]
    )


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"jit_compile": "auto"}, {"jit_compile": False}, {"jit_compile": True}],
    ids=["default", "auto", "false", "true"],
)
def test_attribute_and_config_match_keras(kwargs):
    ours, theirs = _model(birnn), _model(keras)
    assert ours.jit_compile is theirs.jit_compile is False  # before compile()
    ours.compile(loss="mse", **kwargs)
    theirs.compile(loss="mse", **kwargs)
    assert ours.jit_compile == theirs.jit_compile
    for key in ("jit_compile", "run_eagerly"):
        assert ours.get_compile_config()[key] == theirs.get_compile_config()[key], key


def test_run_eagerly_turns_jit_off_with_keras_warning():
    ours, theirs = _model(birnn), _model(keras)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours.compile(loss="mse", jit_compile=True, run_eagerly=True)
        theirs.compile(loss="mse", jit_compile=True, run_eagerly=True)
    messages = [str(w.message) for w in caught if "jit_compile" in str(w.message)]
    assert len(messages) == 2 and messages[0] == messages[1]
    assert ours.jit_compile is theirs.jit_compile is False
    assert ours.run_eagerly is True


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_bad_value_is_a_value_error(value):
    with pytest.raises(ValueError, match="jit_compile"):
        _model(birnn).compile(loss="mse", jit_compile=value)


def test_jit_compile_round_trips_through_keras_files(tmp_path):
    model = _model(birnn)
    model.compile(loss="mse", optimizer="adam", jit_compile=True)
    path = str(tmp_path / "jit.keras")
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    assert config["compile_config"]["jit_compile"] is True
    assert birnn.models.load_model(path).jit_compile is True
    assert keras.models.load_model(path).jit_compile is True


def _graphs():
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def test_compiled_fit_and_predict_match_eager():
    """Bidirectional LSTM and GRU, RMSprop (its update rule compiled too): losses,
    metrics, weights and predictions within 1e-5 of eager, with validation data
    and a learning-rate schedule callback; the rates it sets reach the compiled
    rule without recompiling, and nothing recompiles once each mode has been seen
    (dynamo's counters). One batch size throughout: each new one compiles anew."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3, 3)).astype("float32")
    y = rng.normal(size=(8, 2)).astype("float32")
    eager, compiled = _model(birnn), _model(birnn)
    copy_weights(eager, compiled)
    for model, jit_compile in ((eager, False), (compiled, True)):
        model.compile(loss="mse", optimizer="rmsprop", metrics=["mae"], jit_compile=jit_compile)
    assert compiled.jit_compile is True

    def fit(model, epochs, initial_epoch=0):
        schedule = callbacks.LearningRateScheduler(lambda epoch, lr: 0.01 / (epoch + 1))
        kw = {"batch_size": 4, "shuffle": False, "verbose": 0, "callbacks": [schedule]}
        history = model.fit(
            x, y, epochs=epochs, initial_epoch=initial_epoch, validation_data=(x[:4], y[:4]), **kw
        )
        return history.history

    expected, got = fit(eager, 1), fit(compiled, 1)  # both modes seen
    assert jit.compiled_parts(compiled) == {"train", "rule", "forward"}
    graphs = _graphs()
    expected.update(fit(eager, 3, initial_epoch=1))  # rates 0.005, then 0.0033
    got.update(fit(compiled, 3, initial_epoch=1))
    assert _graphs() == graphs  # new learning rates: no recompilation
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=1e-5, err_msg=key)
    for a, b in zip(compiled.get_weights(), eager.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(
        compiled.predict(x, batch_size=4, verbose=0),
        eager.predict(x, batch_size=4, verbose=0),
        atol=1e-5,
    )
    assert _graphs() == graphs


def test_compiled_train_on_batch_with_keras_features_matches_eager():
    """Sample weights, a kernel regularizer, a constraint, a masked input and
    `train_on_batch`'s metrics: compiled steps equal eager ones; Adam's update rule
    is not marked for compilation, so it runs eagerly (the fallback)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3, 3)).astype("float32")
    x[1, 2:] = 0.0  # masked tail
    y = rng.normal(size=(4, 2)).astype("float32")
    weights = np.array([1.0, 0.5, 2.0, 0.0], dtype="float32")
    models = []
    for jit_compile in (False, True):
        model = birnn.Sequential(
            [
                birnn.Input(shape=(3, 3)),
                birnn.layers.Masking(0.0),
                birnn.layers.Bidirectional(
                    birnn.layers.LSTM(
                        3,
                        kernel_regularizer="l2",
                        recurrent_constraint=birnn.constraints.MaxNorm(0.5),
                    )
                ),
                birnn.layers.Dense(2),
            ]
        )
        model.compile(loss="mse", optimizer="adam", metrics=["mae"], jit_compile=jit_compile)
        models.append(model)
    eager, compiled = models
    copy_weights(eager, compiled)
    for _ in range(3):
        expected = eager.train_on_batch(x, y, sample_weight=weights, return_dict=True)
        got = compiled.train_on_batch(x, y, sample_weight=weights, return_dict=True)
        for key in expected:
            np.testing.assert_allclose(got[key], expected[key], atol=1e-5, err_msg=key)
    assert jit.compiled_parts(compiled) == {"train"}  # Adam updates eagerly
    for a, b in zip(compiled.get_weights(), eager.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_compiled_step_updates_metrics_in_its_graph():
    """The metrics' updates run inside the compiled training graph: an uneven last
    batch weighs by its own size (the batch size is not baked into the graph), and
    `reset_metrics`, `evaluate` and new epochs in between leave nothing stale."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(7, 3, 3)).astype("float32")
    y = rng.normal(size=(7, 2)).astype("float32")
    eager, compiled = _model(birnn), _model(birnn)
    copy_weights(eager, compiled)
    for model, jit_compile in ((eager, False), (compiled, True)):
        model.compile(loss="mse", optimizer="rmsprop", metrics=["mae"], jit_compile=jit_compile)

    def run(model):
        history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
        model.reset_metrics()
        fresh = [m.result().item() for m in model.metrics]
        first = model.train_on_batch(x[:3], y[:3], return_dict=True)
        evaluated = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
        second = model.train_on_batch(x[3:], y[3:], return_dict=True)
        return history, fresh, first, evaluated, second

    expected, got = run(eager), run(compiled)
    assert jit.compiled_parts(compiled) == {"train", "rule", "forward"}
    assert got[1] == expected[1] == [0.0] * len(expected[1])
    for part in (0, 2, 3, 4):
        for key in expected[part]:
            np.testing.assert_allclose(got[part][key], expected[part][key], atol=1e-5, err_msg=key)


def _native_calls(step):
    """The names of birnn's native kernels that one call of `step` ran (profiler events)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        step()
    return {e.name.split("::")[1] for e in profile.events() if e.name.startswith("birnn_native")}


@pytest.mark.parametrize("native_kernels", [True], ids=["native"], indirect=True)
def test_compiled_steps_call_the_native_kernels(native_kernels, direct_runs):
    """The compiled training step runs the native forward and backward kernels (no
    unrolled recurrence) and matches eager over three steps; inference runs a short
    sequence unrolled and a long one through the forward kernels, entered directly
    (one graph, no break), also with a symbolic batch size. float64 throughout:
    equal within 1e-10."""
    rng = np.random.default_rng(5)
    long = traced_rnn.MAX_TRACED_STEPS + 2
    x = rng.normal(size=(4, long, 3))
    y = rng.normal(size=(4, 2))
    birnn.config.set_floatx("float64")
    try:
        models = [_model(birnn, 3), _model(birnn, 3), _model(birnn, long), _model(birnn, long)]
    finally:
        birnn.config.set_floatx("float32")
    eager, compiled, eager_long, compiled_long = models
    for m, jit_compile in zip(models, (False, True, False, True)):
        copy_weights(eager, m)
        m.compile(loss="mse", optimizer="rmsprop", jit_compile=jit_compile)
    for _ in range(3):
        expected = eager.train_on_batch(x[:, :3], y)
        got = compiled.train_on_batch(x[:, :3], y)
        np.testing.assert_allclose(got, expected, rtol=1e-10)
    for a, b in zip(compiled.get_weights(), eager.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert _native_calls(lambda: compiled.train_on_batch(x[:, :3], y)) == {
        "lstm_forward",
        "lstm_backward",
        "gru_forward",
        "gru_backward",
    }
    assert _native_calls(lambda: compiled.predict_on_batch(x[:, :3])) == set()
    eager.train_on_batch(x[:, :3], y)
    np.testing.assert_allclose(
        compiled.predict_on_batch(x[:, :3]), eager.predict_on_batch(x[:, :3]), rtol=1e-10
    )
    for m in (eager_long, compiled_long):
        m.set_weights(eager.get_weights())
    expected = eager_long.predict_on_batch(x)
    np.testing.assert_allclose(compiled_long.predict_on_batch(x), expected, rtol=1e-10)
    runs = direct_runs["direct"]
    assert _native_calls(lambda: compiled_long.predict_on_batch(x)) == {
        "lstm_forward",
        "gru_forward",
    }
    assert direct_runs["direct"] == runs + 1
    for rows in (3, 2):  # other batch sizes: the second makes the batch size symbolic
        np.testing.assert_allclose(
            compiled_long.predict_on_batch(x[:rows]),
            eager_long.predict_on_batch(x[:rows]),
            rtol=1e-10,
        )


def _lstm_pair(steps):
    torch.manual_seed(0)
    x = torch.randn(2, steps, 3)
    kernel, recurrent = torch.randn(3, 8), torch.randn(2, 8)
    forward = fused_rnn.Direction("lstm", kernel, recurrent, None)
    backward = fused_rnn.Direction("lstm", kernel, recurrent, None, go_backwards=True)
    return x, forward, backward


@pytest.fixture
def native_kernels(request):
    """birnn's native kernels allowed (True) or not (False) for one test."""
    if request.param and not native_rnn.enabled():
        pytest.skip("needs birnn's native kernels (a C++ compiler)")
    native_rnn.set_enabled(request.param)
    yield request.param
    native_rnn.set_enabled(True)


@pytest.mark.parametrize(
    "native_kernels, extra_steps, breaks",
    [(False, 0, 0), (False, 1, 1), (True, 0, 0), (True, 1, 0)],
    ids=["traced-short", "traced-long", "native-short", "native-long"],
    indirect=["native_kernels"],
)
def test_size_rule_traces_short_sequences_only(native_kernels, extra_steps, breaks):
    """Without the native kernels, the recurrence joins the compiled graph up to
    `MAX_TRACED_STEPS` steps (unrolled) and past it runs outside (one graph break);
    with them, it is in the graph at every length. The results are eager's."""
    x, forward, backward = _lstm_pair(traced_rnn.MAX_TRACED_STEPS + extra_steps)

    def run(x):
        return fused_rnn.run_pair(x, forward, backward).outputs_side_by_side

    torch._dynamo.reset()
    explained = torch._dynamo.explain(run)(x)
    assert explained.graph_break_count == breaks
    torch.testing.assert_close(torch.compile(run, backend="eager")(x), run(x))


@pytest.mark.parametrize("training", [True, False])
def test_one_model_call_is_one_graph(training):
    """Layer calls (their training flag, dtype scopes, masks) and the recurrences of a
    short sequence trace without a graph break."""
    model = _model(birnn)
    x = torch.randn(2, 3, 3)
    model(x)  # builds

    def call(x):
        return model(x, training=training)

    torch._dynamo.reset()
    explained = torch._dynamo.explain(call)(x)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)


@pytest.fixture
def direct_runs(monkeypatch):
    """Counts the compiled inference calls that entered dynamo's cached code directly."""
    runs = {"direct": 0, "through dynamo": 0}
    runner = jit._runner

    def counted(code, function):
        found = runner(code, function)
        runs["direct" if found is not None else "through dynamo"] += 1
        return found

    monkeypatch.setattr(jit, "_runner", counted)
    return runs


def test_compiled_predict_follows_weights_inputs_and_layer_changes(tmp_path, direct_runs):
    """The compiled inference step (entered directly, past dynamo's wrapper) equals the
    eager one within 1e-6 after each change that must reach it: weights set, loaded
    and updated in place by the optimizer, a new batch size, a float64 input, the
    training flag (a dropout layer) and a layer attribute."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 3, 3)).astype("float32")
    y = rng.normal(size=(4, 2)).astype("float32")

    def model():
        return birnn.Sequential(
            [
                birnn.Input(shape=(3, 3)),
                birnn.layers.Bidirectional(birnn.layers.LSTM(3, return_sequences=True)),
                birnn.layers.Dropout(0.5),
                birnn.layers.Bidirectional(birnn.layers.GRU(2)),
                birnn.layers.Dense(2),
            ]
        )

    eager, compiled = model(), model()
    copy_weights(eager, compiled)
    for m, jit_compile in ((eager, False), (compiled, True)):
        m.compile(loss="mse", optimizer="rmsprop", jit_compile=jit_compile)

    def check(inputs=x):
        np.testing.assert_allclose(
            compiled.predict_on_batch(inputs), eager.predict_on_batch(inputs), atol=1e-6
        )

    check()
    graphs = _graphs()
    runs = direct_runs["direct"]
    check()
    assert direct_runs["direct"] == runs + 1 and _graphs() == graphs  # no new graph
    new = [rng.normal(size=w.shape).astype("float32") for w in eager.get_weights()]
    eager.set_weights(new)
    compiled.set_weights(new)
    check()
    path = str(tmp_path / "other.weights.h5")
    model().save_weights(path)  # other random weights
    eager.load_weights(path)
    compiled.load_weights(path)
    check()
    assert _graphs() == graphs  # new values in the same weights: no recompilation
    for _ in range(3):  # the optimizer updates the weights in place (dropout: own draws)
        compiled.train_on_batch(x, y)
    graphs = _graphs()  # with the training step's graphs
    eager.set_weights(compiled.get_weights())
    check()
    assert _graphs() == graphs
    check(x[:3])  # a batch size: a new graph
    check(np.concatenate([x, x]))
    check(torch.from_numpy(x).double())  # cast to the input's float32 in the graph
    # The training flag: its own graph, dropout on; inference is back after it.
    with torch.no_grad():
        trained = jit.forward(compiled, torch.from_numpy(x), training=True)
    assert not np.allclose(trained.numpy(), eager.predict_on_batch(x), atol=1e-3)
    check()
    for m in (eager, compiled):  # a layer attribute read by the graph: a guard fails
        m.layers[-1].activation = birnn.activations.get("tanh")
    check()
    assert direct_runs["through dynamo"] == 0


@pytest.mark.parametrize("native_kernels", [False], ids=["traced"], indirect=True)
def test_compiled_predict_with_a_graph_break_and_another_stance(native_kernels, direct_runs):
    """Without the native kernels, a sequence past `MAX_TRACED_STEPS` calls the fused
    kernel outside the graph (a graph break): its calls go through dynamo, which
    compiles the resumed frames;
    under `torch.compiler.set_stance("force_eager")` calls go through dynamo too,
    which then runs eagerly. Results equal eager ones within 1e-6."""
    steps = traced_rnn.MAX_TRACED_STEPS + 1
    x = np.random.default_rng(4).normal(size=(2, steps, 3)).astype("float32")
    eager, compiled = _model(birnn, steps), _model(birnn, steps)
    copy_weights(eager, compiled)
    for m, jit_compile in ((eager, False), (compiled, True)):
        m.compile(loss="mse", jit_compile=jit_compile)
    for _ in range(2):
        np.testing.assert_allclose(
            compiled.predict_on_batch(x), eager.predict_on_batch(x), atol=1e-6
        )
    assert direct_runs["direct"] == 0 and direct_runs["through dynamo"] >= 1
    short = _model(birnn)
    short.compile(loss="mse", jit_compile=True)
    xs = x[:, :3]
    expected = short.predict_on_batch(xs)  # compiles, enters directly next time
    runs = dict(direct_runs)
    with torch.compiler.set_stance("force_eager"):
        np.testing.assert_allclose(short.predict_on_batch(xs), expected, atol=1e-6)
    assert direct_runs == runs
    np.testing.assert_allclose(short.predict_on_batch(xs), expected, atol=1e-6)
    assert direct_runs["direct"] == runs["direct"] + 1
