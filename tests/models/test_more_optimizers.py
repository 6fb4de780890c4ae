"""Lion, Lamb, Ftrl, Adafactor, ScheduleFreeAdamW against Keras 3.15.1: updates, configs, files."""

import numpy as np
import pytest
import torch

import birnn
from birnn import optimizers, schedules
from tests.keras_oracle import assert_close, copy_weights, keras, to_numpy
from tests.models._optimizer_files import assert_file_round_trip

SHAPES = [(3, 4), (4,), (2, 3, 4)]  # a kernel, a bias, a rank-3 weight (Adafactor's factoring)

CASES = [
    ("Lion", {}),
    ("Lion", {"beta_1": 0.5, "beta_2": 0.7, "weight_decay": 0.1}),
    ("Lion", {"global_clipnorm": 0.5}),
    ("Lamb", {}),
    ("Lamb", {"beta_1": 0.8, "beta_2": 0.9, "epsilon": 1e-3, "clipvalue": 0.5}),
    ("Ftrl", {}),
    (
        "Ftrl",
        {
            "learning_rate_power": -0.7,
            "initial_accumulator_value": 0.3,
            "l1_regularization_strength": 0.01,
            "l2_regularization_strength": 0.2,
            "l2_shrinkage_regularization_strength": 0.1,
            "beta": 0.5,
        },
    ),
    ("Ftrl", {"l1_regularization_strength": 0.5, "clipnorm": 1.0}),
    ("Adafactor", {}),
    (
        "Adafactor",
        {
            "beta_2_decay": -0.5,
            "epsilon_1": 1e-3,
            "epsilon_2": 0.1,
            "clip_threshold": 0.5,
            "relative_step": False,
            "weight_decay": 0.05,
        },
    ),
    ("ScheduleFreeAdamW", {}),
    (
        "ScheduleFreeAdamW",
        {"beta_2": 0.9, "epsilon": 1e-3, "warmup_steps": 3, "weight_decay": 0.1},
    ),
    ("ScheduleFreeAdamW", {"beta_1": 0.5, "clipvalue": 0.3}),  # Keras's update ignores beta_1
]
NAMES = ["Lion", "Lamb", "Ftrl", "Adafactor", "ScheduleFreeAdamW"]


def _inits(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype("float32") for shape in SHAPES]


def _grads(step):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(shape).astype("float32") for shape in SHAPES]


def _pair(name, kwargs, learning_rate=0.05, inits=None):
    """The same optimizer in birnn and Keras, each bound to its copy of the weights."""
    inits = _inits() if inits is None else inits
    params = [torch.nn.Parameter(torch.tensor(x)) for x in inits]
    ours = getattr(optimizers, name)(learning_rate=learning_rate, **kwargs)
    ours.build(params)
    variables = [keras.Variable(x) for x in inits]
    theirs = getattr(keras.optimizers, name)(learning_rate=learning_rate, **kwargs)
    theirs.build(variables)
    return ours, params, theirs, variables


def _step_both(ours, params, theirs, variables, step):
    grads = _grads(step)
    for param, grad in zip(params, grads):
        param.grad = torch.tensor(grad)
    ours.step()
    theirs.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)


def _assert_slots_close(actual, expected, what):
    """Slots within float32 rounding of their size (Ftrl's `linear` grows to ~50)."""
    assert len(actual) == len(expected), what
    for i, (a, e) in enumerate(zip(actual, expected)):
        np.testing.assert_allclose(
            to_numpy(a), to_numpy(e), rtol=1e-6, atol=1e-6, err_msg=f"{what}[{i}]"
        )


def _store(theirs):
    return {str(i): to_numpy(v) for i, v in enumerate(theirs.variables)}


