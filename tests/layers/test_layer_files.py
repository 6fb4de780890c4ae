"""Every layer of this package inside one model whose `.keras` file crosses both ways."""

import numpy as np
import pytest

import birnn
from tests.keras_oracle import assert_close, keras


def all_layers_model(lib):
    """A functional model through every new layer (weights where the layer has them)."""
    L = lib.layers
    inputs = lib.Input(shape=(12, 6))
    x = L.Conv1D(8, 3, padding="causal", dilation_rate=2)(inputs)
    x = L.LayerNormalization()(x)
    x = L.PReLU(alpha_initializer="random_uniform", shared_axes=[1])(x)
    x = L.ZeroPadding1D((1, 3))(x)
    x = L.Cropping1D((2, 0))(x)
    x = L.MaxPooling1D(2)(x)
    x = L.UpSampling1D(2)(x)
    x = L.AveragePooling1D(2, padding="same")(x)
    x = L.SpatialDropout1D(0.3)(x)
    x = L.GaussianNoise(0.1)(x)
    a = L.LeakyReLU(0.2)(x)
    b = L.ELU(0.5)(x)
    c = L.ReLU(max_value=1.0)(x)
    merged = L.Subtract()([L.Maximum()([a, b]), L.Minimum()([b, c])])
    scores = L.Softmax()(L.Dot(axes=(2, 2))([merged, a]))
    image = L.Reshape((7, 7, 1))(scores)
    image = L.Conv2D(4, 3, padding="same", strides=2)(image)
    image = L.BatchNormalization()(image)
    image = L.AveragePooling2D(2, padding="same")(image)
    image = L.MaxPooling2D(1)(image)
    pooled = L.Add()([L.GlobalMaxPooling2D()(image), L.GlobalAveragePooling2D()(image)])
    seq = L.Permute((2, 1))(L.RepeatVector(5)(pooled))
    outputs = L.Bidirectional(L.LSTM(3))(seq)
    model = lib.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    return model


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_all_new_layers_cross_keras_files_both_ways(tmp_path):
    x = np.random.RandomState(0).randn(4, 12, 6).astype("float32")
    y = np.random.RandomState(1).randn(4, 6).astype("float32")
    theirs = all_layers_model(keras)
    theirs.fit(x, y, epochs=1, batch_size=2, verbose=0)
    theirs.save(tmp_path / "keras.keras")
    ours = birnn.models.load_model(tmp_path / "keras.keras")
    assert_close(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), 1e-5, "keras->birnn")

    model = all_layers_model(birnn)
    model.fit(x, y, epochs=1, batch_size=2, verbose=0)
    model.save(tmp_path / "birnn.keras")
    loaded = keras.models.load_model(tmp_path / "birnn.keras")
    assert_close(loaded.predict(x, verbose=0), model.predict(x, verbose=0), 1e-5, "birnn->keras")
    names = [type(layer).__name__ for layer in model.layers]
    assert names == [type(layer).__name__ for layer in loaded.layers]
    assert [w.shape for w in model.get_weights()] == [w.shape for w in loaded.get_weights()]
