"""A small reader of the sktime/aeon `.ts` time-series format.

A `.ts` file is a header of `@tag value` lines (comments start with `#`) followed by `@data` and
one line per case. In a case, dimensions are separated by `:` and the values of one dimension by
`,`; the last `:`-field is the label when `@classLabel true` (or `@targetLabel true`). Missing
values are written `?` and read as NaN. Cases may have different lengths (`@equalLength false`).
Files with `@timeStamps true` (values written as `(time,value)` pairs) are not supported.

>>> text = '''
... @problemName Tiny
... @timeStamps false
... @univariate false
... @dimensions 2
... @equalLength false
... @classLabel true a b
... @data
... 1,2,3:4,5,6:a
... 7,8:9,?:b
... '''
>>> data = parse_ts(text)
>>> data.problem_name, data.class_labels, data.labels.tolist()
('Tiny', ('a', 'b'), ['a', 'b'])
>>> [s.shape for s in data.series]
[(3, 2), (2, 2)]
>>> data.series[1]
array([[ 7.,  9.],
       [ 8., nan]], dtype=float32)
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

__all__ = ["TsDataset", "parse_ts", "read_ts"]

_BOOLEAN_TAGS = ("timestamps", "missing", "univariate", "equallength")


@dataclasses.dataclass(frozen=True)
class TsDataset:
    """The content of a `.ts` file.

    Attributes:
        series: one float32 array of shape `(length, dimensions)` per case.
        labels: the label of each case as a string array (`None` if the file has no labels).
        class_labels: the class labels declared by `@classLabel`, in declared order (empty
            when the file declares none).
        problem_name: the `@problemName` value, or `""`.
        metadata: every header tag (lower case) with its raw value string.
    """

    series: list[np.ndarray]
    labels: np.ndarray | None
    class_labels: tuple[str, ...]
    problem_name: str
    metadata: dict[str, str]


def _bool(tag: str, value: str) -> bool:
    word = value.strip().lower()
    if word not in ("true", "false"):
        raise ValueError(f".ts header: @{tag} must be 'true' or 'false', got {value!r}")
    return word == "true"


def _parse_dimension(field: str, line_no: int) -> np.ndarray:
    try:
        values = [np.nan if v.strip() == "?" else float(v) for v in field.split(",")]
    except ValueError as error:
        raise ValueError(f".ts data line {line_no}: bad value in {field[:40]!r}") from error
    return np.asarray(values, dtype=np.float32)


def parse_ts(text: str) -> TsDataset:
    """Parses the text of a `.ts` file.

    Args:
        text: the whole file content.

    Returns:
        A `TsDataset`.

    Raises:
        ValueError: for a malformed header or data line, time-stamped data, a case whose
            dimensions have different lengths, or a case that disagrees with `@dimensions`,
            `@univariate`, `@seriesLength` or the declared class labels.
    """
    metadata: dict[str, str] = {}
    lines = text.splitlines()
    data_start = None
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("@"):
            raise ValueError(f".ts line {i + 1}: expected a @tag before @data, got {line[:40]!r}")
        tag, _, value = line[1:].partition(" ")
        tag = tag.lower()
        if tag == "data":
            data_start = i + 1
            break
        metadata[tag] = value.strip()
    if data_start is None:
        raise ValueError(".ts text has no @data section")

    flags = {t: _bool(t, metadata[t]) for t in _BOOLEAN_TAGS if t in metadata}
    if flags.get("timestamps", False):
        raise ValueError(".ts files with @timeStamps true are not supported")
    has_class = "classlabel" in metadata and _bool(
        "classLabel", metadata["classlabel"].split()[0] if metadata["classlabel"] else ""
    )
    has_target = "targetlabel" in metadata and _bool("targetLabel", metadata["targetlabel"])
    class_labels = tuple(metadata["classlabel"].split()[1:]) if has_class else ()
    n_dims = 1 if flags.get("univariate", False) else None
    if "dimensions" in metadata:
        n_dims = int(metadata["dimensions"])
    series_length = None
    if flags.get("equallength", False) and "serieslength" in metadata:
        series_length = int(metadata["serieslength"])

    series: list[np.ndarray] = []
    labels: list[str] = []
    for i in range(data_start, len(lines)):
        line = lines[i].strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if has_class or has_target:
            if len(fields) < 2:
                raise ValueError(f".ts data line {i + 1}: missing label")
            *fields, label = fields
            label = label.strip()
            if class_labels and label not in class_labels:
                raise ValueError(
                    f".ts data line {i + 1}: label {label!r} not in @classLabel {class_labels}"
                )
            labels.append(label)
        dims = [_parse_dimension(f, i + 1) for f in fields]
        if n_dims is not None and len(dims) != n_dims:
            raise ValueError(
                f".ts data line {i + 1}: expected {n_dims} dimensions, got {len(dims)}"
            )
        lengths = {len(d) for d in dims}
        if len(lengths) != 1:
            raise ValueError(
                f".ts data line {i + 1}: dimensions have different lengths {sorted(lengths)}"
            )
        if series_length is not None and len(dims[0]) != series_length:
            raise ValueError(
                f".ts data line {i + 1}: expected @seriesLength {series_length}, "
                f"got {len(dims[0])}"
            )
        series.append(np.stack(dims, axis=1))

    return TsDataset(
        series=series,
        labels=np.asarray(labels) if (has_class or has_target) else None,
        class_labels=class_labels,
        problem_name=metadata.get("problemname", ""),
        metadata=metadata,
    )


def read_ts(path: str | os.PathLike) -> TsDataset:
    """Reads a `.ts` file from disk; see `parse_ts`.

    Args:
        path: the file's path.

    Returns:
        A `TsDataset`.
    """
    with open(path, encoding="utf-8") as f:
        return parse_ts(f.read())
