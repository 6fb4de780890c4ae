"""Missing, truncated, foreign and mismatched files raise clear errors and change nothing."""

import errno
import io
import json
import os
import signal
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

import birnn
from birnn.saving import archive, weights_file
from birnn.saving.errors import (
    ConfigError,
    FileFormatError,
    SavingError,
    UnknownObjectError,
    WeightsMismatchError,
)
from tests.keras_oracle import keras


def _model(units=4, name=None):
    return birnn.Sequential(
        [
            birnn.Input((5, 3)),
            birnn.layers.Bidirectional(birnn.layers.LSTM(units)),
            birnn.layers.Dense(2),
        ],
        name=name,
    )


@pytest.fixture
def saved(tmp_path):
    """A good `.keras` file and a good `.weights.h5` file of `_model()`."""
    model = _model()
    model.save(tmp_path / "good.keras")
    model.save_weights(tmp_path / "good.weights.h5")
    return model, tmp_path / "good.keras", tmp_path / "good.weights.h5"


def _rewrite_archive(source, target, config=None, weights=None, drop=()):
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for name in zin.namelist():
            if name in drop:
                continue
            data = zin.read(name)
            if name == "config.json" and config is not None:
                data = json.dumps(config).encode()
            if name == "model.weights.h5" and weights is not None:
                data = weights
            zout.writestr(name, data)


def _snapshot(model):
    return [w.copy() for w in model.get_weights()]


def _assert_unchanged(model, before):
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


# ---------------------------------------------------------------------------- missing
def test_missing_files_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.keras"):
        birnn.models.load_model(tmp_path / "nowhere.keras")
    with pytest.raises(FileNotFoundError, match="nowhere.weights.h5"):
        _model().load_weights(tmp_path / "nowhere.weights.h5")


# ---------------------------------------------------------------------------- truncated
@pytest.mark.parametrize("keep", [0.5, 0.95, 0.0])
def test_truncated_keras_file(saved, tmp_path, keep):
    _, good, _ = saved
    data = good.read_bytes()
    bad = tmp_path / "cut.keras"
    bad.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(FileFormatError, match="cut.keras") as info:
        birnn.models.load_model(bad)
    assert isinstance(info.value, OSError) and isinstance(info.value, ValueError)


