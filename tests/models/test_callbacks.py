"""Callbacks and the progress output."""

import csv
import io
import sys

import numpy as np
import pytest
import torch

from birnn import Input, Sequential, callbacks, optimizers
from birnn.layers import Dense
from birnn.models.progbar import Progbar


def _model(lr=0.05):
    model = Sequential([Input((3,)), Dense(1)])
    model.compile(optimizers.SGD(lr), "mse", metrics=["mae"])
    return model


def _xy(n=16):
    x = np.random.rand(n, 3).astype("float32")
    return x, x @ np.array([[1.0], [-2.0], [0.5]], dtype="float32")


def test_history_and_hook_order_with_lambda_callback():
    events = []
    cb = callbacks.LambdaCallback(
        on_train_begin=lambda logs: events.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: events.append(f"epoch_begin{epoch}"),
        on_train_batch_end=lambda batch, logs: events.append(f"batch{batch}:{logs['loss'] > 0}"),
        on_epoch_end=lambda epoch, logs: events.append(f"epoch_end{epoch}:{sorted(logs)}"),
        on_train_end=lambda logs: events.append("train_end"),
    )
    x, y = _xy(8)
    history = _model().fit(
        x, y, batch_size=4, epochs=2, verbose=0, callbacks=[cb], validation_data=(x, y)
    )
    assert events[:4] == ["train_begin", "epoch_begin0", "batch0:True", "batch1:True"]
    assert events[4] == "epoch_end0:['loss', 'mae', 'val_loss', 'val_mae']"
    assert events[-1] == "train_end"
    assert history.epoch == [0, 1] and len(history.history["val_mae"]) == 2
    with pytest.raises(ValueError, match="unknown hook"):
        callbacks.LambdaCallback(on_batch_middle=print)


def test_initial_epoch_and_stop_training():
    class StopAfterOne(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    x, y = _xy()
    history = _model().fit(x, y, epochs=5, initial_epoch=2, verbose=0, callbacks=[StopAfterOne()])
    assert history.epoch == [2]


def test_early_stopping_restores_the_best_weights():
    x, y = _xy()
    model = _model(lr=0.05)
    seen = {}

    class Track(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen[epoch] = (logs["loss"], [w.copy() for w in self.model.get_weights()])

    class Diverge(callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                self.model.optimizer.learning_rate = 5.0  # training blows up from here

    stopper = callbacks.EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)
    history = model.fit(
        x, y, epochs=20, verbose=0, batch_size=16, callbacks=[Diverge(), Track(), stopper]
    )
    assert len(history.epoch) < 20 and stopper.stopped_epoch > 0
    best = min(seen, key=lambda e: seen[e][0])
    for w, expected in zip(model.get_weights(), seen[best][1]):
        np.testing.assert_allclose(w, expected)


def test_early_stopping_mode_and_baseline():
    assert callbacks.EarlyStopping(monitor="val_accuracy").monitor_op is np.greater
    assert callbacks.EarlyStopping(monitor="val_loss").monitor_op is np.less
    with pytest.raises(ValueError, match="mode"):
        callbacks.EarlyStopping(mode="up")
    x, y = _xy()
    stopper = callbacks.EarlyStopping(monitor="loss", baseline=-1.0, patience=2)
    history = _model(lr=0.0).fit(x, y, epochs=10, verbose=0, shuffle=False, callbacks=[stopper])
    assert history.epoch == [0, 1]  # no improvement after epoch 0, baseline never reached


def test_reduce_lr_on_plateau_and_scheduler():
    x, y = _xy()
    model = _model(lr=0.0)  # no progress: a plateau from the start
    model.optimizer.learning_rate = 0.0
    reducer = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=1.0)
    model.compile(optimizers.SGD(0.4), "mse")
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[reducer])
    assert history.history["learning_rate"][-1] < 0.4
    torch_model = Sequential([Input((3,)), Dense(1)])
    torch_model.compile(torch.optim.SGD(torch_model.parameters(), lr=1.0), "mse")
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    torch_model.fit(x, y, epochs=2, verbose=0, callbacks=[sched])
    assert torch_model.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="factor"):
        callbacks.ReduceLROnPlateau(factor=2.0)


def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    path = tmp_path / "log.csv"
    x, y = _xy()
    _model().fit(x, y, epochs=3, verbose=0, callbacks=[callbacks.CSVLogger(str(path))])
    rows = list(csv.DictReader(path.open()))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"] and set(rows[0]) == {
        "epoch",
        "loss",
        "mae",
    }
    _model().fit(
        x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(str(path), append=True)]
    )
    assert len(list(csv.DictReader(path.open()))) == 4


