"""F1Score and FBetaScore against Keras 3.15, accumulated over several batches."""

import keras
import numpy as np
import pytest

import birnn
from tests.keras_oracle import assert_close

RNG = np.random.RandomState(0)
BATCHES = [
    (RNG.randint(0, 2, size=(5, 4)), RNG.rand(5, 4).astype("float32"), RNG.rand(5))
    for _ in range(3)
]
# A class that is never true and never predicted above 0.5 (zero denominators).
BATCHES.append(
    (np.array([[1, 0, 1, 0], [0, 1, 0, 0]]), np.array([[0.9, 0.1, 0.6, 0.2]] * 2), None)
)
ONE_HOT = [
    (np.eye(3)[RNG.randint(0, 3, size=6)], RNG.rand(6, 3).astype("float32"), None)
    for _ in range(3)
]


def _run(metric, batches, weighted):
    results = []
    for y_true, y_pred, weights in batches:
        metric.update_state(y_true, y_pred, sample_weight=weights if weighted else None)
        results.append(np.asarray(keras.ops.convert_to_numpy(metric.result())))
    return results


@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
@pytest.mark.parametrize("threshold", [None, 0.5, 0.3])
@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
def test_fbeta_parity_over_batches(average, threshold, beta, weighted):
    kwargs = {"average": average, "threshold": threshold, "beta": beta}
    ours, theirs = birnn.metrics.FBetaScore(**kwargs), keras.metrics.FBetaScore(**kwargs)
    assert_close(_run(ours, BATCHES, weighted), _run(theirs, BATCHES, weighted), 1e-6)
    assert ours.get_config() == theirs.get_config()
    ours.reset_state()
    theirs.reset_state()
    assert_close(_run(ours, BATCHES[:1], weighted), _run(theirs, BATCHES[:1], weighted), 1e-6)
    ours, theirs = birnn.metrics.FBetaScore(**kwargs), keras.metrics.FBetaScore(**kwargs)
    assert_close(_run(ours, ONE_HOT, weighted), _run(theirs, ONE_HOT, weighted), 1e-6)


@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
@pytest.mark.parametrize("threshold", [None, 0.5])
def test_f1_parity_and_config(average, threshold):
    kwargs = {"average": average, "threshold": threshold}
    ours, theirs = birnn.metrics.F1Score(**kwargs), keras.metrics.F1Score(**kwargs)
    assert_close(_run(ours, BATCHES, True), _run(theirs, BATCHES, True), 1e-6)
    assert ours.get_config() == theirs.get_config()
    clone = birnn.metrics.deserialize(keras.metrics.serialize(theirs))
    assert type(clone) is birnn.metrics.F1Score and clone.get_config() == ours.get_config()


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="average"):
        birnn.metrics.F1Score(average="samples")
    with pytest.raises(ValueError, match="beta"):
        birnn.metrics.FBetaScore(beta=0)
    with pytest.raises(ValueError, match="threshold"):
        birnn.metrics.F1Score(threshold=1.5)
    with pytest.raises(ValueError, match="2D inputs"):
        birnn.metrics.F1Score().update_state(np.ones(3), np.ones(3))


def test_compiled_with_f1_loads_both_ways_and_reports(tmp_path):
    def build(lib, metrics):
        inputs = lib.Input((6, 3))
        x = lib.layers.Bidirectional(lib.layers.LSTM(4))(inputs)
        model = lib.Model(inputs, lib.layers.Dense(3, activation="softmax")(x))
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=metrics)
        return model

    x = RNG.randn(8, 6, 3).astype("float32")
    y = np.eye(3)[RNG.randint(0, 3, size=8)].astype("float32")
    theirs = build(keras, [keras.metrics.F1Score(average="macro"), keras.metrics.FBetaScore()])
    theirs.save(tmp_path / "k.keras")
    ours = birnn.models.load_model(tmp_path / "k.keras")
    logs = ours.evaluate(x, y, return_dict=True, verbose=0)
    k_logs = keras.models.load_model(tmp_path / "k.keras").evaluate(
        x, y, return_dict=True, verbose=0
    )
    assert_close(logs["f1_score"], k_logs["f1_score"], 1e-5)
    assert_close(logs["fbeta_score"], k_logs["fbeta_score"], 1e-5)

    ours = build(birnn, [birnn.metrics.F1Score(average="weighted", threshold=0.4)])
    ours.save(tmp_path / "o.keras")
    back = keras.models.load_model(tmp_path / "o.keras")
    back_logs = back.evaluate(x, y, return_dict=True, verbose=0)
    assert_close(
        back_logs["f1_score"], ours.evaluate(x, y, return_dict=True, verbose=0)["f1_score"], 1e-5
    )