def test_truncated_weights_file_leaves_model_unchanged(saved, tmp_path):
    _, _, good = saved
    data = good.read_bytes()
    bad = tmp_path / "cut.weights.h5"
    bad.write_bytes(data[: len(data) // 2])
    model = _model()
    before = _snapshot(model)
    with pytest.raises(FileFormatError, match="cut.weights.h5"):
        model.load_weights(bad)
    _assert_unchanged(model, before)


# ---------------------------------------------------------------------------- foreign
def test_text_file_named_keras(tmp_path):
    bad = tmp_path / "notes.keras"
    bad.write_text("not a model")
    with pytest.raises(FileFormatError, match="not a readable .keras file"):
        birnn.models.load_model(bad)


def test_zip_without_config(saved, tmp_path):
    _, good, _ = saved
    _rewrite_archive(good, tmp_path / "noconfig.keras", drop=("config.json",))
    with pytest.raises(FileFormatError, match="no 'config.json'"):
        birnn.models.load_model(tmp_path / "noconfig.keras")


def test_zip_without_weights(saved, tmp_path):
    _, good, _ = saved
    _rewrite_archive(good, tmp_path / "noweights.keras", drop=("model.weights.h5",))
    with pytest.raises(FileFormatError, match="model.weights.h5"):
        birnn.models.load_model(tmp_path / "noweights.keras")


def test_config_that_is_not_json(saved, tmp_path):
    _, good, _ = saved
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(tmp_path / "json.keras", "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, b"{not json" if name == "config.json" else zin.read(name))
    with pytest.raises(FileFormatError, match="not valid JSON"):
        birnn.models.load_model(tmp_path / "json.keras")


def test_foreign_weights_files(tmp_path):
    model = _model()
    before = _snapshot(model)
    not_h5 = tmp_path / "png.weights.h5"
    not_h5.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(FileFormatError, match="png.weights.h5"):
        model.load_weights(not_h5)
    other_h5 = tmp_path / "other.weights.h5"
    with h5py.File(other_h5, "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(FileFormatError, match="no Keras 3 weights"):
        model.load_weights(other_h5)
    legacy = tmp_path / "legacy.weights.h5"
    with h5py.File(legacy, "w") as f:
        f.attrs["layer_names"] = [b"dense"]
        f.create_group("dense")
    with pytest.raises(WeightsMismatchError, match="holds weights for 0 layers"):
        model.load_weights(legacy)  # a legacy file is read, and must fit
    _assert_unchanged(model, before)


def test_load_model_on_other_formats(saved, tmp_path):
    _, _, weights = saved
    with pytest.raises(SavingError, match="load_weights"):
        birnn.models.load_model(weights)
    legacy = tmp_path / "model.h5"
    with h5py.File(legacy, "w") as f:
        f.attrs["model_config"] = "{}"
    with pytest.raises(FileFormatError, match="legacy"):
        birnn.models.load_model(legacy)


def test_npz_weights_are_reported(saved, tmp_path):
    _, good, _ = saved
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(tmp_path / "npz.keras", "w") as zout:
        for name in zin.namelist():
            target = "model.weights.npz" if name == "model.weights.h5" else name
            zout.writestr(target, zin.read(name))
    with pytest.raises(FileFormatError, match="npz"):
        birnn.models.load_model(tmp_path / "npz.keras")


# ---------------------------------------------------------------------------- unknown class
def test_unknown_layer_class(saved, tmp_path):
    _, good, _ = saved
    config = json.loads(zipfile.ZipFile(good).read("config.json"))
    dense = config["config"]["layers"][-1]
    dense.update(module="my_pkg.layers", class_name="FancyDense", registered_name="my>FancyDense")
    _rewrite_archive(good, tmp_path / "fancy.keras", config=config)
    with pytest.raises(UnknownObjectError, match="FancyDense.*my_pkg.layers"):
        birnn.models.load_model(tmp_path / "fancy.keras")


@pytest.mark.filterwarnings("ignore")  # Keras's own warnings while it builds
def test_keras_layer_birnn_does_not_have(tmp_path):
    from tests.keras_oracle import keras

    model = keras.Sequential(
        [
            keras.Input((5, 3)),
            keras.layers.Conv1DTranspose(2, 3),
            keras.layers.Bidirectional(keras.layers.LSTM(2)),
        ]
    )
    model.save(tmp_path / "conv.keras")
    with pytest.raises(
        UnknownObjectError, match=r"conv.keras: .*'Conv1DTranspose' \(module 'keras.layers'\)"
    ):
        birnn.models.load_model(tmp_path / "conv.keras")


def test_config_a_layer_rejects(saved, tmp_path):
    _, good, _ = saved
    config = json.loads(zipfile.ZipFile(good).read("config.json"))
    config["config"]["layers"][-1]["config"]["dtype"]["config"]["name"] = "mixed_float32"
    _rewrite_archive(good, tmp_path / "mixed.keras", config=config)
    with pytest.raises(ConfigError, match=r"mixed.keras: .*Dense 'dense.*mixed_float32"):
        birnn.models.load_model(tmp_path / "mixed.keras")


def test_custom_objects_find_unregistered_layers(tmp_path):
    class FancyDense(birnn.layers.Dense):
        pass

    model = birnn.Sequential([birnn.Input((3,)), FancyDense(2)])
    model.save(tmp_path / "fancy.keras")
    with pytest.raises(UnknownObjectError, match="FancyDense"):
        birnn.models.load_model(tmp_path / "fancy.keras")
    restored = birnn.models.load_model(
        tmp_path / "fancy.keras", custom_objects={"FancyDense": FancyDense}
    )
    assert type(restored.layers[-1]) is FancyDense
    np.testing.assert_array_equal(restored.get_weights()[0], model.get_weights()[0])


def test_registered_custom_layer_round_trips(tmp_path):
    @birnn.saving.register_serializable(package="tests_saving")
    class Scale(birnn.layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    model = birnn.Sequential([birnn.Input((3,)), birnn.layers.Dense(2), Scale(3.0)])
    model.save(tmp_path / "custom.keras")
    config = json.loads(zipfile.ZipFile(tmp_path / "custom.keras").read("config.json"))
    assert config["config"]["layers"][-1]["registered_name"] == "tests_saving>Scale"
    restored = birnn.models.load_model(tmp_path / "custom.keras")
    assert type(restored.layers[-1]) is Scale and restored.layers[-1].factor == 3.0
    x = np.ones((2, 3), "float32")
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0))


# ---------------------------------------------------------------------------- wrong shapes
def test_weights_of_the_wrong_shape_leave_model_unchanged(saved):
    _, good_keras, good_weights = saved
    model = _model(units=3)
    before = _snapshot(model)
    for path in (good_weights, good_keras):
        with pytest.raises(WeightsMismatchError, match="forward_lstm|lstm_cell") as info:
            model.load_weights(path)
        message = str(info.value)
        assert "(3, 12)" in message and "(3, 16)" in message and "nothing was loaded" in message
        _assert_unchanged(model, before)


def test_weights_missing_for_a_layer(saved, tmp_path):
    _, _, good = saved
    data = io.BytesIO(good.read_bytes())
    with h5py.File(data, "a") as f:
        del f["layers/dense/vars/1"]
    (tmp_path / "partial.weights.h5").write_bytes(data.getvalue())
    model = _model()
    before = _snapshot(model)
    with pytest.raises(WeightsMismatchError, match="layer 'dense.*expects 2 weights"):
        model.load_weights(tmp_path / "partial.weights.h5")
    _assert_unchanged(model, before)


@pytest.mark.parametrize("dense", [{"units": 3}, {"units": 2, "use_bias": False}])
def test_skip_mismatch_loads_the_layers_that_fit_and_warns_about_the_others(saved, dense):
    """Keras's meaning: layers whose weights differ in count or shape are skipped."""
    source, good_keras, good_weights = saved
    for path in (good_weights, good_keras):
        model = birnn.Sequential(
            [
                birnn.Input((5, 3)),
                birnn.layers.Bidirectional(birnn.layers.LSTM(4)),
                birnn.layers.Dense(**dense, name="head"),
            ]
        )
        head_before = [np.copy(w) for w in model.layers[1].get_weights()]
        with pytest.warns(UserWarning, match=r"skip_mismatch=True.*\n.*layer 'head'"):
            model.load_weights(path, skip_mismatch=True)
        for ours, theirs in zip(model.layers[0].get_weights(), source.layers[0].get_weights()):
            np.testing.assert_array_equal(ours, theirs)
        _assert_unchanged(model.layers[1], head_before)
        # Without it, nothing is loaded.
        before = _snapshot(model)
        with pytest.raises(WeightsMismatchError, match="nothing was loaded"):
            model.load_weights(path)
        _assert_unchanged(model, before)


def test_skip_mismatch_agrees_with_keras(saved):
    """The same file, the same mismatched model: Keras and birnn load the same weights."""
    _, _, good = saved

    def build(lib):
        return lib.Sequential(
            [
                lib.Input((5, 3)),
                lib.layers.Bidirectional(lib.layers.LSTM(4)),
                lib.layers.Dense(3),
                lib.layers.Dense(2),
            ]
        )

    keras_model, model = build(keras), build(birnn)
    model.set_weights([np.asarray(w) for w in keras_model.get_weights()])
    with pytest.warns(UserWarning):
        keras_model.load_weights(good, skip_mismatch=True)
    with pytest.warns(UserWarning, match="dense.*\n.*dense"):
        model.load_weights(good, skip_mismatch=True)
    for ours, theirs in zip(model.get_weights(), keras_model.get_weights()):
        np.testing.assert_array_equal(ours, np.asarray(theirs))


def test_load_weights_rejects_unknown_keyword_arguments(saved):
    model, _, good = saved
    with pytest.raises(ValueError, match="by_name"):
        model.load_weights(good, by_name=True)


def test_load_model_with_misshapen_weights(saved, tmp_path):
    _, good, _ = saved
    other = _model(units=3)
    _rewrite_archive(good, tmp_path / "mixed.keras", weights=weights_file.weights_bytes(other))
    with pytest.raises(WeightsMismatchError, match="mixed.keras"):
        birnn.models.load_model(tmp_path / "mixed.keras")


# ---------------------------------------------------------------------------- interrupted saves
def test_exception_during_save_keeps_old_file(saved, monkeypatch):
    model, good, good_weights = saved
    old_bytes = good.read_bytes()
    original = zipfile.ZipFile.writestr

    def failing_writestr(self, name, data, *args, **kwargs):
        if name == archive.WEIGHTS_FILENAME:
            original(self, name, data[: len(data) // 2], *args, **kwargs)
            raise OSError(28, "No space left on device")
        return original(self, name, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing_writestr)
    with pytest.raises(OSError, match="No space"):
        _model(units=6).save(good)
    monkeypatch.undo()
    assert good.read_bytes() == old_bytes
    assert [n for n in os.listdir(good.parent) if ".tmp-" in n] == []
    birnn.models.load_model(good)

    old_weights = good_weights.read_bytes()
    monkeypatch.setattr(weights_file, "weights_bytes", lambda m: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        model.save_weights(good_weights)
    assert good_weights.read_bytes() == old_weights


_SAVER_PRELUDE = """
import os, sys, time, zipfile
import birnn
from birnn.saving import atomic

def stall():
    print("midway", flush=True)  # the parent kills us now
    time.sleep(120)

model = birnn.Sequential([birnn.Input((5, 3)),
                          birnn.layers.Bidirectional(birnn.layers.LSTM(6)),
                          birnn.layers.Dense(2)])
"""

_KILLED_SAVERS = {
    # Halfway through the weights member of the zip archive.
    "model": """
original = zipfile.ZipFile.writestr
def slow_writestr(self, name, data, *args, **kwargs):
    if name == "model.weights.h5":
        original(self, name, data[: len(data) // 2], *args, **kwargs)
        self.fp.flush()
        stall()
    return original(self, name, data, *args, **kwargs)
zipfile.ZipFile.writestr = slow_writestr
model.save(sys.argv[1])
""",
    # After the first 1 KiB chunk of the weights file.
    "weights": """
atomic._CHUNK = 1024
original_fdopen = os.fdopen
class StallingFile:
    def __init__(self, f):
        self.f, self.written = f, 0
    def write(self, data):
        if self.written:
            self.f.flush()
            stall()
        self.written += self.f.write(data)
        return len(data)
    def __getattr__(self, name):
        return getattr(self.f, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self.f.__exit__(*exc)
os.fdopen = lambda *args, **kwargs: StallingFile(original_fdopen(*args, **kwargs))
model.save_weights(sys.argv[1])
""",
}


@pytest.mark.parametrize("kind", sorted(_KILLED_SAVERS))
def test_save_killed_midway_keeps_old_file(saved, kind):
    """A real SIGKILL while the new file is half written: the old file stays whole."""
    _, good_keras, good_weights = saved
    target = good_keras if kind == "model" else good_weights
    old_bytes = target.read_bytes()
    script = _SAVER_PRELUDE + _KILLED_SAVERS[kind]
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == b"midway", proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # The kill really came mid-write: a partial temporary file is left beside the target...
    leftovers = [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.tmp-")]
    assert len(leftovers) == 1
    partial = leftovers[0].read_bytes()
    assert 0 < len(partial)
    with pytest.raises((FileFormatError, FileNotFoundError)):
        if kind == "model":
            birnn.models.load_model(leftovers[0].rename(target.parent / "partial.keras"))
        else:
            _model().load_weights(leftovers[0].rename(target.parent / "partial.weights.h5"))
    # ...and the target still holds the old file, which loads.
    assert target.read_bytes() == old_bytes
    if kind == "model":
        assert birnn.models.load_model(target).layers[0].forward_layer.units == 4
    else:
        _model().load_weights(target)


# ---------------------------------------------------------------------------- more bad weights
def _rewrite_dataset(source, target, path, data):
    buffer = io.BytesIO(source.read_bytes())
    with h5py.File(buffer, "a") as f:
        del f[path]
        f[path] = data
    target.write_bytes(buffer.getvalue())


def test_non_numeric_weights_leave_model_unchanged(saved, tmp_path):
    """Right shapes, wrong kind of data: refused before any weight is assigned."""
    _, good_keras, good_weights = saved
    bad = tmp_path / "strings.weights.h5"
    # The last weight of the walk, so a loader assigning as it reads would change the others.
    _rewrite_dataset(good_weights, bad, "layers/dense/vars/1", np.array([b"a", b"b"]))
    model = _model()
    before = _snapshot(model)
    with pytest.raises(WeightsMismatchError, match="weight 'bias' cannot be read"):
        model.load_weights(bad)
    _assert_unchanged(model, before)

    _rewrite_archive(good_keras, tmp_path / "strings.keras", weights=bad.read_bytes())
    with pytest.raises(WeightsMismatchError, match="strings.keras"):
        birnn.models.load_model(tmp_path / "strings.keras")


def test_truncated_keras_file_via_load_weights_leaves_model_unchanged(saved, tmp_path):
    _, good, _ = saved
    bad = tmp_path / "cut.keras"
    bad.write_bytes(good.read_bytes()[:-200])
    model = _model()
    before = _snapshot(model)
    with pytest.raises(FileFormatError, match="cut.keras"):
        model.load_weights(bad)
    _assert_unchanged(model, before)


def test_weights_for_an_unbuilt_model(saved):
    _, _, good = saved
    model = birnn.Sequential([birnn.layers.Bidirectional(birnn.layers.LSTM(4))])
    with pytest.raises(WeightsMismatchError, match="never built"):
        model.load_weights(good)
    assert not model.built


def _compiled(optimizer):
    model = _model()
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(0)
    model.fit(
        rng.random((4, 5, 3), dtype=np.float32),
        rng.random((4, 2), dtype=np.float32),
        epochs=1,
        batch_size=2,
        verbose=0,
    )
    return model


def test_another_optimizers_state_is_skipped_with_a_warning(tmp_path):
    _compiled("adam").save_weights(tmp_path / "adam.weights.h5")
    model = _compiled(birnn.optimizers.SGD(0.01, momentum=0.9))
    state_before = [np.copy(v) for v in model.optimizer.variables]
    with pytest.warns(UserWarning, match="Optimizer state was not restored"):
        model.load_weights(tmp_path / "adam.weights.h5")
    for old, new in zip(state_before, model.optimizer.variables):
        np.testing.assert_array_equal(old, new)
    assert len(model.optimizer.variables) == len(state_before)
    # The model's own weights were loaded.
    reference = _model()
    reference.load_weights(tmp_path / "adam.weights.h5")
    for ours, theirs in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


_FULL_DISK_SAVER = """
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
try:
    model.save(sys.argv[1]) if sys.argv[1].endswith(".keras") else model.save_weights(sys.argv[1])
except OSError as e:
    print("failed:", e.errno, flush=True)
    sys.exit(3)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file-size limit")
@pytest.mark.parametrize("kind", ["model", "weights"])
def test_disk_full_midway_keeps_old_file(saved, kind):
    """The OS refuses the write past 2 KiB (as a full disk would): old file kept, no debris."""
    _, good_keras, good_weights = saved
    target = good_keras if kind == "model" else good_weights
    old_bytes = target.read_bytes()
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    result = subprocess.run(
        [sys.executable, "-c", _SAVER_PRELUDE + _FULL_DISK_SAVER, str(target)],
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 3, result.stderr.decode()[-2000:]
    assert f"failed: {errno.EFBIG}".encode() in result.stdout
    assert target.read_bytes() == old_bytes
    assert [p for p in target.parent.iterdir() if ".tmp-" in p.name] == []