@pytest.mark.parametrize(
    ("name", "kwargs"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)]
)
def test_updates_and_variables_match_keras(name, kwargs):
    ours, params, theirs, variables = _pair(name, kwargs)
    for step in range(5):
        _step_both(ours, params, theirs, variables, step)
    assert_close(list(params), variables, atol=1e-6, what=name)
    store = {}
    ours.save_own_variables(store)
    expected = _store(theirs)
    assert [np.shape(v) for v in store.values()] == [np.shape(v) for v in expected.values()]
    assert int(store["0"]) == 5
    # Keras's learning rate is a float32 variable; the slots follow it.
    assert float(store["1"]) == pytest.approx(float(expected["1"]))
    _assert_slots_close(list(store.values())[2:], list(expected.values())[2:], what=name)


@pytest.mark.parametrize(
    ("name", "kwargs"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)]
)
def test_config_is_keras_config(name, kwargs):
    ours = getattr(optimizers, name)(learning_rate=0.05, name="opt", **kwargs)
    theirs = getattr(keras.optimizers, name)(learning_rate=0.05, name="opt", **kwargs)
    ours_config, theirs_config = ours.get_config(), theirs.get_config()
    assert list(ours_config) == list(theirs_config)
    for key, value in theirs_config.items():
        assert ours_config[key] == pytest.approx(value), key
        assert type(ours_config[key]) is type(value), key
    back = optimizers.deserialize(keras.optimizers.serialize(theirs))
    assert type(back) is type(ours)
    assert back.get_config() == pytest.approx(ours_config)  # Keras keeps a float32 rate
    # What Keras's `load_model` calls (its `optimizers.deserialize` does not know Lamb).
    assert type(keras.saving.deserialize_keras_object(optimizers.serialize(ours))) is type(theirs)


@pytest.mark.parametrize("name", NAMES)
def test_keras_names_resolve(name):
    assert type(optimizers.get(name.lower())) is getattr(optimizers, name)
    assert type(optimizers.get(name)) is getattr(optimizers, name)


@pytest.mark.parametrize("name", NAMES)
def test_state_loaded_from_keras_continues_like_keras(name):
    """Keras's variables loaded into a fresh and into an already-stepped optimizer."""
    ours, params, theirs, variables = _pair(name, {})
    for step in range(3):
        theirs.apply([keras.ops.convert_to_tensor(g) for g in _grads(step)], variables)
    store = _store(theirs)
    for warm_steps in (0, 4):
        ours = getattr(optimizers, name)(learning_rate=0.9)
        params = [torch.nn.Parameter(torch.tensor(to_numpy(v))) for v in variables]
        ours.build(params)
        for _ in range(warm_steps):
            for param in params:
                param.grad = torch.ones_like(param)
            ours.step()
        with torch.no_grad():
            for param, variable in zip(params, variables):
                param.copy_(torch.tensor(to_numpy(variable)))
        ours.load_own_variables(store)
        assert ours.iterations == 3 and ours.learning_rate == pytest.approx(0.05)
        followers = [keras.Variable(to_numpy(v)) for v in variables]
        follower = getattr(keras.optimizers, name)(learning_rate=0.05)
        follower.build(followers)
        follower.load_own_variables(dict(store))
        for step in range(3, 5):
            _step_both(ours, params, follower, followers, step)
        assert_close(list(params), followers, atol=1e-6, what=f"{name} after {warm_steps}")


