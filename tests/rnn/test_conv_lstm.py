"""`ConvLSTM1D/2D/3D` beyond the parity grid: dropout in training, configs, states, errors."""

import numpy as np
import pytest
import torch

import birnn
from birnn.layers.rnn.conv_lstm import ConvLSTMCell
from birnn.ops import conv_padding
from tests.core._parity import check_layer_parity
from tests.keras_oracle import assert_close, copy_weights, keras, to_numpy

SPATIAL = {1: (5,), 2: (4, 3), 3: (3, 3, 2)}


def _inputs(rank, data_format="channels_last", batch=2, steps=3, channels=2):
    spatial = SPATIAL[rank]
    if data_format == "channels_last":
        return torch.randn(batch, steps, *spatial, channels)
    return torch.randn(batch, steps, channels, *spatial)


def _pair(rank, *args, **kwargs):
    name = f"ConvLSTM{rank}D"
    return getattr(keras.layers, name)(*args, **kwargs), getattr(birnn.layers, name)(
        *args, **kwargs
    )


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_training_dropout_matches_keras_given_the_same_masks(rank, data_format):
    """Four input and four recurrent masks per sequence, one per gate, as Keras draws them."""
    kwargs = dict(padding="same", return_sequences=True, data_format=data_format)
    keras_layer, layer = _pair(rank, 2, 2, dropout=0.5, recurrent_dropout=0.4, **kwargs)
    x = _inputs(rank, data_format)
    keras_layer(x)
    layer(x)
    copy_weights(keras_layer, layer)
    input_masks = (torch.rand(4, *x[:, 0].shape) > 0.5).float() * 2
    state_shape = layer.cell.state_shape(tuple(x[:, 0].shape))
    recurrent_masks = (torch.rand(4, *state_shape) > 0.4).float() / 0.6
    keras_layer.cell._dropout_mask = list(input_masks)
    keras_layer.cell._recurrent_dropout_mask = list(recurrent_masks)
    layer.cell._dropout_mask = input_masks
    layer.cell._recurrent_dropout_mask = recurrent_masks
    expected = keras_layer(x, training=True)
    actual = layer(x, training=True)
    assert_close(actual, expected, atol=1e-5)
    assert not np.allclose(to_numpy(actual), to_numpy(layer(x)), atol=1e-3)  # masks applied
    assert layer.cell._dropout_mask is None  # forgotten after the sequence


def test_dropout_masks_are_drawn_once_per_sequence():
    layer = birnn.layers.ConvLSTM2D(2, 3, padding="same", dropout=0.3, recurrent_dropout=0.3)
    x = _inputs(2)
    layer(x)
    drawn = []
    create = layer.cell._create_dropout_mask

    def record(step_input, rate):
        mask = create(step_input, rate)
        drawn.append(tuple(mask.shape))
        return mask

    layer.cell._create_dropout_mask = record
    first = layer(x, training=True)
    assert drawn == [(4, 2, 4, 3, 2), (4, 2, 4, 3, 2)]  # input masks, recurrent masks
    second = layer(x, training=True)
    assert len(drawn) == 4
    assert not torch.allclose(first, second)
    assert_close(layer(x, training=False), layer(x), atol=0)


def test_seeded_dropout_is_reproducible():
    outputs = []
    for _ in range(2):
        torch.manual_seed(0)
        layer = birnn.layers.ConvLSTM1D(2, 3, dropout=0.5, recurrent_dropout=0.5, seed=7)
        x = torch.ones(2, 4, 5, 3)
        outputs.append(layer(x, training=True))
    assert_close(outputs[0], outputs[1], atol=0)


@pytest.mark.parametrize(
    "rank, kwargs",
    [
        (1, dict(strides=2, activation="relu", unit_forget_bias=False, return_sequences=True)),
        (2, dict(kernel_size=(2, 3), dilation_rate=(2, 1), padding="SAME", use_bias=False)),
        (
            3,
            dict(
                data_format="channels_first",
                recurrent_activation="hard_sigmoid",
                kernel_regularizer="l2",
                return_state=True,
                go_backwards=True,
            ),
        ),
    ],
)
def test_layer_parity_config_and_shapes(rank, kwargs):
    kwargs = {"kernel_size": 2, **kwargs}
    keras_layer, layer = _pair(rank, 3, **kwargs)
    x = to_numpy(_inputs(rank, kwargs.get("data_format", "channels_last")))
    if kwargs.get("return_state"):
        out = layer(torch.tensor(x))
        keras_out = keras_layer(x)
        copy_weights(keras_layer, layer)
        assert_close(list(layer(torch.tensor(x))), list(keras_out), atol=1e-5)
        assert [tuple(o.shape) for o in out] == [
            tuple(s) for s in keras_layer.compute_output_shape(x.shape)
        ]
        assert layer.get_config() == {**keras_layer.get_config(), "name": layer.name}
        return
    mask = np.array([[1, 0, 1], [1, 1, 0]], bool)
    check_layer_parity(layer, keras_layer, x, mask=mask)


