"""The torchrun example's command line and a one-process run (no torchrun needed)."""

import os

import pytest

import birnn
from birnn.examples import distributed as example


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        example.parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--batch-size", "--timeout", "--output", "--epochs"):
        assert option in text
    assert "torchrun --nproc_per_node=N -m birnn.examples.distributed" in text


def test_one_process_run_learns_and_writes_its_files(tmp_path, capsys):
    out = tmp_path / "run"
    result = example.main(
        ["--epochs", "2", "--samples", "128", "--batch-size", "32", "--units", "4",
         "--timesteps", "8", "--output", str(out), "--verbose", "0"]
    )  # fmt: skip
    assert len(result["history"]["loss"]) == 2
    assert set(result["scores"]) == {"loss", "accuracy"}
    assert sorted(os.listdir(out)) == ["epoch-1.keras", "epoch-2.keras", "log.csv", "model.keras"]
    assert "1 process(es) on cpu" in capsys.readouterr().out
    assert birnn.distribution.distribution() is None  # the example's scope has ended


def test_data_label_says_which_half_holds_the_pulse():
    x, y = example.make_data(64, 10, 3, seed=0)
    pulse_at = abs(x[:, :, 0]).argmax(axis=1)
    assert ((pulse_at >= 5) == (y[:, 0] == 1)).all()
