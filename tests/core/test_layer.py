"""The Layer core: names, weights, trainability, masks, input specs, losses, config."""

import re

import keras
import numpy as np
import pytest
import torch
from torch import nn

from birnn import Input, backend, layers
from birnn.layers.input_spec import InputSpec
from birnn.layers.layer import Layer


class Affine(Layer):
    """A layer with a trainable and a non-trainable weight."""

    def __init__(self, units=2, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(
            shape=(input_shape[-1], self.units), initializer="ones", name="w", regularizer="l2"
        )
        self.count = self.add_weight(shape=(), initializer="zeros", trainable=False, name="count")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="b")

    def call(self, x):
        return x @ self.w + self.b

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class Outer(Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.first = Affine(3)
        self.second = layers.Dense(2)

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(), initializer="ones", name="scale")
        self.first.build(input_shape)
        self.second.build((*input_shape[:-1], 3))

    def call(self, x):
        return self.second(self.first(x)) * self.scale


# ---------------------------------------------------------------- naming
def test_unique_snake_case_names():
    backend.reset_uids()
    assert [layers.Dense(1).name for _ in range(3)] == ["dense", "dense_1", "dense_2"]
    assert layers.GlobalAveragePooling1D().name == "global_average_pooling1d"
    assert layers.Dense(1, name="custom").name == "custom"
    assert Affine().name.startswith("affine")
    with pytest.raises(TypeError, match=r"Dense.*name"):
        layers.Dense(1, name=3)


def test_names_match_keras():
    backend.reset_uids()
    keras.backend.clear_session()
    for cls in ("Dense", "Embedding", "TimeDistributed", "GlobalMaxPooling1D", "Concatenate"):
        args = {"Dense": (1,), "Embedding": (2, 2), "TimeDistributed": None}.get(cls, ())
        if cls == "TimeDistributed":
            ours = layers.TimeDistributed(layers.Dense(1)).name
            theirs = keras.layers.TimeDistributed(keras.layers.Dense(1)).name
        else:
            ours = getattr(layers, cls)(*args).name
            theirs = getattr(keras.layers, cls)(*args).name
        assert ours == theirs


# ---------------------------------------------------------------- weights
def test_add_weight_registers_parameters_in_keras_order():
    layer = Affine()
    layer.build((None, 4))
    assert [n for n, _ in layer.named_parameters()] == ["w", "count", "b"]
    # Keras order: trainable weights first, then non-trainable
    assert [tuple(w.shape) for w in layer.weights] == [(4, 2), (2,), ()]
    assert layer.trainable_weights == [layer.w, layer.b]
    assert layer.non_trainable_weights == [layer.count]
    assert not layer.count.requires_grad


def test_nested_layer_weights_order_matches_keras():
    outer = Outer()
    outer(torch.ones(2, 4))
    shapes = [tuple(w.shape) for w in outer.weights]
    assert shapes == [(), (4, 3), (3,), (), (3, 2), (2,)]
    assert outer.layers == [outer.first, outer.second]
    assert outer.count_params() == 1 + 12 + 3 + 1 + 6 + 2


def test_add_weight_negative_shape_and_duplicate_names():
    layer = Layer()
    with pytest.raises(ValueError, match="negative shape"):
        layer.add_weight(shape=(2, -1), name="w")
    a = layer.add_weight(shape=(1,), name="w")
    b = layer.add_weight(shape=(1,), name="w")
    assert a is not b and len(layer.weights) == 2
    assert [n for n, _ in layer.named_parameters()] == ["w", "w_1"]


def test_trainable_toggling():
    outer = Outer()
    outer(torch.ones(1, 4))
    outer.trainable = False
    assert outer.trainable_weights == [] and len(outer.non_trainable_weights) == 6
    assert not any(p.requires_grad for p in outer.parameters())
    assert not outer.second.trainable
    outer.trainable = True
    assert len(outer.trainable_weights) == 5
    assert not outer.first.count.requires_grad
    frozen = layers.Dense(2, trainable=False)
    frozen(torch.ones(1, 3))
    assert frozen.trainable_weights == [] and len(frozen.non_trainable_weights) == 2
    assert frozen.get_config()["trainable"] is False


