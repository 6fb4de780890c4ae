"""The JapaneseVowels demo's pipeline, end to end on a couple of epochs."""

import json
import re

import numpy as np
import pytest

from birnn.examples import japanese_vowels as demo


@pytest.fixture(scope="module")
def data_dir():
    try:
        return demo.find_data_dir()
    except FileNotFoundError as error:
        pytest.skip(str(error))


def test_loads_the_official_split(data_dir):
    x_train, y_train, x_test, y_test, classes = demo.load_japanese_vowels(data_dir)
    assert (len(x_train), len(x_test)) == (270, 370)
    assert classes == tuple("123456789")
    assert np.bincount(y_train).tolist() == [30] * 9
    lengths = [len(s) for s in (*x_train, *x_test)]
    assert (min(lengths), max(lengths)) == (7, 29)
    assert {s.shape[1] for s in (*x_train, *x_test)} == {12}


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


def test_help_documents_the_options(capsys):
    with pytest.raises(SystemExit):
        demo.parse_args(["--help"])
    text = capsys.readouterr().out
    for option in ("--epochs", "--seed", "--units", "--output", "--batch-size", "--quick"):
        assert option in text


def test_quick_run_end_to_end(data_dir, tmp_path, capsys):
    summary = demo.main(["--quick", "--output", str(tmp_path)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"JapaneseVowels test accuracy: [01]\.\d{4}", lines[-1])
    assert (tmp_path / "learning_curves.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "results.json").read_text())
    models = saved["models"]
    assert set(models) == {"bidirectional", "unidirectional"}
    bi, uni = models["bidirectional"]["params"], models["unidirectional"]["params"]
    assert abs(uni - bi) / bi < 0.1
    assert models["bidirectional"]["epochs_run"] == 2
    assert lines[-1].endswith(f"{summary['models']['bidirectional']['test_accuracy']:.4f}")