def test_model_checkpoint_saves_best_models_and_weights(tmp_path):
    x, y = _xy()
    model = _model()
    best = callbacks.ModelCheckpoint(
        str(tmp_path / "best.keras"), monitor="loss", save_best_only=True
    )
    weights = callbacks.ModelCheckpoint(
        str(tmp_path / "w-{epoch:02d}.weights.h5"), save_weights_only=True
    )
    model.fit(x, y, epochs=2, verbose=0, callbacks=[best, weights])
    assert (tmp_path / "best.keras").exists()
    assert (tmp_path / "w-01.weights.h5").exists() and (tmp_path / "w-02.weights.h5").exists()
    from birnn.models import load_model

    restored = load_model(str(tmp_path / "best.keras"))
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )
    with pytest.raises(ValueError, match=".keras"):
        callbacks.ModelCheckpoint(str(tmp_path / "model.txt"))
    callbacks.ModelCheckpoint(str(tmp_path / "model.h5"))  # the legacy format, as in Keras


def test_terminate_on_nan():
    x, y = _xy()
    y[0] = np.nan
    history = _model().fit(
        x, y, epochs=3, batch_size=4, verbose=0, callbacks=[callbacks.TerminateOnNaN()]
    )
    assert len(history.epoch) == 1


def test_verbose_2_prints_one_line_per_epoch(capsys):
    x, y = _xy()
    _model().fit(x, y, epochs=2, verbose=2, validation_split=0.25)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 1/2" and out[2] == "Epoch 2/2" and len(out) == 4
    assert out[1].startswith("1/1 - ") and "s/step" in out[1]
    assert " - loss: " in out[1] and " - val_mae: " in out[1]


def test_verbose_1_off_a_terminal_prints_the_final_bar_only(capsys):
    x, y = _xy(64)
    _model().fit(x, y, epochs=1, batch_size=8, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("8/8 ━") and "loss:" in lines[0]


def test_live_progress_bar_redraws_with_eta_on_a_terminal(monkeypatch):
    stream = io.StringIO()
    stream.isatty = lambda: True
    bar = Progbar(4, verbose=1, interval=0.0, stream=stream)
    bar.update(1, {"loss": 0.5})
    bar.update(4, {"loss": 0.25}, finalize=True)
    text = stream.getvalue()
    assert text.startswith("\r1/4 ") and "\r4/4 " in text and text.endswith("\n")
    assert "loss: 0.5000" in text and "loss: 0.2500" in text
    monkeypatch.setattr(sys, "stdout", stream)


def test_evaluate_and_predict_show_progress(capsys):
    x, y = _xy()
    model = _model()
    model.evaluate(x, y, verbose=1)
    model.predict(x, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("1/1 ") and "mae:" in out[0]
    assert out[1].startswith("1/1 - ")


def test_batch_logs_are_lazy_and_cost_nothing_when_unread():
    computed = []
    logs = callbacks.LazyLogs(lambda: computed.append(1) or {"loss": 1.0})
    assert not computed
    assert dict(logs) == {"loss": 1.0} and logs.copy() == {"loss": 1.0} and computed == [1]


def test_on_batch_begin_and_end_stand_for_the_training_batch_hooks():
    class Counter(callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.begins, self.ends = [], []

        def on_batch_begin(self, batch, logs=None):
            self.begins.append(batch)

        def on_batch_end(self, batch, logs=None):
            self.ends.append(logs["loss"])

    counter = Counter()
    seen = []
    x, y = _xy(8)
    _model().fit(
        x,
        y,
        batch_size=4,
        epochs=1,
        verbose=0,
        callbacks=[counter, callbacks.LambdaCallback(on_batch_end=lambda b, logs: seen.append(b))],
    )
    assert counter.begins == [0, 1] and len(counter.ends) == 2 and seen == [0, 1]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_fit_on_a_terminal_redraws_a_live_bar_with_eta_and_running_metrics(monkeypatch):
    stream = _Terminal()
    monkeypatch.setattr(sys, "stdout", stream)
    monkeypatch.setattr("birnn.models.progbar.Progbar.__init__.__defaults__", (20, 1, 0.0, None))
    x, y = _xy(32)
    _model().fit(x, y, batch_size=8, epochs=2, verbose=1)
    text = stream.getvalue()
    assert text.startswith("Epoch 1/2\n") and "Epoch 2/2\n" in text
    redraws = text.split("\r")[1:]
    assert len(redraws) == 10  # per epoch: a redraw per batch, then the finished bar
    assert redraws[0].startswith("1/4 ") and "/step - loss: " in redraws[0]
    assert " - mae: " in redraws[0] and redraws[3].startswith("4/4 ")
    assert text.count("\n") == 4  # two "Epoch" lines and one finished bar per epoch


def test_verbose_0_prints_nothing(capsys):
    x, y = _xy()
    _model().fit(x, y, epochs=2, verbose=0, validation_split=0.25)
    _model().evaluate(x, y, verbose=0)
    _model().predict(x, verbose=0)
    assert capsys.readouterr().out == ""