def test_get_set_weights_round_trip_and_errors():
    layer = layers.Dense(3, name="dense_w")
    with pytest.raises(ValueError, match=r"count_params.*dense_w.*isn't built"):
        layer.count_params()
    layer.build((None, 2))
    values = [np.full((2, 3), 2.0, "float32"), np.arange(3, dtype="float32")]
    layer.set_weights(values)
    for got, want in zip(layer.get_weights(), values):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match=r"dense_w.*expected 2 weights.*received 1"):
        layer.set_weights(values[:1])
    with pytest.raises(ValueError, match=r"dense_w/kernel.*\(2, 3\).*\(3, 2\)"):
        layer.set_weights([np.zeros((3, 2)), np.zeros(3)])
    with pytest.raises(ValueError, match=r"dense_w/bias.*\(3,\).*\(4,\)"):
        layer.set_weights([np.zeros((2, 3)), np.zeros(4)])
    layer.set_weights([torch.ones(2, 3), torch.zeros(3)])  # tensors work too
    assert layer.count_params() == 9


def test_weights_interchange_with_keras():
    ours, theirs = layers.Dense(3), keras.layers.Dense(3)
    ours.build((None, 4))
    theirs.build((None, 4))
    theirs.set_weights(ours.get_weights())
    x = np.random.rand(2, 4).astype("float32")
    np.testing.assert_allclose(
        ours(x).detach().numpy(), keras.ops.convert_to_numpy(theirs(x)), atol=1e-6
    )


# ---------------------------------------------------------------- calls
def test_numpy_and_list_inputs():
    layer = layers.Dense(2)
    assert layer(np.ones((1, 3))).dtype == torch.float32  # float64 NumPy -> float32
    assert layer([[1.0, 2.0, 3.0]]).shape == (1, 2)
    assert layers.Add()([np.ones((1, 2)), np.ones((1, 2))]).tolist() == [[2.0, 2.0]]
    with pytest.raises(TypeError, match="tensor"):
        layer("abc")


def test_dtype_float64_layer():
    layer = layers.Dense(2, dtype="float64")
    out = layer(torch.ones(1, 3))
    assert out.dtype == torch.float64 and layer.kernel.dtype == torch.float64
    assert layer.get_config()["dtype"]["config"]["name"] == "float64"