def test_adafactor_load_checks_the_factored_shapes():
    ours, params, theirs, variables = _pair("Adafactor", {})
    _step_both(ours, params, theirs, variables, 0)
    store = _store(theirs)
    before = {}
    ours.save_own_variables(before)
    bad = dict(store, **{"2": np.zeros((3, 4), "float32")})  # the kernel's row statistics
    with pytest.raises(ValueError, match=r"variable 2 \(slot 'row'\).*\(3,\) was expected"):
        ours.load_own_variables(bad)
    after = {}
    ours.save_own_variables(after)
    assert_close(list(after.values()), list(before.values()), atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_learning_rate_schedule_matches_keras(name):
    def schedule(lib):
        return lib.optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)

    params = [torch.nn.Parameter(torch.tensor(x)) for x in _inits()]
    ours = getattr(optimizers, name)(learning_rate=schedule(birnn))
    ours.build(params)
    variables = [keras.Variable(x) for x in _inits()]
    theirs = getattr(keras.optimizers, name)(learning_rate=schedule(keras))
    for step in range(4):
        _step_both(ours, params, theirs, variables, step)
    assert_close(list(params), variables, atol=1e-6, what=name)
    assert isinstance(
        optimizers.deserialize(optimizers.serialize(ours)).get_config()["learning_rate"], dict
    )
    assert isinstance(
        schedules.deserialize(ours.get_config()["learning_rate"]), schedules.ExponentialDecay
    )


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("Lion", {"beta_1": 0.0}, "Lion: argument `beta_1` must be in \\(0, 1\\]"),
        ("Lion", {"beta_2": 1.5}, "Lion: argument `beta_2` must be in"),
        ("Ftrl", {"learning_rate_power": 0.5}, "Ftrl: argument `learning_rate_power`"),
        ("Ftrl", {"initial_accumulator_value": -1}, "`initial_accumulator_value` must be"),
        ("Ftrl", {"beta": -1}, "Ftrl: argument `beta` must be positive or zero"),
        ("Lamb", {"momentum": 0.9}, "Lamb: unknown arguments \\['momentum'\\]"),
        ("ScheduleFreeAdamW", {"warmup_steps": -1}, "`warmup_steps` must be an integer >= 0"),
    ],
)
def test_bad_arguments_are_rejected(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        getattr(optimizers, name)(**kwargs)


def _model(lib):
    return lib.Sequential(
        [
            lib.Input((5, 3)),
            lib.layers.Bidirectional(lib.layers.GRU(4)),
            lib.layers.Dense(2),
        ]
    )


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # Keras's own
@pytest.mark.parametrize("name", NAMES)
def test_keras_file_crosses_both_ways_and_training_continues_like_keras(name, tmp_path):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 5, 3)).astype("float32")
    y = rng.standard_normal((6, 2)).astype("float32")
    keras_model = _model(keras)
    keras_model.compile(optimizer=getattr(keras.optimizers, name)(learning_rate=0.02), loss="mse")
    fresh = _model(birnn)
    copy_weights(keras_model, fresh)
    fresh.compile(optimizer=getattr(optimizers, name)(learning_rate=0.02), loss="mse")
    for _ in range(2):  # the same model trained side by side
        expected = keras_model.train_on_batch(x, y)
        assert fresh.train_on_batch(x, y) == pytest.approx(expected, abs=1e-5)
    assert_close(fresh.get_weights(), keras_model.get_weights(), atol=1e-5, what="side by side")
    keras_model.save(tmp_path / "k.keras")

    model = birnn.models.load_model(tmp_path / "k.keras")
    assert type(model.optimizer) is getattr(optimizers, name)
    assert model.optimizer.get_config()["learning_rate"] == pytest.approx(0.02)
    assert model.optimizer.iterations == 2
    back = assert_file_round_trip(model, keras_model, x, y, tmp_path)
    assert type(back.optimizer).__name__ == name


def _loss_scale_pair(inner_name):
    init = np.array([1.0, -2.0, 3.0, 0.5], "float32")
    w = torch.nn.Parameter(torch.tensor(init))
    ours = optimizers.LossScaleOptimizer(
        getattr(optimizers, inner_name)(learning_rate=0.01),
        initial_scale=4.0,
        dynamic_growth_steps=2,
    )
    ours.build([w])
    kw = keras.Variable(init)
    theirs = keras.optimizers.LossScaleOptimizer(
        getattr(keras.optimizers, inner_name)(learning_rate=0.01),
        initial_scale=4.0,
        dynamic_growth_steps=2,
    )
    theirs.build([kw])
    return ours, w, theirs, kw


LOSS_SCALE_GRADS = [
    [0.5, -1.0, 2.0, 1e-3],
    [0.5, np.inf, 2.0, 1e-3],  # skipped, scale halved
    [1.0, 1.0, -2.0, 3.0],
    [0.25, -0.5, 1.0, 2.0],  # the second finite step in a row: scale doubled
    [1.5, 0.5, 0.5, -1.0],
    [np.nan, 0.5, 0.5, -1.0],
    [-1.0, 2.0, 0.5, 0.1],
]


