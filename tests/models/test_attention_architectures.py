"""Attention models built, trained and saved the way Keras users write them.

Each architecture is built by one function for both libraries (`lib` is `keras`
or `birnn`) and checked for: one training step from the same weights giving Keras's loss
and Keras's new weights; predictions equal to Keras's with the same weights; a `.keras` file
written by birnn that Keras loads with identical predictions (and the same weights
file layout); and a Keras-written file that birnn loads with identical predictions
and trains from.
"""

import io
import zipfile

import h5py
import numpy as np
import pytest

import birnn
from tests.keras_oracle import assert_close, copy_weights, keras

RNG = np.random.RandomState(0)
TOKENS = RNG.randint(1, 30, size=(6, 9))
for row, length in enumerate([9, 7, 5, 3, 1, 6]):
    TOKENS[row, length:] = 0  # right padding, mask_zero masks it
LABELS = RNG.randint(0, 3, size=(6,))


def mha_classifier(lib):
    """Embedding(mask_zero) -> Bidirectional(LSTM) -> MultiHeadAttention -> pooling -> Dense."""
    L = lib.layers
    tokens = lib.Input(shape=(None,), dtype="int32")
    x = L.Embedding(30, 8, mask_zero=True)(tokens)
    x = L.Bidirectional(L.LSTM(6, return_sequences=True))(x)
    x = L.MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.0)(x, x)
    x = L.GlobalAveragePooling1D()(x)
    outputs = L.Dense(3, activation="softmax")(x)
    model = lib.Model(tokens, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def bahdanau_classifier(lib):
    """A BiGRU encoder whose steps query it through AdditiveAttention (Bahdanau scores)."""
    L = lib.layers
    tokens = lib.Input(shape=(None,), dtype="int32")
    x = L.Embedding(30, 8, mask_zero=True)(tokens)
    sequence = L.Bidirectional(L.GRU(5, return_sequences=True))(x)
    query = L.Dense(10, activation="tanh")(sequence)
    context = L.AdditiveAttention()([query, sequence])
    x = L.Concatenate()([context, sequence])
    x = L.GlobalAveragePooling1D()(x)
    outputs = L.Dense(3, activation="softmax")(x)
    model = lib.Model(tokens, outputs)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    return model


def luong_tagger(lib):
    """Masking -> BiLSTM -> dot-product Attention over itself (scaled) -> per-step Dense."""
    L = lib.layers
    frames = lib.Input(shape=(None, 4))
    x = L.Masking()(frames)
    x = L.Bidirectional(L.LSTM(5, return_sequences=True))(x)
    x = L.Attention(use_scale=True)([x, x])
    outputs = L.Dense(3, activation="softmax")(x)
    model = lib.Model(frames, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


FRAMES = RNG.randn(6, 7, 4).astype("float32")
FRAMES[0, 5:] = 0.0  # padded steps, masked by Masking
FRAMES[3, 2:] = 0.0
STEP_LABELS = RNG.randint(0, 3, size=(6, 7))
ARCHITECTURES = {
    "mha_classifier": (mha_classifier, TOKENS, LABELS),
    "bahdanau_classifier": (bahdanau_classifier, TOKENS, LABELS),
    "luong_tagger": (luong_tagger, FRAMES, STEP_LABELS),
}


def _layout(path):
    """{dataset path: shape} of the weights inside a `.keras` file (optimizer left out)."""
    layout = {}
    member = io.BytesIO(zipfile.ZipFile(path).read("model.weights.h5"))
    with h5py.File(member, "r") as f:
        f.visititems(
            lambda name, obj: (
                layout.__setitem__(name, getattr(obj, "shape", None))
                if not name.startswith("optimizer")
                else None
            )
        )
    return layout


def _first(loss):
    return float(loss[0] if isinstance(loss, (list, tuple)) else loss)


def _predict(model, x):
    return model.predict(x, verbose=0)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_architecture(name, tmp_path):
    builder, x, y = ARCHITECTURES[name]
    ours, theirs = builder(birnn), builder(keras)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.weights]

    # Same weights, same predictions (padded steps and all).
    copy_weights(theirs, ours)
    assert_close(_predict(ours, x), _predict(theirs, x), 1e-5, "predictions")

    # One training step from the same weights: the same loss and the same new weights.
    k_loss = theirs.train_on_batch(x, y)
    o_loss = ours.train_on_batch(x, y)
    assert np.isfinite(_first(o_loss))
    assert abs(_first(o_loss) - _first(k_loss)) < 1e-5
    assert_close(ours.get_weights(), [w.numpy() for w in theirs.weights], 1e-4, "trained weights")

    # birnn's file loads in Keras with the same predictions and the same weights layout.
    ours.save(tmp_path / "birnn.keras")
    loaded = keras.models.load_model(tmp_path / "birnn.keras")
    assert_close(_predict(loaded, x), _predict(ours, x), 1e-5, "Keras loading birnn's file")

    # Keras's file loads in birnn with the same predictions, and trains on.
    theirs.save(tmp_path / "keras.keras")
    assert _layout(tmp_path / "birnn.keras") == _layout(tmp_path / "keras.keras")
    back = birnn.models.load_model(tmp_path / "keras.keras")
    assert_close(_predict(back, x), _predict(theirs, x), 1e-5, "birnn loading Keras's file")
    assert np.isfinite(_first(back.train_on_batch(x, y)))