def test_get_config_matches_keras_and_round_trips():
    keras_layer, layer = _pair(2, 4, (3, 2), strides=(2, 1), seed=3, name="c")
    config = layer.get_config()
    assert config == keras_layer.get_config()
    assert config["kernel_size"] == (3, 2) and config["strides"] == (2, 1)
    clone = birnn.layers.ConvLSTM2D.from_config(config)
    assert clone.get_config() == config
    from_keras = keras.layers.ConvLSTM2D.from_config(config).get_config()
    assert from_keras == keras_layer.get_config()
    cell_config = layer.cell.get_config()
    assert "rank" not in cell_config  # as Keras writes it
    assert ConvLSTMCell.from_config(cell_config).rank == 2


def test_weights_have_keras_names_shapes_and_order():
    layer = birnn.layers.ConvLSTM3D(5, (1, 2, 3))
    layer.build((2, 4, 6, 6, 6, 3))
    assert [(name, tuple(w.shape)) for name, w in layer.named_parameters()] == [
        ("cell.kernel", (1, 2, 3, 3, 20)),
        ("cell.recurrent_kernel", (1, 2, 3, 5, 20)),
        ("cell.bias", (20,)),
    ]
    assert list(layer.cell._weight_specs) == ["kernel", "recurrent_kernel", "bias"]
    bias = to_numpy(layer.cell.bias)
    np.testing.assert_array_equal(bias, np.r_[np.zeros(5), np.ones(5), np.zeros(10)])
    assert layer.cell.name == "conv_lstm_cell"


def test_kernel_updates_keep_the_conv_layout():
    layer = birnn.layers.ConvLSTM2D(2, 3)
    layer.build((1, 2, 5, 5, 3))
    values = np.random.default_rng(0).standard_normal((3, 3, 3, 8)).astype("float32")
    layer.set_weights([values, *layer.get_weights()[1:]])
    np.testing.assert_array_equal(to_numpy(layer.cell.kernel), values)
    assert layer.cell.kernel.permute(3, 2, 0, 1).is_contiguous()


@pytest.mark.parametrize("wrapped", [False, True])
def test_stateful_matches_keras_over_two_batches(wrapped):
    def make(module):
        # Keras 3.15's Bidirectional cannot compute masks of a stateful layer returning states.
        layer = module.layers.ConvLSTM2D(
            2, 2, padding="same", stateful=True, return_state=not wrapped
        )
        return module.layers.Bidirectional(layer) if wrapped else layer

    keras_layer, layer = make(keras), make(birnn)
    x = _inputs(2)
    keras_layer.build(tuple(x.shape))
    layer.build(tuple(x.shape))
    copy_weights(keras_layer, layer)
    for _ in range(2):
        expected = keras_layer(x)
        actual = layer(x)
        assert_close(actual, expected, atol=1e-5)
    assert_close(list(layer.states), list(keras_layer.states), atol=1e-5)
    layer.reset_states()
    keras_layer.reset_states()
    assert_close(layer(x), keras_layer(x), atol=1e-5)


def test_unknown_dimensions_in_output_shapes():
    layer = birnn.layers.ConvLSTM2D(3, 3, strides=2, return_sequences=True, return_state=True)
    keras_layer = keras.layers.ConvLSTM2D(
        3, 3, strides=2, return_sequences=True, return_state=True
    )
    shape = (None, None, None, 9, 2)
    assert layer.compute_output_shape(shape) == keras_layer.compute_output_shape(shape)


def test_in_a_functional_model_with_unknown_time():
    inputs = birnn.Input(shape=(None, 6, 5, 2))
    outputs = birnn.layers.Bidirectional(
        birnn.layers.ConvLSTM2D(3, 3, return_sequences=True), merge_mode="sum"
    )(inputs)
    model = birnn.Model(inputs, outputs)
    assert model(torch.randn(2, 4, 6, 5, 2)).shape == (2, 4, 4, 3, 3)