@pytest.mark.parametrize("inner_name", ["Adam", "Lion"])
def test_loss_scale_optimizer_scales_skips_and_grows_like_keras(inner_name):
    ours, w, theirs, kw = _loss_scale_pair(inner_name)
    for grad in LOSS_SCALE_GRADS:
        grad = np.asarray(grad, "float32")
        w.grad = None
        ours.scale_loss((w * torch.tensor(grad)).sum()).backward()
        scale = float(to_numpy(theirs.dynamic_scale))
        theirs.apply([keras.ops.convert_to_tensor(grad * scale)], [kw])
        ours.step()
        assert_close(w, kw, atol=1e-6, what=inner_name)
        store = {}
        ours.save_own_variables(store)
        expected = [to_numpy(v) for v in theirs.variables]
        assert [np.shape(v) for v in store.values()] == [np.shape(v) for v in expected]
        _assert_slots_close(list(store.values()), expected, what=inner_name)
    assert ours.iterations == int(to_numpy(theirs.iterations)) == 5


def test_loss_scale_optimizer_steps_unscaled_gradients_as_they_are():
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = optimizers.LossScaleOptimizer(optimizers.SGD(0.5))
    opt.build([w])
    w.grad = torch.tensor([1.0])  # a plain backward(), no scale_loss
    opt.step()
    assert w.item() == pytest.approx(0.5) and opt.dynamic_scale == 2.0**15


def test_loss_scale_optimizer_config_is_keras_config():
    ours = optimizers.LossScaleOptimizer(
        optimizers.Ftrl(0.05, beta=0.5), initial_scale=64.0, dynamic_growth_steps=10, name="ls"
    )
    theirs = keras.optimizers.LossScaleOptimizer(
        keras.optimizers.Ftrl(0.05, beta=0.5),
        initial_scale=64.0,
        dynamic_growth_steps=10,
        name="ls",
    )
    ours_config, theirs_config = ours.get_config(), theirs.get_config()
    assert list(ours_config) == list(theirs_config)
    assert ours_config["inner_optimizer"]["class_name"] == "Ftrl"
    inner, theirs_inner = (
        {k: v for k, v in c["inner_optimizer"]["config"].items() if k != "name"}
        for c in (ours_config, theirs_config)
    )
    assert inner == pytest.approx(theirs_inner)
    for key in ("name", "initial_scale", "dynamic_growth_steps"):
        assert ours_config[key] == theirs_config[key]
    back = optimizers.deserialize(keras.optimizers.serialize(theirs))
    assert type(back) is optimizers.LossScaleOptimizer
    assert type(back.inner_optimizer) is optimizers.Ftrl and back.initial_scale == 64.0
    theirs_back = keras.saving.deserialize_keras_object(optimizers.serialize(ours))
    assert type(theirs_back) is type(theirs)
    assert theirs_back.get_config()["dynamic_growth_steps"] == 10


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"inner_optimizer": "adam"}, TypeError, "`inner_optimizer` must be a birnn optimizer"),
        ({"initial_scale": 0.0}, ValueError, "`initial_scale` must be positive"),
        ({"dynamic_growth_steps": 0}, ValueError, "`dynamic_growth_steps` must be a positive"),
        ({"clipnorm": 1.0}, ValueError, "on the inner optimizer"),
    ],
)
def test_loss_scale_optimizer_rejects_bad_arguments(kwargs, error, message):
    kwargs = {"inner_optimizer": optimizers.Adam(), **kwargs}
    with pytest.raises(error, match=message):
        optimizers.LossScaleOptimizer(**kwargs)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # Keras's own
