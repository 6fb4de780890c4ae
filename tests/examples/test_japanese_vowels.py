"""The JapaneseVowels demo's pipeline, end to end on a couple of epochs.

The dataset is part of the test set-up (`make test` installs the `aeon` wheel for its data
files), so a missing dataset fails these tests rather than skipping them.
"""

import contextlib
import io
import json
import re
import sys

import numpy as np
import pytest

from birnn.examples import japanese_vowels as demo


@pytest.fixture(scope="module")
def data_dir():
    return demo.find_data_dir()


@pytest.fixture(scope="module")
def quick_run(data_dir, tmp_path_factory):
    """One `--quick` run (2 seeds × 2 models × 2 epochs), shared by the tests that read it."""
    out = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        returned = demo.main(["--quick", "--output", str(out)])
    saved = json.loads((out / "results.json").read_text())
    lines = printed.getvalue().splitlines()
    return {"out": out, "lines": lines, "saved": saved, "returned": returned}


def test_loads_the_official_split(data_dir):
    x_train, y_train, x_test, y_test, classes = demo.load_japanese_vowels(data_dir)
    assert (len(x_train), len(x_test)) == (270, 370)
    assert classes == tuple("123456789")
    assert np.bincount(y_train).tolist() == [30] * 9
    lengths = [len(s) for s in (*x_train, *x_test)]
    assert (min(lengths), max(lengths)) == (7, 29)
    assert {s.shape[1] for s in (*x_train, *x_test)} == {12}


def test_missing_dataset_is_an_error_naming_the_fix(monkeypatch):
    monkeypatch.setattr(demo.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps aeon"):
        demo.find_data_dir()


def test_pad_and_mask_value_collision():
    series = [np.ones((2, 3), np.float32), np.full((1, 3), 2.0, np.float32)]
    padded = demo.pad(series, 3, 0.0)
    assert padded.shape == (2, 3, 3)
    np.testing.assert_array_equal(padded[1, 1:], 0.0)
    with pytest.raises(ValueError, match="mask value"):
        demo.pad([np.zeros((2, 3), np.float32)], 3, 0.0)


def test_stratified_split_is_deterministic_and_disjoint():
    labels = np.repeat(np.arange(4), 5)
    fit, val = demo.stratified_split(labels, 2, np.random.default_rng(0))
    assert np.bincount(labels[val]).tolist() == [2] * 4
    assert sorted([*fit, *val]) == list(range(20))
    again = demo.stratified_split(labels, 2, np.random.default_rng(0))
    np.testing.assert_array_equal(fit, again[0])


def test_validation_comes_from_training_split_only(data_dir):
    data = demo.prepare_data(data_dir)
    split = demo.split_for_seed(data, 3, 2)
    assert len(split["x_val"]) == 2 * 9 and len(split["x_train"]) == 270 - 18
    assert split["y_val"].sum(axis=0).tolist() == [2.0] * 9
    np.testing.assert_array_equal(split["x_test"], data["x_test"])
    train_rows = {row.tobytes() for row in data["x_train"]}
    assert all(row.tobytes() in train_rows for row in split["x_val"])
    other = demo.split_for_seed(data, 4, 2)
    assert not np.array_equal(split["x_val"], other["x_val"])


def test_help_documents_the_options(capsys):
    with pytest.raises(SystemExit):
        demo.parse_args(["--help"])
    text = capsys.readouterr().out
    for option in ("--seeds", "--seed", "--epochs", "--units", "--dropout", "--patience"):
        assert option in text
    assert demo.parse_args([]).seeds >= 5


def test_seeds_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        demo.parse_args(["--seeds", "0"])
    assert "--seeds must be at least 1" in capsys.readouterr().err


def test_summary_and_verdict():
    summary = {
        "bidirectional": demo.summarize([0.98, 0.97, 0.99]),
        "unidirectional": demo.summarize([0.975, 0.98, 0.97]),
    }
    assert summary["bidirectional"]["std"] == pytest.approx(0.01)
    out = demo.compare(summary)
    assert out["difference"] == pytest.approx(0.005)
    assert out["bidirectional_wins"] == 2
    assert out["exceeds_seed_spread"] is False
    assert "not larger than the seed spread" in out["verdict"]
    one = demo.compare({k: demo.summarize(v["per_seed"][:1]) for k, v in summary.items()})
    assert one["exceeds_seed_spread"] is None and "one seed" in one["verdict"]


def test_quick_run_prints_the_table_and_final_line(quick_run):
    lines, saved = quick_run["lines"], quick_run["saved"]
    mean = saved["summary"]["bidirectional"]["mean"]
    assert re.fullmatch(r"JapaneseVowels test accuracy: [01]\.\d{4}", lines[-1])
    assert lines[-1].endswith(f"{mean:.4f}")
    assert any(line.startswith("seed 1 ") for line in lines)
    assert any(line.startswith("seed 2 ") for line in lines)
    assert any(line.startswith("mean ± std") for line in lines)
    assert saved["comparison"]["verdict"] in lines
    assert (quick_run["out"] / "learning_curves.png").stat().st_size > 1000


def test_quick_run_results_json_fields(quick_run):
    saved = quick_run["saved"]
    assert set(saved["versions"]) == {"birnn", "torch", "python", "numpy"}
    assert all(isinstance(v, str) and v for v in saved["versions"].values())
    assert saved["seeds"] == [1, 2]
    assert set(saved["summary"]) == {"bidirectional", "unidirectional"}
    for name, summary in saved["summary"].items():
        runs = saved["models"][name]["runs"]
        accuracies = [r["test_accuracy"] for r in runs]
        assert summary["per_seed"] == accuracies
        assert summary["mean"] == pytest.approx(np.mean(accuracies))
        assert summary["std"] == pytest.approx(np.std(accuracies, ddof=1))
        for seed, run in zip(saved["seeds"], runs):
            assert run["seed"] == seed and run["epochs_run"] == 2
            assert 1 <= run["best_epoch"] <= run["epochs_run"]
            assert run["best_val_loss"] == min(run["history"]["val_loss"])
            assert run["test_loss"] > 0 and 0 <= run["test_accuracy"] <= 1
            assert len(run["history"]["loss"]) == 2
    bi, uni = (saved["models"][n]["params"] for n in ("bidirectional", "unidirectional"))
    assert abs(uni - bi) / bi < 0.1
    assert saved == json.loads(json.dumps(quick_run["returned"]))


def test_runs_without_matplotlib(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    argv = ["--quick", "--seeds", "1", "--no-compare", "--epochs", "1", "--output", str(tmp_path)]
    demo.main(argv)
    out = capsys.readouterr().out
    assert "skipped, matplotlib is not installed" in out
    assert re.search(r"JapaneseVowels test accuracy: [01]\.\d{4}\n$", out)
    assert not (tmp_path / "learning_curves.png").exists()
    saved = json.loads((tmp_path / "results.json").read_text())
    assert list(saved["summary"]) == ["bidirectional"] and "comparison" not in saved
