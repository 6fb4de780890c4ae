"""Shared check of an optimizer's state through `.keras` files, both ways."""

import pytest

from tests.keras_oracle import assert_close, keras, to_numpy


def _within_1e6(actual, expected, what):
    assert_close(actual, expected, atol=1e-6, what=what)


def assert_file_round_trip(model, keras_model, x, y, tmp_path, slots_close=_within_1e6):
    """`model` was loaded from the file `keras_model` was saved to.

    Checks that the loaded slots equal Keras's, that two more steps match
    Keras's, and that Keras loads birnn's file with two more iterations and
    the same slots. `slots_close(actual, expected, what)` compares two lists
    of slots. Returns the Keras model loaded from birnn's file.
    """
    start = int(model.optimizer.iterations)
    slots = {}
    model.optimizer.save_own_variables(slots)
    slots_close(
        list(slots.values()),
        [to_numpy(v) for v in keras_model.optimizer.variables],
        what="slots from the Keras file",
    )
    for _ in range(2):
        expected = keras_model.train_on_batch(x, y)
        assert model.train_on_batch(x, y) == pytest.approx(expected, abs=1e-5)
    assert_close(model.get_weights(), keras_model.get_weights(), atol=1e-5, what="continued")

    model.save(tmp_path / "b.keras")
    back = keras.models.load_model(tmp_path / "b.keras")
    assert int(back.optimizer.iterations) == start + 2
    slots = {}
    model.optimizer.save_own_variables(slots)
    slots_close(
        [to_numpy(v) for v in back.optimizer.variables],
        list(slots.values()),
        what="slots in birnn's file",
    )
    return back