def test_loss_scale_optimizer_file_crosses_both_ways(tmp_path):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((6, 5, 3)).astype("float32")
    y = rng.standard_normal((6, 2)).astype("float32")
    keras_model = _model(keras)
    keras_model.compile(
        optimizer=keras.optimizers.LossScaleOptimizer(
            keras.optimizers.Adam(0.02), initial_scale=8.0, dynamic_growth_steps=2
        ),
        loss="mse",
    )
    fresh = _model(birnn)
    copy_weights(keras_model, fresh)
    fresh.compile(
        optimizer=optimizers.LossScaleOptimizer(
            optimizers.Adam(0.02), initial_scale=8.0, dynamic_growth_steps=2
        ),
        loss="mse",
    )
    for _ in range(3):
        expected = keras_model.train_on_batch(x, y)
        assert fresh.train_on_batch(x, y) == pytest.approx(expected, abs=1e-5)
    assert_close(fresh.get_weights(), keras_model.get_weights(), atol=1e-5, what="side by side")
    assert fresh.optimizer.dynamic_scale == float(to_numpy(keras_model.optimizer.dynamic_scale))
    keras_model.save(tmp_path / "k.keras")

    model = birnn.models.load_model(tmp_path / "k.keras")
    assert type(model.optimizer) is optimizers.LossScaleOptimizer
    assert type(model.optimizer.inner_optimizer) is optimizers.Adam
    assert model.optimizer.iterations == 3 and model.optimizer.step_counter == 1
    assert model.optimizer.dynamic_scale == 16.0
    back = assert_file_round_trip(
        model, keras_model, x, y, tmp_path, slots_close=_assert_slots_close
    )
    assert type(back.optimizer).__name__ == "LossScaleOptimizer"


def test_loss_scale_optimizer_checks_the_gradients_its_closure_computes():
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = optimizers.LossScaleOptimizer(optimizers.SGD(0.5), initial_scale=4.0)
    opt.build([w])
    w.grad = torch.tensor([float("nan")])  # stale: the closure recomputes it

    def closure():
        opt.zero_grad()
        loss = opt.scale_loss((3 * w).sum())
        loss.backward()
        return loss

    assert float(opt.step(closure).detach()) == pytest.approx(12.0)
    assert w.item() == pytest.approx(1.0 - 0.5 * 3) and opt.dynamic_scale == 4.0


def test_fit_scales_the_loss_so_an_overflowing_step_is_skipped_like_keras():
    x = np.full((4, 3), 1e17, "float32")
    y = np.zeros((4, 1), "float32")

    def run(lib):
        model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(1, kernel_initializer="ones")])
        opt = lib.optimizers.LossScaleOptimizer(lib.optimizers.SGD(1e-40), initial_scale=2.0**15)
        model.compile(opt, "mse")
        model.train_on_batch(x, y)  # loss ~1e35 is finite; times 2**15 it is not
        return [np.asarray(w) for w in model.get_weights()], float(np.asarray(opt.dynamic_scale))

    (k_weights, k_scale), (b_weights, b_scale) = run(keras), run(birnn)
    assert b_scale == k_scale == 2.0**14  # the step was skipped and the scale halved
    for a, b in zip(b_weights, k_weights):
        np.testing.assert_array_equal(a, b)


def test_schedule_free_momentum_starts_at_the_weights_like_keras():
    """Before any step Keras's `momentum` slot (the `z` sequence) holds the weight's value."""
    ours, params, theirs, variables = _pair("ScheduleFreeAdamW", {})
    store = {}
    ours.save_own_variables(store)
    _assert_slots_close(list(store.values())[2:], list(_store(theirs).values())[2:], "unset")


def test_schedule_free_takes_weights_set_after_compile_like_keras():
    """z starts at the weights of the first step, not at those of compile time."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((6, 5, 3)).astype("float32")
    y = rng.standard_normal((6, 2)).astype("float32")
    keras_model, model = _model(keras), _model(birnn)
    keras_model.compile(optimizer=keras.optimizers.ScheduleFreeAdamW(0.02), loss="mse")
    model.compile(optimizer=optimizers.ScheduleFreeAdamW(0.02), loss="mse")
    copy_weights(keras_model, model)  # after compile (birnn's optimizer is built by now)
    for _ in range(3):
        expected = keras_model.train_on_batch(x, y)
        assert model.train_on_batch(x, y) == pytest.approx(expected, abs=1e-5)
    assert_close(model.get_weights(), keras_model.get_weights(), atol=1e-5, what="trained")