def test_input_spec_errors_name_the_layer():
    class Needs3D(Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.input_spec = InputSpec(ndim=3, axes={-1: 4})

    layer = Needs3D(name="needs3d")
    with pytest.raises(ValueError, match=r"needs3d.*expected ndim=3, found ndim=2"):
        layer(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"needs3d.*axis -1.*value 4.*\(2, 3, 5\)"):
        layer(torch.zeros(2, 3, 5))
    layer(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="min_ndim=2"):
        layers.Dense(1)(torch.zeros(3))
    with pytest.raises(ValueError, match=r"expects 2 input\(s\)"):
        spec_layer = Layer(name="two")
        spec_layer.input_spec = [InputSpec(ndim=2), InputSpec(ndim=2)]
        spec_layer([torch.zeros(1, 1)] * 3)


def test_input_spec_messages_give_the_full_shape_as_a_tuple():
    layer = Layer(name="fixed")
    layer.input_spec = InputSpec(shape=(None, 3))
    message = (
        "Input 0 of layer 'fixed' is incompatible with the layer: "
        "expected shape=(None, 3), found shape=(2, 4)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer(torch.zeros(2, 4))
    layer.input_spec = InputSpec(ndim=3)
    message = "expected ndim=3, found ndim=2. Full shape received: (2, 4)"
    with pytest.raises(ValueError, match=re.escape(message)):
        layer(torch.zeros(2, 4))
    layer.input_spec = InputSpec(ndim=2)
    layer.input_spec.axes[-1] = 5  # a spec changed in place is read on the next call
    message = (
        "expected axis -1 of input shape to have value 5, but received input with shape (2, 4)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer(torch.zeros(2, 4))


class _TwoInputs(Layer):
    def call(self, a, b=None):
        return a if b is None else a + b


@pytest.mark.parametrize("how", ["keyword", "second", "inputs_keyword", "in_a_list"])
def test_a_keras_tensor_anywhere_in_the_call_makes_it_symbolic(how, monkeypatch):
    import birnn.layers.layer as layer_module

    monkeypatch.setattr(layer_module, "symbolic_call", lambda *args, **kwargs: "symbolic")
    layer, x, kt = _TwoInputs(), torch.zeros(2, 3), Input((3,))
    calls = {
        "keyword": lambda: layer(x, b=kt),
        "second": lambda: layer(x, kt),
        "inputs_keyword": lambda: layer(inputs=kt),
        "in_a_list": lambda: layer([x, kt]),
    }
    assert calls[how]() == "symbolic"
    assert torch.equal(layer(x, b=x), 2 * x)  # concrete tensors run eagerly
    assert torch.equal(layer(nn.Parameter(x)), x)  # a tensor subclass too


def test_unknown_constructor_arguments():
    with pytest.raises(ValueError, match=r"Unrecognized keyword arguments passed to Masking"):
        layers.Masking(mask_valu=1.0)


def test_training_flag_propagates_to_sublayers():
    class Wrapper(Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.drop = layers.Dropout(0.99, seed=1)

        def call(self, x):
            return self.drop(x)

    x = torch.ones(100)
    wrapper = Wrapper()
    assert torch.equal(wrapper(x), x)
    assert (wrapper(x, training=True) == 0).any()


class _Seen(Layer):
    """Records the `training` its calls see (in `call`, and in a sublayer's call)."""

    def __init__(self, inner=None, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner
        self.seen = []

    def call(self, x, training=None):
        self.seen.append((training, backend.current_training()))
        return x if self.inner is None else self.inner(x)


@pytest.mark.parametrize("outer", [None, True, False])
@pytest.mark.parametrize("middle", [None, True, False])
def test_training_reaches_nested_calls(outer, middle):
    """A sublayer called without `training` inherits it; an explicit value overrides it
    for that call and its own sublayers, and nothing leaks out of the call."""
    leaf = _Seen()
    middle_layer = _Seen(leaf)

    class Top(Layer):
        def call(self, x, training=None):
            kwargs = {} if middle is None else {"training": middle}
            return middle_layer(x, **kwargs)

    top = Top()
    top.eval()  # no default from `nn.Module.training`
    for layer in (middle_layer, leaf):
        layer.eval()
    kwargs = {} if outer is None else {"training": outer}
    top(torch.ones(1), **kwargs)
    expected = outer if middle is None else middle
    assert middle_layer.seen == [(expected, expected)]
    assert leaf.seen == [(expected, expected)]
    assert backend.current_training() is None


def test_a_sublayer_inheriting_training_enters_no_scope(monkeypatch):
    entered = []

    class Counting(backend.training_scope):
        def __enter__(self):
            entered.append(self)
            return super().__enter__()

    monkeypatch.setattr(backend, "training_scope", Counting)
    _Seen(_Seen(_Seen()))(torch.ones(1), training=True)
    assert len(entered) == 1  # the outer call's: the inner two inherit its value


# ---------------------------------------------------------------- masks
def test_mask_propagation_through_layers():
    ids = torch.tensor([[4, 2, 0, 0], [1, 0, 3, 0]])
    emb = layers.Embedding(5, 3, mask_zero=True)
    hidden = layers.Dense(3)(emb(ids))
    hidden = layers.Activation("relu")(hidden)
    hidden = layers.Dropout(0.5)(hidden, training=True)
    assert torch.equal(hidden._keras_mask, ids != 0)
    merged = layers.Concatenate()([hidden, hidden])
    assert torch.equal(merged._keras_mask, ids != 0)
    flat = layers.Flatten()(merged)
    assert getattr(flat, "_keras_mask", None) is None
    explicit = layers.Dense(2)(torch.ones(2, 4, 3), mask=torch.ones(2, 4))
    assert explicit._keras_mask.dtype == torch.bool


def test_compute_mask_default_passes_mask_through():
    layer = layers.Dense(2)
    mask = torch.tensor([[True, False]])
    assert layer.compute_mask(torch.zeros(1, 2, 3), mask) is mask


# ---------------------------------------------------------------- losses
def test_losses_from_regularizers():
    layer = layers.Dense(
        2, kernel_initializer="ones", kernel_regularizer=keras.regularizers.L2(0.5), name="r"
    )
    assert layer.losses == []
    layer(torch.ones(4, 3))
    assert len(layer.losses) == 1
    assert layer.losses[0].item() == pytest.approx(0.5 * 6)
    layer.trainable = False
    assert layer.losses == []  # Keras drops frozen weights' regularization


def test_activity_regularizer_is_per_sample_as_in_keras():
    ours = layers.Activation("linear", activity_regularizer="l1")
    theirs = keras.layers.Activation("linear", activity_regularizer="l1")
    x = np.random.RandomState(0).randn(5, 3).astype("float32")
    ours(x)
    theirs(x)
    assert float(ours.losses[0]) == pytest.approx(float(theirs.losses[0]), rel=1e-5)
    ours(x[:2])
    assert len(ours.losses) == 1  # reset on every call


# ---------------------------------------------------------------- config
def test_get_config_and_from_config():
    layer = Affine(5, name="aff", trainable=False, dtype="float64")
    config = layer.get_config()
    assert config["name"] == "aff" and config["trainable"] is False and config["units"] == 5
    clone = Affine.from_config(config)
    assert clone.get_config() == config
    assert layers.Dense(1, activity_regularizer="l2").get_config()["activity_regularizer"] == {
        "module": "keras.regularizers",
        "class_name": "L2",
        "config": {"l2": 0.01},
        "registered_name": None,
    }


def test_is_a_torch_module():
    layer = layers.Dense(2)
    layer(torch.ones(1, 3))
    assert isinstance(layer, torch.nn.Module)
    assert set(layer.state_dict()) == {"kernel", "bias"}
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    layer(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    assert not torch.equal(layer.bias.detach(), torch.zeros(2))


# ---------------------------------------------------------------- bad arguments
def test_set_weights_needs_a_list_and_a_built_layer():
    layer = layers.Dense(2, name="dense_sw")
    with pytest.raises(ValueError, match=r"dense_sw.*expected 0 weights.*isn't built"):
        layer.set_weights([np.zeros((3, 2)), np.zeros(2)])
    layer.build((None, 3))
    with pytest.raises(TypeError, match=r"dense_sw.*list of arrays"):
        layer.set_weights(np.zeros((3, 2)))
    with pytest.raises(TypeError, match=r"dense_sw.*list of arrays"):
        layer.set_weights(None)


def test_add_weight_bad_arguments_name_layer_and_argument():
    layer = Layer(name="holder")
    with pytest.raises(TypeError, match=r"holder.*add_weight\('w'\).*`shape`"):
        layer.add_weight(shape="ab", name="w")
    with pytest.raises(TypeError, match=r"holder.*`shape`"):
        layer.add_weight(shape=(2, 1.5))
    with pytest.raises(ValueError, match=r"holder.*add_weight\('w'\).*`initializer`"):
        layer.add_weight(shape=(2,), initializer="nope", name="w")
    with pytest.raises(ValueError, match=r"holder.*`regularizer`"):
        layer.add_weight(shape=(2,), regularizer="nope")
    with pytest.raises(ValueError, match=r"holder.*`constraint`"):
        layer.add_weight(shape=(2,), constraint="nope")
    with pytest.raises(ValueError, match=r"holder.*`dtype`"):
        layer.add_weight(shape=(2,), dtype="float7")
    assert layer.weights == []
    assert tuple(layer.add_weight(shape=3).shape) == (3,)  # an int is a 1-D shape


@pytest.mark.parametrize(
    "kwargs,error,argument",
    [
        ({"ndim": "3"}, TypeError, "ndim"),
        ({"min_ndim": -1}, TypeError, "min_ndim"),
        ({"max_ndim": 2.0}, TypeError, "max_ndim"),
        ({"dtype": "float7"}, ValueError, "dtype"),
        ({"axes": {"last": 3}}, TypeError, "axes"),
        ({"ndim": 2, "axes": {2: 3}}, ValueError, "axes"),
    ],
)
def test_input_spec_bad_arguments(kwargs, error, argument):
    with pytest.raises(error, match=rf"InputSpec.*argument `{argument}`"):
        InputSpec(**kwargs)


def test_base_layer_bad_dtype_and_activity_regularizer_name_the_class():
    with pytest.raises(ValueError, match=r"Masking: invalid value for argument `dtype`"):
        layers.Masking(dtype="float7")
    with pytest.raises(ValueError, match=r"Flatten: .*`activity_regularizer`"):
        layers.Flatten(activity_regularizer="nope")


def test_extra_call_arguments_pass_through_and_unknown_ones_name_the_layer():
    class Scaled(Layer):
        def call(self, x, scale=1.0, *, shift=0.0):
            return x * scale + shift

    layer = Scaled(name="scaled")
    x = torch.ones(2, 3)
    assert torch.equal(layer(x, scale=2.0, shift=1.0), torch.full((2, 3), 3.0))
    assert torch.equal(layer(x, 3.0), torch.full((2, 3), 3.0))
    # `mask` and `training` are always accepted, and dropped when call() has no use for them
    assert torch.equal(layer(x, mask=torch.ones(2), training=True), x)
    with pytest.raises(TypeError, match=r"scaled.*unexpected call argument `sclae`"):
        layer(x, sclae=2.0)
    with pytest.raises(TypeError, match=r"dense_call.*`initial_state`"):
        layers.Dense(2, name="dense_call")(x, initial_state=[x])

    class Anything(Layer):
        def call(self, x, **kwargs):
            return x + len(kwargs)

    assert torch.equal(Anything()(x, a=1, b=2), x + 2)


def test_a_nested_list_mask_is_one_mask_for_every_layer():
    from birnn.layers import GlobalAveragePooling1D

    x = torch.arange(12.0).reshape(2, 3, 2)
    listed = [[True, True, False], [True, False, False]]
    pooled = GlobalAveragePooling1D()(x, mask=listed)
    expected = GlobalAveragePooling1D()(x, mask=torch.tensor(listed))
    torch.testing.assert_close(pooled, expected)


def test_own_weight_specs_and_declared_input_shape_are_public_and_read_only():
    from birnn import constraints, regularizers
    from birnn.layers import Dense

    layer = Dense(
        2, kernel_regularizer="l2", kernel_constraint="non_neg", input_shape=(3,), name="d"
    )
    assert layer.declared_input_shape == (None, 3)
    assert Dense(2).declared_input_shape is None
    specs = layer.own_weight_specs()
    assert sorted(specs) == ["bias", "kernel"]
    assert isinstance(specs["kernel"].regularizer, regularizers.L2)
    assert isinstance(specs["kernel"].constraint, constraints.NonNeg)
    assert specs["bias"].regularizer is None and specs["kernel"].trainable
    with pytest.raises(TypeError):
        specs["kernel"] = specs["bias"]  # type: ignore[index]
