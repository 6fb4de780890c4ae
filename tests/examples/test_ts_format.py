"""The `.ts` reader on small inline files."""

import numpy as np
import pytest

from birnn.examples.ts_format import parse_ts, read_ts

MULTIVARIATE = """\
# A comment line
#
@problemName Tiny
@timeStamps false
@missing true
@univariate false
@dimensions 3
@equalLength false
@classLabel true 1 2 3
@data
1.5,2,3:-4,5e-1,6:0,0,?:2
7,8:9,10:11,12:3

1,1,1,1:2,2,2,2:3,3,3,3:1
"""


def test_multivariate_variable_length():
    data = parse_ts(MULTIVARIATE)
    assert data.problem_name == "Tiny"
    assert data.class_labels == ("1", "2", "3")
    assert list(data.labels) == ["2", "3", "1"]
    assert [s.shape for s in data.series] == [(3, 3), (2, 3), (4, 3)]
    assert all(s.dtype == np.float32 for s in data.series)
    np.testing.assert_array_equal(
        data.series[0], np.array([[1.5, -4, 0], [2, 0.5, 0], [3, 6, np.nan]], np.float32)
    )
    np.testing.assert_array_equal(data.series[1][:, 2], [11, 12])
    assert data.metadata["dimensions"] == "3"


def test_univariate_equal_length_and_tags_case_insensitive():
    text = "@PROBLEMNAME u\n@univariate TRUE\n@equallength true\n@serieslength 3\n"
    text += "@classlabel true a b\n@DATA\n1,2,3:a\n4,5,6:b\n"
    data = parse_ts(text)
    assert [s.shape for s in data.series] == [(3, 1), (3, 1)]
    assert list(data.labels) == ["a", "b"]


def test_unlabelled_and_regression_targets():
    unlabelled = parse_ts("@univariate true\n@classLabel false\n@data\n1,2\n3\n")
    assert unlabelled.labels is None and unlabelled.class_labels == ()
    assert [s.shape for s in unlabelled.series] == [(2, 1), (1, 1)]
    regression = parse_ts("@univariate true\n@targetLabel true\n@data\n1,2:0.5\n")
    assert list(regression.labels) == ["0.5"]


@pytest.mark.parametrize(
    "text, match",
    [
        ("@univariate true\n1,2\n", "expected a @tag"),
        ("@univariate true\n", "no @data"),
        ("@timeStamps true\n@data\n(0,1)\n", "timeStamps"),
        ("@missing maybe\n@data\n", "must be 'true' or 'false'"),
        ("@dimensions 2\n@data\n1,2\n", "expected 2 dimensions"),
        ("@dimensions 2\n@data\n1,2:3\n", "different lengths"),
        ("@equalLength true\n@seriesLength 3\n@data\n1,2\n", "seriesLength 3"),
        ("@classLabel true a b\n@data\n1,2:c\n", "not in @classLabel"),
        ("@classLabel true a b\n@data\n1,2\n", "missing label"),
        ("@data\n1,x\n", "bad value"),
    ],
)
def test_malformed_input_raises(text, match):
    with pytest.raises(ValueError, match=match):
        parse_ts(text)


def test_read_ts_from_disk(tmp_path):
    path = tmp_path / "tiny.ts"
    path.write_text(MULTIVARIATE, encoding="utf-8")
    data = read_ts(path)
    assert len(data.series) == 3