def test_padding_arithmetic():
    for length in range(1, 9):
        for kernel in (1, 2, 3, 4):
            for stride in (1, 2, 3):
                before, after = conv_padding.same_padding(length, kernel, stride)
                padded = length + before + after
                assert conv_padding.conv_output_length(padded, kernel, stride) == (
                    conv_padding.conv_output_length(length, kernel, stride, "same")
                )
                assert after - before in (0, 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(padding="causal"), "padding"),
        (dict(strides=2, dilation_rate=2), "dilation_rate"),
        (dict(kernel_size=(2, 2, 2)), "kernel_size"),
        (dict(kernel_size=0), "kernel_size"),
        (dict(filters=0), "filters"),
        (dict(data_format="channels_middle"), "data_format"),
        (dict(strides=(1, 1.5)), "strides"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    kwargs = {"filters": 2, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        birnn.layers.ConvLSTM2D(**kwargs)


def test_bad_inputs_raise():
    layer = birnn.layers.ConvLSTM2D(2, 3, name="clstm")
    with pytest.raises(ValueError, match="clstm"):
        layer(torch.randn(2, 3, 5, 2))  # rank 4, not 5
    layer(torch.randn(2, 3, 5, 5, 2))
    with pytest.raises(ValueError, match="2 channels"):
        layer(torch.randn(2, 3, 5, 5, 4))
    with pytest.raises(ValueError, match="too small"):
        layer(torch.randn(2, 3, 2, 5, 2))
    with pytest.raises(ValueError, match=r"initial_state\[0\]"):
        layer(torch.randn(2, 3, 5, 5, 2), initial_state=[torch.zeros(2, 2), torch.zeros(2, 2)])
    stateful = birnn.layers.ConvLSTM2D(2, 3, stateful=True)
    with pytest.raises(ValueError, match="batch size"):
        stateful.build((None, 3, 5, 5, 2))


def test_cell_step_matches_the_layer_on_one_step():
    layer = birnn.layers.ConvLSTM2D(3, 3, padding="same", return_state=True)
    x = torch.randn(2, 1, 4, 4, 2)
    output, h, c = layer(x)
    step_output, (step_h, step_c) = layer.cell(x[:, 0], layer._zero_states(x))
    assert_close([step_output, step_h, step_c], [output, h, c], atol=1e-6)


def test_bidirectional_concat_joins_the_last_axis_like_keras():
    """With channels_first, Keras's concat merge joins the last spatial axis; so does birnn."""
    layer = birnn.layers.Bidirectional(
        birnn.layers.ConvLSTM2D(3, 3, data_format="channels_first", return_sequences=True)
    )
    x = torch.randn(2, 4, 2, 5, 6)
    assert layer(x).shape == (2, 4, 3, 3, 8)
    assert layer.compute_output_shape(tuple(x.shape)) == (2, 4, 3, 3, 8)


def _layout_twins(**kwargs):
    """A channels-last ConvLSTM2D and a channels-first one with the same weights."""
    last = birnn.layers.ConvLSTM2D(3, 3, return_sequences=True, return_state=True, **kwargs)
    first = birnn.layers.ConvLSTM2D(
        3, 3, return_sequences=True, return_state=True, data_format="channels_first", **kwargs
    )
    x = torch.randn(2, 4, 5, 6, 2, dtype=torch.float64)
    last(x)
    first(x.permute(0, 1, 4, 2, 3))
    first.set_weights(last.get_weights())
    return last, first, x


def _first_and_second_order(layer, x, channels_last):
    """Gradients of a loss on every result, and of the squared input gradient's norm."""
    x = x.clone().requires_grad_(True)
    inputs = x if channels_last else x.permute(0, 1, 4, 2, 3)
    outputs, h, c = layer(inputs)
    if not channels_last:  # back to channels-last, to compare with the twin
        outputs, h, c = (
            outputs.permute(0, 1, 3, 4, 2),
            h.permute(0, 2, 3, 1),
            c.permute(0, 2, 3, 1),
        )
    g = torch.Generator().manual_seed(1)
    loss = sum(
        (t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for t in (outputs, h, c)
    )
    (grad_x,) = torch.autograd.grad(loss, x, create_graph=True)
    second = torch.autograd.grad(grad_x.square().sum(), list(layer.parameters()))
    return [grad_x.detach(), *second]


@pytest.mark.parametrize("kwargs", [{"padding": "same"}, {"strides": 2}, {"dilation_rate": 2}])
def test_channels_last_gradients_match_channels_first_to_second_order(kwargs):
    """Channels-last results hand contiguous gradients back into the scan; the gradients, and
    gradients of gradients, are those of the channels-first layout."""
    last, first, x = _layout_twins(**kwargs)
    last = last.double()
    first = first.double()
    expected = _first_and_second_order(first, x, channels_last=False)
    actual = _first_and_second_order(last, x, channels_last=True)
    assert_close(actual, expected, atol=1e-10)


def test_gradients_under_torch_compile_match_eager():
    layer = birnn.layers.ConvLSTM2D(2, 3, padding="same", return_sequences=True)
    x = torch.randn(2, 3, 4, 5, 2)
    layer(x)

    def grads(fn):
        layer.zero_grad(set_to_none=True)
        fn(x).square().sum().backward()
        return [p.grad.clone() for p in layer.parameters()]

    expected = grads(layer)
    actual = grads(torch.compile(layer, backend="aot_eager"))
    assert_close(actual, expected, atol=1e-5)
